//! Tencent Cloud SMS `SendSms` (API version 2021-01-11), signed with
//! TC3-HMAC-SHA256.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_dispatch::{Notifier, NotifyError, Sent, Sms};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::outcome::{self, Target};
use crate::settings::TencentSettings;

/// The content type the requests are signed and sent with.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The canonical request of a POST to `/` with the signed headers
/// `content-type` and `host`.
pub(crate) fn canonical_request(host: &str, content_type: &str, payload: &[u8]) -> String {
    format!(
        "POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n{}",
        sha256_hex(payload)
    )
}

/// The string TC3-HMAC-SHA256 signs: the algorithm, the Unix time, the
/// credential scope (UTC date, service, `tc3_request`) and the hash of the
/// canonical request.
pub(crate) fn string_to_sign(timestamp: i64, date: &str, service: &str, canonical: &str) -> String {
    format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

/// The hex signature of `string_to_sign`, with the key derived from the
/// secret key, the UTC date and the service.
pub fn tc3_signature(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date);
    let secret_service = hmac_sha256(&secret_date, service);
    let secret_signing = hmac_sha256(&secret_service, "tc3_request");
    hex(&hmac_sha256(&secret_signing, string_to_sign))
}

/// The `Authorization` header of a POST of `payload` to `host` for
/// `service` at Unix time `timestamp`.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    payload: &[u8],
    timestamp: i64,
) -> String {
    let date = DateTime::<Utc>::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let canonical = canonical_request(host, CONTENT_TYPE, payload);
    let to_sign = string_to_sign(timestamp, &date, service, &canonical);
    let signature = tc3_signature(secret_key, &date, service, &to_sign);
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, \
         SignedHeaders=content-type;host, Signature={signature}"
    )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsRequest<'a> {
    phone_number_set: [String; 1],
    sms_sdk_app_id: &'a str,
    sign_name: &'a str,
    template_id: &'a str,
    template_param_set: Vec<&'a str>,
    session_context: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    response: SendSmsResponse,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsResponse {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    serial_no: String,
}

/// Whether an error code may pass on a later try: internal errors and
/// rate limits. Bad credentials, parameters and templates fail again.
fn transient_code(code: &str) -> bool {
    code.starts_with("InternalError")
        || code.starts_with("RequestLimitExceeded")
        || code.starts_with("LimitExceeded")
}

/// Sends through Tencent Cloud SMS.
pub struct TencentNotifier {
    client: reqwest::Client,
    settings: TencentSettings,
    duty_desk: Option<daiban_domain::PhoneNumber>,
}

impl TencentNotifier {
    pub fn new(
        client: reqwest::Client,
        settings: TencentSettings,
        duty_desk: Option<daiban_domain::PhoneNumber>,
    ) -> Self {
        Self {
            client,
            settings,
            duty_desk,
        }
    }

    /// The endpoint's `host[:port]`, as the request's `Host` header names
    /// it.
    fn host(&self) -> String {
        let url = &self.settings.endpoint;
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

#[async_trait]
impl Notifier for TencentNotifier {
    async fn send(&self, sms: Sms) -> Result<Sent, NotifyError> {
        let phone = outcome::phone(&sms, self.duty_desk.as_ref())?;
        let target = Target::new(&sms);
        let settings = &self.settings;
        let request = SendSmsRequest {
            phone_number_set: [format!("+86{}", phone.as_str())],
            sms_sdk_app_id: &settings.sdk_app_id,
            sign_name: &settings.sign_name,
            template_id: settings.templates.code(sms.message.template),
            template_param_set: sms.message.params.iter().map(|(_, v)| v.as_str()).collect(),
            session_context: sms.out_id(),
        };
        let payload = serde_json::to_vec(&request)
            .map_err(|err| target.permanent(format!("failed to encode the request: {err}")))?;
        let host = self.host();
        let timestamp = Utc::now().timestamp();
        let authorization = authorization(
            &settings.secret_id,
            settings.secret_key.expose(),
            "sms",
            &host,
            &payload,
            timestamp,
        );
        let response = self
            .client
            .post(settings.endpoint.clone())
            .header("authorization", authorization)
            .header("content-type", CONTENT_TYPE)
            .header("host", host)
            .header("x-tc-action", "SendSms")
            .header("x-tc-version", "2021-01-11")
            .header("x-tc-timestamp", timestamp.to_string())
            .header("x-tc-region", &settings.region)
            .body(payload)
            .send()
            .await
            .map_err(|err| target.transport(err))?;
        let status = response.status();
        let text = response.text().await.map_err(|err| target.transport(err))?;
        let Ok(envelope) = serde_json::from_str::<Envelope>(&text) else {
            return Err(target.status(status));
        };
        let reply = envelope.response;
        if let Some(error) = reply.error {
            let reason = format!("{}: {}", error.code, error.message);
            return Err(if transient_code(&error.code) {
                target.transient(reason)
            } else {
                target.permanent(reason)
            });
        }
        match reply.send_status_set.first() {
            Some(sent) if sent.code == "Ok" => Ok(Sent {
                provider_id: Some(sent.serial_no.clone()).filter(|id| !id.is_empty()),
            }),
            Some(sent) if transient_code(&sent.code) => {
                Err(target.transient(format!("{}: {}", sent.code, sent.message)))
            }
            Some(sent) => Err(target.permanent(format!("{}: {}", sent.code, sent.message))),
            None => Err(target.uncertain("answer without a send status".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of Tencent Cloud's "Signature v3" page
    // (https://www.tencentcloud.com/document/product/382/40467, the same
    // example on every product's copy of the page): DescribeInstances of
    // CVM at Unix time 1551113065 with the SecretKey
    // Gu5t9xGARNpq86cd98joQYCN3EXAMPLE.
    const PAYLOAD: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    const SECRET_KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";

    #[test]
    fn payload_hash_matches_published_example() {
        assert_eq!(
            sha256_hex(PAYLOAD.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
    }

    #[test]
    fn canonical_request_matches_published_example() {
        let canonical =
            canonical_request("cvm.tencentcloudapi.com", CONTENT_TYPE, PAYLOAD.as_bytes());
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
    }

    #[test]
    fn signature_matches_published_example() {
        let auth = authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            SECRET_KEY,
            "cvm",
            "cvm.tencentcloudapi.com",
            PAYLOAD.as_bytes(),
            1551113065,
        );
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    #[test]
    fn rate_limits_are_transient() {
        assert!(transient_code("LimitExceeded.PhoneNumberThirtySecondLimit"));
        assert!(transient_code("InternalError.Timeout"));
        assert!(!transient_code(
            "FailedOperation.TemplateIncorrectOrUnapproved"
        ));
        assert!(!transient_code("AuthFailure.SignatureFailure"));
    }
}
