//! A fake SMS provider: Alibaba Cloud's or Tencent Cloud's `SendSms` on a
//! free loopback port. It checks each request's signature as the provider
//! would, records every SMS it is asked to send, and responds as
//! scripted per phone number.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use daiban_sms::{rpc_signature, tc3_authorization};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Credentials the fake accepts.
pub const ACCESS_KEY_ID: &str = "fake-access-key-id";
pub const ACCESS_KEY_SECRET: &str = "fake-access-key-secret-0123456789";
pub const SIGN_NAME: &str = "蓝山县政务服务";
pub const TENCENT_APP_ID: &str = "1400000001";

/// The secret the test services' webhooks check.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// Each template's name and the code the fake's account approved for it.
pub const TEMPLATE_CODES: [(&str, &str); 7] = [
    ("grid_offer", "SMS_0001"),
    ("county_offer", "SMS_0002"),
    ("escalation", "SMS_0003"),
    ("claim_won", "SMS_0004"),
    ("claim_lost", "SMS_0005"),
    ("reply_help", "SMS_0006"),
    ("reply_stranger", "SMS_0007"),
];

/// Which provider's API the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Aliyun,
    Tencent,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Self::Aliyun => "aliyun",
            Self::Tencent => "tencent",
        }
    }
}

/// The fake's response to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Takes the SMS and returns a new provider message id.
    Accept,
    /// Rejects the SMS with the provider's error code in a JSON body.
    Reject { code: String },
    /// Responds with this HTTP status and a plain-text body.
    Status(u16),
    /// Waits this long before taking the SMS, as an overloaded provider
    /// would.
    Delay(Duration),
}

impl Answer {
    pub fn reject(code: &str) -> Self {
        Self::Reject { code: code.into() }
    }
}

/// One request with a valid signature.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSms {
    /// The mainland number, without `+86`.
    pub phone: String,
    /// The template's name, such as `county_offer`.
    pub template: String,
    /// `TemplateParam` (an object) or `TemplateParamSet` (a list).
    pub params: Value,
    /// `OutId` or `SessionContext`: the service's SMS id, or empty.
    pub out_id: String,
    /// The message id the fake returned, when it took the SMS.
    pub provider_id: Option<String>,
}

#[derive(Default)]
struct Book {
    received: Vec<ReceivedSms>,
    bad_requests: Vec<String>,
    scripts: HashMap<String, VecDeque<Answer>>,
    next_id: u64,
}

type Shared = Arc<(Dialect, Mutex<Book>)>;

/// A fake provider serving until dropped.
pub struct FakeProvider {
    pub dialect: Dialect,
    url: String,
    shared: Shared,
    task: JoinHandle<()>,
}

impl FakeProvider {
    pub async fn start(dialect: Dialect) -> Self {
        let shared: Shared = Arc::new((dialect, Mutex::new(Book::default())));
        let router = Router::new()
            .route("/", post(send_sms))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let addr = listener.local_addr().expect("listener has an address");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("fake provider serves");
        });
        Self {
            dialect,
            url: format!("http://{addr}/"),
            shared,
            task,
        }
    }

    /// Returns the `DAIBAN_SMS_*` variables that send through this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        let templates: Vec<String> = TEMPLATE_CODES
            .iter()
            .map(|(name, code)| format!("{name}={code}"))
            .collect();
        let mut env = vec![
            ("DAIBAN_SMS_PROVIDER", self.dialect.name().to_owned()),
            ("DAIBAN_SMS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("DAIBAN_SMS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET.to_owned()),
            ("DAIBAN_SMS_SIGN_NAME", SIGN_NAME.to_owned()),
            ("DAIBAN_SMS_TEMPLATES", templates.join(",")),
            ("DAIBAN_SMS_ENDPOINT", self.url.clone()),
            ("DAIBAN_SMS_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ];
        if self.dialect == Dialect::Tencent {
            env.push(("DAIBAN_SMS_APP_ID", TENCENT_APP_ID.to_owned()));
        }
        env.into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// Returns [`FakeProvider::env`] for `Config::extra_env`, which takes
    /// static strings. The strings are leaked, a few hundred bytes per test.
    pub fn static_env(&self) -> Vec<(&'static str, &'static str)> {
        self.env()
            .into_iter()
            .map(|(name, value)| -> (&'static str, &'static str) { (name.leak(), value.leak()) })
            .collect()
    }

    /// Responds to the next requests for `phone` with `answers`, in order.
    /// Requests after those are accepted.
    pub fn script(&self, phone: &str, answers: impl IntoIterator<Item = Answer>) {
        self.book()
            .scripts
            .entry(phone.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Returns every request with a valid signature, in the order they came.
    pub fn received(&self) -> Vec<ReceivedSms> {
        self.book().received.clone()
    }

    /// Returns the requests with `out_id`.
    pub fn received_for(&self, out_id: &str) -> Vec<ReceivedSms> {
        self.book()
            .received
            .iter()
            .filter(|sms| sms.out_id == out_id)
            .cloned()
            .collect()
    }

    /// Why each request without a valid signature was rejected.
    pub fn bad_requests(&self) -> Vec<String> {
        self.book().bad_requests.clone()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.shared
            .1
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Returns the template's name for `code`, or the code itself when it is
/// not one of the fake's codes.
fn template_name(code: &str) -> String {
    TEMPLATE_CODES
        .iter()
        .find(|(_, known)| *known == code)
        .map_or(code, |(name, _)| name)
        .to_owned()
}

/// A request checked and parsed, before it is answered.
struct Request {
    phone: String,
    template: String,
    params: Value,
    out_id: String,
}

async fn send_sms(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let dialect = shared.0;
    let parsed = match dialect {
        Dialect::Aliyun => aliyun_request(&body),
        Dialect::Tencent => tencent_request(&headers, &body),
    };
    let request = match parsed {
        Ok(request) => request,
        Err(reason) => {
            let mut book = shared.1.lock().unwrap_or_else(|p| p.into_inner());
            book.bad_requests.push(reason.clone());
            return error_answer(dialect, "SignatureDoesNotMatch", &reason);
        }
    };

    let (index, answer) = {
        let mut book = shared.1.lock().unwrap_or_else(|p| p.into_inner());
        let answer = book
            .scripts
            .get_mut(&request.phone)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Accept);
        book.received.push(ReceivedSms {
            phone: request.phone,
            template: request.template,
            params: request.params,
            out_id: request.out_id,
            provider_id: None,
        });
        (book.received.len() - 1, answer)
    };

    match answer {
        Answer::Reject { code } => error_answer(dialect, &code, "rejected as scripted"),
        Answer::Status(status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure".into(),
        ),
        Answer::Accept => accept(&shared, index),
        Answer::Delay(wait) => {
            tokio::time::sleep(wait).await;
            accept(&shared, index)
        }
    }
}

/// Accepts request `index`, giving it a provider id, and builds the
/// success response.
fn accept(shared: &Shared, index: usize) -> (StatusCode, String) {
    let id = {
        let mut book = shared.1.lock().unwrap_or_else(|p| p.into_inner());
        book.next_id += 1;
        let id = match shared.0 {
            Dialect::Aliyun => format!("9006197469364{:05}^0", book.next_id),
            Dialect::Tencent => format!("2433:6729{:08}", book.next_id),
        };
        book.received[index].provider_id = Some(id.clone());
        id
    };
    let body = match shared.0 {
        Dialect::Aliyun => json!({
            "Code": "OK", "Message": "OK", "BizId": id, "RequestId": "fake-request"
        }),
        Dialect::Tencent => json!({"Response": {
            "SendStatusSet": [{
                "SerialNo": id, "Fee": 1, "Code": "Ok", "Message": "send success",
                "IsoCode": "CN"
            }],
            "RequestId": "fake-request"
        }}),
    };
    (StatusCode::OK, body.to_string())
}

/// Builds the provider's error response with `code`, sent with HTTP 200.
/// The clients decide by the code in the body, whatever the status.
fn error_answer(dialect: Dialect, code: &str, message: &str) -> (StatusCode, String) {
    let body = match dialect {
        Dialect::Aliyun => json!({"Code": code, "Message": message, "RequestId": "fake-request"}),
        Dialect::Tencent => json!({"Response": {
            "Error": {"Code": code, "Message": message},
            "RequestId": "fake-request"
        }}),
    };
    (StatusCode::OK, body.to_string())
}

fn decode(text: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|err| format!("parameter is not UTF-8: {err}"))
}

/// Checks the RPC signature of an Alibaba Cloud form body and reads it.
fn aliyun_request(body: &[u8]) -> Result<Request, String> {
    let body = std::str::from_utf8(body).map_err(|err| format!("body is not UTF-8: {err}"))?;
    let mut params = Vec::new();
    for pair in body.split('&') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("parameter without '=': {pair}"))?;
        params.push((decode(name)?, decode(value)?));
    }

    let position = params
        .iter()
        .position(|(name, _)| name == "Signature")
        .ok_or("no Signature parameter")?;
    let signature = params.remove(position).1;

    let signed: Vec<(&str, String)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    if rpc_signature("POST", &signed, ACCESS_KEY_SECRET) != signature {
        return Err("RPC signature does not match".into());
    }

    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| format!("missing parameter {name}"))
    };
    if param("AccessKeyId")? != ACCESS_KEY_ID || param("Action")? != "SendSms" {
        return Err("wrong AccessKeyId or Action".into());
    }
    if param("SignName")? != SIGN_NAME {
        return Err("wrong SignName".into());
    }

    let template_param = param("TemplateParam")?;
    Ok(Request {
        phone: param("PhoneNumbers")?,
        template: template_name(&param("TemplateCode")?),
        params: serde_json::from_str(&template_param)
            .map_err(|err| format!("TemplateParam is not JSON: {err}"))?,
        out_id: param("OutId").unwrap_or_default(),
    })
}

/// Checks the TC3-HMAC-SHA256 signature of a Tencent Cloud request and
/// reads it.
fn tencent_request(headers: &HeaderMap, body: &[u8]) -> Result<Request, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    let timestamp: i64 = header("x-tc-timestamp")
        .parse()
        .map_err(|_| "X-TC-Timestamp is not a number")?;
    let expected = tc3_authorization(
        ACCESS_KEY_ID,
        ACCESS_KEY_SECRET,
        "sms",
        &header("host"),
        body,
        timestamp,
    );
    if header("authorization") != expected {
        return Err("TC3 signature does not match".into());
    }

    if header("x-tc-action") != "SendSms" {
        return Err("X-TC-Action is not SendSms".into());
    }

    let request: Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not JSON: {err}"))?;
    if request["SmsSdkAppId"] != TENCENT_APP_ID || request["SignName"] != SIGN_NAME {
        return Err("wrong SmsSdkAppId or SignName".into());
    }

    let phone = request["PhoneNumberSet"][0]
        .as_str()
        .and_then(|phone| phone.strip_prefix("+86"))
        .ok_or("PhoneNumberSet holds no +86 number")?;
    Ok(Request {
        phone: phone.to_owned(),
        template: template_name(request["TemplateId"].as_str().unwrap_or_default()),
        params: request["TemplateParamSet"].clone(),
        out_id: request["SessionContext"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}
