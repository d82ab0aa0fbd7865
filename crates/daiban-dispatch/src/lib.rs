//! Offering orders to agents: who is told of an order and when, the texts
//! they get, and the dispatcher task that widens, escalates and settles on
//! time.

mod dispatcher;
mod notifier;
mod offers;
mod sender;
mod texts;

pub use dispatcher::{Dispatcher, Policy};
pub use notifier::{LogNotifier, Notifier, NotifyError, Recipient, Sent, Sms};
pub use offers::{CLAIM_CLOSED, CLAIM_RESERVED, CLAIM_TAKEN, CLAIM_WON, Offers};
pub use sender::SendPolicy;
pub use texts::{ClaimLoss, Message, Template, reply_help, reply_stranger};
