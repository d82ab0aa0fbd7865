//! Cases of `widen_due`, `escalate_due` and `next_deadline`.

use chrono::Duration;
use daiban_domain::{GridCode, OrderId, OrderState};

use super::fixture::{
    Fixture, agent, at, create, create_claimed, ids, join_all, sorted_ids, work_result,
};
use crate::{EventKind, NewOrder, Store};

pub async fn widen_due_takes_due_orders_once(store: &dyn Store) {
    let f = Fixture::new();
    let until = |minutes| NewOrder {
        grid_phase_until: Some(at(minutes)),
        ..f.order()
    };
    let first = create(store, until(10)).await;
    let second = create(store, until(11)).await;
    let third = create(store, until(12)).await;
    create(store, f.county_wide_order()).await;
    let claimed = create_claimed(store, until(10), &agent("A1")).await;
    let cancelled = create(store, until(10)).await;
    store
        .cancel(&cancelled.id, "withdrawn", at(1))
        .await
        .expect("cancel");

    let due = store
        .widen_due(&f.county, at(10) - Duration::milliseconds(1), 10)
        .await
        .expect("widen_due");
    assert!(
        due.is_empty(),
        "nothing widens before its deadline: {:?}",
        ids(&due)
    );

    let due = store
        .widen_due(&f.county, at(10), 10)
        .await
        .expect("widen_due");
    assert_eq!(
        ids(&due),
        vec![first.id.clone()],
        "the order due at its deadline widens"
    );
    assert_eq!(
        due[0].state,
        OrderState::OfferedToCounty,
        "state of a widened order"
    );
    assert!(due[0].widened, "a widened order is flagged");
    let stored = store.order(&first.id).await.expect("order");
    assert_eq!(
        stored, due[0],
        "the stored order equals the one widen_due returned"
    );

    let again = store
        .widen_due(&f.county, at(10), 10)
        .await
        .expect("widen_due");
    assert!(again.is_empty(), "an order widens once: {:?}", ids(&again));

    let due = store
        .widen_due(&f.county, at(20), 1)
        .await
        .expect("widen_due");
    assert_eq!(
        ids(&due),
        vec![second.id.clone()],
        "limit 1 takes the earliest deadline"
    );
    let due = store
        .widen_due(&f.county, at(20), 1)
        .await
        .expect("widen_due");
    assert_eq!(
        ids(&due),
        vec![third.id.clone()],
        "the next call takes the next one"
    );
    let due = store
        .widen_due(&f.county, at(20), 10)
        .await
        .expect("widen_due");
    assert!(
        due.is_empty(),
        "claimed and cancelled orders never widen: {:?}",
        ids(&due)
    );

    let stored = store.order(&claimed.id).await.expect("order");
    assert_eq!(
        stored.state,
        OrderState::Claimed,
        "a claimed order stays claimed"
    );
    let events = store.events(&f.county, 100).await.expect("events");
    let widened = events
        .iter()
        .filter(|e| e.kind == EventKind::Widened)
        .count();
    assert_eq!(widened, 3, "one widened event per widened order");
}

pub async fn widen_due_concurrently_once(store: &dyn Store) {
    const ORDERS: usize = 20;
    const WORKERS: usize = 5;
    let f = Fixture::new();
    let mut submitted = Vec::new();
    for _ in 0..ORDERS {
        submitted.push(create(store, f.order()).await.id);
    }

    let county = &f.county;
    let workers = (0..WORKERS).map(|_| async move {
        let mut widened = Vec::new();
        loop {
            let due = store.widen_due(county, at(11), 3).await.expect("widen_due");
            if due.is_empty() {
                return widened;
            }
            widened.extend(ids(&due));
        }
    });
    let mut widened: Vec<OrderId> = join_all(workers.collect())
        .await
        .into_iter()
        .flatten()
        .collect();
    widened.sort();
    submitted.sort();
    assert_eq!(
        widened, submitted,
        "each due order is widened by exactly one call"
    );
}

pub async fn escalate_due_takes_unclaimed_once(store: &dyn Store) {
    let f = Fixture::new();
    let in_grid_phase = create(store, f.order()).await;
    let county_wide = create(store, f.county_wide_order()).await;
    create_claimed(store, f.order(), &agent("A1")).await;
    let later = create(
        store,
        NewOrder {
            escalate_at: at(40),
            ..f.order()
        },
    )
    .await;

    let due = store
        .escalate_due(&f.county, at(29), 10)
        .await
        .expect("escalate_due");
    assert!(due.is_empty(), "nothing escalates early: {:?}", ids(&due));

    let mut due = store
        .escalate_due(&f.county, at(30), 10)
        .await
        .expect("escalate_due");
    assert_eq!(
        ids(&due),
        vec![county_wide.id.clone()],
        "an order in its grid phase escalates only once widened"
    );
    let widened = store
        .widen_due(&f.county, at(10), 10)
        .await
        .expect("widen_due");
    assert_eq!(widened.len(), 2, "both orders in their grid phase widen");
    due.extend(
        store
            .escalate_due(&f.county, at(30), 10)
            .await
            .expect("escalate_due"),
    );
    let mut expected = vec![in_grid_phase.id.clone(), county_wide.id.clone()];
    expected.sort();
    assert_eq!(
        sorted_ids(&due),
        expected,
        "the unclaimed orders due at 30 escalate"
    );
    for order in &due {
        assert!(order.escalated, "{}: escalated flag", order.id);
        assert!(
            order.state.is_open(),
            "{}: escalation leaves the order open",
            order.id
        );
        let stored = store.order(&order.id).await.expect("order");
        assert_eq!(
            &stored, order,
            "the stored order equals the one escalate_due returned"
        );
    }

    let again = store
        .escalate_due(&f.county, at(30), 10)
        .await
        .expect("escalate_due");
    assert!(
        again.is_empty(),
        "an order escalates once: {:?}",
        ids(&again)
    );
    let due = store
        .escalate_due(&f.county, at(100), 10)
        .await
        .expect("escalate_due");
    assert_eq!(
        ids(&due),
        vec![later.id],
        "only the later order escalates, never the claimed one"
    );
}

pub async fn next_deadline_tracks_schedules(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let county = &f.county;
    let next = |what: &'static str| async move {
        store
            .next_deadline(county)
            .await
            .unwrap_or_else(|err| panic!("next_deadline {what}: {err}"))
    };

    assert_eq!(
        next("of an empty county").await,
        None,
        "an empty county has no deadline"
    );
    let order = create(store, f.order()).await;
    assert_eq!(
        next("after submit").await,
        Some(at(10)),
        "the grid phase ends first"
    );
    store
        .widen_due(&f.county, at(10), 10)
        .await
        .expect("widen_due");
    assert_eq!(
        next("after widening").await,
        Some(at(30)),
        "then the escalation"
    );
    store
        .claim(&order.id, &holder, &f.grid, at(11))
        .await
        .expect("claim");
    assert_eq!(
        next("after claim").await,
        None,
        "a claimed order has no deadline"
    );
    store
        .complete(&order.id, &holder, work_result(), None, at(12), at(60))
        .await
        .expect("complete");
    assert_eq!(
        next("after complete").await,
        Some(at(60)),
        "the rating window ends"
    );
    store
        .settle_due(&f.county, at(60), 10)
        .await
        .expect("settle_due");
    assert_eq!(
        next("after settling").await,
        None,
        "a settled order has no deadline"
    );
}

/// Orders of two grids whose grid phases end interleaved: the schedules
/// keep one order across grids.
pub async fn grid_phases_interleave_across_grids(store: &dyn Store) {
    let f = Fixture::new();
    let until = |minute, grid: &GridCode| NewOrder {
        grid_phase_until: Some(at(minute)),
        grid: Some(grid.clone()),
        ..f.order()
    };
    let a = create(store, until(7, &f.grid)).await;
    let b = create(store, until(3, &f.other_grid)).await;
    let c = create(store, until(5, &f.grid)).await;
    let d = create(store, until(9, &f.other_grid)).await;

    let board = store.open_board(&f.county, 3).await.expect("open_board");
    assert_eq!(
        ids(&board),
        vec![b.id.clone(), c.id.clone(), a.id.clone()],
        "the three soonest to widen, across grids"
    );
    let next = store.next_deadline(&f.county).await.expect("next_deadline");
    assert_eq!(next, Some(at(3)), "the soonest end of any grid phase");

    store
        .claim(&b.id, &agent("B1"), &f.other_grid, at(1))
        .await
        .expect("claim in the grid phase");
    let next = store.next_deadline(&f.county).await.expect("next_deadline");
    assert_eq!(
        next,
        Some(at(5)),
        "a claim takes its order off the schedule"
    );

    let first = store
        .widen_due(&f.county, at(8), 1)
        .await
        .expect("widen_due");
    assert_eq!(
        ids(&first),
        vec![c.id.clone()],
        "the limit keeps the soonest"
    );
    let rest = store
        .widen_due(&f.county, at(8), 10)
        .await
        .expect("widen_due");
    assert_eq!(ids(&rest), vec![a.id.clone()], "then the next one due");
    let next = store.next_deadline(&f.county).await.expect("next_deadline");
    assert_eq!(next, Some(at(9)), "the other grid's order is next");

    let listed = store
        .open_orders(&f.county, &f.grid, at(10), 10)
        .await
        .expect("open_orders");
    assert_eq!(
        ids(&listed),
        vec![a.id, c.id, d.id],
        "widened orders, and another grid's order past its grid phase"
    );
}
