//! The one interface every outbound SMS goes through.

use async_trait::async_trait;
use daiban_domain::{AgentId, OrderId, PhoneNumber};
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub recipient: Recipient,
    pub order: OrderId,
    pub message: Message,
}

impl Sms {
    /// The recipient for logs: an agent's id and masked phone number, or
    /// the duty desk.
    pub fn recipient_label(&self) -> String {
        match &self.recipient {
            Recipient::Agent { id, phone } => format!("agent {id} ({})", phone.masked()),
            Recipient::DutyDesk => "the duty desk".to_owned(),
        }
    }
}

/// Why an SMS was not sent. Messages name the recipient masked, never a
/// whole phone number or a credential.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The provider was unreachable, overloaded or failed inside; the same
    /// request may succeed later.
    #[error("sms to {recipient} failed, may succeed later: {reason}")]
    Transient { recipient: String, reason: String },
    /// The provider rejected the request (credentials, template, number);
    /// sending it again fails the same way.
    #[error("sms to {recipient} rejected: {reason}")]
    Permanent { recipient: String, reason: String },
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
    async fn send(&self, sms: Sms) -> Result<(), NotifyError>;
}

/// Logs each SMS at debug level, with the phone number masked, instead of
/// sending it. `Offers` logs one line per offer at info level.
#[derive(Debug, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn send(&self, sms: Sms) -> Result<(), NotifyError> {
        match &sms.recipient {
            Recipient::Agent { id, phone } => debug!(
                order.id = %sms.order,
                agent.id = %id,
                phone = %phone.masked(),
                template = sms.message.template.name(),
                text = %sms.message.text(),
                "sms logged"
            ),
            Recipient::DutyDesk => debug!(
                order.id = %sms.order,
                recipient = "duty_desk",
                template = sms.message.template.name(),
                text = %sms.message.text(),
                "sms logged"
            ),
        }
        Ok(())
    }
}
