//! Prints its arguments and the `AWS_BATCH_*` environment it sees: the smallest useful job.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from wasmbatch: args={args:?}");
    let mut batch_env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_BATCH_"))
        .collect();
    batch_env.sort();
    for (k, v) in batch_env {
        println!("{k}={v}");
    }
}
