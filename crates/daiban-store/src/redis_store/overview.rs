//! The console's queries on Redis.
//!
//! The scripts that change orders call `track` (in `lua/common.lua`), which
//! keeps these keys of a county up to date, for county `431127`:
//!
//! - `daiban:{431127}:states` (hash): the number of orders in each state.
//! - `daiban:{431127}:stats:<day>` (hash): the statistics of one UTC+8 day,
//!   numbered from 1970-01-01 (`overview::day_number`). Its fields are
//!   `submitted:<hour>`, `claimed:<hour>`, `phase:grid`, `phase:county`,
//!   `wait:<bucket>`, `grid_claims:<grid>`, `grid_wait:<grid>` (in ms),
//!   `widened` and `escalated`. It expires 40 days after its last change.
//! - `daiban:{431127}:numbers:<yyyymmdd>:<n>` (hash): the last two digits
//!   of an order number to its sequence number, for the numbers of that
//!   day whose daily part divided by 100 is `n`. Numbers of orders last
//!   changed before these hashes existed are in `daiban:{431127}:numbers`.
//! - `daiban:{431127}:phone:<phone>` (sorted set): the applicant's orders,
//!   scored by sequence number.
//! - `daiban:{431127}:agent_orders:<agent>` (sorted set): the orders the
//!   agent claimed, scored by sequence number.
//! - the fields `h1`, `h2`, … of the order's hash: its changes after its
//!   submission, whose time is the create time, as
//!   `<kind>|<agent>|<time>`, and `hn` their number. Orders last changed
//!   before the changes moved into the hash keep every change, the
//!   submission included, in the list `daiban:{431127}:changes:<seq>`.
//! - `daiban:{431127}:console_secret` (string): the console's session
//!   secret.
//!
//! Orders changed before `track` existed are missing from these keys
//! until their next change.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use daiban_domain::{AgentId, CountyCode, GridCode, OrderId, OrderState, PhoneNumber, WorkOrder};
use redis::{Script, Value};

use super::keys::CountyKeys;
use super::order_hash;
use super::reply::{items, orders_of, pairs, text, unexpected};
use super::{RedisStore, command_failed};
use crate::overview::{CLAIM_WAIT_BOUNDS, DayStats, Overview, STATES, number_of_day};
use crate::{Event, EventKind, Store, StoreError};

static OPEN_BOARD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/common.lua"),
        include_str!("lua/open_board.lua")
    ))
});

static ORDERS_OF_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/common.lua"),
        include_str!("lua/orders_of_set.lua")
    ))
});

impl RedisStore {
    /// Reads up to `limit` orders of the index `key`, newest first.
    async fn orders_of_index(
        &self,
        county: &CountyCode,
        key: String,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let value = self
            .invoke(&ORDERS_OF_SET, &keys, key, vec![limit.to_string()])
            .await?;
        orders_of(county, value)
    }
}

/// Parses one day's statistics hash.
fn day_stats(day: NaiveDate, key: &str, fields: Vec<(String, String)>) -> DayStats {
    let mut stats = DayStats {
        day,
        ..DayStats::default()
    };
    for (field, value) in fields {
        let Ok(count) = value.parse::<u64>() else {
            // A negative or malformed count is left out of the plots.
            tracing::warn!(key, field, "console statistics field is not a count");
            continue;
        };
        let (name, detail) = field.split_once(':').unwrap_or((field.as_str(), ""));
        let hour = detail.parse::<usize>().ok().filter(|&h| h < 24);
        let bucket = detail
            .parse::<usize>()
            .ok()
            .filter(|&b| b <= CLAIM_WAIT_BOUNDS.len());
        match (name, detail) {
            ("submitted", _) if hour.is_some() => {
                stats.submitted_by_hour[hour.unwrap_or(0)] = count;
            }
            ("claimed", _) if hour.is_some() => {
                stats.claimed_by_hour[hour.unwrap_or(0)] = count;
            }
            ("phase", "grid") => stats.claimed_in_grid_phase = count,
            ("phase", "county") => stats.claimed_in_county_phase = count,
            ("wait", _) if bucket.is_some() => stats.claim_waits[bucket.unwrap_or(0)] = count,
            ("widened", "") => stats.widened = count,
            ("escalated", "") => stats.escalated = count,
            ("grid_claims" | "grid_wait", grid) => {
                let Ok(grid) = GridCode::parse(grid) else {
                    continue;
                };
                let entry = stats.grid_claims.entry(grid).or_default();
                if name == "grid_claims" {
                    entry.claims = count;
                } else {
                    entry.wait_ms = count;
                }
            }
            _ => {}
        }
    }
    stats
}

/// Parses one entry `<kind>|<agent>|<time>` of an order's changes.
fn change(order: &OrderId, key: &str, entry: &str) -> Result<Event, StoreError> {
    let corrupt = || StoreError::Corrupt {
        order: order.to_string(),
        reason: format!("{key} has an invalid entry {entry:?}"),
    };
    let mut parts = entry.splitn(3, '|');
    let (Some(kind), Some(agent), Some(time)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt());
    };
    let agent = match agent {
        "" => None,
        agent => Some(AgentId::parse(agent).map_err(|_| corrupt())?),
    };
    let time = time
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(corrupt)?;
    Ok(Event {
        order: order.clone(),
        kind: EventKind::parse(kind).ok_or_else(corrupt)?,
        agent,
        time,
    })
}

#[async_trait]
impl Overview for RedisStore {
    async fn state_counts(
        &self,
        county: &CountyCode,
    ) -> Result<Vec<(OrderState, u64)>, StoreError> {
        let key = format!("{}states", CountyKeys::new(county).prefix());
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let fields = pairs(value).ok_or_else(|| unexpected(&key, "a hash of counts"))?;
        Ok(STATES
            .iter()
            .map(|&state| {
                let count = fields
                    .iter()
                    .find(|(field, _)| field == state.as_str())
                    .and_then(|(_, value)| value.parse::<u64>().ok())
                    .unwrap_or(0);
                (state, count)
            })
            .collect())
    }

    async fn open_board(
        &self,
        county: &CountyCode,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let value = self
            .invoke(
                &OPEN_BOARD,
                &keys,
                keys.grid_phases(),
                vec![limit.to_string()],
            )
            .await?;
        orders_of(county, value)
    }

    async fn day_stats(
        &self,
        county: &CountyCode,
        days: &[NaiveDate],
    ) -> Result<Vec<DayStats>, StoreError> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let names: Vec<String> = days
            .iter()
            .map(|&day| format!("{}stats:{}", keys.prefix(), number_of_day(day)))
            .collect();
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.cmd("HGETALL").arg(name);
        }
        let mut connection = self.connection().await?;
        let values: Vec<Value> = pipe
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let mut stats = Vec::with_capacity(days.len());
        for ((&day, name), value) in days.iter().zip(&names).zip(values) {
            let fields = pairs(value).ok_or_else(|| unexpected(name, "a hash of counts"))?;
            stats.push(day_stats(day, name, fields));
        }
        Ok(stats)
    }

    async fn order_by_number(
        &self,
        county: &CountyCode,
        number: &str,
    ) -> Result<Option<WorkOrder>, StoreError> {
        let keys = CountyKeys::new(county);
        let mut connection = self.connection().await?;
        let mut pipe = redis::pipe();
        if let Some((hash, field)) = keys.number(number) {
            pipe.hget(hash, field);
        }
        // Orders not changed since the numbers moved into day hashes are
        // only in the old hash.
        pipe.hget(keys.old_numbers(), number);
        let found: Vec<Option<String>> = pipe
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        drop(connection);
        let sequence = found.into_iter().flatten().next();
        let Some(sequence) = sequence.and_then(|s| s.parse::<u64>().ok()) else {
            return Ok(None);
        };
        match self.order(&OrderId::new(county.clone(), sequence)).await {
            Ok(order) => Ok(Some(order)),
            Err(StoreError::OrderNotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn orders_by_phone(
        &self,
        county: &CountyCode,
        phone: &PhoneNumber,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        let key = format!("{}phone:{phone}", CountyKeys::new(county).prefix());
        self.orders_of_index(county, key, limit).await
    }

    async fn orders_by_agent(
        &self,
        county: &CountyCode,
        agent: &AgentId,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        let key = format!("{}agent_orders:{agent}", CountyKeys::new(county).prefix());
        self.orders_of_index(county, key, limit).await
    }

    async fn order_changes(&self, order: &OrderId) -> Result<Vec<Event>, StoreError> {
        let keys = CountyKeys::new(order.county());
        let hash_key = keys.order(order.sequence());
        let list_key = format!("{}changes:{}", keys.prefix(), order.sequence());
        let mut connection = self.connection().await?;
        // Orders not changed since their changes moved into the hash still
        // keep them in a list of their own.
        let (fields, listed): (Value, Value) = redis::pipe()
            .cmd("HGETALL")
            .arg(&hash_key)
            .cmd("LRANGE")
            .arg(&list_key)
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let fields = pairs(fields).ok_or_else(|| unexpected(&hash_key, "an order's hash"))?;
        let listed = items(listed).ok_or_else(|| unexpected(&list_key, "a list of changes"))?;
        if !listed.is_empty() {
            return listed
                .iter()
                .map(|entry| {
                    let entry = text(entry).ok_or_else(|| unexpected(&list_key, "a text entry"))?;
                    change(order, &list_key, &entry)
                })
                .collect();
        }
        if fields.is_empty() {
            return Ok(Vec::new());
        }

        // The submission is not stored as a change: its time is the create
        // time, under its short name or, in orders not changed since the
        // names were short, its long one.
        let created = fields
            .iter()
            .find(|(name, _)| name == "ct" || name == "create_time")
            .and_then(|(_, value)| order_hash::parse_millis(value))
            .ok_or_else(|| unexpected(&hash_key, "an order with a create time"))?;
        let mut numbered: Vec<(u32, String)> = fields
            .into_iter()
            .filter_map(|(name, value)| {
                let number = name.strip_prefix('h')?.parse().ok()?;
                Some((number, value))
            })
            .collect();
        numbered.sort_unstable_by_key(|(number, _)| *number);
        let submitted = Event {
            order: order.clone(),
            kind: EventKind::Submitted,
            agent: None,
            time: created,
        };
        std::iter::once(Ok(submitted))
            .chain(
                numbered
                    .iter()
                    .map(|(_, entry)| change(order, &hash_key, entry)),
            )
            .collect()
    }

    async fn console_secret(
        &self,
        county: &CountyCode,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let key = format!("{}console_secret", CountyKeys::new(county).prefix());
        let mut connection = self.connection().await?;
        // SET NX then GET, in one transaction, returns whichever secret
        // won when several processes start at once.
        let (secret,): (String,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(candidate)
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use crate::overview::INDEXED_ORDERS;

    #[test]
    fn scripts_keep_as_many_indexed_orders() {
        let common = include_str!("lua/common.lua");
        let line = format!("local INDEXED_ORDERS = {INDEXED_ORDERS}\n");
        assert!(common.contains(&line), "lua/common.lua lacks {line:?}");
    }
}
