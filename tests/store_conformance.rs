//! The store conformance suite against `MemoryStore` and against
//! `RedisStore` on a private `redis-server`, one test per case and store,
//! and the Redis store's start-up and restart behaviour.

use chrono::{DateTime, TimeZone, Utc};
use daiban_domain::{AgentId, Applicant, Channel, CountyCode, GridCode, PhoneNumber};
use daiban_store::{
    EventKind, NewOrder, Overview, RedisStore, Store, StoreError, Submitted, conformance,
};
use daiban_tests::redis::RedisServer;

/// Connects a store to `server`. Each test has its own tokio runtime, so
/// each gets its own pool.
async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url())
        .await
        .unwrap_or_else(|err| panic!("connect to the test server: {err}"))
}

/// Generates, for every case named, one test on a fresh `MemoryStore` in
/// `memory` and one on a fresh Redis server in `redis`.
macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = daiban_store::MemoryStore::new();
                    daiban_store::conformance::$case(&store).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let server = daiban_tests::redis::RedisServer::start();
                    let store = super::connect(&server).await;
                    daiban_store::conformance::$case(&store).await;
                }
            )*
        }

        /// The cases that this file generates tests for.
        const GENERATED: &[&str] = &[$(stringify!($case)),*];
    };
}

conformance_tests!(
    submit_creates_orders,
    times_keep_milliseconds,
    submit_is_idempotent_by_request_id,
    concurrent_retries_create_once,
    unknown_order_is_not_found,
    grid_agent_claims_in_grid_phase,
    other_grid_is_reserved_in_grid_phase,
    other_grid_claims_after_grid_phase,
    second_claim_is_already_claimed,
    claim_of_cancelled_conflicts,
    claim_of_own_completed_conflicts,
    release_offers_county_wide,
    release_reschedules_escalation,
    complete_checks_holder_and_state,
    complete_sets_matter_of_fuzzy_order,
    cancel_checks_state,
    rated_orders_settle_by_points_rules,
    second_rating_is_already_rated,
    rating_before_completion_conflicts,
    rating_after_settlement_conflicts,
    widen_due_takes_due_orders_once,
    widen_due_concurrently_once,
    escalate_due_takes_unclaimed_once,
    settle_due_takes_unrated_once,
    next_deadline_tracks_schedules,
    grid_phases_interleave_across_grids,
    open_orders_by_grid,
    agent_points_by_month,
    events_in_order,
    concurrent_claims_have_one_winner,
    settle_rated_books_once,
    settlement_group_delivers_rated_events,
    unacknowledged_events_are_taken_over,
    settlement_after_close_lands_in_next_quarter,
    frozen_statement_is_kept_once,
    quarter_totals_by_agent_and_county,
    settle_due_settles_rated_leftovers,
    completed_orders_by_year_and_quarter,
    announcements_follow_state_changes,
    announcements_taken_once_concurrently,
    read_events_follows_log,
    sms_queued_once_per_offer,
    sms_taken_once_and_finished,
    sms_lease_expiry_is_not_resent,
    sms_reports_match_once,
    sms_withdrawn_and_uncertain,
    sms_deferred_keeps_attempts,
    replies_handled_once,
    state_counts_follow_changes,
    open_board_lists_grid_phase_first,
    day_stats_count_claims_by_phase,
    orders_found_by_number_phone_and_agent,
    phone_search_finds_the_newest,
    order_changes_match_events,
    console_secret_is_kept,
);

#[test]
fn every_case_has_tests() {
    assert_eq!(
        GENERATED,
        conformance::CASES,
        "the list in this file must match conformance::CASES"
    );
}

/// Every case in one Redis database, as the suite promises cases do not
/// interfere.
#[tokio::test]
async fn redis_runs_all_cases_in_one_database() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn redis_connect_names_url_without_password() {
    // A port that was just free, so no server listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port();
    let url = format!("redis://:s3cret@127.0.0.1:{port}/");
    let err = RedisStore::connect(&url)
        .await
        .expect_err("nothing listens on the port");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("s3cret"), "{message}");

    let err = RedisStore::connect("http://127.0.0.1/")
        .await
        .expect_err("not a redis url");
    assert!(err.to_string().starts_with("invalid redis url"), "{err}");
}

#[tokio::test]
async fn redis_store_survives_restart() {
    let mut server = RedisServer::start();
    let store = connect(&server).await;
    let holder = AgentId::parse("A1").expect("valid agent id");
    let grid = GridCode::parse("431127100201").expect("valid grid code");

    let order = submit(&store).await;
    store
        .claim(&order, &holder, &grid, time(1))
        .await
        .expect("claim before the restart");

    server.stop();
    let err = store.ping().await.expect_err("ping while redis is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "ping: {err}");
    let err = store
        .order(&order)
        .await
        .expect_err("order while redis is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "order: {err}");
    let err = store
        .claim(&order, &holder, &grid, time(2))
        .await
        .expect_err("claim while redis is down");
    assert!(matches!(err, StoreError::Unavailable(_)), "claim: {err}");

    // The new server is empty: it keeps no data and has no scripts cached,
    // so this also checks that the scripts are loaded again.
    server.restart();
    store.ping().await.expect("ping after the restart");
    let order = submit(&store).await;
    let claimed = store
        .claim(&order, &holder, &grid, time(3))
        .await
        .expect("claim after the restart");
    assert_eq!(claimed.agent, Some(holder), "holder after the restart");
}

/// An order written before the hash had short field names: every field
/// under its long name, empty ones included, its changes in a list, its
/// request id in a key of its own and its number in one county-wide hash.
#[tokio::test]
async fn redis_upgrades_orders_with_long_field_names() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let prefix = "daiban:{431127}:";
    let (created, widens) = (time(0).timestamp_millis(), time(10).timestamp_millis());
    let client = ::redis::Client::open(server.url()).expect("redis url");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test server");
    let fields = [
        ("number", "20261123-0001".to_owned()),
        ("state", "offered_to_grid".to_owned()),
        ("request_text", "办理居住证".to_owned()),
        ("address", String::new()),
        ("applicant_name", "张三".to_owned()),
        ("applicant_phone", "13812341234".to_owned()),
        ("channel", "wechat".to_owned()),
        ("claim_code", "737111".to_owned()),
        ("create_time", created.to_string()),
        ("widen_time", widens.to_string()),
        ("widened", "0".to_owned()),
        ("escalated", "0".to_owned()),
        ("rating_comment", String::new()),
        ("cancel_reason", String::new()),
        ("released_by", String::new()),
        ("grid", "431127100201".to_owned()),
    ];
    // Order 5 is a copy of order 1 with another number, left to widen.
    let mut fifth = fields.clone();
    fifth[0].1 = "20261123-0005".to_owned();
    let () = ::redis::pipe()
        .hset_multiple(format!("{prefix}order:1"), &fields)
        .ignore()
        .hset_multiple(format!("{prefix}order:5"), &fifth)
        .ignore()
        .zadd(format!("{prefix}widen"), 5, widens)
        .ignore()
        .zadd(format!("{prefix}open:grid:431127100201"), 5, 5)
        .ignore()
        .set(format!("{prefix}seq"), 5)
        .ignore()
        .zadd(format!("{prefix}widen"), 1, widens)
        .ignore()
        .zadd(format!("{prefix}open:grid:431127100201"), 1, 1)
        .ignore()
        .rpush(
            format!("{prefix}changes:1"),
            format!("submitted||{created}"),
        )
        .ignore()
        .set(format!("{prefix}request:old-1"), 1)
        .ignore()
        .hset(format!("{prefix}numbers"), "20261123-0001", 1)
        .ignore()
        .query_async(&mut raw)
        .await
        .expect("write the old order");

    let id = daiban_domain::OrderId::new(CountyCode::parse("431127").expect("county"), 1);
    let stored = store.order(&id).await.expect("read the old order");
    assert_eq!(stored.number, "20261123-0001");
    assert_eq!(stored.applicant.phone.as_str(), "13812341234");
    assert!(!stored.widened, "widened: {stored:?}");
    assert!(stored.address.is_empty(), "address: {stored:?}");
    let changes = store.order_changes(&id).await.expect("old changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    let county = id.county().clone();
    let found = store
        .order_by_number(&county, "20261123-0001")
        .await
        .expect("search by the old number");
    assert_eq!(found.map(|order| order.id), Some(id.clone()));
    match store.submit(new_order(Some("old-1"))).await {
        Ok(Submitted::Existing(order)) => assert_eq!(order.id, id),
        other => panic!("a retry of the old request: expected the old order, got {other:?}"),
    }
    match store.submit(new_order(Some("new-1"))).await {
        Ok(Submitted::Created(order)) => {
            assert_eq!(order.id.sequence(), 6);
            let again = store.submit(new_order(Some("new-1"))).await;
            assert!(
                matches!(&again, Ok(Submitted::Existing(existing)) if existing.id == order.id),
                "{again:?}"
            );
            let found = store
                .order_by_number(&county, &order.number)
                .await
                .expect("search by the new number");
            assert_eq!(found.map(|found| found.id), Some(order.id));
        }
        other => panic!("a new request: expected a created order, got {other:?}"),
    }

    let holder = AgentId::parse("A1").expect("valid agent id");
    let grid = GridCode::parse("431127100201").expect("valid grid code");
    let open = store
        .open_orders(&county, &grid, time(1), 10)
        .await
        .expect("open orders of the old layout");
    let open: Vec<u64> = open.iter().map(|order| order.id.sequence()).collect();
    assert_eq!(open, vec![1, 5, 6], "old and new layouts together");
    let next = store.next_deadline(&county).await.expect("next_deadline");
    assert_eq!(next, Some(time(10)), "the old widening schedule counts");
    let claimed = store
        .claim(&id, &holder, &grid, time(1))
        .await
        .expect("claim the old order");
    assert_eq!(claimed.agent.as_ref(), Some(&holder));
    assert_eq!(claimed.request_text, stored.request_text);

    let names: Vec<String> = ::redis::cmd("HKEYS")
        .arg(format!("{prefix}order:1"))
        .query_async(&mut raw)
        .await
        .expect("HKEYS");
    assert!(names.contains(&"s".to_owned()), "{names:?}");
    for long in ["state", "applicant_phone", "address", "widened"] {
        assert!(!names.contains(&long.to_owned()), "{long} in {names:?}");
    }
    let list: bool = ::redis::cmd("EXISTS")
        .arg(format!("{prefix}changes:1"))
        .query_async(&mut raw)
        .await
        .expect("EXISTS");
    assert!(!list, "the list of changes moved into the hash");
    let kinds: Vec<EventKind> = store
        .order_changes(&id)
        .await
        .expect("changes after the claim")
        .into_iter()
        .map(|change| change.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Submitted, EventKind::Claimed]);
    assert_eq!(store.order(&id).await.expect("read again"), claimed);

    let widened = store
        .widen_due(&county, time(11), 10)
        .await
        .expect("widen the old and the new order");
    let mut widened: Vec<u64> = widened.iter().map(|order| order.id.sequence()).collect();
    widened.sort_unstable();
    assert_eq!(widened, vec![5, 6]);
    for old in ["widen", "open:grid:431127100201"] {
        let left: u64 = ::redis::cmd("ZCARD")
            .arg(format!("{prefix}{old}"))
            .query_async(&mut raw)
            .await
            .expect("ZCARD");
        assert_eq!(left, 0, "{old} still lists orders");
    }
}

/// Orders whose sequence numbers fall into two buckets of the grid phase
/// schedule, 8192 numbers each, and whose grid phases end in the other
/// order.
#[tokio::test]
async fn redis_grid_phase_crosses_buckets() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let client = ::redis::Client::open(server.url()).expect("redis url");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test server");
    let () = ::redis::cmd("SET")
        .arg("daiban:{431127}:seq")
        .arg(8190)
        .query_async(&mut raw)
        .await
        .expect("SET seq");

    // Sequence numbers 8191 to 8194; the later ones end their grid phase
    // first.
    let mut ids = Vec::new();
    for minutes in [9, 8, 7, 6] {
        let mut new = new_order(None);
        new.grid_phase_until = Some(time(minutes));
        new.escalate_at = time(60);
        match store.submit(new).await {
            Ok(Submitted::Created(order)) => ids.push(order.id),
            other => panic!("submit: {other:?}"),
        }
    }
    let sequences: Vec<u64> = ids.iter().map(|id| id.sequence()).collect();
    assert_eq!(sequences, vec![8191, 8192, 8193, 8194]);
    let county = ids[0].county().clone();
    let grid = GridCode::parse("431127100201").expect("valid grid code");
    let sequences_of = |orders: Vec<daiban_domain::WorkOrder>| -> Vec<u64> {
        orders.iter().map(|order| order.id.sequence()).collect()
    };

    let open = store
        .open_orders(&county, &grid, time(1), 10)
        .await
        .expect("open_orders");
    assert_eq!(
        sequences_of(open),
        vec![8191, 8192, 8193, 8194],
        "oldest first"
    );
    let board = store.open_board(&county, 2).await.expect("open_board");
    assert_eq!(
        sequences_of(board),
        vec![8194, 8193],
        "soonest to widen first"
    );
    assert_eq!(
        store.next_deadline(&county).await.expect("next"),
        Some(time(6))
    );

    let holder = AgentId::parse("A1").expect("valid agent id");
    store
        .claim(&ids[3], &holder, &grid, time(1))
        .await
        .expect("claim 8194");
    assert_eq!(
        store.next_deadline(&county).await.expect("next"),
        Some(time(7))
    );

    let widened = store
        .widen_due(&county, time(8), 10)
        .await
        .expect("widen_due");
    assert_eq!(sequences_of(widened), vec![8193, 8192], "across buckets");
    assert_eq!(
        store.next_deadline(&county).await.expect("next"),
        Some(time(9))
    );
    let widened = store
        .widen_due(&county, time(9), 10)
        .await
        .expect("widen_due");
    assert_eq!(sequences_of(widened), vec![8191]);
    let left: Vec<String> = ::redis::cmd("KEYS")
        .arg("daiban:{431127}:grid_*")
        .query_async(&mut raw)
        .await
        .expect("KEYS");
    assert!(
        left.is_empty(),
        "emptied schedules and indices remain: {left:?}"
    );
}

fn time(minutes: i64) -> DateTime<Utc> {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("a valid time");
    start + chrono::Duration::minutes(minutes)
}

async fn submit(store: &RedisStore) -> daiban_domain::OrderId {
    match store.submit(new_order(None)).await {
        Ok(Submitted::Created(order)) => order.id,
        other => panic!("submit: expected a created order, got {other:?}"),
    }
}

fn new_order(request_id: Option<&str>) -> NewOrder {
    let county = CountyCode::parse("431127").expect("valid county code");
    NewOrder {
        grid: Some(GridCode::parse("431127100201").expect("valid grid code")),
        county,
        request_id: request_id.map(str::to_owned),
        request_text: "办理居住证".to_owned(),
        matter: None,
        address: String::new(),
        applicant: Applicant {
            name: "张三".to_owned(),
            phone: PhoneNumber::parse("13812341234").expect("valid mobile number"),
        },
        channel: Channel::GovApp,
        create_time: time(0),
        grid_phase_until: Some(time(10)),
        escalate_at: time(30),
    }
}
