//! The service through a restart of its Redis: calls fail with
//! `UNAVAILABLE` while Redis is down, nothing accepted is lost, and calls
//! and the dispatcher work again once it is back. The same with Redis
//! killed in the middle of `daiban replay`.

use std::process::{Command, Stdio};
use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect, daiban_binary};
use daiban_tests::{
    Config, ServiceProcess, agents_outside, grid_agents, precise_request, reason, with_bearer,
};
use tokio::time::{Instant, sleep};
use tonic::Code;

const GRID: &str = "431127100008";

const REQUESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/lanshan/requests.csv");

/// Rows of the demo week replayed with Redis killed in between: about the
/// first day, which plays in about five seconds at `REPLAY_SPEED`.
const REPLAY_ROWS: usize = 400;
const REPLAY_SPEED: &str = "20000";

/// Orders created before Redis is killed.
const ORDERS_BEFORE_KILL: u64 = 120;

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

/// Reads the county's last order sequence number straight from Redis, or 0
/// while Redis does not respond.
async fn orders_created(url: &str) -> u64 {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    redis::cmd("GET")
        .arg("daiban:{431127}:seq")
        .query_async::<Option<u64>>(&mut connection)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[tokio::test]
async fn redis_killed_mid_replay_loses_nothing() {
    let mut redis = RedisServer::start_durable();
    let config = Config {
        widen_after: "1s",
        ..Config::default()
    };
    let mut env = config.env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);

    let dir = std::env::temp_dir().join(format!("daiban-outage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder is writable");
    let slice = dir.join("requests.csv");
    let rows: Vec<String> = std::fs::read_to_string(REQUESTS)
        .expect("demo requests are readable")
        .lines()
        .take(REPLAY_ROWS + 1)
        .map(str::to_owned)
        .collect();
    std::fs::write(&slice, rows.join("\n") + "\n").expect("the slice is written");
    let orders_out = dir.join("orders.txt");

    let mut replay = Command::new(daiban_binary())
        .args(["replay", "--requests"])
        .arg(&slice)
        .args([
            "--speed",
            REPLAY_SPEED,
            "--seed",
            "11",
            "--json",
            "--orders-out",
        ])
        .arg(&orders_out)
        .envs(&env)
        .env("DAIBAN_SERVER", format!("http://{}", service.addr))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daiban replay starts");

    let deadline = Instant::now() + Duration::from_secs(30);
    while orders_created(&redis.url()).await < ORDERS_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "the replay did not create {ORDERS_BEFORE_KILL} orders"
        );
        sleep(Duration::from_millis(20)).await;
    }
    assert!(
        replay
            .try_wait()
            .expect("replay status is readable")
            .is_none(),
        "the replay is still running when Redis is killed"
    );
    redis.stop();
    sleep(Duration::from_millis(300)).await;
    redis.restart();

    let output = tokio::task::spawn_blocking(move || replay.wait_with_output())
        .await
        .expect("the wait task ends")
        .expect("daiban replay runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "replay failed: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("replay prints JSON");
    let count = |name: &str| {
        summary[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} missing from {summary}"))
    };
    assert_eq!(count("rows"), REPLAY_ROWS as u64);
    assert!(
        count("submitted") > count("rows"),
        "some submits were retried during the outage: {summary}"
    );
    assert_eq!(count("rejected"), 0, "{stderr}");
    assert_eq!(
        summary["errors"].as_object().map(|e| e.len()),
        Some(0),
        "the replay's retries outlast the outage: {summary}"
    );
    assert_eq!(
        count("claimed_in_grid_phase")
            + count("claimed_after_widening")
            + count("unclaimed")
            + count("cancelled"),
        count("orders"),
        "each order is claimed in its grid phase, claimed after widening, unclaimed or cancelled"
    );

    let accepted: Vec<String> = std::fs::read_to_string(&orders_out)
        .expect("the replay wrote its orders")
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(accepted.len() as u64, count("orders"));
    assert!(
        accepted.len() as u64 > ORDERS_BEFORE_KILL,
        "orders were created after the restart too"
    );

    // Every accepted order is still there, and none is left in a grid
    // phase that ended long ago: the dispatcher widened them after the
    // restart, or an agent claimed them.
    let mut orders = WorkOrderServiceClient::new(connect(service.addr).await);
    for order_id in &accepted {
        let deadline = Instant::now() + Duration::from_secs(10);
        let order = loop {
            let order = orders
                .get_work_order(with_bearer(
                    pb::GetWorkOrderRequest {
                        order_id: order_id.clone(),
                    },
                    APP_KEY,
                ))
                .await
                .unwrap_or_else(|status| panic!("accepted order {order_id} is missing: {status:?}"))
                .into_inner();
            if order.state != pb::WorkOrderState::OfferedToGrid as i32 {
                break order;
            }
            assert!(
                Instant::now() < deadline,
                "order {order_id} stayed in its grid phase: {order:?}"
            );
            sleep(Duration::from_millis(50)).await;
        };
        if order.agent_id.is_empty() && order.state != pb::WorkOrderState::Cancelled as i32 {
            assert!(
                order.widened,
                "unclaimed order {order_id} widened: {order:?}"
            );
        }
    }
}
