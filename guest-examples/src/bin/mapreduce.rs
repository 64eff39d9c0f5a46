//! Map and reduce over the compute kernel, through a shared volume (the demo's array job and
//! the job that depends on it):
//! - `mapreduce map MIB DIR`: hashes MIB MiB of data seeded by the job's array index
//!   (`AWS_BATCH_JOB_ARRAY_INDEX`, 0 outside an array) and writes the digest to `DIR/part-<index>`;
//! - `mapreduce reduce N DIR`: reads `part-0` to `part-<N-1>` and prints the digest of them all,
//!   failing (exit 1) if one is missing.

use wasmbatch_guests::{generated, hex, sha256};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["map", mib, dir] => {
            let mib: usize = mib.parse().expect("map: MIB must be a number");
            let index: u64 = std::env::var("AWS_BATCH_JOB_ARRAY_INDEX")
                .ok()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let digest = hex(&sha256(&generated(mib << 20, index)));
            std::fs::write(format!("{dir}/part-{index}"), &digest).expect("writing the part");
            println!("part {index}: {digest}");
        }
        ["reduce", parts, dir] => {
            let parts: usize = parts.parse().expect("reduce: N must be a number");
            let mut all = String::new();
            for index in 0..parts {
                match std::fs::read_to_string(format!("{dir}/part-{index}")) {
                    Ok(part) => all.push_str(&part),
                    Err(e) => {
                        eprintln!("reduce: part {index} is missing: {e}");
                        std::process::exit(1);
                    }
                }
            }
            println!("{parts} parts reduced: {}", hex(&sha256(all.as_bytes())));
        }
        _ => {
            eprintln!("usage: mapreduce map MIB DIR | mapreduce reduce N DIR");
            std::process::exit(2);
        }
    }
}
