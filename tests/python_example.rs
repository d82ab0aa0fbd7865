//! The README's Python example, `examples/python/client.py`, run with
//! grpcio against a `daiban serve` process with its own Redis: it submits
//! an order, claims it as agent A0001, completes and rates it.
//!
//! The interpreter is `DAIBAN_TEST_PYTHON`, or else `python3`.
//! `scripts/test` sets it to a virtual environment that contains grpcio
//! and grpcio-tools.

use std::process::Command;

use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect, daiban_binary};
use daiban_tests::{Config, ServiceProcess, with_bearer};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/client.py");

#[tokio::test]
async fn python_example_runs_lifecycle() {
    let redis = RedisServer::start();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);

    let python = std::env::var("DAIBAN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&python)
        .arg(EXAMPLE)
        .envs(&env)
        .env("DAIBAN_SERVER", service.addr.to_string())
        .env("DAIBAN_BIN", daiban_binary())
        .env("DAIBAN_API_KEY", APP_KEY)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{python} {EXAMPLE} failed ({}); scripts/test installs grpcio and sets \
         DAIBAN_TEST_PYTHON\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("claimed by A0001"), "stdout:\n{stdout}");
    assert!(stdout.contains("rated SATISFIED"), "stdout:\n{stdout}");

    let order_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("submitted "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no submitted order in stdout:\n{stdout}"))
        .to_owned();
    let mut orders = WorkOrderServiceClient::new(connect(service.addr).await);
    let order = orders
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: order_id.clone(),
            },
            APP_KEY,
        ))
        .await
        .unwrap_or_else(|status| panic!("GetWorkOrder {order_id}: {status}"))
        .into_inner();
    assert_eq!(order.agent_id, "A0001", "agent of {order_id}");
    assert_eq!(
        order.rating,
        pb::Rating::Satisfied as i32,
        "rating of {order_id}"
    );
    assert_eq!(
        order.request_id, "python-example-1",
        "request id of {order_id}"
    );
}
