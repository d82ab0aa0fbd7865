//! Cases of `submit`, `order`, `complete` and `cancel`.

use chrono::{Duration, TimeZone, Utc};
use daiban_domain::{MatterClass, OrderId, OrderState, Rating, claim_code_for};

use super::fixture::{
    Fixture, agent, at, create, create_claimed, create_completed, ids, join_all, matter,
    work_result,
};
use crate::{EventKind, NewOrder, Store, StoreError, Submitted, action};

pub async fn submit_creates_orders(store: &dyn Store) {
    let f = Fixture::new();
    let new = f.order();
    let first = create(store, new.clone()).await;

    assert_eq!(
        first.id,
        OrderId::new(f.county.clone(), 1),
        "first order's id"
    );
    assert_eq!(
        first.number, "20261123-0001",
        "number: UTC+8 date and daily sequence"
    );
    assert_eq!(
        first.claim_code,
        claim_code_for(1),
        "claim code of sequence 1"
    );
    assert_eq!(
        first.state,
        OrderState::OfferedToGrid,
        "state with a grid phase"
    );
    assert!(!first.widened, "an order in its grid phase is not widened");
    assert!(!first.escalated, "a new order is not escalated");
    assert_eq!(
        first.widen_time,
        at(10),
        "widen_time is the end of the grid phase"
    );
    assert_eq!(first.create_time, at(0), "create_time");
    assert_eq!(first.county, f.county, "county");
    assert_eq!(first.grid, new.grid, "grid");
    assert_eq!(first.matter, new.matter, "matter");
    assert_eq!(first.request_text, new.request_text, "request_text");
    assert_eq!(first.applicant, new.applicant, "applicant");
    assert_eq!(first.channel, new.channel, "channel");
    assert_eq!(first.agent, None, "agent of a new order");
    assert!(first.released_by.is_empty(), "released_by of a new order");
    assert_eq!(first.rating, None, "rating of a new order");
    assert_eq!(first.points_tenths, None, "points of a new order");

    let stored = store
        .order(&first.id)
        .await
        .expect("the new order is stored");
    assert_eq!(
        stored, first,
        "the stored order equals the one submit returned"
    );

    let second = create(store, new.clone()).await;
    assert_eq!(second.id.sequence(), 2, "second order's sequence");
    assert_eq!(second.number, "20261123-0002", "second order's number");
    assert_ne!(second.claim_code, first.claim_code, "claim codes differ");

    let county_wide = create(store, f.county_wide_order()).await;
    assert_eq!(
        county_wide.state,
        OrderState::OfferedToCounty,
        "state without a grid phase"
    );
    assert!(
        county_wide.widened,
        "an order offered county-wide at once is widened"
    );
    assert_eq!(
        county_wide.widen_time, county_wide.create_time,
        "widen_time without a grid phase"
    );

    let gridless = NewOrder {
        grid: None,
        address: "某个查不到的地址".to_owned(),
        ..f.order()
    };
    let gridless = create(store, gridless).await;
    assert_eq!(
        gridless.state,
        OrderState::OfferedToCounty,
        "state of an order without a grid"
    );
    assert!(gridless.widened, "an order without a grid is widened");
    assert_eq!(gridless.grid, None, "grid of an order without a grid");
    assert_eq!(gridless.address, "某个查不到的地址", "address");

    // 16:30 UTC is 00:30 the next day in UTC+8, so the daily count restarts.
    let next_day = NewOrder {
        create_time: Utc
            .with_ymd_and_hms(2026, 11, 23, 16, 30, 0)
            .single()
            .expect("a valid time"),
        ..f.order()
    };
    let next_day = create(store, next_day).await;
    assert_eq!(
        next_day.number, "20261124-0001",
        "first number of the next UTC+8 day"
    );
    assert_eq!(
        next_day.id.sequence(),
        5,
        "the county sequence does not restart"
    );
}

pub async fn submit_is_idempotent_by_request_id(store: &dyn Store) {
    let f = Fixture::new();
    let with_request = NewOrder {
        request_id: Some("req-0001".to_owned()),
        ..f.order()
    };
    let first = create(store, with_request.clone()).await;

    let retry = NewOrder {
        request_text: "a retry with other text".to_owned(),
        create_time: at(1),
        ..with_request.clone()
    };
    match store.submit(retry).await {
        Ok(Submitted::Existing(existing)) => {
            assert_eq!(
                existing, first,
                "a retry returns the original order unchanged"
            );
        }
        other => panic!("retry: expected the existing order, got {other:?}"),
    }

    let events = store.events(&f.county, 100).await.expect("events");
    let submitted = events
        .iter()
        .filter(|e| e.kind == EventKind::Submitted)
        .count();
    assert_eq!(submitted, 1, "a retry records no second submitted event");

    let next = create(store, f.order()).await;
    assert_eq!(next.id.sequence(), 2, "a retry takes no sequence number");
    assert_eq!(
        next.number, "20261123-0002",
        "a retry takes no daily number"
    );

    let elsewhere = Fixture::new();
    let same_request_elsewhere = NewOrder {
        request_id: Some("req-0001".to_owned()),
        ..elsewhere.order()
    };
    let other = create(store, same_request_elsewhere).await;
    assert_eq!(
        other.id.county(),
        &elsewhere.county,
        "request ids are per county"
    );
}

pub async fn concurrent_retries_create_once(store: &dyn Store) {
    const RETRIES: usize = 20;
    let f = Fixture::new();
    let new = NewOrder {
        request_id: Some("req-0002".to_owned()),
        ..f.order()
    };

    let submits = (0..RETRIES).map(|_| store.submit(new.clone()));
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for result in join_all(submits.collect()).await {
        match result {
            Ok(Submitted::Created(order)) => created.push(order),
            Ok(Submitted::Existing(order)) => existing.push(order),
            Err(err) => panic!("concurrent submit: expected an order, got {err}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one submit creates the order");
    assert_eq!(existing.len(), RETRIES - 1, "every other submit finds it");
    for order in &existing {
        assert_eq!(order, &created[0], "every retry returns the created order");
    }

    let events = store.events(&f.county, 100).await.expect("events");
    let submitted = events
        .iter()
        .filter(|e| e.kind == EventKind::Submitted)
        .count();
    assert_eq!(submitted, 1, "one submitted event");
}

pub async fn unknown_order_is_not_found(store: &dyn Store) {
    let f = Fixture::new();
    let unknown_county = OrderId::new(f.county.clone(), 999);
    assert_err!(
        store.order(&unknown_county).await,
        StoreError::OrderNotFound(_),
        "order of an unused county"
    );

    create(store, f.order()).await;
    let id = OrderId::new(f.county.clone(), 999);
    let a = agent("A1");
    assert_err!(
        store.order(&id).await,
        StoreError::OrderNotFound(_),
        "order"
    );
    assert_err!(
        store.claim(&id, &a, &f.grid, at(1)).await,
        StoreError::OrderNotFound(_),
        "claim"
    );
    assert_err!(
        store.release(&id, &a, "busy", at(1), at(30)).await,
        StoreError::OrderNotFound(_),
        "release"
    );
    assert_err!(
        store
            .complete(&id, &a, work_result(), None, at(1), at(60))
            .await,
        StoreError::OrderNotFound(_),
        "complete"
    );
    assert_err!(
        store.cancel(&id, "withdrawn", at(1)).await,
        StoreError::OrderNotFound(_),
        "cancel"
    );
    assert_err!(
        store.rate(&id, Rating::Satisfied, "", at(1)).await,
        StoreError::OrderNotFound(_),
        "rate"
    );
}

pub async fn complete_checks_holder_and_state(store: &dyn Store) {
    let f = Fixture::new();
    let (holder, other) = (agent("A1"), agent("A2"));
    let order = create(store, f.order()).await;

    assert_err!(
        store
            .complete(&order.id, &holder, work_result(), None, at(1), at(60))
            .await,
        StoreError::StateConflict {
            state: OrderState::OfferedToGrid,
            action: action::COMPLETED,
            ..
        },
        "complete of an unclaimed order"
    );

    store
        .claim(&order.id, &holder, &f.grid, at(1))
        .await
        .expect("claim");
    match store
        .complete(&order.id, &other, work_result(), None, at(2), at(60))
        .await
    {
        Err(StoreError::NotHolder { agent: named, .. }) => {
            assert_eq!(named, other, "NotHolder names the agent who tried");
        }
        result => panic!("complete by another agent: expected NotHolder, got {result:?}"),
    }

    let completed = store
        .complete(
            &order.id,
            &holder,
            work_result(),
            Some(matter(MatterClass::Two)),
            at(2),
            at(60),
        )
        .await
        .expect("the holder completes");
    assert_eq!(completed.state, OrderState::Completed, "state");
    assert_eq!(completed.complete_time, Some(at(2)), "complete_time");
    assert_eq!(completed.result, Some(work_result()), "result");
    assert_eq!(
        completed.agent,
        Some(holder.clone()),
        "agent stays the holder"
    );
    assert_eq!(
        completed.matter,
        Some(matter(MatterClass::One)),
        "a matter given for an order that has one is ignored"
    );
    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(
        stored, completed,
        "the stored order equals the one complete returned"
    );

    assert_err!(
        store
            .complete(&order.id, &holder, work_result(), None, at(3), at(60))
            .await,
        StoreError::StateConflict {
            state: OrderState::Completed,
            action: action::COMPLETED,
            ..
        },
        "second complete"
    );
    let next = store.next_deadline(&f.county).await.expect("next_deadline");
    assert_eq!(next, Some(at(60)), "a completed order settles at settle_at");
}

pub async fn complete_sets_matter_of_fuzzy_order(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let fuzzy = NewOrder {
        matter: None,
        ..f.order()
    };
    let order = create_claimed(store, fuzzy, &holder).await;
    assert_eq!(order.matter, None, "a fuzzy order has no matter");

    let without = store
        .complete(&order.id, &holder, work_result(), None, at(2), at(60))
        .await;
    assert!(
        without.is_err(),
        "a fuzzy order cannot be completed without a matter, got {without:?}"
    );
    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(
        stored.state,
        OrderState::Claimed,
        "a refused complete changes nothing"
    );

    let completed = store
        .complete(
            &order.id,
            &holder,
            work_result(),
            Some(matter(MatterClass::Two)),
            at(2),
            at(60),
        )
        .await
        .expect("complete with a matter");
    assert_eq!(
        completed.matter,
        Some(matter(MatterClass::Two)),
        "the given matter is set"
    );
    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(
        stored.matter,
        Some(matter(MatterClass::Two)),
        "the matter is stored"
    );
}

pub async fn cancel_checks_state(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");

    let offered_to_grid = create(store, f.order()).await;
    let cancelled = store
        .cancel(&offered_to_grid.id, "withdrawn by applicant", at(2))
        .await
        .expect("cancel an order offered to its grid");
    assert_eq!(cancelled.state, OrderState::Cancelled, "state");
    assert_eq!(cancelled.cancel_time, Some(at(2)), "cancel_time");
    assert_eq!(
        cancelled.cancel_reason, "withdrawn by applicant",
        "cancel_reason"
    );
    let stored = store.order(&offered_to_grid.id).await.expect("order");
    assert_eq!(
        stored, cancelled,
        "the stored order equals the one cancel returned"
    );

    let county_wide = create(store, f.county_wide_order()).await;
    store
        .cancel(&county_wide.id, "withdrawn", at(2))
        .await
        .expect("cancel an order offered county-wide");
    let claimed = create_claimed(store, f.order(), &holder).await;
    let cancelled = store
        .cancel(&claimed.id, "duplicate", at(2))
        .await
        .expect("cancel a claimed order");
    assert_eq!(
        cancelled.state,
        OrderState::Cancelled,
        "state of a cancelled claimed order"
    );

    let completed = create_completed(store, f.order(), &holder, at(60)).await;
    assert_err!(
        store.cancel(&completed.id, "too late", at(3)).await,
        StoreError::StateConflict {
            state: OrderState::Completed,
            action: action::CANCELLED,
            ..
        },
        "cancel of a completed order"
    );
    assert_err!(
        store.cancel(&offered_to_grid.id, "again", at(3)).await,
        StoreError::StateConflict {
            state: OrderState::Cancelled,
            action: action::CANCELLED,
            ..
        },
        "cancel of a cancelled order"
    );

    let open = store
        .open_orders(&f.county, &f.grid, at(3), 10)
        .await
        .expect("open_orders");
    assert!(
        open.is_empty(),
        "cancelled orders are not open: {:?}",
        ids(&open)
    );
    let widened = store
        .widen_due(&f.county, at(20), 10)
        .await
        .expect("widen_due");
    assert!(
        widened.is_empty(),
        "cancelled orders do not widen: {:?}",
        ids(&widened)
    );
    let escalated = store
        .escalate_due(&f.county, at(59), 10)
        .await
        .expect("escalate_due");
    assert!(
        escalated.is_empty(),
        "cancelled orders do not escalate: {:?}",
        ids(&escalated)
    );
    let next = store.next_deadline(&f.county).await.expect("next_deadline");
    assert_eq!(
        next,
        Some(at(60)),
        "only the completed order's settlement is pending"
    );
}

/// Times with nanoseconds come back cut to the millisecond, the same from
/// the call that changed the order as from a later read.
pub async fn times_keep_milliseconds(store: &dyn Store) {
    let fixture = Fixture::new();
    let mut new = fixture.order();
    new.create_time = at(0) + Duration::nanoseconds(123_456_789);
    new.grid_phase_until = Some(at(10) + Duration::nanoseconds(987_654_321));
    let created = create(store, new).await;
    assert_eq!(
        created.create_time,
        at(0) + Duration::milliseconds(123),
        "create_time"
    );
    assert_eq!(
        created.widen_time,
        at(10) + Duration::milliseconds(987),
        "widen_time"
    );
    let read = store.order(&created.id).await.expect("the order exists");
    assert_eq!(
        read, created,
        "the created order equals the order read back"
    );

    let claim_time = at(1) + Duration::nanoseconds(5_500_000);
    let claimed = store
        .claim(&created.id, &agent("A1"), &fixture.grid, claim_time)
        .await
        .expect("the grid agent claims");
    assert_eq!(
        claimed.claim_time,
        Some(at(1) + Duration::milliseconds(5)),
        "claim_time"
    );
    let read = store.order(&created.id).await.expect("the order exists");
    assert_eq!(
        read, claimed,
        "the claimed order equals the order read back"
    );
}
