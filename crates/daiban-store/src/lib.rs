//! Order state behind one interface, [`Store`], with two implementations
//! that pass the same [`conformance`] suite: [`RedisStore`] for production
//! and [`MemoryStore`], the zero-setup default of `daiban serve`.
//!
//! **Every state change of an order happens inside one store call**, which
//! is atomic: a Lua script in Redis, one lock in memory. Callers never read
//! an order, decide, and write it back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, Applicant, Channel, CountyCode, GridCode, Matter, MatterClass, OrderId, OrderState,
    Period, Rating, WorkOrder, WorkResult, claim_code_for, order_number,
};

pub mod conformance;
mod ledger;
mod memory;
pub mod overview;
mod redis_store;
pub mod sms;
pub mod stats;

pub use ledger::{
    Delivery, FrozenStatement, Ledger, QuarterClose, QuarterClosing, QuarterTotals,
    SETTLEMENT_GROUP, StatementLine, Tally,
};
pub use memory::MemoryStore;
pub use overview::Overview;
pub use redis_store::{RedisStore, RedisStoreError};

/// The fields `Store::submit` needs to create an order. The store assigns the id,
/// number and claim code.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub county: CountyCode,
    pub request_id: Option<String>,
    pub request_text: String,
    pub matter: Option<Matter>,
    pub grid: Option<GridCode>,
    pub address: String,
    pub applicant: Applicant,
    pub channel: Channel,
    pub create_time: DateTime<Utc>,
    /// End of the grid phase, or `None` to offer the order county-wide at
    /// once (an unresolved address, or a grid without an active agent). An
    /// order without a `grid` is offered county-wide at once regardless of
    /// this field, because no grid's agents could claim it in a grid phase.
    pub grid_phase_until: Option<DateTime<Utc>>,
    /// When the order escalates if it is still unclaimed.
    pub escalate_at: DateTime<Utc>,
}

impl NewOrder {
    /// Builds the order that `submit` stores, with the county sequence
    /// number `sequence` and the sequence `daily_sequence` within its
    /// creation day. Both stores build their orders here, so they agree on
    /// every field.
    pub(crate) fn into_order(self, sequence: u64, daily_sequence: u64) -> WorkOrder {
        let (state, widen_time) = match (self.grid_phase_until, &self.grid) {
            (Some(until), Some(_)) => (OrderState::OfferedToGrid, until),
            _ => (OrderState::OfferedToCounty, self.create_time),
        };
        WorkOrder {
            id: OrderId::new(self.county.clone(), sequence),
            number: order_number(to_millis(self.create_time), daily_sequence),
            state,
            request_text: self.request_text,
            request_id: self.request_id,
            matter: self.matter,
            county: self.county,
            grid: self.grid,
            address: self.address,
            applicant: self.applicant,
            channel: self.channel,
            claim_code: claim_code_for(sequence),
            agent: None,
            create_time: to_millis(self.create_time),
            widen_time: to_millis(widen_time),
            widened: state == OrderState::OfferedToCounty,
            escalated: false,
            claim_time: None,
            complete_time: None,
            result: None,
            rating: None,
            rating_comment: String::new(),
            rate_time: None,
            points_tenths: None,
            settle_time: None,
            cancel_time: None,
            cancel_reason: String::new(),
            released_by: Vec::new(),
        }
    }
}

/// `time` without its sub-millisecond part: the precision both stores keep.
pub fn to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

/// The result of `Store::submit`.
#[derive(Debug, Clone)]
pub enum Submitted {
    Created(WorkOrder),
    /// An order with the same `request_id` existed; nothing was created.
    Existing(WorkOrder),
}

impl Submitted {
    pub fn order(&self) -> &WorkOrder {
        match self {
            Self::Created(order) | Self::Existing(order) => order,
        }
    }

    pub fn into_order(self) -> WorkOrder {
        match self {
            Self::Created(order) | Self::Existing(order) => order,
        }
    }
}

/// One entry of the points ledger: an order's points, settled once for the
/// agent who completed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub order: OrderId,
    pub agent: AgentId,
    pub class: MatterClass,
    /// `None` when the rating window passed without a rating.
    pub rating: Option<Rating>,
    pub points_tenths: i32,
    pub settle_time: DateTime<Utc>,
    pub period: Period,
}

/// An agent's settled orders and points in one month (UTC+8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthTotals {
    /// `YYYY-MM`.
    pub month: String,
    pub class1_orders: i64,
    pub class2_orders: i64,
    pub satisfied: i64,
    pub unsatisfied: i64,
    pub points_tenths: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Submitted,
    Widened,
    Escalated,
    Claimed,
    Released,
    Completed,
    Cancelled,
    Rated,
    Settled,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Widened => "widened",
            Self::Escalated => "escalated",
            Self::Claimed => "claimed",
            Self::Released => "released",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Rated => "rated",
            Self::Settled => "settled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Submitted,
            Self::Widened,
            Self::Escalated,
            Self::Claimed,
            Self::Released,
            Self::Completed,
            Self::Cancelled,
            Self::Rated,
            Self::Settled,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A state change of an order, appended to its county's event log in the
/// same atomic step as the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub order: OrderId,
    pub kind: EventKind,
    /// The agent who acted, for claims, releases and completions.
    pub agent: Option<AgentId>,
    pub time: DateTime<Utc>,
}

/// A position in a county's event log; `Store::read_events` returns the
/// events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor(pub String);

/// Events read from a county's log, and the cursor after the last one.
#[derive(Debug, Clone)]
pub struct EventBatch {
    pub events: Vec<Event>,
    pub cursor: EventCursor,
}

/// The kind of notification an announcement owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnouncementKind {
    /// A new order, for its grid's agents or, when offered county-wide at
    /// once, for the county's.
    Submitted,
    /// The grid phase ended; the rest of the county hears of the order.
    Widened,
    /// The holder gave the order back; the county hears of it again.
    Released,
    /// No agent grabbed the order in time, so the duty desk is notified.
    Escalated,
}

impl AnnouncementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Widened => "widened",
            Self::Released => "released",
            Self::Escalated => "escalated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Submitted,
            Self::Widened,
            Self::Released,
            Self::Escalated,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// Notifications owed for an order: written in the same atomic step as the
/// state change that owes them, and deleted only once they were sent, so a
/// process that dies in between leaves them to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub kind: AnnouncementKind,
    /// The order as it is when the announcement is taken, which may be
    /// later than the change that owed it.
    pub order: WorkOrder,
}

/// The reason a store call did not change the order. The first variants are the
/// caller's to fix; `Unavailable` and `Corrupt` are the operator's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    #[error("order {order} is already claimed by another agent")]
    AlreadyClaimed { order: OrderId },
    #[error("order {order} is reserved for the agents of grid {grid} until {until}")]
    ReservedForGrid {
        order: OrderId,
        grid: GridCode,
        until: DateTime<Utc>,
    },
    #[error("order {order} is {}, so it cannot be {action}", .state.as_str())]
    StateConflict {
        order: OrderId,
        state: OrderState,
        action: &'static str,
    },
    #[error("order {order} is already rated")]
    AlreadyRated { order: OrderId },
    #[error("agent {agent} does not hold order {order}")]
    NotHolder { order: OrderId, agent: AgentId },
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored order {order} is unreadable: {reason}")]
    Corrupt { order: String, reason: String },
}

/// The actions named in `StoreError::StateConflict`.
pub mod action {
    pub const CLAIMED: &str = "claimed";
    pub const RELEASED: &str = "released";
    pub const COMPLETED: &str = "completed";
    pub const CANCELLED: &str = "cancelled";
    pub const RATED: &str = "rated";
    pub const SETTLED: &str = "settled";
}

/// Order state of one or more counties.
///
/// Times are passed in by the caller, so tests control the clock, and are
/// kept to the millisecond: an order a call returns equals the order read
/// back later. Calls that
/// take `limit` handle at most that many orders and return what they
/// handled; calling again handles the rest.
#[async_trait]
pub trait Store: Ledger + Overview + sms::SmsStore + stats::Stats + Send + Sync + 'static {
    /// Creates an order, or returns the existing one when an order of the
    /// same county already has `request_id`.
    async fn submit(&self, new: NewOrder) -> Result<Submitted, StoreError>;

    async fn order(&self, id: &OrderId) -> Result<WorkOrder, StoreError>;

    /// Grabs an open order for `agent`, whose grid is `agent_grid`.
    ///
    /// Fails with `ReservedForGrid` when the order is in its grid phase at
    /// `now` (by its `widen_time`, whether or not it has been widened) and
    /// `agent_grid` is another grid; with `AlreadyClaimed` when another
    /// agent holds or held it; with `StateConflict` when it is cancelled,
    /// or completed by `agent` itself. A repeated claim by the holder of a
    /// claimed order returns the order unchanged.
    async fn claim(
        &self,
        id: &OrderId,
        agent: &AgentId,
        agent_grid: &GridCode,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError>;

    /// Gives a claimed order back: it is offered county-wide again, `agent`
    /// is added to `released_by`, and, unless the order has escalated
    /// before, it escalates at `escalate_at` if still unclaimed.
    async fn release(
        &self,
        id: &OrderId,
        agent: &AgentId,
        reason: &str,
        now: DateTime<Utc>,
        escalate_at: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError>;

    /// Completes a claimed order held by `agent`. `matter` is set on an
    /// order that has none and ignored otherwise. Unless rated first, the
    /// order settles at its base points at `settle_at`.
    async fn complete(
        &self,
        id: &OrderId,
        agent: &AgentId,
        result: WorkResult,
        matter: Option<Matter>,
        now: DateTime<Utc>,
        settle_at: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError>;

    /// Cancels an order that is offered or claimed.
    async fn cancel(
        &self,
        id: &OrderId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError>;

    /// Records the applicant's rating of a completed order and appends a
    /// `rated` event. The order settles later, from that event through
    /// `Ledger::settle_rated`, or at its rating window's end through
    /// `settle_due`. A second rating fails with `AlreadyRated`; a rating
    /// after the window settled the order fails with `StateConflict`.
    async fn rate(
        &self,
        id: &OrderId,
        rating: Rating,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError>;

    /// Widens the county's orders whose grid phase ended by `now` and that
    /// nobody has claimed: each becomes `OfferedToCounty`. Each order is
    /// returned by exactly one call, whichever process makes it.
    async fn widen_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError>;

    /// Marks escalated the county's orders still unclaimed at their
    /// escalation time. An order in its grid phase is on the escalation
    /// schedule only once `widen_due` widened it, so the escalation time of
    /// an order must not come before the end of its grid phase. Each order
    /// is returned by exactly one call.
    async fn escalate_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError>;

    /// Settles the county's completed orders whose rating window ended by
    /// `now` and that are not settled yet: unrated ones at base points, and
    /// rated ones whose `rated` event was never handled (it may have been
    /// trimmed from the log unread) at their rating. Each order settles
    /// once, and its entry lands as `Ledger::settle_rated` describes.
    async fn settle_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Settlement>, StoreError>;

    /// The earliest pending widening, escalation or settlement of the
    /// county, if any. Announcements are not included: they are due as soon
    /// as they are owed.
    async fn next_deadline(&self, county: &CountyCode)
    -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The orders an agent of `grid` may grab at `now`: those reserved for
    /// `grid`, and those open to the whole county (including orders whose
    /// grid phase ended but that are not widened yet), oldest first.
    async fn open_orders(
        &self,
        county: &CountyCode,
        grid: &GridCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError>;

    /// Returns an agent's totals by month, newest month first.
    async fn agent_points(
        &self,
        county: &CountyCode,
        agent: &AgentId,
    ) -> Result<Vec<MonthTotals>, StoreError>;

    /// Returns the county's latest `limit` events, oldest first.
    async fn events(&self, county: &CountyCode, limit: usize) -> Result<Vec<Event>, StoreError>;

    /// Takes up to `limit` announcements of the county that are due at
    /// `now`: owed and not taken by anyone in the last `lease`. Each taken
    /// announcement is leased to the caller until `now + lease`; if it is
    /// not acknowledged by then, another call takes it again.
    async fn take_announcements(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Announcement>, StoreError>;

    /// Deletes an announcement that has been sent.
    async fn ack_announcement(
        &self,
        kind: AnnouncementKind,
        order: &OrderId,
    ) -> Result<(), StoreError>;

    /// Reads the county's events after `after`, waiting up to `wait` for
    /// the first one. With `after` = `None` it starts at the end of the
    /// log, so only later events are returned.
    async fn read_events(
        &self,
        county: &CountyCode,
        after: Option<&EventCursor>,
        wait: std::time::Duration,
        limit: usize,
    ) -> Result<EventBatch, StoreError>;

    /// Checks that the store responds.
    async fn ping(&self) -> Result<(), StoreError>;
}
