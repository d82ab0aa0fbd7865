//! Logs of a `daiban serve` process: JSON lines off a terminal, and never a
//! whole phone number or a secret.

use std::time::Duration;

use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, TOKEN_SECRET, connect};
use daiban_tests::{Config, ServiceProcess, precise_request, with_bearer};
use serde_json::Value;
use tokio::time::{Instant, sleep};

#[tokio::test]
async fn json_logs_hide_phones_and_secrets() {
    let redis = RedisServer::start();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.insert("DAIBAN_LOG_FORMAT".into(), "json".into());
    env.insert("RUST_LOG".into(), "info,daiban_dispatch=debug".into());
    let service = ServiceProcess::start(&env);

    let mut request = precise_request("431127100008", "", "logs-1");
    request.request_text = "孩子上户口，请打13912345678联系".into();
    WorkOrderServiceClient::new(connect(service.addr).await)
        .submit_request(with_bearer(request, APP_KEY))
        .await
        .expect("submit succeeds");

    let deadline = Instant::now() + Duration::from_secs(5);
    while !service.log_contains("sms logged") {
        assert!(
            Instant::now() < deadline,
            "no SMS was logged:\n{}",
            service.log().join("\n")
        );
        sleep(Duration::from_millis(50)).await;
    }

    let lines = service.log();
    let mut sms = 0;
    for line in &lines {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert!(entry["level"].is_string(), "{line}");
        assert!(
            !line.contains("13912345678"),
            "a whole phone number was logged: {line}"
        );
        assert!(
            !line.contains(TOKEN_SECRET),
            "the token secret was logged: {line}"
        );
        assert!(!line.contains(APP_KEY), "an API key was logged: {line}");
        if entry["fields"]["message"] == "sms logged" {
            sms += 1;
            let recipient = entry["fields"]["recipient"]
                .as_str()
                .expect("an SMS line names the recipient");
            assert!(
                recipient.contains("****"),
                "the agent's phone is masked: {recipient}"
            );
            let text = entry["fields"]["text"]
                .as_str()
                .expect("an SMS line has the text");
            assert!(
                text.contains("139*"),
                "the number in the request is masked: {text}"
            );
        }
    }
    assert!(sms > 0);
}
