//! Parsers of what the providers push to the webhooks: delivery reports
//! and replies (uplink SMS), each in its provider's own JSON.
//!
//! Parsing is strict about the fields the service uses and ignores the
//! rest, so a provider adding a field breaks nothing. A body with one bad
//! entry is rejected whole, so nothing of it is applied twice when the
//! provider pushes it again. Parsers never panic, whatever the bytes, as
//! the targets under `fuzz/` check.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use daiban_domain::{PhoneNumber, mask_digit_runs};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest batch accepted in one request.
pub const MAX_BATCH: usize = 1000;

/// Maximum length of a reply's text, in characters; a longer one is cut.
pub const MAX_REPLY_CHARS: usize = 500;

/// A delivery report, whichever provider sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReport {
    /// The id the SMS was sent with (`out_id`), when the provider echoes
    /// it.
    pub sms_id: Option<String>,
    /// The provider's message id (`biz_id`, `sid`).
    pub provider_id: Option<String>,
    /// The receiving phone, when it is a mainland number.
    pub phone: Option<PhoneNumber>,
    pub delivered: bool,
    /// The carrier's code and message when not delivered.
    pub error: String,
    pub time: Option<DateTime<Utc>>,
}

/// A reply: an SMS that a phone sent to the service's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundReply {
    /// The key that identifies the reply when the provider pushes it again.
    pub key: String,
    /// The sender, or `None` for a number outside the mainland.
    pub phone: Option<PhoneNumber>,
    pub text: String,
    pub time: Option<DateTime<Utc>>,
}

/// The reason a body was rejected, naming the entry and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("body is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("body holds {0} entries, at most {MAX_BATCH} are accepted")]
    TooMany(usize),
    #[error("body holds no entry")]
    Empty,
    #[error("entry {index}: {reason}")]
    Entry { index: usize, reason: String },
    #[error("entry {index}: field {field}: {reason}")]
    Field {
        index: usize,
        field: &'static str,
        reason: String,
    },
}

fn field(index: usize, field: &'static str, reason: impl Into<String>) -> InboundError {
    InboundError::Field {
        index,
        field,
        reason: reason.into(),
    }
}

/// Parses a body that is a JSON array, or a single object when
/// `single_allowed`, into entries of `T`.
fn entries<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    single_allowed: bool,
) -> Result<Vec<T>, InboundError> {
    // serde's messages quote the offending value, which may be a phone
    // number, so digit runs are masked before they reach a response or log.
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| InboundError::Json(mask_digit_runs(&err.to_string())))?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) if single_allowed => vec![object],
        _ => {
            let expected = if single_allowed {
                "an object or an array of objects"
            } else {
                "an array of objects"
            };
            return Err(InboundError::Json(format!("expected {expected}")));
        }
    };
    if items.is_empty() {
        return Err(InboundError::Empty);
    }
    if items.len() > MAX_BATCH {
        return Err(InboundError::TooMany(items.len()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            serde_json::from_value(item).map_err(|err| InboundError::Entry {
                index,
                reason: mask_digit_runs(&err.to_string()),
            })
        })
        .collect()
}

/// A string or a number, as some providers send ids either way.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(serde_json::Number),
}

impl Id {
    fn into_text(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Number(number) => number.to_string(),
        }
    }
}

/// Returns the text trimmed, or `None` when it is absent or empty.
fn present(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Parses `YYYY-MM-DD hh:mm:ss` in China time (UTC+8).
fn china_time(text: &str) -> Option<DateTime<Utc>> {
    let local = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    let china = chrono::FixedOffset::east_opt(8 * 3600)?;
    china
        .from_local_datetime(&local)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

/// The optional time field `name` of entry `index`: absent or empty is
/// `None`, anything else must parse.
fn optional_time(
    index: usize,
    name: &'static str,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, InboundError> {
    match present(text) {
        None => Ok(None),
        Some(text) => china_time(&text)
            .map(Some)
            .ok_or_else(|| field(index, name, "expected YYYY-MM-DD hh:mm:ss")),
    }
}

/// Cuts a reply to `MAX_REPLY_CHARS` and drops control characters but
/// line breaks.
fn reply_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_REPLY_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Builds a stable key for a reply without a provider id, from `source`
/// and the parts that identify the reply.
pub fn reply_key(source: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{source}:{hex}")
}

#[derive(Debug, Deserialize)]
struct AliyunReport {
    #[serde(default)]
    phone_number: Option<Id>,
    #[serde(default)]
    report_time: Option<String>,
    success: bool,
    #[serde(default)]
    err_code: Option<String>,
    #[serde(default)]
    err_msg: Option<String>,
    #[serde(default)]
    biz_id: Option<String>,
    #[serde(default)]
    out_id: Option<String>,
}

/// Parses Alibaba Cloud's `SmsReport` push: an array of reports.
pub fn aliyun_reports(body: &[u8]) -> Result<Vec<InboundReport>, InboundError> {
    let reports: Vec<AliyunReport> = entries(body, false)?;
    reports
        .into_iter()
        .enumerate()
        .map(|(index, report)| {
            let sms_id = present(report.out_id);
            let provider_id = present(report.biz_id);
            if sms_id.is_none() && provider_id.is_none() {
                return Err(field(index, "biz_id", "required when out_id is empty"));
            }
            let error = if report.success {
                String::new()
            } else {
                carrier_error(report.err_code, report.err_msg)
            };
            Ok(InboundReport {
                sms_id,
                provider_id,
                phone: report
                    .phone_number
                    .and_then(|phone| PhoneNumber::parse(&phone.into_text()).ok()),
                delivered: report.success,
                error,
                time: optional_time(index, "report_time", report.report_time)?,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct AliyunReply {
    phone_number: Id,
    content: String,
    #[serde(default)]
    send_time: Option<String>,
    #[serde(default)]
    sequence_id: Option<Id>,
}

/// Parses Alibaba Cloud's `SmsUp` push: an array of replies.
pub fn aliyun_replies(body: &[u8]) -> Result<Vec<InboundReply>, InboundError> {
    let replies: Vec<AliyunReply> = entries(body, false)?;
    replies
        .into_iter()
        .enumerate()
        .map(|(index, reply)| {
            let time = optional_time(index, "send_time", reply.send_time.clone())?;
            let text = reply_text(&reply.content);
            let phone_number = reply.phone_number.into_text();
            let key = match reply
                .sequence_id
                .map(Id::into_text)
                .map(|id| id.trim().to_owned())
            {
                Some(id) if !id.is_empty() && id.len() <= 64 => format!("aliyun:{id}"),
                Some(id) if id.len() > 64 => {
                    return Err(field(index, "sequence_id", "longer than 64 characters"));
                }
                _ => reply_key(
                    "aliyun",
                    &[
                        &phone_number,
                        reply.send_time.as_deref().unwrap_or_default(),
                        &reply.content,
                    ],
                ),
            };
            Ok(InboundReply {
                key,
                phone: PhoneNumber::parse(&phone_number).ok(),
                text,
                time,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct TencentReport {
    #[serde(default)]
    user_receive_time: Option<String>,
    #[serde(default)]
    nationcode: Option<Id>,
    #[serde(default)]
    mobile: Option<Id>,
    report_status: String,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(default)]
    description: Option<String>,
    sid: String,
}

/// Parses Tencent Cloud's delivery report push: an array of reports.
pub fn tencent_reports(body: &[u8]) -> Result<Vec<InboundReport>, InboundError> {
    let reports: Vec<TencentReport> = entries(body, false)?;
    reports
        .into_iter()
        .enumerate()
        .map(|(index, report)| {
            let delivered = match report.report_status.as_str() {
                "SUCCESS" => true,
                "FAIL" => false,
                other => {
                    return Err(field(
                        index,
                        "report_status",
                        format!("expected SUCCESS or FAIL, got {:?}", cut(other)),
                    ));
                }
            };
            let Some(sid) = present(Some(report.sid)) else {
                return Err(field(index, "sid", "required"));
            };
            let error = if delivered {
                String::new()
            } else {
                carrier_error(report.errmsg, report.description)
            };
            Ok(InboundReport {
                sms_id: None,
                provider_id: Some(sid),
                phone: tencent_phone(report.nationcode, report.mobile),
                delivered,
                error,
                time: optional_time(index, "user_receive_time", report.user_receive_time)?,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct TencentReply {
    #[serde(default)]
    nationcode: Option<Id>,
    mobile: Id,
    text: String,
    #[serde(default)]
    time: Option<i64>,
}

/// Parses Tencent Cloud's reply push: one object (an array of them is
/// accepted too).
pub fn tencent_replies(body: &[u8]) -> Result<Vec<InboundReply>, InboundError> {
    let replies: Vec<TencentReply> = entries(body, true)?;
    replies
        .into_iter()
        .enumerate()
        .map(|(index, reply)| {
            let time = match reply.time {
                None => None,
                Some(seconds) => Some(
                    DateTime::from_timestamp(seconds, 0)
                        .ok_or_else(|| field(index, "time", "not a Unix time in seconds"))?,
                ),
            };
            let mobile = reply.mobile.into_text();
            let nationcode = reply.nationcode.map(Id::into_text);
            let key = reply_key(
                "tencent",
                &[
                    nationcode.as_deref().unwrap_or_default(),
                    &mobile,
                    &reply.time.unwrap_or_default().to_string(),
                    &reply.text,
                ],
            );
            Ok(InboundReply {
                key,
                phone: mainland(nationcode.as_deref(), &mobile),
                text: reply_text(&reply.text),
                time,
            })
        })
        .collect()
}

fn tencent_phone(nationcode: Option<Id>, mobile: Option<Id>) -> Option<PhoneNumber> {
    let nationcode = nationcode.map(Id::into_text);
    mainland(nationcode.as_deref(), &mobile?.into_text())
}

/// Parses the phone as a mainland number, unless the country code names
/// another country.
fn mainland(nationcode: Option<&str>, mobile: &str) -> Option<PhoneNumber> {
    match nationcode.map(str::trim) {
        None | Some("" | "86" | "+86") => PhoneNumber::parse(mobile).ok(),
        Some(_) => None,
    }
}

/// Joins the carrier's code and message of a failed delivery, such as
/// `MK:0001 用户关机`, cut to 200 characters.
fn carrier_error(code: Option<String>, message: Option<String>) -> String {
    let parts: Vec<String> = [present(code), present(message)]
        .into_iter()
        .flatten()
        .collect();
    let joined = if parts.is_empty() {
        "undelivered".to_owned()
    } else {
        parts.join(" ")
    };
    cut(&joined)
}

/// `text` without control characters, cut to 200 characters, for errors
/// that end up in records and messages.
fn cut(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliyun_report_batch_parses() {
        let body = r#"[
            {"phone_number":"13812341234","send_time":"2026-11-23 09:00:00",
             "report_time":"2026-11-23 09:00:05","success":true,"err_code":"DELIVERED",
             "err_msg":"用户接收成功","sms_size":"1","biz_id":"932702304080415357^0",
             "out_id":"431127-00000042.submitted.A0001"},
            {"phone_number":"8613912345678","send_time":"2026-11-23 09:00:00",
             "report_time":"2026-11-23 09:01:00","success":false,"err_code":"MK:0001",
             "err_msg":"用户关机","sms_size":"1","biz_id":"1^0","out_id":""}
        ]"#;
        let reports = aliyun_reports(body.as_bytes()).expect("valid batch");
        assert_eq!(reports.len(), 2);
        assert!(reports[0].delivered);
        assert_eq!(
            reports[0].sms_id.as_deref(),
            Some("431127-00000042.submitted.A0001")
        );
        assert_eq!(
            reports[0].time,
            Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 5).single(),
            "China time becomes UTC"
        );
        assert!(!reports[1].delivered);
        assert_eq!(reports[1].sms_id, None, "an empty out_id is none");
        assert_eq!(reports[1].error, "MK:0001 用户关机");
        assert_eq!(
            reports[1].phone.as_ref().map(PhoneNumber::as_str),
            Some("13912345678")
        );
    }

    #[test]
    fn aliyun_reply_sequence_id_either_type() {
        let body = r#"[
            {"phone_number":"13812341234","content":"737111","send_time":"2026-11-23 09:00:00",
             "dest_code":"1234","sequence_id":1234567},
            {"phone_number":"13812341234","content":"好","send_time":"2026-11-23 09:00:00",
             "dest_code":"1234","sequence_id":"7654321","sign_name":"蓝山政务"}
        ]"#;
        let replies = aliyun_replies(body.as_bytes()).expect("valid batch");
        assert_eq!(replies[0].key, "aliyun:1234567");
        assert_eq!(replies[1].key, "aliyun:7654321");
        assert_eq!(replies[0].text, "737111");
    }

    #[test]
    fn tencent_report_and_reply_parse() {
        let body = r#"[{"user_receive_time":"2026-11-23 09:00:05","nationcode":"86",
            "mobile":"13812341234","report_status":"FAIL","errmsg":"MN:0017",
            "description":"用户手机号码停机","sid":"5000:104571066915705365784949619"}]"#;
        let reports = tencent_reports(body.as_bytes()).expect("valid batch");
        assert_eq!(
            reports[0].provider_id.as_deref(),
            Some("5000:104571066915705365784949619")
        );
        assert_eq!(reports[0].error, "MN:0017 用户手机号码停机");

        let reply = r#"{"extend":"","mobile":"13812341234","nationcode":"86",
            "sign":"蓝山政务","text":"737111","time":1763859600}"#;
        let replies = tencent_replies(reply.as_bytes()).expect("valid reply");
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].time, DateTime::from_timestamp(1_763_859_600, 0));
        assert_eq!(
            replies,
            tencent_replies(reply.as_bytes()).expect("valid reply"),
            "the same push gives the same key"
        );
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        let cases: [(&str, &str); 6] = [
            ("", "JSON"),
            ("{\"a\":1}", "array"),
            ("[]", "no entry"),
            (r#"[{"success":"yes"}]"#, "entry 0"),
            (
                r#"[{"success":true,"biz_id":"1","report_time":"yesterday"}]"#,
                "report_time",
            ),
            (r#"[{"success":true}]"#, "biz_id"),
        ];
        for (body, expected) in cases {
            let err = aliyun_reports(body.as_bytes()).expect_err("malformed body");
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = tencent_reports(r#"[{"report_status":"MAYBE","sid":"1"}]"#.as_bytes())
            .expect_err("unknown status");
        assert!(err.to_string().contains("report_status"), "{err}");
    }

    #[test]
    fn errors_hide_phone_numbers() {
        let body = r#"[{"success":"13912345678","biz_id":"1"}]"#;
        let err = aliyun_reports(body.as_bytes()).expect_err("a string for a boolean");
        assert!(!err.to_string().contains("13912345678"), "{err}");
        assert!(err.to_string().contains("139****5678"), "{err}");

        let reply = r#"[{"phone_number":13912345678,"content":"737111"}]"#;
        let replies = aliyun_replies(reply.as_bytes()).expect("a number is a phone too");
        assert_eq!(
            replies[0].phone.as_ref().map(PhoneNumber::as_str),
            Some("13912345678")
        );
    }

    #[test]
    fn oversized_batch_rejected() {
        let one = r#"{"success":true,"biz_id":"1"}"#;
        let body = format!("[{}]", vec![one; MAX_BATCH + 1].join(","));
        assert_eq!(
            aliyun_reports(body.as_bytes()),
            Err(InboundError::TooMany(MAX_BATCH + 1))
        );
    }

    #[test]
    fn foreign_numbers_have_no_phone() {
        let reply = r#"{"mobile":"2025550123","nationcode":"1","text":"hi","time":1}"#;
        let replies = tencent_replies(reply.as_bytes()).expect("valid reply");
        assert_eq!(replies[0].phone, None);
    }
}
