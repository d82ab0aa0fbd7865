//! What the provider clients share: the number an SMS goes to and the
//! sorting of failures into transient, permanent and uncertain ones.

use daiban_dispatch::{NotifyError, Recipient, Sms};
use daiban_domain::PhoneNumber;
use reqwest::StatusCode;

/// Returns the number to send `sms` to. A note to the duty desk without a
/// duty desk number fails for good, so its record shows it was not sent.
pub(crate) fn phone<'a>(
    sms: &'a Sms,
    duty_desk: Option<&'a PhoneNumber>,
) -> Result<&'a PhoneNumber, NotifyError> {
    match (&sms.recipient, duty_desk) {
        (Recipient::Agent { phone, .. } | Recipient::Phone(phone), _) => Ok(phone),
        (Recipient::DutyDesk, Some(phone)) => Ok(phone),
        (Recipient::DutyDesk, None) => Err(NotifyError::Permanent {
            recipient: sms.recipient_label(),
            reason: "no duty desk number: set DAIBAN_SMS_DUTY_DESK_PHONE".into(),
        }),
    }
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

    pub(crate) fn uncertain(&self, reason: String) -> NotifyError {
        NotifyError::Uncertain {
            recipient: self.0.clone(),
            reason,
        }
    }

    /// A request that got no response. One that never connected was not
    /// sent and is transient; after a time-out or a broken response the
    /// provider may have taken it, so it is uncertain.
    pub(crate) fn transport(&self, err: reqwest::Error) -> NotifyError {
        let connect = err.is_connect();
        // Without the URL, which may carry a gateway's credential.
        let reason = err.without_url().to_string();
        if connect {
            self.transient(reason)
        } else {
            self.uncertain(reason)
        }
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
