//! Intake: `SubmitRequest` calls through gRPC, and the baseline server that
//! accepts the same calls and does nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_proto::v1::work_order_service_server::{WorkOrderService, WorkOrderServiceServer};
use daiban_tests::service::APP_KEY;
use daiban_tests::with_bearer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::load::{self, Load, LoadResult, Outcome};
use super::orders::DemoRequest;

/// Submits the demo requests in turn through gRPC, each with its own
/// request id `<label>-<number>`, spreading the calls over `channels`.
pub async fn grpc(
    channels: &[Channel],
    rows: &Arc<Vec<DemoRequest>>,
    label: &str,
    load: Load,
) -> LoadResult {
    let clients: Arc<Vec<WorkOrderServiceClient<Channel>>> = Arc::new(
        channels
            .iter()
            .cloned()
            .map(WorkOrderServiceClient::new)
            .collect(),
    );
    let rows = rows.clone();
    let label = label.to_owned();
    load::run(load, move |number| {
        let row = &rows[number % rows.len()];
        let request = with_bearer(row.submit_request(format!("{label}-{number}")), APP_KEY);
        let mut client = clients[number % clients.len()].clone();
        async move {
            match client.submit_request(request).await {
                Ok(_) => Outcome::Done,
                Err(status) => Outcome::Failed(format!("{}: {}", status.code(), status.message())),
            }
        }
    })
    .await
}

/// A `WorkOrderService` on a loopback port whose handlers return an empty
/// message at once: the cost of gRPC alone, the baseline of intake.
pub struct NoopServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl NoopServer {
    /// Starts the server on a free loopback port, with `TCP_NODELAY` as the
    /// daiban service sets it.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port is free");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(WorkOrderServiceServer::new(NoopWorkOrders))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await
                .expect("the baseline server runs");
        });
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for NoopServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct NoopWorkOrders;

#[tonic::async_trait]
impl WorkOrderService for NoopWorkOrders {
    async fn submit_request(
        &self,
        _request: Request<pb::SubmitRequestRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        Ok(Response::new(pb::WorkOrder::default()))
    }

    async fn get_work_order(
        &self,
        _request: Request<pb::GetWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        Ok(Response::new(pb::WorkOrder::default()))
    }

    async fn cancel_work_order(
        &self,
        _request: Request<pb::CancelWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        Ok(Response::new(pb::WorkOrder::default()))
    }

    async fn rate_work_order(
        &self,
        _request: Request<pb::RateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        Ok(Response::new(pb::WorkOrder::default()))
    }

    async fn list_matters(
        &self,
        _request: Request<pb::ListMattersRequest>,
    ) -> Result<Response<pb::ListMattersResponse>, Status> {
        Ok(Response::new(pb::ListMattersResponse::default()))
    }
}
