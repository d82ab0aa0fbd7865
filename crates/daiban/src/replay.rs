//! `daiban replay`: plays a requests file against a running service through
//! gRPC, with simulated agents, and prints what happened.
//!
//! Requests are submitted on the file's own timeline, sped up by `--speed`.
//! Each new order then lives a simulated life drawn from a random generator
//! seeded by `--seed` and the order's request id, so two runs make the same
//! choices: grid agents grab some orders in the grid phase (sometimes
//! several at once, so that races happen), county agents grab most of the
//! rest after widening, a few are released, cancelled or left unclaimed,
//! and most completed orders are rated. The service's own clock decides
//! widening; `--speed` scales only the file's gaps and the agents' and
//! applicants' delays.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::DateTime;
use clap::Args;
use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::directory_service_client::DirectoryServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_server::Scope;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::client::{ClientArgs, authorized, token_signer};

#[derive(Args)]
pub struct ReplayArgs {
    /// CSV file of requests: request_id, submit_time, channel,
    /// applicant_name, applicant_phone, grid_code, address, matter_code,
    /// request_text.
    #[arg(long)]
    requests: PathBuf,
    /// How many times faster than the file's timeline to play it; 3600
    /// plays an hour of requests in a second.
    #[arg(long, default_value_t = 3600.0)]
    speed: f64,
    /// Seed of the simulated agents' and applicants' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// After the last action, wait up to this long for unrated orders to
    /// settle when the service's rating window is short, such as 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    settle_wait: Option<Duration>,
    /// Write the id of every order the service created, one per line, to
    /// this file.
    #[arg(long)]
    orders_out: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Deserialize)]
struct Row {
    request_id: String,
    submit_time: String,
    channel: String,
    applicant_name: String,
    applicant_phone: String,
    grid_code: String,
    address: String,
    matter_code: String,
    request_text: String,
}

/// What the replay did and saw. Each order created falls in exactly one of
/// claimed_in_grid_phase, claimed_after_widening, unclaimed and cancelled,
/// and in exactly one of offered_to_county_at_once, claimed_in_grid_phase,
/// widened and cancelled_in_grid_phase.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub rows: u64,
    pub submitted: u64,
    pub orders: u64,
    pub retries_absorbed: u64,
    pub rejected: u64,
    pub offered_to_grid: u64,
    pub offered_to_county_at_once: u64,
    pub unresolved_address: u64,
    pub claimed_in_grid_phase: u64,
    pub widened: u64,
    pub claimed_after_widening: u64,
    pub unclaimed: u64,
    pub cancelled: u64,
    pub cancelled_in_grid_phase: u64,
    pub lost_races: u64,
    pub released: u64,
    pub completed: u64,
    pub rated: u64,
    /// Ratings rejected because the rating window had passed.
    pub rated_too_late: u64,
    pub settled: u64,
    pub points_settled_tenths: i64,
    /// Unexpected errors by gRPC code.
    pub errors: BTreeMap<String, u64>,
}

struct Replay {
    work_orders: WorkOrderServiceClient<Channel>,
    agents_api: AgentServiceClient<Channel>,
    app_key: Option<String>,
    /// Bearer tokens of the active agents; an agent is its index here.
    tokens: Vec<String>,
    by_grid: HashMap<String, Vec<usize>>,
    matters: Vec<String>,
    speed: f64,
    summary: Mutex<Summary>,
}

pub async fn run(args: ReplayArgs) -> Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        bail!("--speed must be a number above 0, got {}", args.speed);
    }
    let rows = read_rows(&args.requests)?;
    let channel = args.client.channel().await?;
    let context = Arc::new(load_replay(&args, channel).await?);
    eprintln!(
        "replaying {} requests at {}x with {} active agents",
        rows.len(),
        args.speed,
        context.tokens.len()
    );

    let first = rows.first().map(|(time, _)| *time).unwrap_or_default();
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = JoinSet::new();
    for (time, row) in rows {
        let offset = Duration::from_secs_f64(((time - first).max(0) as f64 / 1000.0) / args.speed);
        let context = context.clone();
        let seen = seen.clone();
        let seed = args.seed ^ fnv1a(row.request_id.as_bytes());
        tasks.spawn(async move {
            sleep_until(start + offset).await;
            play(&context, &seen, row, SmallRng::seed_from_u64(seed)).await
        });
    }
    let mut order_ids = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Some(order_id) = result.context("a replay task panicked")? {
            order_ids.push(order_id);
        }
    }
    let deadline = Instant::now() + args.settle_wait.unwrap_or_default();
    let tally = loop {
        let tally = tally_final_states(&context, &order_ids).await;
        if tally.settled == tally.completed || Instant::now() >= deadline {
            break tally;
        }
        sleep(Duration::from_millis(200)).await;
    };
    context.count(|s| {
        s.completed = tally.completed;
        s.rated = tally.rated;
        s.settled = tally.settled;
        s.points_settled_tenths = tally.points_settled_tenths;
    });

    if let Some(path) = &args.orders_out {
        order_ids.sort();
        let mut text = order_ids.join("\n");
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }

    let summary = context.summary.lock().unwrap_or_else(|p| p.into_inner());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&*summary)?);
    } else {
        print_table(&summary, start.elapsed());
    }
    Ok(())
}

fn read_rows(path: &PathBuf) -> Result<Vec<(i64, Row)>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let mut rows = Vec::new();
    for (index, record) in reader.deserialize::<Row>().enumerate() {
        let line = index + 2;
        let row = record.with_context(|| format!("{} line {line}", path.display()))?;
        let time = DateTime::parse_from_rfc3339(&row.submit_time).with_context(|| {
            format!(
                "{} line {line}: submit_time {:?} is not RFC 3339",
                path.display(),
                row.submit_time
            )
        })?;
        rows.push((time.timestamp_millis(), row));
    }
    rows.sort_by_key(|(time, _)| *time);
    Ok(rows)
}

async fn load_replay(args: &ReplayArgs, channel: Channel) -> Result<Replay> {
    let mut directory = DirectoryServiceClient::new(channel.clone());
    let admin_key = args.client.key_for(Scope::Admin);
    let listed = directory
        .list_agents(authorized(
            pb::ListAgentsRequest::default(),
            admin_key.as_deref(),
        ))
        .await
        .context("failed to list agents (DirectoryService.ListAgents needs an admin key)")?
        .into_inner();

    let signer = token_signer();
    let mut tokens = Vec::new();
    let mut by_grid: HashMap<String, Vec<usize>> = HashMap::new();
    for agent in listed.agents.into_iter().filter(|a| a.active) {
        let id = daiban_domain::AgentId::parse(&agent.agent_id)
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        by_grid
            .entry(agent.grid_code)
            .or_default()
            .push(tokens.len());
        tokens.push(signer.mint(&id, Duration::from_secs(24 * 3600)));
    }
    if tokens.is_empty() {
        bail!("the service lists no active agent");
    }

    let mut work_orders = WorkOrderServiceClient::new(channel.clone());
    let app_key = args.client.key_for(Scope::App);
    let matters = work_orders
        .list_matters(authorized(pb::ListMattersRequest {}, app_key.as_deref()))
        .await
        .context("failed to list matters")?
        .into_inner()
        .matters
        .into_iter()
        .map(|m| m.code)
        .collect();

    Ok(Replay {
        work_orders,
        agents_api: AgentServiceClient::new(channel),
        app_key,
        tokens,
        by_grid,
        matters,
        speed: args.speed,
        summary: Mutex::new(Summary::default()),
    })
}

impl Replay {
    fn count(&self, update: impl FnOnce(&mut Summary)) {
        update(&mut self.summary.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn error(&self, status: &Status) {
        let code = format!("{:?}", status.code());
        if self
            .summary
            .lock()
            .map(|s| !s.errors.contains_key(&code))
            .unwrap_or(false)
        {
            eprintln!("unexpected error {code}: {}", status.message());
        }
        self.count(|s| *s.errors.entry(code).or_default() += 1);
    }

    /// A simulated delay: `minutes` of the file's time, sped up.
    fn simulated(&self, minutes: f64) -> Duration {
        Duration::from_secs_f64(minutes * 60.0 / self.speed)
    }

    fn app<T>(&self, message: T) -> tonic::Request<T> {
        authorized(message, self.app_key.as_deref())
    }
}

/// Submits one row and, for a new order, plays its life. Returns the id of
/// a newly created order.
async fn play(
    context: &Replay,
    seen: &Mutex<HashSet<String>>,
    row: Row,
    mut rng: SmallRng,
) -> Option<String> {
    context.count(|s| s.rows += 1);
    let order = submit(context, row).await?;
    let new = seen
        .lock()
        .map(|mut seen| seen.insert(order.order_id.clone()))
        .unwrap_or(false);
    if !new {
        context.count(|s| s.retries_absorbed += 1);
        return None;
    }
    let at_once = order.widen_time == order.create_time;
    context.count(|s| {
        s.orders += 1;
        if at_once {
            s.offered_to_county_at_once += 1;
        } else {
            s.offered_to_grid += 1;
        }
        if !order.grid_resolved {
            s.unresolved_address += 1;
        }
    });
    let order_id = order.order_id.clone();
    live(context, order, &mut rng).await;
    Some(order_id)
}

async fn submit(context: &Replay, row: Row) -> Option<pb::WorkOrder> {
    let channel = match row.channel.as_str() {
        "WEB_HALL" => pb::Channel::WebHall,
        "GOV_APP" => pb::Channel::GovApp,
        "WECHAT" => pb::Channel::Wechat,
        _ => pb::Channel::Unspecified,
    };
    let request = pb::SubmitRequestRequest {
        request_text: row.request_text,
        matter_code: row.matter_code,
        applicant: Some(pb::Applicant {
            name: row.applicant_name,
            phone: row.applicant_phone,
        }),
        grid_code: row.grid_code,
        address: row.address,
        channel: channel as i32,
        request_id: row.request_id,
        county_code: String::new(),
    };
    let mut client = context.work_orders.clone();
    for attempt in 0..5 {
        context.count(|s| s.submitted += 1);
        match client.submit_request(context.app(request.clone())).await {
            Ok(response) => return Some(response.into_inner()),
            Err(status)
                if matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
                    && attempt < 4 =>
            {
                sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(status) if status.code() == Code::InvalidArgument => {
                eprintln!(
                    "request {} rejected: {}",
                    request.request_id,
                    status.message()
                );
                context.count(|s| s.rejected += 1);
                return None;
            }
            Err(status) => {
                context.error(&status);
                return None;
            }
        }
    }
    None
}

/// Plays a new order's life: grab, maybe release, complete, maybe rate.
async fn live(context: &Replay, order: pb::WorkOrder, rng: &mut SmallRng) {
    let phase = timestamp_ms(&order.widen_time) - timestamp_ms(&order.create_time);
    let phase = Duration::from_millis(phase.max(0) as u64);
    let grid_agents = context
        .by_grid
        .get(&order.grid_code)
        .cloned()
        .unwrap_or_default();

    if rng.random_bool(0.01) {
        sleep(phase.mul_f64(rng.random_range(0.0..0.5))).await;
        let request = pb::CancelWorkOrderRequest {
            order_id: order.order_id.clone(),
            reason: "申请人已自行办理".into(),
        };
        let cancelled = retried(|| {
            let mut client = context.work_orders.clone();
            let request = context.app(request.clone());
            async move { client.cancel_work_order(request).await }
        })
        .await;
        match cancelled {
            Ok(cancelled) => context.count(|s| {
                s.cancelled += 1;
                match (phase.is_zero(), cancelled.get_ref().widened) {
                    (true, _) => {}
                    (false, true) => s.widened += 1,
                    (false, false) => s.cancelled_in_grid_phase += 1,
                }
            }),
            Err(status) => context.error(&status),
        }
        return;
    }

    let mut holder = None;
    if !phase.is_zero() && !grid_agents.is_empty() && rng.random_bool(0.7) {
        sleep(phase.mul_f64(rng.random_range(0.05..0.6))).await;
        let count = rng.random_range(1..=3);
        let racers = pick(rng, &grid_agents, count);
        holder = race(context, &order.order_id, &racers).await;
    }
    if holder.is_none() && !phase.is_zero() {
        if !wait_widened(context, &order.order_id, phase).await {
            return;
        }
        context.count(|s| s.widened += 1);
    } else if holder.is_some_and(|(_, widened)| widened) {
        // The grid agent's grab came after the dispatcher widened the order.
        context.count(|s| s.widened += 1);
    }
    if holder.is_none() {
        if !rng.random_bool(0.93) {
            context.count(|s| s.unclaimed += 1);
            return;
        }
        let pause = phase
            .max(Duration::from_millis(100))
            .mul_f64(rng.random_range(0.0..0.3));
        sleep(pause).await;
        let everyone: Vec<usize> = (0..context.tokens.len()).collect();
        let count = rng.random_range(1..=3);
        let racers = pick(rng, &everyone, count);
        holder = race(context, &order.order_id, &racers).await;
    }
    let Some((mut agent, widened)) = holder else {
        context.count(|s| s.unclaimed += 1);
        return;
    };
    context.count(|s| {
        if widened {
            s.claimed_after_widening += 1;
        } else {
            s.claimed_in_grid_phase += 1;
        }
    });

    if rng.random_bool(0.03) {
        sleep(context.simulated(rng.random_range(5.0..60.0))).await;
        let request = pb::ReleaseWorkOrderRequest {
            order_id: order.order_id.clone(),
            reason: "临时有事，无法办理".into(),
        };
        let released = retried(|| {
            let mut client = context.agents_api.clone();
            let request = agent_request(context, agent, request.clone());
            async move { client.release_work_order(request).await }
        })
        .await;
        if let Err(status) = released {
            context.error(&status);
            return;
        }
        context.count(|s| s.released += 1);
        let others: Vec<usize> = (0..context.tokens.len()).filter(|&a| a != agent).collect();
        let racers = pick(rng, &others, 1);
        match race(context, &order.order_id, &racers).await {
            Some((next, _)) => agent = next,
            None => return,
        }
    }

    sleep(context.simulated(rng.random_range(30.0..360.0))).await;
    let matter_code = if order.matter.is_none() {
        context.matters[rng.random_range(0..context.matters.len())].clone()
    } else {
        String::new()
    };
    let request = pb::CompleteWorkOrderRequest {
        order_id: order.order_id.clone(),
        result_text: "已办结，材料已交申请人".into(),
        result_reference: String::new(),
        matter_code,
    };
    let completed = retried(|| {
        let mut client = context.agents_api.clone();
        let request = agent_request(context, agent, request.clone());
        async move { client.complete_work_order(request).await }
    })
    .await;
    if let Err(status) = completed {
        context.error(&status);
        return;
    }

    if rng.random_bool(0.85) {
        sleep(context.simulated(rng.random_range(10.0..2880.0))).await;
        let rating = match rng.random_range(0..100) {
            0..50 => pb::Rating::VerySatisfied,
            50..80 => pb::Rating::Satisfied,
            80..92 => pb::Rating::Average,
            _ => pb::Rating::Unsatisfied,
        };
        let request = pb::RateWorkOrderRequest {
            order_id: order.order_id,
            rating: rating as i32,
            comment: String::new(),
        };
        let rated = retried(|| {
            let mut client = context.work_orders.clone();
            let request = context.app(request.clone());
            async move { client.rate_work_order(request).await }
        })
        .await;
        match rated {
            Ok(_) => {}
            // The service's rating window passed first and settled the
            // order unrated.
            Err(status) if status.code() == Code::FailedPrecondition => {
                context.count(|s| s.rated_too_late += 1)
            }
            Err(status) => context.error(&status),
        }
    }
}

/// Several agents grab the order at once; returns the winner and whether
/// the order had been widened when it won.
async fn race(context: &Replay, order_id: &str, racers: &[usize]) -> Option<(usize, bool)> {
    let mut claims = JoinSet::new();
    for &agent in racers {
        let client = context.agents_api.clone();
        let token = context.tokens[agent].clone();
        let order_id = order_id.to_owned();
        claims.spawn(async move {
            let claimed = retried(|| {
                let mut client = client.clone();
                let message = pb::ClaimWorkOrderRequest {
                    order_id: order_id.clone(),
                };
                let request = authorized(message, Some(&token));
                async move { client.claim_work_order(request).await }
            })
            .await;
            (agent, claimed)
        });
    }
    let mut winner = None;
    while let Some(joined) = claims.join_next().await {
        let Ok((agent, result)) = joined else {
            continue;
        };
        match result {
            Ok(order) => winner = Some((agent, order.into_inner().widened)),
            Err(status) if status.code() == Code::FailedPrecondition => {
                context.count(|s| s.lost_races += 1)
            }
            Err(status) => context.error(&status),
        }
    }
    winner
}

/// Polls until the order leaves its grid phase; false when it did not
/// within the phase and a minute.
async fn wait_widened(context: &Replay, order_id: &str, phase: Duration) -> bool {
    let deadline = Instant::now() + phase + Duration::from_secs(60);
    // Polling every order faster than this would load the service more
    // than the simulated agents' real work does.
    let interval = (phase / 5).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let client = context.work_orders.clone();
    while Instant::now() < deadline {
        let request = pb::GetWorkOrderRequest {
            order_id: order_id.to_owned(),
        };
        let read = retried(|| {
            let mut client = client.clone();
            let request = context.app(request.clone());
            async move { client.get_work_order(request).await }
        })
        .await;
        match read {
            Ok(order) if order.get_ref().widened => return true,
            Ok(_) => {}
            Err(status) => {
                context.error(&status);
                return false;
            }
        }
        sleep(interval).await;
    }
    context.error(&Status::deadline_exceeded(format!(
        "order {order_id} was not widened in time"
    )));
    false
}

/// Counts read from the orders' final states.
#[derive(Default)]
struct Tally {
    completed: u64,
    rated: u64,
    settled: u64,
    points_settled_tenths: i64,
}

async fn tally_final_states(context: &Replay, order_ids: &[String]) -> Tally {
    let mut tally = Tally::default();
    let client = context.work_orders.clone();
    for order_id in order_ids {
        let request = pb::GetWorkOrderRequest {
            order_id: order_id.clone(),
        };
        let read = retried(|| {
            let mut client = client.clone();
            let request = context.app(request.clone());
            async move { client.get_work_order(request).await }
        })
        .await;
        let order = match read {
            Ok(order) => order.into_inner(),
            Err(status) => {
                context.error(&status);
                continue;
            }
        };
        let state = pb::WorkOrderState::try_from(order.state).unwrap_or_default();
        if matches!(
            state,
            pb::WorkOrderState::Completed | pb::WorkOrderState::Settled
        ) {
            tally.completed += 1;
        }
        if order.rating != pb::Rating::Unspecified as i32 {
            tally.rated += 1;
        }
        if state == pb::WorkOrderState::Settled {
            tally.settled += 1;
            tally.points_settled_tenths += i64::from(order.points_tenths);
        }
    }
    tally
}

/// Calls again after UNAVAILABLE or RESOURCE_EXHAUSTED, as a real client
/// would: up to four more times, pausing 100 ms and doubling the pause each
/// time, or as long as the service's retry delay says when longer.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut pause = Duration::from_millis(100);
    for _ in 0..4 {
        match call().await {
            Err(status) if matches!(status.code(), Code::Unavailable | Code::ResourceExhausted) => {
                let asked = status
                    .get_error_details()
                    .retry_info()
                    .and_then(|info| info.retry_delay)
                    .unwrap_or_default();
                sleep(pause.max(asked)).await;
                pause *= 2;
            }
            other => return other,
        }
    }
    call().await
}

fn agent_request<T>(context: &Replay, agent: usize, message: T) -> tonic::Request<T> {
    authorized(message, Some(&context.tokens[agent]))
}

fn pick(rng: &mut SmallRng, from: &[usize], count: usize) -> Vec<usize> {
    let mut chosen = Vec::new();
    while chosen.len() < count.min(from.len()) {
        let candidate = from[rng.random_range(0..from.len())];
        if !chosen.contains(&candidate) {
            chosen.push(candidate);
        }
    }
    chosen
}

fn timestamp_ms(time: &Option<prost_types::Timestamp>) -> i64 {
    time.as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// FNV-1a, so each order's choices depend on its request id and not on the
/// order tasks happen to run in.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn print_table(summary: &Summary, elapsed: Duration) {
    let rows = [
        ("rows read", summary.rows.to_string()),
        ("submit calls", summary.submitted.to_string()),
        ("orders created", summary.orders.to_string()),
        ("retries absorbed", summary.retries_absorbed.to_string()),
        ("rejected", summary.rejected.to_string()),
        ("offered to grid first", summary.offered_to_grid.to_string()),
        (
            "offered to county at once",
            summary.offered_to_county_at_once.to_string(),
        ),
        (
            "  of which unresolved address",
            summary.unresolved_address.to_string(),
        ),
        (
            "claimed in grid phase",
            summary.claimed_in_grid_phase.to_string(),
        ),
        ("widened", summary.widened.to_string()),
        (
            "claimed after widening",
            summary.claimed_after_widening.to_string(),
        ),
        ("unclaimed", summary.unclaimed.to_string()),
        ("cancelled", summary.cancelled.to_string()),
        (
            "  of which in grid phase",
            summary.cancelled_in_grid_phase.to_string(),
        ),
        ("grabs lost in races", summary.lost_races.to_string()),
        ("released", summary.released.to_string()),
        ("completed", summary.completed.to_string()),
        ("rated", summary.rated.to_string()),
        ("rated after the window", summary.rated_too_late.to_string()),
        ("points settled (orders)", summary.settled.to_string()),
        (
            "points settled",
            format!(
                "{}.{}",
                summary.points_settled_tenths / 10,
                summary.points_settled_tenths % 10
            ),
        ),
    ];
    for (label, value) in rows {
        println!("{label:<32}{value:>10}");
    }
    for (code, count) in &summary.errors {
        println!("{:<32}{count:>10}", format!("errors {code}"));
    }
    println!(
        "{:<32}{:>10}",
        "elapsed",
        humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64)).to_string()
    );
}
