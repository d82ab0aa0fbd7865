//! The claim race: several agents grab each order at nearly the same
//! moment, through gRPC or through `RedisStore::claim` directly. The first
//! grab of an order wins and the others fail with "already claimed".

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use daiban_domain::{AgentId, Directory, GridCode, OrderId};
use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_store::{RedisStore, Store, StoreError};
use daiban_tests::{TestApp, reason, with_bearer};
use tonic::transport::Channel;

use super::load::{self, Load, LoadResult, Outcome};
use super::orders::{DemoRequest, Timing, submit_all};

/// Agents that grab each order. Consecutive calls go to the same order, so
/// the grabs of one order are in flight together.
pub const RACERS_PER_ORDER: usize = 4;

/// An agent taking part in the race, with its bearer token.
#[derive(Debug, Clone)]
pub struct Racer {
    pub id: AgentId,
    pub grid: GridCode,
    pub token: String,
}

/// Picks the first `count` active agents of the directory and mints each a
/// token that `app` accepts for an hour.
pub fn racers(app: &TestApp, directory: &Directory, count: usize) -> Vec<Racer> {
    let racers: Vec<Racer> = directory
        .agents()
        .filter(|agent| agent.active)
        .take(count)
        .map(|agent| Racer {
            id: agent.id.clone(),
            grid: agent.grid.clone(),
            token: app.token(agent.id.as_str()),
        })
        .collect();
    assert!(
        racers.len() >= RACERS_PER_ORDER,
        "the directory has {} active agents; the race needs {RACERS_PER_ORDER}",
        racers.len()
    );
    racers
}

/// Orders for agents to grab, and who grabs each.
#[derive(Debug, Clone)]
pub struct Race {
    pub orders: Arc<Vec<OrderId>>,
    pub racers: Arc<Vec<Racer>>,
}

impl Race {
    pub fn calls(&self) -> usize {
        self.orders.len() * RACERS_PER_ORDER
    }

    /// Returns the order and agent of call `number`. The racers of one order
    /// are consecutive agents of the list, so they are distinct.
    fn call(&self, number: usize) -> (&OrderId, &Racer) {
        let order = &self.orders[number / RACERS_PER_ORDER];
        let racer = &self.racers[number % self.racers.len()];
        (order, racer)
    }

    /// Splits off the first `count` orders into a race of their own.
    pub fn take(&mut self, count: usize) -> Race {
        let count = count.min(self.orders.len());
        let taken = self.orders[..count].to_vec();
        self.orders = Arc::new(self.orders[count..].to_vec());
        Race {
            orders: Arc::new(taken),
            racers: self.racers.clone(),
        }
    }
}

/// Submits `count` orders offered county-wide at once, so every racer may
/// grab them, with escalation far beyond the run.
pub async fn open_orders(
    store: &RedisStore,
    directory: &Arc<Directory>,
    rows: &Arc<Vec<DemoRequest>>,
    count: usize,
    label: &str,
) -> Vec<OrderId> {
    let now = Utc::now();
    let timing = Timing {
        create_time: now,
        grid_phase_until: None,
        escalate_at: now + ChronoDuration::days(2),
    };
    let (directory, rows, label) = (directory.clone(), rows.clone(), label.to_owned());
    submit_all(store, count, 32, Duration::from_secs(120), move |i| {
        rows[i % rows.len()].new_order(&directory, timing, format!("{label}-{i}"))
    })
    .await
}

/// Runs the race through gRPC, spreading the calls over `channels`.
pub async fn grpc(
    channels: &[Channel],
    race: &Race,
    concurrency: usize,
    time_limit: Duration,
) -> LoadResult {
    let clients: Arc<Vec<AgentServiceClient<Channel>>> = Arc::new(
        channels
            .iter()
            .cloned()
            .map(AgentServiceClient::new)
            .collect(),
    );
    let race = race.clone();
    let load = Load {
        concurrency,
        calls: race.calls(),
        time_limit,
    };
    load::run(load, move |number| {
        let (order, racer) = race.call(number);
        let request = with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.to_string(),
            },
            &racer.token,
        );
        let mut client = clients[number % clients.len()].clone();
        async move {
            match client.claim_work_order(request).await {
                Ok(_) => Outcome::Done,
                Err(status) if reason(&status) == "ORDER_ALREADY_CLAIMED" => Outcome::Lost,
                Err(status) => Outcome::Failed(format!("{}: {}", status.code(), status.message())),
            }
        }
    })
    .await
}

/// Runs the race through `RedisStore::claim`, which sends the claim script
/// to Redis and nothing else: the baseline of `grpc`.
pub async fn direct(
    store: &RedisStore,
    race: &Race,
    concurrency: usize,
    time_limit: Duration,
) -> LoadResult {
    let store = store.clone();
    let race = race.clone();
    let load = Load {
        concurrency,
        calls: race.calls(),
        time_limit,
    };
    load::run(load, move |number| {
        let (order, racer) = race.call(number);
        let (order, racer) = (order.clone(), racer.clone());
        let store = store.clone();
        async move {
            match store
                .claim(&order, &racer.id, &racer.grid, Utc::now())
                .await
            {
                Ok(_) => Outcome::Done,
                Err(StoreError::AlreadyClaimed { .. }) => Outcome::Lost,
                Err(err) => Outcome::Failed(err.to_string()),
            }
        }
    })
    .await
}
