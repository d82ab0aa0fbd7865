//! The store and the service on a Redis Cluster of three masters: the
//! whole conformance suite, and the lifecycle with widening through a
//! `daiban serve` process.

use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisCluster;
use daiban_tests::service::{APP_KEY, connect};
use daiban_tests::{
    Config, ServiceProcess, agents_outside, grid_agents, precise_request, with_bearer,
};
use tokio::time::{Instant, sleep};

const GRID: &str = "431127100008";

#[tokio::test]
async fn conformance_suite_passes_on_cluster() {
    let cluster = RedisCluster::start();
    let store = daiban_store::RedisStore::connect(&cluster.url())
        .await
        .expect("the store connects to the cluster");
    daiban_store::conformance::run_all(&store).await;
}

#[tokio::test]
async fn lifecycle_and_widening_on_cluster() {
    let cluster = RedisCluster::start();
    let mut env = Config {
        widen_after: "300ms",
        ..Config::default()
    }
    .env();
    env.insert("DAIBAN_REDIS_URL".into(), cluster.url());
    let service = ServiceProcess::start(&env);
    let channel = connect(service.addr).await;
    let mut orders = WorkOrderServiceClient::new(channel.clone());
    let mut agents = AgentServiceClient::new(channel);
    let token = daiban_tests::service::agent_token;

    // Claimed in the grid phase, completed, rated and settled.
    let first = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "cluster-1"),
            APP_KEY,
        ))
        .await
        .expect("submit succeeds")
        .into_inner();
    let holder = grid_agents(GRID).remove(0);
    agents
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: first.order_id.clone(),
            },
            &token(&holder),
        ))
        .await
        .expect("claim succeeds");
    agents
        .complete_work_order(with_bearer(
            pb::CompleteWorkOrderRequest {
                order_id: first.order_id.clone(),
                result_text: "已办结".into(),
                result_reference: String::new(),
                matter_code: String::new(),
            },
            &token(&holder),
        ))
        .await
        .expect("complete succeeds");
    orders
        .rate_work_order(with_bearer(
            pb::RateWorkOrderRequest {
                order_id: first.order_id.clone(),
                rating: pb::Rating::Satisfied as i32,
                comment: String::new(),
            },
            APP_KEY,
        ))
        .await
        .expect("rate succeeds");

    // Left alone, widened by the dispatcher, then claimed by an outsider.
    let second = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "cluster-2"),
            APP_KEY,
        ))
        .await
        .expect("submit succeeds")
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let settled = orders
            .get_work_order(with_bearer(
                pb::GetWorkOrderRequest {
                    order_id: first.order_id.clone(),
                },
                APP_KEY,
            ))
            .await
            .expect("get succeeds")
            .into_inner();
        let widened = orders
            .get_work_order(with_bearer(
                pb::GetWorkOrderRequest {
                    order_id: second.order_id.clone(),
                },
                APP_KEY,
            ))
            .await
            .expect("get succeeds")
            .into_inner();
        if settled.state == pb::WorkOrderState::Settled as i32 && widened.widened {
            assert_eq!(settled.points_tenths, 30);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "settled {settled:?}, widened {widened:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
    let outsider = agents_outside(GRID, 1).remove(0);
    agents
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: second.order_id,
            },
            &token(&outsider),
        ))
        .await
        .expect("an outsider claims the widened order");
}
