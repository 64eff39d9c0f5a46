//! Writes numbered lines: `write-lot LINES [stdout|stderr|both]`, to test capture, order and caps.
use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args.next().map_or(10, |a| a.parse().expect("LINES"));
    let target = args.next().unwrap_or_else(|| "stdout".to_string());
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for i in 0..lines {
        if target == "stdout" || target == "both" {
            writeln!(out, "out line {i}").unwrap();
        }
        if target == "stderr" || target == "both" {
            writeln!(err, "err line {i}").unwrap();
        }
    }
    out.flush().unwrap();
}
