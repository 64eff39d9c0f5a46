//! Fails on its first attempts and then succeeds, like a job hitting a transient fault:
//! `flaky [N]` exits 1 while `AWS_BATCH_JOB_ATTEMPT` is below N (default 2), then 0.
fn main() {
    let succeed_at: u32 = std::env::args()
        .nth(1)
        .map_or(2, |a| a.parse().expect("flaky: N must be a number"));
    let attempt: u32 = std::env::var("AWS_BATCH_JOB_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    if attempt < succeed_at {
        eprintln!("attempt {attempt}: transient failure, asking to be retried");
        std::process::exit(1);
    }
    println!("attempt {attempt}: done");
}
