//! Sleeps for the number of milliseconds given (default: forever) inside a host call.
fn main() {
    let millis: Option<u64> = std::env::args().nth(1).map(|a| a.parse().expect("MILLIS"));
    println!("sleeping");
    match millis {
        Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
    println!("woke up");
}
