//! The SMS providers' webhooks: delivery reports and replies, each in its
//! provider's own request and response format, on the service's address.
//!
//! - `POST /sms/aliyun/report` and `/sms/aliyun/reply`: Alibaba Cloud's
//!   `SmsReport` and `SmsUp` pushes, answered `{"code": 0, "msg": "接收成功"}`.
//! - `POST /sms/tencent/report` and `/sms/tencent/reply`: Tencent Cloud's
//!   status and reply pushes, answered `{"result": 0, "errmsg": "OK"}`.
//!
//! Each takes the shared secret `DAIBAN_SMS_WEBHOOK_SECRET` as a last path
//! segment (`/sms/aliyun/report/<secret>`, for consoles that take only a
//! URL) or in the `X-Daiban-Webhook-Secret` header. A body that fails to
//! parse gets a 400 and changes nothing; a store failure gets a 503, so the
//! provider pushes again later. Handling the same push twice changes
//! nothing the second time.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use daiban_sms::inbound::{self, InboundError};
use serde_json::json;
use tracing::{info, warn};

use crate::app::App;
use crate::sms_inbox;

/// Largest body accepted, in bytes: a full batch of 1,000 reports is about
/// 300 KB.
const MAX_BODY_BYTES: usize = 512 * 1024;

/// Maximum time a push may take to arrive whole.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The header that may carry the shared secret.
const SECRET_HEADER: &str = "x-daiban-webhook-secret";

pub fn router(app: App) -> Router {
    Router::new()
        .route("/sms/{provider}/{kind}", post(push_with_header))
        .route("/sms/{provider}/{kind}/{secret}", post(push_with_path))
        .with_state(app)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Aliyun,
    Tencent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Report,
    Reply,
}

impl Provider {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "aliyun" => Some(Self::Aliyun),
            "tencent" => Some(Self::Tencent),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Aliyun => "aliyun",
            Self::Tencent => "tencent",
        }
    }

    /// Builds the provider's response: success, or a failure with `message`.
    fn answer(self, status: StatusCode, message: &str) -> Response {
        let ok = status.is_success();
        let body = match self {
            Self::Aliyun => json!({
                "code": if ok { 0 } else { 1 },
                "msg": if ok { "接收成功" } else { message },
            }),
            Self::Tencent => json!({
                "result": if ok { 0 } else { 1 },
                "errmsg": if ok { "OK" } else { message },
            }),
        };
        (status, axum::Json(body)).into_response()
    }
}

impl Kind {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "report" => Some(Self::Report),
            "reply" => Some(Self::Reply),
            _ => None,
        }
    }
}

async fn push_with_header(
    State(app): State<App>,
    Path((provider, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let secret = headers
        .get(SECRET_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    push(app, &provider, &kind, secret, &headers, body).await
}

async fn push_with_path(
    State(app): State<App>,
    Path((provider, kind, secret)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    push(app, &provider, &kind, Some(secret), &headers, body).await
}

/// Returns whether the request's Content-Type is JSON.
fn json_body(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            let media = media.trim();
            media.eq_ignore_ascii_case("application/json") || media.ends_with("+json")
        })
}

async fn push(
    app: App,
    provider: &str,
    kind: &str,
    secret: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let (Some(provider), Some(kind)) = (Provider::parse(provider), Kind::parse(kind)) else {
        return (
            StatusCode::NOT_FOUND,
            "no such webhook; use /sms/aliyun/report, /sms/aliyun/reply, /sms/tencent/report or /sms/tencent/reply\n",
        )
            .into_response();
    };
    if let Err((status, message)) = check_secret(&app, secret.as_deref()) {
        warn!(
            provider = provider.name(),
            "sms webhook rejected: {message}"
        );
        return provider.answer(status, message);
    }
    // Without a secret (development mode), a JSON content type is what
    // keeps a form on another site from posting here: browsers send JSON
    // across sites only after a preflight, which this route never allows.
    if app.webhook_secret.is_none() && !json_body(headers) {
        let message = "expected Content-Type: application/json";
        warn!(
            provider = provider.name(),
            "sms webhook rejected: {message}"
        );
        return provider.answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
    }

    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            let message = format!("body too large or broken: at most {MAX_BODY_BYTES} bytes");
            warn!(
                provider = provider.name(),
                "sms webhook rejected: {message}"
            );
            return provider.answer(StatusCode::PAYLOAD_TOO_LARGE, &message);
        }
        Err(_) => {
            return provider.answer(StatusCode::REQUEST_TIMEOUT, "body not received in time");
        }
    };

    let now = Utc::now();
    let handled = match (provider, kind) {
        (Provider::Aliyun, Kind::Report) => reports(&app, inbound::aliyun_reports(&bytes)).await,
        (Provider::Tencent, Kind::Report) => reports(&app, inbound::tencent_reports(&bytes)).await,
        (Provider::Aliyun, Kind::Reply) => replies(&app, inbound::aliyun_replies(&bytes)).await,
        (Provider::Tencent, Kind::Reply) => replies(&app, inbound::tencent_replies(&bytes)).await,
    };
    match handled {
        Ok(summary) => {
            info!(
                provider = provider.name(),
                summary,
                elapsed_ms = (Utc::now() - now).num_milliseconds(),
                "sms webhook handled"
            );
            provider.answer(StatusCode::OK, "")
        }
        Err(Failure::Invalid(err)) => {
            warn!(provider = provider.name(), error = %err, "sms webhook body rejected");
            provider.answer(StatusCode::BAD_REQUEST, &err.to_string())
        }
        Err(Failure::Store(reason)) => {
            warn!(provider = provider.name(), error = %reason, "sms webhook failed; the provider will push again");
            provider.answer(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

/// Checks the presented secret. Without a configured secret, webhooks work
/// only in development mode, which listens on loopback alone.
fn check_secret(app: &App, presented: Option<&str>) -> Result<(), (StatusCode, &'static str)> {
    match (&app.webhook_secret, presented) {
        (None, _) if app.auth.is_development() => Ok(()),
        (None, _) => Err((
            StatusCode::FORBIDDEN,
            "webhooks are off: set DAIBAN_SMS_WEBHOOK_SECRET",
        )),
        (Some(expected), Some(presented))
            if constant_time_eq(expected.expose().as_bytes(), presented.as_bytes()) =>
        {
            Ok(())
        }
        (Some(_), _) => Err((StatusCode::UNAUTHORIZED, "missing or wrong webhook secret")),
    }
}

/// Compares without stopping at the first difference, so the time taken
/// reveals nothing about the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

enum Failure {
    Invalid(InboundError),
    Store(String),
}

async fn reports(
    app: &App,
    parsed: Result<Vec<inbound::InboundReport>, InboundError>,
) -> Result<String, Failure> {
    let reports = parsed.map_err(Failure::Invalid)?;
    let counts = sms_inbox::record_reports(app, reports, Utc::now())
        .await
        .map_err(|err| Failure::Store(err.to_string()))?;
    Ok(format!(
        "{} recorded, {} duplicates, {} unmatched",
        counts.recorded, counts.duplicates, counts.unmatched
    ))
}

async fn replies(
    app: &App,
    parsed: Result<Vec<inbound::InboundReply>, InboundError>,
) -> Result<String, Failure> {
    let replies = parsed.map_err(Failure::Invalid)?;
    let count = replies.len();
    for reply in replies {
        sms_inbox::handle_reply(app, reply, Utc::now())
            .await
            .map_err(|err| Failure::Store(err.to_string()))?;
    }
    Ok(format!("{count} replies"))
}
