//! Code shared by the benchmarks in `benches/`: bounded load, latency
//! summaries, orders built from the demo week's requests, the two workloads
//! (claims and intake) with their baselines, and probes of the machine and
//! of Redis.
//!
//! Every bench target compiles this module but uses only part of it.
#![allow(dead_code)]

pub mod claims;
pub mod intake;
pub mod load;
pub mod machine;
pub mod memory;
pub mod orders;
pub mod phase;
pub mod probe;
pub mod stats;
pub mod widening;

use std::future::Future;
use std::net::SocketAddr;

use daiban_tests::Config;
use tonic::transport::Channel;

/// Calls per second allowed to each API key and each agent: far above any
/// load a bench makes, so that the figures show what the service can do
/// rather than its rate limiter, which still checks every call.
const UNLIMITED_CALLS_PER_SECOND: &str = "1000000";

/// The service, its clients and the baselines allocate as the `daiban`
/// binary does in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the configuration of the service under test: production
/// credentials as in the system tests, and rate limits out of the way. The
/// grid phase lasts a day, so no order that the bench submits through gRPC
/// widens during the run.
pub fn service_config() -> Config {
    Config {
        widen_after: "1d",
        extra_env: vec![
            ("DAIBAN_RATE_LIMIT_KEY", UNLIMITED_CALLS_PER_SECOND),
            ("DAIBAN_RATE_LIMIT_AGENT", UNLIMITED_CALLS_PER_SECOND),
        ],
        ..Config::default()
    }
}

/// Runs `bench` until it returns or the user presses Ctrl-C. Either way the
/// function returns normally, so the drops stop the `redis-server` and the
/// service that the bench started.
///
/// Without the `--bench` argument that `cargo bench` passes, it returns at
/// once, so `cargo test --all-targets` does not run minutes of benchmarks.
pub async fn run_until_interrupted(bench: impl Future<Output = ()>) {
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("not measuring: run benchmarks with `cargo bench`");
        return;
    }
    tokio::select! {
        () = bench => {}
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted; stopping redis-server and the service");
        }
    }
}

/// Opens `count` HTTP/2 connections to `addr`, as several clients would,
/// so that the framing of all calls is not left to one connection's task.
pub async fn channels(addr: SocketAddr, count: usize) -> Vec<Channel> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(daiban_tests::service::connect(addr).await);
    }
    channels
}
