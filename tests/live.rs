//! `WatchOpenOrders` through gRPC: the snapshot, live changes across two
//! service processes on one Redis, withdrawals, resync after a Redis
//! restart, and the end of streams at shutdown.

use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::open_order_change::Kind;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect};
use daiban_tests::{
    Config, ServiceProcess, agents_outside, grid_agents, precise_request, with_bearer,
};
use tokio::time::timeout;
use tonic::Streaming;

const GRID: &str = "431127100008";

fn token(agent: &str) -> String {
    daiban_tests::service::agent_token(agent)
}

/// Reads the next change, failing after five seconds.
async fn next(stream: &mut Streaming<pb::OpenOrderChange>) -> pb::OpenOrderChange {
    timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a change arrives within five seconds")
        .expect("the stream has no error")
        .expect("the stream is open")
}

/// Reads changes until one of `kind` about `order_id`, skipping others.
async fn next_about(
    stream: &mut Streaming<pb::OpenOrderChange>,
    kind: Kind,
    order_id: &str,
) -> pb::OpenOrderChange {
    loop {
        let change = next(stream).await;
        if change.kind == kind as i32 && change.order_id == order_id {
            return change;
        }
    }
}

async fn watch(channel: tonic::transport::Channel, agent: &str) -> Streaming<pb::OpenOrderChange> {
    AgentServiceClient::new(channel)
        .watch_open_orders(with_bearer(pb::WatchOpenOrdersRequest {}, &token(agent)))
        .await
        .expect("watch starts")
        .into_inner()
}

#[tokio::test]
async fn offers_reach_streams_on_another_replica() {
    let mut redis = RedisServer::start_durable();
    let config = Config {
        widen_after: "500ms",
        ..Config::default()
    };
    let mut env = config.env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let first = ServiceProcess::start(&env);
    let second = ServiceProcess::start(&env);
    let to_first = connect(first.addr).await;
    let to_second = connect(second.addr).await;
    let mut orders = WorkOrderServiceClient::new(to_first.clone());

    let before = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "live-0"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();

    let grid_agent = grid_agents(GRID).remove(0);
    let outsider = agents_outside(GRID, 1).remove(0);
    let mut in_grid = watch(to_second.clone(), &grid_agent).await;
    let mut outside = watch(to_second.clone(), &outsider).await;

    let open = next(&mut in_grid).await;
    assert_eq!(open.kind, Kind::Open as i32, "{open:?}");
    assert_eq!(open.order_id, before.order_id);
    assert_eq!(
        open.work_order.unwrap().applicant.unwrap().phone,
        "139****5678",
        "offers mask the phone"
    );
    assert_eq!(next(&mut in_grid).await.kind, Kind::Synced as i32);
    assert_eq!(
        next(&mut outside).await.kind,
        Kind::Synced as i32,
        "the reserved order is not open to an outsider"
    );

    // Submitted through the first replica, seen on streams of the second.
    let order = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "live-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    next_about(&mut in_grid, Kind::Submitted, &order.order_id).await;
    let widened = next_about(&mut outside, Kind::Widened, &order.order_id).await;
    assert!(widened.work_order.unwrap().widened);

    AgentServiceClient::new(to_first.clone())
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &token(&outsider),
        ))
        .await
        .expect("claim succeeds");
    next_about(&mut in_grid, Kind::Claimed, &order.order_id).await;
    next_about(&mut outside, Kind::Claimed, &order.order_id).await;

    AgentServiceClient::new(to_first.clone())
        .release_work_order(with_bearer(
            pb::ReleaseWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: "临时有事".into(),
            },
            &token(&outsider),
        ))
        .await
        .expect("release succeeds");
    next_about(&mut in_grid, Kind::Released, &order.order_id).await;
    orders
        .cancel_work_order(with_bearer(
            pb::CancelWorkOrderRequest {
                order_id: order.order_id.clone(),
                reason: String::new(),
            },
            APP_KEY,
        ))
        .await
        .expect("cancel succeeds");
    // The releasing agent is not offered the order again: its next change
    // about it is the withdrawal.
    let change = loop {
        let change = next(&mut outside).await;
        if change.order_id == order.order_id {
            break change;
        }
    };
    assert_eq!(change.kind, Kind::Cancelled as i32, "{change:?}");

    // A Redis restart keeps the stream open and asks for a resync.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    let resync = timeout(Duration::from_secs(10), async {
        loop {
            let change = next(&mut in_grid).await;
            if change.kind == Kind::Resync as i32 {
                return change;
            }
        }
    })
    .await
    .expect("the stream is told to resync after the Redis restart");
    assert_eq!(resync.order_id, "");
    let after = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "live-2"),
            APP_KEY,
        ))
        .await
        .expect("submit after the restart")
        .into_inner();
    next_about(&mut in_grid, Kind::Submitted, &after.order_id).await;
}

#[tokio::test]
async fn streams_end_with_unavailable_at_shutdown() {
    let redis = RedisServer::start();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let mut service = ServiceProcess::start(&env);
    let channel = connect(service.addr).await;
    let mut stream = watch(channel, &grid_agents(GRID).remove(0)).await;
    assert_eq!(next(&mut stream).await.kind, Kind::Synced as i32);

    service.send_sigterm();
    let end = timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends promptly");
    let err = end.expect_err("the stream ends with a status");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = service.exited() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "daiban serve did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        status.success(),
        "daiban serve exits 0 on SIGTERM: {status:?}"
    );
}
