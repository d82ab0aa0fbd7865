//! Cases of the console's queries, the [`Overview`](crate::Overview) trait.

use chrono::{Duration, NaiveDate};
use daiban_domain::{OrderState, PhoneNumber, Rating};

use super::fixture::{Fixture, agent, at, create, create_claimed, ids, work_result};
use crate::overview::{GridClaims, INDEXED_ORDERS};
use crate::{NewOrder, Store};

pub async fn state_counts_follow_changes(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let completed = create_claimed(store, f.order(), &holder).await;
    store
        .complete(&completed.id, &holder, work_result(), None, at(2), at(60))
        .await
        .expect("complete");
    let cancelled = create(store, f.order()).await;
    store
        .cancel(&cancelled.id, "withdrawn", at(3))
        .await
        .expect("cancel");
    create(store, f.order()).await;
    create(store, f.county_wide_order()).await;
    let widened = create(
        store,
        NewOrder {
            grid_phase_until: Some(at(5)),
            ..f.order()
        },
    )
    .await;
    let due = store.widen_due(&f.county, at(6), 10).await.expect("widen");
    assert_eq!(ids(&due), vec![widened.id], "widened orders");

    let counts = store.state_counts(&f.county).await.expect("state_counts");
    let expected = vec![
        (OrderState::OfferedToGrid, 1),
        (OrderState::OfferedToCounty, 2),
        (OrderState::Claimed, 0),
        (OrderState::Completed, 1),
        (OrderState::Settled, 0),
        (OrderState::Cancelled, 1),
    ];
    assert_eq!(counts, expected, "counts by state");
}

pub async fn open_board_lists_grid_phase_first(store: &dyn Store) {
    let f = Fixture::new();
    let late = create(store, f.order()).await;
    let soon = create(
        store,
        NewOrder {
            grid_phase_until: Some(at(5)),
            ..f.order()
        },
    )
    .await;
    let county_wide = create(store, f.county_wide_order()).await;
    create_claimed(store, f.order(), &agent("A1")).await;

    let board = store.open_board(&f.county, 10).await.expect("open_board");
    assert_eq!(
        ids(&board),
        vec![soon.id.clone(), late.id.clone(), county_wide.id.clone()],
        "grid phase by widening time, then county-wide"
    );
    let limited = store.open_board(&f.county, 1).await.expect("open_board");
    assert_eq!(
        ids(&limited),
        vec![soon.id, county_wide.id],
        "the limit applies to each part"
    );
}

pub async fn day_stats_count_claims_by_phase(store: &dyn Store) {
    let f = Fixture::new();
    let in_grid = create(store, f.order()).await;
    let widened = create(store, f.order()).await;
    let county_wide = create(store, f.county_wide_order()).await;

    // 2 minutes after submission, in the grid phase.
    store
        .claim(&in_grid.id, &agent("A1"), &f.grid, at(2))
        .await
        .expect("claim in grid phase");
    // 30 seconds after submission, offered county-wide at once.
    store
        .claim(
            &county_wide.id,
            &agent("B1"),
            &f.other_grid,
            at(0) + Duration::seconds(30),
        )
        .await
        .expect("claim of county-wide order");
    store.widen_due(&f.county, at(11), 10).await.expect("widen");
    // 12 minutes after submission, after widening.
    store
        .claim(&widened.id, &agent("B2"), &f.other_grid, at(12))
        .await
        .expect("claim after widening");

    // The suite starts at 09:00 on 2026-11-23 in UTC+8.
    let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("a valid date");
    let next = NaiveDate::from_ymd_opt(2026, 11, 24).expect("a valid date");
    let stats = store
        .day_stats(&f.county, &[day, next])
        .await
        .expect("day_stats");
    assert_eq!(stats.len(), 2, "one entry per day asked");
    let today = &stats[0];
    assert_eq!(today.day, day, "first day");
    assert_eq!(today.submitted_by_hour[9], 3, "submitted at 09:00");
    assert_eq!(today.submitted_by_hour.iter().sum::<u64>(), 3, "submitted");
    assert_eq!(today.claimed_by_hour[9], 3, "claimed at 09:00");
    assert_eq!(today.claimed_in_grid_phase, 1, "claims in grid phase");
    assert_eq!(today.claimed_in_county_phase, 2, "claims in county phase");
    assert_eq!(today.widened, 1, "widened");
    assert_eq!(today.escalated, 0, "escalated");
    assert_eq!(today.claim_waits, [1, 1, 0, 1, 0, 0], "claim waits");
    let grid = today.grid_claims.get(&f.grid).copied();
    let expected = GridClaims {
        claims: 3,
        wait_ms: (30 + 120 + 720) * 1000,
    };
    assert_eq!(grid, Some(expected), "claims of the orders' grid");

    assert_eq!(stats[1].day, next, "second day");
    assert_eq!(
        stats[1].submitted_by_hour.iter().sum::<u64>(),
        0,
        "nothing submitted the next day"
    );
    assert_eq!(stats[1].claimed_in_grid_phase, 0, "no claims the next day");
}

pub async fn orders_found_by_number_phone_and_agent(store: &dyn Store) {
    let f = Fixture::new();
    let first = create(store, f.order()).await;
    let second = create(store, f.order()).await;
    let other_phone = PhoneNumber::parse("13900001111").expect("a valid mobile number");
    let mut new = f.order();
    new.applicant.phone = other_phone.clone();
    let other = create(store, new).await;

    let found = store
        .order_by_number(&f.county, &second.number)
        .await
        .expect("order_by_number");
    assert_eq!(found.map(|o| o.id), Some(second.id.clone()), "by number");
    let missing = store
        .order_by_number(&f.county, "19700101-0001")
        .await
        .expect("order_by_number");
    assert!(missing.is_none(), "an unknown number finds nothing");

    let by_phone = store
        .orders_by_phone(&f.county, &first.applicant.phone, 10)
        .await
        .expect("orders_by_phone");
    assert_eq!(
        ids(&by_phone),
        vec![second.id.clone(), first.id.clone()],
        "by phone, newest first"
    );
    let by_other_phone = store
        .orders_by_phone(&f.county, &other_phone, 10)
        .await
        .expect("orders_by_phone");
    assert_eq!(ids(&by_other_phone), vec![other.id], "by the other phone");

    let releaser = agent("A1");
    let holder = agent("A2");
    store
        .claim(&first.id, &releaser, &f.grid, at(1))
        .await
        .expect("claim");
    store
        .release(&first.id, &releaser, "busy", at(2), at(40))
        .await
        .expect("release");
    store
        .claim(&first.id, &holder, &f.grid, at(3))
        .await
        .expect("claim again");
    store
        .claim(&second.id, &holder, &f.grid, at(4))
        .await
        .expect("claim second");

    let by_agent = |id: &'static str| {
        let county = f.county.clone();
        async move {
            let orders = store
                .orders_by_agent(&county, &agent(id), 10)
                .await
                .expect("orders_by_agent");
            ids(&orders)
        }
    };
    assert_eq!(
        by_agent("A1").await,
        vec![first.id.clone()],
        "a released order stays with the agent"
    );
    assert_eq!(
        by_agent("A2").await,
        vec![second.id.clone(), first.id.clone()],
        "the holder's orders, newest first"
    );
    assert!(by_agent("A3").await.is_empty(), "an agent without claims");
}

pub async fn order_changes_match_events(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let order = create_claimed(store, f.order(), &holder).await;
    create(store, f.order()).await;
    store
        .complete(&order.id, &holder, work_result(), None, at(2), at(60))
        .await
        .expect("complete");
    store
        .rate(&order.id, Rating::Satisfied, "", at(3))
        .await
        .expect("rate");

    let changes = store.order_changes(&order.id).await.expect("order_changes");
    let events: Vec<_> = store
        .events(&f.county, 100)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.order == order.id)
        .collect();
    assert_eq!(events.len(), 4, "submitted, claimed, completed, rated");
    assert_eq!(changes, events, "changes equal the order's events");
}

pub async fn console_secret_is_kept(store: &dyn Store) {
    let f = Fixture::new();
    let first = store
        .console_secret(&f.county, "first-secret")
        .await
        .expect("console_secret");
    assert_eq!(first, "first-secret", "the first candidate is kept");
    let second = store
        .console_secret(&f.county, "second-secret")
        .await
        .expect("console_secret");
    assert_eq!(second, "first-secret", "later candidates are ignored");
}

/// Checks that a search for an applicant with more orders than
/// `INDEXED_ORDERS` finds the newest, newest first.
pub async fn phone_search_finds_the_newest(store: &dyn Store) {
    let f = Fixture::new();
    let phone = PhoneNumber::parse("13900001111").expect("valid phone");
    let mut created = Vec::new();
    for _ in 0..INDEXED_ORDERS + 5 {
        let mut new = f.order();
        new.applicant.phone = phone.clone();
        created.push(create(store, new).await.id);
    }
    let found = store
        .orders_by_phone(&f.county, &phone, 2 * INDEXED_ORDERS)
        .await
        .expect("orders_by_phone");
    assert!(found.len() >= INDEXED_ORDERS, "{} found", found.len());
    created.reverse();
    assert_eq!(
        ids(&found),
        created[..found.len()],
        "the newest, newest first"
    );
}
