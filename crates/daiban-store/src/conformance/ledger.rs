//! Cases of the `Ledger`: the settlement group, idempotent settlement,
//! quarter closes, frozen statements, totals and completion counts.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use daiban_domain::{AgentId, MatterClass, OrderId, Quarter, Rating, WorkOrder, points_tenths};

use super::fixture::{Fixture, agent, join_all, matter, work_result};
use crate::{
    EventKind, FrozenStatement, NewOrder, QuarterClosing, StatementLine, Store, StoreError, Tally,
};

/// Returns the UTC instant of a wall-clock time in UTC+8.
fn china(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8 is a valid offset")
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn quarter(text: &str) -> Quarter {
    Quarter::parse(text).expect("a valid quarter")
}

/// Submits an order of `class` offered county-wide, lets `holder` of the
/// fixture's grid claim it and completes it at `time`, with its rating
/// window ending a week later.
async fn completed_at(
    store: &dyn Store,
    f: &Fixture,
    holder: &AgentId,
    class: MatterClass,
    time: DateTime<Utc>,
) -> WorkOrder {
    let new = NewOrder {
        matter: Some(matter(class)),
        create_time: time - chrono::Duration::minutes(30),
        grid_phase_until: None,
        escalate_at: time + chrono::Duration::hours(1),
        ..f.order()
    };
    let order = store.submit(new).await.expect("submit").into_order();
    store
        .claim(
            &order.id,
            holder,
            &f.grid,
            time - chrono::Duration::minutes(20),
        )
        .await
        .expect("claim");
    store
        .complete(
            &order.id,
            holder,
            work_result(),
            None,
            time,
            time + chrono::Duration::days(7),
        )
        .await
        .expect("complete")
}

/// Completes, rates and settles an order through `settle_rated`.
async fn settled_at(
    store: &dyn Store,
    f: &Fixture,
    holder: &AgentId,
    class: MatterClass,
    rating: Rating,
    time: DateTime<Utc>,
) -> OrderId {
    let order = completed_at(store, f, holder, class, time).await;
    store.rate(&order.id, rating, "", time).await.expect("rate");
    store
        .settle_rated(&order.id, time)
        .await
        .expect("settle_rated")
        .expect("the order settles");
    order.id
}

fn statement(name: &str) -> FrozenStatement {
    FrozenStatement {
        close_time: china(2026, 10, 1, 9, 0),
        fen_per_point: 1000,
        lines: vec![StatementLine {
            agent_id: "A1".to_owned(),
            name: name.to_owned(),
            grid_code: "431127100201".to_owned(),
            grid_name: "友谊村委会".to_owned(),
            township_code: "431127100".to_owned(),
            township_name: "塔峰镇".to_owned(),
            role: "grid_worker".to_owned(),
            class1_orders: 1,
            class2_orders: 0,
            satisfied: 1,
            unsatisfied: 0,
            points_tenths: 25,
            bonus_fen: 2500,
        }],
    }
}

pub async fn settle_rated_books_once(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let time = china(2026, 9, 10, 10, 0);
    let order = completed_at(store, &f, &holder, MatterClass::Two, time).await;

    assert_err!(
        store.settle_rated(&order.id, time).await,
        StoreError::StateConflict { .. },
        "settle_rated of an unrated order"
    );
    store
        .rate(&order.id, Rating::Satisfied, "", time)
        .await
        .expect("rate");

    let calls = (0..6)
        .map(|_| store.settle_rated(&order.id, time))
        .collect();
    let results = join_all(calls).await;
    let booked: Vec<_> = results
        .into_iter()
        .filter_map(|result| result.expect("settle_rated"))
        .collect();
    assert_eq!(booked.len(), 1, "one of six calls books: {booked:?}");

    let ledger = store.ledger(&f.county).await.expect("ledger");
    assert_eq!(ledger, booked, "the ledger has the one entry");
    let totals = store
        .agent_points(&f.county, &holder)
        .await
        .expect("agent_points");
    assert_eq!(totals.len(), 1, "one month: {totals:?}");
    assert_eq!(totals[0].class2_orders, 1, "counted once");
    assert_eq!(totals[0].points_tenths, 30, "2 points and 1 for satisfied");

    let due = store
        .settle_due(&f.county, time + chrono::Duration::days(8), 10)
        .await
        .expect("settle_due");
    assert!(due.is_empty(), "the sweep books it no more: {due:?}");
}

pub async fn settlement_group_delivers_rated_events(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let time = china(2026, 9, 10, 10, 0);
    let order = completed_at(store, &f, &holder, MatterClass::One, time).await;
    store
        .rate(&order.id, Rating::Average, "", time)
        .await
        .expect("rate");

    let idle = Duration::from_secs(3600);
    let first = store
        .deliver_events(&f.county, "c1", idle, 100)
        .await
        .expect("deliver_events");
    let kinds: Vec<EventKind> = first.iter().map(|d| d.event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Submitted,
            EventKind::Claimed,
            EventKind::Completed,
            EventKind::Rated
        ],
        "the whole log from its start, oldest first"
    );
    assert!(
        first.iter().all(|d| d.event.order == order.id),
        "every event names the order"
    );

    let limited = store
        .deliver_events(&f.county, "c2", idle, 100)
        .await
        .expect("deliver_events");
    assert!(
        limited.is_empty(),
        "events taken by c1 go to nobody else before they idle: {limited:?}"
    );

    let ids: Vec<String> = first.iter().map(|d| d.id.clone()).collect();
    store
        .acknowledge_events(&f.county, &ids)
        .await
        .expect("acknowledge_events");
    store
        .cancel(
            &store.submit(f.order()).await.expect("submit").order().id,
            "",
            time,
        )
        .await
        .expect("cancel");
    let next = store
        .deliver_events(&f.county, "c1", Duration::ZERO, 1)
        .await
        .expect("deliver_events");
    assert_eq!(next.len(), 1, "limit 1 hands one event");
    assert_eq!(
        next[0].event.kind,
        EventKind::Submitted,
        "acknowledged events are not handed again, later ones are"
    );
}

pub async fn unacknowledged_events_are_taken_over(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let time = china(2026, 9, 10, 10, 0);
    let order = completed_at(store, &f, &holder, MatterClass::One, time).await;
    store
        .rate(&order.id, Rating::VerySatisfied, "", time)
        .await
        .expect("rate");

    // Consumer c1 takes the events and dies before acknowledging them.
    let taken = store
        .deliver_events(&f.county, "c1", Duration::from_secs(3600), 100)
        .await
        .expect("deliver_events");
    assert_eq!(taken.len(), 4, "c1 takes the order's four events");

    let early = store
        .deliver_events(&f.county, "c2", Duration::from_secs(3600), 100)
        .await
        .expect("deliver_events");
    assert!(early.is_empty(), "not idle long enough yet: {early:?}");

    let taken_over = store
        .deliver_events(&f.county, "c2", Duration::ZERO, 100)
        .await
        .expect("deliver_events");
    let ids = |deliveries: &[crate::Delivery]| -> Vec<String> {
        deliveries.iter().map(|d| d.id.clone()).collect()
    };
    assert_eq!(ids(&taken_over), ids(&taken), "c2 takes over c1's events");
    assert_eq!(
        taken_over.last().map(|d| d.event.kind),
        Some(EventKind::Rated),
        "including the rating"
    );

    store
        .acknowledge_events(&f.county, &ids(&taken_over))
        .await
        .expect("acknowledge_events");
    let rest = store
        .deliver_events(&f.county, "c3", Duration::ZERO, 100)
        .await
        .expect("deliver_events");
    assert!(rest.is_empty(), "acknowledged events stay done: {rest:?}");
}

pub async fn settlement_after_close_lands_in_next_quarter(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let q3 = quarter("2026Q3");
    let late_rating = china(2026, 9, 30, 23, 30);
    let on_time = settled_at(
        store,
        &f,
        &holder,
        MatterClass::One,
        Rating::Satisfied,
        china(2026, 9, 29, 10, 0),
    )
    .await;
    let late = completed_at(store, &f, &holder, MatterClass::Two, late_rating).await;
    store
        .rate(&late.id, Rating::VerySatisfied, "", late_rating)
        .await
        .expect("rate");

    let close_time = china(2026, 10, 1, 9, 0);
    let closing = store
        .close_quarter(&f.county, q3, close_time)
        .await
        .expect("close_quarter");
    assert_eq!(closing, QuarterClosing::Closed(close_time), "first close");
    let again = store
        .close_quarter(&f.county, q3, close_time + chrono::Duration::hours(1))
        .await
        .expect("close_quarter");
    assert_eq!(
        again,
        QuarterClosing::AlreadyClosed(close_time),
        "a second close keeps the first close time"
    );

    let settlement = store
        .settle_rated(&late.id, close_time + chrono::Duration::minutes(5))
        .await
        .expect("settle_rated")
        .expect("the late order settles");
    assert_eq!(settlement.period.quarter, "2026Q4", "next open quarter");
    assert_eq!(settlement.period.month, "2026-10", "its first month");
    assert_eq!(
        settlement.settle_time, late_rating,
        "the settlement keeps its rating time"
    );

    let q3_totals = store
        .quarter_totals(&f.county, q3)
        .await
        .expect("quarter_totals");
    assert_eq!(
        q3_totals.agents,
        vec![(
            holder.clone(),
            Tally {
                class1_orders: 1,
                class2_orders: 0,
                satisfied: 1,
                unsatisfied: 0,
                points_tenths: 25,
            }
        )],
        "the closed quarter holds only the order settled before the close"
    );
    let q4_totals = store
        .quarter_totals(&f.county, q3.next())
        .await
        .expect("quarter_totals");
    assert_eq!(
        q4_totals.county.points_tenths, 30,
        "the late order's points"
    );

    let ledger = store.ledger(&f.county).await.expect("ledger");
    let booked: Vec<(OrderId, String)> = ledger
        .iter()
        .map(|entry| (entry.order.clone(), entry.period.quarter.clone()))
        .collect();
    assert_eq!(
        booked,
        vec![
            (on_time, "2026Q3".to_owned()),
            (late.id, "2026Q4".to_owned())
        ],
        "ledger entries carry the quarter they are booked in"
    );
}

pub async fn frozen_statement_is_kept_once(store: &dyn Store) {
    let f = Fixture::new();
    let q3 = quarter("2026Q3");
    assert_eq!(
        store.quarter_close(&f.county, q3).await.expect("close"),
        None,
        "an open quarter has no close"
    );
    assert_err!(
        store
            .freeze_statement(&f.county, q3, &statement("邓燕"))
            .await,
        StoreError::Corrupt { .. },
        "freezing an open quarter"
    );

    let close_time = china(2026, 10, 1, 9, 0);
    store
        .close_quarter(&f.county, q3, close_time)
        .await
        .expect("close_quarter");
    let closed = store
        .quarter_close(&f.county, q3)
        .await
        .expect("quarter_close")
        .expect("the quarter is closed");
    assert_eq!(closed.close_time, close_time, "close time");
    assert_eq!(closed.statement, None, "nothing frozen yet");

    let first = store
        .freeze_statement(&f.county, q3, &statement("邓燕"))
        .await
        .expect("freeze_statement");
    assert_eq!(first, statement("邓燕"), "the first freeze is stored");
    let second = store
        .freeze_statement(&f.county, q3, &statement("陈强玉"))
        .await
        .expect("freeze_statement");
    assert_eq!(second, statement("邓燕"), "the first freeze wins");
    let read = store
        .quarter_close(&f.county, q3)
        .await
        .expect("quarter_close")
        .expect("closed");
    assert_eq!(read.statement, Some(statement("邓燕")), "read back");
}

pub async fn quarter_totals_by_agent_and_county(store: &dyn Store) {
    let f = Fixture::new();
    let (first, second) = (agent("A1"), agent("A2"));
    let q3 = quarter("2026Q3");
    let july = china(2026, 7, 15, 10, 0);
    let september = china(2026, 9, 30, 23, 59);
    let october = china(2026, 10, 1, 0, 1);
    settled_at(
        store,
        &f,
        &first,
        MatterClass::One,
        Rating::VerySatisfied,
        july,
    )
    .await;
    settled_at(
        store,
        &f,
        &first,
        MatterClass::Two,
        Rating::Unsatisfied,
        september,
    )
    .await;
    settled_at(
        store,
        &f,
        &second,
        MatterClass::Two,
        Rating::Average,
        september,
    )
    .await;
    settled_at(
        store,
        &f,
        &second,
        MatterClass::One,
        Rating::Satisfied,
        october,
    )
    .await;
    // Unrated, settled by the sweep at the end of its window in July.
    completed_at(store, &f, &second, MatterClass::One, july).await;
    store
        .settle_due(&f.county, july + chrono::Duration::days(7), 10)
        .await
        .expect("settle_due");

    let totals = store
        .quarter_totals(&f.county, q3)
        .await
        .expect("quarter_totals");
    let expected_first = Tally {
        class1_orders: 1,
        class2_orders: 1,
        satisfied: 1,
        unsatisfied: 1,
        points_tenths: points_tenths(MatterClass::One, Some(Rating::VerySatisfied)).into(),
    };
    let expected_second = Tally {
        class1_orders: 1,
        class2_orders: 1,
        satisfied: 0,
        unsatisfied: 0,
        points_tenths: 35,
    };
    assert_eq!(
        totals.agents,
        vec![(first, expected_first), (second, expected_second)],
        "agents by id, October left out"
    );
    let mut county = expected_first;
    county.add(&expected_second);
    assert_eq!(totals.county, county, "the county's own totals agree");

    let months: Vec<(String, i64)> = store
        .county_points(&f.county)
        .await
        .expect("county_points")
        .into_iter()
        .map(|m| (m.month, m.points_tenths))
        .collect();
    let expected = [("2026-10", 25), ("2026-09", 20), ("2026-07", 40)]
        .map(|(month, points)| (month.to_owned(), points));
    assert_eq!(months, expected, "county month totals, newest first");
}

pub async fn settle_due_settles_rated_leftovers(store: &dyn Store) {
    let f = Fixture::new();
    let holder = agent("A1");
    let time = china(2026, 9, 10, 10, 0);
    let order = completed_at(store, &f, &holder, MatterClass::Two, time).await;
    // Rated, but the `rated` event is never handled.
    store
        .rate(&order.id, Rating::VerySatisfied, "", time)
        .await
        .expect("rate");

    let window_end = time + chrono::Duration::days(7);
    let due = store
        .settle_due(&f.county, window_end, 10)
        .await
        .expect("settle_due");
    assert_eq!(due.len(), 1, "the sweep settles it: {due:?}");
    assert_eq!(due[0].rating, Some(Rating::VerySatisfied), "at its rating");
    assert_eq!(due[0].points_tenths, 30, "2 points and 1 for satisfaction");
    assert_eq!(due[0].settle_time, window_end, "as of the sweep");
    assert_eq!(
        store
            .settle_rated(&order.id, window_end)
            .await
            .expect("settle_rated"),
        None,
        "a late event books nothing more"
    );
}

async fn completed(store: &dyn Store, f: &Fixture, period: &str) -> Vec<(AgentId, u64)> {
    store
        .completed_orders(&f.county, period)
        .await
        .expect("completed_orders")
}

pub async fn completed_orders_by_year_and_quarter(store: &dyn Store) {
    let f = Fixture::new();
    let (first, second) = (agent("A1"), agent("A2"));
    let q3 = china(2026, 9, 30, 23, 0);
    let q4 = china(2026, 10, 1, 1, 0);
    let next_year = china(2027, 1, 1, 1, 0);
    for (holder, time) in [
        (&first, q3),
        (&second, q3),
        (&second, q4),
        (&second, next_year),
    ] {
        completed_at(store, &f, holder, MatterClass::One, time).await;
    }
    assert_eq!(
        completed(store, &f, "2026").await,
        vec![(second.clone(), 2), (first.clone(), 1)],
        "2026, most first"
    );
    assert_eq!(
        completed(store, &f, "2026Q3").await,
        vec![(first.clone(), 1), (second.clone(), 1)],
        "a tie orders by agent id"
    );
    assert_eq!(
        completed(store, &f, "2026Q4").await,
        vec![(second.clone(), 1)],
        "2026Q4"
    );
    assert_eq!(
        completed(store, &f, "2027").await,
        vec![(second, 1)],
        "2027"
    );
    assert!(
        completed(store, &f, "2025").await.is_empty(),
        "a year without completions"
    );
}
