//! Parsing the replies of Redis and of the store's Lua scripts: orders,
//! events, month totals and script failures.
//!
//! A script returns either its result or a failure as a value (see
//! `lua/common.lua`), and [`script_result`] maps the failures to
//! `StoreError`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use daiban_domain::{AgentId, CountyCode, GridCode, OrderId, OrderState, WorkOrder};
use redis::Value;

use super::order_hash::{decode, parse_millis};
use crate::{Event, EventKind, MonthTotals, StoreError};

/// Returns the text of a string or integer reply.
pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

/// Returns the items of an array reply.
pub(super) fn items(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

/// Returns the field, value pairs of a hash reply: a flat array in RESP2,
/// a map in RESP3.
pub(super) fn pairs(value: Value) -> Option<Vec<(String, String)>> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .map(|(field, value)| Some((text(field)?, text(value)?)))
            .collect(),
        value => {
            let items = items(value)?;
            if items.len() % 2 != 0 {
                return None;
            }
            items
                .chunks(2)
                .map(|pair| Some((text(&pair[0])?, text(&pair[1])?)))
                .collect()
        }
    }
}

/// Parses an order from a hash reply.
pub(super) fn order(id: &OrderId, value: Value) -> Result<WorkOrder, StoreError> {
    let pairs = pairs(value).ok_or_else(|| unexpected(id, "an order's hash"))?;
    decode(id, pairs)
}

/// Builds the error for a reply about `subject`, an order or another key,
/// that does not have the shape the store wrote.
pub(super) fn unexpected(subject: impl std::fmt::Display, expected: &str) -> StoreError {
    StoreError::Corrupt {
        order: subject.to_string(),
        reason: format!("unexpected reply from redis, expected {expected}"),
    }
}

/// The context of a script call on order `id`, named in the errors that
/// its failures map to.
pub(super) struct Call<'a> {
    pub(super) id: &'a OrderId,
    pub(super) action: &'static str,
    pub(super) agent: Option<&'a AgentId>,
}

/// Returns the items after `'ok'` of a script reply, or maps the failure
/// that the script returned to a `StoreError`.
pub(super) fn script_result(value: Value, call: &Call<'_>) -> Result<Vec<Value>, StoreError> {
    let id = call.id;
    let mut items = items(value)
        .ok_or_else(|| unexpected(id, "an array"))?
        .into_iter();
    let status = items.next().as_ref().and_then(text);
    match status.as_deref() {
        Some("ok") => Ok(items.collect()),
        Some("err") => Err(failure(items.map(|item| text(&item)).collect(), call)),
        _ => Err(unexpected(id, "'ok' or 'err' first")),
    }
}

fn failure(details: Vec<Option<String>>, call: &Call<'_>) -> StoreError {
    let id = call.id;
    let detail = |index: usize| details.get(index).cloned().flatten();
    match detail(0).as_deref() {
        Some("not_found") => StoreError::OrderNotFound(id.clone()),
        Some("already_claimed") => StoreError::AlreadyClaimed { order: id.clone() },
        Some("already_rated") => StoreError::AlreadyRated { order: id.clone() },
        Some("reserved") => reserved(id, detail(1), detail(2)),
        Some("conflict") => match detail(1).as_deref().and_then(OrderState::parse) {
            Some(state) => StoreError::StateConflict {
                order: id.clone(),
                state,
                action: call.action,
            },
            None => unexpected(id, "a known state in a conflict"),
        },
        Some("not_holder") => match call.agent {
            Some(agent) => StoreError::NotHolder {
                order: id.clone(),
                agent: agent.clone(),
            },
            None => unexpected(id, "no not_holder failure from a call without an agent"),
        },
        // A caller error that the trait has no variant for; the in-memory
        // store reports it the same way.
        Some("no_matter") => StoreError::Corrupt {
            order: id.to_string(),
            reason: "completed without a matter".to_owned(),
        },
        Some("corrupt") => StoreError::Corrupt {
            order: id.to_string(),
            reason: detail(1).unwrap_or_default(),
        },
        _ => unexpected(id, "a known failure"),
    }
}

fn reserved(id: &OrderId, grid: Option<String>, until: Option<String>) -> StoreError {
    let grid = grid.and_then(|grid| GridCode::parse(&grid).ok());
    let until: Option<DateTime<Utc>> = until.as_deref().and_then(parse_millis);
    match (grid, until) {
        (Some(grid), Some(until)) => StoreError::ReservedForGrid {
            order: id.clone(),
            grid,
            until,
        },
        _ => StoreError::Corrupt {
            order: id.to_string(),
            reason: "invalid field grid or widen_time".to_owned(),
        },
    }
}

/// Parses the county's orders from a batch reply of `{sequence, fields}`
/// items.
pub(super) fn orders_of(county: &CountyCode, value: Value) -> Result<Vec<WorkOrder>, StoreError> {
    let entries = items(value).ok_or_else(|| unexpected(county, "a list of orders"))?;
    let mut orders = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut parts = items(entry)
            .ok_or_else(|| unexpected(county, "a sequence number and fields"))?
            .into_iter();
        let (Some(sequence), Some(fields)) = (parts.next(), parts.next()) else {
            return Err(unexpected(county, "a sequence number and fields"));
        };
        let id = OrderId::new(county.clone(), parse_sequence(county, &sequence)?);
        orders.push(order(&id, fields)?);
    }
    Ok(orders)
}

pub(super) fn parse_sequence(county: &CountyCode, value: &Value) -> Result<u64, StoreError> {
    text(value)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| unexpected(county, "a sequence number"))
}

/// Parses one entry of the events stream `key`.
pub(super) fn event(county: &CountyCode, key: &str, entry: Value) -> Result<Event, StoreError> {
    let mut parts = items(entry)
        .ok_or_else(|| unexpected(key, "an entry id and fields"))?
        .into_iter();
    let (Some(entry_id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(unexpected(key, "an entry id and fields"));
    };
    let entry_id = text(&entry_id).unwrap_or_default();
    let fields: BTreeMap<String, String> = pairs(fields)
        .ok_or_else(|| unexpected(key, "entry fields"))?
        .into_iter()
        .collect();
    let invalid = |name: &str| StoreError::Corrupt {
        order: format!("{key} entry {entry_id}"),
        reason: format!("missing or invalid field {name}"),
    };
    let field = |name: &str| fields.get(name).map(String::as_str);

    let sequence = field("order")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("order"))?;
    let agent = match field("agent").ok_or_else(|| invalid("agent"))? {
        "" => None,
        agent => Some(AgentId::parse(agent).map_err(|_| invalid("agent"))?),
    };
    Ok(Event {
        order: OrderId::new(county.clone(), sequence),
        kind: field("kind")
            .and_then(EventKind::parse)
            .ok_or_else(|| invalid("kind"))?,
        agent,
        time: field("time")
            .and_then(parse_millis)
            .ok_or_else(|| invalid("time"))?,
    })
}

/// Parses an agent's points hash `key` into month totals, newest month
/// first. Every month must have all five counters.
pub(super) fn month_totals(
    key: &str,
    pairs: Vec<(String, String)>,
) -> Result<Vec<MonthTotals>, StoreError> {
    let invalid = |field: &str| StoreError::Corrupt {
        order: key.to_owned(),
        reason: format!("invalid field {field}"),
    };
    let mut months: BTreeMap<String, (MonthTotals, u8)> = BTreeMap::new();
    for (field, value) in pairs {
        let (month, counter) = field.rsplit_once(':').ok_or_else(|| invalid(&field))?;
        let value: i64 = value.parse().map_err(|_| invalid(&field))?;
        let (totals, seen) = months.entry(month.to_owned()).or_insert_with(|| {
            let totals = MonthTotals {
                month: month.to_owned(),
                ..MonthTotals::default()
            };
            (totals, 0)
        });
        let (slot, bit) = match counter {
            "class1" => (&mut totals.class1_orders, 1),
            "class2" => (&mut totals.class2_orders, 2),
            "satisfied" => (&mut totals.satisfied, 4),
            "unsatisfied" => (&mut totals.unsatisfied, 8),
            "points" => (&mut totals.points_tenths, 16),
            _ => return Err(invalid(&field)),
        };
        *slot = value;
        *seen |= bit;
    }
    let mut totals = Vec::with_capacity(months.len());
    for (month, (month_totals, seen)) in months.into_iter().rev() {
        if seen != 31 {
            return Err(StoreError::Corrupt {
                order: key.to_owned(),
                reason: format!("month {month} lacks some of its five counters"),
            });
        }
        totals.push(month_totals);
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use daiban_domain::CountyCode;

    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn call(id: &OrderId) -> Call<'_> {
        Call {
            id,
            action: crate::action::CLAIMED,
            agent: None,
        }
    }

    #[test]
    fn failures_map_to_store_errors() {
        let id = OrderId::new(CountyCode::parse("431127").expect("valid county code"), 7);
        let reply = Value::Array(vec![bulk("err"), bulk("conflict"), bulk("cancelled")]);
        let err = script_result(reply, &call(&id)).expect_err("a conflict");
        assert!(
            matches!(
                err,
                StoreError::StateConflict {
                    state: OrderState::Cancelled,
                    action: "claimed",
                    ..
                }
            ),
            "{err}"
        );

        let reply = Value::Array(vec![
            bulk("err"),
            bulk("reserved"),
            bulk("431127100202"),
            bulk("1795400000000"),
        ]);
        let err = script_result(reply, &call(&id)).expect_err("reserved");
        assert!(
            matches!(&err, StoreError::ReservedForGrid { grid, .. } if grid.as_str() == "431127100202"),
            "{err}"
        );

        let reply = Value::Array(vec![bulk("err"), bulk("something_new")]);
        let err = script_result(reply, &call(&id)).expect_err("unknown failure");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn ok_returns_the_rest() {
        let id = OrderId::new(CountyCode::parse("431127").expect("valid county code"), 7);
        let reply = Value::Array(vec![bulk("ok"), bulk("a"), Value::Int(3)]);
        let rest = script_result(reply, &call(&id)).expect("ok");
        assert_eq!(rest.len(), 2);
        assert_eq!(text(&rest[1]).as_deref(), Some("3"));
    }

    #[test]
    fn month_totals_need_all_counters() {
        let pair = |field: &str, value: &str| (field.to_owned(), value.to_owned());
        let complete = vec![
            pair("2026-11:class1", "2"),
            pair("2026-11:class2", "0"),
            pair("2026-11:satisfied", "1"),
            pair("2026-11:unsatisfied", "0"),
            pair("2026-11:points", "40"),
            pair("2026-12:class1", "0"),
            pair("2026-12:class2", "1"),
            pair("2026-12:satisfied", "0"),
            pair("2026-12:unsatisfied", "0"),
            pair("2026-12:points", "20"),
        ];
        let totals = month_totals("k", complete.clone()).expect("complete months parse");
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].month, "2026-12");
        assert_eq!(totals[1].points_tenths, 40);

        let mut partial = complete;
        partial.pop();
        let err = month_totals("k", partial).expect_err("a month lacks its points");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
