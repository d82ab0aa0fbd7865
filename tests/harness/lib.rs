//! The system-test harness: starts a private `redis-server` and the daiban
//! service on free loopback ports, and stops them when dropped.

pub mod redis;
pub mod service;
pub mod sms_provider;

pub use service::{Config, ServiceProcess, TestApp, spawn_app, with_bearer};

use std::time::{Duration, Instant};

use daiban_domain::{Directory, GridCode};
use daiban_proto::v1 as pb;
use tonic::Status;
use tonic_types::StatusExt;

/// The bundled demo directory, which test services load too.
pub fn demo_directory() -> Directory {
    Directory::lanshan_demo()
}

/// The active agents of `grid`, by id.
pub fn grid_agents(grid: &str) -> Vec<String> {
    let grid = GridCode::parse(grid).expect("test grid code is valid");
    demo_directory()
        .active_agents_in_grid(&grid)
        .map(|a| a.id.to_string())
        .collect()
}

/// Up to `count` active agents of the demo county outside `grid`.
pub fn agents_outside(grid: &str, count: usize) -> Vec<String> {
    let grid = GridCode::parse(grid).expect("test grid code is valid");
    demo_directory()
        .agents()
        .filter(|a| a.active && a.grid != grid)
        .take(count)
        .map(|a| a.id.to_string())
        .collect()
}

/// A precise request from grid `grid` with matter `matter`.
pub fn precise_request(grid: &str, matter: &str, request_id: &str) -> pb::SubmitRequestRequest {
    pb::SubmitRequestRequest {
        request_text: "我要开餐馆".into(),
        matter_code: matter.into(),
        applicant: Some(pb::Applicant {
            name: "李四".into(),
            phone: "13912345678".into(),
        }),
        grid_code: grid.into(),
        address: String::new(),
        channel: pb::Channel::GovApp as i32,
        request_id: request_id.into(),
        county_code: String::new(),
    }
}

/// The `ErrorInfo` reason of a status, or an empty string.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// The fields a status's `BadRequest` names.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls the order through `GetWorkOrder` until it is in `state`, for at
/// most five seconds, and returns it.
///
/// # Panics
///
/// When the call fails, or the order is not in `state` in time.
pub async fn wait_for_state(
    app: &TestApp,
    order_id: &str,
    state: pb::WorkOrderState,
) -> pb::WorkOrder {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let order = app
            .work_orders()
            .get_work_order(with_bearer(
                pb::GetWorkOrderRequest {
                    order_id: order_id.into(),
                },
                service::APP_KEY,
            ))
            .await
            .expect("get succeeds")
            .into_inner();
        if order.state == state as i32 {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "order {order_id} did not reach {state:?} within five seconds: {order:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
