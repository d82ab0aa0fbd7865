//! The dispatcher task inside `daiban serve`: it widens orders whose grid
//! phase ended, escalates orders nobody grabbed, and settles orders whose
//! rating window passed, each once, however many replicas run it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use daiban_domain::CountyCode;
use daiban_points::Points;
use daiban_store::{Store, StoreError};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::offers::Offers;

/// Orders widened or escalated per store call.
const BATCH: usize = 200;

/// Longest sleep between rounds, so that a deadline another replica added
/// is seen soon even when this replica knows of no earlier one.
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// Pause after the store failed, before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The timing rules of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Length of the grid phase.
    pub widen_after: Duration,
    /// Time after widening until an unclaimed order escalates.
    pub escalate_after: Duration,
    /// Time after completion until an unrated order settles.
    pub rating_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            widen_after: Duration::from_secs(10 * 60),
            escalate_after: Duration::from_secs(30 * 60),
            rating_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    offers: Offers,
    points: Arc<Points>,
    counties: Vec<CountyCode>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        offers: Offers,
        points: Arc<Points>,
        counties: Vec<CountyCode>,
    ) -> Self {
        Self {
            store,
            offers,
            points,
            counties,
        }
    }

    /// Runs rounds until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        info!(counties = self.counties.len(), "dispatcher started");
        let mut failing = false;
        while !*shutdown.borrow() {
            let pause = match self.round().await {
                Ok(pause) => {
                    if failing {
                        info!("dispatcher recovered");
                        failing = false;
                    }
                    pause
                }
                Err(err) => {
                    if !failing {
                        warn!(error = %err, "dispatcher round failed; retrying every second");
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
        info!("dispatcher stopped");
    }

    /// Handles everything due now and returns how long to sleep until the
    /// next deadline, at most `MAX_SLEEP`.
    async fn round(&self) -> Result<Duration, StoreError> {
        let mut pause = MAX_SLEEP;
        for county in &self.counties {
            self.widen(county).await?;
            self.escalate(county).await?;
            self.points.settle_due(county, Utc::now()).await?;

            if let Some(next) = self.store.next_deadline(county).await? {
                let until = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                pause = pause.min(until);
            }
        }
        Ok(pause)
    }

    async fn widen(&self, county: &CountyCode) -> Result<(), StoreError> {
        loop {
            let now = Utc::now();
            let batch = self.store.widen_due(county, now, BATCH).await?;
            for order in &batch {
                let lag_ms = (now - order.widen_time).num_milliseconds();
                info!(order.id = %order.id, lag_ms, "order widened");
            }
            // TODO: an order widened here but not yet announced when the
            // process dies is never announced; the widening and the offer
            // SMS are not one step.
            let offers = self.offers.clone();
            let widened = batch.clone();
            tokio::spawn(async move {
                for order in &widened {
                    offers.widened(order).await;
                }
            });
            if batch.len() < BATCH {
                return Ok(());
            }
        }
    }

    async fn escalate(&self, county: &CountyCode) -> Result<(), StoreError> {
        loop {
            let batch = self.store.escalate_due(county, Utc::now(), BATCH).await?;
            for order in &batch {
                warn!(order.id = %order.id, "order escalated to the duty desk");
                self.offers.escalated(order).await;
            }
            if batch.len() < BATCH {
                return Ok(());
            }
        }
    }
}
