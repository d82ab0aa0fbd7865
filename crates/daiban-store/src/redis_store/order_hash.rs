//! The fields of an order's hash, written in full by `submit` and parsed
//! strictly on every read.
//!
//! Every order stores its field names again, so they are one to three
//! letters: [`FIELDS`] gives each its long name. Text fields are stored as
//! given and times as integer milliseconds since the epoch. A field whose
//! value is `None`, an empty text or `false` is absent from the hash. An
//! absent required field, or a value that does not parse, makes the order
//! `StoreError::Corrupt`.
//!
//! Orders written before the names were short have the long names. The
//! scripts rename their fields on first touch (`upgrade` in
//! `lua/common.lua`), and [`decode`] reads both.
//!
//! The hash also holds fields that are not part of the `WorkOrder`: `h1`,
//! `h2`, … are the order's changes after its submission, as
//! `<kind>|<agent>|<time>`, and `hn` their number (see `overview.rs`); `ea`
//! is the escalation time of an order in its grid phase, which the order is
//! scheduled for when it widens.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, Applicant, Channel, GridCode, Matter, MatterClass, MatterCode, OrderId, OrderState,
    PhoneNumber, Rating, WorkOrder, WorkResult,
};

use crate::StoreError;

/// Each field's short name, as stored, and long name, as stored before and
/// as named in errors. `lua/common.lua` keeps the same table.
pub(super) const FIELDS: [(&str, &str); 31] = [
    ("n", "number"),
    ("s", "state"),
    ("t", "request_text"),
    ("ad", "address"),
    ("an", "applicant_name"),
    ("ap", "applicant_phone"),
    ("ch", "channel"),
    ("cc", "claim_code"),
    ("ct", "create_time"),
    ("wt", "widen_time"),
    ("w", "widened"),
    ("e", "escalated"),
    ("rc", "rating_comment"),
    ("cr", "cancel_reason"),
    ("rb", "released_by"),
    ("ri", "request_id"),
    ("g", "grid"),
    ("a", "agent"),
    ("kt", "claim_time"),
    ("dt", "complete_time"),
    ("r", "rating"),
    ("rt", "rate_time"),
    ("p", "points"),
    ("st", "settle_time"),
    ("xt", "cancel_time"),
    ("mc", "matter_code"),
    ("mn", "matter_name"),
    ("mk", "matter_class"),
    ("md", "matter_department"),
    ("ot", "result_text"),
    ("or", "result_reference"),
];

/// Field, value pairs of `order`'s hash.
pub(super) fn encode(order: &WorkOrder) -> Vec<(&'static str, String)> {
    let released_by: Vec<&str> = order.released_by.iter().map(AgentId::as_str).collect();
    let mut fields = vec![
        ("n", order.number.clone()),
        ("s", order.state.as_str().to_owned()),
        ("t", order.request_text.clone()),
        ("ap", order.applicant.phone.as_str().to_owned()),
        ("ch", order.channel.as_str().to_owned()),
        ("cc", order.claim_code.clone()),
        ("ct", millis(order.create_time)),
        ("wt", millis(order.widen_time)),
    ];

    let mut optional = |name: &'static str, value: Option<String>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            fields.push((name, value));
        }
    };
    optional("ad", Some(order.address.clone()));
    optional("an", Some(order.applicant.name.clone()));
    optional("w", order.widened.then(|| "1".to_owned()));
    optional("e", order.escalated.then(|| "1".to_owned()));
    optional("rc", Some(order.rating_comment.clone()));
    optional("cr", Some(order.cancel_reason.clone()));
    // Agent ids contain no commas, so a comma separates them safely.
    optional("rb", Some(released_by.join(",")));
    optional("ri", order.request_id.clone());
    optional("g", order.grid.as_ref().map(GridCode::to_string));
    optional("a", order.agent.as_ref().map(AgentId::to_string));
    optional("kt", order.claim_time.map(millis));
    optional("dt", order.complete_time.map(millis));
    optional("r", order.rating.map(|r| r.as_str().to_owned()));
    optional("rt", order.rate_time.map(millis));
    optional("p", order.points_tenths.map(|p| p.to_string()));
    optional("st", order.settle_time.map(millis));
    optional("xt", order.cancel_time.map(millis));
    if let Some(matter) = &order.matter {
        optional("mc", Some(matter.code.to_string()));
        optional("mn", Some(matter.name.clone()));
        optional("mk", Some(matter.class.number().to_string()));
        optional("md", Some(matter.department.clone()));
    }
    if let Some(result) = &order.result {
        optional("ot", Some(result.text.clone()));
        optional("or", Some(result.reference.clone()));
    }
    fields
}

/// Parses the hash of order `id` from its field, value pairs, with short
/// or long field names.
pub(super) fn decode(id: &OrderId, pairs: Vec<(String, String)>) -> Result<WorkOrder, StoreError> {
    let mut map: HashMap<String, String> = pairs.into_iter().collect();
    // An order with long names always has `state`, as `upgrade` in
    // `lua/common.lua` also assumes, so orders with short names skip the
    // renaming.
    if map.contains_key("state") {
        map = map
            .into_iter()
            .map(
                |(name, value)| match FIELDS.iter().find(|(_, long)| *long == name) {
                    Some((short, _)) => ((*short).to_owned(), value),
                    None => (name, value),
                },
            )
            .collect();
    }
    let fields = Fields { order: id, map };

    let phone = fields.required("ap")?;
    // The stored number is not echoed, because error messages reach logs.
    let phone = PhoneNumber::parse(phone)
        .map_err(|_| fields.corrupt("invalid field applicant_phone".to_owned()))?;

    Ok(WorkOrder {
        id: id.clone(),
        number: fields.required("n")?.to_owned(),
        state: fields.parse("s", OrderState::parse)?,
        request_text: fields.required("t")?.to_owned(),
        request_id: fields.optional("ri").map(str::to_owned),
        matter: fields.matter()?,
        county: id.county().clone(),
        grid: fields.parse_optional("g", |v| GridCode::parse(v).ok())?,
        address: fields.text("ad"),
        applicant: Applicant {
            name: fields.text("an"),
            phone,
        },
        channel: fields.parse("ch", Channel::parse)?,
        claim_code: fields.required("cc")?.to_owned(),
        agent: fields.parse_optional("a", |v| AgentId::parse(v).ok())?,
        create_time: fields.parse("ct", parse_millis)?,
        widen_time: fields.parse("wt", parse_millis)?,
        widened: fields.flag("w")?,
        escalated: fields.flag("e")?,
        claim_time: fields.parse_optional("kt", parse_millis)?,
        complete_time: fields.parse_optional("dt", parse_millis)?,
        result: fields.result()?,
        rating: fields.parse_optional("r", Rating::parse)?,
        rating_comment: fields.text("rc"),
        rate_time: fields.parse_optional("rt", parse_millis)?,
        points_tenths: fields.parse_optional("p", |v| v.parse().ok())?,
        settle_time: fields.parse_optional("st", parse_millis)?,
        cancel_time: fields.parse_optional("xt", parse_millis)?,
        cancel_reason: fields.text("cr"),
        released_by: fields.released_by()?,
    })
}

pub(super) fn millis(time: DateTime<Utc>) -> String {
    time.timestamp_millis().to_string()
}

pub(super) fn parse_millis(text: &str) -> Option<DateTime<Utc>> {
    text.parse().ok().and_then(DateTime::from_timestamp_millis)
}

/// Returns the long name of the field stored as `short`.
fn long_name(short: &str) -> &str {
    FIELDS
        .iter()
        .find(|(name, _)| *name == short)
        .map_or(short, |(_, long)| long)
}

struct Fields<'a> {
    order: &'a OrderId,
    map: HashMap<String, String>,
}

impl Fields<'_> {
    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            order: self.order.to_string(),
            reason,
        }
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> Result<&str, StoreError> {
        self.optional(name)
            .ok_or_else(|| self.corrupt(format!("missing field {}", long_name(name))))
    }

    /// Returns a text field, empty when absent.
    fn text(&self, name: &str) -> String {
        self.optional(name).unwrap_or_default().to_owned()
    }

    /// Parses a flag, `1` when set; orders written before the names were
    /// short also store `0`.
    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        match self.optional(name) {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(text) => Err(self.invalid(name, text)),
        }
    }

    fn parse<T>(&self, name: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, StoreError> {
        let text = self.required(name)?;
        parse(text).ok_or_else(|| self.invalid(name, text))
    }

    fn parse_optional<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        match self.optional(name) {
            None => Ok(None),
            Some(text) => parse(text)
                .map(Some)
                .ok_or_else(|| self.invalid(name, text)),
        }
    }

    fn invalid(&self, name: &str, text: &str) -> StoreError {
        let excerpt: String = text.chars().take(40).collect();
        self.corrupt(format!("invalid field {}: {excerpt:?}", long_name(name)))
    }

    /// Parses the matter, whose four fields are present together or not at
    /// all.
    fn matter(&self) -> Result<Option<Matter>, StoreError> {
        let Some(code) = self.optional("mc") else {
            return Ok(None);
        };
        let code = MatterCode::parse(code).map_err(|_| self.invalid("mc", code))?;
        Ok(Some(Matter {
            code,
            name: self.required("mn")?.to_owned(),
            class: self.parse("mk", |v| v.parse().ok().and_then(MatterClass::from_number))?,
            department: self.required("md")?.to_owned(),
        }))
    }

    /// Parses the work result, whose two fields are present together or not
    /// at all.
    fn result(&self) -> Result<Option<WorkResult>, StoreError> {
        let Some(text) = self.optional("ot") else {
            return Ok(None);
        };
        Ok(Some(WorkResult {
            text: text.to_owned(),
            reference: self.required("or")?.to_owned(),
        }))
    }

    fn released_by(&self) -> Result<Vec<AgentId>, StoreError> {
        let list = self.optional("rb").unwrap_or_default();
        list.split(',')
            .filter(|id| !id.is_empty())
            .map(|id| AgentId::parse(id).map_err(|_| self.invalid("rb", list)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use daiban_domain::CountyCode;

    use super::*;

    fn order() -> WorkOrder {
        let county = CountyCode::parse("431127").expect("valid county code");
        let create_time = Utc
            .with_ymd_and_hms(2026, 11, 23, 1, 2, 3)
            .single()
            .expect("valid time");
        WorkOrder {
            id: OrderId::new(county.clone(), 42),
            number: "20261123-0042".to_owned(),
            state: OrderState::Completed,
            request_text: "换身份证".to_owned(),
            request_id: Some("r-1".to_owned()),
            matter: Some(Matter {
                code: MatterCode::parse("M003").expect("valid matter code"),
                name: "居民身份证换领".to_owned(),
                class: MatterClass::Two,
                department: "公安局".to_owned(),
            }),
            county,
            grid: Some(GridCode::parse("431127100202").expect("valid grid code")),
            address: String::new(),
            applicant: Applicant {
                name: "李四".to_owned(),
                phone: PhoneNumber::parse("13812341234").expect("valid phone"),
            },
            channel: Channel::Wechat,
            claim_code: "123456".to_owned(),
            agent: Some(AgentId::parse("A0001").expect("valid agent id")),
            create_time,
            widen_time: create_time + chrono::Duration::minutes(10),
            widened: true,
            escalated: false,
            claim_time: Some(create_time + chrono::Duration::minutes(1)),
            complete_time: Some(create_time + chrono::Duration::minutes(50)),
            result: Some(WorkResult {
                text: "已办结".to_owned(),
                reference: "R-7".to_owned(),
            }),
            rating: None,
            rating_comment: String::new(),
            rate_time: None,
            points_tenths: None,
            settle_time: None,
            cancel_time: None,
            cancel_reason: String::new(),
            released_by: vec![
                AgentId::parse("B1").expect("valid agent id"),
                AgentId::parse("B2").expect("valid agent id"),
            ],
        }
    }

    fn pairs(order: &WorkOrder) -> Vec<(String, String)> {
        encode(order)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    #[test]
    fn order_round_trips() {
        let order = order();
        let decoded = decode(&order.id, pairs(&order)).expect("decodes");
        assert_eq!(decoded, order);
    }

    #[test]
    fn empty_texts_and_false_flags_are_left_out() {
        let mut order = order();
        order.result = None;
        order.released_by.clear();
        order.widened = false;
        order.escalated = true;
        let fields = pairs(&order);
        let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
        for absent in ["ad", "rc", "cr", "rb", "w", "ot", "or"] {
            assert!(!names.contains(&absent), "{absent} in {names:?}");
        }
        assert!(names.contains(&"e"), "{names:?}");
        assert!(
            fields.iter().all(|(_, value)| !value.is_empty()),
            "{fields:?}"
        );
        assert_eq!(decode(&order.id, fields).expect("decodes"), order);
    }

    #[test]
    fn long_field_names_decode() {
        let order = order();
        let mut fields: Vec<(String, String)> = pairs(&order)
            .into_iter()
            .map(|(name, value)| (long_name(&name).to_owned(), value))
            .collect();
        // Orders written with long names stored every field, empty or not.
        fields.push(("address".to_owned(), String::new()));
        fields.push(("escalated".to_owned(), "0".to_owned()));
        assert!(fields.iter().any(|(name, _)| name == "applicant_phone"));
        assert_eq!(decode(&order.id, fields).expect("decodes"), order);
    }

    #[test]
    fn short_names_are_distinct_and_match_the_scripts() {
        let common = include_str!("lua/common.lua");
        for (i, (short, long)) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[..i].iter().all(|(other, _)| other != short),
                "{short} is used twice"
            );
            assert!(
                !short.starts_with('h') && *short != "ea",
                "{short} is reserved"
            );
            assert!(
                common.contains(&format!("{long} = '{short}'")),
                "lua/common.lua lacks {long} = '{short}'"
            );
        }
        for (name, _) in pairs(&order()) {
            assert!(FIELDS.iter().any(|(short, _)| *short == name), "{name}");
        }
    }

    #[test]
    fn missing_field_is_corrupt() {
        let order = order();
        let mut fields = pairs(&order);
        fields.retain(|(name, _)| name != "wt");
        let err = decode(&order.id, fields).expect_err("widen_time is required");
        assert!(
            matches!(&err, StoreError::Corrupt { reason, .. } if reason == "missing field widen_time"),
            "{err}"
        );
    }

    #[test]
    fn half_a_matter_is_corrupt() {
        let order = order();
        let mut fields = pairs(&order);
        fields.retain(|(name, _)| name != "mk");
        let err = decode(&order.id, fields).expect_err("matter_class is required");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn bad_phone_is_corrupt_and_not_echoed() {
        let order = order();
        let mut fields = pairs(&order);
        for (name, value) in &mut fields {
            if name == "ap" {
                *value = "1381234123".to_owned();
            }
        }
        let err = decode(&order.id, fields).expect_err("a 10-digit phone is invalid");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(!err.to_string().contains("1381234123"), "{err}");
    }

    #[test]
    fn bad_time_is_corrupt() {
        let order = order();
        let mut fields = pairs(&order);
        for (name, value) in &mut fields {
            if name == "ct" {
                *value = "yesterday".to_owned();
            }
        }
        let err = decode(&order.id, fields).expect_err("create_time must be milliseconds");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
