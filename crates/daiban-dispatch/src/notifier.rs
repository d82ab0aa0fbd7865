//! The one interface every outbound SMS goes through.

use async_trait::async_trait;
use daiban_domain::{AgentId, OrderId, PhoneNumber};
use daiban_store::sms::SmsId;
use tracing::debug;

use crate::texts::Message;

/// Who an SMS is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Agent {
        id: AgentId,
        phone: PhoneNumber,
    },
    /// The bureau's duty desk, which takes escalated orders.
    DutyDesk,
    /// A number that is no agent's, answered after it sent an SMS.
    Phone(PhoneNumber),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub recipient: Recipient,
    /// The record of the SMS, whose id providers echo back in delivery
    /// reports; `None` for an answer that is kept in no record.
    pub id: Option<SmsId>,
    pub message: Message,
}

impl Sms {
    /// Returns the order the SMS is about, if any.
    pub fn order(&self) -> Option<&OrderId> {
        self.id.as_ref().map(|id| &id.order)
    }

    /// Returns the id that providers echo back in delivery reports, or an
    /// empty string.
    pub fn out_id(&self) -> String {
        self.id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The recipient for logs: an agent's id and masked phone number, a
    /// masked phone number, or the duty desk.
    pub fn recipient_label(&self) -> String {
        match &self.recipient {
            Recipient::Agent { id, phone } => format!("agent {id} ({})", phone.masked()),
            Recipient::DutyDesk => "the duty desk".to_owned(),
            Recipient::Phone(phone) => phone.masked(),
        }
    }
}

/// A provider's acceptance of an SMS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of the message (`BizId`, `SerialNo`), which its
    /// delivery reports name.
    pub provider_id: Option<String>,
}

/// Why an SMS was not sent. Messages name the recipient masked, never a
/// whole phone number or a credential.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The provider was unreachable, overloaded or failed inside, and did
    /// not take the SMS; the same request may succeed later.
    #[error("sms to {recipient} failed, may succeed later: {reason}")]
    Transient { recipient: String, reason: String },
    /// The provider rejected the request (credentials, template, number);
    /// sending it again fails the same way.
    #[error("sms to {recipient} rejected: {reason}")]
    Permanent { recipient: String, reason: String },
    /// The request may have reached the provider, but no response came (a
    /// time-out, a broken response). Sending again might deliver it twice.
    #[error("sms to {recipient} may or may not have been sent: {reason}")]
    Uncertain { recipient: String, reason: String },
}

impl NotifyError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Sends one SMS, or reports why not. The call returns once the
    /// provider accepted or rejected the request.
    async fn send(&self, sms: Sms) -> Result<Sent, NotifyError>;
}

/// Logs each SMS at debug level, with the phone number masked, instead of
/// sending it. `Offers` logs one line per offer at info level.
#[derive(Debug, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn send(&self, sms: Sms) -> Result<Sent, NotifyError> {
        debug!(
            sms.id = %sms.out_id(),
            recipient = %sms.recipient_label(),
            template = sms.message.template.name(),
            text = %sms.message.text(),
            "sms logged"
        );
        Ok(Sent::default())
    }
}
