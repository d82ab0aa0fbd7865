//! The send queue: `send` only puts an SMS into a bounded queue, so a
//! slow provider never holds up a claim or the dispatcher. A sender task
//! spaces the SMS to each phone, and retries transient failures with
//! exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use daiban_dispatch::{Notifier, NotifyError, Recipient, Sms};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span, warn};

/// The queue's size, concurrency, retries and spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// SMS waiting to be sent; `send` fails at once when this many wait.
    pub capacity: usize,
    /// SMS in flight to the provider at once.
    pub concurrency: usize,
    /// Tries per SMS, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; each later wait doubles.
    pub first_backoff: Duration,
    /// Minimum time between two SMS to one phone.
    pub phone_interval: Duration,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        // NOTE: the one-second spacing per phone is a guess. Each provider
        // enforces its own per-number limits, which an account can change
        // in its console, and reports a breach with a rate-limit code that
        // the queue retries.
        Self {
            capacity: 10_000,
            concurrency: 16,
            max_attempts: 5,
            first_backoff: Duration::from_secs(1),
            phone_interval: Duration::from_secs(1),
        }
    }
}

/// A notifier that queues each SMS for `inner` and returns at once.
///
/// TODO: the dispatcher deletes an announcement once its SMS are queued,
/// so SMS still queued when the process dies are lost, and a retry after
/// a provider time-out may send twice. Both need a per-(order, offer,
/// agent) `SET NX` key in the store, taken before each send, which does
/// not exist yet.
pub struct SendQueue {
    queue: mpsc::Sender<Sms>,
}

impl SendQueue {
    /// Starts the sender task on the current tokio runtime. It ends when
    /// the queue is dropped and every queued SMS was handled.
    pub fn start(inner: Arc<dyn Notifier>, policy: QueuePolicy) -> Self {
        let (queue, receiver) = mpsc::channel(policy.capacity.max(1));
        tokio::spawn(run(inner, policy, receiver).instrument(info_span!("sms_sender")));
        Self { queue }
    }
}

#[async_trait]
impl Notifier for SendQueue {
    async fn send(&self, sms: Sms) -> Result<(), NotifyError> {
        let recipient = sms.recipient_label();
        self.queue.try_send(sms).map_err(|err| {
            let reason = match err {
                mpsc::error::TrySendError::Full(_) => "send queue full",
                mpsc::error::TrySendError::Closed(_) => "send queue closed",
            };
            NotifyError::Transient {
                recipient,
                reason: reason.into(),
            }
        })
    }
}

async fn run(inner: Arc<dyn Notifier>, policy: QueuePolicy, mut receiver: mpsc::Receiver<Sms>) {
    let slots = Arc::new(Semaphore::new(policy.concurrency.max(1)));
    let spacing = Arc::new(PhoneSpacing::default());
    while let Some(sms) = receiver.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let inner = inner.clone();
        let spacing = spacing.clone();
        tokio::spawn(async move {
            spacing.wait_turn(&sms, policy.phone_interval).await;
            send_with_retries(inner.as_ref(), sms, &policy).await;
            drop(permit);
        });
    }
}

/// The time at which each phone may get its next SMS.
#[derive(Default)]
struct PhoneSpacing {
    next: Mutex<HashMap<String, Instant>>,
}

impl PhoneSpacing {
    /// Reserves the phone's next slot and sleeps until it comes.
    async fn wait_turn(&self, sms: &Sms, interval: Duration) {
        let Recipient::Agent { phone, .. } = &sms.recipient else {
            return;
        };
        let now = Instant::now();
        let turn = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            // Slots in the past are of no use to anyone, so they go.
            next.retain(|_, at| *at > now);
            let turn = next.get(phone.as_str()).copied().unwrap_or(now).max(now);
            next.insert(phone.as_str().to_owned(), turn + interval);
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

async fn send_with_retries(inner: &dyn Notifier, sms: Sms, policy: &QueuePolicy) {
    let mut backoff = policy.first_backoff;
    for attempt in 1..=policy.max_attempts.max(1) {
        match inner.send(sms.clone()).await {
            Ok(()) => {
                metrics::counter!("daiban_sms_sent_total", "result" => "sent").increment(1);
                debug!(order.id = %sms.order, attempt, "sms sent");
                return;
            }
            Err(err) if err.is_transient() && attempt < policy.max_attempts => {
                warn!(order.id = %sms.order, attempt, retry_in_ms = backoff.as_millis() as u64, error = %err, "sms failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            Err(err) => {
                let result = if err.is_transient() {
                    "gave_up"
                } else {
                    "rejected"
                };
                metrics::counter!("daiban_sms_sent_total", "result" => result).increment(1);
                warn!(order.id = %sms.order, attempt, error = %err, "sms not sent");
                return;
            }
        }
    }
}
