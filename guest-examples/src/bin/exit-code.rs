//! Exits with the status given as its first argument (default 0), after a line on each stream.
fn main() {
    let code: i32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("exit-code: the argument must be an integer"))
        .unwrap_or(0);
    println!("exiting with {code}");
    eprintln!("exit-code: about to exit with {code}");
    exit(code);
}

/// Rust's std ends a preview-2 component with `exit(ok|err)`, which carries only 0 or 1; the
/// `exit-with-code` import carries the real status.
#[cfg(all(target_os = "wasi", target_env = "p2"))]
fn exit(code: i32) -> ! {
    use std::io::Write;
    if let Ok(byte) = u8::try_from(code) {
        let _ = std::io::stdout().flush();
        wasip2::cli::exit::exit_with_code(byte);
    }
    std::process::exit(code)
}

#[cfg(not(all(target_os = "wasi", target_env = "p2")))]
fn exit(code: i32) -> ! {
    std::process::exit(code)
}
