//! Fails on its first attempts and then succeeds, like a job hitting a transient fault:
//! `flaky [N] [MILLIS]` exits 1 while `AWS_BATCH_JOB_ATTEMPT` is below N (default 2), then
//! sleeps MILLIS ms (default 0), so a later attempt can be caught running, and exits 0.
fn main() {
    let mut args = std::env::args().skip(1);
    let succeed_at: u32 = args
        .next()
        .map_or(2, |a| a.parse().expect("flaky: N must be a number"));
    let millis: u64 = args
        .next()
        .map_or(0, |a| a.parse().expect("flaky: MILLIS must be a number"));
    let attempt: u32 = std::env::var("AWS_BATCH_JOB_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    if attempt < succeed_at {
        eprintln!("attempt {attempt}: transient failure, asking to be retried");
        std::process::exit(1);
    }
    std::thread::sleep(std::time::Duration::from_millis(millis));
    println!("attempt {attempt}: done");
}
