//! SIGTERM in the middle of a burst of calls: the process exits 0, and
//! every call it answered with OK is kept. SIGTERM with open
//! `Health/Watch` streams: they end with UNAVAILABLE instead of holding
//! the drain.

use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect};
use daiban_tests::{Config, ServiceProcess, precise_request, reason, with_bearer};
use tokio::time::{Instant, sleep};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Max calls of the burst, sent 0.5 ms apart, before one is rejected.
const MAX_BURST: usize = 20_000;

/// `daiban serve`'s maximum wait for calls in flight after SIGTERM.
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn sigterm_during_burst_keeps_accepted_calls() {
    let redis = RedisServer::start_durable();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let mut first = ServiceProcess::start(&env);
    let client = WorkOrderServiceClient::new(connect(first.addr).await);

    // Calls go out every 0.5 ms from 100 ms before SIGTERM until one is
    // rejected, so some land on each side however loaded the machine is.
    let mut calls = tokio::task::JoinSet::new();
    let mut accepted = Vec::new();
    let mut rejected = 0;
    let started = Instant::now();
    let mut sigterm_sent = false;
    for i in 0..MAX_BURST {
        if !sigterm_sent && started.elapsed() >= Duration::from_millis(100) {
            first.send_sigterm();
            sigterm_sent = true;
        }
        let mut client = client.clone();
        calls.spawn(async move {
            let request = precise_request("431127100008", "M003", &format!("burst-{i}"));
            client.submit_request(with_bearer(request, APP_KEY)).await
        });
        sleep(Duration::from_micros(500)).await;
        while let Some(joined) = calls.try_join_next() {
            match joined.expect("call task ends") {
                Ok(order) => accepted.push(order.into_inner()),
                Err(_) => rejected += 1,
            }
        }
        if rejected > 0 {
            break;
        }
    }
    assert!(sigterm_sent, "the burst ended before SIGTERM");
    while let Some(joined) = calls.join_next().await {
        match joined.expect("call task ends") {
            Ok(order) => accepted.push(order.into_inner()),
            Err(_) => rejected += 1,
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
    assert!(rejected > 0, "some calls came after the shutdown began");

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
        // The SMS deliveries are recorded after the reply, so they are
        // left out of the comparison.
        let without_sms = |order: &pb::WorkOrder| pb::WorkOrder {
            sms: Vec::new(),
            ..order.clone()
        };
        assert_eq!(without_sms(&stored), without_sms(order));
    }
}

#[tokio::test]
async fn sigterm_ends_health_watch_streams() {
    let redis = RedisServer::start();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let mut service = ServiceProcess::start(&env);
    let mut health = HealthClient::new(connect(service.addr).await);
    // The services are registered with the first check of Redis; until
    // then `Watch` on a service name fails with NOT_FOUND.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let checked = health
            .check(HealthCheckRequest {
                service: "daiban.v1.AgentService".into(),
            })
            .await;
        if checked.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not report SERVING"
        );
        sleep(Duration::from_millis(20)).await;
    }

    let mut watches = Vec::new();
    for name in ["", "daiban.v1.AgentService"] {
        let mut stream = health
            .watch(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .expect("Health/Watch starts")
            .into_inner();
        // The first message is the status at the start. Waiting for
        // SERVING makes sure the stream is open before SIGTERM.
        loop {
            let message = stream
                .message()
                .await
                .expect("the stream has no error before SIGTERM")
                .expect("the stream stays open before SIGTERM");
            if message.status == ServingStatus::Serving as i32 {
                break;
            }
        }
        watches.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                match stream.message().await {
                    Ok(Some(message)) => statuses.push(message.status),
                    Ok(None) => return (statuses, None),
                    Err(status) => return (statuses, Some(status)),
                }
            }
        }));
    }

    service.send_sigterm();
    // Waits past the drain deadline, so a stream that keeps the server
    // draining shows up as the deadline's warning, not as a timeout here.
    let deadline = Instant::now() + DRAIN_DEADLINE + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = service.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "daiban serve did not exit after SIGTERM"
        );
        sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "daiban serve exits 0 on SIGTERM: {exit:?}");
    assert!(
        !service.log_contains("at the drain deadline"),
        "a Health/Watch stream held the drain until its deadline:\n{}",
        service.log().join("\n")
    );

    for watch in watches {
        let (statuses, end) = watch.await.expect("the watch task ends");
        let end = end.expect("the stream ends with an error status, not OK");
        assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
        assert_eq!(reason(&end), "SHUTTING_DOWN");
        assert_eq!(
            statuses.last().copied(),
            Some(ServingStatus::NotServing as i32),
            "NOT_SERVING arrives before the end"
        );
    }
}
