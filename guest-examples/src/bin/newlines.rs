//! Writes `BYTES` newlines to stdout and as many to stderr, 64 KiB per write: `newlines BYTES`.
//! The cheapest flood of log events there is (one empty line per byte), for the output caps.
use std::io::Write;

fn main() {
    let bytes: usize = std::env::args()
        .nth(1)
        .map_or(1 << 20, |a| a.parse().expect("BYTES"));
    let block = [b'\n'; 64 * 1024];
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len());
        out.write_all(&block[..n]).unwrap();
        err.write_all(&block[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
}
