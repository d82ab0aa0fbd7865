//! Intake through gRPC (`SubmitRequest`, stored in Redis) against the
//! baseline of a tonic server whose handlers do nothing, with the same
//! messages, in one run: `cargo bench --bench intake`.
//!
//! The service runs in this process on a private `redis-server`, as the
//! system tests start it (production credentials, so every call checks an
//! API key). Both servers listen on loopback with `TCP_NODELAY` and get the
//! rows of the demo week's requests in turn, each with its own request id.
//! The report goes to stdout in Markdown. `DAIBAN_BENCH_IN_FLIGHT=128`
//! keeps more requests in flight than the default 32, to find the rate at
//! which the cores are busy.

mod support;

use std::sync::Arc;
use std::time::Duration;

use daiban_tests::{demo_directory, spawn_app};

use support::intake::{self, NoopServer};
use support::load::Load;
use support::machine::print_header;
use support::orders::{bench_county, demo_requests};
use support::phase::{measure, print_comparison, print_phases};
use support::probe::Probe;
use support::stats::rate;

/// Requests in flight at once, in either phase, when
/// `DAIBAN_BENCH_IN_FLIGHT` is not set.
const DEFAULT_IN_FLIGHT: usize = 32;

const IN_FLIGHT_VARIABLE: &str = "DAIBAN_BENCH_IN_FLIGHT";

/// HTTP/2 connections each phase spreads its calls over.
const CHANNELS: usize = 4;

/// Requests made before measuring, per server, to open connections, load
/// the scripts and warm the allocator.
const WARMUP_CALLS: usize = 2_000;

/// Requests in each measured phase.
const MEASURED_CALLS: usize = 20_000;

const PHASE_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Maximum wait for the dispatcher to send the notifications that the
/// measured requests owe.
const DRAIN_LIMIT: Duration = Duration::from_secs(10 * 60);

#[tokio::main]
async fn main() {
    support::run_until_interrupted(bench()).await;
}

async fn bench() {
    let app = spawn_app(support::service_config()).await;
    let url = app
        .redis
        .as_ref()
        .expect("the bench service keeps its state in redis")
        .url();
    let probe = Probe::connect(&url, &bench_county(&demo_directory())).await;
    print_header(
        "Intake through gRPC against a server that does nothing",
        &probe,
    )
    .await;

    let rows = Arc::new(demo_requests());
    let noop = NoopServer::start().await;
    let service_channels = support::channels(app.addr, CHANNELS).await;
    let noop_channels = support::channels(noop.addr, CHANNELS).await;
    let in_flight = in_flight();
    let load = |calls| Load {
        concurrency: in_flight,
        calls,
        time_limit: PHASE_TIME_LIMIT,
    };

    intake::grpc(&service_channels, &rows, "warmup", load(WARMUP_CALLS)).await;
    intake::grpc(&noop_channels, &rows, "warmup", load(WARMUP_CALLS)).await;

    let service = measure(
        &probe,
        "gRPC SubmitRequest, daiban",
        intake::grpc(&service_channels, &rows, "intake", load(MEASURED_CALLS)),
    )
    .await;
    // The notifications of the phase's orders are part of their cost, so
    // the sustained rate counts the time to send the rest of them.
    let notifications = probe.drain_outbox(DRAIN_LIMIT).await;
    let baseline = measure(
        &probe,
        "gRPC SubmitRequest, empty handler",
        intake::grpc(&noop_channels, &rows, "intake", load(MEASURED_CALLS)),
    )
    .await;

    println!(
        "{MEASURED_CALLS} requests per phase, {in_flight} in flight, {CHANNELS} HTTP/2 \
         connections, the {} rows of data/lanshan/requests.csv in turn.",
        rows.len()
    );
    println!();
    print_phases(&[&service, &baseline]);

    print_comparison(&service, &baseline, "requests/s", "≥ 50% of the baseline");
    let sustained = rate(
        service.result.summary.calls,
        service.result.summary.elapsed + notifications.elapsed,
    );
    println!(
        "The daiban phase ended owing {} notifications, which the dispatcher sent in {:.1} s \
         ({} still owed after that). Counting that time, daiban took {sustained:.0} requests/s, \
         {:.0}% of the baseline.",
        notifications.owed,
        notifications.elapsed.as_secs_f64(),
        notifications.left,
        100.0 * sustained / baseline.per_second().max(f64::MIN_POSITIVE)
    );
    println!();

    noop.stop().await;
    app.stop().await;
}

/// Reads the requests in flight from `DAIBAN_BENCH_IN_FLIGHT`, or the
/// default.
///
/// # Panics
///
/// When the variable is not a count above zero.
fn in_flight() -> usize {
    let Ok(text) = std::env::var(IN_FLIGHT_VARIABLE) else {
        return DEFAULT_IN_FLIGHT;
    };
    match text.trim().parse() {
        Ok(count) if count > 0 => count,
        _ => panic!("{IN_FLIGHT_VARIABLE}: expected a count above zero, such as 128, got {text:?}"),
    }
}
