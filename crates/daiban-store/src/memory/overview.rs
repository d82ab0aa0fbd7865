//! The console's queries on the in-memory store, computed from the orders
//! and the event log it holds. It serves one process, so reading all of a
//! county's orders is cheap enough here.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use chrono::NaiveDate;
use daiban_domain::{AgentId, CountyCode, OrderId, OrderState, PhoneNumber, WorkOrder};

use super::{County, MemoryStore};
use crate::overview::{
    DayStats, Overview, STATES, china_hour, claim_wait_bucket, day_number, number_of_day,
};
use crate::{Event, EventKind, StoreError};

impl County {
    /// Adds up the statistics of the days `days` from the event log, as
    /// `track` in the Redis store's `common.lua` counts them.
    fn day_stats(&self, days: &[NaiveDate]) -> Vec<DayStats> {
        let numbers: HashMap<i64, usize> = days
            .iter()
            .enumerate()
            .map(|(index, &day)| (number_of_day(day), index))
            .collect();
        let mut stats: Vec<DayStats> = days
            .iter()
            .map(|&day| DayStats {
                day,
                ..DayStats::default()
            })
            .collect();
        // Orders that left their grid phase before a claim, by widening
        // or release.
        let mut left_grid_phase: HashSet<u64> = HashSet::new();
        for event in &self.events {
            let seq = event.order.sequence();
            if matches!(event.kind, EventKind::Widened | EventKind::Released) {
                left_grid_phase.insert(seq);
            }
            let Some(&index) = numbers.get(&day_number(event.time)) else {
                continue;
            };
            let day = &mut stats[index];
            let hour = china_hour(event.time);
            match event.kind {
                EventKind::Submitted => day.submitted_by_hour[hour] += 1,
                EventKind::Widened => day.widened += 1,
                EventKind::Escalated => day.escalated += 1,
                EventKind::Claimed => {
                    let Some(order) = self.orders.get(&seq) else {
                        continue;
                    };
                    day.claimed_by_hour[hour] += 1;
                    let in_grid_phase = !left_grid_phase.contains(&seq)
                        && order.widen_time > order.create_time
                        && event.time < order.widen_time;
                    if in_grid_phase {
                        day.claimed_in_grid_phase += 1;
                    } else {
                        day.claimed_in_county_phase += 1;
                    }
                    let wait_ms = (event.time - order.create_time).num_milliseconds();
                    day.claim_waits[claim_wait_bucket(wait_ms)] += 1;
                    if let Some(grid) = &order.grid {
                        let claims = day.grid_claims.entry(grid.clone()).or_default();
                        claims.claims += 1;
                        claims.wait_ms += u64::try_from(wait_ms).unwrap_or(0);
                    }
                }
                _ => {}
            }
        }
        stats
    }

    /// Returns the orders of `sequences`, highest first, at most `limit`.
    fn newest(&self, sequences: impl Iterator<Item = u64>, limit: usize) -> Vec<WorkOrder> {
        let mut sequences: Vec<u64> = sequences.collect::<HashSet<_>>().into_iter().collect();
        sequences.sort_unstable_by(|a, b| b.cmp(a));
        sequences
            .into_iter()
            .filter_map(|seq| self.orders.get(&seq).cloned())
            .take(limit)
            .collect()
    }
}

/// The console secrets of every county. A memory store serves one
/// process, so keeping them per process is what the trait asks.
fn secrets() -> &'static Mutex<HashMap<CountyCode, String>> {
    static SECRETS: OnceLock<Mutex<HashMap<CountyCode, String>>> = OnceLock::new();
    SECRETS.get_or_init(Mutex::default)
}

#[async_trait]
impl Overview for MemoryStore {
    async fn state_counts(
        &self,
        county: &CountyCode,
    ) -> Result<Vec<(OrderState, u64)>, StoreError> {
        self.peek_county(county, |county| {
            let mut counts: Vec<(OrderState, u64)> = STATES.iter().map(|&s| (s, 0)).collect();
            for order in county.orders.values() {
                if let Some(entry) = counts.iter_mut().find(|(state, _)| *state == order.state) {
                    entry.1 += 1;
                }
            }
            Ok(counts)
        })
    }

    async fn open_board(
        &self,
        county: &CountyCode,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        self.peek_county(county, |county| {
            let mut in_grid_phase: Vec<&WorkOrder> = county
                .orders
                .values()
                .filter(|o| o.state == OrderState::OfferedToGrid)
                .collect();
            in_grid_phase.sort_by_key(|o| (o.widen_time, o.id.sequence()));
            let county_wide = county
                .orders
                .values()
                .filter(|o| o.state == OrderState::OfferedToCounty)
                .take(limit);
            Ok(in_grid_phase
                .into_iter()
                .take(limit)
                .chain(county_wide)
                .cloned()
                .collect())
        })
    }

    async fn day_stats(
        &self,
        county: &CountyCode,
        days: &[NaiveDate],
    ) -> Result<Vec<DayStats>, StoreError> {
        self.peek_county(county, |county| Ok(county.day_stats(days)))
    }

    async fn order_by_number(
        &self,
        county: &CountyCode,
        number: &str,
    ) -> Result<Option<WorkOrder>, StoreError> {
        self.peek_county(county, |county| {
            Ok(county.orders.values().find(|o| o.number == number).cloned())
        })
    }

    async fn orders_by_phone(
        &self,
        county: &CountyCode,
        phone: &PhoneNumber,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        self.peek_county(county, |county| {
            let sequences = county
                .orders
                .values()
                .filter(|o| &o.applicant.phone == phone)
                .map(|o| o.id.sequence());
            Ok(county.newest(sequences, limit))
        })
    }

    async fn orders_by_agent(
        &self,
        county: &CountyCode,
        agent: &AgentId,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        self.peek_county(county, |county| {
            let sequences = county
                .events
                .iter()
                .filter(|e| e.kind == EventKind::Claimed && e.agent.as_ref() == Some(agent))
                .map(|e| e.order.sequence());
            Ok(county.newest(sequences, limit))
        })
    }

    async fn order_changes(&self, order: &OrderId) -> Result<Vec<Event>, StoreError> {
        self.peek_county(order.county(), |county| {
            Ok(county
                .events
                .iter()
                .filter(|e| &e.order == order)
                .cloned()
                .collect())
        })
    }

    async fn console_secret(
        &self,
        county: &CountyCode,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let mut secrets = secrets()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(secrets
            .entry(county.clone())
            .or_insert_with(|| candidate.to_owned())
            .clone())
    }
}
