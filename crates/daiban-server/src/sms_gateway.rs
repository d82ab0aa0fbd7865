//! `SmsGatewayService`: delivery reports and replies from an in-house SMS
//! gateway, with the same effects as the providers' webhooks.

use chrono::{DateTime, Utc};
use daiban_domain::PhoneNumber;
use daiban_proto::v1 as pb;
use daiban_proto::v1::sms_gateway_service_server::SmsGatewayService;
use daiban_sms::inbound::{InboundReply, InboundReport, MAX_BATCH, MAX_REPLY_CHARS, reply_key};
use daiban_store::sms::SmsId;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::app::{App, text_field};
use crate::auth::Scope;
use crate::error::{FieldViolations, invalid_field, store_status};
use crate::sms_inbox::{self, ReplyOutcome};

/// Maximum length of an id in `sms_id`, `provider_message_id` and `reply_id`.
const MAX_ID_CHARS: usize = 128;

/// Maximum length of a carrier error kept, in characters.
const MAX_ERROR_CHARS: usize = 200;

pub struct SmsGatewayApi {
    app: App,
}

impl SmsGatewayApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn time_of(timestamp: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let timestamp = timestamp?;
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

/// Checks an id field: at most `MAX_ID_CHARS` printable characters.
fn id_field(violations: &mut FieldViolations, field: &str, text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.chars().count() > MAX_ID_CHARS || text.chars().any(char::is_control) {
        violations.add(
            field,
            format!("expected at most {MAX_ID_CHARS} printable characters"),
        );
        return None;
    }
    Some(text.to_owned())
}

#[tonic::async_trait]
impl SmsGatewayService for SmsGatewayApi {
    #[instrument(skip_all, fields(reports = request.get_ref().reports.len()))]
    async fn report_delivery(
        &self,
        request: Request<pb::ReportDeliveryRequest>,
    ) -> Result<Response<pb::ReportDeliveryResponse>, Status> {
        self.app.auth.require_scope(&request, &[Scope::Sms])?;
        let req = request.into_inner();
        let mut violations = FieldViolations::new();
        if req.reports.is_empty() || req.reports.len() > MAX_BATCH {
            violations.add(
                "reports",
                format!(
                    "expected 1 to {MAX_BATCH} reports, got {}; split larger batches",
                    req.reports.len()
                ),
            );
        }
        let mut reports = Vec::with_capacity(req.reports.len());
        for (index, report) in req.reports.iter().enumerate() {
            let field = |name: &str| format!("reports[{index}].{name}");
            let sms_id = id_field(&mut violations, &field("sms_id"), &report.sms_id);
            if let Some(id) = &sms_id
                && SmsId::parse(id).is_none()
            {
                violations.add(
                    field("sms_id"),
                    "expected the id the SMS was sent with, such as 431127-00000042.widened.A0001",
                );
            }
            let provider_id = id_field(
                &mut violations,
                &field("provider_message_id"),
                &report.provider_message_id,
            );
            if sms_id.is_none() && provider_id.is_none() {
                violations.add(
                    field("sms_id"),
                    "required: give sms_id or provider_message_id",
                );
            }
            let error = text_field(
                &mut violations,
                &field("error"),
                &report.error,
                false,
                MAX_ERROR_CHARS,
            );
            reports.push(InboundReport {
                sms_id,
                provider_id,
                phone: None,
                delivered: report.delivered,
                error: if report.delivered || !error.is_empty() {
                    error
                } else {
                    "undelivered".to_owned()
                },
                time: time_of(report.report_time.as_ref()),
            });
        }
        violations.into_result()?;

        let counts = sms_inbox::record_reports(&self.app, reports, Utc::now())
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ReportDeliveryResponse {
            recorded: counts.recorded as i32,
            duplicates: counts.duplicates as i32,
            unmatched: counts.unmatched as i32,
        }))
    }

    #[instrument(skip_all, fields(agent.id))]
    async fn receive_reply(
        &self,
        request: Request<pb::ReceiveReplyRequest>,
    ) -> Result<Response<pb::ReceiveReplyResponse>, Status> {
        self.app.auth.require_scope(&request, &[Scope::Sms])?;
        let req = request.into_inner();
        let mut violations = FieldViolations::new();
        let phone = if req.phone.trim().is_empty() {
            violations.add("phone", "required: the sender's mobile number");
            None
        } else {
            violations.check("phone", PhoneNumber::parse(&req.phone))
        };
        let text = text_field(&mut violations, "text", &req.text, true, MAX_REPLY_CHARS);
        let reply_id = id_field(&mut violations, "reply_id", &req.reply_id);
        let time = time_of(req.receive_time.as_ref());
        if req.reply_id.trim().is_empty() && time.is_none() {
            violations.add(
                "reply_id",
                "required unless receive_time is set: the gateway's id of this SMS, so a reply pushed twice is handled once",
            );
        }
        violations.into_result()?;
        let phone =
            phone.ok_or_else(|| invalid_field("phone", "required: the sender's mobile number"))?;

        let now = Utc::now();
        let key = match reply_id {
            Some(id) => format!("gateway:{id}"),
            None => {
                // Without an id, the same phone, time and text is the same
                // reply; the check above makes sure the time is the sender's.
                let millis = time.unwrap_or(now).timestamp_millis().to_string();
                reply_key("gateway", &[phone.as_str(), &millis, &text])
            }
        };
        let reply = InboundReply {
            key,
            phone: Some(phone),
            text,
            time,
        };
        let outcome = sms_inbox::handle_reply(&self.app, reply, now)
            .await
            .map_err(store_status)?;

        let mut response = pb::ReceiveReplyResponse::default();
        let outcome = match outcome {
            ReplyOutcome::Claimed { order, agent } => {
                response.order_id = order.to_string();
                response.agent_id = agent.id.to_string();
                pb::ReplyOutcome::ReplyClaimed
            }
            ReplyOutcome::ClaimLost {
                order,
                agent,
                reason,
            } => {
                response.order_id = order.to_string();
                response.agent_id = agent.id.to_string();
                response.reason = reason.to_owned();
                pb::ReplyOutcome::ReplyClaimLost
            }
            ReplyOutcome::NotUnderstood { agent } => {
                response.agent_id = agent.id.to_string();
                pb::ReplyOutcome::ReplyNotUnderstood
            }
            ReplyOutcome::UnknownPhone => pb::ReplyOutcome::ReplyUnknownPhone,
            ReplyOutcome::Duplicate => pb::ReplyOutcome::ReplyDuplicate,
        };
        if !response.agent_id.is_empty() {
            tracing::Span::current().record("agent.id", response.agent_id.as_str());
        }
        response.outcome = outcome as i32;
        Ok(Response::new(response))
    }
}
