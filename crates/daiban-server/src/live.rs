//! Live offers: in each process, one reader per county follows the store's
//! event log and fans the changes agents care about out to the
//! `WatchOpenOrders` streams of that process.
//!
//! An idle stream costs a broadcast receiver and a parked task; the reader
//! loads each changed order once per process, and only while someone
//! watches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use daiban_domain::{Agent, AgentId, CountyCode, WorkOrder};
use daiban_proto::v1 as pb;
use daiban_proto::v1::open_order_change::Kind;
use daiban_store::{EventCursor, EventKind, Store};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use crate::convert::{self, Viewer};

/// Changes buffered per county for slow streams. A stream that falls
/// further behind is sent RESYNC.
const CHANNEL_CAPACITY: usize = 1024;

/// Maximum wait of one read of the event log.
const READ_WAIT: Duration = Duration::from_secs(2);

/// Events read per call.
const READ_BATCH: usize = 500;

/// Pause after the store failed, before reading again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A change of one county's open orders, as the reader saw it.
#[derive(Debug, Clone)]
pub enum Change {
    Order {
        kind: EventKind,
        /// The order as loaded after the event, which may be later.
        order: Arc<WorkOrder>,
        /// The agent who acted, for releases.
        actor: Option<AgentId>,
    },
    /// The reader could not follow the log for a while and may have missed
    /// changes.
    Resync,
}

pub struct Live {
    channels: HashMap<CountyCode, broadcast::Sender<Change>>,
}

impl Live {
    pub fn new(counties: &[CountyCode]) -> Self {
        let channels = counties
            .iter()
            .map(|county| (county.clone(), broadcast::channel(CHANNEL_CAPACITY).0))
            .collect();
        Self { channels }
    }

    pub fn subscribe(&self, county: &CountyCode) -> Option<broadcast::Receiver<Change>> {
        self.channels.get(county).map(broadcast::Sender::subscribe)
    }

    /// Follows every county's event log until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, shutdown: watch::Receiver<bool>) {
        let mut readers = tokio::task::JoinSet::new();
        for (county, sender) in &self.channels {
            readers.spawn(follow(
                store.clone(),
                county.clone(),
                sender.clone(),
                shutdown.clone(),
            ));
        }
        while readers.join_next().await.is_some() {}
    }
}

async fn follow(
    store: Arc<dyn Store>,
    county: CountyCode,
    sender: broadcast::Sender<Change>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut cursor: Option<EventCursor> = None;
    let mut failing = false;
    while !*shutdown.borrow() {
        let read = tokio::select! {
            read = store.read_events(&county, cursor.as_ref(), READ_WAIT, READ_BATCH) => read,
            _ = shutdown.changed() => break,
        };
        let batch = match read {
            Ok(batch) => batch,
            Err(err) => {
                if !failing {
                    warn!(county = %county, error = %err, "reading order events failed; live offers paused");
                    failing = true;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        if failing {
            info!(county = %county, "reading order events recovered; streams sent RESYNC");
            failing = false;
            let _ = sender.send(Change::Resync);
        }
        cursor = Some(batch.cursor);
        if sender.receiver_count() == 0 {
            continue;
        }
        for event in batch.events {
            if !matches!(
                event.kind,
                EventKind::Submitted
                    | EventKind::Widened
                    | EventKind::Released
                    | EventKind::Claimed
                    | EventKind::Cancelled
            ) {
                continue;
            }
            match store.order(&event.order).await {
                Ok(order) => {
                    let _ = sender.send(Change::Order {
                        kind: event.kind,
                        order: Arc::new(order),
                        actor: event.agent,
                    });
                }
                Err(err) => {
                    warn!(order.id = %event.order, error = %err, "loading a changed order failed; streams sent RESYNC");
                    let _ = sender.send(Change::Resync);
                }
            }
        }
    }
}

/// Returns the message `agent`'s stream gets for `change`, or `None` when
/// the change does not concern the agent.
pub fn view(agent: &Agent, change: &Change) -> Option<pb::OpenOrderChange> {
    let (kind, order, actor) = match change {
        Change::Resync => return Some(message(Kind::Resync, "", None)),
        Change::Order { kind, order, actor } => (*kind, order, actor),
    };
    let own_grid = order.grid.as_ref() == Some(&agent.grid);
    let offer = |kind| {
        order
            .state
            .is_open()
            .then(|| message(kind, &order.id.to_string(), Some(order)))
    };
    match kind {
        EventKind::Submitted => {
            let grid_phase = order.widen_time > order.create_time;
            if grid_phase && !own_grid {
                None
            } else {
                offer(Kind::Submitted)
            }
        }
        EventKind::Widened => offer(Kind::Widened),
        EventKind::Released if actor.as_ref() == Some(&agent.id) => None,
        EventKind::Released => offer(Kind::Released),
        // A withdrawal matters to those who saw the offer: the grid's
        // agents, or everyone once it was county-wide.
        EventKind::Claimed | EventKind::Cancelled if !order.widened && !own_grid => None,
        EventKind::Claimed => Some(message(Kind::Claimed, &order.id.to_string(), None)),
        EventKind::Cancelled => Some(message(Kind::Cancelled, &order.id.to_string(), None)),
        _ => None,
    }
}

pub fn message(kind: Kind, order_id: &str, order: Option<&WorkOrder>) -> pb::OpenOrderChange {
    pb::OpenOrderChange {
        kind: kind as i32,
        order_id: order_id.to_owned(),
        work_order: order.map(|o| convert::work_order(o, Viewer::Masked)),
    }
}
