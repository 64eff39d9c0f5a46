//! The compute kernel: SHA-256 over `MIB` MiB of generated data, `ROUNDS` times, chained.
//! The kernel uses no crates so the same source builds natively as the baseline.
//! `sha256 [MIB] [ROUNDS]` prints the final digest in hex.

use wasmbatch_guests::{generated, hex, sha256};

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(4, |a| a.parse().expect("MIB"));
    let rounds: usize = args.next().map_or(1, |a| a.parse().expect("ROUNDS"));
    let mut data = generated(mib << 20, 0);
    let mut digest = [0u8; 32];
    for _ in 0..rounds {
        digest = sha256(&data);
        data[..32].copy_from_slice(&digest);
    }
    println!("{}", hex(&digest));
}
