//! Points and the quarterly bonus statement, on a private Redis: a
//! scenario small enough to compute by hand, settled through the event
//! stream with a consumer killed before acknowledging and an event handled
//! twice, closed, and exported by `daiban export-bonus` to the fen; and
//! the validation of quarters and counties.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use daiban_domain::{
    AgentId, Applicant, BonusRate, Channel, CountyCode, Directory, MatterCode, OrderId,
    PhoneNumber, Quarter, Rating, WorkResult,
};
use daiban_points::{Points, SettlementConsumer};
use daiban_proto::v1 as pb;
use daiban_proto::v1::points_service_client::PointsServiceClient;
use daiban_store::{Ledger, NewOrder, RedisStore, Store};
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{ADMIN_KEY, EXPORT_KEY, connect, daiban_binary};
use daiban_tests::{Config, ServiceProcess, bad_fields, reason, with_bearer};
use tonic::Code;

const COUNTY: &str = "431127";

/// Returns the UTC instant of a wall-clock time in UTC+8.
fn china(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .expect("UTC+8 is a valid offset")
        .with_ymd_and_hms(2026, month, day, hour, minute, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn county() -> CountyCode {
    CountyCode::parse(COUNTY).expect("valid county code")
}

/// Submits an order of `matter` (M004 is class 1, M003 class 2), lets
/// `agent` claim it and completes it at `time`, with a week's rating
/// window.
async fn complete(store: &RedisStore, agent: &str, matter: &str, time: DateTime<Utc>) -> OrderId {
    let directory = Directory::lanshan_demo();
    let agent = directory
        .agent(&AgentId::parse(agent).expect("valid agent id"))
        .expect("a demo agent");
    let matter = directory
        .matter(&MatterCode::parse(matter).expect("valid matter code"))
        .expect("a demo matter")
        .clone();
    let new = NewOrder {
        county: county(),
        request_id: None,
        request_text: matter.name.clone(),
        matter: Some(matter),
        grid: Some(agent.grid.clone()),
        address: String::new(),
        applicant: Applicant {
            name: "李四".to_owned(),
            phone: PhoneNumber::parse("13912345678").expect("valid phone"),
        },
        channel: Channel::GovApp,
        create_time: time - chrono::Duration::hours(2),
        grid_phase_until: None,
        escalate_at: time,
    };
    let order = store.submit(new).await.expect("submit").into_order();
    store
        .claim(
            &order.id,
            &agent.id,
            &agent.grid,
            time - chrono::Duration::hours(1),
        )
        .await
        .expect("claim");
    let result = WorkResult {
        text: "已办结".to_owned(),
        reference: String::new(),
    };
    store
        .complete(
            &order.id,
            &agent.id,
            result,
            None,
            time,
            time + chrono::Duration::days(7),
        )
        .await
        .expect("complete");
    order.id
}

async fn rate(store: &RedisStore, order: &OrderId, rating: Rating, time: DateTime<Utc>) {
    store.rate(order, rating, "", time).await.expect("rate");
}

/// Runs `daiban` with `args` against the service at `server`.
fn daiban(env: &std::collections::HashMap<String, String>, server: &str, args: &[&str]) -> Output {
    Command::new(daiban_binary())
        .args(args)
        .envs(env)
        .env("DAIBAN_SERVER", server)
        .env("RUST_LOG", "warn")
        .output()
        .expect("daiban runs")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("daiban-points-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn export(
    env: &std::collections::HashMap<String, String>,
    server: &str,
    quarter: &str,
    out: &Path,
) -> Vec<u8> {
    let output = daiban(
        env,
        server,
        &[
            "export-bonus",
            "--quarter",
            quarter,
            "--county",
            COUNTY,
            "--out",
            out.to_str().expect("UTF-8 path"),
        ],
    );
    assert!(
        output.status.success(),
        "export-bonus failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).expect("the export wrote its file")
}

/// The 2026Q3 statement of the scenario, computed by hand at 12.55 yuan a
/// point:
///
/// - A0001: class 2 very satisfied (2 + 1 = 3 points) and class 1
///   unsatisfied (0) in September: 3.0 points, 37.65 yuan.
/// - A0002: class 1 satisfied in August (1.5 + 1) and class 2 unrated,
///   settled at base points when its window ended (2): 4.5 points, 4.5 ×
///   12.55 = 56.475, rounded half up to 56.48 yuan.
/// - A0004: class 2 satisfied (3 points, 37.65 yuan); its class-1 order
///   rated average on 30 September settled only after the close, so it is
///   in 2026Q4.
/// - A June order (2026Q2) and an October one (2026Q4) are not in it.
const EXPECTED_Q3: &str = "\u{feff}帮办员积分奖励明细表
县,431127
季度,2026Q3
状态,已结账
结账时间,2026-10-01 09:00:00 (UTC+8)
每分奖励（元）,12.55
\"\"
帮办员编号,姓名,网格,乡镇,角色,一类工单,二类工单,满意,不满意,积分,奖励（元）
A0001,邓燕,辅仁社区居委会,塔峰镇,网格员,1,1,1,1,3.0,37.65
A0002,陈强玉,辅仁社区居委会,塔峰镇,网格员,1,1,1,0,4.5,56.48
A0004,陈小,南门社区居委会,塔峰镇,网格员,0,1,1,0,3.0,37.65
合计,3人,,,,2,3,3,1,10.5,131.78
";

#[tokio::test]
async fn hand_computed_statement_to_the_fen() {
    let redis = RedisServer::start();
    let store = Arc::new(
        RedisStore::connect(&redis.url())
            .await
            .expect("connect to the test redis"),
    );
    let county = county();
    let idle = Duration::from_secs(3600);

    // Settled and acknowledged in the second quarter: 30 June 23:59.
    let june = complete(&store, "A0001", "M004", china(6, 30, 20, 0)).await;
    rate(&store, &june, Rating::Satisfied, china(6, 30, 23, 59)).await;
    let august = complete(&store, "A0002", "M004", china(8, 20, 10, 0)).await;
    rate(&store, &august, Rating::Satisfied, china(8, 20, 12, 0)).await;
    let very = complete(&store, "A0001", "M003", china(9, 10, 10, 0)).await;
    rate(&store, &very, Rating::VerySatisfied, china(9, 10, 12, 0)).await;
    let unsatisfied = complete(&store, "A0001", "M004", china(9, 15, 10, 0)).await;
    rate(
        &store,
        &unsatisfied,
        Rating::Unsatisfied,
        china(9, 15, 12, 0),
    )
    .await;
    let unrated = complete(&store, "A0002", "M003", china(9, 20, 10, 0)).await;
    let twice = complete(&store, "A0004", "M003", china(9, 29, 10, 0)).await;
    rate(&store, &twice, Rating::Satisfied, china(9, 29, 12, 0)).await;

    // Consumer c1 takes every event so far and settles the rated orders,
    // then dies before acknowledging: each of its events is handled again.
    let taken = store
        .deliver_events(&county, "c1", idle, 1000)
        .await
        .expect("deliver_events");
    let mut first_pass = 0;
    for delivery in &taken {
        if delivery.event.kind == daiban_store::EventKind::Rated {
            let settled = store
                .settle_rated(&delivery.event.order, china(9, 30, 0, 0))
                .await
                .expect("settle_rated");
            first_pass += usize::from(settled.is_some());
        }
    }
    assert_eq!(first_pass, 5, "c1 settles the five rated orders");

    // The rating window of the unrated order ends on 27 September.
    let points = Points::new(store.clone(), BonusRate::from_fen_per_point(1255));
    let swept = points
        .settle_due(&county, china(9, 27, 10, 0))
        .await
        .expect("settle_due");
    assert_eq!(swept.len(), 1, "the unrated order settles: {swept:?}");
    assert_eq!(swept[0].points_tenths, 20, "at class-2 base points");

    // Rated half an hour before the quarter ends; consumer "dead" takes the
    // events and is killed before handling them.
    let late = complete(&store, "A0004", "M004", china(9, 30, 20, 0)).await;
    rate(&store, &late, Rating::Average, china(9, 30, 23, 30)).await;
    let held = store
        .deliver_events(&county, "dead", idle, 1000)
        .await
        .expect("deliver_events");
    let late_events: Vec<_> = held
        .iter()
        .filter(|d| d.event.order == late)
        .map(|d| d.event.kind)
        .collect();
    assert_eq!(
        late_events.last(),
        Some(&daiban_store::EventKind::Rated),
        "dead holds the late rating, after the settled events before it"
    );

    let directory = Directory::lanshan_demo();
    let q3 = Quarter::parse("2026Q3").expect("valid quarter");
    let closed = points
        .close_quarter(&directory, &county, q3, china(10, 1, 9, 0))
        .await
        .expect("close 2026Q3");
    assert_eq!(closed.close_time, Some(china(10, 1, 9, 0)));

    let october = complete(&store, "A0002", "M004", china(10, 2, 10, 0)).await;
    rate(&store, &october, Rating::VerySatisfied, china(10, 2, 12, 0)).await;

    // A live consumer takes over what c1 and "dead" left unacknowledged.
    let live = SettlementConsumer::new(store.clone(), vec![county.clone()], "live".to_owned())
        .with_claim_idle(Duration::ZERO);
    let handled = live.poll(china(10, 2, 13, 0)).await.expect("poll");
    assert!(handled >= taken.len() + held.len(), "handled {handled}");
    // Its settlements append `settled` events, which the next poll takes.
    let mut polls = 1;
    while live.poll(china(10, 2, 13, 0)).await.expect("poll") > 0 {
        polls += 1;
        assert!(polls < 5, "the log keeps growing");
    }

    let ledger = store.ledger(&county).await.expect("ledger");
    let mut orders: Vec<OrderId> = ledger.iter().map(|e| e.order.clone()).collect();
    orders.sort();
    let mut expected = vec![
        june,
        august,
        very,
        unsatisfied,
        unrated,
        twice,
        late.clone(),
        october,
    ];
    expected.sort();
    assert_eq!(orders, expected, "each order booked exactly once");
    let late_entry = ledger
        .iter()
        .find(|e| e.order == late)
        .expect("the late order is booked");
    assert_eq!(late_entry.period.quarter, "2026Q4", "after the close");
    assert_eq!(late_entry.period.month, "2026-10", "first month of 2026Q4");
    assert_eq!(
        late_entry.settle_time,
        china(9, 30, 23, 30),
        "its rating time"
    );

    let q4 = points
        .statement(&directory, &county, q3.next())
        .await
        .expect("2026Q4 statement");
    let q4_lines: Vec<(String, i64)> = q4
        .lines
        .iter()
        .map(|l| (l.agent_id.clone(), l.points_tenths))
        .collect();
    assert_eq!(
        q4_lines,
        vec![("A0002".to_owned(), 25), ("A0004".to_owned(), 15)],
        "2026Q4 holds the October order and the late one"
    );
    assert_eq!(q4.close_time, None, "2026Q4 is open");

    // The service runs at 10 yuan a point, but the frozen statement keeps
    // the rate of its close.
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);
    let server = format!("http://{}", service.addr);
    let dir = scratch_dir();

    let csv = export(&env, &server, "2026Q3", &dir.join("q3.csv"));
    assert_eq!(String::from_utf8(csv.clone()).expect("UTF-8"), EXPECTED_Q3);
    let again = export(&env, &server, "2026Q3", &dir.join("q3-again.csv"));
    assert_eq!(again, csv, "a closed quarter exports the same bytes");
    let xlsx = export(&env, &server, "2026Q3", &dir.join("q3.xlsx"));
    let xlsx_again = export(&env, &server, "2026Q3", &dir.join("q3-again.xlsx"));
    assert!(xlsx.starts_with(b"PK"), "an XLSX file is a zip archive");
    assert_eq!(xlsx_again, xlsx, "the XLSX repeats byte for byte too");

    let q4_csv = export(&env, &server, "2026Q4", &dir.join("q4.csv"));
    let q4_text = String::from_utf8(q4_csv).expect("UTF-8");
    assert!(q4_text.contains("状态,未结账"), "{q4_text}");
    assert!(q4_text.contains("每分奖励（元）,10.00"), "{q4_text}");
    assert!(
        q4_text.ends_with("合计,2人,,,,2,0,1,0,4.0,40.00\n"),
        "{q4_text}"
    );

    let closed_again = daiban(
        &env,
        &server,
        &["close-quarter", "--county", COUNTY, "--quarter", "2026Q3"],
    );
    assert_eq!(closed_again.status.code(), Some(3), "closed already");
    let stderr = String::from_utf8_lossy(&closed_again.stderr);
    assert!(stderr.contains("closed already"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn quarters_and_counties_are_validated() {
    let redis = RedisServer::start();
    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);
    let mut points = PointsServiceClient::new(connect(service.addr).await);

    let cases = [
        ("431127", "2026Q5", "quarter"),
        ("431127", "2026-Q3", "quarter"),
        ("431127", "", "quarter"),
        ("999999", "2026Q3", "county_code"),
        ("4311", "2026Q3", "county_code"),
    ];
    for (county_code, quarter, field) in cases {
        let request = pb::ExportBonusStatementRequest {
            county_code: county_code.into(),
            quarter: quarter.into(),
        };
        let status = points
            .export_bonus_statement(with_bearer(request, EXPORT_KEY))
            .await
            .expect_err("an invalid export fails");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{county_code} {quarter}"
        );
        assert_eq!(reason(&status), "INVALID_FIELD", "{county_code} {quarter}");
        assert_eq!(bad_fields(&status), [field], "{county_code} {quarter}");

        let request = pb::CloseQuarterRequest {
            county_code: county_code.into(),
            quarter: quarter.into(),
        };
        let status = points
            .close_quarter(with_bearer(request, ADMIN_KEY))
            .await
            .expect_err("an invalid close fails");
        assert_eq!(
            bad_fields(&status),
            [field],
            "close {county_code} {quarter}"
        );
    }

    let request = pb::CloseQuarterRequest {
        county_code: COUNTY.into(),
        quarter: "2199Q4".into(),
    };
    let status = points
        .close_quarter(with_bearer(request.clone(), ADMIN_KEY))
        .await
        .expect_err("a quarter that has not ended");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "QUARTER_NOT_ENDED");
    let status = points
        .close_quarter(with_bearer(request, EXPORT_KEY))
        .await
        .expect_err("closing needs the admin scope");
    assert_eq!(status.code(), Code::PermissionDenied);

    let status = points
        .list_inactive_agents(with_bearer(
            pb::ListInactiveAgentsRequest {
                county_code: COUNTY.into(),
                year: 99,
            },
            EXPORT_KEY,
        ))
        .await
        .expect_err("a bad year");
    assert_eq!(bad_fields(&status), ["year"]);
    let status = points
        .list_agent_ranking(with_bearer(
            pb::ListAgentRankingRequest {
                county_code: COUNTY.into(),
                period: "2026-Q3".into(),
                page_size: 0,
            },
            EXPORT_KEY,
        ))
        .await
        .expect_err("a bad period");
    assert_eq!(bad_fields(&status), ["period"]);

    let server = format!("http://{}", service.addr);
    let bad = daiban(&env, &server, &["export-bonus", "--quarter", "2026Q5"]);
    assert_eq!(bad.status.code(), Some(3), "the service rejects 2026Q5");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("quarter"), "{stderr}");
    let bad = daiban(
        &env,
        &server,
        &["export-bonus", "--quarter", "2026Q3", "--out", "q3.txt"],
    );
    assert_eq!(bad.status.code(), Some(2), "an unknown extension");
    let unreachable = daiban(
        &env,
        "http://127.0.0.1:1",
        &["export-bonus", "--quarter", "2026Q3"],
    );
    assert_eq!(unreachable.status.code(), Some(5), "no service to reach");
}

#[tokio::test]
async fn activity_lists_follow_completions() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect to the test redis");
    complete(&store, "A0001", "M004", china(3, 1, 10, 0)).await;
    complete(&store, "A0001", "M004", china(8, 1, 10, 0)).await;
    complete(&store, "A0004", "M003", china(8, 2, 10, 0)).await;

    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let service = ServiceProcess::start(&env);
    let mut points = PointsServiceClient::new(connect(service.addr).await);

    let ranking = points
        .list_agent_ranking(with_bearer(
            pb::ListAgentRankingRequest {
                county_code: String::new(),
                period: "2026".into(),
                page_size: 0,
            },
            EXPORT_KEY,
        ))
        .await
        .expect("ranking")
        .into_inner();
    let ranks: Vec<(i32, String, i64)> = ranking
        .agents
        .iter()
        .map(|a| (a.rank, a.agent_id.clone(), a.completed_orders))
        .collect();
    assert_eq!(
        ranks,
        vec![(1, "A0001".to_owned(), 2), (2, "A0004".to_owned(), 1)]
    );
    assert_eq!(ranking.agents[0].name, "邓燕");

    let quarter = points
        .list_agent_ranking(with_bearer(
            pb::ListAgentRankingRequest {
                county_code: COUNTY.into(),
                period: "2026Q3".into(),
                page_size: 1,
            },
            EXPORT_KEY,
        ))
        .await
        .expect("ranking")
        .into_inner();
    assert_eq!(quarter.agents.len(), 1, "page_size 1");
    assert_eq!(quarter.agents[0].rank, 1, "a tie shares rank 1");

    let inactive = points
        .list_inactive_agents(with_bearer(
            pb::ListInactiveAgentsRequest {
                county_code: COUNTY.into(),
                year: 2026,
            },
            EXPORT_KEY,
        ))
        .await
        .expect("inactive list")
        .into_inner();
    let ids: Vec<&str> = inactive
        .agents
        .iter()
        .map(|a| a.agent_id.as_str())
        .collect();
    let demo_agents = Directory::lanshan_demo().agents().count();
    assert_eq!(ids.len(), demo_agents - 2, "everyone but A0001 and A0004");
    assert!(!ids.contains(&"A0001"), "A0001 completed orders");
    assert!(ids.contains(&"A0002"), "A0002 completed none");
    assert!(
        inactive.agents.iter().all(|a| !a.joined_during_year),
        "the demo directory has no join dates"
    );
}
