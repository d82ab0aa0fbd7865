//! The store's figures for the metrics against a private `redis-server`:
//! the settlement group's lag as events are appended, delivered and
//! acknowledged, and the connection pool's state.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use daiban_domain::{Applicant, Channel, CountyCode, GridCode, PhoneNumber};
use daiban_store::stats::{ConsumerLag, Stats};
use daiban_store::{Ledger, MemoryStore, NewOrder, RedisStore, Store, Submitted};
use daiban_tests::redis::RedisServer;

fn county() -> CountyCode {
    CountyCode::parse("431127").expect("valid county code")
}

fn time(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("valid time")
        + chrono::Duration::minutes(minutes)
}

/// Submits an order, which appends one `submitted` event to the log.
async fn submit(store: &dyn Store, request_id: &str) {
    let new = NewOrder {
        county: county(),
        request_id: Some(request_id.to_owned()),
        request_text: "办理居住证".to_owned(),
        matter: None,
        grid: Some(GridCode::parse("431127100201").expect("valid grid code")),
        address: String::new(),
        applicant: Applicant {
            name: "张三".to_owned(),
            phone: PhoneNumber::parse("13812341234").expect("valid mobile number"),
        },
        channel: Channel::GovApp,
        create_time: time(0),
        grid_phase_until: Some(time(10)),
        escalate_at: time(30),
    };
    let submitted = store.submit(new).await.expect("submit succeeds");
    assert!(matches!(submitted, Submitted::Created(_)), "{submitted:?}");
}

async fn lag(store: &RedisStore) -> ConsumerLag {
    let stats = store.stats(&[county()]).await.expect("stats are readable");
    assert_eq!(stats.settlement_lag.len(), 1, "{stats:?}");
    let (reported, lag) = stats.settlement_lag[0].clone();
    assert_eq!(reported, county());
    lag
}

#[tokio::test]
async fn redis_lag_follows_the_settlement_group() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect to the test server");

    let empty = lag(&store).await;
    assert_eq!(empty.undelivered, Some(0), "no log yet");
    assert_eq!(empty.pending, 0);

    for i in 0..5 {
        submit(&store, &format!("stats-{i}")).await;
    }
    let before_group = lag(&store).await;
    assert_eq!(
        before_group.undelivered,
        Some(5),
        "before the group exists, every event counts"
    );
    assert_eq!(before_group.pending, 0);

    let delivered = store
        .deliver_events(&county(), "stats-test", Duration::from_secs(60), 2)
        .await
        .expect("events are delivered");
    assert_eq!(delivered.len(), 2);
    let after_delivery = lag(&store).await;
    assert_eq!(after_delivery.undelivered, Some(3));
    assert_eq!(after_delivery.pending, 2);
    assert_eq!(after_delivery.unhandled(), Some(5));

    let ids: Vec<String> = delivered.iter().take(1).map(|d| d.id.clone()).collect();
    store
        .acknowledge_events(&county(), &ids)
        .await
        .expect("acknowledged");
    let acknowledged = lag(&store).await;
    assert_eq!(acknowledged.undelivered, Some(3));
    assert_eq!(acknowledged.pending, 1);
    assert_eq!(acknowledged.unhandled(), Some(4));
}

#[tokio::test]
async fn redis_reports_its_pool() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect to the test server");
    let stats = store.stats(&[]).await.expect("stats are readable");
    let pool = stats.pool.expect("the Redis store has a pool");
    assert!(
        pool.size >= 1,
        "the start-up check opened a connection: {pool:?}"
    );
    assert!(pool.size <= pool.max_size, "{pool:?}");
    assert!(pool.available <= pool.size, "{pool:?}");
    assert_eq!(pool.waiting, 0, "nothing waits for a connection: {pool:?}");
    assert!(stats.settlement_lag.is_empty(), "no county was asked for");
}

#[tokio::test]
async fn memory_store_reports_no_figures() {
    let store = MemoryStore::new();
    submit(&store, "stats-memory").await;
    let stats = store.stats(&[county()]).await.expect("stats are readable");
    assert!(stats.settlement_lag.is_empty(), "{stats:?}");
    assert_eq!(stats.pool, None);
}
