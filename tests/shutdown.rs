//! SIGTERM in the middle of a burst of calls: the process exits 0, and
//! every call it answered with OK is kept.

use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect};
use daiban_tests::{Config, ServiceProcess, precise_request, with_bearer};
use tokio::time::{Instant, sleep};

#[tokio::test]
async fn sigterm_during_burst_keeps_accepted_calls() {
    let redis = RedisServer::start_durable();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let mut first = ServiceProcess::start(&env);
    let client = WorkOrderServiceClient::new(connect(first.addr).await);

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..400 {
        let mut client = client.clone();
        calls.spawn(async move {
            // Spread over about 200 ms, so SIGTERM lands in the middle.
            sleep(Duration::from_micros(500 * i)).await;
            let request = precise_request("431127100008", "M003", &format!("burst-{i}"));
            client.submit_request(with_bearer(request, APP_KEY)).await
        });
    }
    sleep(Duration::from_millis(100)).await;
    first.send_sigterm();

    let mut accepted = Vec::new();
    let mut refused = 0;
    while let Some(joined) = calls.join_next().await {
        match joined.expect("call task ends") {
            Ok(order) => accepted.push(order.into_inner()),
            Err(_) => refused += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = first.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "daiban serve did not exit after SIGTERM"
        );
        sleep(Duration::from_millis(20)).await;
    };
    assert!(
        status.success(),
        "daiban serve exits 0 on SIGTERM: {status:?}"
    );
    assert!(
        !accepted.is_empty(),
        "some calls were answered before the shutdown"
    );
    assert!(refused > 0, "some calls came after the shutdown began");

    // Every accepted order is in Redis, as a second process reads it.
    let second = ServiceProcess::start(&env);
    let mut reader = WorkOrderServiceClient::new(connect(second.addr).await);
    for order in &accepted {
        let stored = reader
            .get_work_order(with_bearer(
                pb::GetWorkOrderRequest {
                    order_id: order.order_id.clone(),
                },
                APP_KEY,
            ))
            .await
            .unwrap_or_else(|status| {
                panic!("accepted order {} is missing: {status:?}", order.order_id)
            })
            .into_inner();
        assert_eq!(&stored, order);
    }
}
