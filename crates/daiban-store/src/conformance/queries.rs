//! Cases of `open_orders` and `events`.

use chrono::{DateTime, Utc};
use daiban_domain::{GridCode, Rating};

use super::fixture::{Fixture, agent, at, create, create_claimed, ids, work_result};
use crate::{EventKind, NewOrder, Store};

pub async fn open_orders_by_grid(store: &dyn Store) {
    let f = Fixture::new();
    let own = create(store, f.order()).await;
    let other = create(
        store,
        NewOrder {
            grid: Some(f.other_grid.clone()),
            ..f.order()
        },
    )
    .await;
    let county_wide = create(store, f.county_wide_order()).await;
    let phase_ended = create(
        store,
        NewOrder {
            grid: Some(f.other_grid.clone()),
            grid_phase_until: Some(at(3)),
            ..f.order()
        },
    )
    .await;
    create_claimed(store, f.order(), &agent("A1")).await;
    let cancelled = create(
        store,
        NewOrder {
            grid: Some(f.other_grid.clone()),
            ..f.order()
        },
    )
    .await;
    store
        .cancel(&cancelled.id, "withdrawn", at(1))
        .await
        .expect("cancel");

    let open = |grid: GridCode, now: DateTime<Utc>, limit: usize| {
        let county = f.county.clone();
        async move {
            let orders = store
                .open_orders(&county, &grid, now, limit)
                .await
                .expect("open_orders");
            ids(&orders)
        }
    };

    // At 5 the grid phases of `own` and `other` run; `phase_ended`'s ended
    // at 3 although widen_due has not run.
    let expected = vec![
        own.id.clone(),
        county_wide.id.clone(),
        phase_ended.id.clone(),
    ];
    assert_eq!(
        open(f.grid.clone(), at(5), 10).await,
        expected,
        "own grid at 5"
    );
    let expected = vec![
        other.id.clone(),
        county_wide.id.clone(),
        phase_ended.id.clone(),
    ];
    assert_eq!(
        open(f.other_grid.clone(), at(5), 10).await,
        expected,
        "other grid at 5"
    );
    let expected = vec![county_wide.id.clone(), phase_ended.id.clone()];
    assert_eq!(
        open(f.third_grid.clone(), at(5), 10).await,
        expected,
        "third grid at 5"
    );

    let expected = vec![own.id.clone(), county_wide.id.clone()];
    assert_eq!(
        open(f.grid.clone(), at(5), 2).await,
        expected,
        "limit 2 keeps the oldest"
    );

    store
        .widen_due(&f.county, at(5), 10)
        .await
        .expect("widen_due");
    let expected = vec![county_wide.id.clone(), phase_ended.id.clone()];
    assert_eq!(
        open(f.third_grid.clone(), at(5), 10).await,
        expected,
        "third grid at 5 after widening"
    );

    // At 10 every grid phase has ended, widened or not.
    let expected = vec![own.id, other.id, county_wide.id, phase_ended.id];
    assert_eq!(
        open(f.third_grid.clone(), at(10), 10).await,
        expected,
        "third grid at 10"
    );
    assert!(open(f.grid.clone(), at(10), 0).await.is_empty(), "limit 0");
}

pub async fn events_in_order(store: &dyn Store) {
    let f = Fixture::new();
    let (first, second) = (agent("A1"), agent("A2"));

    let order = create(store, f.order()).await;
    store
        .claim(&order.id, &first, &f.grid, at(1))
        .await
        .expect("claim");
    store
        .release(&order.id, &first, "busy", at(2), at(40))
        .await
        .expect("release");
    store
        .claim(&order.id, &second, &f.grid, at(3))
        .await
        .expect("second claim");
    store
        .complete(&order.id, &second, work_result(), None, at(4), at(60))
        .await
        .expect("complete");
    store
        .rate(&order.id, Rating::Satisfied, "", at(5))
        .await
        .expect("rate");
    store
        .settle_rated(&order.id, at(6))
        .await
        .expect("settle_rated");

    let expected = vec![
        (EventKind::Submitted, None, at(0)),
        (EventKind::Claimed, Some(first.clone()), at(1)),
        (EventKind::Released, Some(first), at(2)),
        (EventKind::Claimed, Some(second.clone()), at(3)),
        (EventKind::Completed, Some(second.clone()), at(4)),
        (EventKind::Rated, None, at(5)),
        (EventKind::Settled, Some(second), at(5)),
    ];
    let events = store.events(&f.county, 100).await.expect("events");
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.agent.clone(), e.time))
        .collect();
    assert_eq!(
        seen, expected,
        "the events of one order's life, oldest first"
    );
    assert!(
        events.iter().all(|e| e.order == order.id),
        "every event names the order"
    );

    let latest = store.events(&f.county, 3).await.expect("events");
    let kinds: Vec<EventKind> = latest.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Completed, EventKind::Rated, EventKind::Settled],
        "limit 3 returns the latest three, oldest first"
    );

    let timed = create(store, f.order()).await;
    store
        .widen_due(&f.county, at(10), 10)
        .await
        .expect("widen_due");
    store
        .escalate_due(&f.county, at(30), 10)
        .await
        .expect("escalate_due");
    store
        .cancel(&timed.id, "withdrawn", at(31))
        .await
        .expect("cancel");
    let latest = store.events(&f.county, 4).await.expect("events");
    let seen: Vec<_> = latest
        .iter()
        .map(|e| (e.order.clone(), e.kind, e.agent.clone(), e.time))
        .collect();
    let expected = vec![
        (timed.id.clone(), EventKind::Submitted, None, at(0)),
        (timed.id.clone(), EventKind::Widened, None, at(10)),
        (timed.id.clone(), EventKind::Escalated, None, at(30)),
        (timed.id, EventKind::Cancelled, None, at(31)),
    ];
    assert_eq!(seen, expected, "timer and cancel events");
}
