//! Points: settling orders from the event log and when their rating
//! window passes, agents' monthly reports, quarterly bonus statements
//! with quarter closes, the inactive list and the ranking by completed
//! orders. Points are integers in tenths and money integers in fen.

mod activity;
mod consumer;
mod statement;
pub mod statement_file;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use daiban_domain::{AgentId, BonusRate, CountyCode, Directory, Quarter};
use daiban_store::{MonthTotals, QuarterClosing, Settlement, Store, StoreError};
use tracing::{error, info};

pub use activity::{ActivityPeriod, InactiveAgent, RankedAgent};
pub use consumer::{DEFAULT_CLAIM_IDLE, SettlementConsumer, process_consumer_name};
pub use statement::{Statement, StatementTotals};

/// Orders settled per store call.
const SETTLE_BATCH: usize = 500;

/// An agent's points in one month, with the bonus they pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthReport {
    pub totals: MonthTotals,
    pub bonus_fen: i64,
}

/// Why a quarter could not be closed or its statement built.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error("quarter {quarter} ends at {end}, so it cannot be closed before then")]
    QuarterNotEnded {
        quarter: Quarter,
        end: DateTime<Utc>,
    },
    #[error("quarter {quarter} was closed already at {close_time}")]
    AlreadyClosed {
        quarter: Quarter,
        close_time: DateTime<Utc>,
    },
    #[error(
        "the agents' totals of quarter {quarter} ({agents} tenths) differ from the county's ({county} tenths)"
    )]
    Inconsistent {
        quarter: Quarter,
        agents: i64,
        county: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Points {
    store: Arc<dyn Store>,
    rate: BonusRate,
}

impl Points {
    pub fn new(store: Arc<dyn Store>, rate: BonusRate) -> Self {
        Self { store, rate }
    }

    pub fn rate(&self) -> BonusRate {
        self.rate
    }

    /// Settles every order of `county` whose rating window ended by `now`
    /// and that is not settled yet, in batches: unrated ones at base
    /// points, rated ones whose event was never handled at their rating.
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
                    rated = settlement.rating.is_some(),
                    "order settled at the end of its rating window"
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

    /// Closes `quarter` of `county` at `now` and freezes its statement
    /// with the directory's names and the configured rate.
    ///
    /// Fails with `QuarterNotEnded` before the quarter's last day is over
    /// in UTC+8, and with `AlreadyClosed` for a closed quarter.
    pub async fn close_quarter(
        &self,
        directory: &Directory,
        county: &CountyCode,
        quarter: Quarter,
        now: DateTime<Utc>,
    ) -> Result<Statement, PointsError> {
        if now < quarter.end() {
            return Err(PointsError::QuarterNotEnded {
                quarter,
                end: quarter.end(),
            });
        }
        let close_time = match self.store.close_quarter(county, quarter, now).await? {
            QuarterClosing::Closed(close_time) => close_time,
            QuarterClosing::AlreadyClosed(close_time) => {
                return Err(PointsError::AlreadyClosed {
                    quarter,
                    close_time,
                });
            }
        };
        let statement = self.freeze(directory, county, quarter, close_time).await?;
        let totals = statement.totals();
        info!(
            county = %county,
            quarter = %quarter,
            agents = totals.agents,
            points.tenths = totals.tally.points_tenths,
            bonus.fen = totals.bonus_fen,
            "quarter closed"
        );
        Ok(statement)
    }

    /// The statement of `quarter`: frozen once the quarter is closed, so
    /// every later call returns the same, and built from the current
    /// totals while it is open.
    pub async fn statement(
        &self,
        directory: &Directory,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<Statement, PointsError> {
        match self.store.quarter_close(county, quarter).await? {
            Some(close) => match close.statement {
                Some(frozen) => Ok(Statement::frozen(county.clone(), quarter, frozen)),
                // The closing process died before it froze the statement.
                // The totals are final since the close, so freezing them
                // now gives what it would have frozen, unless the
                // directory or the rate changed in between.
                None => {
                    self.freeze(directory, county, quarter, close.close_time)
                        .await
                }
            },
            None => self.build(directory, county, quarter).await,
        }
    }

    /// Builds the statement from the quarter's totals and stores it as the
    /// frozen one, unless another process froze one first.
    async fn freeze(
        &self,
        directory: &Directory,
        county: &CountyCode,
        quarter: Quarter,
        close_time: DateTime<Utc>,
    ) -> Result<Statement, PointsError> {
        let built = self.build(directory, county, quarter).await?;
        let frozen = self
            .store
            .freeze_statement(county, quarter, &built.to_frozen(close_time))
            .await?;
        Ok(Statement::frozen(county.clone(), quarter, frozen))
    }

    /// Builds the statement from the quarter's totals, and checks the
    /// agents' totals against the county's, which the store keeps apart.
    async fn build(
        &self,
        directory: &Directory,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<Statement, PointsError> {
        let totals = self.store.quarter_totals(county, quarter).await?;
        let statement = Statement {
            county: county.clone(),
            quarter,
            close_time: None,
            fen_per_point: self.rate.fen_per_point(),
            lines: statement::build_lines(directory, county, &totals, self.rate),
        };
        let summed = statement.totals().tally;
        if summed != totals.county {
            let err = PointsError::Inconsistent {
                quarter,
                agents: summed.points_tenths,
                county: totals.county.points_tenths,
            };
            error!(county = %county, error = %err, "ledger totals disagree");
            return Err(err);
        }
        Ok(statement)
    }

    /// The county's agents in `directory` without a completed order in
    /// `year`, by id; agents who joined later are left out and those who
    /// joined during the year are marked.
    pub async fn inactive_agents(
        &self,
        directory: &Directory,
        county: &CountyCode,
        year: i32,
    ) -> Result<Vec<InactiveAgent>, StoreError> {
        let completed: HashSet<AgentId> = self
            .store
            .completed_orders(county, &ActivityPeriod::Year(year).to_string())
            .await?
            .into_iter()
            .map(|(agent, _)| agent)
            .collect();
        let agents = directory
            .agents()
            .filter(|agent| &agent.grid.county() == county);
        Ok(activity::inactive(agents, &completed, year))
    }

    /// The county's agents with completed orders in `period`, most first,
    /// ties by agent id.
    pub async fn ranking(
        &self,
        directory: &Directory,
        county: &CountyCode,
        period: ActivityPeriod,
    ) -> Result<Vec<RankedAgent>, StoreError> {
        let counts = self
            .store
            .completed_orders(county, &period.to_string())
            .await?;
        Ok(activity::rank(counts, |id| directory.agent(id).cloned()))
    }
}
