//! Timings as the benchmarks report them: quantiles and a markdown table with ratios to
//! baselines measured in the same run.

use std::time::Duration;

/// Timings of one scenario.
pub struct Sample {
    /// What was timed.
    pub name: &'static str,
    /// One duration per run.
    pub times: Vec<Duration>,
}

impl Sample {
    /// The `p` quantile (0.0 = min, 1.0 = max).
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[index]
    }
    /// The 0.5 quantile.
    pub fn median(&self) -> Duration {
        self.percentile(0.5)
    }
}

/// A duration in µs or ms, as the tables print them.
pub fn fmt(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}

/// Prints samples as a markdown table with p50/p99/min/max and the p50 ratio to each baseline
/// (`(label, index into samples)`); returns the samples.
pub fn table<'a>(title: &str, samples: &'a [Sample], baselines: &[(&str, usize)]) -> &'a [Sample] {
    println!("\n## {title}\n");
    print!("| scenario | n | p50 | p99 | min | max |");
    for (label, _) in baselines {
        print!(" p50 vs {label} |");
    }
    println!();
    println!(
        "|---|---|---|---|---|---|{}",
        "---|".repeat(baselines.len())
    );
    for s in samples {
        print!(
            "| {} | {} | {} | {} | {} | {} |",
            s.name,
            s.times.len(),
            fmt(s.median()),
            fmt(s.percentile(0.99)),
            fmt(s.percentile(0.0)),
            fmt(s.percentile(1.0))
        );
        for (_, index) in baselines {
            let ratio = s.median().as_secs_f64() / samples[*index].median().as_secs_f64();
            print!(" {ratio:.2}× |");
        }
        println!();
    }
    samples
}

/// Appends one result, as a JSON line `{"key": …, …fields}`, to the file named by
/// `WASMBATCH_BENCH_JSON` when it is set: what `scripts/bench` turns into bench/REPORT.md, its
/// goals table and its charts. Keys are stable names such as `cold_start.executor`.
pub fn record(key: &str, fields: serde_json::Value) {
    let Some(path) = std::env::var_os("WASMBATCH_BENCH_JSON") else {
        return;
    };
    let mut line = serde_json::json!({ "key": key });
    if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object()) {
        line.extend(fields.clone());
    }
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening WASMBATCH_BENCH_JSON");
    writeln!(file, "{line}").expect("writing WASMBATCH_BENCH_JSON");
}

impl Sample {
    /// Records this sample's quantiles (in µs) under `key`.
    pub fn record(&self, key: &str) {
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        record(
            key,
            serde_json::json!({
                "name": self.name,
                "n": self.times.len(),
                "p50_us": micros(self.median()),
                "p99_us": micros(self.percentile(0.99)),
                "min_us": micros(self.percentile(0.0)),
                "max_us": micros(self.percentile(1.0)),
            }),
        );
    }
}

/// This process's resident set, in KiB (`VmRSS` in /proc/self/status; 0 where there is none).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
