//! The Redis store: every county's order state in Redis, shared by any
//! number of daiban processes.
//!
//! Every state change is one Lua script (in `lua/`, each sent after
//! `lua/common.lua`), so it is atomic and two processes never act on the
//! same order twice. `submit` is one script too: it looks up the request
//! id and takes the sequence and daily numbers, so a retry, racing or
//! not, takes no number. The points rules stay in
//! Rust: the scripts get the points computed by
//! `daiban_domain::points_tenths` and the month of `Period::of`.
//!
//! # Key layout
//!
//! Every key of a county starts with `daiban:{<county code>}:`. The hash
//! tag in braces puts all of a county's keys in one Redis Cluster slot, so
//! a script may touch any of them. Each script declares its main key and
//! derives the others from the prefix; tests/cluster.rs runs the
//! conformance suite on a three-master cluster.
//!
//! For county `431127`, with times in milliseconds since the epoch:
//!
//! - `daiban:{431127}:seq` (string): the county's last order sequence
//!   number.
//! - `daiban:{431127}:day:<yyyymmdd>` (string): the orders created on that
//!   UTC+8 day, behind the order numbers; it expires after 3 days.
//! - `daiban:{431127}:order:<seq>` (hash): one order; `order_hash` lists the
//!   fields.
//! - `daiban:{431127}:requests:<n>` (hash): request id to the sequence
//!   number of the order submitted with it, spread over 65,536 hashes by a
//!   hash of the request id (`keys::request_bucket`). Orders submitted
//!   before have the string `daiban:{431127}:request:<request id>`.
//! - `daiban:{431127}:grid_phase:<grid>:<bucket>` (sorted set): the grid's
//!   orders in their grid phase whose sequence number divided by 8192 is
//!   `bucket`, scored by the end of the grid phase. Buckets keep each set
//!   small, so Redis stores most in its compact listpack encoding.
//! - `daiban:{431127}:grid_buckets:<grid>` (sorted set): the grid's
//!   non-empty buckets, scored by the earliest end in each.
//! - `daiban:{431127}:grid_phases` (sorted set): the grids with orders in
//!   their grid phase, scored by the earliest end among them.
//! - `daiban:{431127}:open:county` (sorted set): the orders offered
//!   county-wide, scored by sequence number.
//! - `daiban:{431127}:widen` (sorted set) and
//!   `daiban:{431127}:open:grid:<grid>` (sorted set): orders put in their
//!   grid phase before the grid phase schedules, scored by its end and by
//!   sequence number. The scripts still widen and list them.
//! - `daiban:{431127}:escalate` (sorted set): unclaimed orders offered
//!   county-wide, scored by their escalation time. An order in its grid
//!   phase keeps that time in its hash until it widens, so it is on one
//!   schedule, not two.
//! - `daiban:{431127}:settle` (sorted set): completed orders, scored by the
//!   end of their rating window.
//! - `daiban:{431127}:events` (stream): one entry per state change with the
//!   fields `order` (sequence number), `kind`, `agent` (empty when no agent
//!   acted) and `time`, trimmed to about 100 000 entries.
//! - `daiban:{431127}:outbox` (sorted set): notifications owed, as
//!   `<kind>:<sequence>` (kind `submitted`, `widened`, `released` or
//!   `escalated`), scored by the time from which a dispatcher may take
//!   them; a taken one is re-scored to the end of its lease.
//! - `daiban:{431127}:points:<agent>` (hash): the agent's month totals, as
//!   the fields `<yyyy-mm>:class1`, `:class2`, `:satisfied`,
//!   `:unsatisfied` and `:points` (in tenths).
//! - `daiban:{431127}:ledger` (stream): one entry per settlement with the
//!   fields `order`, `agent`, `class`, `rating` (empty when the window
//!   passed), `points`, `time` (of settlement), and the `month` and
//!   `quarter` it is booked in; never trimmed.
//!
//! The `ledger` module lists the keys of quarters, statements and the
//! settlement group.

mod connection;
mod keys;
mod ledger;
mod order_hash;
mod overview;
mod reply;
mod sms;
mod stats;

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, CountyCode, GridCode, Matter, OrderId, OrderState, Rating, WorkOrder, WorkResult,
    order_day,
};
use redis::{RedisError, Script, Value};

pub use self::connection::RedisStoreError;
use self::connection::{Backend, Connection};
use self::keys::CountyKeys;
use self::order_hash::millis;
use self::reply::{
    Call, event, items, month_totals, orders_of, pairs, parse_sequence, script_result, text,
    unexpected,
};
use crate::{Announcement, AnnouncementKind, EventBatch, EventCursor};
use crate::{Event, MonthTotals, NewOrder, Settlement, Store, StoreError, Submitted, action};

/// Longest wait of one `read_events` call, below the connection's response
/// timeout so that a quiet stream is not taken for a dead connection.
const MAX_EVENT_WAIT: Duration = Duration::from_secs(2);

/// The store on Redis, through a pool of multiplexed connections. Clones
/// share the pool.
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend,
}

struct Scripts {
    submit: Script,
    claim: Script,
    release: Script,
    complete: Script,
    cancel: Script,
    rate: Script,
    widen_due: Script,
    escalate_due: Script,
    open_orders: Script,
    take_announcements: Script,
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// The scripts, hashed once. `Script` sends EVALSHA and falls back to
/// loading the script when Redis replies NOSCRIPT, as it does after a
/// restart.
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    submit: script!("submit.lua"),
    claim: script!("claim.lua"),
    release: script!("release.lua"),
    complete: script!("complete.lua"),
    cancel: script!("cancel.lua"),
    rate: script!("rate.lua"),
    widen_due: script!("widen_due.lua"),
    escalate_due: script!("escalate_due.lua"),
    open_orders: script!("open_orders.lua"),
    take_announcements: script!("take_announcements.lua"),
});

impl RedisStore {
    async fn connection(&self) -> Result<Connection, StoreError> {
        self.backend
            .get()
            .await
            .map_err(|err| StoreError::Unavailable(format!("no redis connection: {err}")))
    }

    /// Runs `script` with `key` as KEYS[1] and the county prefix followed
    /// by `args` as ARGV.
    async fn invoke(
        &self,
        script: &Script,
        keys: &CountyKeys,
        key: String,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.key(key).arg(keys.prefix());
        for arg in args {
            invocation.arg(arg);
        }
        let mut connection = self.connection().await?;
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(command_failed)
    }

    /// Runs a script that changes order `call.id` and returns it.
    async fn change_order(
        &self,
        script: &Script,
        call: Call<'_>,
        args: Vec<String>,
    ) -> Result<WorkOrder, StoreError> {
        let id = call.id;
        let keys = CountyKeys::new(id.county());
        let mut args = args;
        args.insert(0, id.sequence().to_string());
        let value = self
            .invoke(script, &keys, keys.order(id.sequence()), args)
            .await?;
        let fields = script_result(value, &call)?
            .into_iter()
            .next()
            .ok_or_else(|| unexpected(id, "the order's fields"))?;
        reply::order(id, fields)
    }
}

/// Builds the ARGV of `submit.lua` after the prefix from `draft`, the new
/// order with placeholder numbers, which the script leaves out and takes
/// itself.
fn submit_args(draft: &WorkOrder, escalate_at: DateTime<Utc>) -> Vec<String> {
    let grid_phase_until = match draft.state {
        OrderState::OfferedToGrid => millis(draft.widen_time),
        _ => String::new(),
    };
    let grid = draft.grid.as_ref().map(GridCode::to_string);
    let mut args = vec![
        order_day(draft.create_time),
        grid_phase_until,
        grid.unwrap_or_default(),
        millis(escalate_at),
        millis(draft.create_time),
        draft.request_id.clone().unwrap_or_default(),
    ];
    for (field, value) in order_hash::encode(draft) {
        if field != "n" && field != "cc" {
            args.push(field.to_owned());
            args.push(value);
        }
    }
    args
}

/// Maps the reply of `submit.lua` to the result of `submit`, building a
/// created order from `new` and the numbers the script took.
fn submitted(new: NewOrder, value: Value) -> Result<Submitted, StoreError> {
    let county = new.county.clone();
    let items = items(value).ok_or_else(|| unexpected(&county, "an array"))?;
    match items.first().and_then(text).as_deref() {
        Some("created") => created(new, items),
        Some("existing") => {
            let mut rest = items.into_iter().skip(1);
            let (Some(sequence), Some(fields)) = (rest.next(), rest.next()) else {
                return Err(unexpected(&county, "the existing order"));
            };
            let id = OrderId::new(county.clone(), parse_sequence(&county, &sequence)?);
            reply::order(&id, fields).map(Submitted::Existing)
        }
        _ => {
            // `submit.lua` returns no failure but 'corrupt', so the action
            // named here never reaches a `StateConflict`. No order was
            // created, so the error names sequence number 0.
            let id = OrderId::new(county, 0);
            let call = Call {
                id: &id,
                action: "submitted",
                agent: None,
            };
            script_result(Value::Array(items), &call)?;
            Err(unexpected(&id, "'created' or 'existing'"))
        }
    }
}

/// Builds the order that `submit.lua` created from `new` and the script's
/// reply `{'created', sequence, daily sequence, number, claim code}`. The
/// script computes the number and the claim code as `daiban_domain` does,
/// and a difference between the two makes the order `Corrupt`.
fn created(new: NewOrder, items: Vec<Value>) -> Result<Submitted, StoreError> {
    let county = new.county.clone();
    let [_, sequence, daily, number, claim_code] = <[Value; 5]>::try_from(items)
        .map_err(|_| unexpected(&county, "a created order's numbers"))?;
    let sequence = parse_sequence(&county, &sequence)?;
    let daily = text(&daily)
        .and_then(|daily| daily.parse().ok())
        .ok_or_else(|| unexpected(&county, "a daily sequence number"))?;
    let order = new.into_order(sequence, daily);
    let number = text(&number).unwrap_or_default();
    let claim_code = text(&claim_code).unwrap_or_default();
    if number != order.number || claim_code != order.claim_code {
        return Err(StoreError::Corrupt {
            order: order.id.to_string(),
            reason: format!(
                "submit.lua stored number {number:?} and claim code {claim_code:?}, expected {:?} and {:?}",
                order.number, order.claim_code
            ),
        });
    }
    Ok(Submitted::Created(order))
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (size, max_size) = self.backend.status();
        f.debug_struct("RedisStore")
            .field("pool_size", &size)
            .field("pool_max_size", &max_size)
            .finish()
    }
}

fn command_failed(err: RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis command failed: {err}"))
}

#[async_trait]
impl Store for RedisStore {
    async fn submit(&self, new: NewOrder) -> Result<Submitted, StoreError> {
        // One script looks up the request id, takes the numbers and writes
        // the order, so a submit is one round trip.
        let keys = CountyKeys::new(&new.county);
        let draft = new.clone().into_order(0, 0);
        let mut invocation = SCRIPTS.submit.prepare_invoke();
        invocation
            .key(keys.sequence())
            .key(keys.day(&order_day(draft.create_time)));
        if let Some(request_id) = &draft.request_id {
            invocation
                .key(keys.requests(request_id))
                .key(keys.old_request(request_id));
        }
        invocation.arg(keys.prefix());
        for arg in submit_args(&draft, new.escalate_at) {
            invocation.arg(arg);
        }
        let mut connection = self.connection().await?;
        let value = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(command_failed)?;
        submitted(new, value)
    }

    async fn order(&self, id: &OrderId) -> Result<WorkOrder, StoreError> {
        let keys = CountyKeys::new(id.county());
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("HGETALL")
            .arg(keys.order(id.sequence()))
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let pairs = pairs(value).ok_or_else(|| unexpected(id, "an order's hash"))?;
        if pairs.is_empty() {
            return Err(StoreError::OrderNotFound(id.clone()));
        }
        order_hash::decode(id, pairs)
    }

    async fn claim(
        &self,
        id: &OrderId,
        agent: &AgentId,
        agent_grid: &GridCode,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let call = Call {
            id,
            action: action::CLAIMED,
            agent: Some(agent),
        };
        let args = vec![agent.to_string(), agent_grid.to_string(), millis(now)];
        self.change_order(&SCRIPTS.claim, call, args).await
    }

    async fn release(
        &self,
        id: &OrderId,
        agent: &AgentId,
        _reason: &str,
        now: DateTime<Utc>,
        escalate_at: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let call = Call {
            id,
            action: action::RELEASED,
            agent: Some(agent),
        };
        let args = vec![agent.to_string(), millis(now), millis(escalate_at)];
        self.change_order(&SCRIPTS.release, call, args).await
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
        let call = Call {
            id,
            action: action::COMPLETED,
            agent: Some(agent),
        };
        let (code, name, class, department) = match matter {
            Some(matter) => (
                matter.code.to_string(),
                matter.name,
                matter.class.number().to_string(),
                matter.department,
            ),
            None => Default::default(),
        };
        let mut args = vec![
            agent.to_string(),
            millis(now),
            millis(settle_at),
            result.text,
            result.reference,
            code,
            name,
            class,
            department,
        ];
        args.extend(ledger::completion_args(now));
        self.change_order(&SCRIPTS.complete, call, args).await
    }

    async fn cancel(
        &self,
        id: &OrderId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let call = Call {
            id,
            action: action::CANCELLED,
            agent: None,
        };
        let args = vec![reason.to_owned(), millis(now)];
        self.change_order(&SCRIPTS.cancel, call, args).await
    }

    async fn rate(
        &self,
        id: &OrderId,
        rating: Rating,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        let call = Call {
            id,
            action: action::RATED,
            agent: None,
        };
        let args = vec![rating.as_str().to_owned(), comment.to_owned(), millis(now)];
        self.change_order(&SCRIPTS.rate, call, args).await
    }

    async fn widen_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let args = vec![millis(now), limit.to_string()];
        let value = self
            .invoke(&SCRIPTS.widen_due, &keys, keys.grid_phases(), args)
            .await?;
        orders_of(county, value)
    }

    async fn escalate_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let args = vec![millis(now), limit.to_string()];
        let value = self
            .invoke(&SCRIPTS.escalate_due, &keys, keys.escalate(), args)
            .await?;
        orders_of(county, value)
    }

    async fn settle_due(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Settlement>, StoreError> {
        ledger::settle_due(self, county, now, limit).await
    }

    async fn next_deadline(
        &self,
        county: &CountyCode,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let keys = CountyKeys::new(county);
        let mut pipe = redis::pipe();
        let schedules = [
            keys.grid_phases(),
            keys.old_widen(),
            keys.escalate(),
            keys.settle(),
        ];
        for schedule in schedules {
            pipe.cmd("ZRANGE")
                .arg(schedule)
                .arg(0)
                .arg(0)
                .arg("WITHSCORES");
        }
        let mut connection = self.connection().await?;
        let firsts: Vec<Value> = pipe
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;

        let mut earliest: Option<i64> = None;
        for first in firsts {
            let Some((_, score)) = pairs(first)
                .ok_or_else(|| unexpected(county, "a member and score"))?
                .into_iter()
                .next()
            else {
                continue;
            };
            // Scores are whole milliseconds, which a double represents exactly.
            let score: f64 = score
                .parse()
                .map_err(|_| unexpected(county, "a numeric score"))?;
            let score = score as i64;
            earliest = Some(earliest.map_or(score, |e| e.min(score)));
        }
        earliest
            .map(|ms| {
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| unexpected(county, "a score in the range of dates"))
            })
            .transpose()
    }

    async fn open_orders(
        &self,
        county: &CountyCode,
        grid: &GridCode,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let args = vec![millis(now), limit.to_string(), grid.to_string()];
        let value = self
            .invoke(&SCRIPTS.open_orders, &keys, keys.grid_buckets(grid), args)
            .await?;
        orders_of(county, value)
    }

    async fn agent_points(
        &self,
        county: &CountyCode,
        agent: &AgentId,
    ) -> Result<Vec<MonthTotals>, StoreError> {
        let key = CountyKeys::new(county).points(agent);
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let pairs = pairs(value).ok_or_else(|| unexpected(&key, "a hash of month totals"))?;
        month_totals(&key, pairs)
    }

    async fn events(&self, county: &CountyCode, limit: usize) -> Result<Vec<Event>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = CountyKeys::new(county).events();
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;

        let entries = items(value).ok_or_else(|| unexpected(&key, "a list of entries"))?;
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries.into_iter().rev() {
            events.push(event(county, &key, entry)?);
        }
        Ok(events)
    }

    async fn take_announcements(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Announcement>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let lease_until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let args = vec![millis(now), millis(lease_until), limit.to_string()];
        let value = self
            .invoke(&SCRIPTS.take_announcements, &keys, keys.outbox(), args)
            .await?;
        let entries = items(value).ok_or_else(|| unexpected(county, "a list of announcements"))?;
        let mut taken = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut parts = items(entry)
                .ok_or_else(|| unexpected(county, "a kind, sequence number and fields"))?
                .into_iter();
            let (Some(kind), Some(sequence), Some(fields)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(unexpected(county, "a kind, sequence number and fields"));
            };
            let kind = text(&kind)
                .as_deref()
                .and_then(AnnouncementKind::parse)
                .ok_or_else(|| unexpected(county, "an announcement kind"))?;
            let id = OrderId::new(county.clone(), parse_sequence(county, &sequence)?);
            taken.push(Announcement {
                kind,
                order: reply::order(&id, fields)?,
            });
        }
        Ok(taken)
    }

    async fn ack_announcement(
        &self,
        kind: AnnouncementKind,
        order: &OrderId,
    ) -> Result<(), StoreError> {
        let keys = CountyKeys::new(order.county());
        let mut connection = self.connection().await?;
        redis::cmd("ZREM")
            .arg(keys.outbox())
            .arg(format!("{}:{}", kind.as_str(), order.sequence()))
            .query_async::<()>(&mut connection)
            .await
            .map_err(command_failed)
    }

    async fn read_events(
        &self,
        county: &CountyCode,
        after: Option<&EventCursor>,
        wait: Duration,
        limit: usize,
    ) -> Result<EventBatch, StoreError> {
        let key = CountyKeys::new(county).events();
        let mut connection = self.connection().await?;
        let start = match after {
            Some(cursor) => cursor.0.clone(),
            None => {
                let last: Value = redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut connection)
                    .await
                    .map_err(command_failed)?;
                items(last)
                    .and_then(|entries| entries.into_iter().next())
                    .and_then(items)
                    .and_then(|parts| parts.first().and_then(text))
                    .unwrap_or_else(|| "0-0".to_owned())
            }
        };

        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(limit.max(1));
        let wait = wait.min(MAX_EVENT_WAIT);
        if !wait.is_zero() {
            command.arg("BLOCK").arg(wait.as_millis() as u64);
        }
        let value: Value = command
            .arg("STREAMS")
            .arg(&key)
            .arg(&start)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;

        let mut events = Vec::new();
        let mut cursor = start;
        // A reply is nil on timeout, else [[key, [[id, fields], …]]].
        let entries = items(value)
            .and_then(|streams| streams.into_iter().next())
            .and_then(items)
            .and_then(|stream| stream.into_iter().nth(1))
            .and_then(items)
            .unwrap_or_default();
        for entry in entries {
            let id = items(entry.clone())
                .and_then(|parts| parts.first().and_then(text))
                .ok_or_else(|| unexpected(&key, "an entry id"))?;
            events.push(event(county, &key, entry)?);
            cursor = id;
        }
        Ok(EventBatch {
            events,
            cursor: EventCursor(cursor),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        Ok(())
    }
}
