//! Widening lag: how long after the end of its grid phase an order is
//! widened by the service's dispatcher, read from the county's event log
//! through `Store::read_events`.
//!
//! Two lags are kept per order. The observed lag runs from the order's
//! `widen_time` to the moment this process read its `widened` event, so it
//! includes the script and the read, and is never less than the true lag.
//! The event lag runs to the event's own time, the `now` that the
//! dispatcher passed to `widen_due`, which the script compares with the
//! deadline. An order counts as early when either lag is negative.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use daiban_domain::{CountyCode, OrderId};
use daiban_store::{EventCursor, EventKind, NewOrder, RedisStore, Store, to_millis};

use super::orders::submit_all;
use super::stats::percentile;

/// Orders whose deadlines fall due during the measurement.
pub const SAMPLE: usize = 2_000;

/// Time from the start of the sample's submission to its first deadline.
/// Submitting the whole sample takes well under a second, and the bench
/// fails when it takes longer than this.
const LEAD: Duration = Duration::from_secs(3);

/// The sample's deadlines are spread evenly over this time.
pub const SPREAD: Duration = Duration::from_secs(3);

/// How long after the last deadline an order may still be widened before
/// it counts as missing.
const GRACE: Duration = Duration::from_secs(10);

/// Maximum wait of one read of the event log.
const READ_WAIT: Duration = Duration::from_millis(200);

/// The lags of one sample, in milliseconds, each sorted ascending.
#[derive(Debug, Clone)]
pub struct Lag {
    pub sample: usize,
    pub observed_ms: Vec<f64>,
    pub event_ms: Vec<f64>,
    /// Orders widened before their deadline, by either lag.
    pub early: usize,
    /// Orders not widened within the grace time after the last deadline.
    pub missing: usize,
}

impl Lag {
    pub fn observed(&self, p: f64) -> f64 {
        percentile(&self.observed_ms, p).unwrap_or(f64::NAN)
    }

    pub fn event(&self, p: f64) -> f64 {
        percentile(&self.event_ms, p).unwrap_or(f64::NAN)
    }

    pub fn observed_min(&self) -> f64 {
        self.observed_ms.first().copied().unwrap_or(f64::NAN)
    }
}

/// Widened events read so far: each order's event time and the time it was
/// read.
type Seen = Arc<Mutex<HashMap<OrderId, (DateTime<Utc>, DateTime<Utc>)>>>;

/// Submits `SAMPLE` orders in their grid phase whose deadlines fall due
/// over the next seconds, built by `order(i, widen_time)`, and measures how
/// late the running service widens each.
///
/// # Panics
///
/// When the store fails, or the sample took longer than `LEAD` to submit,
/// which would put some deadlines before their orders existed.
pub async fn measure_lag<F>(store: &RedisStore, county: &CountyCode, order: F) -> Lag
where
    F: Fn(usize, DateTime<Utc>) -> NewOrder + Send + Sync + 'static,
{
    let start = store
        .read_events(county, None, Duration::ZERO, 1)
        .await
        .unwrap_or_else(|err| panic!("failed to find the end of the event log: {err}"))
        .cursor;
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_widenings(
        store.clone(),
        county.clone(),
        start,
        seen.clone(),
        stop.clone(),
    ));

    let first_deadline = to_millis(Utc::now() + LEAD);
    let deadlines: Vec<DateTime<Utc>> = (0..SAMPLE)
        .map(|i| {
            let offset = SPREAD.as_millis() as i64 * i as i64 / SAMPLE as i64;
            first_deadline + chrono::Duration::milliseconds(offset)
        })
        .collect();
    let shared_deadlines = Arc::new(deadlines.clone());
    let ids = submit_all(store, SAMPLE, 32, LEAD, move |i| {
        order(i, shared_deadlines[i])
    })
    .await;
    assert!(
        Utc::now() < first_deadline,
        "the lag sample of {SAMPLE} orders took longer than {LEAD:?} to submit"
    );

    let last_deadline = deadlines.last().copied().unwrap_or(first_deadline);
    let give_up = last_deadline + chrono::Duration::from_std(GRACE).unwrap_or_default();
    loop {
        let all_seen = {
            let seen = seen.lock().expect("seen lock");
            ids.iter().all(|id| seen.contains_key(id))
        };
        if all_seen || Utc::now() > give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.expect("the event watcher panicked");

    let seen = seen.lock().expect("seen lock");
    let mut lag = Lag {
        sample: SAMPLE,
        observed_ms: Vec::with_capacity(SAMPLE),
        event_ms: Vec::with_capacity(SAMPLE),
        early: 0,
        missing: 0,
    };
    for (id, deadline) in ids.iter().zip(&deadlines) {
        let Some((event_time, read_time)) = seen.get(id) else {
            lag.missing += 1;
            continue;
        };
        let observed = millis_between(*deadline, *read_time);
        let event = millis_between(*deadline, *event_time);
        if observed < 0.0 || event < 0.0 {
            lag.early += 1;
        }
        lag.observed_ms.push(observed);
        lag.event_ms.push(event);
    }
    lag.observed_ms.sort_by(f64::total_cmp);
    lag.event_ms.sort_by(f64::total_cmp);
    lag
}

/// Reads the event log from `cursor` until `stop`, keeping each `widened`
/// event with the time it was read.
async fn watch_widenings(
    store: RedisStore,
    county: CountyCode,
    mut cursor: EventCursor,
    seen: Seen,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let batch = store
            .read_events(&county, Some(&cursor), READ_WAIT, 1000)
            .await
            .unwrap_or_else(|err| panic!("failed to read the event log: {err}"));
        let read_time = Utc::now();
        let mut seen = seen.lock().expect("seen lock");
        for event in batch.events {
            if event.kind == EventKind::Widened {
                seen.insert(event.order, (event.time, read_time));
            }
        }
        cursor = batch.cursor;
    }
}

fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from)
        .num_microseconds()
        .map_or(f64::NAN, |us| us as f64 / 1000.0)
}
