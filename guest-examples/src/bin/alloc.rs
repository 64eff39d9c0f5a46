//! Allocates memory in chunks until the host refuses to grow linear memory, reporting progress.
//!
//! `alloc [CHUNK_MIB] [STOP_AT_MIB]`: with `STOP_AT_MIB`, stops after that much and exits 0,
//! which lets a test check a job that fits its limit.
fn main() {
    let mut args = std::env::args().skip(1);
    let chunk_mib: usize = args.next().map_or(1, |a| a.parse().expect("CHUNK_MIB"));
    let stop_at_mib: Option<usize> = args.next().map(|a| a.parse().expect("STOP_AT_MIB"));
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0usize;
    loop {
        if stop_at_mib.is_some_and(|stop| total >= stop) {
            println!("allocated {total} MiB, stopping");
            return;
        }
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(chunk_mib << 20).is_err() {
            println!("refused after {total} MiB");
            std::process::exit(3);
        }
        // Touch the memory so it is really used.
        chunk.resize(chunk_mib << 20, 1u8);
        held.push(chunk);
        total += chunk_mib;
        println!("allocated {total} MiB");
    }
}
