//! Alibaba Cloud SMS `SendSms` (API version 2017-05-25), signed with the
//! RPC signature: HMAC-SHA1 over the sorted, percent-encoded parameters.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use daiban_dispatch::{Notifier, NotifyError, Sent, Sms};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha1::Sha1;

use crate::outcome::{self, Target};
use crate::settings::AliyunSettings;

/// Characters the RPC signature leaves as they are: letters, digits and
/// `-_.~` (RFC 3986 unreserved). Everything else, the space included,
/// becomes `%XY`.
const RPC_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, RPC_ENCODE).to_string()
}

/// The parameters as `name=value` pairs joined by `&`, sorted by name and
/// percent-encoded: the canonicalized query string of the RPC signature.
pub(crate) fn canonical_query(params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    sorted
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The string the RPC signature signs for a request with `method` (`GET`
/// or `POST`) and `params`.
pub(crate) fn string_to_sign(method: &str, params: &[(&str, String)]) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// Signs a request: Base64 of HMAC-SHA1 keyed with the AccessKey secret
/// followed by `&`.
pub fn rpc_signature(method: &str, params: &[(&str, String)], access_key_secret: &str) -> String {
    let key = format!("{access_key_secret}&");
    let mut mac =
        Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(string_to_sign(method, params).as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The response of `SendSms`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsResponse {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: String,
}

/// Sends through Alibaba Cloud SMS.
pub struct AliyunNotifier {
    client: reqwest::Client,
    settings: AliyunSettings,
    duty_desk: Option<daiban_domain::PhoneNumber>,
}

impl AliyunNotifier {
    pub fn new(
        client: reqwest::Client,
        settings: AliyunSettings,
        duty_desk: Option<daiban_domain::PhoneNumber>,
    ) -> Self {
        Self {
            client,
            settings,
            duty_desk,
        }
    }

    /// The signed form body of a `SendSms` request to `phone` at `now`.
    fn form(&self, sms: &Sms, phone: &str, now: DateTime<Utc>) -> String {
        let params_json: serde_json::Map<String, serde_json::Value> = sms
            .message
            .params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
            .collect();
        let settings = &self.settings;
        let params: Vec<(&str, String)> = vec![
            ("AccessKeyId", settings.access_key_id.clone()),
            ("Action", "SendSms".into()),
            ("Format", "JSON".into()),
            ("OutId", sms.out_id()),
            ("PhoneNumbers", phone.to_owned()),
            ("RegionId", "cn-hangzhou".into()),
            ("SignName", settings.sign_name.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureNonce", format!("{:032x}", rand::random::<u128>())),
            ("SignatureVersion", "1.0".into()),
            (
                "TemplateCode",
                settings.templates.code(sms.message.template).to_owned(),
            ),
            (
                "TemplateParam",
                serde_json::Value::Object(params_json).to_string(),
            ),
            ("Timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", "2017-05-25".into()),
        ];
        let signature = rpc_signature("POST", &params, settings.access_key_secret.expose());
        format!(
            "{}&Signature={}",
            canonical_query(&params),
            percent_encode(&signature)
        )
    }
}

/// Whether an error `Code` of `SendSms` may pass on a later try: the
/// platform's own failures and flow control. Every other code (bad
/// credentials, template, signature name or number) fails again.
fn transient_code(code: &str) -> bool {
    code.starts_with("isp.")
        || code.starts_with("Throttling")
        || code == "ServiceUnavailable"
        || code == "isv.BUSINESS_LIMIT_CONTROL"
}

#[async_trait]
impl Notifier for AliyunNotifier {
    async fn send(&self, sms: Sms) -> Result<Sent, NotifyError> {
        let phone = outcome::phone(&sms, self.duty_desk.as_ref())?;
        let target = Target::new(&sms);
        let body = self.form(&sms, phone.as_str(), Utc::now());
        let response = self
            .client
            .post(self.settings.endpoint.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|err| target.transport(err))?;
        let status = response.status();
        let text = response.text().await.map_err(|err| target.transport(err))?;
        // The platform reports errors with a JSON body too, often with a
        // 4xx status, so the body's code decides when it has one.
        match serde_json::from_str::<SendSmsResponse>(&text) {
            Ok(reply) if reply.code == "OK" => Ok(Sent {
                provider_id: Some(reply.biz_id).filter(|id| !id.is_empty()),
            }),
            Ok(reply) if transient_code(&reply.code) => {
                Err(target.transient(format!("{}: {}", reply.code, reply.message)))
            }
            Ok(reply) => Err(target.permanent(format!("{}: {}", reply.code, reply.message))),
            Err(_) => Err(target.status(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Alibaba Cloud's RPC signature documentation
    /// (DescribeRegions, AccessKey `testid`/`testsecret`), as published at
    /// https://developer.aliyun.com/ask/210168 and, with the same
    /// signature, in the "Signature mechanism" pages of help.aliyun.com.
    fn example() -> Vec<(&'static str, String)> {
        vec![
            ("TimeStamp", "2016-02-23T12:46:24Z".into()),
            ("Format", "XML".into()),
            ("AccessKeyId", "testid".into()),
            ("Action", "DescribeRegions".into()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            (
                "SignatureNonce",
                "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf".into(),
            ),
            ("Version", "2014-05-26".into()),
            ("SignatureVersion", "1.0".into()),
        ]
    }

    #[test]
    fn string_to_sign_matches_published_example() {
        assert_eq!(
            string_to_sign("GET", &example()),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1\
             %26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z\
             %26Version%3D2014-05-26"
        );
    }

    #[test]
    fn signature_matches_published_example() {
        assert_eq!(
            rpc_signature("GET", &example(), "testsecret"),
            "CT9X0VtwR86fNWSnsc6v8YGOjuE="
        );
    }

    #[test]
    fn encoding_keeps_unreserved_and_escapes_rest() {
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("a b*c+"), "a%20b%2Ac%2B");
        assert_eq!(percent_encode("帮办"), "%E5%B8%AE%E5%8A%9E");
    }

    #[test]
    fn flow_control_is_transient() {
        assert!(transient_code("isv.BUSINESS_LIMIT_CONTROL"));
        assert!(transient_code("isp.SYSTEM_ERROR"));
        assert!(!transient_code("isv.MOBILE_NUMBER_ILLEGAL"));
        assert!(!transient_code("SignatureDoesNotMatch"));
    }
}
