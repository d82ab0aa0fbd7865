//! `PointsService`: agents' points, quarterly bonus statements and quarter
//! closes, the inactive list and the ranking by completed orders.

use std::pin::Pin;

use chrono::{Datelike, Utc};
use daiban_domain::{AgentId, AgentRole, CountyCode, Quarter, YEARS};
use daiban_points::{ActivityPeriod, Statement, StatementTotals};
use daiban_proto::v1 as pb;
use daiban_proto::v1::points_service_server::PointsService;
use daiban_store::StatementLine;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};
use tracing::{info, instrument};

use crate::app::App;
use crate::auth::Scope;
use crate::convert;
use crate::error::{FieldViolations, points_status, status, store_status};

/// Default and maximum agents of one `ListAgentRanking` response.
const DEFAULT_RANKING_PAGE: usize = 100;
const MAX_RANKING_PAGE: usize = 1000;

pub struct PointsApi {
    app: App,
}

impl PointsApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Checks `county_code`: one of the counties this service serves, or
    /// empty when it serves exactly one.
    fn county(&self, violations: &mut FieldViolations, text: &str) -> Option<CountyCode> {
        let counties = self.app.directory.counties();
        let served = || {
            counties
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if text.trim().is_empty() {
            if counties.len() == 1 {
                return counties.iter().next().cloned();
            }
            violations.add(
                "county_code",
                format!(
                    "required: this service serves several counties ({})",
                    served()
                ),
            );
            return None;
        }
        let county = violations.check("county_code", CountyCode::parse(text))?;
        if counties.contains(&county) {
            Some(county)
        } else {
            violations.add(
                "county_code",
                format!("unknown county {county}; this service serves {}", served()),
            );
            None
        }
    }
}

fn quarter_field(violations: &mut FieldViolations, text: &str) -> Option<Quarter> {
    if text.trim().is_empty() {
        violations.add("quarter", "required: a quarter such as 2026Q3");
        return None;
    }
    violations.check("quarter", Quarter::parse(text))
}

fn role(text: &str) -> pb::AgentRole {
    AgentRole::parse(text).map_or(pb::AgentRole::Unspecified, convert::role)
}

fn count(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn line(line: &StatementLine) -> pb::BonusStatementLine {
    pb::BonusStatementLine {
        agent_id: line.agent_id.clone(),
        name: line.name.clone(),
        grid_code: line.grid_code.clone(),
        grid_name: line.grid_name.clone(),
        township_code: line.township_code.clone(),
        township_name: line.township_name.clone(),
        role: role(&line.role) as i32,
        class1_orders: count(line.class1_orders),
        class2_orders: count(line.class2_orders),
        satisfied: count(line.satisfied),
        unsatisfied: count(line.unsatisfied),
        points_tenths: line.points_tenths,
        bonus_fen: line.bonus_fen,
    }
}

fn totals(totals: &StatementTotals) -> pb::BonusStatementTotals {
    pb::BonusStatementTotals {
        agents: count(totals.agents),
        class1_orders: count(totals.tally.class1_orders),
        class2_orders: count(totals.tally.class2_orders),
        satisfied: count(totals.tally.satisfied),
        unsatisfied: count(totals.tally.unsatisfied),
        points_tenths: totals.tally.points_tenths,
        bonus_fen: totals.bonus_fen,
    }
}

/// The messages of an exported statement: header, lines, totals.
fn statement_messages(statement: &Statement) -> Vec<pb::ExportBonusStatementResponse> {
    use pb::export_bonus_statement_response::Part;

    let header = pb::BonusStatementHeader {
        county_code: statement.county.to_string(),
        quarter: statement.quarter.to_string(),
        closed: statement.close_time.is_some(),
        close_time: statement.close_time.map(convert::timestamp),
        fen_per_point: statement.fen_per_point,
        line_count: count(statement.lines.len() as i64),
    };
    let mut messages = Vec::with_capacity(statement.lines.len() + 2);
    messages.push(Part::Header(header));
    messages.extend(statement.lines.iter().map(|l| Part::Line(line(l))));
    messages.push(Part::Totals(totals(&statement.totals())));
    messages
        .into_iter()
        .map(|part| pb::ExportBonusStatementResponse { part: Some(part) })
        .collect()
}

type StatementStream =
    Pin<Box<dyn Stream<Item = Result<pb::ExportBonusStatementResponse, Status>> + Send>>;

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
                return Err(crate::auth::permission_denied(
                    "NOT_OWN_POINTS",
                    format!("agent {caller} may read only its own points; leave agent_id empty"),
                ));
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
                quarter: quarter_of_month(&report.totals.month),
                month: report.totals.month,
                class1_orders: count(report.totals.class1_orders),
                class2_orders: count(report.totals.class2_orders),
                satisfied: count(report.totals.satisfied),
                unsatisfied: count(report.totals.unsatisfied),
                points_tenths: report.totals.points_tenths,
                bonus_fen: report.bonus_fen,
            })
            .collect();
        Ok(Response::new(pb::AgentPoints {
            agent_id: agent_id.to_string(),
            months,
        }))
    }

    type ExportBonusStatementStream = StatementStream;

    #[instrument(skip_all, fields(county = ?request.get_ref().county_code, quarter = ?request.get_ref().quarter))]
    async fn export_bonus_statement(
        &self,
        request: Request<pb::ExportBonusStatementRequest>,
    ) -> Result<Response<StatementStream>, Status> {
        self.app
            .auth
            .require_scope(&request, &[Scope::Export, Scope::Admin])?;
        let req = request.get_ref();
        let mut violations = FieldViolations::new();
        let county = self.county(&mut violations, &req.county_code);
        let quarter = quarter_field(&mut violations, &req.quarter);
        violations.into_result()?;
        let (Some(county), Some(quarter)) = (county, quarter) else {
            return Err(Status::internal("validated request lacks a field"));
        };

        let statement = self
            .app
            .points
            .statement(&self.app.directory, &county, quarter)
            .await
            .map_err(points_status)?;
        info!(
            county = %county,
            quarter = %quarter,
            lines = statement.lines.len(),
            closed = statement.close_time.is_some(),
            "bonus statement exported"
        );
        let messages = statement_messages(&statement);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }

    #[instrument(skip_all, fields(county = ?request.get_ref().county_code, quarter = ?request.get_ref().quarter))]
    async fn close_quarter(
        &self,
        request: Request<pb::CloseQuarterRequest>,
    ) -> Result<Response<pb::QuarterClose>, Status> {
        self.app.auth.require_scope(&request, &[Scope::Admin])?;
        let req = request.get_ref();
        let mut violations = FieldViolations::new();
        let county = self.county(&mut violations, &req.county_code);
        let quarter = quarter_field(&mut violations, &req.quarter);
        violations.into_result()?;
        let (Some(county), Some(quarter)) = (county, quarter) else {
            return Err(Status::internal("validated request lacks a field"));
        };

        let statement = self
            .app
            .points
            .close_quarter(&self.app.directory, &county, quarter, Utc::now())
            .await
            .map_err(points_status)?;
        Ok(Response::new(pb::QuarterClose {
            county_code: county.to_string(),
            quarter: quarter.to_string(),
            close_time: statement.close_time.map(convert::timestamp),
            totals: Some(totals(&statement.totals())),
            fen_per_point: statement.fen_per_point,
        }))
    }

    async fn list_inactive_agents(
        &self,
        request: Request<pb::ListInactiveAgentsRequest>,
    ) -> Result<Response<pb::ListInactiveAgentsResponse>, Status> {
        self.app
            .auth
            .require_scope(&request, &[Scope::Export, Scope::Admin])?;
        let req = request.get_ref();
        let mut violations = FieldViolations::new();
        let county = self.county(&mut violations, &req.county_code);
        if !YEARS.contains(&req.year) {
            violations.add(
                "year",
                format!(
                    "expected a year from {} to {}, such as 2026, got {}",
                    YEARS.start(),
                    YEARS.end(),
                    req.year
                ),
            );
        }
        violations.into_result()?;
        let Some(county) = county else {
            return Err(Status::internal("validated request lacks a field"));
        };

        let listed = self
            .app
            .points
            .inactive_agents(&self.app.directory, &county, req.year)
            .await
            .map_err(store_status)?;
        let directory = &self.app.directory;
        let agents = listed
            .into_iter()
            .map(|inactive| {
                let agent = inactive.agent;
                let grid = directory.grid(&agent.grid);
                pb::InactiveAgent {
                    agent_id: agent.id.to_string(),
                    name: agent.name.clone(),
                    grid_code: agent.grid.to_string(),
                    grid_name: grid.map(|g| g.name.clone()).unwrap_or_default(),
                    township_name: grid.map(|g| g.township.name.clone()).unwrap_or_default(),
                    role: convert::role(agent.role) as i32,
                    active: agent.active,
                    joined_during_year: inactive.joined_during_year,
                    joined: agent
                        .joined
                        .map(|day| day.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListInactiveAgentsResponse { agents }))
    }

    async fn list_agent_ranking(
        &self,
        request: Request<pb::ListAgentRankingRequest>,
    ) -> Result<Response<pb::ListAgentRankingResponse>, Status> {
        self.app
            .auth
            .require_scope(&request, &[Scope::Export, Scope::Admin])?;
        let req = request.get_ref();
        let mut violations = FieldViolations::new();
        let county = self.county(&mut violations, &req.county_code);
        let period = activity_period(&mut violations, &req.period);
        let page_size = match usize::try_from(req.page_size) {
            Ok(0) => Some(DEFAULT_RANKING_PAGE),
            Ok(size) if size <= MAX_RANKING_PAGE => Some(size),
            _ => {
                violations.add(
                    "page_size",
                    format!("expected 0 to {MAX_RANKING_PAGE}, got {}", req.page_size),
                );
                None
            }
        };
        violations.into_result()?;
        let (Some(county), Some(period), Some(page_size)) = (county, period, page_size) else {
            return Err(Status::internal("validated request lacks a field"));
        };

        let ranked = self
            .app
            .points
            .ranking(&self.app.directory, &county, period)
            .await
            .map_err(store_status)?;
        let directory = &self.app.directory;
        let agents = ranked
            .into_iter()
            .take(page_size)
            .map(|ranked| {
                let grid = ranked.agent.as_ref().and_then(|a| directory.grid(&a.grid));
                pb::AgentRank {
                    rank: i32::try_from(ranked.rank).unwrap_or(i32::MAX),
                    agent_id: ranked.agent_id.to_string(),
                    name: ranked.agent.map(|a| a.name).unwrap_or_default(),
                    grid_name: grid.map(|g| g.name.clone()).unwrap_or_default(),
                    township_name: grid.map(|g| g.township.name.clone()).unwrap_or_default(),
                    completed_orders: i64::try_from(ranked.completed_orders).unwrap_or(i64::MAX),
                }
            })
            .collect();
        Ok(Response::new(pb::ListAgentRankingResponse { agents }))
    }
}

/// Parses the `period` of a ranking: a year such as `2026` or a quarter
/// such as `2026Q3`.
fn activity_period(violations: &mut FieldViolations, text: &str) -> Option<ActivityPeriod> {
    let text = text.trim();
    if text.is_empty() {
        violations.add(
            "period",
            "required: a year such as 2026 or a quarter such as 2026Q3",
        );
        return None;
    }
    if text.len() == 4 {
        return violations
            .check("period", daiban_domain::parse_year(text))
            .map(ActivityPeriod::Year);
    }
    violations
        .check("period", Quarter::parse(text))
        .map(ActivityPeriod::Quarter)
}

/// Returns the quarter of a `YYYY-MM` month, or an empty string for a
/// month that does not parse.
fn quarter_of_month(month: &str) -> String {
    let parsed = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d");
    match parsed {
        Ok(day) => format!("{:04}Q{}", day.year(), (day.month() - 1) / 3 + 1),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_maps_to_its_quarter() {
        assert_eq!(quarter_of_month("2026-09"), "2026Q3");
        assert_eq!(quarter_of_month("2026-10"), "2026Q4");
        assert_eq!(quarter_of_month("2026-1"), "2026Q1");
        assert_eq!(quarter_of_month("soon"), "");
    }

    #[test]
    fn period_takes_year_or_quarter() {
        let mut violations = FieldViolations::new();
        assert_eq!(
            activity_period(&mut violations, "2026"),
            Some(ActivityPeriod::Year(2026))
        );
        assert_eq!(
            activity_period(&mut violations, "2026Q3"),
            Some(ActivityPeriod::Quarter(Quarter::parse("2026Q3").unwrap()))
        );
        assert!(violations.is_empty());
        assert_eq!(activity_period(&mut violations, "2026-Q3"), None);
        assert!(!violations.is_empty());
    }
}
