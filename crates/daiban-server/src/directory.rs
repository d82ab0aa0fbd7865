//! `DirectoryService`: the county's grids and agents, for bureau staff.

use daiban_domain::{CountyCode, GridCode};
use daiban_proto::v1 as pb;
use daiban_proto::v1::directory_service_server::DirectoryService;
use tonic::{Request, Response, Status};

use crate::app::App;
use crate::auth::Scope;
use crate::convert;
use crate::error::FieldViolations;

pub struct DirectoryApi {
    app: App,
}

impl DirectoryApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn optional<T, E: ToString>(
    violations: &mut FieldViolations,
    field: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Option<T> {
    if text.trim().is_empty() {
        None
    } else {
        violations.check(field, parse(text))
    }
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn list_grids(
        &self,
        request: Request<pb::ListGridsRequest>,
    ) -> Result<Response<pb::ListGridsResponse>, Status> {
        self.app.auth.require_scope(&request, &[Scope::Admin])?;
        let mut violations = FieldViolations::new();
        let county = optional(
            &mut violations,
            "county_code",
            &request.get_ref().county_code,
            CountyCode::parse,
        );
        violations.into_result()?;
        let grids = self
            .app
            .directory
            .grids()
            .filter(|g| county.as_ref().is_none_or(|c| &g.code.county() == c))
            .map(|g| pb::Grid {
                code: g.code.to_string(),
                name: g.name.clone(),
                township_code: g.township.code.to_string(),
                township_name: g.township.name.clone(),
                county_code: g.code.county().to_string(),
            })
            .collect();
        Ok(Response::new(pb::ListGridsResponse { grids }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        self.app.auth.require_scope(&request, &[Scope::Admin])?;
        let req = request.get_ref();
        let mut violations = FieldViolations::new();
        let county = optional(
            &mut violations,
            "county_code",
            &req.county_code,
            CountyCode::parse,
        );
        let grid = optional(
            &mut violations,
            "grid_code",
            &req.grid_code,
            GridCode::parse,
        );
        violations.into_result()?;
        let agents = self
            .app
            .directory
            .agents()
            .filter(|a| county.as_ref().is_none_or(|c| &a.grid.county() == c))
            .filter(|a| grid.as_ref().is_none_or(|g| &a.grid == g))
            .map(|a| pb::Agent {
                agent_id: a.id.to_string(),
                name: a.name.clone(),
                phone: a.phone.to_string(),
                grid_code: a.grid.to_string(),
                role: convert::role(a.role) as i32,
                active: a.active,
            })
            .collect();
        Ok(Response::new(pb::ListAgentsResponse { agents }))
    }
}
