//! The points ledger: settlement driven by the county's event log, the
//! entries and running totals it keeps, quarter closes and frozen bonus
//! statements.
//!
//! [`Ledger`] is a supertrait of `Store`, so every store keeps a ledger and
//! `dyn Store` offers both. **A settlement is idempotent per order**: the
//! store books at most one ledger entry for an order, however often it is
//! asked, so an event handled twice settles nothing twice.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{AgentId, CountyCode, MatterClass, OrderId, Period, Quarter, Rating};
use serde::{Deserialize, Serialize};

use crate::{Event, MonthTotals, Settlement, StoreError};

/// The consumer group of the event log that settles points.
pub const SETTLEMENT_GROUP: &str = "points";

/// An event handed to one consumer of the settlement group. It stays
/// pending, and another consumer may take it over, until acknowledged by
/// its `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's id in the log, such as `1790000000000-0` in Redis.
    pub id: String,
    pub event: Event,
}

/// Settled orders and points of some agents, or of a whole county, over a
/// period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub class1_orders: i64,
    pub class2_orders: i64,
    /// Orders rated very satisfied or satisfied.
    pub satisfied: i64,
    pub unsatisfied: i64,
    pub points_tenths: i64,
}

impl Tally {
    /// Adds one settlement.
    pub fn count(&mut self, class: MatterClass, rating: Option<Rating>, points_tenths: i32) {
        match class {
            MatterClass::One => self.class1_orders += 1,
            MatterClass::Two => self.class2_orders += 1,
        }
        match rating {
            Some(rating) if rating.is_satisfied() => self.satisfied += 1,
            Some(Rating::Unsatisfied) => self.unsatisfied += 1,
            _ => {}
        }
        self.points_tenths += i64::from(points_tenths);
    }

    /// Adds another tally, such as the next month's.
    pub fn add(&mut self, other: &Tally) {
        self.class1_orders += other.class1_orders;
        self.class2_orders += other.class2_orders;
        self.satisfied += other.satisfied;
        self.unsatisfied += other.unsatisfied;
        self.points_tenths += other.points_tenths;
    }

    pub fn of_month(totals: &MonthTotals) -> Self {
        Self {
            class1_orders: totals.class1_orders,
            class2_orders: totals.class2_orders,
            satisfied: totals.satisfied,
            unsatisfied: totals.unsatisfied,
            points_tenths: totals.points_tenths,
        }
    }

    pub fn orders(&self) -> i64 {
        self.class1_orders + self.class2_orders
    }
}

/// A county's settlements booked in one quarter, read in one consistent
/// step: per agent from the agents' month totals, and for the county from
/// its own month totals, which the store keeps separately.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarterTotals {
    /// Agents with at least one settlement in the quarter, by id.
    pub agents: Vec<(AgentId, Tally)>,
    pub county: Tally,
}

/// The result of `Ledger::close_quarter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarterClosing {
    /// The call closed the quarter at this time.
    Closed(DateTime<Utc>),
    /// The quarter had been closed before, at this time; nothing changed.
    AlreadyClosed(DateTime<Utc>),
}

/// A closed quarter: when it closed and, once frozen, its statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarterClose {
    pub close_time: DateTime<Utc>,
    /// `None` between the close and the freezing of the statement, which
    /// are two steps.
    pub statement: Option<FrozenStatement>,
}

/// A closed quarter's bonus statement as it was frozen: the totals, the
/// directory's names and the bonus rate at that moment. It never changes
/// afterwards, so every export of it is the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenStatement {
    pub close_time: DateTime<Utc>,
    pub fen_per_point: i64,
    pub lines: Vec<StatementLine>,
}

/// One agent's line of a bonus statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub agent_id: String,
    pub name: String,
    pub grid_code: String,
    pub grid_name: String,
    pub township_code: String,
    pub township_name: String,
    /// `AgentRole::as_str`, such as `grid_worker`.
    pub role: String,
    pub class1_orders: i64,
    pub class2_orders: i64,
    pub satisfied: i64,
    pub unsatisfied: i64,
    pub points_tenths: i64,
    pub bonus_fen: i64,
}

/// The points ledger of one or more counties.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Hands up to `limit` events of the county's log to `consumer` of the
    /// settlement group: first those another consumer (or this one) took
    /// and has not acknowledged for at least `claim_idle`, then those no
    /// consumer has taken yet, oldest first. Creates the group on first
    /// use, starting at the beginning of the log.
    async fn deliver_events(
        &self,
        county: &CountyCode,
        consumer: &str,
        claim_idle: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Acknowledges deliveries by id, so no consumer takes them again.
    async fn acknowledge_events(
        &self,
        county: &CountyCode,
        ids: &[String],
    ) -> Result<(), StoreError>;

    /// Settles a completed and rated order at its rating, as of its rating
    /// time, and returns the ledger entry. Returns `None` when the order
    /// is settled already, so a second call for an order books nothing.
    /// The entry lands in the period of the rating time or, when that
    /// quarter is closed, in the first month of the next open quarter;
    /// `now` bounds how far ahead that search goes.
    ///
    /// Fails with `StateConflict` when the order is not completed, or has
    /// no rating.
    async fn settle_rated(
        &self,
        id: &OrderId,
        now: DateTime<Utc>,
    ) -> Result<Option<Settlement>, StoreError>;

    /// The county's ledger entries, oldest first. It reads the whole
    /// ledger, so it suits audits and tests rather than request paths.
    async fn ledger(&self, county: &CountyCode) -> Result<Vec<Settlement>, StoreError>;

    /// The county's totals by month, newest first, kept as entries are
    /// booked.
    async fn county_points(&self, county: &CountyCode) -> Result<Vec<MonthTotals>, StoreError>;

    /// The settlements booked in `quarter`'s three months.
    async fn quarter_totals(
        &self,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<QuarterTotals, StoreError>;

    /// Closes `quarter` at `now`: from then on no settlement lands in it.
    async fn close_quarter(
        &self,
        county: &CountyCode,
        quarter: Quarter,
        now: DateTime<Utc>,
    ) -> Result<QuarterClosing, StoreError>;

    /// The close of `quarter`, or `None` while it is open.
    async fn quarter_close(
        &self,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<Option<QuarterClose>, StoreError>;

    /// Stores `statement` as the frozen statement of the closed `quarter`,
    /// unless one is stored already, and returns the one stored: the first
    /// freeze wins. Fails with `Corrupt` when the quarter is not closed.
    async fn freeze_statement(
        &self,
        county: &CountyCode,
        quarter: Quarter,
        statement: &FrozenStatement,
    ) -> Result<FrozenStatement, StoreError>;

    /// The county's agents with their completed orders in `period`, a year
    /// (`2026`) or a quarter (`2026Q3`) by completion time in UTC+8, most
    /// first and then by agent id. Agents without a completion are absent.
    async fn completed_orders(
        &self,
        county: &CountyCode,
        period: &str,
    ) -> Result<Vec<(AgentId, u64)>, StoreError>;
}

/// The periods a settlement made at `settle_time` may be booked in, in the
/// order to try them: its own, then the first month of each later quarter
/// up to the one after `now`'s. The first whose quarter is open wins.
pub(crate) fn booking_periods(settle_time: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Period> {
    let mut periods = vec![Period::of(settle_time)];
    let last = Quarter::of(now.max(settle_time)).next();
    let mut quarter = Quarter::of(settle_time);
    while quarter < last {
        quarter = quarter.next();
        periods.push(quarter.first_period());
    }
    periods
}

/// The periods a year or quarter of `completed_orders` counts under: the
/// completion's year and quarter in UTC+8.
pub(crate) fn completion_periods(time: DateTime<Utc>) -> [String; 2] {
    let period = Period::of(time);
    [period.year().to_owned(), period.quarter]
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn booking_periods_run_to_the_quarter_after_now() {
        // 30 September 23:30 in UTC+8.
        let settle_time = Utc.with_ymd_and_hms(2026, 9, 30, 15, 30, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 10, 2, 1, 0, 0).unwrap();
        let periods: Vec<(String, String)> = booking_periods(settle_time, now)
            .into_iter()
            .map(|p| (p.month, p.quarter))
            .collect();
        let expected = [
            ("2026-09", "2026Q3"),
            ("2026-10", "2026Q4"),
            ("2027-01", "2027Q1"),
        ]
        .map(|(m, q)| (m.to_owned(), q.to_owned()));
        assert_eq!(periods, expected);
    }

    #[test]
    fn tally_counts_ratings() {
        let mut tally = Tally::default();
        tally.count(MatterClass::One, Some(Rating::VerySatisfied), 25);
        tally.count(MatterClass::Two, Some(Rating::Unsatisfied), 0);
        tally.count(MatterClass::Two, None, 20);
        tally.count(MatterClass::One, Some(Rating::Average), 15);
        let expected = Tally {
            class1_orders: 2,
            class2_orders: 2,
            satisfied: 1,
            unsatisfied: 1,
            points_tenths: 60,
        };
        assert_eq!(tally, expected);
        assert_eq!(tally.orders(), 4);
    }
}
