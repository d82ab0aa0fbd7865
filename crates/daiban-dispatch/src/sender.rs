//! The SMS sender: takes the queued SMS from the store under a lease,
//! builds each text from the order as it is now, and hands it to the
//! `Notifier`. Sends run concurrently, so a slow provider never holds up
//! the dispatcher or a claim.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use daiban_domain::{CountyCode, OrderId, PhoneNumber, WorkOrder};
use daiban_store::sms::{SendResult, SmsDelivery, SmsRecipient};
use daiban_store::{Store, StoreError};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::dispatcher::{Outage, RETRY_PAUSE};
use crate::notifier::{Notifier, NotifyError, Recipient, Sms};
use crate::offers::{self, Offers};

/// The rules for sending, retrying and spacing SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendPolicy {
    /// SMS in flight to the provider at once, per process.
    pub concurrency: usize,
    /// Tries per SMS, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; each later wait doubles.
    pub first_backoff: Duration,
    /// Minimum time between two SMS to one phone from one process.
    pub phone_interval: Duration,
    /// How long a taken SMS stays with its sender. It must exceed the
    /// provider's request time-out plus `phone_interval` times the SMS one
    /// phone may get at once, or a slow send is taken for a dead sender.
    pub lease: Duration,
}

impl Default for SendPolicy {
    fn default() -> Self {
        // NOTE: the one-second spacing per phone is an estimate. Each
        // provider enforces its own per-number limits, which an account can
        // change in its console, and reports a breach with a rate-limit
        // code that is retried.
        Self {
            concurrency: 64,
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
            phone_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
        }
    }
}

/// SMS taken per store call.
const TAKE_BATCH: usize = 256;

/// Maximum sleep between two looks at the queue, so SMS queued by other
/// replicas are seen soon.
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// Maximum wait for a phone's turn while holding an SMS's lease; a
/// longer one puts the SMS back in the queue.
const MAX_SPACING_WAIT: Duration = Duration::from_secs(2);

/// Tries at recording a send's result while the store is unavailable, one
/// `RETRY_PAUSE` apart and well within the lease. A result never recorded
/// leaves the SMS unknown once its lease ends, and its provider id unknown
/// to delivery reports.
const FINISH_TRIES: u32 = 5;

/// The reason the order of a taken SMS could not be read.
#[derive(Debug, Clone)]
enum OrderUnread {
    /// The store failed, and a later try may pass.
    Unavailable(String),
    /// The order is missing or unreadable, so the SMS can never be built.
    Invalid(String),
}

pub(crate) struct Sender {
    store: Arc<dyn Store>,
    offers: Offers,
    notifier: Arc<dyn Notifier>,
    policy: SendPolicy,
    slots: Arc<Semaphore>,
    spacing: PhoneSpacing,
}

impl Sender {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        offers: Offers,
        notifier: Arc<dyn Notifier>,
        policy: SendPolicy,
    ) -> Self {
        Self {
            store,
            offers,
            notifier,
            slots: Arc::new(Semaphore::new(policy.concurrency.max(1))),
            policy,
            spacing: PhoneSpacing::default(),
        }
    }

    /// Sends queued SMS until `shutdown` turns true, then waits for the
    /// sends in flight, so none is left half done.
    pub(crate) async fn run(
        self: Arc<Self>,
        counties: Vec<CountyCode>,
        wake: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut sends = JoinSet::new();
        let mut outage = Outage::new("taking queued sms");
        while !*shutdown.borrow() {
            while sends.try_join_next().is_some() {}
            // Waits for a send to finish when every slot is taken, rather
            // than polling, so the senders keep pace with the provider.
            tokio::select! {
                free = self.slots.acquire() => drop(free),
                _ = shutdown.changed() => continue,
            }
            let pause = outage.pause(self.clone().take_and_send(&counties, &mut sends).await);
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        if !sends.is_empty() {
            info!(in_flight = sends.len(), "waiting for sms in flight");
        }
        while sends.join_next().await.is_some() {}
    }

    /// Takes the due SMS of every county and starts their sends; returns
    /// how long to sleep before looking again.
    async fn take_and_send(
        self: Arc<Self>,
        counties: &[CountyCode],
        sends: &mut JoinSet<()>,
    ) -> Result<Duration, StoreError> {
        let mut pause = MAX_SLEEP;
        for county in counties {
            // A slot is held before taking, so nothing taken waits for one
            // long enough to outlive its lease.
            let free = self.slots.available_permits().min(TAKE_BATCH);
            if free == 0 {
                return Ok(MAX_SLEEP);
            }
            let now = Utc::now();
            let taken = self
                .store
                .take_sms(county, now, self.policy.lease, free)
                .await?;
            if taken.len() == free {
                pause = Duration::ZERO;
            }
            // A widened order's SMS come in a run, so each order is read
            // once per batch.
            let mut orders: HashMap<OrderId, Arc<Result<WorkOrder, OrderUnread>>> = HashMap::new();
            for delivery in taken {
                let order = match orders.get(&delivery.id.order) {
                    Some(order) => order.clone(),
                    None => {
                        let order = match self.store.order(&delivery.id.order).await {
                            Ok(order) => Ok(order),
                            // The SMS are taken already: each goes back
                            // to the queue as a retry, not left to run out
                            // its lease and become unknown.
                            Err(err @ StoreError::Unavailable(_)) => {
                                Err(OrderUnread::Unavailable(err.to_string()))
                            }
                            Err(err) => Err(OrderUnread::Invalid(format!(
                                "the order could not be read: {err}"
                            ))),
                        };
                        let order = Arc::new(order);
                        orders.insert(delivery.id.order.clone(), order.clone());
                        order
                    }
                };
                let Ok(permit) = self.slots.clone().acquire_owned().await else {
                    break;
                };
                let this = self.clone();
                sends.spawn(async move {
                    this.send(delivery, &order).await;
                    drop(permit);
                });
            }
            if let Some(next) = self.store.next_sms_due(county).await? {
                let until = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                pause = pause.min(until.max(Duration::from_millis(1)));
            }
        }
        Ok(pause)
    }

    /// Sends one taken SMS about `order` and records the result.
    async fn send(&self, delivery: SmsDelivery, order: &Result<WorkOrder, OrderUnread>) {
        let id = delivery.id.clone();
        // An SMS that cannot be built gets its result here.
        let prepared = match order {
            Ok(order) => self.prepare(&delivery, order).map_err(|error| {
                warn!(sms.id = %id, error = %error, "sms not sent");
                SendResult::Failed { error }
            }),
            Err(OrderUnread::Invalid(error)) => {
                warn!(sms.id = %id, error = %error, "sms not sent");
                Err(SendResult::Failed {
                    error: error.clone(),
                })
            }
            Err(OrderUnread::Unavailable(error)) => {
                // Nothing reached the provider, so this is retried like a
                // transient failure of the provider.
                let recipient = id.recipient.to_string();
                let err = NotifyError::Transient {
                    recipient: recipient.clone(),
                    reason: format!("the order could not be read: {error}"),
                };
                Err(self.result_of(&delivery, &recipient, Err(err)))
            }
        };
        let result = match prepared {
            Ok(Some(sms)) => {
                let turn = match &sms.recipient {
                    Recipient::Agent { phone, .. } => {
                        self.spacing.reserve(phone, self.policy.phone_interval)
                    }
                    _ => Ok(Instant::now()),
                };
                match turn {
                    Ok(turn) => {
                        tokio::time::sleep_until(turn).await;
                        let label = sms.recipient_label();
                        let outcome = self.notifier.send(sms).await;
                        self.result_of(&delivery, &label, outcome)
                    }
                    // The phone's turn is far off: the SMS goes back to the
                    // queue rather than hold its lease.
                    Err(wait) => SendResult::Defer {
                        at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    },
                }
            }
            Ok(None) => SendResult::Withdrawn,
            Err(result) => result,
        };
        let name = match &result {
            SendResult::Sent { .. } => "sent",
            SendResult::Retry { .. } => "retried",
            SendResult::Failed { .. } => "failed",
            SendResult::Uncertain { .. } => "unknown",
            SendResult::Withdrawn => "withdrawn",
            SendResult::Defer { .. } => "deferred",
        };
        metrics::counter!("daiban_sms_total", "result" => name).increment(1);
        self.finish(&delivery, result).await;
    }

    /// Records the result of a send, trying again for a few seconds while
    /// the store is unavailable.
    async fn finish(&self, delivery: &SmsDelivery, result: SendResult) {
        let id = &delivery.id;
        for tries in 1..=FINISH_TRIES {
            match self.store.finish_sms(id, result.clone(), Utc::now()).await {
                Ok(()) => return,
                Err(err @ StoreError::Unavailable(_)) if tries < FINISH_TRIES => {
                    debug!(sms.id = %id, tries, error = %err, "recording an sms result failed; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(err) => {
                    // The lease runs out and the SMS becomes unknown: it is
                    // not sent twice.
                    warn!(sms.id = %id, error = %err, "recording an sms result failed");
                    return;
                }
            }
        }
    }

    /// Builds the SMS, or returns `None` when an offer's order is no longer
    /// open, or the reason it cannot be sent.
    fn prepare(&self, delivery: &SmsDelivery, order: &WorkOrder) -> Result<Option<Sms>, String> {
        let id = &delivery.id;
        if offers::is_offer(&id.offer) && !order.state.is_open() {
            debug!(sms.id = %id, state = order.state.as_str(), "offer of a closed order withdrawn");
            return Ok(None);
        }
        let recipient = match &id.recipient {
            SmsRecipient::Agent(agent) => {
                let agent = self
                    .offers
                    .directory()
                    .agent(agent)
                    .ok_or_else(|| format!("agent {agent} is not in the directory"))?;
                Recipient::Agent {
                    id: agent.id.clone(),
                    phone: agent.phone.clone(),
                }
            }
            SmsRecipient::DutyDesk => Recipient::DutyDesk,
        };
        let message = self
            .offers
            .message(id, order)
            .ok_or_else(|| format!("no text for the offer {:?}", id.offer))?;
        Ok(Some(Sms {
            recipient,
            id: Some(id.clone()),
            message,
        }))
    }

    fn result_of(
        &self,
        delivery: &SmsDelivery,
        recipient: &str,
        outcome: Result<crate::notifier::Sent, NotifyError>,
    ) -> SendResult {
        let id = &delivery.id;
        let attempt = delivery.attempts;
        match outcome {
            Ok(sent) => {
                debug!(sms.id = %id, attempt, "sms sent");
                SendResult::Sent {
                    provider_id: sent.provider_id,
                }
            }
            Err(err @ NotifyError::Transient { .. }) if attempt < self.policy.max_attempts => {
                let wait = self
                    .policy
                    .first_backoff
                    .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
                warn!(sms.id = %id, recipient, attempt, retry_in_ms = wait.as_millis() as u64, error = %err, "sms failed; retrying");
                SendResult::Retry {
                    at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
                    error: reason(&err),
                }
            }
            Err(err @ NotifyError::Uncertain { .. }) => {
                warn!(sms.id = %id, recipient, attempt, error = %err, "sms may not have been sent; not sending it again");
                SendResult::Uncertain {
                    error: reason(&err),
                }
            }
            Err(err) => {
                warn!(sms.id = %id, recipient, attempt, error = %err, "sms not sent");
                let error = if err.is_transient() {
                    format!("gave up after {attempt} tries: {}", reason(&err))
                } else {
                    reason(&err)
                };
                SendResult::Failed { error }
            }
        }
    }
}

/// Returns the provider's reason, without the recipient that the error
/// names.
fn reason(err: &NotifyError) -> String {
    match err {
        NotifyError::Transient { reason, .. }
        | NotifyError::Permanent { reason, .. }
        | NotifyError::Uncertain { reason, .. } => reason.clone(),
    }
}

/// The time at which each phone may get its next SMS from this process.
#[derive(Default)]
struct PhoneSpacing {
    next: Mutex<HashMap<PhoneNumber, Instant>>,
}

impl PhoneSpacing {
    /// Reserves the phone's next slot and returns it, unless it is more
    /// than `MAX_SPACING_WAIT` away: then it returns the wait and reserves
    /// nothing.
    fn reserve(&self, phone: &PhoneNumber, interval: Duration) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Slots in the past are of no use to anyone, so they go.
        next.retain(|_, at| *at > now);
        let turn = next.get(phone).copied().unwrap_or(now).max(now);
        let wait = turn - now;
        if wait > MAX_SPACING_WAIT {
            return Err(wait);
        }
        next.insert(phone.clone(), turn + interval);
        Ok(turn)
    }
}
