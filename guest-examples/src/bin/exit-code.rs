//! Exits with the status given as its first argument (default 0), after a line on each stream.
fn main() {
    let code: i32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("exit-code: the argument must be an integer"))
        .unwrap_or(0);
    println!("exiting with {code}");
    eprintln!("exit-code: about to exit with {code}");
    std::process::exit(code);
}
