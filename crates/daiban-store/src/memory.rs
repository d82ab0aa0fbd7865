//! The in-memory store: all counties' state behind one mutex. It keeps
//! nothing across restarts and serves one process only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, CountyCode, GridCode, Matter, OrderId, OrderState, Rating, WorkOrder, WorkResult,
    order_day,
};

use tokio::sync::Notify;

use crate::{
    Announcement, AnnouncementKind, Event, EventBatch, EventCursor, EventKind, MonthTotals,
    NewOrder, Settlement, Store, StoreError, Submitted, action, to_millis,
};

mod ledger;
mod overview;
mod sms;
mod stats;

/// Events kept per county; older ones are dropped.
const EVENT_LOG_LEN: usize = 100_000;

#[derive(Default)]
pub struct MemoryStore {
    counties: Mutex<HashMap<CountyCode, County>>,
    /// Woken after every call that may have recorded events, for
    /// `read_events`.
    new_events: Notify,
}

#[derive(Default)]
struct County {
    sequence: u64,
    daily: HashMap<String, u64>,
    orders: BTreeMap<u64, WorkOrder>,
    request_ids: HashMap<String, u64>,
    /// (deadline in ms, sequence) of pending widenings, escalations and
    /// settlements.
    widen: BTreeSet<(i64, u64)>,
    escalate: BTreeSet<(i64, u64)>,
    /// Escalation times, in ms, of the orders in their grid phase, which
    /// go on `escalate` when they widen.
    escalate_after_widening: HashMap<u64, i64>,
    settle: BTreeSet<(i64, u64)>,
    points: HashMap<AgentId, BTreeMap<String, MonthTotals>>,
    events: std::collections::VecDeque<Event>,
    /// Events dropped from the front of `events`, so that an event's
    /// position in the whole log is `events_dropped` plus its index.
    events_dropped: u64,
    /// Announcements owed, by kind and sequence, with the time from which
    /// they may be taken, in ms.
    outbox: BTreeMap<(AnnouncementKind, u64), i64>,
    book: ledger::Book,
    sms: sms::SmsBook,
}

impl County {
    fn record(
        &mut self,
        order: &OrderId,
        kind: EventKind,
        agent: Option<&AgentId>,
        time: DateTime<Utc>,
    ) {
        if self.events.len() == EVENT_LOG_LEN {
            self.events.pop_front();
            self.events_dropped += 1;
        }
        self.events.push_back(Event {
            order: order.clone(),
            kind,
            agent: agent.cloned(),
            time,
        });
    }

    fn announce(&mut self, kind: AnnouncementKind, sequence: u64, now: DateTime<Utc>) {
        self.outbox.insert((kind, sequence), now.timestamp_millis());
    }

    fn order_mut(&mut self, id: &OrderId) -> Result<&mut WorkOrder, StoreError> {
        self.orders
            .get_mut(&id.sequence())
            .ok_or_else(|| StoreError::OrderNotFound(id.clone()))
    }

    fn unschedule(&mut self, order: &WorkOrder) {
        let seq = order.id.sequence();
        self.widen.retain(|&(_, s)| s != seq);
        self.escalate.retain(|&(_, s)| s != seq);
        self.escalate_after_widening.remove(&seq);
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the county's state and then wakes `read_events`, since
    /// `f` may have recorded events.
    fn with_county<T>(&self, county: &CountyCode, f: impl FnOnce(&mut County) -> T) -> T {
        let result = self.peek_county(county, f);
        self.new_events.notify_waiters();
        result
    }

    /// Runs `f` on the county's state without waking `read_events`.
    fn peek_county<T>(&self, county: &CountyCode, f: impl FnOnce(&mut County) -> T) -> T {
        let mut counties = self
            .counties
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(counties.entry(county.clone()).or_default())
    }
}

fn due(set: &BTreeSet<(i64, u64)>, now: DateTime<Utc>, limit: usize) -> Vec<(i64, u64)> {
    let now = now.timestamp_millis();
    set.iter()
        .take_while(|&&(at, _)| at <= now)
        .take(limit)
        .copied()
        .collect()
}

fn conflict(order: &WorkOrder, action: &'static str) -> StoreError {
    StoreError::StateConflict {
        order: order.id.clone(),
        state: order.state,
        action,
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn submit(&self, new: NewOrder) -> Result<Submitted, StoreError> {
        self.with_county(&new.county.clone(), |county| {
            if let Some(seq) = new
                .request_id
                .as_ref()
                .and_then(|r| county.request_ids.get(r))
            {
                return Ok(Submitted::Existing(county.orders[seq].clone()));
            }
            county.sequence += 1;
            let seq = county.sequence;
            let daily = county.daily.entry(order_day(new.create_time)).or_default();
            *daily += 1;

            let escalate_at = new.escalate_at;
            let order = new.into_order(seq, *daily);
            let id = order.id.clone();
            if order.state == OrderState::OfferedToGrid {
                county
                    .widen
                    .insert((order.widen_time.timestamp_millis(), seq));
                county
                    .escalate_after_widening
                    .insert(seq, escalate_at.timestamp_millis());
            } else {
                county
                    .escalate
                    .insert((escalate_at.timestamp_millis(), seq));
            }
            if let Some(request_id) = &order.request_id {
                county.request_ids.insert(request_id.clone(), seq);
            }
            county.orders.insert(seq, order.clone());
            county.record(&id, EventKind::Submitted, None, order.create_time);
            county.announce(AnnouncementKind::Submitted, seq, order.create_time);
            Ok(Submitted::Created(order))
        })
    }

    async fn order(&self, id: &OrderId) -> Result<WorkOrder, StoreError> {
        self.with_county(id.county(), |county| {
            county.order_mut(id).map(|o| o.clone())
        })
    }

    async fn claim(
        &self,
        id: &OrderId,
        agent: &AgentId,
        agent_grid: &GridCode,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let now = to_millis(now);
        self.with_county(id.county(), |county| {
            let order = county.order_mut(id)?;
            match order.state {
                OrderState::OfferedToGrid | OrderState::OfferedToCounty => {}
                OrderState::Cancelled => return Err(conflict(order, action::CLAIMED)),
                _ if order.agent.as_ref() != Some(agent) => {
                    return Err(StoreError::AlreadyClaimed { order: id.clone() });
                }
                OrderState::Claimed => return Ok(order.clone()),
                // The holder itself completed the order, so no other agent claimed it.
                _ => return Err(conflict(order, action::CLAIMED)),
            }
            if order.reserved_for_grid(now) && order.grid.as_ref() != Some(agent_grid) {
                return Err(StoreError::ReservedForGrid {
                    order: id.clone(),
                    grid: order.grid.clone().unwrap_or_else(|| agent_grid.clone()),
                    until: order.widen_time,
                });
            }
            order.state = OrderState::Claimed;
            order.agent = Some(agent.clone());
            order.claim_time = Some(now);
            let order = order.clone();
            county.unschedule(&order);
            county.record(id, EventKind::Claimed, Some(agent), now);
            Ok(order)
        })
    }

    async fn release(
        &self,
        id: &OrderId,
        agent: &AgentId,
        _reason: &str,
        now: DateTime<Utc>,
        escalate_at: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let now = to_millis(now);
        self.with_county(id.county(), |county| {
            let order = county.order_mut(id)?;
            if order.state != OrderState::Claimed {
                return Err(conflict(order, action::RELEASED));
            }
            if order.agent.as_ref() != Some(agent) {
                return Err(StoreError::NotHolder {
                    order: id.clone(),
                    agent: agent.clone(),
                });
            }
            order.state = OrderState::OfferedToCounty;
            order.widened = true;
            order.agent = None;
            order.claim_time = None;
            if !order.released_by.contains(agent) {
                order.released_by.push(agent.clone());
            }
            let order = order.clone();
            if !order.escalated {
                county
                    .escalate
                    .insert((escalate_at.timestamp_millis(), id.sequence()));
            }
            county.record(id, EventKind::Released, Some(agent), now);
            county.announce(AnnouncementKind::Released, id.sequence(), now);
            Ok(order)
        })
    }

    async fn complete(
        &self,
        id: &OrderId,
        agent: &AgentId,
        result: WorkResult,
        matter: Option<Matter>,
        now: DateTime<Utc>,
        settle_at: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let now = to_millis(now);
        self.with_county(id.county(), |county| {
            let order = county.order_mut(id)?;
            if order.state != OrderState::Claimed {
                return Err(conflict(order, action::COMPLETED));
            }
            if order.agent.as_ref() != Some(agent) {
                return Err(StoreError::NotHolder {
                    order: id.clone(),
                    agent: agent.clone(),
                });
            }
            if order.matter.is_none() {
                order.matter = matter;
            }
            if order.matter.is_none() {
                return Err(StoreError::Corrupt {
                    order: id.to_string(),
                    reason: "completed without a matter".into(),
                });
            }
            order.state = OrderState::Completed;
            order.complete_time = Some(now);
            order.result = Some(result);
            let order = order.clone();
            county
                .settle
                .insert((settle_at.timestamp_millis(), id.sequence()));
            county.record(id, EventKind::Completed, Some(agent), now);
            county.count_completion(agent, now);
            Ok(order)
        })
    }

    async fn cancel(
        &self,
        id: &OrderId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let now = to_millis(now);
        self.with_county(id.county(), |county| {
            let order = county.order_mut(id)?;
            if !matches!(
                order.state,
                OrderState::OfferedToGrid | OrderState::OfferedToCounty | OrderState::Claimed
            ) {
                return Err(conflict(order, action::CANCELLED));
            }
            order.state = OrderState::Cancelled;
            order.cancel_time = Some(now);
            order.cancel_reason = reason.to_owned();
            let order = order.clone();
            county.unschedule(&order);
            county.record(id, EventKind::Cancelled, None, now);
            Ok(order)
        })
    }

    async fn rate(
        &self,
        id: &OrderId,
        rating: Rating,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let now = to_millis(now);
        self.with_county(id.county(), |county| {
            let order = county.order_mut(id)?;
            if order.rating.is_some() {
                return Err(StoreError::AlreadyRated { order: id.clone() });
            }
            if order.state != OrderState::Completed {
                return Err(conflict(order, action::RATED));
            }
            order.rating = Some(rating);
            order.rating_comment = comment.to_owned();
            order.rate_time = Some(now);
            let order = order.clone();
            county.record(id, EventKind::Rated, None, now);
            Ok(order)
        })
    }

    async fn widen_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        let now = to_millis(now);
        self.with_county(county, |county| {
            let mut widened = Vec::new();
            for entry in due(&county.widen, now, limit) {
                county.widen.remove(&entry);
                let Some(order) = county.orders.get_mut(&entry.1) else {
                    continue;
                };
                if order.state != OrderState::OfferedToGrid {
                    continue;
                }
                order.state = OrderState::OfferedToCounty;
                order.widened = true;
                let order = order.clone();
                if let Some(at) = county.escalate_after_widening.remove(&entry.1) {
                    county.escalate.insert((at, entry.1));
                }
                county.record(&order.id, EventKind::Widened, None, now);
                county.announce(AnnouncementKind::Widened, entry.1, now);
                widened.push(order);
            }
            Ok(widened)
        })
    }

    async fn escalate_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        let now = to_millis(now);
        self.with_county(county, |county| {
            let mut escalated = Vec::new();
            for entry in due(&county.escalate, now, limit) {
                county.escalate.remove(&entry);
                let Some(order) = county.orders.get_mut(&entry.1) else {
                    continue;
                };
                if !order.state.is_open() || order.escalated {
                    continue;
                }
                order.escalated = true;
                let order = order.clone();
                county.record(&order.id, EventKind::Escalated, None, now);
                county.announce(AnnouncementKind::Escalated, entry.1, now);
                escalated.push(order);
            }
            Ok(escalated)
        })
    }

    async fn settle_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Settlement>, StoreError> {
        let now = to_millis(now);
        self.with_county(county, |county| {
            let mut settled = Vec::new();
            for entry in due(&county.settle, now, limit) {
                county.settle.remove(&entry);
                let completed = county
                    .orders
                    .get(&entry.1)
                    .is_some_and(|o| o.state == OrderState::Completed);
                if completed {
                    settled.extend(county.settle(entry.1, now, now)?);
                }
            }
            Ok(settled)
        })
    }

    async fn next_deadline(
        &self,
        county: &CountyCode,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_county(county, |county| {
            let first = [&county.widen, &county.escalate, &county.settle]
                .iter()
                .filter_map(|set| set.first().map(|&(at, _)| at))
                .min();
            Ok(first.and_then(DateTime::from_timestamp_millis))
        })
    }

    async fn open_orders(
        &self,
        county: &CountyCode,
        grid: &GridCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        let now = to_millis(now);
        self.with_county(county, |county| {
            Ok(county
                .orders
                .values()
                .filter(|o| o.state.is_open())
                .filter(|o| !o.reserved_for_grid(now) || o.grid.as_ref() == Some(grid))
                .take(limit)
                .cloned()
                .collect())
        })
    }

    async fn agent_points(
        &self,
        county: &CountyCode,
        agent: &AgentId,
    ) -> Result<Vec<MonthTotals>, StoreError> {
        self.with_county(county, |county| {
            Ok(county
                .points
                .get(agent)
                .map(|months| months.values().rev().cloned().collect())
                .unwrap_or_default())
        })
    }

    async fn events(&self, county: &CountyCode, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.with_county(county, |county| {
            let skip = county.events.len().saturating_sub(limit);
            Ok(county.events.iter().skip(skip).cloned().collect())
        })
    }

    async fn take_announcements(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Announcement>, StoreError> {
        let now = to_millis(now).timestamp_millis();
        let lease_until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        self.with_county(county, |county| {
            let mut due: Vec<(i64, AnnouncementKind, u64)> = county
                .outbox
                .iter()
                .filter(|&(_, &at)| at <= now)
                .map(|(&(kind, seq), &at)| (at, kind, seq))
                .collect();
            due.sort();
            due.truncate(limit);
            let mut taken = Vec::new();
            for (_, kind, seq) in due {
                county.outbox.insert((kind, seq), lease_until);
                if let Some(order) = county.orders.get(&seq) {
                    taken.push(Announcement {
                        kind,
                        order: order.clone(),
                    });
                }
            }
            Ok(taken)
        })
    }

    async fn ack_announcement(
        &self,
        kind: AnnouncementKind,
        order: &OrderId,
    ) -> Result<(), StoreError> {
        self.with_county(order.county(), |county| {
            county.outbox.remove(&(kind, order.sequence()));
            Ok(())
        })
    }

    async fn read_events(
        &self,
        county: &CountyCode,
        after: Option<&EventCursor>,
        wait: Duration,
        limit: usize,
    ) -> Result<EventBatch, StoreError> {
        let start = match after {
            Some(cursor) => cursor.0.parse::<u64>().map_err(|_| StoreError::Corrupt {
                order: format!("event cursor {:?}", cursor.0),
                reason: "not a position in the in-memory event log".into(),
            })?,
            None => self.peek_county(county, |c| c.events_dropped + c.events.len() as u64),
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before reading, so an event recorded in between
            // still wakes this call.
            let notified = self.new_events.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let batch = self.peek_county(county, |c| {
                let skip = start.saturating_sub(c.events_dropped) as usize;
                let events: Vec<Event> = c.events.iter().skip(skip).take(limit).cloned().collect();
                let first = c.events_dropped.max(start);
                EventBatch {
                    cursor: EventCursor((first + events.len() as u64).to_string()),
                    events,
                }
            });
            if !batch.events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(batch);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(EventBatch {
                    events: Vec::new(),
                    cursor: EventCursor(start.to_string()),
                });
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        crate::conformance::run_all(&MemoryStore::new()).await;
    }
}
