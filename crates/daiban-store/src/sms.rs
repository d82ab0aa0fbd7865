//! SMS deliveries and replies: one record per SMS owed, which is also the
//! durable send queue, so an SMS survives the process that queued it and
//! goes out once even when several dispatchers see its announcement.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use daiban_domain::{AgentId, CountyCode, OrderId, PhoneNumber};

use crate::{AnnouncementKind, StoreError};

/// How long a delivery record is kept after it was last written. Delivery
/// reports come within three days; the rest is for the bureau's questions.
pub const SMS_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a provider's message id still matches its delivery report.
pub const PROVIDER_ID_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);

/// How long a reply's key is remembered, so a reply pushed again by the
/// provider is recognised.
pub const REPLY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a reply being handled blocks a repeat of it. A handler that
/// fails leaves the reply to the provider's next push after that.
pub const REPLY_CLAIM: Duration = Duration::from_secs(60);

/// The failed deliveries kept per county for `failed_sms`.
pub const FAILED_SMS_KEPT: usize = 1000;

/// The state of an SMS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmsState {
    /// Waiting for a sender, first or after a transient failure.
    Queued,
    /// Taken by a sender and possibly handed to the provider.
    Sending,
    /// Accepted by the provider.
    Sent,
    /// Reported delivered to the phone.
    Delivered,
    /// Rejected by the provider, reported undelivered, or given up after
    /// its retries.
    Failed,
    /// Possibly sent: the provider sent no response, or the sender stopped
    /// during the send. It is not sent again, so nobody gets it twice; a
    /// delivery report may still settle it.
    Unknown,
    /// Not sent, because the order was no longer open when its turn came.
    Withdrawn,
}

impl SmsState {
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Failed,
        Self::Unknown,
        Self::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// The recipient of an SMS: an agent, or the bureau's duty desk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SmsRecipient {
    Agent(AgentId),
    DutyDesk,
}

impl SmsRecipient {
    const DUTY_DESK: &'static str = "duty_desk";

    pub fn agent(&self) -> Option<&AgentId> {
        match self {
            Self::Agent(agent) => Some(agent),
            Self::DutyDesk => None,
        }
    }
}

impl fmt::Display for SmsRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent(agent) => write!(f, "{agent}"),
            Self::DutyDesk => f.write_str(Self::DUTY_DESK),
        }
    }
}

/// One SMS owed: the order, the offer it belongs to and the recipient. Its
/// text form, `431127-00000042.widened.A0001`, is the id that providers
/// echo back in delivery reports (`OutId`, `SessionContext`).
///
/// An offer is `submitted`, `widened`, `released-<n>` (the order's `n`th
/// release), `escalated`, or `claim-won`, `claim-taken`, `claim-reserved`
/// or `claim-closed` for the reply to a claim by SMS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmsId {
    pub order: OrderId,
    pub offer: String,
    pub recipient: SmsRecipient,
}

impl SmsId {
    pub fn new(order: OrderId, offer: impl Into<String>, recipient: SmsRecipient) -> Self {
        Self {
            order,
            offer: offer.into(),
            recipient,
        }
    }

    /// Parses the text form. Returns `None` for anything else, such as an
    /// id another system gave a message.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let (order, offer, recipient) = (parts.next()?, parts.next()?, parts.next()?);
        let order = OrderId::parse(order).ok()?;
        if !is_offer(offer) {
            return None;
        }
        let recipient = if recipient == SmsRecipient::DUTY_DESK {
            SmsRecipient::DutyDesk
        } else {
            SmsRecipient::Agent(AgentId::parse(recipient).ok()?)
        };
        Some(Self::new(order, offer, recipient))
    }

    /// Returns the key of the SMS within its order: `<offer>.<recipient>`.
    pub fn field(&self) -> String {
        format!("{}.{}", self.offer, self.recipient)
    }
}

impl fmt::Display for SmsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.order, self.offer, self.recipient)
    }
}

/// Returns whether `offer` is a valid offer name: 1 to 32 lowercase letters,
/// digits and hyphens.
pub fn is_offer(offer: &str) -> bool {
    !offer.is_empty()
        && offer.len() <= 32
        && offer
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The record of one SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsDelivery {
    pub id: SmsId,
    pub state: SmsState,
    /// Sends tried so far.
    pub attempts: u32,
    /// The provider's id of the accepted message (`BizId`, `SerialNo`).
    pub provider_id: Option<String>,
    /// The last failure, as the provider or carrier reported it; empty
    /// when none.
    pub error: String,
    pub queue_time: DateTime<Utc>,
    /// When the provider accepted it.
    pub send_time: Option<DateTime<Utc>>,
    /// When its delivery report was recorded.
    pub report_time: Option<DateTime<Utc>>,
}

/// The result of one send, as `finish_sms` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Sent {
        provider_id: Option<String>,
    },
    /// A transient failure: the SMS is queued again for `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    /// The provider may have sent it; it is not sent again.
    Uncertain {
        error: String,
    },
    /// The order was no longer open, so the SMS was not sent.
    Withdrawn,
    /// Not tried: the SMS is queued again for `at`, and this take does not
    /// count as a try.
    Defer {
        at: DateTime<Utc>,
    },
}

/// The SMS that a delivery report names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    /// Our id, echoed back by the provider.
    Sms(SmsId),
    /// The provider's own message id.
    Provider(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub target: ReportTarget,
    pub delivered: bool,
    /// The carrier's status code and message; empty when delivered.
    pub error: String,
    pub time: DateTime<Utc>,
}

/// The outcome of `report_sms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    Recorded(SmsId),
    /// The SMS already had this outcome: the report came twice.
    Duplicate(SmsId),
    /// No SMS matches: an unknown or expired id.
    Unmatched,
}

/// An SMS that a phone sent to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The key that makes the reply unique: the provider's sequence id, or its
    /// phone, time and text where the provider gives no id.
    pub key: String,
    pub phone: PhoneNumber,
    pub text: String,
    pub time: DateTime<Utc>,
    /// The agent whose phone sent it, if any.
    pub agent: Option<AgentId>,
}

/// SMS records of one or more counties.
#[async_trait]
pub trait SmsStore: Send + Sync {
    /// Queues one SMS of `offer` of `order` per recipient, due at `now`,
    /// and deletes the order's announcement of kind `announcement`, if
    /// given, in one atomic step. Recipients who were queued this offer
    /// before are skipped, so a second dispatcher that takes the same
    /// announcement queues nothing twice. Returns the number queued now.
    async fn queue_sms(
        &self,
        announcement: Option<AnnouncementKind>,
        order: &OrderId,
        offer: &str,
        recipients: &[SmsRecipient],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError>;

    /// Takes up to `limit` queued SMS of the county that are due at `now`
    /// and marks them sending, leased to the caller until `now + lease`.
    /// An SMS whose lease ran out while sending becomes `Unknown` and is
    /// not returned, because its sender may have handed it to the provider.
    async fn take_sms(
        &self,
        county: &CountyCode,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<SmsDelivery>, StoreError>;

    /// Records the result of sending an SMS taken with `take_sms`. A
    /// result never overwrites a delivery report that came first.
    async fn finish_sms(
        &self,
        id: &SmsId,
        result: SendResult,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records a delivery report. The same report twice changes nothing
    /// the second time; a report for a delivered SMS is a duplicate.
    async fn report_sms(
        &self,
        county: &CountyCode,
        report: &DeliveryReport,
        now: DateTime<Utc>,
    ) -> Result<ReportOutcome, StoreError>;

    /// Returns the SMS of an order, in the order they were queued.
    async fn order_sms(&self, order: &OrderId) -> Result<Vec<SmsDelivery>, StoreError>;

    /// Returns the county's latest failed SMS, newest first.
    async fn failed_sms(
        &self,
        county: &CountyCode,
        limit: usize,
    ) -> Result<Vec<SmsDelivery>, StoreError>;

    /// When the county's next queued SMS is due, if any.
    async fn next_sms_due(&self, county: &CountyCode) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Starts handling a reply, unless one with the same key was handled
    /// or is being handled. Returns `false` for such a repeat, which the
    /// caller then ignores. A reply never finished with `finish_reply`
    /// (its handler failed) may be started again after `REPLY_CLAIM`.
    async fn start_reply(
        &self,
        county: &CountyCode,
        reply: &InboundSms,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a handled reply and what came of it (`outcome`), and keeps
    /// its key for `REPLY_RETENTION`.
    async fn finish_reply(
        &self,
        county: &CountyCode,
        reply: &InboundSms,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Whether a phone may get a help answer to a reply now: at most one
    /// per `interval`, so an auto-responder cannot start an SMS loop.
    async fn allow_help_answer(
        &self,
        county: &CountyCode,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
        interval: Duration,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_id_round_trips() {
        let order = OrderId::parse("431127-00000042").expect("valid order id");
        let agent = AgentId::parse("A0001").expect("valid agent id");
        for recipient in [SmsRecipient::Agent(agent), SmsRecipient::DutyDesk] {
            let id = SmsId::new(order.clone(), "released-2", recipient);
            assert_eq!(SmsId::parse(&id.to_string()), Some(id));
        }
    }

    #[test]
    fn sms_id_rejects_foreign_ids() {
        for text in [
            "",
            "abc",
            "431127-00000042",
            "431127-00000042.widened",
            "431127-00000042.Widened.A0001",
            "431127-00000042.widened.A 1",
            "x.widened.A0001",
        ] {
            assert_eq!(SmsId::parse(text), None, "{text:?}");
        }
    }
}
