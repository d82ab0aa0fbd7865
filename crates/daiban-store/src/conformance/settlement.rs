//! Cases of `rate`, `settle_rated`, `settle_due` and `agent_points`.

use chrono::{Duration, TimeZone, Utc};
use daiban_domain::{MatterClass, OrderId, OrderState, Period, Rating, points_tenths};

use super::fixture::{Fixture, agent, at, create, create_claimed, create_completed, matter};
use crate::{MonthTotals, NewOrder, Store, StoreError, action};

pub async fn rated_orders_settle_by_points_rules(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let ratings = [
        Rating::VerySatisfied,
        Rating::Satisfied,
        Rating::Average,
        Rating::Unsatisfied,
    ];

    for class in [MatterClass::One, MatterClass::Two] {
        for rating in ratings {
            let context = format!("{class:?} rated {rating:?}");
            let new = NewOrder {
                matter: Some(matter(class)),
                ..f.order()
            };
            let order = create_completed(store, new, &holder, at(60)).await;
            let rated = store
                .rate(&order.id, rating, "谢谢", at(5))
                .await
                .unwrap_or_else(|err| panic!("{context}: rate failed: {err}"));
            assert_eq!(rated.state, OrderState::Completed, "{context}: rated state");
            assert_eq!(rated.rating, Some(rating), "{context}: rating");
            assert_eq!(rated.rating_comment, "谢谢", "{context}: rating_comment");
            assert_eq!(rated.rate_time, Some(at(5)), "{context}: rate_time");
            assert_eq!(
                rated.points_tenths, None,
                "{context}: points before settling"
            );
            let stored = store.order(&order.id).await.expect("order");
            assert_eq!(
                stored, rated,
                "{context}: the stored order equals the one rate returned"
            );

            let settlement = store
                .settle_rated(&order.id, at(6))
                .await
                .unwrap_or_else(|err| panic!("{context}: settle_rated failed: {err}"))
                .unwrap_or_else(|| panic!("{context}: the first settle_rated settles"));
            let points = points_tenths(class, Some(rating));
            let settled = store.order(&order.id).await.expect("order");
            assert_eq!(settled.state, OrderState::Settled, "{context}: state");
            assert_eq!(
                settled.points_tenths,
                Some(points),
                "{context}: order points"
            );
            assert_eq!(
                settled.settle_time,
                Some(at(5)),
                "{context}: an order settles as of its rating time"
            );

            assert_eq!(settlement.order, order.id, "{context}: settlement order");
            assert_eq!(settlement.agent, holder, "{context}: settlement agent");
            assert_eq!(settlement.class, class, "{context}: settlement class");
            assert_eq!(
                settlement.rating,
                Some(rating),
                "{context}: settlement rating"
            );
            assert_eq!(
                settlement.points_tenths, points,
                "{context}: settlement points"
            );
            assert_eq!(settlement.settle_time, at(5), "{context}: settlement time");
            assert_eq!(
                settlement.period,
                Period::of(at(5)),
                "{context}: settlement period"
            );

            let again = store
                .settle_rated(&order.id, at(7))
                .await
                .unwrap_or_else(|err| panic!("{context}: second settle_rated failed: {err}"));
            assert_eq!(
                again, None,
                "{context}: a second settle_rated books nothing"
            );
        }
    }

    let settled = store
        .settle_due(&f.county, at(60), 100)
        .await
        .expect("settle_due");
    assert!(
        settled.is_empty(),
        "rated orders do not settle again: {settled:?}"
    );
}

pub async fn second_rating_is_already_rated(store: &dyn Store) {
    let f = Fixture::new();
    let order = create_completed(store, f.order(), &agent("A1"), at(60)).await;
    let rated = store
        .rate(&order.id, Rating::Satisfied, "好", at(5))
        .await
        .expect("first rating");

    assert_err!(
        store
            .rate(&order.id, Rating::Unsatisfied, "改主意了", at(6))
            .await,
        StoreError::AlreadyRated { .. },
        "second rating"
    );
    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(stored, rated, "a second rating changes nothing");
}

pub async fn rating_before_completion_conflicts(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");

    let offered = create(store, f.order()).await;
    assert_err!(
        store.rate(&offered.id, Rating::Satisfied, "", at(5)).await,
        StoreError::StateConflict {
            state: OrderState::OfferedToGrid,
            action: action::RATED,
            ..
        },
        "rate of an offered order"
    );

    let claimed = create_claimed(store, f.order(), &holder).await;
    assert_err!(
        store.rate(&claimed.id, Rating::Satisfied, "", at(5)).await,
        StoreError::StateConflict {
            state: OrderState::Claimed,
            action: action::RATED,
            ..
        },
        "rate of a claimed order"
    );

    store
        .cancel(&offered.id, "withdrawn", at(6))
        .await
        .expect("cancel");
    assert_err!(
        store.rate(&offered.id, Rating::Satisfied, "", at(7)).await,
        StoreError::StateConflict {
            state: OrderState::Cancelled,
            action: action::RATED,
            ..
        },
        "rate of a cancelled order"
    );
}

pub async fn rating_after_settlement_conflicts(store: &dyn Store) {
    let f = Fixture::new();
    let order = create_completed(store, f.order(), &agent("A1"), at(60)).await;

    let settled = store
        .settle_due(&f.county, at(60), 10)
        .await
        .expect("settle_due");
    assert_eq!(settled.len(), 1, "the unrated order settles: {settled:?}");
    assert_eq!(settled[0].rating, None, "settled without a rating");

    assert_err!(
        store
            .rate(&order.id, Rating::VerySatisfied, "", at(61))
            .await,
        StoreError::StateConflict {
            state: OrderState::Settled,
            action: action::RATED,
            ..
        },
        "rate after the rating window settled the order"
    );
    let stored = store.order(&order.id).await.expect("order");
    assert_eq!(stored.rating, None, "a late rating is not stored");
    assert_eq!(
        stored.points_tenths,
        Some(points_tenths(MatterClass::One, None)),
        "a late rating leaves the base points"
    );
}

pub async fn settle_due_takes_unrated_once(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let class_two = || NewOrder {
        matter: Some(matter(MatterClass::Two)),
        ..f.order()
    };
    let unrated = create_completed(store, class_two(), &holder, at(60)).await;
    let rated = create_completed(store, f.order(), &holder, at(60)).await;
    store
        .rate(&rated.id, Rating::Average, "", at(50))
        .await
        .expect("rate");
    store
        .settle_rated(&rated.id, at(50))
        .await
        .expect("settle_rated");
    let later = create_completed(store, f.order(), &holder, at(70)).await;
    let latest = create_completed(store, f.order(), &holder, at(71)).await;

    let due = store
        .settle_due(&f.county, at(59), 10)
        .await
        .expect("settle_due");
    assert!(due.is_empty(), "nothing settles early: {due:?}");

    let due = store
        .settle_due(&f.county, at(60), 10)
        .await
        .expect("settle_due");
    assert_eq!(due.len(), 1, "only the unrated order settles: {due:?}");
    let settlement = &due[0];
    assert_eq!(settlement.order, unrated.id, "settlement order");
    assert_eq!(settlement.agent, holder, "settlement agent");
    assert_eq!(settlement.class, MatterClass::Two, "settlement class");
    assert_eq!(settlement.rating, None, "settlement rating");
    assert_eq!(
        settlement.points_tenths,
        points_tenths(MatterClass::Two, None),
        "base points"
    );
    assert_eq!(settlement.settle_time, at(60), "settlement time");
    assert_eq!(settlement.period, Period::of(at(60)), "settlement period");

    let stored = store.order(&unrated.id).await.expect("order");
    assert_eq!(
        stored.state,
        OrderState::Settled,
        "state of a settled order"
    );
    assert_eq!(stored.points_tenths, Some(20), "points of a settled order");
    assert_eq!(stored.settle_time, Some(at(60)), "settle_time");

    let again = store
        .settle_due(&f.county, at(60), 10)
        .await
        .expect("settle_due");
    assert!(again.is_empty(), "an order settles once: {again:?}");

    let due = store
        .settle_due(&f.county, at(80), 1)
        .await
        .expect("settle_due");
    let due: Vec<OrderId> = due.into_iter().map(|s| s.order).collect();
    assert_eq!(due, vec![later.id], "limit 1 takes the earliest window end");
    let due = store
        .settle_due(&f.county, at(80), 1)
        .await
        .expect("settle_due");
    let due: Vec<OrderId> = due.into_iter().map(|s| s.order).collect();
    assert_eq!(due, vec![latest.id], "the next call takes the next one");
}

pub async fn agent_points_by_month(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    // 15:00 UTC on 30 November is 23:00 in UTC+8; 16:30 UTC is already
    // 1 December in UTC+8.
    let november = Utc
        .with_ymd_and_hms(2026, 11, 30, 15, 0, 0)
        .single()
        .expect("a valid time");
    let december = Utc
        .with_ymd_and_hms(2026, 11, 30, 16, 30, 0)
        .single()
        .expect("a valid time");
    let window_end = december + Duration::days(1);
    let of_class = |class| NewOrder {
        matter: Some(matter(class)),
        ..f.order()
    };

    let rated = [
        (MatterClass::One, Rating::VerySatisfied, november),
        (MatterClass::One, Rating::Average, november),
        (MatterClass::Two, Rating::Unsatisfied, december),
    ];
    for (class, rating, time) in rated {
        let order = create_completed(store, of_class(class), &holder, window_end).await;
        store.rate(&order.id, rating, "", time).await.expect("rate");
        store
            .settle_rated(&order.id, time)
            .await
            .expect("settle_rated");
    }
    create_completed(store, of_class(MatterClass::Two), &holder, december).await;
    let settled = store
        .settle_due(&f.county, december, 10)
        .await
        .expect("settle_due");
    assert_eq!(
        settled.len(),
        1,
        "the unrated order settles in December: {settled:?}"
    );

    let totals = store
        .agent_points(&f.county, &holder)
        .await
        .expect("agent_points");
    let expected = vec![
        MonthTotals {
            month: "2026-12".to_owned(),
            class1_orders: 0,
            class2_orders: 2,
            satisfied: 0,
            unsatisfied: 1,
            points_tenths: 20,
        },
        MonthTotals {
            month: "2026-11".to_owned(),
            class1_orders: 2,
            class2_orders: 0,
            satisfied: 1,
            unsatisfied: 0,
            points_tenths: 40,
        },
    ];
    assert_eq!(
        totals, expected,
        "month totals in UTC+8 months, newest first"
    );

    let nobody = store
        .agent_points(&f.county, &agent("A2"))
        .await
        .expect("agent_points");
    assert!(
        nobody.is_empty(),
        "an agent without settlements has no totals: {nobody:?}"
    );
    let elsewhere = store
        .agent_points(&Fixture::new().county, &holder)
        .await
        .expect("agent_points");
    assert!(elsewhere.is_empty(), "totals are per county: {elsewhere:?}");
}
