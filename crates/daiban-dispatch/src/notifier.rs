//! The one interface every outbound SMS goes through.

use async_trait::async_trait;
use daiban_domain::{AgentId, OrderId, PhoneNumber};
use tracing::debug;

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
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("sms to {recipient} failed: {reason}")]
    Failed { recipient: String, reason: String },
}

#[async_trait]
pub trait Notifier: Send + Sync + 'static {
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
                text = %sms.text,
                "sms logged"
            ),
            Recipient::DutyDesk => debug!(
                order.id = %sms.order,
                recipient = "duty_desk",
                text = %sms.text,
                "sms logged"
            ),
        }
        Ok(())
    }
}
