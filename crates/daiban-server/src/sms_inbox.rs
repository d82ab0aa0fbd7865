//! What the SMS providers push, handled the same way whether it came
//! through a webhook or `SmsGatewayService`: delivery reports update the
//! SMS records, and a reply with an open order's claim code grabs the order
//! for the agent whose phone sent it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use daiban_dispatch::{
    CLAIM_CLOSED, CLAIM_RESERVED, CLAIM_TAKEN, CLAIM_WON, Message, Recipient, Sms, reply_help,
    reply_stranger,
};
use daiban_domain::{
    Agent, CountyCode, OrderId, PhoneNumber, WorkOrder, claim_code_sequence, find_claim_code,
};
use daiban_sms::inbound::{InboundReply, InboundReport};
use daiban_store::StoreError;
use daiban_store::sms::{
    DeliveryReport, InboundSms, ReportOutcome, ReportTarget, SmsId, SmsRecipient,
};
use tracing::{info, warn};

use crate::app::App;
use crate::error::store_reason;

/// Minimum time between two help replies to one phone, so that an
/// auto-responder cannot start an SMS loop with the service.
const HELP_INTERVAL: Duration = Duration::from_secs(3600);

/// Sequence numbers sharing one claim code are this far apart.
const CLAIM_CODE_PERIOD: u64 = 1_000_000;

/// Orders looked at per claim code: those of the first 100 million
/// sequence numbers of a county.
const MAX_CLAIM_CODE_CANDIDATES: u64 = 100;

/// The counts of a batch of delivery reports, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReportCounts {
    pub recorded: usize,
    pub duplicates: usize,
    pub unmatched: usize,
}

/// The outcome of a reply.
#[derive(Debug, Clone)]
pub enum ReplyOutcome {
    Claimed {
        order: OrderId,
        agent: Agent,
    },
    /// The claim code named an order the agent could not grab; `reason`
    /// is the error reason a claim through the app would get.
    ClaimLost {
        order: OrderId,
        agent: Agent,
        reason: &'static str,
    },
    NotUnderstood {
        agent: Agent,
    },
    UnknownPhone,
    Duplicate,
}

/// Records delivery reports; reports for no known SMS are counted and
/// dropped.
pub async fn record_reports(
    app: &App,
    reports: Vec<InboundReport>,
    now: DateTime<Utc>,
) -> Result<ReportCounts, StoreError> {
    let mut counts = ReportCounts::default();
    for report in reports {
        let outcome = record_report(app, report, now).await?;
        match outcome {
            ReportOutcome::Recorded(_) => counts.recorded += 1,
            ReportOutcome::Duplicate(_) => counts.duplicates += 1,
            ReportOutcome::Unmatched => counts.unmatched += 1,
        }
    }
    metrics::counter!("daiban_sms_reports_total", "result" => "recorded")
        .increment(counts.recorded as u64);
    metrics::counter!("daiban_sms_reports_total", "result" => "duplicate")
        .increment(counts.duplicates as u64);
    metrics::counter!("daiban_sms_reports_total", "result" => "unmatched")
        .increment(counts.unmatched as u64);
    Ok(counts)
}

async fn record_report(
    app: &App,
    report: InboundReport,
    now: DateTime<Utc>,
) -> Result<ReportOutcome, StoreError> {
    let sms_id = report.sms_id.as_deref().and_then(SmsId::parse);
    let target = match (sms_id, report.provider_id) {
        (Some(id), _) => ReportTarget::Sms(id),
        (None, Some(provider_id)) => ReportTarget::Provider(provider_id),
        (None, None) => return Ok(ReportOutcome::Unmatched),
    };
    // The county comes from our id, else from the agent whose phone got the
    // SMS; a report to the duty desk or an unknown phone tries each county.
    // An id of a county this service does not serve matches nothing, so it
    // touches no store state.
    let counties: Vec<CountyCode> = match (&target, &report.phone) {
        (ReportTarget::Sms(id), _) if !app.directory.counties().contains(id.order.county()) => {
            return Ok(ReportOutcome::Unmatched);
        }
        (ReportTarget::Sms(id), _) => vec![id.order.county().clone()],
        (ReportTarget::Provider(_), Some(phone)) => match app.directory.agent_by_phone(phone) {
            Some(agent) => vec![agent.grid.county()],
            None => app.directory.counties().into_iter().collect(),
        },
        (ReportTarget::Provider(_), None) => app.directory.counties().into_iter().collect(),
    };
    let delivery = DeliveryReport {
        target,
        delivered: report.delivered,
        error: report.error,
        time: report.time.unwrap_or(now),
    };
    for county in counties {
        let outcome = app.store.report_sms(&county, &delivery, now).await?;
        if outcome != ReportOutcome::Unmatched {
            return Ok(outcome);
        }
    }
    Ok(ReportOutcome::Unmatched)
}

/// Handles a reply. A reply whose key was seen before does nothing.
pub async fn handle_reply(
    app: &App,
    reply: InboundReply,
    now: DateTime<Utc>,
) -> Result<ReplyOutcome, StoreError> {
    let agent = reply
        .phone
        .as_ref()
        .and_then(|phone| app.directory.agent_by_phone(phone))
        .cloned();
    // A stranger's reply is kept with the first county's.
    let county = match &agent {
        Some(agent) => agent.grid.county(),
        None => match app.directory.counties().into_iter().next() {
            Some(county) => county,
            None => return Ok(ReplyOutcome::UnknownPhone),
        },
    };
    let outcome = match (&reply.phone, agent) {
        (Some(phone), agent) => {
            let record = InboundSms {
                key: reply.key.clone(),
                phone: phone.clone(),
                text: reply.text.clone(),
                time: reply.time.unwrap_or(now),
                agent: agent.as_ref().map(|agent| agent.id.clone()),
            };
            // A handler that fails before `finish_reply` leaves the reply
            // to the provider's next push, a minute or more later.
            if !app.store.start_reply(&county, &record, now).await? {
                return Ok(ReplyOutcome::Duplicate);
            }
            let outcome = match agent {
                Some(agent) if agent.active => act_on(app, agent, &reply.text, now).await?,
                _ => {
                    answer_help(app, &county, phone, reply_stranger(), now).await?;
                    ReplyOutcome::UnknownPhone
                }
            };
            app.store
                .finish_reply(&county, &record, outcome_name(&outcome), now)
                .await?;
            outcome
        }
        // A number outside the mainland is no agent's and is not answered.
        (None, _) => ReplyOutcome::UnknownPhone,
    };
    log_outcome(&outcome, reply.phone.as_ref());
    metrics::counter!("daiban_sms_replies_total", "outcome" => outcome_name(&outcome)).increment(1);
    Ok(outcome)
}

/// Grabs the order whose claim code the agent's reply carries, or sends
/// the agent the help text.
async fn act_on(
    app: &App,
    agent: Agent,
    text: &str,
    now: DateTime<Utc>,
) -> Result<ReplyOutcome, StoreError> {
    let county = agent.grid.county();
    let order = match find_claim_code(text) {
        Some(code) => order_with_code(app, &county, &code).await?,
        None => None,
    };
    let Some(order) = order else {
        answer_help(app, &county, &agent.phone, reply_help(), now).await?;
        return Ok(ReplyOutcome::NotUnderstood { agent });
    };

    let (offer, outcome) = match app
        .store
        .claim(&order.id, &agent.id, &agent.grid, now)
        .await
    {
        Ok(_) => {
            metrics::counter!("daiban_claims_total", "result" => "won").increment(1);
            let outcome = ReplyOutcome::Claimed {
                order: order.id.clone(),
                agent: agent.clone(),
            };
            (CLAIM_WON, outcome)
        }
        Err(err @ (StoreError::Unavailable(_) | StoreError::Corrupt { .. })) => return Err(err),
        Err(err) => {
            let reason = store_reason(&err);
            metrics::counter!("daiban_claims_total", "result" => reason).increment(1);
            let offer = match err {
                StoreError::AlreadyClaimed { .. } => CLAIM_TAKEN,
                StoreError::ReservedForGrid { .. } => CLAIM_RESERVED,
                _ => CLAIM_CLOSED,
            };
            let outcome = ReplyOutcome::ClaimLost {
                order: order.id.clone(),
                agent: agent.clone(),
                reason,
            };
            (offer, outcome)
        }
    };
    // One SMS per agent, order and outcome, however often the agent
    // replies.
    let recipients = [SmsRecipient::Agent(agent.id.clone())];
    app.store
        .queue_sms(None, &order.id, offer, &recipients, now)
        .await?;
    app.sms_sender.notify_one();
    Ok(outcome)
}

/// Finds the order of the county with claim code `code`: an open one if
/// there is one, else the newest.
async fn order_with_code(
    app: &App,
    county: &CountyCode,
    code: &str,
) -> Result<Option<WorkOrder>, StoreError> {
    let Some(first) = claim_code_sequence(code) else {
        return Ok(None);
    };
    let mut newest = None;
    for round in 0..MAX_CLAIM_CODE_CANDIDATES {
        let sequence = first + round * CLAIM_CODE_PERIOD;
        if sequence == 0 {
            continue;
        }
        match app
            .store
            .order(&OrderId::new(county.clone(), sequence))
            .await
        {
            Ok(order) if order.state.is_open() => return Ok(Some(order)),
            Ok(order) => newest = Some(order),
            Err(StoreError::OrderNotFound(_)) => break,
            Err(err) => return Err(err),
        }
    }
    Ok(newest)
}

/// Sends `message` to `phone`, unless it got a help answer within
/// `HELP_INTERVAL`. The send runs on its own task, so a slow provider does
/// not hold up the webhook's response.
async fn answer_help(
    app: &App,
    county: &CountyCode,
    phone: &PhoneNumber,
    message: Message,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !app
        .store
        .allow_help_answer(county, phone, now, HELP_INTERVAL)
        .await?
    {
        return Ok(());
    }
    let recipient = match app.directory.agent_by_phone(phone) {
        Some(agent) => Recipient::Agent {
            id: agent.id.clone(),
            phone: phone.clone(),
        },
        None => Recipient::Phone(phone.clone()),
    };
    let sms = Sms {
        recipient,
        id: None,
        message,
    };
    let notifier = app.notifier.clone();
    tokio::spawn(async move {
        let label = sms.recipient_label();
        let template = sms.message.template.name();
        if let Err(err) = notifier.send(sms).await {
            warn!(recipient = %label, template, error = %err, "help reply not sent");
        }
    });
    Ok(())
}

fn outcome_name(outcome: &ReplyOutcome) -> &'static str {
    match outcome {
        ReplyOutcome::Claimed { .. } => "claimed",
        ReplyOutcome::ClaimLost { .. } => "claim_lost",
        ReplyOutcome::NotUnderstood { .. } => "not_understood",
        ReplyOutcome::UnknownPhone => "unknown_phone",
        ReplyOutcome::Duplicate => "duplicate",
    }
}

fn log_outcome(outcome: &ReplyOutcome, phone: Option<&PhoneNumber>) {
    let phone = phone.map(PhoneNumber::masked).unwrap_or_default();
    match outcome {
        ReplyOutcome::Claimed { order, agent } => {
            info!(order.id = %order, agent.id = %agent.id, "order claimed by sms reply");
        }
        ReplyOutcome::ClaimLost {
            order,
            agent,
            reason,
        } => {
            info!(order.id = %order, agent.id = %agent.id, reason, "sms reply did not claim the order")
        }
        ReplyOutcome::NotUnderstood { agent } => {
            info!(agent.id = %agent.id, "sms reply named no open order; help sent");
        }
        ReplyOutcome::UnknownPhone => info!(phone, "sms reply from a number that is no agent's"),
        ReplyOutcome::Duplicate => info!(phone, "sms reply seen before; ignored"),
    }
}
