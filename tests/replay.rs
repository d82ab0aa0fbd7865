//! The demo week replayed through gRPC against a `daiban serve` process
//! with its own Redis, and its counts checked against each other, against
//! the points ledger and against the exported bonus statement.

use std::collections::HashSet;
use std::process::Command;

use chrono::Utc;
use daiban_domain::{BonusRate, CountyCode, MatterClass, Quarter, format_points, format_yuan};
use daiban_proto::v1 as pb;
use daiban_proto::v1::points_service_client::PointsServiceClient;
use daiban_store::{Ledger, RedisStore};
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{EXPORT_KEY, connect, daiban_binary};
use daiban_tests::{Config, ServiceProcess, with_bearer};
use serde_json::Value;

const REQUESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/lanshan/requests.csv");

fn distinct_request_ids() -> (usize, usize) {
    let text = std::fs::read_to_string(REQUESTS).expect("demo requests are readable");
    let ids: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    (ids.len(), distinct.len())
}

#[tokio::test]
async fn demo_week_replays_and_counts_add_up() {
    let redis = RedisServer::start();
    let config = Config {
        widen_after: "300ms",
        escalate_after: "2s",
        rating_window: "1s",
        ..Config::default()
    };
    let mut env = config.env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);

    let output = Command::new(daiban_binary())
        .args([
            "replay",
            "--requests",
            REQUESTS,
            "--speed",
            "50000",
            "--seed",
            "7",
            "--json",
            "--settle-wait",
            "20s",
        ])
        .envs(&env)
        .env("DAIBAN_SERVER", format!("http://{}", service.addr))
        .env("RUST_LOG", "warn")
        .output()
        .expect("daiban replay runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "replay failed: {stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("replay prints JSON");
    let count = |name: &str| {
        summary[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} missing from {summary}"))
    };

    let (rows, distinct) = distinct_request_ids();
    assert_eq!(count("rows"), rows as u64);
    assert_eq!(
        count("orders"),
        distinct as u64,
        "one order per distinct request_id"
    );
    assert_eq!(count("retries_absorbed"), (rows - distinct) as u64);
    assert_eq!(count("rejected"), 0, "{stderr}");
    assert_eq!(
        summary["errors"].as_object().map(|e| e.len()),
        Some(0),
        "{summary}"
    );

    let orders = count("orders");
    assert_eq!(
        count("offered_to_grid") + count("offered_to_county_at_once"),
        orders
    );
    assert_eq!(
        count("claimed_in_grid_phase")
            + count("claimed_after_widening")
            + count("unclaimed")
            + count("cancelled"),
        orders,
        "each order is claimed in its grid phase, claimed after widening, unclaimed or cancelled"
    );
    assert_eq!(
        count("offered_to_county_at_once")
            + count("claimed_in_grid_phase")
            + count("widened")
            + count("cancelled_in_grid_phase"),
        orders,
        "each order is offered county-wide at once, claimed in its grid phase, widened, or cancelled before widening"
    );
    assert!(
        count("unresolved_address") > 0,
        "the demo week has unresolved addresses"
    );
    assert!(count("unresolved_address") <= count("offered_to_county_at_once"));
    assert!(count("claimed_in_grid_phase") > 0);
    assert!(count("claimed_after_widening") > 0);
    assert!(
        count("lost_races") > 0,
        "simulated agents race for some orders"
    );
    assert!(count("completed") > 0);
    assert_eq!(
        count("settled"),
        count("completed"),
        "every completed order settles within the short rating window"
    );
    assert!(
        count("rated") < count("completed"),
        "some orders settle unrated"
    );

    // The points of all settled orders equal the sum of all agents' ledgers.
    let channel = connect(service.addr).await;
    let mut points = PointsServiceClient::new(channel);
    let mut ledger_total = 0;
    for agent in daiban_tests::demo_directory().agents() {
        let report = points
            .get_agent_points(with_bearer(
                pb::GetAgentPointsRequest {
                    agent_id: agent.id.to_string(),
                },
                EXPORT_KEY,
            ))
            .await
            .expect("points are readable")
            .into_inner();
        ledger_total += report.months.iter().map(|m| m.points_tenths).sum::<i64>();
    }
    assert_eq!(
        ledger_total,
        summary["points_settled_tenths"].as_i64().unwrap()
    );

    // The export job's totals row equals the sum of the quarter's ledger.
    let quarter = Quarter::of(Utc::now());
    let out = std::env::temp_dir().join(format!("daiban-week-{}.csv", std::process::id()));
    let export = Command::new(daiban_binary())
        .args(["export-bonus", "--quarter", &quarter.to_string(), "--out"])
        .arg(&out)
        .envs(&env)
        .env("DAIBAN_SERVER", format!("http://{}", service.addr))
        .output()
        .expect("daiban export-bonus runs");
    assert!(
        export.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    let text = std::fs::read_to_string(&out).expect("the export wrote its file");
    let _ = std::fs::remove_file(&out);
    let totals: Vec<&str> = text
        .lines()
        .last()
        .expect("the export has rows")
        .split(',')
        .collect();
    assert_eq!(
        totals[0], "合计",
        "the last row is the totals row: {totals:?}"
    );

    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let county = CountyCode::parse("431127").expect("valid county code");
    let ledger: Vec<_> = store
        .ledger(&county)
        .await
        .expect("ledger")
        .into_iter()
        .filter(|entry| entry.period.quarter == quarter.to_string())
        .collect();
    let points: i64 = ledger.iter().map(|e| i64::from(e.points_tenths)).sum();
    let class1 = ledger
        .iter()
        .filter(|e| e.class == MatterClass::One)
        .count();
    assert!(!ledger.is_empty(), "the week settled into {quarter}");
    assert_eq!(totals[5], class1.to_string(), "class-1 orders");
    assert_eq!(
        totals[6],
        (ledger.len() - class1).to_string(),
        "class-2 orders"
    );
    assert_eq!(totals[9], format_points(points), "points");
    assert_eq!(
        totals[10],
        format_yuan(BonusRate::default().bonus_fen(points)),
        "bonus at 10 yuan a point"
    );
    drop(redis);
}
