//! Counts and indices that the operator console reads: orders by state,
//! the open orders, daily statistics, order searches, one order's changes
//! and the console's session secret.
//!
//! The Redis store keeps the counts and indices up to date inside the
//! scripts that change orders, so no query reads every order of a county.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use daiban_domain::{AgentId, CountyCode, GridCode, OrderId, OrderState, PhoneNumber, WorkOrder};

use crate::{Event, StoreError};

/// Upper bounds of the buckets of [`DayStats::claim_waits`], in seconds
/// from submission to claim; a last bucket takes longer waits.
pub const CLAIM_WAIT_BOUNDS: [i64; 5] = [60, 300, 600, 1800, 3600];

/// Every order state, in lifecycle order, as [`Overview::state_counts`]
/// returns them.
pub const STATES: [OrderState; 6] = [
    OrderState::OfferedToGrid,
    OrderState::OfferedToCounty,
    OrderState::Claimed,
    OrderState::Completed,
    OrderState::Settled,
    OrderState::Cancelled,
];

/// Milliseconds of UTC+8 ahead of UTC.
const CHINA_OFFSET_MS: i64 = 8 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Returns the number of the UTC+8 day of `time`, counted from 1970-01-01,
/// which keys that day's statistics.
pub fn day_number(time: DateTime<Utc>) -> i64 {
    (time.timestamp_millis() + CHINA_OFFSET_MS).div_euclid(DAY_MS)
}

/// Returns the hour of `time` in UTC+8, 0 to 23.
pub fn china_hour(time: DateTime<Utc>) -> usize {
    let hour = (time.timestamp_millis() + CHINA_OFFSET_MS).rem_euclid(DAY_MS) / 3_600_000;
    usize::try_from(hour).unwrap_or(0)
}

/// Returns the number of UTC+8 day `day`, as [`day_number`] counts.
pub fn number_of_day(day: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN);
    (day - epoch).num_days()
}

/// The bucket of [`DayStats::claim_waits`] that a wait of `wait_ms`
/// milliseconds falls into.
pub fn claim_wait_bucket(wait_ms: i64) -> usize {
    CLAIM_WAIT_BOUNDS
        .iter()
        .position(|&bound| wait_ms < bound * 1000)
        .unwrap_or(CLAIM_WAIT_BOUNDS.len())
}

/// One grid's claims of a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GridClaims {
    pub claims: u64,
    /// Sum of the claims' waits from submission, in milliseconds.
    pub wait_ms: u64,
}

/// A county's statistics of one UTC+8 day. A claim counts in the grid
/// phase when the order was offered to its grid only and its grid phase
/// had not ended; every other claim counts in the county phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayStats {
    pub day: NaiveDate,
    /// Orders submitted, by UTC+8 hour.
    pub submitted_by_hour: [u64; 24],
    /// Claims, by UTC+8 hour; a released order that is claimed again
    /// counts again.
    pub claimed_by_hour: [u64; 24],
    pub claimed_in_grid_phase: u64,
    pub claimed_in_county_phase: u64,
    pub widened: u64,
    pub escalated: u64,
    /// Claims by wait from submission, in the buckets of
    /// [`CLAIM_WAIT_BOUNDS`].
    pub claim_waits: [u64; CLAIM_WAIT_BOUNDS.len() + 1],
    /// Claims of orders that have a grid, by that grid.
    pub grid_claims: BTreeMap<GridCode, GridClaims>,
}

/// Orders of one applicant or one agent that the console's searches find
/// at least, the newest ones. The Redis store keeps no more, so that its
/// indices stay small whatever the history.
pub const INDEXED_ORDERS: usize = 100;

/// The queries of the operator console. Every order change that the
/// county's event log records also updates what these return.
#[async_trait]
pub trait Overview: Send + Sync {
    /// Counts the county's orders in each state of [`STATES`], in that
    /// order. The Redis store counts the changes made since these counts
    /// were added to it, so orders created before are missing.
    async fn state_counts(&self, county: &CountyCode)
    -> Result<Vec<(OrderState, u64)>, StoreError>;

    /// Returns the county's open orders: up to `limit` in their grid
    /// phase, soonest widening first, then up to `limit` offered
    /// county-wide, oldest first.
    async fn open_board(
        &self,
        county: &CountyCode,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError>;

    /// Returns the county's statistics of each UTC+8 day of `days`, in
    /// the same order; a day without activity has zero counts.
    async fn day_stats(
        &self,
        county: &CountyCode,
        days: &[NaiveDate],
    ) -> Result<Vec<DayStats>, StoreError>;

    /// Returns the order with the number `number`, such as
    /// `20261123-0042`.
    async fn order_by_number(
        &self,
        county: &CountyCode,
        number: &str,
    ) -> Result<Option<WorkOrder>, StoreError>;

    /// Returns up to `limit` orders of the applicant with `phone`, newest
    /// first. A store may keep only the newest [`INDEXED_ORDERS`] of each
    /// applicant findable this way.
    async fn orders_by_phone(
        &self,
        county: &CountyCode,
        phone: &PhoneNumber,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError>;

    /// Returns up to `limit` orders that `agent` claimed, newest first,
    /// including those the agent released later. A store may keep only the
    /// newest [`INDEXED_ORDERS`] of each agent findable this way.
    async fn orders_by_agent(
        &self,
        county: &CountyCode,
        agent: &AgentId,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError>;

    /// Returns the changes of one order as events, oldest first: the same
    /// events the county's log records for it. The Redis store keeps them
    /// apart from the log, so they outlive its trimming; the memory store
    /// reads its log, which keeps the latest 100 000 events.
    async fn order_changes(&self, order: &OrderId) -> Result<Vec<Event>, StoreError>;

    /// Returns the secret that signs the console's sessions of the county:
    /// `candidate` if the county has none yet, which it then keeps, else
    /// the one it kept. Every process thus signs with the same secret.
    async fn console_secret(
        &self,
        county: &CountyCode,
        candidate: &str,
    ) -> Result<String, StoreError>;
}
