//! The settlement consumer: a task in every `daiban serve` process that
//! reads the county's event log through the store's settlement group and
//! settles each rated order.
//!
//! An event is acknowledged only after it was handled, so when a process
//! dies holding events, another consumer takes them over once they have
//! been idle for the claim delay. Settling is idempotent per order, so an
//! event handled twice settles nothing twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use daiban_domain::CountyCode;
use daiban_store::{Delivery, EventKind, Store, StoreError};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Events handed per store call.
const BATCH: usize = 200;

/// Pause between polls when the log has nothing new, which bounds how
/// long a rated order waits for its settlement.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Pause after the store failed, before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How long an event may stay unacknowledged with one consumer before
/// another takes it over. A live consumer handles a batch in milliseconds,
/// so an event idle this long belongs to a dead or stuck process.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(10);

pub struct SettlementConsumer {
    store: Arc<dyn Store>,
    counties: Vec<CountyCode>,
    name: String,
    claim_idle: Duration,
}

impl SettlementConsumer {
    /// Builds a consumer called `name`, which must differ between the
    /// processes that share a store.
    pub fn new(store: Arc<dyn Store>, counties: Vec<CountyCode>, name: String) -> Self {
        Self {
            store,
            counties,
            name,
            claim_idle: DEFAULT_CLAIM_IDLE,
        }
    }

    /// Sets how long an event stays with another consumer before this one
    /// takes it over.
    pub fn with_claim_idle(mut self, claim_idle: Duration) -> Self {
        self.claim_idle = claim_idle;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        info!(consumer = %self.name, counties = self.counties.len(), "settlement consumer started");
        let mut failing = false;
        while !*shutdown.borrow() {
            let pause = match self.poll(Utc::now()).await {
                Ok(handled) => {
                    if failing {
                        info!(consumer = %self.name, "settlement consumer recovered");
                        failing = false;
                    }
                    if handled == 0 {
                        IDLE_POLL
                    } else {
                        Duration::ZERO
                    }
                }
                Err(err) => {
                    if !failing {
                        warn!(
                            consumer = %self.name,
                            error = %err,
                            "settlement consumer failed; retrying every second"
                        );
                        failing = true;
                    }
                    RETRY_PAUSE
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        info!(consumer = %self.name, "settlement consumer stopped");
    }

    /// Takes one batch of events of each county, settles the rated orders
    /// among them as of `now`, and acknowledges what it handled. Returns
    /// the number of events handled.
    pub async fn poll(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut handled = 0;
        for county in &self.counties {
            let deliveries = self
                .store
                .deliver_events(county, &self.name, self.claim_idle, BATCH)
                .await?;
            handled += self.handle_batch(county, deliveries, now).await?;
        }
        Ok(handled)
    }

    /// Handles `deliveries` in order and acknowledges those handled, also
    /// when the store fails part-way; the rest stay pending for a retry.
    async fn handle_batch(
        &self,
        county: &CountyCode,
        deliveries: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut done = Vec::with_capacity(deliveries.len());
        let mut failure = None;
        for delivery in deliveries {
            match self.handle(&delivery, now).await {
                Ok(()) => done.push(delivery.id),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        self.store.acknowledge_events(county, &done).await?;
        match failure {
            Some(err) => Err(err),
            None => Ok(done.len()),
        }
    }

    /// Settles the order of a `rated` event; other events need nothing.
    /// Fails only when the store is unavailable, so the event is retried.
    async fn handle(&self, delivery: &Delivery, now: DateTime<Utc>) -> Result<(), StoreError> {
        let event = &delivery.event;
        if event.kind != EventKind::Rated {
            return Ok(());
        }
        match self.store.settle_rated(&event.order, now).await {
            Ok(Some(settlement)) => {
                info!(
                    order.id = %settlement.order,
                    agent.id = %settlement.agent,
                    points.tenths = settlement.points_tenths,
                    month = %settlement.period.month,
                    "order settled"
                );
                Ok(())
            }
            Ok(None) => {
                debug!(order.id = %event.order, "rated order was settled already");
                Ok(())
            }
            Err(err @ StoreError::Unavailable(_)) => Err(err),
            // Retrying cannot fix these, so the event is acknowledged; a
            // completed order still settles when its rating window ends.
            Err(err) => {
                error!(
                    order.id = %event.order,
                    event.id = %delivery.id,
                    error = %err,
                    "rated event could not be settled; skipped"
                );
                Ok(())
            }
        }
    }
}

/// Returns a consumer name unique to this process on this host: the host
/// name and the process id.
pub fn process_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "daiban".to_owned());
    format!("{host}-{}", std::process::id())
}
