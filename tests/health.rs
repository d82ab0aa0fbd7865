//! gRPC health and reflection through real clients: health follows Redis
//! down and back up, and reflection lists every service.

use std::time::Duration;

use daiban_tests::redis::RedisServer;
use daiban_tests::service::connect;
use daiban_tests::{Config, ServiceProcess};
use tokio::time::{Instant, sleep};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check answers")
        .into_inner();
    ServingStatus::try_from(response.status).expect("a known status")
}

/// Polls until `service` reports `expected`, for at most five seconds.
async fn wait_for(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    expected: ServingStatus,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = status(client, service).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service:?} stayed {now:?}, expected {expected:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn health_follows_redis() {
    let mut redis = RedisServer::start_durable();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);
    let mut health = HealthClient::new(connect(service.addr).await);

    wait_for(&mut health, "", ServingStatus::Serving).await;
    wait_for(
        &mut health,
        "daiban.v1.WorkOrderService",
        ServingStatus::Serving,
    )
    .await;

    redis.stop();
    wait_for(&mut health, "", ServingStatus::NotServing).await;
    wait_for(
        &mut health,
        "daiban.v1.AgentService",
        ServingStatus::NotServing,
    )
    .await;

    redis.restart();
    wait_for(&mut health, "", ServingStatus::Serving).await;
    wait_for(
        &mut health,
        "daiban.v1.PointsService",
        ServingStatus::Serving,
    )
    .await;
}

#[tokio::test]
async fn reflection_lists_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let service = ServiceProcess::start(&Config::default().env());
    let mut client = ServerReflectionClient::new(connect(service.addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("the stream has no error")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "daiban.v1.WorkOrderService",
        "daiban.v1.AgentService",
        "daiban.v1.PointsService",
        "daiban.v1.DirectoryService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
