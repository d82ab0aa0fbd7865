//! Claims through gRPC with many agents racing for each order, against the
//! baseline of the claim script called directly on the same Redis
//! (`RedisStore::claim`), in one run: `cargo bench --bench claims`.
//!
//! The service runs in this process on a private `redis-server`, as the
//! system tests start it (production credentials, so every call verifies
//! an agent token). Both phases grab orders offered county-wide, four
//! agents per order with the same concurrency, so each phase sends Redis
//! the same scripts. The report goes to stdout in Markdown.

mod support;

use std::sync::Arc;
use std::time::Duration;

use daiban_store::RedisStore;
use daiban_tests::{demo_directory, spawn_app};

use support::claims::{self, Race, open_orders, racers};
use support::machine::print_header;
use support::orders::{bench_county, demo_requests};
use support::phase::{measure, print_comparison, print_phases};
use support::probe::Probe;

/// Distinct agents taking part; each order is grabbed by four of them.
const AGENTS: usize = 128;

/// Claims in flight at once, in either phase.
const CONCURRENCY: usize = 32;

/// HTTP/2 connections the gRPC phase spreads its calls over.
const CHANNELS: usize = 4;

/// Orders grabbed before measuring, per phase, to open connections, load
/// the script and warm the allocator.
const WARMUP_ORDERS: usize = 500;

/// Orders grabbed in each measured phase: four claims each.
const MEASURED_ORDERS: usize = 10_000;

const PHASE_TIME_LIMIT: Duration = Duration::from_secs(60);

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
    let store = RedisStore::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("failed to connect the baseline store: {err}"));
    let directory = Arc::new(demo_directory());
    let probe = Probe::connect(&url, &bench_county(&directory)).await;
    print_header("Claims through gRPC against the claim script", &probe).await;

    let rows = Arc::new(demo_requests());
    let channels = support::channels(app.addr, CHANNELS).await;
    let orders = open_orders(
        &store,
        &directory,
        &rows,
        2 * (WARMUP_ORDERS + MEASURED_ORDERS),
        "claims",
    )
    .await;
    let mut pool = Race {
        orders: Arc::new(orders),
        racers: Arc::new(racers(&app, &directory, AGENTS)),
    };

    let warmup = pool.take(WARMUP_ORDERS);
    claims::grpc(&channels, &warmup, CONCURRENCY, PHASE_TIME_LIMIT).await;
    let warmup = pool.take(WARMUP_ORDERS);
    claims::direct(&store, &warmup, CONCURRENCY, PHASE_TIME_LIMIT).await;

    let race = pool.take(MEASURED_ORDERS);
    let grpc = measure(
        &probe,
        "gRPC ClaimWorkOrder",
        claims::grpc(&channels, &race, CONCURRENCY, PHASE_TIME_LIMIT),
    )
    .await;
    let race = pool.take(MEASURED_ORDERS);
    let direct = measure(
        &probe,
        "RedisStore::claim",
        claims::direct(&store, &race, CONCURRENCY, PHASE_TIME_LIMIT),
    )
    .await;

    println!(
        "{MEASURED_ORDERS} orders per phase, {} agents racing per order, {AGENTS} agents, \
         {CONCURRENCY} claims in flight, {CHANNELS} HTTP/2 connections for gRPC.",
        claims::RACERS_PER_ORDER
    );
    println!();
    print_phases(&[&grpc, &direct]);
    for phase in [&grpc, &direct] {
        let r = &phase.result;
        println!(
            "- {}: {} won, {} lost to another agent, {} failed; every order has one winner: {}",
            phase.name,
            r.done,
            r.lost,
            r.failed,
            r.done == MEASURED_ORDERS && !r.truncated
        );
    }
    println!();

    print_comparison(&grpc, &direct, "claims/s", "≥ 35% of the baseline");

    app.stop().await;
}
