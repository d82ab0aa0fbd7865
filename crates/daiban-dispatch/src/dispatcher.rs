//! The dispatcher inside `daiban serve`: one task widens orders whose grid
//! phase ended, escalates orders nobody grabbed and settles orders whose
//! rating window passed; another turns the announcements those changes
//! owe into queued SMS; a third sends the queued SMS. Each happens once,
//! however many replicas run it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use daiban_domain::CountyCode;
use daiban_points::Points;
use daiban_store::{Announcement, AnnouncementKind, Store, StoreError};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::notifier::Notifier;
use crate::offers::Offers;
use crate::sender::{SendPolicy, Sender};

/// Orders widened or escalated per store call.
const BATCH: usize = 200;

/// Longest sleep between rounds, so that a deadline another replica added
/// is seen soon even when this replica has no earlier one.
const MAX_SLEEP: Duration = Duration::from_millis(200);

/// Pause after the store failed, before trying again.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Announcements taken per store call.
const ANNOUNCE_BATCH: usize = 50;

/// How long a taken announcement stays with this process before another
/// may take it: the time a crashed replica's notifications wait.
const ANNOUNCE_LEASE: Duration = Duration::from_secs(2);

/// Logs a loop's store failures once per outage, and the recovery after.
pub(crate) struct Outage {
    what: &'static str,
    failing: bool,
}

impl Outage {
    /// Starts with no outage; `what` names the loop's work in its logs.
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            failing: false,
        }
    }

    /// Returns how long the loop pauses next: `Ok`'s pause after a
    /// success, `RETRY_PAUSE` after a failure.
    pub(crate) fn pause(&mut self, result: Result<Duration, StoreError>) -> Duration {
        match result {
            Ok(pause) => {
                if self.failing {
                    info!("{} recovered", self.what);
                    self.failing = false;
                }
                pause
            }
            Err(err) => {
                if !self.failing {
                    warn!(error = %err, "{} failed; retrying every second", self.what);
                    self.failing = true;
                }
                RETRY_PAUSE
            }
        }
    }
}

/// The timing rules of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Length of the grid phase.
    pub widen_after: Duration,
    /// Time after widening until an unclaimed order escalates.
    pub escalate_after: Duration,
    /// Time after completion until an unrated order settles.
    pub rating_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            widen_after: Duration::from_secs(10 * 60),
            escalate_after: Duration::from_secs(30 * 60),
            rating_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    offers: Offers,
    points: Arc<Points>,
    counties: Vec<CountyCode>,
    wake: Arc<Notify>,
    /// Wakes the SMS sender when SMS were queued.
    wake_sender: Arc<Notify>,
    sender: Arc<Sender>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        offers: Offers,
        notifier: Arc<dyn Notifier>,
        send_policy: SendPolicy,
        points: Arc<Points>,
        counties: Vec<CountyCode>,
    ) -> Self {
        let sender = Arc::new(Sender::new(
            store.clone(),
            offers.clone(),
            notifier,
            send_policy,
        ));
        Self {
            store,
            offers,
            points,
            counties,
            wake: Arc::new(Notify::new()),
            wake_sender: Arc::new(Notify::new()),
            sender,
        }
    }

    /// Returns a handle that makes the dispatcher look for work at once,
    /// for the calls that just owed a notification.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Returns a handle that makes the SMS sender look at the queue at
    /// once, for the calls that just queued an SMS.
    pub fn sender_waker(&self) -> Arc<Notify> {
        self.wake_sender.clone()
    }

    /// Runs the deadline, announcement and SMS loops until `shutdown`
    /// turns true, and returns once SMS in flight are finished.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        info!(counties = self.counties.len(), "dispatcher started");
        let this = Arc::new(self);
        let deadlines = tokio::spawn(this.clone().run_deadlines(shutdown.clone()));
        let announcements = tokio::spawn(this.clone().run_announcements(shutdown.clone()));
        let sms = tokio::spawn(this.sender.clone().run(
            this.counties.clone(),
            this.wake_sender.clone(),
            shutdown,
        ));
        let _ = tokio::join!(deadlines, announcements, sms);
        info!("dispatcher stopped");
    }

    async fn run_deadlines(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut outage = Outage::new("dispatcher round");
        while !*shutdown.borrow() {
            let pause = outage.pause(self.round().await);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn run_announcements(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut outage = Outage::new("taking announcements");
        while !*shutdown.borrow() {
            let handled = self.announce().await;
            let pause = outage.pause(handled.map(|handled| {
                if handled > 0 {
                    Duration::ZERO
                } else {
                    MAX_SLEEP
                }
            }));
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Queues the SMS of every due announcement of every county; returns
    /// how many announcements were handled.
    async fn announce(&self) -> Result<usize, StoreError> {
        let mut handled = 0;
        for county in &self.counties {
            let taken = self
                .store
                .take_announcements(county, Utc::now(), ANNOUNCE_LEASE, ANNOUNCE_BATCH)
                .await?;
            for announcement in taken {
                self.queue(&announcement).await?;
                handled += 1;
            }
        }
        if handled > 0 {
            self.wake_sender.notify_one();
        }
        Ok(handled)
    }

    /// Queues the SMS that `announcement` owes and deletes it, in one store
    /// call. An announcement of an order that stopped being open is deleted
    /// with nothing queued: nobody needs an offer of a claimed or cancelled
    /// order.
    async fn queue(&self, announcement: &Announcement) -> Result<(), StoreError> {
        let order = &announcement.order;
        let kind = announcement.kind;
        let (offer, recipients) = if order.state.is_open() {
            self.offers.audience(kind, order)
        } else {
            debug!(order.id = %order.id, kind = kind.as_str(), "announcement of a closed order dropped");
            (kind.as_str().to_owned(), Vec::new())
        };
        let queued = self
            .store
            .queue_sms(Some(kind), &order.id, &offer, &recipients, Utc::now())
            .await?;
        // Logged by the one dispatcher that queued the SMS.
        if queued > 0 {
            let what = match kind {
                AnnouncementKind::Submitted if order.widen_time > order.create_time => {
                    "offered to grid"
                }
                AnnouncementKind::Escalated => "duty desk notified",
                _ => "offered to county",
            };
            info!(order.id = %order.id, offer, agents = recipients.len(), queued, "{what}");
        }
        Ok(())
    }

    /// Handles everything due now and returns how long to sleep until the
    /// next deadline, at most `MAX_SLEEP`.
    async fn round(&self) -> Result<Duration, StoreError> {
        let mut pause = MAX_SLEEP;
        for county in &self.counties {
            self.widen(county).await?;
            self.escalate(county).await?;
            self.points.settle_due(county, Utc::now()).await?;

            if let Some(next) = self.store.next_deadline(county).await? {
                let until = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                pause = pause.min(until);
            }
        }
        Ok(pause)
    }

    async fn widen(&self, county: &CountyCode) -> Result<(), StoreError> {
        loop {
            let now = Utc::now();
            let batch = self.store.widen_due(county, now, BATCH).await?;
            for order in &batch {
                let lag_ms = (now - order.widen_time).num_milliseconds();
                metrics::histogram!("daiban_widening_lag_seconds").record(lag_ms as f64 / 1000.0);
                info!(order.id = %order.id, lag_ms, "order widened");
            }
            if !batch.is_empty() {
                self.wake.notify_one();
            }
            if batch.len() < BATCH {
                return Ok(());
            }
        }
    }

    async fn escalate(&self, county: &CountyCode) -> Result<(), StoreError> {
        loop {
            let batch = self.store.escalate_due(county, Utc::now(), BATCH).await?;
            for order in &batch {
                warn!(order.id = %order.id, "order escalated to the duty desk");
            }
            if !batch.is_empty() {
                self.wake.notify_one();
            }
            if batch.len() < BATCH {
                return Ok(());
            }
        }
    }
}
