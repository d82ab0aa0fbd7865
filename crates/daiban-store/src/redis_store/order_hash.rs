//! The fields of an order's hash, written in full by `submit` and parsed
//! strictly on every read.
//!
//! Text fields are stored as given and times as integer milliseconds since
//! the epoch. A field of an `Option` that is `None` is absent from the hash,
//! so an absent required field, or a value that does not parse, makes the
//! order `StoreError::Corrupt`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use daiban_domain::{
    AgentId, Applicant, Channel, GridCode, Matter, MatterClass, MatterCode, OrderId, OrderState,
    PhoneNumber, Rating, WorkOrder, WorkResult,
};

use crate::StoreError;

/// Field, value pairs of `order`'s hash.
pub(super) fn encode(order: &WorkOrder) -> Vec<(&'static str, String)> {
    let released_by: Vec<&str> = order.released_by.iter().map(AgentId::as_str).collect();
    let mut fields = vec![
        ("number", order.number.clone()),
        ("state", order.state.as_str().to_owned()),
        ("request_text", order.request_text.clone()),
        ("address", order.address.clone()),
        ("applicant_name", order.applicant.name.clone()),
        ("applicant_phone", order.applicant.phone.as_str().to_owned()),
        ("channel", order.channel.as_str().to_owned()),
        ("claim_code", order.claim_code.clone()),
        ("create_time", millis(order.create_time)),
        ("widen_time", millis(order.widen_time)),
        ("widened", flag(order.widened)),
        ("escalated", flag(order.escalated)),
        ("rating_comment", order.rating_comment.clone()),
        ("cancel_reason", order.cancel_reason.clone()),
        // Agent ids contain no commas, so a comma separates them safely.
        ("released_by", released_by.join(",")),
    ];

    let mut optional = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            fields.push((name, value));
        }
    };
    optional("request_id", order.request_id.clone());
    optional("grid", order.grid.as_ref().map(GridCode::to_string));
    optional("agent", order.agent.as_ref().map(AgentId::to_string));
    optional("claim_time", order.claim_time.map(millis));
    optional("complete_time", order.complete_time.map(millis));
    optional("rating", order.rating.map(|r| r.as_str().to_owned()));
    optional("rate_time", order.rate_time.map(millis));
    optional("points", order.points_tenths.map(|p| p.to_string()));
    optional("settle_time", order.settle_time.map(millis));
    optional("cancel_time", order.cancel_time.map(millis));
    if let Some(matter) = &order.matter {
        optional("matter_code", Some(matter.code.to_string()));
        optional("matter_name", Some(matter.name.clone()));
        optional("matter_class", Some(matter.class.number().to_string()));
        optional("matter_department", Some(matter.department.clone()));
    }
    if let Some(result) = &order.result {
        optional("result_text", Some(result.text.clone()));
        optional("result_reference", Some(result.reference.clone()));
    }
    fields
}

/// Parses the hash of order `id` from its field, value pairs.
pub(super) fn decode(id: &OrderId, pairs: Vec<(String, String)>) -> Result<WorkOrder, StoreError> {
    let fields = Fields {
        order: id,
        map: pairs.into_iter().collect(),
    };

    let phone = fields.required("applicant_phone")?;
    // The stored number is not echoed, because error messages reach logs.
    let phone = PhoneNumber::parse(phone)
        .map_err(|_| fields.corrupt("invalid field applicant_phone".to_owned()))?;

    Ok(WorkOrder {
        id: id.clone(),
        number: fields.required("number")?.to_owned(),
        state: fields.parse("state", OrderState::parse)?,
        request_text: fields.required("request_text")?.to_owned(),
        request_id: fields.optional("request_id").map(str::to_owned),
        matter: fields.matter()?,
        county: id.county().clone(),
        grid: fields.parse_optional("grid", |v| GridCode::parse(v).ok())?,
        address: fields.required("address")?.to_owned(),
        applicant: Applicant {
            name: fields.required("applicant_name")?.to_owned(),
            phone,
        },
        channel: fields.parse("channel", Channel::parse)?,
        claim_code: fields.required("claim_code")?.to_owned(),
        agent: fields.parse_optional("agent", |v| AgentId::parse(v).ok())?,
        create_time: fields.parse("create_time", parse_millis)?,
        widen_time: fields.parse("widen_time", parse_millis)?,
        widened: fields.parse("widened", parse_flag)?,
        escalated: fields.parse("escalated", parse_flag)?,
        claim_time: fields.parse_optional("claim_time", parse_millis)?,
        complete_time: fields.parse_optional("complete_time", parse_millis)?,
        result: fields.result()?,
        rating: fields.parse_optional("rating", Rating::parse)?,
        rating_comment: fields.required("rating_comment")?.to_owned(),
        rate_time: fields.parse_optional("rate_time", parse_millis)?,
        points_tenths: fields.parse_optional("points", |v| v.parse().ok())?,
        settle_time: fields.parse_optional("settle_time", parse_millis)?,
        cancel_time: fields.parse_optional("cancel_time", parse_millis)?,
        cancel_reason: fields.required("cancel_reason")?.to_owned(),
        released_by: fields.released_by()?,
    })
}

pub(super) fn millis(time: DateTime<Utc>) -> String {
    time.timestamp_millis().to_string()
}

pub(super) fn parse_millis(text: &str) -> Option<DateTime<Utc>> {
    text.parse().ok().and_then(DateTime::from_timestamp_millis)
}

fn flag(value: bool) -> String {
    if value { "1" } else { "0" }.to_owned()
}

fn parse_flag(text: &str) -> Option<bool> {
    match text {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
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
            .ok_or_else(|| self.corrupt(format!("missing field {name}")))
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
        self.corrupt(format!("invalid field {name}: {excerpt:?}"))
    }

    /// Parses the matter, whose four fields are present together or not at
    /// all.
    fn matter(&self) -> Result<Option<Matter>, StoreError> {
        let Some(code) = self.optional("matter_code") else {
            return Ok(None);
        };
        let code = MatterCode::parse(code).map_err(|_| self.invalid("matter_code", code))?;
        Ok(Some(Matter {
            code,
            name: self.required("matter_name")?.to_owned(),
            class: self.parse("matter_class", |v| {
                v.parse().ok().and_then(MatterClass::from_number)
            })?,
            department: self.required("matter_department")?.to_owned(),
        }))
    }

    /// Parses the work result, whose two fields are present together or not
    /// at all.
    fn result(&self) -> Result<Option<WorkResult>, StoreError> {
        let Some(text) = self.optional("result_text") else {
            return Ok(None);
        };
        Ok(Some(WorkResult {
            text: text.to_owned(),
            reference: self.required("result_reference")?.to_owned(),
        }))
    }

    fn released_by(&self) -> Result<Vec<AgentId>, StoreError> {
        let list = self.required("released_by")?;
        list.split(',')
            .filter(|id| !id.is_empty())
            .map(|id| AgentId::parse(id).map_err(|_| self.invalid("released_by", list)))
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
    fn missing_field_is_corrupt() {
        let order = order();
        let mut fields = pairs(&order);
        fields.retain(|(name, _)| name != "widen_time");
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
        fields.retain(|(name, _)| name != "matter_class");
        let err = decode(&order.id, fields).expect_err("matter_class is required");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn bad_phone_is_corrupt_and_not_echoed() {
        let order = order();
        let mut fields = pairs(&order);
        for (name, value) in &mut fields {
            if name == "applicant_phone" {
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
            if name == "create_time" {
                *value = "yesterday".to_owned();
            }
        }
        let err = decode(&order.id, fields).expect_err("create_time must be milliseconds");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
