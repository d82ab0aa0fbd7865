//! Offering orders to agents: who is told of an order and when, the texts
//! they get, and the dispatcher task that widens, escalates and settles on
//! time.

mod dispatcher;
mod notifier;
mod offers;
mod texts;

pub use dispatcher::{Dispatcher, Policy};
pub use notifier::{LogNotifier, Notifier, NotifyError, Recipient, Sms};
pub use offers::Offers;
pub use texts::{Message, Template};
