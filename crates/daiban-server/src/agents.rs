//! `AgentService`: agents' phone clients, identified by their tokens.

use chrono::Utc;
use daiban_domain::{MatterCode, WorkResult};
use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_server::AgentService;
use daiban_proto::v1::open_order_change::Kind;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tracing::{debug, info, instrument};

use crate::app::{App, order_id, text_field};
use crate::convert::{self, Viewer};
use crate::error::{FieldViolations, invalid_field, status, store_reason, store_status};
use crate::live;
use crate::work_orders::{MAX_REASON, chrono_duration};

const DEFAULT_PAGE_SIZE: i32 = 50;
const MAX_PAGE_SIZE: i32 = 200;
const MAX_RESULT_TEXT: usize = 2000;
/// Changes queued per stream for a slow client; a full queue holds back
/// only that stream's task.
const STREAM_BUFFER: usize = 64;
const MAX_RESULT_REFERENCE: usize = 200;

pub struct Agents {
    app: App,
}

impl Agents {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// Rejects an order of another county than the agent's.
fn same_county(agent: &daiban_domain::Agent, id: &daiban_domain::OrderId) -> Result<(), Status> {
    if &agent.grid.county() == id.county() {
        Ok(())
    } else {
        Err(status(
            Code::PermissionDenied,
            "OTHER_COUNTY",
            format!(
                "order {id} belongs to county {}; agent {} serves county {}",
                id.county(),
                agent.id,
                agent.grid.county()
            ),
            &[("order_id", id.to_string())],
        ))
    }
}

#[tonic::async_trait]
impl AgentService for Agents {
    type WatchOpenOrdersStream = ReceiverStream<Result<pb::OpenOrderChange, Status>>;

    async fn watch_open_orders(
        &self,
        request: Request<pb::WatchOpenOrdersRequest>,
    ) -> Result<Response<Self::WatchOpenOrdersStream>, Status> {
        let agent = self.app.calling_agent(&request)?.clone();
        let county = agent.grid.county();
        // Subscribed before the snapshot is read, so no change falls
        // between them; a change seen twice is harmless.
        let mut changes = self
            .app
            .live
            .subscribe(&county)
            .ok_or_else(|| Status::internal(format!("no live offers for county {county}")))?;
        let open = self
            .app
            .store
            .open_orders(&county, &agent.grid, Utc::now(), MAX_PAGE_SIZE as usize)
            .await
            .map_err(store_status)?;

        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let mut shutdown = self.app.shutdown.clone();
        tokio::spawn(async move {
            for order in &open {
                let change = live::message(Kind::Open, &order.id.to_string(), Some(order));
                if sender.send(Ok(change)).await.is_err() {
                    return;
                }
            }
            if sender
                .send(Ok(live::message(Kind::Synced, "", None)))
                .await
                .is_err()
            {
                return;
            }
            loop {
                let change = tokio::select! {
                    received = changes.recv() => received,
                    _ = shutdown.changed() => {
                        let _ = sender.send(Err(Status::unavailable("the server is shutting down; reconnect"))).await;
                        return;
                    }
                    () = sender.closed() => return,
                };
                let message = match change {
                    Ok(change) => live::view(&agent, &change),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        debug!(agent.id = %agent.id, missed, "stream fell behind; told to resync");
                        Some(live::message(Kind::Resync, "", None))
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = sender
                            .send(Err(Status::unavailable("live offers stopped; reconnect")))
                            .await;
                        return;
                    }
                };
                if let Some(message) = message
                    && sender.send(Ok(message)).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn list_open_orders(
        &self,
        request: Request<pb::ListOpenOrdersRequest>,
    ) -> Result<Response<pb::ListOpenOrdersResponse>, Status> {
        let agent = self.app.calling_agent(&request)?;
        let page_size = match request.get_ref().page_size {
            0 => DEFAULT_PAGE_SIZE,
            n @ 1..=MAX_PAGE_SIZE => n,
            n => {
                return Err(invalid_field(
                    "page_size",
                    format!("expected 1 to {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE}), got {n}"),
                ));
            }
        };
        let orders = self
            .app
            .store
            .open_orders(
                &agent.grid.county(),
                &agent.grid,
                Utc::now(),
                page_size as usize,
            )
            .await
            .map_err(store_status)?;
        let work_orders = orders
            .iter()
            .map(|o| convert::work_order(o, Viewer::Masked))
            .collect();
        Ok(Response::new(pb::ListOpenOrdersResponse { work_orders }))
    }

    #[instrument(skip_all, fields(order.id = ?request.get_ref().order_id, agent.id))]
    async fn claim_work_order(
        &self,
        request: Request<pb::ClaimWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let agent = self.app.calling_agent(&request)?;
        tracing::Span::current().record("agent.id", agent.id.as_str());
        let id = order_id(&request.get_ref().order_id)?;
        same_county(agent, &id)?;
        let order = self
            .app
            .store
            .claim(&id, &agent.id, &agent.grid, Utc::now())
            .await
            .map_err(|err| {
                metrics::counter!("daiban_claims_total", "result" => store_reason(&err))
                    .increment(1);
                store_status(err)
            })?;
        metrics::counter!("daiban_claims_total", "result" => "won").increment(1);
        let in_grid_phase = order.claim_time.is_some_and(|t| t < order.widen_time);
        info!(order.id = %order.id, agent.id = %agent.id, in_grid_phase, "order claimed");
        Ok(Response::new(convert::work_order(&order, Viewer::Full)))
    }

    #[instrument(skip_all, fields(order.id = ?request.get_ref().order_id, agent.id))]
    async fn release_work_order(
        &self,
        request: Request<pb::ReleaseWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let agent = self.app.calling_agent(&request)?;
        tracing::Span::current().record("agent.id", agent.id.as_str());
        let req = request.get_ref();
        let id = order_id(&req.order_id)?;
        let mut violations = FieldViolations::new();
        let reason = text_field(&mut violations, "reason", &req.reason, true, MAX_REASON);
        violations.into_result()?;
        same_county(agent, &id)?;

        let now = Utc::now();
        let escalate_at = now + chrono_duration(self.app.policy.escalate_after);
        let order = self
            .app
            .store
            .release(&id, &agent.id, &reason, now, escalate_at)
            .await
            .map_err(store_status)?;
        info!(order.id = %order.id, agent.id = %agent.id, "order released");
        self.app.dispatcher.notify_one();
        Ok(Response::new(convert::work_order(&order, Viewer::Full)))
    }

    #[instrument(skip_all, fields(order.id = ?request.get_ref().order_id, agent.id))]
    async fn complete_work_order(
        &self,
        request: Request<pb::CompleteWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let agent = self.app.calling_agent(&request)?;
        tracing::Span::current().record("agent.id", agent.id.as_str());
        let req = request.get_ref();
        let id = order_id(&req.order_id)?;
        same_county(agent, &id)?;

        let mut violations = FieldViolations::new();
        let text = text_field(
            &mut violations,
            "result_text",
            &req.result_text,
            true,
            MAX_RESULT_TEXT,
        );
        let reference = text_field(
            &mut violations,
            "result_reference",
            &req.result_reference,
            false,
            MAX_RESULT_REFERENCE,
        );
        let current = self.app.store.order(&id).await.map_err(store_status)?;
        let matter = if req.matter_code.trim().is_empty() {
            if current.matter.is_none() {
                violations.add("matter_code", "required: this order came from a fuzzy request, so give the catalogue matter it turned out to be");
            }
            None
        } else {
            violations
                .check("matter_code", MatterCode::parse(&req.matter_code))
                .and_then(
                    |code| match (self.app.directory.matter(&code), &current.matter) {
                        (None, _) => {
                            violations.add(
                                "matter_code",
                                format!("unknown matter {code}; ListMatters returns the catalogue"),
                            );
                            None
                        }
                        (Some(_), Some(existing)) if existing.code != code => {
                            violations.add(
                                "matter_code",
                                format!(
                                    "the order's matter is {}; leave matter_code empty",
                                    existing.code
                                ),
                            );
                            None
                        }
                        (Some(matter), _) => Some(matter.clone()),
                    },
                )
        };
        violations.into_result()?;

        let now = Utc::now();
        let settle_at = now + chrono_duration(self.app.policy.rating_window);
        let result = WorkResult { text, reference };
        let order = self
            .app
            .store
            .complete(&id, &agent.id, result, matter, now, settle_at)
            .await
            .map_err(store_status)?;
        info!(order.id = %order.id, agent.id = %agent.id, "order completed");
        Ok(Response::new(convert::work_order(&order, Viewer::Full)))
    }
}
