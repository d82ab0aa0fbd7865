//! Widening lag, Redis memory per pending order, and the latency of claims
//! and intake, at 1,000, 100,000 and 1,000,000 pending orders, in one run:
//! `cargo bench --bench pending`.
//!
//! The service runs in this process on a private `redis-server`. Each level
//! first loads pending orders straight through `RedisStore::submit`: rows
//! of the demo week's requests, in their grid phase until two days later,
//! each with its own request id. Then, with the service idle:
//!
//! 1. memory: the growth of `used_memory` over the load, once the
//!    notifications and SMS that the load owes are sent, divided by the
//!    orders loaded, against their encoded size, and every key by kind;
//! 2. widening lag: 2,000 more orders whose grid phases end over three
//!    seconds, and how late the dispatcher widens each (see `widening`);
//! 3. growth: rounds of claims through gRPC and through
//!    `RedisStore::claim`, on new orders offered county-wide, and of
//!    `SubmitRequest` calls, at a modest concurrency, so that their p50
//!    shows the cost of a call more than queueing. Phases that other
//!    processes disturbed are run again, up to a limit.
//!
//! Levels are cumulative, and each level's measurements leave 8,000 to
//! 18,000 more open orders behind: the widened sample and the requests. Set
//! `DAIBAN_BENCH_PENDING=1000,100000` to run other levels. The report goes
//! to stdout in Markdown.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use daiban_domain::{CountyCode, Directory};
use daiban_store::RedisStore;
use daiban_tests::{TestApp, demo_directory, spawn_app};
use tonic::transport::Channel;

use support::claims::{self, Race, open_orders, racers};
use support::intake;
use support::load::Load;
use support::machine::print_header;
use support::memory::{self, Memory};
use support::orders::{DemoRequest, Timing, bench_county, demo_requests, submit_all};
use support::phase::{Phase, measure, print_phases};
use support::probe::Probe;
use support::stats::{ms, percentile, rate};
use support::widening::{self, Lag};

const LEVELS_VARIABLE: &str = "DAIBAN_BENCH_PENDING";
const DEFAULT_LEVELS: [usize; 3] = [1_000, 100_000, 1_000_000];

/// Submits in flight while loading.
const LOAD_CONCURRENCY: usize = 64;

/// Maximum time to load one level.
const LOAD_TIME_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Maximum wait for the dispatcher to send the notifications that a load
/// owes, before its memory is measured.
const DRAIN_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Grid phase of the loaded orders: longer than any run.
const LOADED_GRID_PHASE: chrono::Duration = chrono::Duration::days(2);

const AGENTS: usize = 128;
const CHANNELS: usize = 4;

/// Quiet phases of each kind per level; the summary takes the median of
/// their p50 latencies, which one odd phase does not move.
const GROWTH_ROUNDS: usize = 3;

/// Rounds run at most to get `GROWTH_ROUNDS` quiet phases of each kind.
const MAX_GROWTH_ROUNDS: usize = 8;

/// CPU time that other processes may use during a phase that counts as
/// quiet: three ticks of `/proc/stat`, its resolution, because builds or
/// tests running beside the bench slow a phase by more than the growth
/// being measured.
const QUIET_OTHER_CPU: Duration = Duration::from_millis(30);

/// Calls in flight in the growth phases.
const GROWTH_CONCURRENCY: usize = 8;

/// Orders grabbed per growth phase of claims, four claims each.
const GROWTH_ORDERS: usize = 1_000;

/// Orders grabbed per path before the first level, four claims each; the
/// warm-up makes as many requests as claims.
const WARMUP_ORDERS: usize = 125;

/// Requests per growth phase of intake.
const GROWTH_REQUESTS: usize = 2_000;

const PHASE_TIME_LIMIT: Duration = Duration::from_secs(60);

/// The figures of one level.
struct Level {
    pending: usize,
    memory: Memory,
    lag: Lag,
    growth: Growth,
}

/// The growth phases of one level, one of each kind per round.
#[derive(Default)]
struct Growth {
    claim_grpc: Vec<Phase>,
    claim_direct: Vec<Phase>,
    intake: Vec<Phase>,
}

impl Growth {
    /// Whether every kind has `GROWTH_ROUNDS` quiet phases.
    fn is_complete(&self) -> bool {
        [&self.claim_grpc, &self.claim_direct, &self.intake]
            .iter()
            .all(|phases| quiet_count(phases) >= GROWTH_ROUNDS)
    }
}

/// Whether other processes kept the cores busy for no longer than the
/// measurement can tell apart from zero.
fn is_quiet(phase: &Phase) -> bool {
    phase.other_cpu <= QUIET_OTHER_CPU
}

/// Submits `GROWTH_ORDERS` orders offered county-wide for a claim phase,
/// with request ids starting with `label`.
async fn claim_race(setup: &Setup, label: &str) -> Race {
    let orders = open_orders(
        &setup.store,
        &setup.directory,
        &setup.rows,
        GROWTH_ORDERS,
        label,
    )
    .await;
    Race {
        orders: Arc::new(orders),
        racers: setup.racers.clone(),
    }
}

fn quiet_count(phases: &[Phase]) -> usize {
    phases.iter().filter(|phase| is_quiet(phase)).count()
}

/// Returns the median p50 latency of the quiet phases, or of all phases
/// when fewer than `GROWTH_ROUNDS` were quiet, and how many it took.
fn median_p50(phases: &[Phase]) -> (Duration, usize) {
    let quiet: Vec<&Phase> = phases.iter().filter(|p| is_quiet(p)).collect();
    let chosen: Vec<&Phase> = if quiet.len() >= GROWTH_ROUNDS {
        quiet
    } else {
        phases.iter().collect()
    };
    let mut p50s: Vec<Duration> = chosen.iter().map(|p| p.result.summary.p50).collect();
    p50s.sort_unstable();
    (percentile(&p50s, 50.0).unwrap_or_default(), p50s.len())
}

/// The service, stores, clients and inputs shared by every level.
struct Setup {
    app: TestApp,
    store: RedisStore,
    probe: Probe,
    directory: Arc<Directory>,
    county: CountyCode,
    rows: Arc<Vec<DemoRequest>>,
    /// The rows whose order has a grid, so it gets a grid phase.
    grid_rows: Arc<Vec<DemoRequest>>,
    channels: Vec<Channel>,
    racers: Arc<Vec<claims::Racer>>,
}

#[tokio::main]
async fn main() {
    support::run_until_interrupted(bench()).await;
}

async fn bench() {
    let levels = levels();
    let setup = set_up().await;
    print_header(
        "Widening lag, memory and growth by pending orders",
        &setup.probe,
    )
    .await;
    print_settings(&setup, &levels).await;
    warm_up(&setup).await;

    let mut results = Vec::new();
    let mut loaded = 0;
    for &pending in &levels {
        results.push(run_level(&setup, loaded, pending).await);
        loaded = pending;
    }
    print_summary(&results);

    setup.app.stop().await;
}

/// Reads the levels from `DAIBAN_BENCH_PENDING`, or the defaults.
///
/// # Panics
///
/// When the variable is not a comma-separated list of increasing counts.
fn levels() -> Vec<usize> {
    let Ok(text) = std::env::var(LEVELS_VARIABLE) else {
        return DEFAULT_LEVELS.to_vec();
    };
    let levels: Vec<usize> = text
        .split(',')
        .map(|part| {
            part.trim().replace('_', "").parse().unwrap_or_else(|_| {
                panic!("{LEVELS_VARIABLE}: expected counts such as 1000,100000, got {text:?}")
            })
        })
        .collect();
    assert!(
        !levels.is_empty() && levels[0] > 0 && levels.windows(2).all(|w| w[0] < w[1]),
        "{LEVELS_VARIABLE}: expected increasing counts above zero, got {text:?}"
    );
    levels
}

async fn set_up() -> Setup {
    let app = spawn_app(support::service_config()).await;
    let url = app
        .redis
        .as_ref()
        .expect("the bench service keeps its state in redis")
        .url();
    let store = RedisStore::connect(&url)
        .await
        .unwrap_or_else(|err| panic!("failed to connect the bench store: {err}"));
    let directory = Arc::new(demo_directory());
    let county = bench_county(&directory);
    let probe = Probe::connect(&url, &county).await;

    let rows = demo_requests();
    let grid_rows: Vec<DemoRequest> = rows
        .iter()
        .filter(|row| row.grid(&directory).is_some())
        .cloned()
        .collect();
    let channels = support::channels(app.addr, CHANNELS).await;
    let racers = Arc::new(racers(&app, &directory, AGENTS));
    Setup {
        app,
        store,
        probe,
        directory,
        county,
        rows: Arc::new(rows),
        grid_rows: Arc::new(grid_rows),
        channels,
        racers,
    }
}

async fn print_settings(setup: &Setup, levels: &[usize]) {
    let probe = &setup.probe;
    println!("- pending levels: {levels:?}");
    for name in [
        "hash-max-listpack-entries",
        "hash-max-listpack-value",
        "zset-max-listpack-entries",
        "zset-max-listpack-value",
        "stream-node-max-entries",
    ] {
        println!("- redis {name}: {}", probe.config(name).await);
    }
    println!();
}

/// Makes a few claims and requests first, so the first level's growth
/// phases do not pay for opening connections and loading scripts.
async fn warm_up(setup: &Setup) {
    let orders = open_orders(
        &setup.store,
        &setup.directory,
        &setup.rows,
        2 * WARMUP_ORDERS,
        "warmup-claims",
    )
    .await;
    let mut race = Race {
        orders: Arc::new(orders),
        racers: setup.racers.clone(),
    };
    let grpc_race = race.take(WARMUP_ORDERS);
    claims::grpc(
        &setup.channels,
        &grpc_race,
        GROWTH_CONCURRENCY,
        PHASE_TIME_LIMIT,
    )
    .await;
    claims::direct(&setup.store, &race, GROWTH_CONCURRENCY, PHASE_TIME_LIMIT).await;

    let load = Load {
        concurrency: GROWTH_CONCURRENCY,
        calls: 4 * WARMUP_ORDERS,
        time_limit: PHASE_TIME_LIMIT,
    };
    intake::grpc(&setup.channels, &setup.rows, "warmup-intake", load).await;
}

/// Loads the orders from `loaded` up to `pending`, then measures.
async fn run_level(setup: &Setup, loaded: usize, pending: usize) -> Level {
    println!("## {pending} pending orders");
    println!();
    let probe = &setup.probe;

    // Notifications and SMS that earlier phases owe are sent first, because
    // every county-wide order owes an SMS to each active agent. The growth
    // below then counts only what the new orders leave behind.
    let earlier = probe.drain_outbox(DRAIN_LIMIT).await;
    let drained = probe.drain_sms(DRAIN_LIMIT).await;
    println!(
        "- before loading, the dispatcher sent the {} notifications and the senders the {} SMS \
         that earlier phases owed, in {:.1} s; {} and {} were still owed",
        earlier.owed,
        drained.owed,
        (earlier.elapsed + drained.elapsed).as_secs_f64(),
        earlier.left,
        drained.left
    );
    let before = probe.used_memory().await;
    let started = Instant::now();
    let ids = load_orders(setup, loaded, pending - loaded).await;
    println!(
        "- loaded {} orders through RedisStore::submit in {:.1} s, {:.0} per second",
        ids.len(),
        started.elapsed().as_secs_f64(),
        rate(ids.len(), started.elapsed())
    );
    let drained = probe.drain_outbox(DRAIN_LIMIT).await;
    println!(
        "- the dispatcher sent the {} notifications that the load owed {:.1} s after it ended; \
         {} were still owed",
        drained.owed,
        drained.elapsed.as_secs_f64(),
        drained.left
    );
    let queued = probe.drain_sms(DRAIN_LIMIT).await;
    println!(
        "- the senders sent the {} SMS of the new orders {:.1} s after that; {} were still queued \
         when memory was measured",
        queued.owed,
        queued.elapsed.as_secs_f64(),
        queued.left
    );
    let after = probe.used_memory().await;
    let memory = memory::measure(
        probe,
        &setup.app.channel,
        &setup.county,
        &ids,
        before,
        after,
    )
    .await;
    memory::print(&memory);

    let lag = measure_lag(setup).await;
    print_lag(&lag);

    let growth = measure_growth(setup, pending).await;

    Level {
        pending,
        memory,
        lag,
        growth,
    }
}

/// Runs rounds of growth phases on new orders offered county-wide until
/// each kind has `GROWTH_ROUNDS` quiet phases, or `MAX_GROWTH_ROUNDS`
/// rounds have run, and prints them.
async fn measure_growth(setup: &Setup, pending: usize) -> Growth {
    let probe = &setup.probe;
    let mut growth = Growth::default();
    for round in 1..=MAX_GROWTH_ROUNDS {
        if quiet_count(&growth.claim_grpc) < GROWTH_ROUNDS {
            let grpc_race = claim_race(setup, &format!("claims-{pending}-grpc-{round}")).await;
            growth.claim_grpc.push(
                measure(
                    probe,
                    &format!("gRPC ClaimWorkOrder, round {round}"),
                    claims::grpc(
                        &setup.channels,
                        &grpc_race,
                        GROWTH_CONCURRENCY,
                        PHASE_TIME_LIMIT,
                    ),
                )
                .await,
            );
        }

        if quiet_count(&growth.claim_direct) < GROWTH_ROUNDS {
            let direct_race = claim_race(setup, &format!("claims-{pending}-direct-{round}")).await;
            growth.claim_direct.push(
                measure(
                    probe,
                    &format!("RedisStore::claim, round {round}"),
                    claims::direct(
                        &setup.store,
                        &direct_race,
                        GROWTH_CONCURRENCY,
                        PHASE_TIME_LIMIT,
                    ),
                )
                .await,
            );
        }

        if quiet_count(&growth.intake) < GROWTH_ROUNDS {
            let load = Load {
                concurrency: GROWTH_CONCURRENCY,
                calls: GROWTH_REQUESTS,
                time_limit: PHASE_TIME_LIMIT,
            };
            let label = format!("intake-{pending}-{round}");
            growth.intake.push(
                measure(
                    probe,
                    &format!("gRPC SubmitRequest, round {round}"),
                    intake::grpc(&setup.channels, &setup.rows, &label, load),
                )
                .await,
            );
        }

        if growth.is_complete() {
            break;
        }
    }

    println!(
        "Growth phases: {GROWTH_CONCURRENCY} calls in flight; {GROWTH_ORDERS} orders with {} \
         claims each per claim phase; {GROWTH_REQUESTS} requests per intake phase.",
        claims::RACERS_PER_ORDER
    );
    println!();
    let phases: Vec<&Phase> = growth
        .claim_grpc
        .iter()
        .chain(&growth.claim_direct)
        .chain(&growth.intake)
        .collect();
    print_phases(&phases);
    growth
}

/// Submits `count` orders in their grid phase, numbered from `first`.
async fn load_orders(setup: &Setup, first: usize, count: usize) -> Vec<daiban_domain::OrderId> {
    let now = Utc::now();
    let timing = Timing {
        create_time: now,
        grid_phase_until: Some(now + LOADED_GRID_PHASE),
        escalate_at: now + LOADED_GRID_PHASE + chrono::Duration::minutes(30),
    };
    let directory = setup.directory.clone();
    let rows = setup.grid_rows.clone();
    submit_all(
        &setup.store,
        count,
        LOAD_CONCURRENCY,
        LOAD_TIME_LIMIT,
        move |i| {
            let number = first + i;
            let row = &rows[number % rows.len()];
            row.new_order(&directory, timing, format!("load-{number}"))
        },
    )
    .await
}

async fn measure_lag(setup: &Setup) -> Lag {
    let directory = setup.directory.clone();
    let rows = setup.grid_rows.clone();
    let label = format!("lag-{}", Utc::now().timestamp_millis());
    widening::measure_lag(&setup.store, &setup.county, move |i, widen_time| {
        let now = Utc::now();
        let timing = Timing {
            create_time: now,
            grid_phase_until: Some(widen_time),
            escalate_at: now + LOADED_GRID_PHASE,
        };
        rows[i % rows.len()].new_order(&directory, timing, format!("{label}-{i}"))
    })
    .await
}

fn print_lag(lag: &Lag) {
    println!(
        "- widening lag of {} orders due over {:?}, in ms after the deadline: \
         observed p50 {:.1}, p99 {:.1}, max {:.1}, min {:.1}; by event time p50 {:.1}, \
         p99 {:.1}, max {:.1}; early {}, missing {}",
        lag.sample,
        widening::SPREAD,
        lag.observed(50.0),
        lag.observed(99.0),
        lag.observed(100.0),
        lag.observed_min(),
        lag.event(50.0),
        lag.event(99.0),
        lag.event(100.0),
        lag.early,
        lag.missing
    );
    println!();
}

fn print_summary(levels: &[Level]) {
    println!("## Summary");
    println!();
    println!("| pending | lag p50 ms | lag p99 ms | lag max ms | early | missing | target at 1M |");
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for level in levels {
        let lag = &level.lag;
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {} | {} | p99 ≤ 100 ms, 0 early |",
            level.pending,
            lag.observed(50.0),
            lag.observed(99.0),
            lag.observed(100.0),
            lag.early,
            lag.missing
        );
    }
    println!();

    println!(
        "| pending | orders loaded | used_memory growth, bytes | bytes per order | encoded WorkOrder, bytes | ratio | target |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for level in levels {
        let memory = &level.memory;
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2}× | ≤ 2× |",
            level.pending,
            memory.loaded,
            memory.grown,
            memory.per_order(),
            memory.encoded,
            memory.ratio()
        );
    }
    println!();

    println!("| pending | claim p50 ms, gRPC | claim p50 ms, RedisStore::claim | intake p50 ms |");
    println!("|---:|---:|---:|---:|");
    for level in levels {
        let growth = &level.growth;
        let cell = |phases: &[Phase]| {
            let (p50, counted) = median_p50(phases);
            let quiet = quiet_count(phases);
            if quiet >= GROWTH_ROUNDS {
                format!("{} (median of {counted} quiet phases)", ms(p50))
            } else {
                format!(
                    "{} (median of all {counted} phases; only {quiet} quiet)",
                    ms(p50)
                )
            }
        };
        println!(
            "| {} | {} | {} | {} |",
            level.pending,
            cell(&growth.claim_grpc),
            cell(&growth.claim_direct),
            cell(&growth.intake)
        );
    }
    println!();

    let (Some(first), Some(last)) = (levels.first(), levels.last()) else {
        return;
    };
    println!(
        "| figure, median of quiet phases | at {} pending | at {} pending | growth | target |",
        first.pending, last.pending
    );
    println!("|---|---:|---:|---:|---|");
    let rows = [
        (
            "claim p50 ms, gRPC",
            &first.growth.claim_grpc,
            &last.growth.claim_grpc,
        ),
        (
            "claim p50 ms, RedisStore::claim",
            &first.growth.claim_direct,
            &last.growth.claim_direct,
        ),
        ("intake p50 ms", &first.growth.intake, &last.growth.intake),
    ];
    for (name, at_first, at_last) in rows {
        let ((a, _), (b, _)) = (median_p50(at_first), median_p50(at_last));
        println!(
            "| {name} | {} | {} | {:.2}× | ≤ 1.2× |",
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    println!();
}
