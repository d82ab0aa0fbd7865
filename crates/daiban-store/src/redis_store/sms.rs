//! SMS records on Redis. The keys of a county, beside those listed in the
//! module comment of `redis_store`:
//!
//! - `sms:<sequence>` (hash, kept `SMS_RETENTION` after its last new SMS):
//!   the order's SMS, as described in `lua/sms.lua`.
//! - `smsdue` (sorted set): queued and leased SMS by due time.
//! - `smsfailed` (sorted set): the latest `FAILED_SMS_KEPT` failed SMS by
//!   time of failure.
//! - `smsid:<provider id>` (string, kept `PROVIDER_ID_RETENTION`): the SMS
//!   a provider's message id belongs to.
//! - `reply:<key>` (string, kept `REPLY_RETENTION`): `pending:<until>`
//!   while a reply is handled, then `done`; `replies` (stream, capped):
//!   the handled replies and their outcomes, with masked phone numbers.
//! - `helped:<phone>` (string): marks a phone that got a help answer.
//!
//! Fields and members name an offer by its code in `OFFER_CODES`, which
//! saves memory per SMS, or by its name when it has no code. SMS queued
//! before the codes keep the name, so every lookup by id tries the code
//! and then the name.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{CountyCode, OrderId, PhoneNumber, mask_digit_runs};
use redis::{Script, Value};

use super::keys::CountyKeys;
use super::order_hash::{millis, parse_millis};
use super::reply::{items, pairs, text, unexpected};
use super::{RedisStore, command_failed};
use crate::sms::{
    DeliveryReport, FAILED_SMS_KEPT, InboundSms, PROVIDER_ID_RETENTION, REPLY_CLAIM,
    REPLY_RETENTION, ReportOutcome, ReportTarget, SMS_RETENTION, SendResult, SmsDelivery, SmsId,
    SmsRecipient, SmsState, SmsStore,
};
use crate::{AnnouncementKind, StoreError};

/// Entries kept in a county's `replies` stream.
const REPLIES_KEPT: usize = 10_000;

/// Each offer's code, as stored, and its name. Codes are uppercase and
/// offer names are not (`is_offer`), so a stored offer that is not a code
/// is the offer's name.
///
/// NOTE: a build without these codes rejects the members that use them.
/// Its `take_sms` then fails after leasing the batch, and the leased SMS
/// end `Unknown`, unsent, so every process sharing a Redis needs the same
/// codes.
const OFFER_CODES: [(&str, &str); 7] = [
    ("S", "submitted"),
    ("W", "widened"),
    ("E", "escalated"),
    ("CW", "claim-won"),
    ("CT", "claim-taken"),
    ("CR", "claim-reserved"),
    ("CC", "claim-closed"),
];

/// The code of offer `released-<n>` is `R<n>`, for a number `n` of one or
/// more digits.
const RELEASED_CODE: &str = "R";
const RELEASED_NAME: &str = "released-";

struct Scripts {
    queue: Script,
    take: Script,
    finish: Script,
    report: Script,
    failed: Script,
    record_reply: Script,
}

macro_rules! sms_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!("lua/sms.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    queue: sms_script!("queue_sms.lua"),
    take: sms_script!("take_sms.lua"),
    finish: sms_script!("finish_sms.lua"),
    report: sms_script!("report_sms.lua"),
    failed: sms_script!("failed_sms.lua"),
    record_reply: sms_script!("record_reply.lua"),
});

fn ms(duration: Duration) -> String {
    duration.as_millis().to_string()
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Returns the code of `offer`, or `offer` itself when it has none.
fn offer_code(offer: &str) -> Cow<'_, str> {
    if let Some((code, _)) = OFFER_CODES.iter().find(|(_, name)| *name == offer) {
        return Cow::Borrowed(code);
    }
    match offer.strip_prefix(RELEASED_NAME) {
        Some(n) if is_number(n) => Cow::Owned(format!("{RELEASED_CODE}{n}")),
        _ => Cow::Borrowed(offer),
    }
}

/// Returns the offer name of a stored offer: the name of a code, or else
/// the stored text itself.
fn offer_name(stored: &str) -> Cow<'_, str> {
    if let Some((_, name)) = OFFER_CODES.iter().find(|(code, _)| *code == stored) {
        return Cow::Borrowed(name);
    }
    match stored.strip_prefix(RELEASED_CODE) {
        Some(n) if is_number(n) => Cow::Owned(format!("{RELEASED_NAME}{n}")),
        _ => Cow::Borrowed(stored),
    }
}

/// Returns the field of an SMS in its order's hash:
/// `<offer code>.<recipient>`. SMS queued before the codes have
/// [`SmsId::field`], with the offer's name.
fn field(id: &SmsId) -> String {
    format!("{}.{}", offer_code(&id.offer), id.recipient)
}

/// Returns the queue member of an SMS: `<sequence>.<offer code>.<recipient>`.
fn member(id: &SmsId) -> String {
    format!("{}.{}", id.order.sequence(), field(id))
}

/// Parses a field of `order`'s hash, with the offer's code or name, back
/// into its id.
fn parse_field(order: &OrderId, field: &str) -> Option<SmsId> {
    let (offer, recipient) = field.split_once('.')?;
    SmsId::parse(&format!("{order}.{}.{recipient}", offer_name(offer)))
}

/// Parses a queue member of `county`, with the offer's code or name, back
/// into its id.
fn parse_member(county: &CountyCode, member: &str) -> Option<SmsId> {
    let (sequence, field) = member.split_once('.')?;
    let order = OrderId::new(county.clone(), sequence.parse().ok()?);
    parse_field(&order, field)
}

/// Decodes a record, `state|attempts|queued|sent|reported|provider|error`
/// (see `lua/sms.lua`).
fn decode(id: SmsId, record: &str) -> Option<SmsDelivery> {
    let mut parts = record.splitn(7, '|');
    let state = SmsState::parse(parts.next()?)?;
    let attempts = parts.next()?.parse().ok()?;
    let queue_time = parse_millis(parts.next()?)?;
    // `+` and the ms since queued, or, in records written before, ms since
    // the epoch; empty for no time, and `None` when invalid.
    let time = |part: &str| match part.strip_prefix('+') {
        Some(offset) => offset
            .parse()
            .ok()
            .and_then(|ms| queue_time.checked_add_signed(chrono::TimeDelta::milliseconds(ms)))
            .map(Some),
        None if part.is_empty() => Some(None),
        None => parse_millis(part).map(Some),
    };
    let send_time = time(parts.next()?)?;
    let report_time = time(parts.next()?)?;
    let provider_id = Some(parts.next()?.to_owned()).filter(|id| !id.is_empty());
    let error = parts.next()?.to_owned();
    Some(SmsDelivery {
        id,
        state,
        attempts,
        provider_id,
        error,
        queue_time,
        send_time,
        report_time,
    })
}

/// Decodes the `{member, record}` pairs that the scripts return.
fn decode_list(county: &CountyCode, value: Value) -> Result<Vec<SmsDelivery>, StoreError> {
    let expected = "a list of SMS records";
    let entries = items(value).ok_or_else(|| unexpected(county, expected))?;
    let mut found = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut parts = items(entry)
            .ok_or_else(|| unexpected(county, expected))?
            .into_iter();
        let (Some(member), Some(record)) = (parts.next(), parts.next()) else {
            return Err(unexpected(county, expected));
        };
        let member = text(&member).ok_or_else(|| unexpected(county, expected))?;
        let record = text(&record).ok_or_else(|| unexpected(county, expected))?;
        let delivery = parse_member(county, &member)
            .and_then(|id| decode(id, &record))
            .ok_or_else(|| unexpected(county, expected))?;
        found.push(delivery);
    }
    Ok(found)
}

/// Keeps `|` out of the parts of a record that are not last.
fn clean(part: &str) -> String {
    part.replace('|', "/")
}

#[async_trait]
impl SmsStore for RedisStore {
    async fn queue_sms(
        &self,
        announcement: Option<AnnouncementKind>,
        order: &OrderId,
        offer: &str,
        recipients: &[SmsRecipient],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let keys = CountyKeys::new(order.county());
        let mut args = vec![
            millis(now),
            ms(SMS_RETENTION),
            order.sequence().to_string(),
            announcement
                .map(|kind| format!("{}:{}", kind.as_str(), order.sequence()))
                .unwrap_or_default(),
        ];
        for recipient in recipients {
            let id = SmsId::new(order.clone(), offer, recipient.clone());
            args.push(field(&id));
            args.push(id.field());
        }
        let value = self
            .invoke(&SCRIPTS.queue, &keys, keys.sms(order.sequence()), args)
            .await?;
        match value {
            Value::Int(queued) => Ok(usize::try_from(queued).unwrap_or(0)),
            _ => Err(unexpected(order, "the number of SMS queued")),
        }
    }

    async fn take_sms(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<SmsDelivery>, StoreError> {
        let keys = CountyKeys::new(county);
        let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
        let args = vec![millis(now), millis(lease_until), limit.to_string()];
        let value = self
            .invoke(&SCRIPTS.take, &keys, keys.sms_due(), args)
            .await?;
        decode_list(county, value)
    }

    async fn finish_sms(
        &self,
        id: &SmsId,
        result: SendResult,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let keys = CountyKeys::new(id.order.county());
        let (name, at, provider, error) = match result {
            SendResult::Sent { provider_id } => {
                ("sent", now, provider_id.unwrap_or_default(), String::new())
            }
            SendResult::Retry { at, error } => ("retry", at, String::new(), error),
            SendResult::Failed { error } => ("failed", now, String::new(), error),
            SendResult::Uncertain { error } => ("unknown", now, String::new(), error),
            SendResult::Withdrawn => ("withdrawn", now, String::new(), String::new()),
            SendResult::Defer { at } => ("defer", at, String::new(), String::new()),
        };
        let args = vec![
            id.order.sequence().to_string(),
            field(id),
            name.to_owned(),
            millis(now),
            millis(at),
            clean(&provider),
            error,
            ms(PROVIDER_ID_RETENTION),
            FAILED_SMS_KEPT.to_string(),
            id.field(),
        ];
        self.invoke(&SCRIPTS.finish, &keys, keys.sms(id.order.sequence()), args)
            .await?;
        Ok(())
    }

    async fn report_sms(
        &self,
        county: &CountyCode,
        report: &DeliveryReport,
        now: DateTime<Utc>,
    ) -> Result<ReportOutcome, StoreError> {
        let keys = CountyKeys::new(county);
        let (kind, target, named_field) = match &report.target {
            ReportTarget::Sms(id) if id.order.county() == county => ("sms", member(id), id.field()),
            ReportTarget::Sms(_) => return Ok(ReportOutcome::Unmatched),
            ReportTarget::Provider(provider_id) => ("provider", clean(provider_id), String::new()),
        };
        let args = vec![
            kind.to_owned(),
            target,
            if report.delivered { "1" } else { "0" }.to_owned(),
            report.error.clone(),
            millis(now),
            FAILED_SMS_KEPT.to_string(),
            named_field,
        ];
        let value = self
            .invoke(&SCRIPTS.report, &keys, keys.sms_due(), args)
            .await?;
        let expected = "the outcome of a delivery report";
        let mut parts = items(value)
            .ok_or_else(|| unexpected(county, expected))?
            .into_iter()
            .map(|part| text(&part));
        let outcome = parts.next().flatten();
        let id = parts
            .next()
            .flatten()
            .and_then(|member| parse_member(county, &member));
        match (outcome.as_deref(), id) {
            (Some("recorded"), Some(id)) => Ok(ReportOutcome::Recorded(id)),
            (Some("duplicate"), Some(id)) => Ok(ReportOutcome::Duplicate(id)),
            (Some("unmatched"), _) => Ok(ReportOutcome::Unmatched),
            _ => Err(unexpected(county, expected)),
        }
    }

    async fn order_sms(&self, order: &OrderId) -> Result<Vec<SmsDelivery>, StoreError> {
        let keys = CountyKeys::new(order.county());
        let mut connection = self.connection().await?;
        let value: Value = redis::cmd("HGETALL")
            .arg(keys.sms(order.sequence()))
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        let expected = "the order's SMS records";
        let mut found = Vec::new();
        for (field, record) in pairs(value).ok_or_else(|| unexpected(order, expected))? {
            let delivery = parse_field(order, &field)
                .and_then(|id| decode(id, &record))
                .ok_or_else(|| unexpected(order, expected))?;
            found.push(delivery);
        }
        found.sort_by_key(|sms| (sms.queue_time, sms.id.field()));
        Ok(found)
    }

    async fn failed_sms(
        &self,
        county: &CountyCode,
        limit: usize,
    ) -> Result<Vec<SmsDelivery>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = CountyKeys::new(county);
        let value = self
            .invoke(
                &SCRIPTS.failed,
                &keys,
                keys.sms_failed(),
                vec![limit.to_string()],
            )
            .await?;
        decode_list(county, value)
    }

    async fn next_sms_due(&self, county: &CountyCode) -> Result<Option<DateTime<Utc>>, StoreError> {
        let keys = CountyKeys::new(county);
        let mut connection = self.connection().await?;
        let first: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg(keys.sms_due())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        Ok(first
            .first()
            .and_then(|(_, at)| DateTime::from_timestamp_millis(*at)))
    }

    async fn start_reply(
        &self,
        county: &CountyCode,
        reply: &InboundSms,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let keys = CountyKeys::new(county);
        let until = now + chrono::Duration::from_std(REPLY_CLAIM).unwrap_or_default();
        let args = vec![
            "start".to_owned(),
            ms(REPLY_RETENTION),
            millis(now),
            millis(until),
        ];
        let value = self
            .invoke(&SCRIPTS.record_reply, &keys, keys.reply(&reply.key), args)
            .await?;
        match value {
            Value::Int(started) => Ok(started == 1),
            _ => Err(unexpected(county, "whether the reply may be handled")),
        }
    }

    async fn finish_reply(
        &self,
        county: &CountyCode,
        reply: &InboundSms,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let keys = CountyKeys::new(county);
        let args = vec![
            "finish".to_owned(),
            ms(REPLY_RETENTION),
            reply.phone.masked(),
            reply
                .agent
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            mask_digit_runs(&reply.text),
            millis(reply.time.min(now)),
            outcome.to_owned(),
            REPLIES_KEPT.to_string(),
        ];
        self.invoke(&SCRIPTS.record_reply, &keys, keys.reply(&reply.key), args)
            .await?;
        Ok(())
    }

    async fn allow_help_answer(
        &self,
        county: &CountyCode,
        phone: &PhoneNumber,
        _now: DateTime<Utc>,
        interval: Duration,
    ) -> Result<bool, StoreError> {
        let keys = CountyKeys::new(county);
        let mut connection = self.connection().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(keys.helped(phone))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(interval.as_millis().max(1).to_string())
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        Ok(set.is_some())
    }
}

#[cfg(test)]
mod tests {
    use daiban_domain::AgentId;

    use super::*;
    use crate::sms::is_offer;

    fn id() -> SmsId {
        SmsId::parse("431127-00000042.widened.A0001").expect("valid SMS id")
    }

    fn county() -> CountyCode {
        CountyCode::parse("431127").expect("valid county code")
    }

    fn order() -> OrderId {
        OrderId::parse("431127-00000042").expect("valid order id")
    }

    /// Returns the id of SMS `field`, `<offer name>.<recipient>`, of
    /// `order()`.
    fn sms(field: &str) -> SmsId {
        SmsId::parse(&format!("{}.{field}", order())).expect("valid SMS id")
    }

    #[test]
    fn offer_codes_round_trip() {
        let cases = [
            ("submitted", "S"),
            ("widened", "W"),
            ("escalated", "E"),
            ("released-1", "R1"),
            ("released-12", "R12"),
            ("released-007", "R007"),
            ("claim-won", "CW"),
            ("claim-taken", "CT"),
            ("claim-reserved", "CR"),
            ("claim-closed", "CC"),
        ];
        for (name, code) in cases {
            assert_eq!(offer_code(name), code, "code of {name}");
            assert_eq!(offer_name(code), name, "name of {code}");
        }
    }

    #[test]
    fn offers_without_code_stored_as_named() {
        for name in ["reminder", "released-", "released-x", "released-1-2", "r1"] {
            assert_eq!(offer_code(name), name, "code of {name}");
            assert_eq!(offer_name(name), name, "name of {name}");
        }
    }

    #[test]
    fn offer_codes_are_not_offer_names() {
        for (code, name) in OFFER_CODES {
            assert!(!is_offer(code), "code {code} is an offer name");
            assert!(is_offer(name), "{name} is not an offer name");
        }
        assert!(!is_offer(&offer_code("released-3")), "code of released-3");
    }

    #[test]
    fn members_use_offer_codes() {
        let agent = SmsRecipient::Agent(AgentId::parse("A0001").expect("valid agent id"));
        let cases = [
            (SmsId::new(order(), "widened", agent.clone()), "42.W.A0001"),
            (SmsId::new(order(), "released-2", agent), "42.R2.A0001"),
            (
                SmsId::new(order(), "escalated", SmsRecipient::DutyDesk),
                "42.E.duty_desk",
            ),
            (
                SmsId::new(order(), "reminder", SmsRecipient::DutyDesk),
                "42.reminder.duty_desk",
            ),
        ];
        for (id, expected) in cases {
            assert_eq!(member(&id), expected, "member of {id}");
            assert_eq!(
                parse_member(&county(), expected),
                Some(id.clone()),
                "{expected}"
            );
            let (_, field) = expected.split_once('.').expect("a member has a sequence");
            assert_eq!(parse_field(&order(), field), Some(id), "field {field}");
        }
    }

    #[test]
    fn members_with_offer_names_parse() {
        for field in [
            "widened.A0001",
            "released-2.A0001",
            "escalated.duty_desk",
            "claim-won.A0002",
        ] {
            let expected = Some(sms(field));
            let member = format!("42.{field}");
            assert_eq!(parse_member(&county(), &member), expected, "{member}");
            assert_eq!(parse_field(&order(), field), expected, "field {field}");
        }
    }

    #[test]
    fn members_with_invalid_offers_rejected() {
        for member in ["42.X.A0001", "42.R.A0001", "42.Rx.A0001", "42.W.A 1"] {
            assert_eq!(parse_member(&county(), member), None, "{member}");
        }
    }

    #[test]
    fn records_keep_later_times_as_offsets() {
        let record = "delivered|2|1764000000000|+1500|+61000|BIZ-7|";
        let sms = decode(id(), record).expect("decodes");
        assert_eq!(sms.queue_time.timestamp_millis(), 1_764_000_000_000);
        assert_eq!(
            sms.send_time.map(|t| t.timestamp_millis()),
            Some(1_764_000_001_500)
        );
        assert_eq!(
            sms.report_time.map(|t| t.timestamp_millis()),
            Some(1_764_000_061_000)
        );
        assert_eq!(sms.provider_id.as_deref(), Some("BIZ-7"));
    }

    #[test]
    fn records_with_times_since_the_epoch_decode() {
        let record = "failed|5|1764000000000|1764000001500||BIZ-7|rate limited | again";
        let sms = decode(id(), record).expect("decodes");
        assert_eq!(
            sms.send_time.map(|t| t.timestamp_millis()),
            Some(1_764_000_001_500)
        );
        assert_eq!(sms.report_time, None);
        assert_eq!(sms.error, "rate limited | again");
        assert!(decode(id(), "sent|1|1764000000000|+x|||").is_none());
    }
}
