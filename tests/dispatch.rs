//! Widening, escalation, settlement and races, with millisecond timings,
//! and several service processes on one Redis.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect};
use daiban_tests::{
    Config, ServiceProcess, TestApp, agents_outside, grid_agents, precise_request, reason,
    spawn_app, with_bearer,
};
use tokio::time::{Instant, sleep};
use tonic::Code;

const GRID: &str = "431127100008";

async fn get(app: &TestApp, order_id: &str) -> pb::WorkOrder {
    app.work_orders()
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: order_id.into(),
            },
            APP_KEY,
        ))
        .await
        .expect("get succeeds")
        .into_inner()
}

/// Polls the order until `done` holds, for at most `limit`.
async fn wait_for(
    app: &TestApp,
    order_id: &str,
    limit: Duration,
    done: impl Fn(&pb::WorkOrder) -> bool,
) -> pb::WorkOrder {
    let deadline = Instant::now() + limit;
    loop {
        let order = get(app, order_id).await;
        if done(&order) {
            return order;
        }
        assert!(
            Instant::now() < deadline,
            "order {order_id} did not reach the expected state: {order:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

fn millis(time: &Option<prost_types::Timestamp>) -> i64 {
    let time = time.as_ref().expect("timestamp is set");
    time.seconds * 1000 + i64::from(time.nanos) / 1_000_000
}

#[tokio::test]
async fn order_widens_after_grid_phase_and_outsider_claims() {
    let app = spawn_app(Config {
        widen_after: "300ms",
        ..Config::default()
    })
    .await;
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "widen-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(millis(&order.widen_time) - millis(&order.create_time), 300);

    let widened = wait_for(&app, &order.order_id, Duration::from_secs(5), |o| o.widened).await;
    assert_eq!(widened.state, pb::WorkOrderState::OfferedToCounty as i32);

    let outsider = agents_outside(GRID, 1).remove(0);
    let token = app.token(&outsider);
    let open = app
        .agent_api()
        .list_open_orders(with_bearer(pb::ListOpenOrdersRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(
        open.work_orders
            .iter()
            .any(|o| o.order_id == order.order_id),
        "a widened order is open to the county"
    );

    let claimed = app
        .agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &token,
        ))
        .await
        .expect("outsider claims after widening")
        .into_inner();
    assert!(millis(&claimed.claim_time) >= millis(&order.widen_time));
}

#[tokio::test]
async fn fifty_agents_race_and_one_wins() {
    let app = spawn_app(Config {
        widen_after: "100ms",
        ..Config::default()
    })
    .await;
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "race-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    wait_for(&app, &order.order_id, Duration::from_secs(5), |o| o.widened).await;

    let racers = agents_outside(GRID, 50);
    assert_eq!(racers.len(), 50);
    let mut tasks = tokio::task::JoinSet::new();
    for agent in racers {
        let mut client = app.agent_api();
        let request = with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &app.token(&agent),
        );
        tasks.spawn(async move { (agent, client.claim_work_order(request).await) });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(joined) = tasks.join_next().await {
        let (agent, result) = joined.unwrap();
        match result {
            Ok(order) => winners.push((agent, order.into_inner())),
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "ORDER_ALREADY_CLAIMED");
                losers += 1;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one agent wins");
    assert_eq!(losers, 49);
    let stored = get(&app, &order.order_id).await;
    assert_eq!(stored.agent_id, winners[0].0);
}

#[tokio::test]
async fn unclaimed_order_escalates_once() {
    let app = spawn_app(Config {
        widen_after: "100ms",
        escalate_after: "200ms",
        ..Config::default()
    })
    .await;
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "escalate-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let escalated = wait_for(&app, &order.order_id, Duration::from_secs(5), |o| {
        o.escalated
    })
    .await;
    assert_eq!(
        escalated.state,
        pb::WorkOrderState::OfferedToCounty as i32,
        "escalation keeps the order open"
    );

    let agent = agents_outside(GRID, 1).remove(0);
    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id,
            },
            &app.token(&agent),
        ))
        .await
        .expect("an escalated order can still be grabbed");
}

#[tokio::test]
async fn unrated_order_settles_after_rating_window() {
    let app = spawn_app(Config {
        rating_window: "300ms",
        ..Config::default()
    })
    .await;
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(GRID, "M004", "window-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let agent = grid_agents(GRID).remove(0);
    let token = app.token(&agent);
    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap();
    app.agent_api()
        .complete_work_order(with_bearer(
            pb::CompleteWorkOrderRequest {
                order_id: order.order_id.clone(),
                result_text: "已办结".into(),
                result_reference: String::new(),
                matter_code: String::new(),
            },
            &token,
        ))
        .await
        .unwrap();

    let settled = wait_for(&app, &order.order_id, Duration::from_secs(5), |o| {
        o.state == pb::WorkOrderState::Settled as i32
    })
    .await;
    assert_eq!(
        settled.points_tenths, 15,
        "an unrated class-1 order settles at 1.5 points"
    );
    assert_eq!(settled.rating, pb::Rating::Unspecified as i32);

    let late = app
        .work_orders()
        .rate_work_order(with_bearer(
            pb::RateWorkOrderRequest {
                order_id: order.order_id.clone(),
                rating: pb::Rating::Satisfied as i32,
                comment: String::new(),
            },
            APP_KEY,
        ))
        .await
        .expect_err("rating after the window fails");
    assert_eq!(reason(&late), "ORDER_STATE_CONFLICT");
    assert_eq!(
        get(&app, &order.order_id).await.points_tenths,
        15,
        "settled points never change"
    );
}

/// Counts the SMS logged per (order, agent) across processes.
fn sms_per_agent(processes: &[ServiceProcess]) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for process in processes {
        for line in process.log().iter().filter(|l| l.contains("sms logged")) {
            let field = |name: &str| {
                line.split(&format!("{name}="))
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_owned)
            };
            // The SMS id is `<order>.<offer>.<agent>`.
            let id = field("sms.id").unwrap_or_default();
            let mut parts = id.splitn(3, '.');
            if let (Some(order), Some(_offer), Some(agent)) =
                (parts.next(), parts.next(), parts.next())
            {
                *counts
                    .entry((order.to_owned(), agent.to_owned()))
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Counts the log lines of `needle` per order id across processes.
fn count_per_order(processes: &[ServiceProcess], needle: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for process in processes {
        for line in process.log().iter().filter(|l| l.contains(needle)) {
            if let Some(id) = line
                .split("order.id=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
            {
                *counts.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[tokio::test]
async fn two_processes_widen_and_notify_each_order_once() {
    let redis = RedisServer::start();
    let config = Config {
        widen_after: "200ms",
        ..Config::default()
    };
    let mut env = config.env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.insert("RUST_LOG".into(), "info,daiban_dispatch=debug".into());
    let processes = [ServiceProcess::start(&env), ServiceProcess::start(&env)];

    let channels = [
        connect(processes[0].addr).await,
        connect(processes[1].addr).await,
    ];
    let mut order_ids = Vec::new();
    for i in 0..40 {
        let mut client = WorkOrderServiceClient::new(channels[i % 2].clone());
        let order = client
            .submit_request(with_bearer(
                precise_request(GRID, "M003", &format!("multi-{i}")),
                APP_KEY,
            ))
            .await
            .expect("submit to either process succeeds")
            .into_inner();
        order_ids.push(order.order_id);
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut widened = count_per_order(&processes, "order widened");
    while widened.len() < order_ids.len() && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
        widened = count_per_order(&processes, "order widened");
    }
    // Wait a little more so that a second, wrong widening would show.
    sleep(Duration::from_millis(600)).await;
    widened = count_per_order(&processes, "order widened");
    for id in &order_ids {
        assert_eq!(
            widened.get(id),
            Some(&1),
            "order {id} widened {:?} times",
            widened.get(id)
        );
    }

    let county_offers = count_per_order(&processes, "offered to county");
    for id in &order_ids {
        assert_eq!(
            county_offers.get(id),
            Some(&1),
            "order {id} offered county-wide {:?} times",
            county_offers.get(id)
        );
    }
    // One SMS per agent per order: the grid's agents at submit, the rest of
    // the county at widening. The sender logs each as it goes out.
    let active = daiban_tests::demo_directory()
        .agents()
        .filter(|a| a.active)
        .count();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sms_per_agent = sms_per_agent(&processes);
    while sms_per_agent.len() < active * order_ids.len() && Instant::now() < deadline {
        sleep(Duration::from_millis(200)).await;
        sms_per_agent = self::sms_per_agent(&processes);
    }
    let twice: Vec<_> = sms_per_agent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "agents notified twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    let orders: HashSet<&String> = sms_per_agent.keys().map(|(o, _)| o).collect();
    assert_eq!(orders.len(), order_ids.len());
    assert_eq!(
        sms_per_agent.len(),
        active * order_ids.len(),
        "every active agent hears of every order once"
    );

    // Both processes serve the same orders: a claim through one is seen by
    // the other.
    let agent = agents_outside(GRID, 1).remove(0);
    let token = daiban_tests::service::agent_token(&agent);
    AgentServiceClient::new(channels[0].clone())
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order_ids[0].clone(),
            },
            &token,
        ))
        .await
        .expect("claim through the first process");
    let seen = WorkOrderServiceClient::new(channels[1].clone())
        .get_work_order(with_bearer(
            pb::GetWorkOrderRequest {
                order_id: order_ids[0].clone(),
            },
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.agent_id, agent);
}

#[tokio::test]
async fn announcement_of_dead_replica_is_sent_by_another() {
    use daiban_domain::{Applicant, Channel, CountyCode, GridCode, PhoneNumber};
    use daiban_store::{NewOrder, RedisStore, Store};

    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("store connects");
    let now = chrono::Utc::now();
    let order = store
        .submit(NewOrder {
            county: CountyCode::parse("431127").unwrap(),
            request_id: None,
            request_text: "我要开餐馆".into(),
            matter: None,
            grid: Some(GridCode::parse(GRID).unwrap()),
            address: String::new(),
            applicant: Applicant {
                name: "李四".into(),
                phone: PhoneNumber::parse("13912345678").unwrap(),
            },
            channel: Channel::Wechat,
            create_time: now,
            grid_phase_until: Some(now + chrono::Duration::minutes(10)),
            escalate_at: now + chrono::Duration::minutes(40),
        })
        .await
        .expect("submit succeeds")
        .into_order();

    // A replica takes the announcement and dies before sending it.
    let lease = Duration::from_secs(2);
    let taken = store
        .take_announcements(&order.county, chrono::Utc::now(), lease, 10)
        .await
        .expect("announcements can be taken");
    assert_eq!(taken.len(), 1);
    let died = Instant::now();

    let mut env = Config::default().env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    let survivor = ServiceProcess::start(&env);
    let needle = format!("order.id={}", order.id);
    let deadline = died + Duration::from_secs(6);
    while !survivor
        .log()
        .iter()
        .any(|l| l.contains("offered to grid") && l.contains(&needle))
    {
        assert!(
            Instant::now() < deadline,
            "the survivor did not send the offer:\n{}",
            survivor.log().join("\n")
        );
        sleep(Duration::from_millis(50)).await;
    }
    let waited = died.elapsed();
    assert!(
        waited >= lease - Duration::from_millis(100),
        "the lease was not respected: sent after {waited:?}"
    );
}
