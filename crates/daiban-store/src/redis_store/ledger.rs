//! The points ledger on Redis: the settlement group on the county's event
//! stream, the settling scripts, quarter closes and frozen statements.
//!
//! # Keys
//!
//! Beside those listed in the module comment of `redis_store`, for county
//! `431127`:
//!
//! - `daiban:{431127}:events` carries the consumer group `points`, created
//!   at the start of the stream on first use. Its consumers settle from the
//!   `rated` events, and `XAUTOCLAIM` hands an entry that a consumer took
//!   but never acknowledged to another.
//! - `daiban:{431127}:settled` (hash): sequence number of each settled
//!   order to the id of its ledger entry, so an order is booked once.
//! - `daiban:{431127}:county_points` (hash): the county's month totals,
//!   with the same fields as an agent's `points:<agent>` hash.
//! - `daiban:{431127}:quarter:<yyyyQn>:agents` (set): the agents with a
//!   settlement booked in the quarter.
//! - `daiban:{431127}:closed` (hash): each closed quarter to its close
//!   time.
//! - `daiban:{431127}:statements` (hash): each closed quarter to its frozen
//!   statement, as JSON.
//! - `daiban:{431127}:completed:<yyyy>` and `:completed:<yyyyQn>` (sorted
//!   sets): agents scored by their orders completed in that year or
//!   quarter (UTC+8).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, CountyCode, MatterClass, OrderId, OrderState, Period, Quarter, Rating, points_tenths,
};
use redis::{RedisError, Script, Value};
use tracing::warn;

use super::keys::CountyKeys;
use super::order_hash::{millis, parse_millis};
use super::reply::{Call, event, items, month_totals, pairs, script_result, text, unexpected};
use super::{RedisStore, command_failed};
use crate::ledger::{booking_periods, completion_periods};
use crate::{
    Delivery, FrozenStatement, Ledger, MonthTotals, QuarterClose, QuarterClosing, QuarterTotals,
    SETTLEMENT_GROUP, Settlement, Store, StoreError, Tally, action,
};

struct Scripts {
    settle: Script,
    settle_due: Script,
    freeze_statement: Script,
    quarter_totals: Script,
}

macro_rules! ledger_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!("lua/ledger.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    settle: ledger_script!("settle.lua"),
    settle_due: ledger_script!("settle_due.lua"),
    freeze_statement: ledger_script!("freeze_statement.lua"),
    quarter_totals: ledger_script!("quarter_totals.lua"),
});

/// The ratings a settlement may carry, `None` for an unrated order.
const RATINGS: [Option<Rating>; 5] = [
    None,
    Some(Rating::VerySatisfied),
    Some(Rating::Satisfied),
    Some(Rating::Average),
    Some(Rating::Unsatisfied),
];

/// The counters of one month in a totals hash, in the order the scripts
/// read them.
const COUNTERS: [&str; 5] = ["class1", "class2", "satisfied", "unsatisfied", "points"];

/// Returns the month counter that `rating` adds to, named as in the points
/// hashes.
pub(super) fn tally(rating: Option<Rating>) -> &'static str {
    match rating {
        Some(rating) if rating.is_satisfied() => "satisfied",
        Some(Rating::Unsatisfied) => "unsatisfied",
        _ => "",
    }
}

fn rating_text(rating: Option<Rating>) -> &'static str {
    rating.map_or("", Rating::as_str)
}

fn key(keys: &CountyKeys, name: &str) -> String {
    format!("{}{name}", keys.prefix())
}

/// Appends the booking periods as quarter, month pairs.
fn push_periods(args: &mut Vec<String>, periods: Vec<Period>) {
    for period in periods {
        args.push(period.quarter);
        args.push(period.month);
    }
}

fn is_no_group(err: &RedisError) -> bool {
    err.code() == Some("NOGROUP")
}

/// Runs the sweep of `Store::settle_due`.
pub(super) async fn settle_due(
    store: &RedisStore,
    county: &CountyCode,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Settlement>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let keys = CountyKeys::new(county);
    let mut args = vec![millis(now), limit.to_string(), RATINGS.len().to_string()];
    for rating in RATINGS {
        args.push(rating_text(rating).to_owned());
        args.push(tally(rating).to_owned());
        args.push(points_tenths(MatterClass::One, rating).to_string());
        args.push(points_tenths(MatterClass::Two, rating).to_string());
    }
    push_periods(&mut args, booking_periods(now, now));
    let value = store
        .invoke(&SCRIPTS.settle_due, &keys, keys.settle(), args)
        .await?;

    let mut reply = items(value)
        .ok_or_else(|| unexpected(county, "a list of settlements"))?
        .into_iter();
    let status = reply.next().as_ref().and_then(text);
    if status.as_deref() != Some("ok") {
        let reason = reply.nth(1).as_ref().and_then(text).unwrap_or_default();
        return Err(StoreError::Corrupt {
            order: format!("county {county} settlement sweep"),
            reason,
        });
    }
    let entries = reply
        .next()
        .and_then(items)
        .ok_or_else(|| unexpected(county, "a list of settlements"))?;
    let mut settlements = Vec::with_capacity(entries.len());
    for entry in entries {
        let parts: Vec<String> = items(entry)
            .ok_or_else(|| unexpected(county, "a settlement"))?
            .iter()
            .map(|part| text(part).unwrap_or_default())
            .collect();
        let [sequence, agent, class, rating, points, quarter, month] = parts.as_slice() else {
            return Err(unexpected(county, "seven fields of a settlement"));
        };
        let invalid = || unexpected(county, "a valid settlement");
        let rating = match rating.as_str() {
            "" => None,
            rating => Some(Rating::parse(rating).ok_or_else(invalid)?),
        };
        settlements.push(Settlement {
            order: OrderId::new(county.clone(), sequence.parse().map_err(|_| invalid())?),
            agent: AgentId::parse(agent).map_err(|_| invalid())?,
            class: class
                .parse()
                .ok()
                .and_then(MatterClass::from_number)
                .ok_or_else(invalid)?,
            rating,
            points_tenths: points.parse().map_err(|_| invalid())?,
            settle_time: crate::to_millis(now),
            period: Period {
                month: month.clone(),
                quarter: quarter.clone(),
            },
        });
    }
    Ok(settlements)
}

impl RedisStore {
    /// Takes over entries idle for `claim_idle`, then reads new ones.
    async fn deliver_once(
        &self,
        county: &CountyCode,
        consumer: &str,
        claim_idle: Duration,
        limit: usize,
    ) -> Result<Result<Vec<Delivery>, RedisError>, StoreError> {
        let key = CountyKeys::new(county).events();
        let mut connection = self.connection().await?;
        let idle_ms = u64::try_from(claim_idle.as_millis()).unwrap_or(u64::MAX);
        let claimed: Value = match redis::cmd("XAUTOCLAIM")
            .arg(&key)
            .arg(SETTLEMENT_GROUP)
            .arg(consumer)
            .arg(idle_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut connection)
            .await
        {
            Ok(value) => value,
            Err(err) if is_no_group(&err) => return Ok(Err(err)),
            Err(err) => return Err(command_failed(err)),
        };

        let mut parts = items(claimed)
            .ok_or_else(|| unexpected(&key, "an XAUTOCLAIM reply"))?
            .into_iter();
        let entries = parts.nth(1).and_then(items).unwrap_or_default();
        let deleted = parts.next().and_then(items).unwrap_or_default();
        let mut deliveries = Vec::new();
        for entry in entries {
            // Redis before 7 replies nil for an entry trimmed away.
            if entry != Value::Nil {
                deliveries.push(delivery(county, &key, entry)?);
            }
        }
        if !deleted.is_empty() {
            let ids: Vec<String> = deleted.iter().filter_map(text).collect();
            warn!(
                county = %county,
                entries = ids.len(),
                "events taken by a consumer were trimmed from the log before acknowledged; the rating window sweep settles their orders"
            );
            self.acknowledge_events(county, &ids).await?;
        }

        let room = limit.saturating_sub(deliveries.len());
        if room > 0 {
            let read: Value = match redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(SETTLEMENT_GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(room)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query_async(&mut connection)
                .await
            {
                Ok(value) => value,
                Err(err) if is_no_group(&err) => return Ok(Err(err)),
                Err(err) => return Err(command_failed(err)),
            };
            for entry in stream_entries(read) {
                deliveries.push(delivery(county, &key, entry)?);
            }
        }
        Ok(Ok(deliveries))
    }

    /// Creates the settlement group at the start of the events stream,
    /// unless it exists.
    async fn create_group(&self, county: &CountyCode) -> Result<(), StoreError> {
        let key = CountyKeys::new(county).events();
        let mut connection = self.connection().await?;
        let created: Result<Value, RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(SETTLEMENT_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut connection)
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another process created it in the meantime.
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            Err(err) => Err(command_failed(err)),
        }
    }
}

/// Returns the entries of an XREADGROUP reply on one stream: nil when
/// there are none, `[[key, entries]]` in RESP2, `{key: entries}` in RESP3.
fn stream_entries(value: Value) -> Vec<Value> {
    match value {
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| items(entries).unwrap_or_default())
            .collect(),
        value => items(value)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|stream| {
                items(stream)
                    .and_then(|parts| parts.into_iter().nth(1))
                    .and_then(items)
                    .unwrap_or_default()
            })
            .collect(),
    }
}

fn delivery(county: &CountyCode, key: &str, entry: Value) -> Result<Delivery, StoreError> {
    let id = items(entry.clone())
        .and_then(|parts| parts.first().and_then(text))
        .ok_or_else(|| unexpected(key, "an entry id"))?;
    Ok(Delivery {
        id,
        event: event(county, key, entry)?,
    })
}

/// Sums the 15 counters of a quarter's three months into a tally; a nil
/// counter counts 0.
fn quarter_tally(subject: &str, values: Vec<Value>) -> Result<Tally, StoreError> {
    if values.len() != 3 * COUNTERS.len() {
        return Err(unexpected(subject, "15 counters"));
    }
    let mut tally = Tally::default();
    for (index, value) in values.iter().enumerate() {
        let number: i64 = match value {
            Value::Nil => 0,
            value => text(value)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| unexpected(subject, "a numeric counter"))?,
        };
        let slot = match COUNTERS[index % COUNTERS.len()] {
            "class1" => &mut tally.class1_orders,
            "class2" => &mut tally.class2_orders,
            "satisfied" => &mut tally.satisfied,
            "unsatisfied" => &mut tally.unsatisfied,
            _ => &mut tally.points_tenths,
        };
        *slot += number;
    }
    Ok(tally)
}

/// Parses one entry of the ledger stream `key`.
fn ledger_entry(county: &CountyCode, key: &str, entry: Value) -> Result<Settlement, StoreError> {
    let mut parts = items(entry)
        .ok_or_else(|| unexpected(key, "an entry id and fields"))?
        .into_iter();
    let entry_id = parts.next().as_ref().and_then(text).unwrap_or_default();
    let fields: std::collections::HashMap<String, String> = parts
        .next()
        .and_then(pairs)
        .ok_or_else(|| unexpected(key, "entry fields"))?
        .into_iter()
        .collect();
    let invalid = |name: &str| StoreError::Corrupt {
        order: format!("{key} entry {entry_id}"),
        reason: format!("missing or invalid field {name}"),
    };
    let field = |name: &str| {
        fields
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| invalid(name))
    };

    let rating = match field("rating")? {
        "" => None,
        rating => Some(Rating::parse(rating).ok_or_else(|| invalid("rating"))?),
    };
    Ok(Settlement {
        order: OrderId::new(
            county.clone(),
            field("order")?.parse().map_err(|_| invalid("order"))?,
        ),
        agent: AgentId::parse(field("agent")?).map_err(|_| invalid("agent"))?,
        class: field("class")?
            .parse()
            .ok()
            .and_then(MatterClass::from_number)
            .ok_or_else(|| invalid("class"))?,
        rating,
        points_tenths: field("points")?.parse().map_err(|_| invalid("points"))?,
        settle_time: parse_millis(field("time")?).ok_or_else(|| invalid("time"))?,
        period: Period {
            month: field("month")?.to_owned(),
            quarter: field("quarter")?.to_owned(),
        },
    })
}

fn decode_statement(subject: &str, json: &str) -> Result<FrozenStatement, StoreError> {
    serde_json::from_str(json).map_err(|err| StoreError::Corrupt {
        order: subject.to_owned(),
        reason: format!("unreadable frozen statement: {err}"),
    })
}

#[async_trait]
impl Ledger for RedisStore {
    async fn deliver_events(
        &self,
        county: &CountyCode,
        consumer: &str,
        claim_idle: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self
            .deliver_once(county, consumer, claim_idle, limit)
            .await?
        {
            Ok(deliveries) => Ok(deliveries),
            // The group is missing on first use, and after Redis lost its
            // data; created at the stream's start, it delivers every event
            // kept, and settling is idempotent.
            Err(_) => {
                self.create_group(county).await?;
                self.deliver_once(county, consumer, claim_idle, limit)
                    .await?
                    .map_err(command_failed)
            }
        }
    }

    async fn acknowledge_events(
        &self,
        county: &CountyCode,
        ids: &[String],
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = CountyKeys::new(county).events();
        let mut connection = self.connection().await?;
        let _: Value = redis::cmd("XACK")
            .arg(&key)
            .arg(SETTLEMENT_GROUP)
            .arg(ids)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        Ok(())
    }

    async fn settle_rated(
        &self,
        id: &OrderId,
        now: DateTime<Utc>,
    ) -> Result<Option<Settlement>, StoreError> {
        let order = self.order(id).await?;
        if order.state == OrderState::Settled {
            return Ok(None);
        }
        let conflict = || StoreError::StateConflict {
            order: id.clone(),
            state: order.state,
            action: action::SETTLED,
        };
        if order.state != OrderState::Completed {
            return Err(conflict());
        }
        let (Some(rating), Some(rate_time)) = (order.rating, order.rate_time) else {
            return Err(conflict());
        };
        let (Some(agent), Some(class)) = (order.agent.clone(), order.matter_class()) else {
            return Err(unexpected(id, "a completed order with agent and matter"));
        };

        let points = points_tenths(class, Some(rating));
        let mut args = vec![
            id.sequence().to_string(),
            agent.to_string(),
            class.number().to_string(),
            rating.as_str().to_owned(),
            points.to_string(),
            tally(Some(rating)).to_owned(),
            millis(rate_time),
        ];
        push_periods(&mut args, booking_periods(rate_time, now));
        let keys = CountyKeys::new(id.county());
        let value = self
            .invoke(&SCRIPTS.settle, &keys, keys.order(id.sequence()), args)
            .await?;
        let call = Call {
            id,
            action: action::SETTLED,
            agent: None,
        };
        let reply: Vec<Option<String>> = script_result(value, &call)?.iter().map(text).collect();
        match reply.as_slice() {
            [Some(status)] if status == "already" => Ok(None),
            [Some(status), Some(quarter), Some(month)] if status == "settled" => {
                Ok(Some(Settlement {
                    order: id.clone(),
                    agent,
                    class,
                    rating: Some(rating),
                    points_tenths: points,
                    settle_time: rate_time,
                    period: Period {
                        month: month.clone(),
                        quarter: quarter.clone(),
                    },
                }))
            }
            _ => Err(unexpected(id, "'settled' or 'already'")),
        }
    }

    async fn ledger(&self, county: &CountyCode) -> Result<Vec<Settlement>, StoreError> {
        let key = key(&CountyKeys::new(county), "ledger");
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        items(value)
            .ok_or_else(|| unexpected(&key, "a list of entries"))?
            .into_iter()
            .map(|entry| ledger_entry(county, &key, entry))
            .collect()
    }

    async fn county_points(&self, county: &CountyCode) -> Result<Vec<MonthTotals>, StoreError> {
        let key = key(&CountyKeys::new(county), "county_points");
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let pairs = pairs(value).ok_or_else(|| unexpected(&key, "a hash of month totals"))?;
        month_totals(&key, pairs)
    }

    async fn quarter_totals(
        &self,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<QuarterTotals, StoreError> {
        let keys = CountyKeys::new(county);
        let set = key(&keys, &format!("quarter:{quarter}:agents"));
        let args = quarter.months().to_vec();
        let value = self
            .invoke(&SCRIPTS.quarter_totals, &keys, set.clone(), args)
            .await?;

        let mut parts = items(value)
            .ok_or_else(|| unexpected(&set, "the quarter's totals"))?
            .into_iter();
        let county_counters = parts
            .next()
            .and_then(items)
            .ok_or_else(|| unexpected(&set, "the county's counters"))?;
        let mut totals = QuarterTotals {
            agents: Vec::new(),
            county: quarter_tally(&set, county_counters)?,
        };
        for part in parts {
            let mut agent_parts = items(part)
                .ok_or_else(|| unexpected(&set, "an agent and counters"))?
                .into_iter();
            let agent = agent_parts
                .next()
                .as_ref()
                .and_then(text)
                .and_then(|a| AgentId::parse(&a).ok())
                .ok_or_else(|| unexpected(&set, "an agent id"))?;
            let counters = agent_parts
                .next()
                .and_then(items)
                .ok_or_else(|| unexpected(&set, "an agent's counters"))?;
            totals.agents.push((agent, quarter_tally(&set, counters)?));
        }
        totals.agents.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(totals)
    }

    async fn close_quarter(
        &self,
        county: &CountyCode,
        quarter: Quarter,
        now: DateTime<Utc>,
    ) -> Result<QuarterClosing, StoreError> {
        let key = key(&CountyKeys::new(county), "closed");
        let mut connection = self.connection().await?;
        let (set, stored): (bool, String) = redis::pipe()
            .atomic()
            .cmd("HSETNX")
            .arg(&key)
            .arg(quarter.to_string())
            .arg(millis(now))
            .cmd("HGET")
            .arg(&key)
            .arg(quarter.to_string())
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let close_time =
            parse_millis(&stored).ok_or_else(|| unexpected(&key, "a close time in ms"))?;
        Ok(if set {
            QuarterClosing::Closed(close_time)
        } else {
            QuarterClosing::AlreadyClosed(close_time)
        })
    }

    async fn quarter_close(
        &self,
        county: &CountyCode,
        quarter: Quarter,
    ) -> Result<Option<QuarterClose>, StoreError> {
        let keys = CountyKeys::new(county);
        let closed = key(&keys, "closed");
        let statements = key(&keys, "statements");
        let mut connection = self.connection().await?;
        let (close_time, statement): (Option<String>, Option<String>) = redis::pipe()
            .atomic()
            .hget(&closed, quarter.to_string())
            .hget(&statements, quarter.to_string())
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let Some(close_time) = close_time else {
            return Ok(None);
        };
        let close_time =
            parse_millis(&close_time).ok_or_else(|| unexpected(&closed, "a close time in ms"))?;
        let statement = statement
            .map(|json| decode_statement(&statements, &json))
            .transpose()?;
        Ok(Some(QuarterClose {
            close_time,
            statement,
        }))
    }

    async fn freeze_statement(
        &self,
        county: &CountyCode,
        quarter: Quarter,
        statement: &FrozenStatement,
    ) -> Result<FrozenStatement, StoreError> {
        let keys = CountyKeys::new(county);
        let statements = key(&keys, "statements");
        let json = serde_json::to_string(statement).map_err(|err| StoreError::Corrupt {
            order: statements.clone(),
            reason: format!("statement not serializable: {err}"),
        })?;
        let args = vec![quarter.to_string(), json];
        let value = self
            .invoke(&SCRIPTS.freeze_statement, &keys, statements.clone(), args)
            .await?;
        let reply: Vec<Option<String>> = items(value)
            .ok_or_else(|| unexpected(&statements, "a reply"))?
            .iter()
            .map(text)
            .collect();
        match reply.as_slice() {
            [Some(status), Some(json)] if status == "ok" => decode_statement(&statements, json),
            [Some(status), Some(_), Some(reason)] if status == "err" => Err(StoreError::Corrupt {
                order: format!("county {county} quarter {quarter}"),
                reason: reason.clone(),
            }),
            _ => Err(unexpected(&statements, "the stored statement")),
        }
    }

    async fn completed_orders(
        &self,
        county: &CountyCode,
        period: &str,
    ) -> Result<Vec<(AgentId, u64)>, StoreError> {
        let key = key(&CountyKeys::new(county), &format!("completed:{period}"));
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let mut counts = Vec::new();
        for (agent, score) in pairs(value).ok_or_else(|| unexpected(&key, "agents and scores"))? {
            let agent = AgentId::parse(&agent).map_err(|_| unexpected(&key, "an agent id"))?;
            // Scores are whole counts, which a double represents exactly.
            let score: f64 = score
                .parse()
                .map_err(|_| unexpected(&key, "a numeric score"))?;
            counts.push((agent, score as u64));
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(counts)
    }
}

/// The extra ARGV of `complete.lua`: the year and quarter whose counts of
/// completed orders grow.
pub(super) fn completion_args(now: DateTime<Utc>) -> [String; 2] {
    completion_periods(now)
}
