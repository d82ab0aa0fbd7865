//! The in-memory ledger: entries, running totals, quarter closes and the
//! settlement group's deliveries, kept beside each county's orders under
//! the store's one mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, CountyCode, MatterClass, OrderId, OrderState, Period, Quarter, Rating, points_tenths,
};

use super::{County, MemoryStore};
use crate::ledger::{booking_periods, completion_periods};
use crate::{
    Delivery, EventKind, FrozenStatement, Ledger, MonthTotals, QuarterClose, QuarterClosing,
    QuarterTotals, Settlement, StoreError, Tally, action, to_millis,
};

/// A county's ledger and the state of its settlement group.
#[derive(Default)]
pub(super) struct Book {
    entries: Vec<Settlement>,
    /// Sequence numbers of the settled orders.
    settled: HashSet<u64>,
    county_months: BTreeMap<String, MonthTotals>,
    /// Agents with a settlement booked in each quarter.
    quarter_agents: HashMap<String, BTreeSet<AgentId>>,
    closes: BTreeMap<Quarter, (DateTime<Utc>, Option<FrozenStatement>)>,
    /// Completed orders per agent, by year and by quarter.
    completed: HashMap<String, HashMap<AgentId, u64>>,
    /// Position in the event log of the next event no consumer has taken.
    next_delivery: u64,
    /// Events taken and not acknowledged, by position: who took each last,
    /// and when.
    pending: BTreeMap<u64, (String, Instant)>,
}

fn add_to_month(
    months: &mut BTreeMap<String, MonthTotals>,
    month: &str,
    class: MatterClass,
    rating: Option<Rating>,
    points: i32,
) {
    let totals = months
        .entry(month.to_owned())
        .or_insert_with(|| MonthTotals {
            month: month.to_owned(),
            ..MonthTotals::default()
        });
    let mut tally = Tally::of_month(totals);
    tally.count(class, rating, points);
    totals.class1_orders = tally.class1_orders;
    totals.class2_orders = tally.class2_orders;
    totals.satisfied = tally.satisfied;
    totals.unsatisfied = tally.unsatisfied;
    totals.points_tenths = tally.points_tenths;
}

impl County {
    /// Settles the completed order `seq` at its rating, if any, as of
    /// `settle_time`. Returns `None` when it is settled already.
    pub(super) fn settle(
        &mut self,
        seq: u64,
        settle_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Settlement>, StoreError> {
        if self.book.settled.contains(&seq) {
            return Ok(None);
        }
        let Some(order) = self.orders.get(&seq) else {
            return Err(StoreError::Corrupt {
                order: format!("sequence {seq}"),
                reason: "settlement of a missing order".into(),
            });
        };
        if order.state == OrderState::Settled {
            return Ok(None);
        }
        if order.state != OrderState::Completed {
            return Err(StoreError::StateConflict {
                order: order.id.clone(),
                state: order.state,
                action: action::SETTLED,
            });
        }
        let (Some(agent), Some(class)) = (order.agent.clone(), order.matter_class()) else {
            return Err(StoreError::Corrupt {
                order: order.id.to_string(),
                reason: "completed without an agent or matter".into(),
            });
        };
        let rating = order.rating;
        let period = self.open_period(settle_time, now)?;

        let points = points_tenths(class, rating);
        let order = self.orders.get_mut(&seq).expect("the order was read above");
        order.state = OrderState::Settled;
        order.points_tenths = Some(points);
        order.settle_time = Some(settle_time);
        let id = order.id.clone();
        self.settle.retain(|&(_, s)| s != seq);

        let months = self.points.entry(agent.clone()).or_default();
        add_to_month(months, &period.month, class, rating, points);
        add_to_month(
            &mut self.book.county_months,
            &period.month,
            class,
            rating,
            points,
        );
        self.book
            .quarter_agents
            .entry(period.quarter.clone())
            .or_default()
            .insert(agent.clone());
        let settlement = Settlement {
            order: id.clone(),
            agent: agent.clone(),
            class,
            rating,
            points_tenths: points,
            settle_time,
            period,
        };
        self.book.entries.push(settlement.clone());
        self.book.settled.insert(seq);
        self.record(&id, EventKind::Settled, Some(&agent), settle_time);
        Ok(Some(settlement))
    }

    /// The first of `booking_periods` whose quarter is open.
    fn open_period(
        &self,
        settle_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Period, StoreError> {
        booking_periods(settle_time, now)
            .into_iter()
            .find(|period| {
                Quarter::parse(&period.quarter)
                    .map(|quarter| !self.book.closes.contains_key(&quarter))
                    .unwrap_or(false)
            })
            .ok_or_else(|| StoreError::Corrupt {
                order: period_subject(settle_time),
                reason: "every quarter up to the next one is closed".into(),
            })
    }

    /// Counts an order that `agent` completed at `time`.
    pub(super) fn count_completion(&mut self, agent: &AgentId, time: DateTime<Utc>) {
        for period in completion_periods(time) {
            *self
                .book
                .completed
                .entry(period)
                .or_default()
                .entry(agent.clone())
                .or_default() += 1;
        }
    }

    /// Returns the event at `position` of the whole log, if still kept.
    fn event_at(&self, position: u64) -> Option<&crate::Event> {
        let index = position.checked_sub(self.events_dropped)?;
        self.events.get(usize::try_from(index).ok()?)
    }
}

fn period_subject(time: DateTime<Utc>) -> String {
    format!("settlement at {}", time.to_rfc3339())
}

fn position(county: &CountyCode, id: &str) -> Result<u64, StoreError> {
    id.parse().map_err(|_| StoreError::Corrupt {
        order: format!("county {county} delivery {id:?}"),
        reason: "not a position in the in-memory event log".into(),
    })
}

#[async_trait]
impl Ledger for MemoryStore {
    async fn deliver_events(
        &self,
        county: &CountyCode,
        consumer: &str,
        claim_idle: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = Instant::now();
        self.with_county(county, |county| {
            let mut taken = Vec::new();
            let stale: Vec<u64> = county
                .book
                .pending
                .iter()
                .filter(|(_, (_, since))| now.duration_since(*since) >= claim_idle)
                .map(|(&position, _)| position)
                .take(limit)
                .collect();
            for position in stale {
                // An event dropped from the log cannot be delivered again,
                // as Redis reports trimmed entries as deleted.
                if county.event_at(position).is_none() {
                    county.book.pending.remove(&position);
                    continue;
                }
                county
                    .book
                    .pending
                    .insert(position, (consumer.to_owned(), now));
                taken.push(position);
            }

            let end = county.events_dropped + county.events.len() as u64;
            let mut next = county.book.next_delivery.max(county.events_dropped);
            while taken.len() < limit && next < end {
                county.book.pending.insert(next, (consumer.to_owned(), now));
                taken.push(next);
                next += 1;
            }
            county.book.next_delivery = next;

            Ok(taken
                .into_iter()
                .filter_map(|position| {
                    county.event_at(position).map(|event| Delivery {
                        id: position.to_string(),
                        event: event.clone(),
                    })
                })
                .collect())
        })
    }

    async fn acknowledge_events(
        &self,
        county: &CountyCode,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let positions = ids
            .iter()
            .map(|id| position(county, id))
            .collect::<Result<Vec<_>, _>>()?;
        self.with_county(county, |county| {
            for position in positions {
                county.book.pending.remove(&position);
            }
            Ok(())
        })
    }

    async fn settle_rated(
        &self,
        id: &OrderId,
        now: DateTime<Utc>,
    ) -> Result<Option<Settlement>, StoreError> {
        let now = to_millis(now);
        self.with_county(id.county(), |county| {
            let order = county.order_mut(id)?;
            if order.state == OrderState::Settled {
                return Ok(None);
            }
            let rate_time = match (order.state, order.rate_time) {
                (OrderState::Completed, Some(rate_time)) => rate_time,
                (state, _) => {
                    return Err(StoreError::StateConflict {
                        order: id.clone(),
                        state,
                        action: action::SETTLED,
                    });
                }
            };
            county.settle(id.sequence(), rate_time, now)
        })
    }

    async fn ledger(&self, county: &CountyCode) -> Result<Vec<Settlement>, StoreError> {
        self.with_county(county, |county| Ok(county.book.entries.clone()))
    }

    async fn county_points(&self, county: &CountyCode) -> Result<Vec<MonthTotals>, StoreError> {
        self.with_county(county, |county| {
            Ok(county.book.county_months.values().rev().cloned().collect())
        })
    }

    async fn quarter_totals(
        &self,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<QuarterTotals, StoreError> {
        let months = quarter.months();
        self.with_county(county, |county| {
            let sum = |by_month: Option<&BTreeMap<String, MonthTotals>>| {
                let mut tally = Tally::default();
                for month in &months {
                    if let Some(totals) = by_month.and_then(|m| m.get(month)) {
                        tally.add(&Tally::of_month(totals));
                    }
                }
                tally
            };
            let agents = county
                .book
                .quarter_agents
                .get(&quarter.to_string())
                .map(|agents| {
                    agents
                        .iter()
                        .map(|agent| (agent.clone(), sum(county.points.get(agent))))
                        .collect()
                })
                .unwrap_or_default();
            Ok(QuarterTotals {
                agents,
                county: sum(Some(&county.book.county_months)),
            })
        })
    }

    async fn close_quarter(
        &self,
        county: &CountyCode,
        quarter: Quarter,
        now: DateTime<Utc>,
    ) -> Result<QuarterClosing, StoreError> {
        let now = to_millis(now);
        self.with_county(county, |county| {
            if let Some((closed, _)) = county.book.closes.get(&quarter) {
                return Ok(QuarterClosing::AlreadyClosed(*closed));
            }
            county.book.closes.insert(quarter, (now, None));
            Ok(QuarterClosing::Closed(now))
        })
    }

    async fn quarter_close(
        &self,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<Option<QuarterClose>, StoreError> {
        self.with_county(county, |county| {
            Ok(county
                .book
                .closes
                .get(&quarter)
                .map(|(close_time, statement)| QuarterClose {
                    close_time: *close_time,
                    statement: statement.clone(),
                }))
        })
    }

    async fn freeze_statement(
        &self,
        county_code: &CountyCode,
        quarter: Quarter,
        statement: &FrozenStatement,
    ) -> Result<FrozenStatement, StoreError> {
        self.with_county(county_code, |county| {
            let Some((_, frozen)) = county.book.closes.get_mut(&quarter) else {
                return Err(StoreError::Corrupt {
                    order: format!("county {county_code} quarter {quarter}"),
                    reason: "a statement was frozen for a quarter that is not closed".into(),
                });
            };
            Ok(frozen.get_or_insert_with(|| statement.clone()).clone())
        })
    }

    async fn completed_orders(
        &self,
        county: &CountyCode,
        period: &str,
    ) -> Result<Vec<(AgentId, u64)>, StoreError> {
        self.with_county(county, |county| {
            let mut counts: Vec<(AgentId, u64)> = county
                .book
                .completed
                .get(period)
                .map(|counts| counts.iter().map(|(a, &n)| (a.clone(), n)).collect())
                .unwrap_or_default();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Ok(counts)
        })
    }
}
