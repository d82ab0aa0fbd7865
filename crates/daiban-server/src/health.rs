//! gRPC health (`grpc.health.v1`): every service reports SERVING while the
//! store responds to PING and NOT_SERVING while it does not, so load balancers and
//! orchestrators send calls only to replicas that can serve them. The
//! same loop refreshes the store's gauges in `metrics`.
//!
//! At shutdown every service turns NOT_SERVING, and then each open
//! `Health/Watch` stream ends with UNAVAILABLE, so that the stream does not
//! hold the shutdown drain and its client reconnects to another replica.

use std::sync::Arc;
use std::time::Duration;

use daiban_domain::CountyCode;
use daiban_store::Store;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};
use tracing::{info, warn};

use crate::error;
use crate::metrics::{record_state_counts, record_store_stats};

/// The services whose status is reported; the empty name stands for the
/// server as a whole.
const SERVICES: [&str; 6] = [
    "",
    "daiban.v1.WorkOrderService",
    "daiban.v1.AgentService",
    "daiban.v1.PointsService",
    "daiban.v1.DirectoryService",
    "daiban.v1.SmsGatewayService",
];

/// Time between two checks of the store.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait for the store's reply to one check.
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Messages buffered for one `Health/Watch` stream.
const WATCH_BUFFER: usize = 4;

/// The writing side of the health service, with the statuses and the
/// signal that ends the `Health/Watch` streams.
pub struct Reporter {
    statuses: HealthReporter,
    closed: watch::Sender<bool>,
}

/// Creates the `grpc.health.v1.Health` service and the [`Reporter`] that
/// [`watch_store`] updates. Every service reports NOT_SERVING until the
/// first check of the store, so a client that asks at once gets a status
/// rather than "service not registered".
pub async fn service() -> (Reporter, HealthServer<HealthApi>) {
    let statuses = HealthReporter::new();
    let (closed, closed_receiver) = watch::channel(false);
    let api = HealthApi {
        inner: HealthService::from_health_reporter(statuses.clone()),
        closed: closed_receiver,
    };
    let reporter = Reporter { statuses, closed };
    set_all(&reporter, ServingStatus::NotServing).await;
    (reporter, HealthServer::new(api))
}

/// `tonic-health`'s service, with `Watch` streams that end at shutdown.
pub struct HealthApi {
    inner: HealthService,
    closed: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Health for HealthApi {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut statuses = self.inner.watch(request).await?.into_inner();
        let mut closed = self.closed.clone();
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            loop {
                // Biased towards the statuses, so the NOT_SERVING set
                // before the close reaches the client ahead of the end.
                tokio::select! {
                    biased;
                    next = statuses.next() => {
                        let Some(next) = next else { return };
                        if sender.send(next).await.is_err() {
                            return;
                        }
                    }
                    () = wait_closed(&mut closed) => {
                        let _ = sender.send(Err(shutting_down())).await;
                        return;
                    }
                    () = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// Waits until `closed` turns true or its sender is gone, because in both
/// cases the statuses are no longer kept up to date.
async fn wait_closed(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|closed| *closed).await;
}

/// Builds the status that ends a `Health/Watch` stream at shutdown.
fn shutting_down() -> Status {
    error::status(
        Code::Unavailable,
        "SHUTTING_DOWN",
        "the server is shutting down; reconnect",
        &[],
    )
}

/// Checks the store every second until `shutdown` turns true, then reports
/// NOT_SERVING and ends every `Health/Watch` stream, so that clients move
/// to another replica. While the store responds, each check also reads
/// its figures for `counties` into the metrics.
pub async fn watch_store(
    store: Arc<dyn Store>,
    counties: Vec<CountyCode>,
    reporter: Reporter,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut serving = None;
    let mut stats_failing = false;
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
        if now_serving {
            refresh_stats(store.as_ref(), &counties, &mut stats_failing).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
    }
    set_all(&reporter, ServingStatus::NotServing).await;
    reporter.closed.send_replace(true);
}

/// Reads the store's figures into the metrics. A failure is logged once
/// until the next success, and leaves the gauges at their last values.
async fn refresh_stats(store: &dyn Store, counties: &[CountyCode], failing: &mut bool) {
    let read = async {
        let stats = store.stats(counties).await?;
        let mut states = Vec::with_capacity(counties.len());
        for county in counties {
            states.push((county, store.state_counts(county).await?));
        }
        Ok::<_, daiban_store::StoreError>((stats, states))
    };
    match tokio::time::timeout(PING_TIMEOUT, read).await {
        Ok(Ok((stats, states))) => {
            record_store_stats(&stats);
            for (county, counts) in states {
                record_state_counts(county, &counts);
            }
            *failing = false;
        }
        Ok(Err(err)) if !*failing => {
            warn!(error = %err, "metrics: failed to read the store's figures");
            *failing = true;
        }
        Err(_) if !*failing => {
            warn!(timeout = ?PING_TIMEOUT, "metrics: reading the store's figures timed out");
            *failing = true;
        }
        _ => {}
    }
}

fn status(serving: bool) -> ServingStatus {
    if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

async fn set_all(reporter: &Reporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.statuses.set_service_status(service, status).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn services_answer_before_the_first_store_check() {
        let (reporter, _server) = service().await;
        let api = HealthService::from_health_reporter(reporter.statuses.clone());
        for name in SERVICES {
            let request = Request::new(HealthCheckRequest {
                service: name.to_owned(),
            });
            let response = api
                .check(request)
                .await
                .unwrap_or_else(|status| panic!("{name:?}: {status}"));
            assert_eq!(
                response.into_inner().status,
                ServingStatus::NotServing as i32,
                "{name:?}"
            );
        }
    }
}
