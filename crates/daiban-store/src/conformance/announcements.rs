//! Cases of the outbox of announcements and of reading the event log.

use std::collections::HashMap;
use std::time::Duration;

use super::fixture::{Fixture, agent, at, create, create_claimed, join_all};
use crate::{AnnouncementKind, EventKind, Store};

const LEASE: Duration = Duration::from_secs(2);

/// Takes the due announcements at `minutes` and returns them as (kind,
/// sequence) pairs, sorted.
async fn take(store: &dyn Store, fixture: &Fixture, minutes: i64) -> Vec<(AnnouncementKind, u64)> {
    let mut taken: Vec<_> = store
        .take_announcements(&fixture.county, at(minutes), LEASE, 100)
        .await
        .expect("announcements can be taken")
        .into_iter()
        .map(|a| (a.kind, a.order.id.sequence()))
        .collect();
    taken.sort();
    taken
}

pub async fn announcements_follow_state_changes(store: &dyn Store) {
    let fixture = Fixture::new();
    let order = create(store, fixture.order()).await;
    let seq = order.id.sequence();
    assert_eq!(
        take(store, &fixture, 0).await,
        [(AnnouncementKind::Submitted, seq)],
        "submit owes an announcement"
    );
    assert_eq!(
        take(store, &fixture, 0).await,
        [],
        "a taken announcement is leased"
    );

    // Two seconds later the lease ran out and the announcement is due again.
    let retaken = store
        .take_announcements(
            &fixture.county,
            at(0) + chrono::Duration::seconds(2),
            LEASE,
            100,
        )
        .await
        .expect("announcements can be taken");
    assert_eq!(
        retaken.len(),
        1,
        "an unacknowledged announcement is taken again after its lease"
    );
    assert_eq!(
        retaken[0].order, order,
        "the announcement carries the order"
    );
    store
        .ack_announcement(AnnouncementKind::Submitted, &order.id)
        .await
        .expect("ack succeeds");
    assert_eq!(
        take(store, &fixture, 60).await,
        [],
        "an acknowledged announcement is gone"
    );

    store
        .widen_due(&fixture.county, at(10), 10)
        .await
        .expect("widen succeeds");
    assert_eq!(
        take(store, &fixture, 10).await,
        [(AnnouncementKind::Widened, seq)]
    );
    store
        .ack_announcement(AnnouncementKind::Widened, &order.id)
        .await
        .expect("ack succeeds");

    store
        .escalate_due(&fixture.county, at(30), 10)
        .await
        .expect("escalate succeeds");
    assert_eq!(
        take(store, &fixture, 30).await,
        [(AnnouncementKind::Escalated, seq)]
    );
    store
        .ack_announcement(AnnouncementKind::Escalated, &order.id)
        .await
        .expect("ack succeeds");

    let holder = agent("A1");
    store
        .claim(&order.id, &holder, &fixture.other_grid, at(31))
        .await
        .expect("claim succeeds");
    assert_eq!(
        take(store, &fixture, 31).await,
        [],
        "a claim owes no announcement"
    );
    store
        .release(&order.id, &holder, "有事", at(32), at(62))
        .await
        .expect("release succeeds");
    let released = store
        .take_announcements(&fixture.county, at(32), LEASE, 100)
        .await
        .expect("announcements can be taken");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].kind, AnnouncementKind::Released);
    assert_eq!(
        released[0].order.released_by,
        [holder],
        "the announcement names who released it"
    );
}

pub async fn announcements_taken_once_concurrently(store: &dyn Store) {
    let fixture = Fixture::new();
    let mut sequences = Vec::new();
    for _ in 0..30 {
        sequences.push(create(store, fixture.order()).await.id.sequence());
    }
    let takers = (0..6).map(|_| store.take_announcements(&fixture.county, at(0), LEASE, 7));
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for result in join_all(takers.collect()).await {
        for announcement in result.expect("announcements can be taken") {
            *counts.entry(announcement.order.id.sequence()).or_default() += 1;
        }
    }
    // Six takers of at most seven each take all thirty, each once.
    for seq in sequences {
        assert_eq!(
            counts.get(&seq),
            Some(&1),
            "order {seq} announced {:?} times",
            counts.get(&seq)
        );
    }
}

pub async fn read_events_follows_log(store: &dyn Store) {
    let fixture = Fixture::new();
    create(store, fixture.order()).await;
    let first = store
        .read_events(&fixture.county, None, Duration::ZERO, 100)
        .await
        .expect("events can be read");
    assert!(
        first.events.is_empty(),
        "reading from the end returns no past event: {:?}",
        first.events
    );

    let claimed = create_claimed(store, fixture.order(), &agent("A1")).await;
    let batch = store
        .read_events(
            &fixture.county,
            Some(&first.cursor),
            Duration::from_millis(500),
            100,
        )
        .await
        .expect("events can be read");
    let kinds: Vec<_> = batch
        .events
        .iter()
        .map(|e| (e.kind, e.order.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventKind::Submitted, claimed.id.clone()),
            (EventKind::Claimed, claimed.id.clone())
        ],
        "the events after the cursor, in order"
    );

    let started = std::time::Instant::now();
    let quiet = store
        .read_events(
            &fixture.county,
            Some(&batch.cursor),
            Duration::from_millis(200),
            100,
        )
        .await
        .expect("events can be read");
    assert!(
        quiet.events.is_empty(),
        "no event after the last one: {:?}",
        quiet.events
    );
    assert_eq!(quiet.cursor, batch.cursor, "an empty read keeps the cursor");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "an empty read waits"
    );

    // A read that is waiting returns as soon as an event arrives.
    let reader = store.read_events(
        &fixture.county,
        Some(&batch.cursor),
        Duration::from_secs(2),
        100,
    );
    let writer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        store
            .cancel(&claimed.id, "", at(5))
            .await
            .expect("cancel succeeds");
    };
    let (read, ()) = tokio::join!(reader, writer);
    let kinds: Vec<_> = read
        .expect("events can be read")
        .events
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Cancelled]);
}
