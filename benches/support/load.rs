//! Bounded concurrent load: a fixed number of workers take numbered calls
//! from a shared counter until every call is made or the time limit passes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::stats::Summary;

/// How many calls to make, how many at a time, and for how long at most.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub calls: usize,
    pub time_limit: Duration,
}

/// The end of one call.
#[derive(Debug)]
pub enum Outcome {
    /// The call did what it was for: created an order, or won a claim.
    Done,
    /// The call lost a race that it was expected to lose: another agent
    /// claimed the order first.
    Lost,
    Failed(String),
}

/// The calls of one run and how they ended.
#[derive(Debug)]
pub struct LoadResult {
    pub summary: Summary,
    pub done: usize,
    pub lost: usize,
    pub failed: usize,
    /// The first few failure messages.
    pub failures: Vec<String>,
    /// Whether the time limit stopped the run before every call was made.
    pub truncated: bool,
}

/// Failure messages kept for the report.
const KEPT_FAILURES: usize = 5;

/// Makes the calls `call(0)`, `call(1)`, … `call(load.calls - 1)`, at most
/// `load.concurrency` at a time, in increasing order of number, and
/// measures each from its start to its end. No call starts after
/// `load.time_limit`.
pub async fn run<F, Fut>(load: Load, call: F) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + load.time_limit;

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..load.concurrency.max(1) {
        let call = call.clone();
        let next = next.clone();
        workers.spawn(async move {
            let mut measured = Vec::new();
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= load.calls || Instant::now() >= deadline {
                    return measured;
                }
                let began = Instant::now();
                let outcome = call(number).await;
                measured.push((began.elapsed(), outcome));
            }
        });
    }

    let mut latencies = Vec::with_capacity(load.calls);
    let (mut done, mut lost, mut failed) = (0, 0, 0);
    let mut failures = Vec::new();
    while let Some(joined) = workers.join_next().await {
        let measured = joined.expect("a load worker panicked");
        for (latency, outcome) in measured {
            latencies.push(latency);
            match outcome {
                Outcome::Done => done += 1,
                Outcome::Lost => lost += 1,
                Outcome::Failed(message) => {
                    failed += 1;
                    if failures.len() < KEPT_FAILURES {
                        failures.push(message);
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let truncated = latencies.len() < load.calls;
    LoadResult {
        summary: Summary::of(latencies, elapsed),
        done,
        lost,
        failed,
        failures,
        truncated,
    }
}

impl LoadResult {
    /// Prints the failures and a truncation to stderr, so that the figures
    /// of a disturbed run are not taken as clean.
    pub fn warn(&self, what: &str) {
        if self.truncated {
            eprintln!(
                "warning: {what}: the time limit stopped the run after {} calls",
                self.summary.calls
            );
        }
        if self.failed > 0 {
            eprintln!(
                "warning: {what}: {} calls failed, for example: {:?}",
                self.failed, self.failures
            );
        }
    }
}
