//! Cases of `claim` and `release`, alone and concurrent.

use chrono::Duration;
use daiban_domain::{AgentId, OrderState};

use super::fixture::{Fixture, agent, at, create, create_claimed, create_completed, ids, join_all};
use crate::{EventKind, Store, StoreError, action};

pub async fn grid_agent_claims_in_grid_phase(store: &dyn Store) {
    let f = Fixture::new();
    let order = create(store, f.order()).await;
    let holder = agent("A1");

    let claimed = store
        .claim(&order.id, &holder, &f.grid, at(1))
        .await
        .expect("the grid's agent claims in the grid phase");
    assert_eq!(claimed.state, OrderState::Claimed, "state");
    assert_eq!(claimed.agent, Some(holder.clone()), "agent");
    assert_eq!(claimed.claim_time, Some(at(1)), "claim_time");

    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(
        stored, claimed,
        "the stored order equals the one claim returned"
    );

    let open = store
        .open_orders(&f.county, &f.grid, at(1), 10)
        .await
        .expect("open_orders");
    assert!(
        open.is_empty(),
        "a claimed order is not open: {:?}",
        ids(&open)
    );
    let next = store.next_deadline(&f.county).await.expect("next_deadline");
    assert_eq!(next, None, "a claimed order neither widens nor escalates");
}

pub async fn other_grid_is_reserved_in_grid_phase(store: &dyn Store) {
    let f = Fixture::new();
    let order = create(store, f.order()).await;
    let outsider = agent("B1");

    for now in [at(1), at(10) - Duration::milliseconds(1)] {
        match store.claim(&order.id, &outsider, &f.other_grid, now).await {
            Err(StoreError::ReservedForGrid {
                order: id,
                grid,
                until,
            }) => {
                assert_eq!(id, order.id, "ReservedForGrid names the order");
                assert_eq!(grid, f.grid, "ReservedForGrid names the order's grid");
                assert_eq!(
                    until,
                    at(10),
                    "ReservedForGrid names the end of the grid phase"
                );
            }
            other => {
                panic!("claim from another grid at {now}: expected ReservedForGrid, got {other:?}")
            }
        }
    }

    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(stored, order, "a refused claim leaves the order unchanged");
}

pub async fn other_grid_claims_after_grid_phase(store: &dyn Store) {
    let f = Fixture::new();
    let order = create(store, f.order()).await;
    let outsider = agent("B1");

    // widen_due has not run: the grid phase ends by widen_time alone.
    let claimed = store
        .claim(&order.id, &outsider, &f.other_grid, at(10))
        .await
        .expect("another grid's agent claims once the grid phase ended");
    assert_eq!(claimed.state, OrderState::Claimed, "state");
    assert_eq!(claimed.agent, Some(outsider), "agent");

    let widened = store
        .widen_due(&f.county, at(11), 10)
        .await
        .expect("widen_due");
    assert!(
        widened.is_empty(),
        "a claimed order is not widened: {:?}",
        ids(&widened)
    );
}

pub async fn second_claim_is_already_claimed(store: &dyn Store) {
    let f = Fixture::new();
    let order = create(store, f.order()).await;
    let (first, second) = (agent("A1"), agent("A2"));

    let claimed = store
        .claim(&order.id, &first, &f.grid, at(1))
        .await
        .expect("first claim");
    assert_err!(
        store.claim(&order.id, &second, &f.grid, at(2)).await,
        StoreError::AlreadyClaimed { .. },
        "claim by a second agent"
    );
    assert_err!(
        store.claim(&order.id, &second, &f.other_grid, at(20)).await,
        StoreError::AlreadyClaimed { .. },
        "claim by another grid's agent after the grid phase"
    );

    let again = store
        .claim(&order.id, &first, &f.grid, at(3))
        .await
        .expect("a repeated claim by the holder succeeds");
    assert_eq!(
        again, claimed,
        "a repeated claim returns the order unchanged"
    );

    let events = store.events(&f.county, 100).await.expect("events");
    let claims = events
        .iter()
        .filter(|e| e.kind == EventKind::Claimed)
        .count();
    assert_eq!(claims, 1, "only the first claim is an event");
}

pub async fn claim_of_cancelled_conflicts(store: &dyn Store) {
    let f = Fixture::new();
    let order = create(store, f.order()).await;
    store
        .cancel(&order.id, "withdrawn", at(1))
        .await
        .expect("cancel");

    assert_err!(
        store.claim(&order.id, &agent("A1"), &f.grid, at(2)).await,
        StoreError::StateConflict {
            state: OrderState::Cancelled,
            action: action::CLAIMED,
            ..
        },
        "claim of a cancelled order"
    );
}

pub async fn claim_of_own_completed_conflicts(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let order = create_completed(store, f.order(), &holder, at(60)).await;

    assert_err!(
        store.claim(&order.id, &holder, &f.grid, at(3)).await,
        StoreError::StateConflict {
            state: OrderState::Completed,
            action: action::CLAIMED,
            ..
        },
        "claim by the agent who completed the order"
    );
    assert_err!(
        store.claim(&order.id, &agent("A2"), &f.grid, at(3)).await,
        StoreError::AlreadyClaimed { .. },
        "claim of a completed order by another agent"
    );
}

pub async fn release_offers_county_wide(store: &dyn Store) {
    let f = Fixture::new();
    let (holder, other, outsider) = (agent("A1"), agent("A2"), agent("B1"));
    let order = create(store, f.order()).await;

    assert_err!(
        store
            .release(&order.id, &holder, "busy", at(1), at(40))
            .await,
        StoreError::StateConflict {
            state: OrderState::OfferedToGrid,
            action: action::RELEASED,
            ..
        },
        "release of an unclaimed order"
    );

    store
        .claim(&order.id, &holder, &f.grid, at(1))
        .await
        .expect("claim");
    match store
        .release(&order.id, &other, "busy", at(2), at(40))
        .await
    {
        Err(StoreError::NotHolder { agent: named, .. }) => {
            assert_eq!(named, other, "NotHolder names the agent who tried");
        }
        result => panic!("release by another agent: expected NotHolder, got {result:?}"),
    }

    let released = store
        .release(&order.id, &holder, "busy", at(2), at(40))
        .await
        .expect("the holder releases");
    assert_eq!(
        released.state,
        OrderState::OfferedToCounty,
        "state after release"
    );
    assert!(released.widened, "a released order is widened");
    assert_eq!(released.agent, None, "agent after release");
    assert_eq!(released.claim_time, None, "claim_time after release");
    assert_eq!(released.released_by, vec![holder.clone()], "released_by");
    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(
        stored, released,
        "the stored order equals the one release returned"
    );

    let open = store
        .open_orders(&f.county, &f.third_grid, at(3), 10)
        .await
        .expect("open_orders");
    assert_eq!(
        ids(&open),
        vec![order.id.clone()],
        "a released order is open county-wide"
    );

    // Still before widen_time, but the order is county-wide now.
    store
        .claim(&order.id, &outsider, &f.other_grid, at(3))
        .await
        .expect("another grid's agent claims a released order");
    store
        .release(&order.id, &outsider, "busy", at(4), at(40))
        .await
        .expect("second release");
    store
        .claim(&order.id, &holder, &f.grid, at(5))
        .await
        .expect("the first holder claims again");
    let released = store
        .release(&order.id, &holder, "busy", at(6), at(40))
        .await
        .expect("third release");
    assert_eq!(
        released.released_by,
        vec![holder, outsider],
        "released_by lists each agent once, in order"
    );
}

pub async fn release_reschedules_escalation(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");

    let order = create_claimed(store, f.order(), &holder).await;
    store
        .release(&order.id, &holder, "busy", at(5), at(20))
        .await
        .expect("release");
    let due = store
        .escalate_due(&f.county, at(19), 10)
        .await
        .expect("escalate_due");
    assert!(
        due.is_empty(),
        "nothing escalates before the new time: {:?}",
        ids(&due)
    );
    let due = store
        .escalate_due(&f.county, at(20), 10)
        .await
        .expect("escalate_due");
    assert_eq!(
        ids(&due),
        vec![order.id.clone()],
        "a released order escalates at escalate_at"
    );
    assert!(due[0].escalated, "the returned order is escalated");

    // An order that escalated before its claim does not escalate again.
    let order = create(store, f.order()).await;
    store
        .widen_due(&f.county, at(10), 10)
        .await
        .expect("widen_due");
    let due = store
        .escalate_due(&f.county, at(30), 10)
        .await
        .expect("escalate_due");
    assert_eq!(
        ids(&due),
        vec![order.id.clone()],
        "the unclaimed order escalates"
    );
    store
        .claim(&order.id, &holder, &f.grid, at(31))
        .await
        .expect("claim");
    let released = store
        .release(&order.id, &holder, "busy", at(32), at(40))
        .await
        .expect("release");
    assert!(released.escalated, "a release keeps the escalated flag");
    let due = store
        .escalate_due(&f.county, at(50), 10)
        .await
        .expect("escalate_due");
    assert!(
        due.is_empty(),
        "an escalated order escalates once: {:?}",
        ids(&due)
    );
}

pub async fn concurrent_claims_have_one_winner(store: &dyn Store) {
    const AGENTS: usize = 50;
    let f = Fixture::new();
    let order = create(store, f.county_wide_order()).await;

    let agents: Vec<AgentId> = (0..AGENTS).map(|i| agent(&format!("C{i:02}"))).collect();
    let claims = agents.iter().map(|claimer| {
        let (id, grid) = (&order.id, &f.grid);
        async move { (claimer, store.claim(id, claimer, grid, at(1)).await) }
    });
    let results = join_all(claims.collect()).await;

    let mut winners = Vec::new();
    let mut refused = 0;
    for (claimer, result) in results {
        match result {
            Ok(claimed) => {
                assert_eq!(
                    claimed.agent.as_ref(),
                    Some(claimer),
                    "the winner holds the order"
                );
                winners.push(claimer.clone());
            }
            Err(StoreError::AlreadyClaimed { .. }) => refused += 1,
            Err(err) => panic!("claim by {claimer}: expected Ok or AlreadyClaimed, got {err}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(refused, AGENTS - 1, "every other claim is AlreadyClaimed");

    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(
        stored.agent,
        Some(winners[0].clone()),
        "the stored holder is the winner"
    );
    let events = store.events(&f.county, 100).await.expect("events");
    let claims = events
        .iter()
        .filter(|e| e.kind == EventKind::Claimed)
        .count();
    assert_eq!(claims, 1, "one claimed event");
}
