//! `WorkOrderService`: requests from the mobile app backend.

use chrono::{Duration as ChronoDuration, Utc};
use daiban_domain::{Applicant, CountyCode, GridCode, MatterCode, PhoneNumber};
use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_server::WorkOrderService;
use daiban_store::{NewOrder, Submitted};
use tonic::{Request, Response, Status};
use tracing::{debug, info, instrument};

use crate::app::{App, order_id, text_field};
use crate::auth::Scope;
use crate::convert::{self, Viewer};
use crate::error::{FieldViolations, invalid_field, store_status};

pub const MAX_REQUEST_TEXT: usize = 500;
pub const MAX_NAME: usize = 50;
pub const MAX_ADDRESS: usize = 200;
pub const MAX_REQUEST_ID: usize = 128;
pub const MAX_COMMENT: usize = 500;
pub const MAX_REASON: usize = 500;

pub struct WorkOrders {
    app: App,
}

impl WorkOrders {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    fn validate_submit(&self, req: &pb::SubmitRequestRequest) -> Result<NewOrder, Status> {
        let directory = &self.app.directory;
        let mut violations = FieldViolations::new();

        let request_text = text_field(
            &mut violations,
            "request_text",
            &req.request_text,
            true,
            MAX_REQUEST_TEXT,
        );

        let matter = if req.matter_code.trim().is_empty() {
            None
        } else {
            violations
                .check("matter_code", MatterCode::parse(&req.matter_code))
                .and_then(|code| {
                    let matter = directory.matter(&code).cloned();
                    if matter.is_none() {
                        violations.add(
                            "matter_code",
                            format!("unknown matter {code}; ListMatters returns the catalogue"),
                        );
                    }
                    matter
                })
        };

        let applicant = match &req.applicant {
            None => {
                violations.add("applicant", "required: the applicant's name and phone");
                None
            }
            Some(applicant) => {
                let name = text_field(
                    &mut violations,
                    "applicant.name",
                    &applicant.name,
                    true,
                    MAX_NAME,
                );
                let phone = if applicant.phone.trim().is_empty() {
                    violations.add(
                        "applicant.phone",
                        "required: an 11-digit mainland mobile number",
                    );
                    None
                } else {
                    violations.check("applicant.phone", PhoneNumber::parse(&applicant.phone))
                };
                phone.map(|phone| Applicant { name, phone })
            }
        };

        let channel = match pb::Channel::try_from(req.channel)
            .ok()
            .and_then(convert::channel_from_proto)
        {
            Some(channel) => Some(channel),
            None => {
                violations.add("channel", "required: WEB_HALL, GOV_APP or WECHAT");
                None
            }
        };

        let request_id = text_field(
            &mut violations,
            "request_id",
            &req.request_id,
            false,
            MAX_REQUEST_ID,
        );
        let address = text_field(&mut violations, "address", &req.address, false, MAX_ADDRESS);

        let county = if req.county_code.trim().is_empty() {
            None
        } else {
            violations
                .check("county_code", CountyCode::parse(&req.county_code))
                .and_then(|county| {
                    if directory.counties().contains(&county) {
                        Some(county)
                    } else {
                        violations.add(
                            "county_code",
                            format!(
                                "unknown county {county}; this service serves {}",
                                counties_text(directory)
                            ),
                        );
                        None
                    }
                })
        };

        let grid = if !req.grid_code.trim().is_empty() {
            violations.check("grid_code", GridCode::parse(&req.grid_code)).and_then(|grid| {
                if directory.grid(&grid).is_none() {
                    violations.add("grid_code", format!("unknown grid {grid}; give an existing 12-digit grid code, or an address instead"));
                    None
                } else if county.as_ref().is_some_and(|c| c != &grid.county()) {
                    violations.add("grid_code", format!("grid {grid} is not in county {}", req.county_code.trim()));
                    None
                } else {
                    Some(grid)
                }
            })
        } else if address.is_empty() {
            violations.add(
                "grid_code",
                "give grid_code or address: the applicant's grid, or an address to resolve it from",
            );
            None
        } else {
            directory.resolve_address(&address, county.as_ref())
        };

        let county = match (&grid, county) {
            (Some(grid), _) => Some(grid.county()),
            (None, Some(county)) => Some(county),
            (None, None) => {
                let counties = directory.counties();
                if counties.len() == 1 {
                    counties.into_iter().next()
                } else {
                    if violations.is_empty() {
                        violations.add("county_code", "required: the address names no grid and this service serves several counties");
                    }
                    None
                }
            }
        };

        violations.into_result()?;
        let (Some(applicant), Some(channel), Some(county)) = (applicant, channel, county) else {
            return Err(Status::internal("validated request lacks a field"));
        };

        let now = Utc::now();
        let policy = &self.app.policy;
        let has_grid_agents = grid
            .as_ref()
            .is_some_and(|g| directory.active_agents_in_grid(g).next().is_some());
        let grid_phase_until = has_grid_agents.then(|| now + chrono_duration(policy.widen_after));
        let widen_time = grid_phase_until.unwrap_or(now);
        Ok(NewOrder {
            county,
            request_id: (!request_id.is_empty()).then_some(request_id),
            request_text,
            matter,
            grid,
            address,
            applicant,
            channel,
            create_time: now,
            grid_phase_until,
            escalate_at: widen_time + chrono_duration(policy.escalate_after),
        })
    }
}

/// Whether `order`, found by the request_id of `new`, came from the same
/// request, so that a reused request_id with other content is rejected
/// instead of answered with another citizen's order. A fuzzy order gets a
/// matter at completion, so a request without a matter matches either way.
fn same_request(new: &NewOrder, order: &daiban_domain::WorkOrder) -> bool {
    let matter_matches = match &new.matter {
        None => true,
        Some(matter) => order.matter.as_ref().is_some_and(|m| m.code == matter.code),
    };
    new.request_text == order.request_text
        && matter_matches
        && new.applicant == order.applicant
        && new.grid == order.grid
        && new.address == order.address
        && new.channel == order.channel
}

fn counties_text(directory: &daiban_domain::Directory) -> String {
    directory
        .counties()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn chrono_duration(duration: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(duration).unwrap_or(ChronoDuration::MAX)
}

#[tonic::async_trait]
impl WorkOrderService for WorkOrders {
    #[instrument(skip_all, fields(request.id = ?daiban_domain::mask_digit_runs(&request.get_ref().request_id)))]
    async fn submit_request(
        &self,
        request: Request<pb::SubmitRequestRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        self.app.auth.require_scope(&request, &[Scope::App])?;
        let new = self.validate_submit(request.get_ref())?;
        let submitted = self
            .app
            .store
            .submit(new.clone())
            .await
            .map_err(store_status)?;
        match &submitted {
            Submitted::Created(order) => {
                let offer = if order.widened { "county" } else { "grid" };
                metrics::counter!("daiban_orders_submitted_total", "offer" => offer).increment(1);
                info!(
                    order.id = %order.id,
                    grid = order.grid.as_ref().map(|g| g.to_string()).unwrap_or_default(),
                    state = order.state.as_str(),
                    "order submitted"
                );
                self.app.dispatcher.notify_one();
            }
            Submitted::Existing(order) => {
                if !same_request(&new, order) {
                    return Err(invalid_field(
                        "request_id",
                        format!(
                            "already used for order {} with other content; a new request needs a new request_id",
                            order.id
                        ),
                    ));
                }
                debug!(order.id = %order.id, "retry returned the existing order")
            }
        }
        Ok(Response::new(convert::work_order(
            submitted.order(),
            Viewer::Full,
        )))
    }

    async fn get_work_order(
        &self,
        request: Request<pb::GetWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        self.app
            .auth
            .require_scope(&request, &[Scope::App, Scope::Admin])?;
        let id = order_id(&request.get_ref().order_id)?;
        let order = self.app.store.order(&id).await.map_err(store_status)?;
        let sms = self.app.store.order_sms(&id).await.map_err(store_status)?;
        let mut reply = convert::work_order(&order, Viewer::Full);
        reply.sms = sms.iter().map(convert::sms_delivery).collect();
        Ok(Response::new(reply))
    }

    #[instrument(skip_all, fields(order.id = ?request.get_ref().order_id))]
    async fn cancel_work_order(
        &self,
        request: Request<pb::CancelWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        self.app.auth.require_scope(&request, &[Scope::App])?;
        let req = request.get_ref();
        let id = order_id(&req.order_id)?;
        let mut violations = FieldViolations::new();
        let reason = text_field(&mut violations, "reason", &req.reason, false, MAX_REASON);
        violations.into_result()?;
        let order = self
            .app
            .store
            .cancel(&id, &reason, Utc::now())
            .await
            .map_err(store_status)?;
        info!(order.id = %order.id, "order cancelled");
        Ok(Response::new(convert::work_order(&order, Viewer::Full)))
    }

    #[instrument(skip_all, fields(order.id = ?request.get_ref().order_id))]
    async fn rate_work_order(
        &self,
        request: Request<pb::RateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        self.app.auth.require_scope(&request, &[Scope::App])?;
        let req = request.get_ref();
        let id = order_id(&req.order_id)?;
        let mut violations = FieldViolations::new();
        let rating = pb::Rating::try_from(req.rating)
            .ok()
            .and_then(convert::rating_from_proto);
        if rating.is_none() {
            violations.add(
                "rating",
                "required: VERY_SATISFIED, SATISFIED, AVERAGE or UNSATISFIED",
            );
        }
        let comment = text_field(&mut violations, "comment", &req.comment, false, MAX_COMMENT);
        violations.into_result()?;
        let rating = rating.expect("checked above");

        let order = self
            .app
            .store
            .rate(&id, rating, &comment, Utc::now())
            .await
            .map_err(store_status)?;
        // The points consumer settles the order from the `rated` event.
        info!(
            order.id = %order.id,
            agent.id = order.agent.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            rating = rating.as_str(),
            "order rated"
        );
        Ok(Response::new(convert::work_order(&order, Viewer::Full)))
    }

    async fn list_matters(
        &self,
        request: Request<pb::ListMattersRequest>,
    ) -> Result<Response<pb::ListMattersResponse>, Status> {
        self.app
            .auth
            .require_scope(&request, &[Scope::App, Scope::Admin])?;
        let matters = self.app.directory.matters().map(convert::matter).collect();
        Ok(Response::new(pb::ListMattersResponse { matters }))
    }
}
