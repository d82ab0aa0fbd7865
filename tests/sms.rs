//! SMS end to end against a real Redis and a fake provider that checks
//! signatures: offers go out once per agent, delivery reports and replies
//! come back through the webhooks and `SmsGatewayService`, and bad pushes
//! change nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{FixedOffset, Utc};
use daiban_domain::{AgentId, PhoneNumber};
use daiban_proto::v1 as pb;
use daiban_proto::v1::sms_gateway_service_client::SmsGatewayServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, SMS_KEY, connect};
use daiban_tests::sms_provider::{Answer, Dialect, FakeProvider, ReceivedSms, WEBHOOK_SECRET};
use daiban_tests::{
    Config, ServiceProcess, TestApp, bad_fields, demo_directory, grid_agents, precise_request,
    reason, spawn_app, with_bearer,
};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};
use tonic::Code;
use tonic::transport::Channel;

const GRID: &str = "431127100008";
const COUNTY: &str = "431127";

/// Bound of every wait for something the service does in the background.
const WAIT: Duration = Duration::from_secs(15);

/// A number that belongs to no agent of the demo directory.
const STRANGER: &str = "13900001111";

/// Polls `check` every 20 ms until it returns a value, and panics naming
/// `what` once `limit` passes.
async fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

async fn start(dialect: Dialect) -> (TestApp, FakeProvider) {
    start_with(dialect, "10m").await
}

async fn start_with(dialect: Dialect, widen_after: &'static str) -> (TestApp, FakeProvider) {
    let fake = FakeProvider::start(dialect).await;
    let app = spawn_app(Config {
        widen_after,
        extra_env: fake.static_env(),
        ..Config::default()
    })
    .await;
    (app, fake)
}

async fn submit(channel: &Channel, request_id: &str) -> pb::WorkOrder {
    WorkOrderServiceClient::new(channel.clone())
        .submit_request(with_bearer(
            precise_request(GRID, "M003", request_id),
            APP_KEY,
        ))
        .await
        .expect("submit succeeds")
        .into_inner()
}

async fn try_get(channel: &Channel, order_id: &str) -> Result<pb::WorkOrder, tonic::Status> {
    WorkOrderServiceClient::new(channel.clone())
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: order_id.into(),
            },
            APP_KEY,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn get(channel: &Channel, order_id: &str) -> pb::WorkOrder {
    try_get(channel, order_id).await.expect("get succeeds")
}

/// Polls the order until its SMS records satisfy `done`, and returns them
/// by SMS id.
async fn wait_for_sms(
    channel: &Channel,
    order_id: &str,
    what: &str,
    done: impl Fn(&[pb::SmsDelivery]) -> bool,
) -> HashMap<String, pb::SmsDelivery> {
    let found = wait_until(what, WAIT, async || {
        // A call may fail while Redis restarts, so the poll tries again.
        let order = try_get(channel, order_id).await.ok()?;
        done(&order.sms).then_some(order.sms)
    })
    .await;
    found
        .into_iter()
        .map(|sms| (sms.sms_id.clone(), sms))
        .collect()
}

fn state_of(sms: &pb::SmsDelivery) -> pb::SmsDeliveryState {
    pb::SmsDeliveryState::try_from(sms.state).unwrap_or_default()
}

fn all_in(sms: &[pb::SmsDelivery], count: usize, state: pb::SmsDeliveryState) -> bool {
    sms.len() == count && sms.iter().all(|sms| state_of(sms) == state)
}

fn phone_of(agent: &str) -> String {
    let id = AgentId::parse(agent).expect("test agent id is valid");
    demo_directory()
        .agent(&id)
        .expect("test agent is in the directory")
        .phone
        .as_str()
        .to_owned()
}

/// Returns the SMS id of `offer` of `order` to `agent`.
fn sms_id(order: &pb::WorkOrder, offer: &str, agent: &str) -> String {
    format!("{}.{offer}.{agent}", order.order_id)
}

/// Waits until the fake received `count` SMS matching `pick`, and returns
/// them.
async fn wait_for_received(
    fake: &FakeProvider,
    what: &str,
    count: usize,
    pick: impl Fn(&ReceivedSms) -> bool,
) -> Vec<ReceivedSms> {
    wait_until(what, WAIT, async || {
        let found: Vec<ReceivedSms> = fake.received().into_iter().filter(&pick).collect();
        (found.len() >= count).then_some(found)
    })
    .await
}

/// China time as the providers write it, `YYYY-MM-DD hh:mm:ss`.
fn china_now() -> String {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    Utc::now()
        .with_timezone(&china)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// An HTTP response of a webhook: its status and JSON body.
struct Pushed {
    status: u16,
    body: Value,
}

/// Posts `body` to the webhook at `path`, with `secret` in the header when
/// given.
async fn push(
    addr: SocketAddr,
    path: &str,
    body: impl Into<reqwest::Body>,
    secret: Option<&str>,
) -> Pushed {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = secret {
        request = request.header("x-daiban-webhook-secret", secret);
    }
    let response = request.send().await.expect("webhook request completes");
    let status = response.status().as_u16();
    let text = response.text().await.expect("webhook response is readable");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Pushed { status, body }
}

async fn push_json(addr: SocketAddr, path: &str, body: &Value) -> Pushed {
    push(addr, path, body.to_string(), Some(WEBHOOK_SECRET)).await
}

fn assert_aliyun_success(pushed: &Pushed, what: &str) {
    assert_eq!(pushed.status, 200, "{what}: {}", pushed.body);
    assert_eq!(pushed.body["code"], 0, "{what}: {}", pushed.body);
}

fn assert_tencent_success(pushed: &Pushed, what: &str) {
    assert_eq!(pushed.status, 200, "{what}: {}", pushed.body);
    assert_eq!(pushed.body["result"], 0, "{what}: {}", pushed.body);
}

/// Builds an Alibaba Cloud `SmsUp` push of one reply.
fn aliyun_reply(phone: &str, content: &str, sequence_id: u64) -> Value {
    json!([{
        "phone_number": phone,
        "content": content,
        "send_time": china_now(),
        "dest_code": "1234",
        "sequence_id": sequence_id,
        "sign_name": "蓝山县政务服务"
    }])
}

/// Builds a Tencent Cloud reply push, which is a single object.
fn tencent_reply(phone: &str, text: &str) -> Value {
    json!({
        "extend": "",
        "mobile": phone,
        "nationcode": "86",
        "sign": "蓝山县政务服务",
        "text": text,
        "time": Utc::now().timestamp()
    })
}

fn sms_gateway(channel: &Channel) -> SmsGatewayServiceClient<Channel> {
    SmsGatewayServiceClient::new(channel.clone())
}

/// Counts the entries of the county's reply log in Redis.
async fn replies_logged(redis: &RedisServer) -> usize {
    let client = redis::Client::open(redis.url()).expect("redis url is valid");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis accepts a connection");
    redis::cmd("XLEN")
        .arg(format!("daiban:{{{COUNTY}}}:replies"))
        .query_async(&mut connection)
        .await
        .expect("XLEN succeeds")
}

#[tokio::test]
async fn aliyun_offers_and_reports() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let order = submit(&app.channel, "aliyun-offers-1").await;
    let agents = grid_agents(GRID);
    assert_eq!(agents.len(), 3, "the test grid has three active agents");

    let sent = wait_for_sms(&app.channel, &order.order_id, "three offers sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    for agent in &agents {
        let id = sms_id(&order, "submitted", agent);
        let received = fake.received_for(&id);
        assert_eq!(received.len(), 1, "{agent} gets one offer: {received:?}");
        let received = &received[0];
        assert_eq!(received.phone, phone_of(agent));
        assert_eq!(received.template, "grid_offer");
        assert_eq!(received.params["code"], order.claim_code.as_str());
        assert_eq!(received.params["number"], order.number.as_str());
        let record = &sent[&id];
        assert_eq!(record.attempts, 1, "{record:?}");
        assert_eq!(record.offer, "submitted");
        assert_eq!(&record.agent_id, agent);
        assert_eq!(
            Some(&record.provider_message_id),
            received.provider_id.as_ref(),
            "the record keeps the BizId"
        );
        assert!(record.send_time.is_some(), "{record:?}");
    }
    assert!(fake.bad_requests().is_empty(), "{:?}", fake.bad_requests());

    let delivered = sms_id(&order, "submitted", &agents[0]);
    let failed = sms_id(&order, "submitted", &agents[1]);
    let untouched = sms_id(&order, "submitted", &agents[2]);
    let batch = json!([
        {
            "phone_number": phone_of(&agents[0]), "send_time": china_now(),
            "report_time": china_now(), "success": true, "err_code": "DELIVERED",
            "err_msg": "用户接收成功", "sms_size": "1",
            "biz_id": sent[&delivered].provider_message_id, "out_id": delivered
        },
        {
            "phone_number": phone_of(&agents[1]), "send_time": china_now(),
            "report_time": china_now(), "success": false, "err_code": "MK:0001",
            "err_msg": "用户关机", "sms_size": "1",
            "biz_id": sent[&failed].provider_message_id, "out_id": ""
        }
    ]);
    let pushed = push_json(app.addr, "/sms/aliyun/report", &batch).await;
    assert_aliyun_success(&pushed, "report batch");
    assert_eq!(pushed.body["msg"], "接收成功");

    let reported = get(&app.channel, &order.order_id).await.sms;
    let by_id: HashMap<&str, &pb::SmsDelivery> = reported
        .iter()
        .map(|sms| (sms.sms_id.as_str(), sms))
        .collect();
    assert_eq!(
        state_of(by_id[delivered.as_str()]),
        pb::SmsDeliveryState::SmsDelivered
    );
    assert!(by_id[delivered.as_str()].report_time.is_some());
    assert_eq!(
        state_of(by_id[failed.as_str()]),
        pb::SmsDeliveryState::SmsFailed,
        "matched by BizId alone"
    );
    assert_eq!(by_id[failed.as_str()].error, "MK:0001 用户关机");
    assert_eq!(
        state_of(by_id[untouched.as_str()]),
        pb::SmsDeliveryState::SmsSent
    );

    let again = push_json(app.addr, "/sms/aliyun/report", &batch).await;
    assert_aliyun_success(&again, "the same batch again");
    assert_eq!(
        get(&app.channel, &order.order_id).await.sms,
        reported,
        "a repeated batch changes nothing"
    );
    assert_eq!(fake.received().len(), 3, "reports send nothing");
}

#[tokio::test]
async fn tencent_offers_and_reports() {
    let (app, fake) = start(Dialect::Tencent).await;
    let order = submit(&app.channel, "tencent-offers-1").await;
    let agents = grid_agents(GRID);

    let sent = wait_for_sms(&app.channel, &order.order_id, "three offers sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    for agent in &agents {
        let id = sms_id(&order, "submitted", agent);
        let received = fake.received_for(&id);
        assert_eq!(received.len(), 1, "{agent} gets one offer: {received:?}");
        assert_eq!(received[0].phone, phone_of(agent));
        assert_eq!(received[0].template, "grid_offer");
        let params = received[0].params.as_array().expect("a parameter list");
        assert_eq!(
            params.last().and_then(Value::as_str),
            Some(order.claim_code.as_str()),
            "the claim code is the last parameter: {params:?}"
        );
        assert_eq!(
            Some(&sent[&id].provider_message_id),
            received[0].provider_id.as_ref(),
            "the record keeps the SerialNo"
        );
    }
    assert!(fake.bad_requests().is_empty(), "{:?}", fake.bad_requests());

    let delivered = sms_id(&order, "submitted", &agents[0]);
    let failed = sms_id(&order, "submitted", &agents[1]);
    let batch = json!([
        {
            "user_receive_time": china_now(), "nationcode": "86",
            "mobile": phone_of(&agents[0]), "report_status": "SUCCESS",
            "errmsg": "DELIVRD", "description": "用户短信送达成功",
            "sid": sent[&delivered].provider_message_id
        },
        {
            "user_receive_time": china_now(), "nationcode": "86",
            "mobile": phone_of(&agents[1]), "report_status": "FAIL",
            "errmsg": "MN:0017", "description": "用户手机号码停机",
            "sid": sent[&failed].provider_message_id
        }
    ]);
    let pushed = push_json(app.addr, "/sms/tencent/report", &batch).await;
    assert_tencent_success(&pushed, "report batch");
    assert_eq!(pushed.body["errmsg"], "OK");

    let reported = get(&app.channel, &order.order_id).await.sms;
    let by_id: HashMap<&str, &pb::SmsDelivery> = reported
        .iter()
        .map(|sms| (sms.sms_id.as_str(), sms))
        .collect();
    assert_eq!(
        state_of(by_id[delivered.as_str()]),
        pb::SmsDeliveryState::SmsDelivered
    );
    assert_eq!(
        state_of(by_id[failed.as_str()]),
        pb::SmsDeliveryState::SmsFailed
    );
    assert_eq!(by_id[failed.as_str()].error, "MN:0017 用户手机号码停机");

    let again = push_json(app.addr, "/sms/tencent/report", &batch).await;
    assert_tencent_success(&again, "the same batch again");
    assert_eq!(get(&app.channel, &order.order_id).await.sms, reported);
}

#[tokio::test]
async fn transient_errors_retried() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);
    fake.script(
        &phone_of(&agents[0]),
        [Answer::reject("isv.BUSINESS_LIMIT_CONTROL")],
    );
    fake.script(&phone_of(&agents[1]), [Answer::Status(503)]);
    let order = submit(&app.channel, "retry-1").await;

    let sent = wait_for_sms(&app.channel, &order.order_id, "all offers sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    for (agent, tries) in [(&agents[0], 2), (&agents[1], 2), (&agents[2], 1)] {
        let id = sms_id(&order, "submitted", agent);
        let record = &sent[&id];
        assert_eq!(record.attempts, tries, "{record:?}");
        assert_eq!(record.error, "", "a later success clears the error");
        let received = fake.received_for(&id);
        assert_eq!(received.len(), tries as usize, "{received:?}");
        assert!(
            received
                .last()
                .and_then(|sms| sms.provider_id.as_ref())
                .is_some(),
            "the last try was taken: {received:?}"
        );
    }
}

#[tokio::test]
async fn permanent_error_not_retried() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);
    fake.script(
        &phone_of(&agents[0]),
        [Answer::reject("isv.MOBILE_NUMBER_ILLEGAL")],
    );
    let order = submit(&app.channel, "permanent-1").await;
    let rejected = sms_id(&order, "submitted", &agents[0]);

    let records = wait_for_sms(
        &app.channel,
        &order.order_id,
        "every offer settled",
        |sms| {
            sms.len() == 3
                && sms.iter().all(|sms| {
                    matches!(
                        state_of(sms),
                        pb::SmsDeliveryState::SmsSent | pb::SmsDeliveryState::SmsFailed
                    )
                })
        },
    )
    .await;
    let record = &records[&rejected];
    assert_eq!(state_of(record), pb::SmsDeliveryState::SmsFailed);
    assert!(
        record.error.contains("isv.MOBILE_NUMBER_ILLEGAL"),
        "{record:?}"
    );
    assert_eq!(record.attempts, 1);

    // FAILED is final, so the sender takes it no more. A wait longer than
    // the first backoff shows that no second request follows.
    sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.received_for(&rejected).len(), 1);
    let record = get(&app.channel, &order.order_id)
        .await
        .sms
        .into_iter()
        .find(|sms| sms.sms_id == rejected)
        .expect("the record stays");
    assert_eq!(state_of(&record), pb::SmsDeliveryState::SmsFailed);
    assert_eq!(record.attempts, 1);
}

#[tokio::test]
async fn reply_claims_order() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);

    let first = submit(&app.channel, "reply-claim-1").await;
    let pushed = push_json(
        app.addr,
        "/sms/aliyun/reply",
        &aliyun_reply(
            &phone_of(&agents[0]),
            &format!("抢单 {}", first.claim_code),
            1001,
        ),
    )
    .await;
    assert_aliyun_success(&pushed, "Alibaba reply");
    let claimed = get(&app.channel, &first.order_id).await;
    assert_eq!(claimed.state, pb::WorkOrderState::Claimed as i32);
    assert_eq!(claimed.agent_id, agents[0]);
    let won = sms_id(&first, "claim-won", &agents[0]);
    let answer = wait_for_received(&fake, "the claim_won answer", 1, |sms| sms.out_id == won).await;
    assert_eq!(answer[0].template, "claim_won");
    assert_eq!(answer[0].phone, phone_of(&agents[0]));
    assert_eq!(answer[0].params["number"], first.number.as_str());

    let second = submit(&app.channel, "reply-claim-2").await;
    let pushed = push_json(
        app.addr,
        "/sms/tencent/reply",
        &tencent_reply(&phone_of(&agents[1]), &second.claim_code),
    )
    .await;
    assert_tencent_success(&pushed, "Tencent reply");
    let claimed = get(&app.channel, &second.order_id).await;
    assert_eq!(claimed.state, pb::WorkOrderState::Claimed as i32);
    assert_eq!(claimed.agent_id, agents[1]);
    let won = sms_id(&second, "claim-won", &agents[1]);
    wait_for_received(&fake, "the second claim_won answer", 1, |sms| {
        sms.out_id == won && sms.template == "claim_won"
    })
    .await;
    let records = wait_for_sms(
        &app.channel,
        &second.order_id,
        "the answer recorded",
        |sms| {
            sms.iter().any(|sms| {
                sms.offer == "claim-won" && state_of(sms) == pb::SmsDeliveryState::SmsSent
            })
        },
    )
    .await;
    assert_eq!(records[&won].agent_id, agents[1]);
}

#[tokio::test]
async fn reply_race_has_one_winner() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);

    for round in 0..5u64 {
        let order = submit(&app.channel, &format!("reply-race-{round}")).await;
        let replies = agents.iter().enumerate().map(|(index, agent)| {
            let body = aliyun_reply(
                &phone_of(agent),
                &order.claim_code,
                round * 10 + index as u64,
            );
            async move { push_json(app.addr, "/sms/aliyun/reply", &body).await }
        });
        for pushed in futures_join(replies).await {
            assert_aliyun_success(&pushed, "racing reply");
        }

        let holder = get(&app.channel, &order.order_id).await;
        assert_eq!(holder.state, pb::WorkOrderState::Claimed as i32);
        assert!(agents.contains(&holder.agent_id), "{holder:?}");
        for agent in &agents {
            let (offer, template) = if *agent == holder.agent_id {
                ("claim-won", "claim_won")
            } else {
                ("claim-taken", "claim_lost")
            };
            let id = sms_id(&order, offer, agent);
            let answers = wait_for_received(&fake, &format!("the answer {id}"), 1, |sms| {
                sms.out_id == id
            })
            .await;
            assert_eq!(answers.len(), 1, "{answers:?}");
            assert_eq!(answers[0].template, template);
            assert_eq!(answers[0].phone, phone_of(agent));
        }
        let won = fake
            .received()
            .into_iter()
            .filter(|sms| {
                sms.out_id
                    .starts_with(&format!("{}.claim-won.", order.order_id))
            })
            .count();
        assert_eq!(won, 1, "exactly one agent is told it won");
    }
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task completes"));
    }
    outputs
}

#[tokio::test]
async fn reply_pushed_twice_handled_once() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let redis = app.redis.as_ref().expect("the test app has a Redis");
    let agent = grid_agents(GRID).remove(0);
    let order = submit(&app.channel, "reply-twice-1").await;
    let body = aliyun_reply(&phone_of(&agent), &order.claim_code, 4242);

    let first = push_json(app.addr, "/sms/aliyun/reply", &body).await;
    assert_aliyun_success(&first, "first push");
    let second = push_json(app.addr, "/sms/aliyun/reply", &body).await;
    assert_aliyun_success(&second, "second push");
    assert_eq!(replies_logged(redis).await, 1, "the reply is logged once");

    // The same push after the agent gave the order back would grab it
    // again if the reply were handled twice.
    let mut agents =
        daiban_proto::v1::agent_service_client::AgentServiceClient::new(app.channel.clone());
    agents
        .release_work_order(with_bearer(
            pb::ReleaseWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: "没时间".into(),
            },
            &daiban_tests::service::agent_token(&agent),
        ))
        .await
        .expect("the holder releases the order");
    let third = push_json(app.addr, "/sms/aliyun/reply", &body).await;
    assert_aliyun_success(&third, "third push");
    let order_now = get(&app.channel, &order.order_id).await;
    assert_ne!(
        order_now.state,
        pb::WorkOrderState::Claimed as i32,
        "{order_now:?}"
    );
    assert_eq!(replies_logged(redis).await, 1);

    let won = sms_id(&order, "claim-won", &agent);
    wait_for_received(&fake, "the claim_won answer", 1, |sms| sms.out_id == won).await;
    assert_eq!(fake.received_for(&won).len(), 1);
}

#[tokio::test]
async fn stray_replies_answered_once() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let stranger = PhoneNumber::parse(STRANGER).expect("valid number");
    assert!(
        demo_directory().agent_by_phone(&stranger).is_none(),
        "{STRANGER} is no agent's"
    );
    let agent = grid_agents(GRID).remove(0);
    let order = submit(&app.channel, "stray-1").await;

    // A stranger who has the claim code still cannot grab the order.
    let pushes = [
        aliyun_reply(STRANGER, &order.claim_code, 1),
        aliyun_reply(STRANGER, "你们是谁", 2),
        aliyun_reply(&phone_of(&agent), "你好，请问怎么抢单", 3),
        aliyun_reply(&phone_of(&agent), "999999", 4),
        aliyun_reply(&phone_of(&agent), "好的 好的", 5),
    ];
    for body in &pushes {
        let pushed = push_json(app.addr, "/sms/aliyun/reply", body).await;
        assert_aliyun_success(&pushed, &body.to_string());
    }
    let pushed = push_json(
        app.addr,
        "/sms/tencent/reply",
        &tencent_reply(STRANGER, "?"),
    )
    .await;
    assert_tencent_success(&pushed, "Tencent reply from a stranger");

    let stranger_answers = wait_for_received(&fake, "the stranger's answer", 1, |sms| {
        sms.phone == STRANGER
    })
    .await;
    assert_eq!(stranger_answers[0].template, "reply_stranger");
    assert_eq!(stranger_answers[0].out_id, "");
    let help = wait_for_received(&fake, "the agent's help answer", 1, |sms| {
        sms.phone == phone_of(&agent) && sms.template == "reply_help"
    })
    .await;
    assert_eq!(help.len(), 1);

    // A second answer would go out at once, so a short wait lets any
    // surplus arrive before counting.
    sleep(Duration::from_millis(500)).await;
    let received = fake.received();
    let to_stranger = received.iter().filter(|sms| sms.phone == STRANGER).count();
    assert_eq!(to_stranger, 1, "one answer an hour per phone: {received:?}");
    let helps = received
        .iter()
        .filter(|sms| sms.template == "reply_help")
        .count();
    assert_eq!(helps, 1, "one help answer an hour per phone: {received:?}");
    let order_now = get(&app.channel, &order.order_id).await;
    assert_eq!(order_now.state, pb::WorkOrderState::OfferedToGrid as i32);
}

#[tokio::test]
async fn malformed_pushes_change_nothing() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let redis = app.redis.as_ref().expect("the test app has a Redis");
    let agents = grid_agents(GRID);
    let order = submit(&app.channel, "malformed-1").await;
    let before = wait_for_sms(&app.channel, &order.order_id, "three offers sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    let delivered = sms_id(&order, "submitted", &agents[0]);
    let good_report = json!({
        "phone_number": phone_of(&agents[0]), "report_time": china_now(), "success": true,
        "err_code": "DELIVERED", "biz_id": before[&delivered].provider_message_id,
        "out_id": delivered
    });
    let good_reply = json!({
        "phone_number": phone_of(&agents[0]), "content": order.claim_code,
        "send_time": china_now(), "sequence_id": 9
    });
    let nesting = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let too_many = json!(vec![good_report.clone(); 1001]).to_string();
    let oversized = format!(
        "[{{\"phone_number\":\"13800000000\",\"content\":\"{}\",\"sequence_id\":1}}]",
        "好".repeat(200_000)
    );
    let mut invalid_utf8 = br#"[{"phone_number":"13800000000","content":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#"","sequence_id":1}]"#);

    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("not JSON", "/sms/aliyun/report", b"delivered".to_vec(), 400),
        ("empty body", "/sms/aliyun/report", Vec::new(), 400),
        (
            "an object",
            "/sms/aliyun/report",
            good_report.to_string().into_bytes(),
            400,
        ),
        ("an empty batch", "/sms/aliyun/report", b"[]".to_vec(), 400),
        (
            "a string for success",
            "/sms/aliyun/report",
            br#"[{"success":"yes","biz_id":"1"}]"#.to_vec(),
            400,
        ),
        (
            "a good report beside a bad one",
            "/sms/aliyun/report",
            json!([good_report, {"success": true}])
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "a nesting bomb",
            "/sms/aliyun/report",
            nesting.clone().into_bytes(),
            400,
        ),
        (
            "1,001 reports",
            "/sms/aliyun/report",
            too_many.into_bytes(),
            400,
        ),
        (
            "a nesting bomb",
            "/sms/aliyun/reply",
            nesting.into_bytes(),
            400,
        ),
        (
            "a good claim beside a bad reply",
            "/sms/aliyun/reply",
            json!([good_reply, {"content": "x"}])
                .to_string()
                .into_bytes(),
            400,
        ),
        ("invalid UTF-8", "/sms/aliyun/reply", invalid_utf8, 400),
        (
            "a body over 512 KiB",
            "/sms/aliyun/reply",
            oversized.into_bytes(),
            413,
        ),
        ("a number", "/sms/tencent/reply", b"42".to_vec(), 400),
        (
            "a reply without mobile",
            "/sms/tencent/reply",
            json!({"text": order.claim_code, "time": 1})
                .to_string()
                .into_bytes(),
            400,
        ),
        (
            "an unknown report status",
            "/sms/tencent/report",
            json!([{"report_status": "MAYBE", "sid": before[&delivered].provider_message_id}])
                .to_string()
                .into_bytes(),
            400,
        ),
    ];
    for (what, path, body, status) in cases {
        let pushed = push(app.addr, path, body, Some(WEBHOOK_SECRET)).await;
        assert_eq!(pushed.status, status, "{what} to {path}: {}", pushed.body);
        assert_failure_format(path, &pushed, what);
    }

    let secret_cases = [
        (
            "a wrong secret",
            "/sms/aliyun/reply".to_owned(),
            Some("wrong-secret-0123456789"),
        ),
        ("no secret", "/sms/aliyun/reply".to_owned(), None),
        ("no secret", "/sms/tencent/report".to_owned(), None),
        (
            "a wrong secret in the path",
            "/sms/aliyun/reply/wrong-secret-0123456789".to_owned(),
            None,
        ),
    ];
    let claim = json!([good_reply]).to_string();
    for (what, path, secret) in secret_cases {
        let pushed = push(app.addr, &path, claim.clone(), secret).await;
        assert_eq!(pushed.status, 401, "{what}: {}", pushed.body);
        assert_failure_format(&path, &pushed, what);
    }

    let after = get(&app.channel, &order.order_id).await;
    assert_eq!(after.state, pb::WorkOrderState::OfferedToGrid as i32);
    assert_eq!(after.agent_id, "");
    let mut unchanged: Vec<pb::SmsDelivery> = before.into_values().collect();
    unchanged.sort_by(|a, b| a.sms_id.cmp(&b.sms_id));
    let mut now: Vec<pb::SmsDelivery> = after.sms;
    now.sort_by(|a, b| a.sms_id.cmp(&b.sms_id));
    assert_eq!(now, unchanged, "no SMS record changed");
    assert_eq!(replies_logged(redis).await, 0, "no reply was recorded");
    assert_eq!(fake.received().len(), 3, "nothing was answered");

    // The secret as the last path segment is accepted, for consoles that
    // take only a URL.
    let path = format!("/sms/aliyun/reply/{WEBHOOK_SECRET}");
    let pushed = push(app.addr, &path, claim, None).await;
    assert_aliyun_success(&pushed, "secret in the path");
    assert_eq!(get(&app.channel, &order.order_id).await.agent_id, agents[0]);
}

/// Checks that a rejected push got a failure in its provider's format.
fn assert_failure_format(path: &str, pushed: &Pushed, what: &str) {
    if path.starts_with("/sms/aliyun/") {
        let code = pushed.body["code"].as_i64();
        assert!(matches!(code, Some(c) if c != 0), "{what}: {}", pushed.body);
        assert!(
            pushed.body["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {}",
            pushed.body
        );
    } else {
        let result = pushed.body["result"].as_i64();
        assert!(
            matches!(result, Some(r) if r != 0),
            "{what}: {}",
            pushed.body
        );
        assert!(
            pushed.body["errmsg"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {}",
            pushed.body
        );
    }
}

#[tokio::test]
async fn webhooks_off_without_secret() {
    let app = spawn_app(Config {
        redis: false,
        ..Config::default()
    })
    .await;
    for path in ["/sms/aliyun/report", "/sms/tencent/reply"] {
        let pushed = push(app.addr, path, "[]", Some(WEBHOOK_SECRET)).await;
        assert_eq!(pushed.status, 403, "{path}: {}", pushed.body);
        assert_failure_format(path, &pushed, "no secret configured");
    }
}

#[tokio::test]
async fn gateway_service_reports_and_replies() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);
    let order = submit(&app.channel, "gateway-1").await;
    let sent = wait_for_sms(&app.channel, &order.order_id, "three offers sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    let mut gateway = sms_gateway(&app.channel);

    let by_our_id = sms_id(&order, "submitted", &agents[0]);
    let by_provider_id = sms_id(&order, "submitted", &agents[1]);
    let request = pb::ReportDeliveryRequest {
        reports: vec![
            pb::DeliveryReport {
                sms_id: by_our_id.clone(),
                delivered: true,
                ..Default::default()
            },
            pb::DeliveryReport {
                provider_message_id: sent[&by_provider_id].provider_message_id.clone(),
                delivered: false,
                error: "MK:0005 空号".into(),
                ..Default::default()
            },
            pb::DeliveryReport {
                sms_id: format!("{}.widened.A0001", order.order_id),
                delivered: true,
                ..Default::default()
            },
        ],
    };
    let counts = gateway
        .report_delivery(with_bearer(request.clone(), SMS_KEY))
        .await
        .expect("reports accepted")
        .into_inner();
    assert_eq!(
        (counts.recorded, counts.duplicates, counts.unmatched),
        (2, 0, 1),
        "{counts:?}"
    );
    let again = gateway
        .report_delivery(with_bearer(request, SMS_KEY))
        .await
        .expect("reports accepted again")
        .into_inner();
    assert_eq!(
        (again.recorded, again.duplicates, again.unmatched),
        (0, 2, 1),
        "{again:?}"
    );
    let records = get(&app.channel, &order.order_id).await.sms;
    let by_id: HashMap<&str, &pb::SmsDelivery> = records
        .iter()
        .map(|sms| (sms.sms_id.as_str(), sms))
        .collect();
    assert_eq!(
        state_of(by_id[by_our_id.as_str()]),
        pb::SmsDeliveryState::SmsDelivered
    );
    assert_eq!(
        state_of(by_id[by_provider_id.as_str()]),
        pb::SmsDeliveryState::SmsFailed
    );
    assert_eq!(by_id[by_provider_id.as_str()].error, "MK:0005 空号");

    let reply = pb::ReceiveReplyRequest {
        phone: format!("+86{}", phone_of(&agents[2])),
        text: format!("抢 {}", order.claim_code),
        reply_id: "gw-reply-1".into(),
        receive_time: None,
    };
    let outcome = gateway
        .receive_reply(with_bearer(reply.clone(), SMS_KEY))
        .await
        .expect("reply accepted")
        .into_inner();
    assert_eq!(outcome.outcome, pb::ReplyOutcome::ReplyClaimed as i32);
    assert_eq!(outcome.order_id, order.order_id);
    assert_eq!(outcome.agent_id, agents[2]);
    let claimed = get(&app.channel, &order.order_id).await;
    assert_eq!(claimed.state, pb::WorkOrderState::Claimed as i32);
    assert_eq!(claimed.agent_id, agents[2]);

    let repeated = gateway
        .receive_reply(with_bearer(reply, SMS_KEY))
        .await
        .expect("repeated reply accepted")
        .into_inner();
    assert_eq!(repeated.outcome, pb::ReplyOutcome::ReplyDuplicate as i32);

    let late = gateway
        .receive_reply(with_bearer(
            pb::ReceiveReplyRequest {
                phone: phone_of(&agents[0]),
                text: order.claim_code.clone(),
                reply_id: "gw-reply-2".into(),
                receive_time: None,
            },
            SMS_KEY,
        ))
        .await
        .expect("late reply accepted")
        .into_inner();
    assert_eq!(late.outcome, pb::ReplyOutcome::ReplyClaimLost as i32);
    assert_eq!(late.reason, "ORDER_ALREADY_CLAIMED");

    let won = sms_id(&order, "claim-won", &agents[2]);
    let lost = sms_id(&order, "claim-taken", &agents[0]);
    wait_for_received(&fake, "the claim_won answer", 1, |sms| sms.out_id == won).await;
    let answer =
        wait_for_received(&fake, "the claim_lost answer", 1, |sms| sms.out_id == lost).await;
    assert_eq!(answer[0].template, "claim_lost");
    assert_eq!(fake.received_for(&won).len(), 1);
}

#[tokio::test]
async fn gateway_service_rejects_invalid() {
    let (app, _fake) = start(Dialect::Aliyun).await;
    let mut gateway = sms_gateway(&app.channel);

    let empty = gateway
        .report_delivery(with_bearer(pb::ReportDeliveryRequest::default(), SMS_KEY))
        .await
        .expect_err("no reports");
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    assert_eq!(bad_fields(&empty), ["reports"]);

    let bad_id = gateway
        .report_delivery(with_bearer(
            pb::ReportDeliveryRequest {
                reports: vec![
                    pb::DeliveryReport {
                        sms_id: "431127-00000001.submitted.A0001".into(),
                        delivered: true,
                        ..Default::default()
                    },
                    pb::DeliveryReport {
                        sms_id: "not-an-sms-id".into(),
                        delivered: true,
                        ..Default::default()
                    },
                    pb::DeliveryReport::default(),
                ],
            },
            SMS_KEY,
        ))
        .await
        .expect_err("a bad sms_id");
    assert_eq!(bad_id.code(), Code::InvalidArgument, "{bad_id:?}");
    assert_eq!(
        bad_fields(&bad_id),
        ["reports[1].sms_id", "reports[2].sms_id"]
    );

    for phone in ["", "12345", "2025550123", "1380013800a"] {
        let status = gateway
            .receive_reply(with_bearer(
                pb::ReceiveReplyRequest {
                    phone: phone.into(),
                    text: "737111".into(),
                    reply_id: "gw-bad-phone".into(),
                    ..Default::default()
                },
                SMS_KEY,
            ))
            .await
            .expect_err("a bad phone");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{phone:?}: {status:?}"
        );
        assert_eq!(bad_fields(&status), ["phone"], "{phone:?}");
    }

    let no_text = gateway
        .receive_reply(with_bearer(
            pb::ReceiveReplyRequest {
                phone: STRANGER.into(),
                reply_id: "gw-no-text".into(),
                ..Default::default()
            },
            SMS_KEY,
        ))
        .await
        .expect_err("no text");
    assert_eq!(bad_fields(&no_text), ["text"]);

    // Without an id or a time, a repeat of the reply could not be told
    // from a new one.
    let no_identity = gateway
        .receive_reply(with_bearer(
            pb::ReceiveReplyRequest {
                phone: STRANGER.into(),
                text: "hi".into(),
                ..Default::default()
            },
            SMS_KEY,
        ))
        .await
        .expect_err("neither reply_id nor receive_time");
    assert_eq!(bad_fields(&no_identity), ["reply_id"]);

    let report = pb::ReportDeliveryRequest {
        reports: vec![pb::DeliveryReport {
            provider_message_id: "1".into(),
            delivered: true,
            ..Default::default()
        }],
    };
    let denied = gateway
        .report_delivery(with_bearer(report.clone(), APP_KEY))
        .await
        .expect_err("an app key has no sms scope");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let denied = gateway
        .receive_reply(with_bearer(
            pb::ReceiveReplyRequest {
                phone: STRANGER.into(),
                text: "hi".into(),
                ..Default::default()
            },
            daiban_tests::service::ADMIN_KEY,
        ))
        .await
        .expect_err("an admin key has no sms scope");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let unauthenticated = gateway
        .report_delivery(tonic::Request::new(report))
        .await
        .expect_err("no key");
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    assert!(!reason(&unauthenticated).is_empty());
}

#[tokio::test]
async fn replicas_send_each_sms_once() {
    let redis = RedisServer::start();
    let fake = FakeProvider::start(Dialect::Aliyun).await;
    let config = Config {
        widen_after: "1s",
        ..Config::default()
    };
    let mut env = config.env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.extend(fake.env());
    let first = ServiceProcess::start(&env);
    let second = ServiceProcess::start(&env);
    let channels = [connect(first.addr).await, connect(second.addr).await];

    let directory = demo_directory();
    let grid = grid_agents(GRID);
    let county_agents = directory.agents().filter(|agent| agent.active).count();
    let mut orders = Vec::new();
    for index in 0..4 {
        let channel = &channels[index % 2];
        orders.push(submit(channel, &format!("replicas-{index}")).await);
    }
    // Each order goes to its grid's agents, then widens to the rest.
    let expected = orders.len() * county_agents;
    let received = wait_until("every offer sent", Duration::from_secs(60), async || {
        let received = fake.received();
        (received.len() >= expected).then_some(received)
    })
    .await;
    for order in &orders {
        let widened = wait_for_sms(
            &channels[0],
            &order.order_id,
            "every offer settled",
            |sms| all_in(sms, county_agents, pb::SmsDeliveryState::SmsSent),
        )
        .await;
        assert_eq!(widened.len(), county_agents);
    }
    // Late duplicates, if any, would come right after the records settle.
    sleep(Duration::from_millis(500)).await;
    let received = {
        let now = fake.received();
        assert!(now.len() >= received.len());
        now
    };

    let mut per_out_id: HashMap<&str, usize> = HashMap::new();
    for sms in &received {
        *per_out_id.entry(sms.out_id.as_str()).or_default() += 1;
    }
    let repeated: Vec<(&&str, &usize)> = per_out_id.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "SMS sent more than once: {repeated:?}");
    assert_eq!(received.len(), expected, "one SMS per agent per offer");
    for order in &orders {
        for agent in directory.agents().filter(|agent| agent.active) {
            let offer = if grid.contains(&agent.id.to_string()) {
                "submitted"
            } else {
                "widened"
            };
            let id = format!("{}.{offer}.{}", order.order_id, agent.id);
            assert_eq!(per_out_id.get(id.as_str()), Some(&1), "{id}");
        }
    }
    assert!(fake.bad_requests().is_empty(), "{:?}", fake.bad_requests());
}

/// Writes `code` in full-width digits, as some phones' keyboards type them.
fn full_width(code: &str) -> String {
    code.chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap_or(c))
        .collect()
}

#[tokio::test]
async fn reply_code_forms() {
    let (app, fake) = start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);
    let first = submit(&app.channel, "code-forms-1").await;
    let second = submit(&app.channel, "code-forms-2").await;

    // Full-width digits, from a number sent as a JSON number.
    let phone: u64 = phone_of(&agents[0]).parse().expect("a phone is digits");
    let body = json!({
        "mobile": phone, "nationcode": 86, "text": format!("抢单{}", full_width(&first.claim_code)),
        "time": Utc::now().timestamp(), "sign": "", "extend": ""
    });
    assert_tencent_success(
        &push_json(app.addr, "/sms/tencent/reply", &body).await,
        "full width",
    );
    assert_eq!(get(&app.channel, &first.order_id).await.agent_id, agents[0]);

    // The code inside a longer run of digits is part of a phone number.
    let inside = format!("回电138{}12", second.claim_code);
    let body = aliyun_reply(&format!("86{}", phone_of(&agents[1])), &inside, 1);
    assert_aliyun_success(
        &push_json(app.addr, "/sms/aliyun/reply", &body).await,
        "inside",
    );
    let help = wait_for_received(&fake, "the help answer", 1, |sms| {
        sms.template == "reply_help"
    })
    .await;
    assert_eq!(help[0].phone, phone_of(&agents[1]));
    assert_eq!(
        get(&app.channel, &second.order_id).await.state,
        pb::WorkOrderState::OfferedToGrid as i32
    );

    // 10,000 characters: the code leads, the rest is cut.
    let long = format!("{} {}", second.claim_code, "好".repeat(10_000));
    let body = aliyun_reply(&format!("+86{}", phone_of(&agents[2])), &long, 2);
    assert_aliyun_success(
        &push_json(app.addr, "/sms/aliyun/reply", &body).await,
        "long",
    );
    assert_eq!(
        get(&app.channel, &second.order_id).await.agent_id,
        agents[2]
    );

    // Control characters and a sequence id given as text.
    let body = json!([{
        "phone_number": phone_of(&agents[0]), "content": "\u{0}\u{7}\u{1b}[2J",
        "send_time": china_now(), "sequence_id": "77"
    }]);
    assert_aliyun_success(
        &push_json(app.addr, "/sms/aliyun/reply", &body).await,
        "control",
    );
    let helps = wait_for_received(&fake, "the second help answer", 2, |sms| {
        sms.template == "reply_help"
    })
    .await;
    assert_eq!(helps.len(), 2, "{helps:?}");
}

#[tokio::test]
async fn reports_for_another_county_unmatched() {
    let (app, _fake) = start(Dialect::Aliyun).await;
    let agent = grid_agents(GRID).remove(0);
    let order = submit(&app.channel, "other-county-1").await;
    let own = sms_id(&order, "submitted", &agent);
    let before = wait_for_sms(&app.channel, &order.order_id, "three offers sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    let (_, sequence) = order
        .order_id
        .split_once('-')
        .expect("an order id is county-sequence");
    let foreign = format!("431128-{sequence}.submitted.{agent}");

    let batch = json!([{
        "phone_number": phone_of(&agent), "report_time": china_now(), "success": false,
        "err_code": "MK:0001", "biz_id": "", "out_id": foreign
    }]);
    let pushed = push_json(app.addr, "/sms/aliyun/report", &batch).await;
    assert_aliyun_success(&pushed, "report for another county");
    let counts = sms_gateway(&app.channel)
        .report_delivery(with_bearer(
            pb::ReportDeliveryRequest {
                reports: vec![pb::DeliveryReport {
                    sms_id: foreign,
                    delivered: false,
                    ..Default::default()
                }],
            },
            SMS_KEY,
        ))
        .await
        .expect("report accepted")
        .into_inner();
    assert_eq!(counts.unmatched, 1, "{counts:?}");

    let after = get(&app.channel, &order.order_id).await.sms;
    let record = after
        .iter()
        .find(|sms| sms.sms_id == own)
        .expect("the record stays");
    assert_eq!(record, &before[&own], "the county's own SMS is untouched");
}

#[tokio::test]
async fn redis_restart_before_retry_sends_once() {
    let mut redis = RedisServer::start_durable();
    let fake = FakeProvider::start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);
    for agent in &agents {
        fake.script(&phone_of(agent), [Answer::Status(503)]);
    }
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.extend(fake.env());
    let service = ServiceProcess::start(&env);
    let channel = connect(service.addr).await;

    let order = submit(&channel, "redis-restart-1").await;
    wait_for_sms(&channel, &order.order_id, "three retries queued", |sms| {
        sms.len() == 3
            && sms
                .iter()
                .all(|sms| state_of(sms) == pb::SmsDeliveryState::SmsQueued && sms.attempts == 1)
    })
    .await;

    // Down for longer than the first backoff, so each retry falls due
    // while Redis is away.
    redis.stop();
    sleep(Duration::from_millis(1500)).await;
    redis.restart();

    let sent = wait_for_sms(&channel, &order.order_id, "every retry sent", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    for agent in &agents {
        let id = sms_id(&order, "submitted", agent);
        assert_eq!(sent[&id].attempts, 2, "{:?}", sent[&id]);
        let received = fake.received_for(&id);
        assert_eq!(received.len(), 2, "one failed try, one sent: {received:?}");
        assert!(received[1].provider_id.is_some());
    }
}

#[tokio::test]
async fn killed_sender_leaves_unknown() {
    let redis = RedisServer::start();
    let fake = FakeProvider::start(Dialect::Aliyun).await;
    let agents = grid_agents(GRID);
    for agent in &agents {
        fake.script(&phone_of(agent), [Answer::Delay(Duration::from_secs(120))]);
    }
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.extend(fake.env());

    let doomed = ServiceProcess::start(&env);
    let order = submit(&connect(doomed.addr).await, "killed-1").await;
    wait_for_received(&fake, "three sends in flight", 3, |_| true).await;
    drop(doomed);

    // The survivor finds the sends leased to a dead process once their
    // 60-second lease ends, and marks them unknown rather than resend them.
    let survivor = ServiceProcess::start(&env);
    let channel = connect(survivor.addr).await;
    let mut records = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while records.is_empty() {
        records = tokio::select! {
            found = wait_for_sms(&channel, &order.order_id, "unknown records", |sms| {
                all_in(sms, 3, pb::SmsDeliveryState::SmsUnknown)
            }) => found,
            () = sleep(WAIT) => HashMap::new(),
        };
        assert!(
            Instant::now() < deadline,
            "SMS of the killed process did not become UNKNOWN within two minutes: {:?}",
            get(&channel, &order.order_id).await.sms
        );
    }
    for agent in &agents {
        let id = sms_id(&order, "submitted", agent);
        assert_eq!(fake.received_for(&id).len(), 1, "{id} was not sent again");
        assert_eq!(records[&id].attempts, 1);
        assert!(!records[&id].error.is_empty(), "{:?}", records[&id]);
    }

    // A delivery report still settles an unknown SMS.
    let id = sms_id(&order, "submitted", &agents[0]);
    let batch = json!([{
        "phone_number": phone_of(&agents[0]), "report_time": china_now(), "success": true,
        "err_code": "DELIVERED", "biz_id": "", "out_id": id
    }]);
    assert_aliyun_success(
        &push(
            survivor.addr,
            "/sms/aliyun/report",
            batch.to_string(),
            Some(WEBHOOK_SECRET),
        )
        .await,
        "report for an unknown SMS",
    );
    let settled = get(&channel, &order.order_id).await.sms;
    let record = settled.iter().find(|sms| sms.sms_id == id).expect("record");
    assert_eq!(state_of(record), pb::SmsDeliveryState::SmsDelivered);
}

#[tokio::test]
async fn redis_restart_during_send_keeps_result() {
    let mut redis = RedisServer::start_durable();
    let fake = FakeProvider::start(Dialect::Tencent).await;
    let agents = grid_agents(GRID);
    for agent in &agents {
        fake.script(&phone_of(agent), [Answer::Delay(Duration::from_secs(2))]);
    }
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.extend(fake.env());
    let service = ServiceProcess::start(&env);
    let channel = connect(service.addr).await;

    let order = submit(&channel, "redis-during-send-1").await;
    wait_for_received(&fake, "three sends in flight", 3, |_| true).await;
    // The provider takes the SMS while Redis is down, so the first tries
    // at recording that fail.
    redis.stop();
    sleep(Duration::from_secs(3)).await;
    redis.restart();

    let sent = wait_for_sms(&channel, &order.order_id, "every result recorded", |sms| {
        all_in(sms, 3, pb::SmsDeliveryState::SmsSent)
    })
    .await;
    for agent in &agents {
        let id = sms_id(&order, "submitted", agent);
        let received = fake.received_for(&id);
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(
            Some(&sent[&id].provider_message_id),
            received[0].provider_id.as_ref(),
            "the SerialNo is kept, so reports by sid still match"
        );
    }
    let sid = &sent[&sms_id(&order, "submitted", &agents[0])].provider_message_id;
    let batch = json!([{
        "user_receive_time": china_now(), "nationcode": "86", "mobile": phone_of(&agents[0]),
        "report_status": "SUCCESS", "errmsg": "DELIVRD", "sid": sid
    }]);
    let pushed = push(
        service.addr,
        "/sms/tencent/report",
        batch.to_string(),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_tencent_success(&pushed, "report by sid after the restart");
    let reported = get(&channel, &order.order_id).await.sms;
    let delivered = reported
        .iter()
        .filter(|sms| state_of(sms) == pb::SmsDeliveryState::SmsDelivered)
        .count();
    assert_eq!(delivered, 1, "{reported:?}");
}
