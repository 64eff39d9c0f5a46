//! Tries to reach host files it was not given and reports, one line each, what it could reach.
//! Lines read `OPENED <path>` or `DENIED <path>`; the host's tests look for any `OPENED`
//! outside the grants. Extra paths to try may be given as arguments (the tests plant symlinks
//! that point out of a granted directory and pass their guest paths here).
fn main() {
    let mut targets: Vec<String> = [
        "/etc/passwd",
        "/scratch/../../etc/passwd",
        "../..",
        "..",
        "/",
        "/scratch/..",
        "/proc/self/environ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    targets.extend(std::env::args().skip(1));

    for t in targets {
        let reached = std::fs::read(&t).is_ok() || std::fs::read_dir(&t).is_ok();
        println!("{} {t}", if reached { "OPENED" } else { "DENIED" });
    }
    match std::net::TcpStream::connect("127.0.0.1:22") {
        Ok(_) => println!("OPENED tcp 127.0.0.1:22"),
        Err(_) => println!("DENIED tcp 127.0.0.1:22"),
    }
}
