//! gRPC health (`grpc.health.v1`): every service reports SERVING while the
//! store responds to PING and NOT_SERVING while it does not, so load balancers and
//! orchestrators send calls only to replicas that can serve them.

use std::sync::Arc;
use std::time::Duration;

use daiban_store::Store;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

/// The services whose status is reported; the empty name stands for the
/// server as a whole.
const SERVICES: [&str; 5] = [
    "",
    "daiban.v1.WorkOrderService",
    "daiban.v1.AgentService",
    "daiban.v1.PointsService",
    "daiban.v1.DirectoryService",
];

/// Time between two checks of the store.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait for the store's reply to one check.
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Checks the store every second until `shutdown` turns true, then reports
/// NOT_SERVING so that clients move to another replica.
pub async fn watch_store(
    store: Arc<dyn Store>,
    reporter: HealthReporter,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut serving = None;
    while !*shutdown.borrow() {
        // A Redis that hangs rather than refuses must count as down too.
        let now_serving = matches!(
            tokio::time::timeout(PING_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        if serving != Some(now_serving) {
            if now_serving {
                info!("health: serving");
            } else {
                warn!("health: not serving, the store failed to respond to PING");
            }
            set_all(&reporter, status(now_serving)).await;
            metrics::gauge!("daiban_store_up").set(if now_serving { 1.0 } else { 0.0 });
            serving = Some(now_serving);
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
    }
    // TODO: open `Health/Watch` streams are not ended here, so each one
    // holds the shutdown drain until its deadline.
    set_all(&reporter, ServingStatus::NotServing).await;
}

fn status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}
