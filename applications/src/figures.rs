//! Throughput and latency figures of a measured series, and how the benches print them:
//! one place, so every `erpos bench` suite reports the same way.

use std::time::Duration;

/// Throughput and latency of one measured series.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Operations per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// The figures of `latencies` measured over `total`.
pub fn figures(mut latencies: Vec<Duration>, total: Duration) -> Figures {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Figures {
        per_second: latencies.len() as f64 / total.as_secs_f64().max(1e-9),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Prints one line of figures under `name`.
pub fn print(name: &str, f: &Figures) {
    println!(
        "  {name:<34} {:>10.0} ops/s   p50 {:>8.1} µs   p99 {:>8.1} µs",
        f.per_second,
        f.p50.as_secs_f64() * 1e6,
        f.p99.as_secs_f64() * 1e6
    );
}
