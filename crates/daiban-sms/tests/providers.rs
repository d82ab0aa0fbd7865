//! Each provider client against a fake provider on loopback that checks
//! the request's signature as the provider would, records what was sent
//! and responds as scripted.

// The fake's helpers run only inside tests, where a panic is the report.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use daiban_dispatch::{Message, Notifier, NotifyError, Recipient, Sms, Template};
use daiban_domain::{AgentId, CountyCode, OrderId, PhoneNumber};
use daiban_sms::{
    AliyunNotifier, AliyunSettings, GatewayNotifier, GatewaySettings, Secret, TemplateCodes,
    TencentNotifier, TencentSettings, rpc_signature, tc3_authorization,
};
use daiban_store::sms::{SmsId, SmsRecipient};
use percent_encoding::percent_decode_str;

const KEY_ID: &str = "test-key-id";
const SECRET: &str = "test-secret-0123456789";
const TEMPLATES: &str = "grid_offer=SMS_1,county_offer=SMS_2,escalation=SMS_3,claim_won=SMS_4,claim_lost=SMS_5,reply_help=SMS_6,reply_stranger=SMS_7";

/// What the fake provider received: the decoded parameters or body of
/// each request whose signature was valid.
#[derive(Default)]
struct Fake {
    received: Mutex<Vec<serde_json::Value>>,
    bad_signatures: Mutex<usize>,
    /// Responses to send, first to last. Once it is empty, every request
    /// succeeds.
    script: Mutex<VecDeque<(StatusCode, String)>>,
}

impl Fake {
    fn next_answer(&self, success: &str) -> (StatusCode, String) {
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((StatusCode::OK, success.to_owned()))
    }
}

async fn start(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/")
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8().unwrap().into_owned()
}

async fn aliyun(State(fake): State<Arc<Fake>>, body: String) -> (StatusCode, String) {
    let mut params: Vec<(String, String)> = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let position = params.iter().position(|(k, _)| k == "Signature");
    let Some(signature) = position.map(|i| params.remove(i).1) else {
        *fake.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::BAD_REQUEST,
            r#"{"Code":"MissingSignature"}"#.into(),
        );
    };
    let borrowed: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    if rpc_signature("POST", &borrowed, SECRET) != signature {
        *fake.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::BAD_REQUEST,
            r#"{"Code":"SignatureDoesNotMatch","Message":"bad signature"}"#.into(),
        );
    }
    let record: serde_json::Map<String, serde_json::Value> =
        params.into_iter().map(|(k, v)| (k, v.into())).collect();
    fake.received.lock().unwrap().push(record.into());
    fake.next_answer(
        r#"{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"r1"}"#,
    )
}

async fn tencent(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let timestamp: i64 = header("x-tc-timestamp").parse().unwrap_or_default();
    let expected = tc3_authorization(KEY_ID, SECRET, "sms", &header("host"), &body, timestamp);
    let sent = header("authorization");
    if expected != sent || header("x-tc-action") != "SendSms" {
        *fake.bad_signatures.lock().unwrap() += 1;
        return (
            StatusCode::OK,
            r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"bad"},"RequestId":"r"}}"#
                .into(),
        );
    }
    let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
    fake.received.lock().unwrap().push(record);
    fake.next_answer(
        r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8613800000000","Fee":1,"SessionContext":"","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"r"}}"#,
    )
}

async fn gateway(State(fake): State<Arc<Fake>>, body: Bytes) -> (StatusCode, String) {
    let record: serde_json::Value = serde_json::from_slice(&body).unwrap();
    fake.received.lock().unwrap().push(record);
    fake.next_answer("{}")
}

fn sms() -> Sms {
    Sms {
        recipient: Recipient::Agent {
            id: AgentId::parse("A0001").unwrap(),
            phone: PhoneNumber::parse("13812341234").unwrap(),
        },
        id: Some(SmsId::new(
            OrderId::new(CountyCode::parse("431127").unwrap(), 7),
            "widened",
            SmsRecipient::Agent(AgentId::parse("A0001").unwrap()),
        )),
        message: Message {
            template: Template::CountyOffer,
            params: vec![
                ("number", "20261123-0007".into()),
                ("matter", "我要开餐馆".into()),
                ("grid", "塔峰镇友谊村".into()),
                ("code", "737111".into()),
            ],
        },
    }
}

fn aliyun_notifier(url: &str) -> AliyunNotifier {
    AliyunNotifier::new(
        reqwest::Client::new(),
        AliyunSettings {
            access_key_id: KEY_ID.into(),
            access_key_secret: Secret::new(SECRET),
            sign_name: "蓝山县政务服务".into(),
            templates: TemplateCodes::parse(TEMPLATES).unwrap(),
            endpoint: url.parse().unwrap(),
        },
        None,
    )
}

fn tencent_notifier(url: &str, secret: &str) -> TencentNotifier {
    TencentNotifier::new(
        reqwest::Client::new(),
        TencentSettings {
            secret_id: KEY_ID.into(),
            secret_key: Secret::new(secret),
            sdk_app_id: "1400000000".into(),
            sign_name: "蓝山县政务服务".into(),
            templates: TemplateCodes::parse(TEMPLATES).unwrap(),
            region: "ap-guangzhou".into(),
            endpoint: url.parse().unwrap(),
        },
        None,
    )
}

#[tokio::test]
async fn aliyun_request_signed_and_complete() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/", post(aliyun))
            .with_state(fake.clone()),
    )
    .await;

    aliyun_notifier(&url).send(sms()).await.unwrap();

    assert_eq!(*fake.bad_signatures.lock().unwrap(), 0);
    let received = fake.received.lock().unwrap();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent["Action"], "SendSms");
    assert_eq!(sent["PhoneNumbers"], "13812341234");
    assert_eq!(sent["TemplateCode"], "SMS_2");
    assert_eq!(sent["SignName"], "蓝山县政务服务");
    assert_eq!(sent["OutId"], "431127-00000007.widened.A0001");
    let params: serde_json::Value =
        serde_json::from_str(sent["TemplateParam"].as_str().unwrap()).unwrap();
    assert_eq!(params["code"], "737111");
    assert_eq!(params["matter"], "我要开餐馆");
}

#[tokio::test]
async fn aliyun_errors_sorted() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/", post(aliyun))
            .with_state(fake.clone()),
    )
    .await;
    fake.script.lock().unwrap().extend([
        (
            StatusCode::OK,
            r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"invalid number"}"#.to_owned(),
        ),
        (
            StatusCode::OK,
            r#"{"Code":"isp.SYSTEM_ERROR","Message":"try later"}"#.to_owned(),
        ),
        (
            StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>".to_owned(),
        ),
    ]);
    let notifier = aliyun_notifier(&url);

    let permanent = notifier.send(sms()).await.unwrap_err();
    assert!(
        matches!(permanent, NotifyError::Permanent { .. }),
        "{permanent}"
    );
    let transient = notifier.send(sms()).await.unwrap_err();
    assert!(transient.is_transient(), "{transient}");
    let unreadable = notifier.send(sms()).await.unwrap_err();
    assert!(unreadable.is_transient(), "{unreadable}");
    assert!(
        !unreadable.to_string().contains("13812341234"),
        "{unreadable}"
    );
}

#[tokio::test]
async fn tencent_request_signed_and_complete() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/", post(tencent))
            .with_state(fake.clone()),
    )
    .await;

    tencent_notifier(&url, SECRET).send(sms()).await.unwrap();

    assert_eq!(*fake.bad_signatures.lock().unwrap(), 0);
    let received = fake.received.lock().unwrap();
    let sent = &received[0];
    assert_eq!(sent["PhoneNumberSet"][0], "+8613812341234");
    assert_eq!(sent["TemplateId"], "SMS_2");
    assert_eq!(sent["SmsSdkAppId"], "1400000000");
    assert_eq!(
        sent["TemplateParamSet"],
        serde_json::json!(["20261123-0007", "我要开餐馆", "塔峰镇友谊村", "737111"])
    );
    assert_eq!(sent["SessionContext"], "431127-00000007.widened.A0001");
}

#[tokio::test]
async fn tencent_wrong_secret_is_permanent() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/", post(tencent))
            .with_state(fake.clone()),
    )
    .await;

    let err = tencent_notifier(&url, "another-secret")
        .send(sms())
        .await
        .unwrap_err();

    assert!(matches!(err, NotifyError::Permanent { .. }), "{err}");
    assert_eq!(*fake.bad_signatures.lock().unwrap(), 1);
    assert!(!err.to_string().contains("another-secret"), "{err}");
}

#[tokio::test]
async fn tencent_rate_limit_is_transient() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/", post(tencent))
            .with_state(fake.clone()),
    )
    .await;
    fake.script.lock().unwrap().push_back((
        StatusCode::OK,
        r#"{"Response":{"SendStatusSet":[{"SerialNo":"","Code":"LimitExceeded.PhoneNumberThirtySecondLimit","Message":"too often"}],"RequestId":"r"}}"#.to_owned(),
    ));

    let err = tencent_notifier(&url, SECRET)
        .send(sms())
        .await
        .unwrap_err();

    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn gateway_posts_json_and_sorts_statuses() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/sms", post(gateway))
            .with_state(fake.clone()),
    )
    .await;
    let notifier = GatewayNotifier::new(
        reqwest::Client::new(),
        GatewaySettings {
            url: format!("{url}sms").parse().unwrap(),
        },
        None,
    );
    fake.script.lock().unwrap().extend([
        (StatusCode::SERVICE_UNAVAILABLE, String::new()),
        (StatusCode::UNPROCESSABLE_ENTITY, String::new()),
    ]);

    assert!(notifier.send(sms()).await.unwrap_err().is_transient());
    let rejected = notifier.send(sms()).await.unwrap_err();
    assert!(
        matches!(rejected, NotifyError::Permanent { .. }),
        "{rejected}"
    );
    notifier.send(sms()).await.unwrap();

    let received = fake.received.lock().unwrap();
    assert_eq!(received.len(), 3);
    let sent = &received[2];
    assert_eq!(sent["phone"], "13812341234");
    assert_eq!(sent["template"], "county_offer");
    assert_eq!(sent["params"]["code"], "737111");
    assert_eq!(
        sent["text"],
        "全县新单20261123-0007：我要开餐馆，塔峰镇友谊村。回复737111抢单"
    );
}

#[tokio::test]
async fn unreachable_provider_is_transient() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);

    let err = aliyun_notifier(&url).send(sms()).await.unwrap_err();

    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn duty_desk_without_phone_fails() {
    let fake = Arc::new(Fake::default());
    let url = start(
        Router::new()
            .route("/", post(aliyun))
            .with_state(fake.clone()),
    )
    .await;
    let mut note = sms();
    note.recipient = Recipient::DutyDesk;

    let err = aliyun_notifier(&url).send(note).await.unwrap_err();

    assert!(
        matches!(err, NotifyError::Permanent { .. }),
        "a missing duty desk number fails for good: {err}"
    );
    assert!(
        err.to_string().contains("DAIBAN_SMS_DUTY_DESK_PHONE"),
        "{err}"
    );
    assert!(fake.received.lock().unwrap().is_empty());
}
