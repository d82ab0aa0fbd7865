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

use tonic::transport::Channel;

/// Runs `bench` until it returns or the user presses Ctrl-C. Either way the
/// function returns normally, so the drops stop the `redis-server` and the
/// service that the bench started.
pub async fn run_until_interrupted(bench: impl Future<Output = ()>) {
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
