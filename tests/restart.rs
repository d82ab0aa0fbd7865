//! The service through a restart of its Redis: calls fail with
//! `UNAVAILABLE` while Redis is down, nothing accepted is lost, and calls
//! and the dispatcher work again once it is back.

use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect};
use daiban_tests::{
    Config, ServiceProcess, agents_outside, grid_agents, precise_request, reason, with_bearer,
};
use tokio::time::{Instant, sleep};
use tonic::Code;

const GRID: &str = "431127100008";

#[tokio::test]
async fn redis_restart_loses_nothing_accepted() {
    let mut redis = RedisServer::start_durable();
    let config = Config {
        widen_after: "1s",
        ..Config::default()
    };
    let mut env = config.env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);
    let channel = connect(service.addr).await;
    let mut orders = WorkOrderServiceClient::new(channel.clone());
    let mut agents = AgentServiceClient::new(channel);
    let token = daiban_tests::service::agent_token;

    let claimed = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "restart-1"),
            APP_KEY,
        ))
        .await
        .expect("submit before the restart")
        .into_inner();
    let holder = grid_agents(GRID).remove(0);
    agents
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: claimed.order_id.clone(),
            },
            &token(&holder),
        ))
        .await
        .expect("claim before the restart");
    let pending = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "restart-2"),
            APP_KEY,
        ))
        .await
        .expect("second submit before the restart")
        .into_inner();

    redis.stop();
    let down = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "restart-3"),
            APP_KEY,
        ))
        .await
        .expect_err("submit fails while Redis is down");
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert_eq!(reason(&down), "STORE_UNAVAILABLE");
    assert!(
        !down.message().contains("redis://"),
        "the message hides the Redis URL: {}",
        down.message()
    );

    redis.restart();
    // The first calls after the restart may still find broken pooled
    // connections; a client retries UNAVAILABLE.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match orders
            .get_work_order(with_bearer(
                pb::GetWorkOrderRequest {
                    order_id: claimed.order_id.clone(),
                },
                APP_KEY,
            ))
            .await
        {
            Ok(order) => break order.into_inner(),
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("get after the restart failed: {status:?}"),
        }
    };
    assert_eq!(after.state, pb::WorkOrderState::Claimed as i32);
    assert_eq!(after.agent_id, holder);

    let retried = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "restart-2"),
            APP_KEY,
        ))
        .await
        .expect("retry after the restart")
        .into_inner();
    assert_eq!(
        retried.order_id, pending.order_id,
        "request ids survive the restart"
    );

    // The dispatcher recovers and widens the pending order.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let order = orders
            .get_work_order(with_bearer(
                pb::GetWorkOrderRequest {
                    order_id: pending.order_id.clone(),
                },
                APP_KEY,
            ))
            .await
            .expect("get succeeds")
            .into_inner();
        if order.widened {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pending order was not widened after the restart"
        );
        sleep(Duration::from_millis(50)).await;
    }
    let outsider = agents_outside(GRID, 1).remove(0);
    agents
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: pending.order_id,
            },
            &token(&outsider),
        ))
        .await
        .expect("claim after the restart");
}
