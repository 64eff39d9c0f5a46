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
/// (`(label, index into samples)`).
pub fn table(title: &str, samples: &[Sample], baselines: &[(&str, usize)]) {
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
}
