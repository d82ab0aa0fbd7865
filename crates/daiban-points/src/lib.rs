//! Points: settling orders whose rating window passed, and reporting an
//! agent's points and bonus by month.
//!
//! Ratings settle inside `Store::rate`; this crate settles the orders that
//! were never rated and turns the store's month totals into money.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use daiban_domain::{AgentId, BonusRate, CountyCode};
use daiban_store::{MonthTotals, Settlement, Store, StoreError};
use tracing::info;

/// Orders settled per store call.
const SETTLE_BATCH: usize = 500;

/// An agent's points in one month, with the bonus they pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthReport {
    pub totals: MonthTotals,
    pub bonus_fen: i64,
}

pub struct Points {
    store: Arc<dyn Store>,
    rate: BonusRate,
}

impl Points {
    pub fn new(store: Arc<dyn Store>, rate: BonusRate) -> Self {
        Self { store, rate }
    }

    /// Settles at base points every order of `county` whose rating window
    /// ended by `now` without a rating, in batches.
    pub async fn settle_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
    ) -> Result<Vec<Settlement>, StoreError> {
        let mut settled = Vec::new();
        loop {
            let batch = self.store.settle_due(county, now, SETTLE_BATCH).await?;
            for settlement in &batch {
                info!(
                    order.id = %settlement.order,
                    agent.id = %settlement.agent,
                    points.tenths = settlement.points_tenths,
                    month = %settlement.period.month,
                    "order settled unrated"
                );
            }
            let done = batch.len() < SETTLE_BATCH;
            settled.extend(batch);
            if done {
                return Ok(settled);
            }
        }
    }

    /// An agent's settled points by month, newest first, with the bonus at
    /// the configured rate.
    pub async fn agent_report(
        &self,
        county: &CountyCode,
        agent: &AgentId,
    ) -> Result<Vec<MonthReport>, StoreError> {
        let months = self.store.agent_points(county, agent).await?;
        Ok(months
            .into_iter()
            .map(|totals| MonthReport {
                bonus_fen: self.rate.bonus_fen(totals.points_tenths),
                totals,
            })
            .collect())
    }
}
