//! `PointsService`: agents' points, for agents themselves and the export
//! job.

use daiban_domain::AgentId;
use daiban_proto::v1 as pb;
use daiban_proto::v1::points_service_server::PointsService;
use tonic::{Code, Request, Response, Status};

use crate::app::App;
use crate::auth::Scope;
use crate::error::{FieldViolations, status, store_status};

pub struct PointsApi {
    app: App,
}

impl PointsApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl PointsService for PointsApi {
    async fn get_agent_points(
        &self,
        request: Request<pb::GetAgentPointsRequest>,
    ) -> Result<Response<pb::AgentPoints>, Status> {
        let requested = request.get_ref().agent_id.trim().to_owned();
        let agent_id = if self.app.auth.has_agent_token(&request) {
            let caller = self.app.auth.agent(&request)?;
            if !requested.is_empty() && requested != caller.as_str() {
                return Err(Status::permission_denied(format!(
                    "agent {caller} may read only its own points; leave agent_id empty"
                )));
            }
            caller
        } else {
            self.app
                .auth
                .require_scope(&request, &[Scope::Export, Scope::Admin])?;
            let mut violations = FieldViolations::new();
            if requested.is_empty() {
                violations.add(
                    "agent_id",
                    "required with an API key: the agent whose points to read",
                );
            }
            let id = violations.check("agent_id", AgentId::parse(&requested));
            violations.into_result()?;
            id.expect("checked above")
        };

        let agent = self.app.directory.agent(&agent_id).ok_or_else(|| {
            status(
                Code::NotFound,
                "AGENT_NOT_FOUND",
                format!("agent {agent_id} not found"),
                &[("agent_id", agent_id.to_string())],
            )
        })?;
        let months = self
            .app
            .points
            .agent_report(&agent.grid.county(), &agent.id)
            .await
            .map_err(store_status)?
            .into_iter()
            .map(|report| pb::MonthPoints {
                month: report.totals.month,
                class1_orders: report.totals.class1_orders as i32,
                class2_orders: report.totals.class2_orders as i32,
                satisfied: report.totals.satisfied as i32,
                unsatisfied: report.totals.unsatisfied as i32,
                points_tenths: report.totals.points_tenths,
                bonus_fen: report.bonus_fen,
            })
            .collect();
        Ok(Response::new(pb::AgentPoints {
            agent_id: agent_id.to_string(),
            months,
        }))
    }
}
