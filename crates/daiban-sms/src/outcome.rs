//! What the provider clients share: the number an SMS goes to, the id that
//! reports echo back, and the sorting of failures into transient and
//! permanent ones.

use daiban_dispatch::{NotifyError, Recipient, Sms};
use daiban_domain::PhoneNumber;
use reqwest::StatusCode;
use tracing::info;

/// Returns the number to send `sms` to. A note to the duty desk without a
/// duty desk number gets `None` and is logged instead.
pub(crate) fn phone<'a>(
    sms: &'a Sms,
    duty_desk: Option<&'a PhoneNumber>,
) -> Option<&'a PhoneNumber> {
    match (&sms.recipient, duty_desk) {
        (Recipient::Agent { phone, .. }, _) => Some(phone),
        (Recipient::DutyDesk, Some(phone)) => Some(phone),
        (Recipient::DutyDesk, None) => {
            info!(
                order.id = %sms.order,
                template = sms.message.template.name(),
                "duty desk note logged, not sent (DAIBAN_SMS_DUTY_DESK_PHONE unset)"
            );
            None
        }
    }
}

/// The id a provider echoes back in delivery reports: the order, the
/// template and the recipient, as `431127-00000001.grid_offer.A0001`.
pub fn out_id(sms: &Sms) -> String {
    let recipient = match &sms.recipient {
        Recipient::Agent { id, .. } => id.to_string(),
        Recipient::DutyDesk => "duty_desk".to_owned(),
    };
    format!("{}.{}.{recipient}", sms.order, sms.message.template.name())
}

/// The recipient of a request in flight, for its errors.
pub(crate) struct Target(String);

impl Target {
    pub(crate) fn new(sms: &Sms) -> Self {
        Self(sms.recipient_label())
    }

    pub(crate) fn transient(&self, reason: String) -> NotifyError {
        NotifyError::Transient {
            recipient: self.0.clone(),
            reason,
        }
    }

    pub(crate) fn permanent(&self, reason: String) -> NotifyError {
        NotifyError::Permanent {
            recipient: self.0.clone(),
            reason,
        }
    }

    /// A request that got no response: a refused connection, a time-out or
    /// a broken body. Such a request may have been sent, so it counts as
    /// transient and the caller's deduplication decides.
    pub(crate) fn transport(&self, err: reqwest::Error) -> NotifyError {
        // Without the URL, which may carry a gateway's credential.
        self.transient(err.without_url().to_string())
    }

    /// An HTTP status without a readable response body: 5xx, 408 and 429 are
    /// transient, other statuses permanent.
    pub(crate) fn status(&self, status: StatusCode) -> NotifyError {
        let reason = format!("provider answered HTTP {status}");
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            self.transient(reason)
        } else {
            self.permanent(reason)
        }
    }
}
