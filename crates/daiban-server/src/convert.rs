//! Conversions between domain values and `daiban.v1` messages.

use chrono::{DateTime, Utc};
use daiban_domain::{AgentRole, Channel, Matter, OrderState, Rating, WorkOrder};
use daiban_proto::v1 as pb;
use daiban_store::sms::{SmsDelivery, SmsState};
use prost_types::Timestamp;

pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

fn optional_timestamp(time: Option<DateTime<Utc>>) -> Option<Timestamp> {
    time.map(timestamp)
}

pub fn matter(matter: &Matter) -> pb::Matter {
    pb::Matter {
        code: matter.code.to_string(),
        name: matter.name.clone(),
        matter_class: i32::from(matter.class.number()),
        department: matter.department.clone(),
    }
}

pub fn state(state: OrderState) -> pb::WorkOrderState {
    match state {
        OrderState::OfferedToGrid => pb::WorkOrderState::OfferedToGrid,
        OrderState::OfferedToCounty => pb::WorkOrderState::OfferedToCounty,
        OrderState::Claimed => pb::WorkOrderState::Claimed,
        OrderState::Completed => pb::WorkOrderState::Completed,
        OrderState::Settled => pb::WorkOrderState::Settled,
        OrderState::Cancelled => pb::WorkOrderState::Cancelled,
    }
}

pub fn rating_to_proto(rating: Rating) -> pb::Rating {
    match rating {
        Rating::VerySatisfied => pb::Rating::VerySatisfied,
        Rating::Satisfied => pb::Rating::Satisfied,
        Rating::Average => pb::Rating::Average,
        Rating::Unsatisfied => pb::Rating::Unsatisfied,
    }
}

pub fn rating_from_proto(rating: pb::Rating) -> Option<Rating> {
    match rating {
        pb::Rating::Unspecified => None,
        pb::Rating::VerySatisfied => Some(Rating::VerySatisfied),
        pb::Rating::Satisfied => Some(Rating::Satisfied),
        pb::Rating::Average => Some(Rating::Average),
        pb::Rating::Unsatisfied => Some(Rating::Unsatisfied),
    }
}

pub fn channel_from_proto(channel: pb::Channel) -> Option<Channel> {
    match channel {
        pb::Channel::Unspecified => None,
        pb::Channel::WebHall => Some(Channel::WebHall),
        pb::Channel::GovApp => Some(Channel::GovApp),
        pb::Channel::Wechat => Some(Channel::Wechat),
    }
}

fn channel_to_proto(channel: Channel) -> pb::Channel {
    match channel {
        Channel::WebHall => pb::Channel::WebHall,
        Channel::GovApp => pb::Channel::GovApp,
        Channel::Wechat => pb::Channel::Wechat,
    }
}

pub fn role(role: AgentRole) -> pb::AgentRole {
    match role {
        AgentRole::GridWorker => pb::AgentRole::GridWorker,
        AgentRole::VillageCadre => pb::AgentRole::VillageCadre,
        AgentRole::AuxiliaryPolice => pb::AgentRole::AuxiliaryPolice,
    }
}

/// Who reads an order, which decides how much of the applicant it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// The app backend, or the agent who holds the order: the whole phone
    /// number.
    Full,
    /// An agent who does not hold the order: the phone masked, and any
    /// number in the request text too.
    Masked,
}

pub fn work_order(order: &WorkOrder, viewer: Viewer) -> pb::WorkOrder {
    let (phone, request_text) = match viewer {
        Viewer::Full => (
            order.applicant.phone.to_string(),
            order.request_text.clone(),
        ),
        Viewer::Masked => (
            order.applicant.phone.masked(),
            daiban_domain::mask_digit_runs(&order.request_text),
        ),
    };
    pb::WorkOrder {
        order_id: order.id.to_string(),
        number: order.number.clone(),
        state: state(order.state) as i32,
        request_text,
        matter: order.matter.as_ref().map(matter),
        county_code: order.county.to_string(),
        grid_code: order
            .grid
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        grid_resolved: order.grid.is_some(),
        claim_code: order.claim_code.clone(),
        agent_id: order
            .agent
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        create_time: Some(timestamp(order.create_time)),
        widen_time: Some(timestamp(order.widen_time)),
        claim_time: optional_timestamp(order.claim_time),
        complete_time: optional_timestamp(order.complete_time),
        result: order.result.as_ref().map(|r| pb::WorkResult {
            text: r.text.clone(),
            reference: r.reference.clone(),
        }),
        rating: order
            .rating
            .map_or(pb::Rating::Unspecified, rating_to_proto) as i32,
        points_tenths: order.points_tenths.unwrap_or(0),
        escalated: order.escalated,
        applicant: Some(pb::Applicant {
            name: order.applicant.name.clone(),
            phone,
        }),
        channel: channel_to_proto(order.channel) as i32,
        request_id: order.request_id.clone().unwrap_or_default(),
        address: order.address.clone(),
        rating_comment: order.rating_comment.clone(),
        rate_time: optional_timestamp(order.rate_time),
        settle_time: optional_timestamp(order.settle_time),
        cancel_time: optional_timestamp(order.cancel_time),
        cancel_reason: order.cancel_reason.clone(),
        widened: order.widened,
        sms: Vec::new(),
    }
}

/// One SMS of an order.
pub fn sms_delivery(sms: &SmsDelivery) -> pb::SmsDelivery {
    let state = match sms.state {
        SmsState::Queued => pb::SmsDeliveryState::SmsQueued,
        SmsState::Sending => pb::SmsDeliveryState::SmsSending,
        SmsState::Sent => pb::SmsDeliveryState::SmsSent,
        SmsState::Delivered => pb::SmsDeliveryState::SmsDelivered,
        SmsState::Failed => pb::SmsDeliveryState::SmsFailed,
        SmsState::Unknown => pb::SmsDeliveryState::SmsUnknown,
        SmsState::Withdrawn => pb::SmsDeliveryState::SmsWithdrawn,
    };
    pb::SmsDelivery {
        sms_id: sms.id.to_string(),
        offer: sms.id.offer.clone(),
        agent_id: sms
            .id
            .recipient
            .agent()
            .map(ToString::to_string)
            .unwrap_or_default(),
        state: state as i32,
        attempts: i32::try_from(sms.attempts).unwrap_or(i32::MAX),
        provider_message_id: sms.provider_id.clone().unwrap_or_default(),
        error: sms.error.clone(),
        queue_time: Some(timestamp(sms.queue_time)),
        send_time: sms.send_time.map(timestamp),
        report_time: sms.report_time.map(timestamp),
    }
}
