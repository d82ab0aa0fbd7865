//! Prometheus metrics, scraped over HTTP from a `daiban serve` process and
//! parsed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::redis::RedisServer;
use daiban_tests::service::{APP_KEY, connect, free_port};
use daiban_tests::{Config, ServiceProcess, grid_agents, precise_request, with_bearer};
use tokio::time::{Instant, sleep};

const GRID: &str = "431127100008";

/// One sample: the metric name and its labels.
type Series = (String, BTreeMap<String, String>);

/// Scrapes `/metrics` and parses the text format into samples.
fn scrape(port: u16) -> BTreeMap<Series, f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("metrics port accepts");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("response is text");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );

    let mut samples = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .expect("a sample line ends with its value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').expect("a label is key=value");
                (key.to_owned(), value.trim_matches('"').to_owned())
            })
            .collect();
        let value: f64 = value.parse().expect("a sample value is a number");
        samples.insert((name.to_owned(), labels), value);
    }
    samples
}

fn sample(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    *samples
        .get(&(name.to_owned(), labels.clone()))
        .unwrap_or_else(|| {
            panic!(
                "{name} {labels:?} missing from {:?}",
                samples.keys().collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn metrics_count_calls_claims_and_widening() {
    let redis = RedisServer::start();
    let metrics_port = free_port();
    let mut env = Config {
        widen_after: "200ms",
        ..Config::default()
    }
    .env();
    env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    env.insert(
        "DAIBAN_METRICS_LISTEN".into(),
        format!("127.0.0.1:{metrics_port}"),
    );
    let service = ServiceProcess::start(&env);

    // Plain HTTP on the same address counts apart from gRPC calls.
    let http = reqwest::Client::new();
    for path in ["/no-such-page", "/sms/aliyun/report"] {
        http.post(format!("http://{}{path}", service.addr))
            .body("[]")
            .send()
            .await
            .expect("the HTTP request completes");
    }

    let channel = connect(service.addr).await;
    let mut orders = WorkOrderServiceClient::new(channel.clone());
    let mut agents = AgentServiceClient::new(channel);
    let token = daiban_tests::service::agent_token;

    let claimed = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "metrics-1"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let widening = orders
        .submit_request(with_bearer(
            precise_request(GRID, "M003", "metrics-2"),
            APP_KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    let invalid = orders
        .submit_request(with_bearer(
            precise_request("431127999999", "M003", ""),
            APP_KEY,
        ))
        .await;
    assert!(invalid.is_err());
    let [first, second, ..] = &grid_agents(GRID)[..] else {
        panic!("two grid agents")
    };
    let claim = || pb::ClaimWorkOrderRequest {
        order_id: claimed.order_id.clone(),
    };
    agents
        .claim_work_order(with_bearer(claim(), &token(first)))
        .await
        .expect("first claim wins");
    agents
        .claim_work_order(with_bearer(claim(), &token(second)))
        .await
        .expect_err("second claim loses");

    let deadline = Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let samples = scrape(metrics_port);
        let widened = samples
            .iter()
            .find(|((name, _), _)| name == "daiban_widening_lag_seconds_count")
            .map(|(_, v)| *v);
        if widened == Some(1.0) {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "order {} did not widen: {widened:?}",
            widening.order_id
        );
        sleep(Duration::from_millis(100)).await;
    };

    let submit = "/daiban.v1.WorkOrderService/SubmitRequest";
    assert_eq!(
        sample(
            &samples,
            "daiban_grpc_calls_total",
            &[("code", "Ok"), ("method", submit)]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &samples,
            "daiban_grpc_calls_total",
            &[("code", "InvalidArgument"), ("method", submit)]
        ),
        1.0
    );
    let claim_method = "/daiban.v1.AgentService/ClaimWorkOrder";
    assert_eq!(
        sample(
            &samples,
            "daiban_grpc_calls_total",
            &[("code", "FailedPrecondition"), ("method", claim_method)]
        ),
        1.0
    );
    assert_eq!(
        sample(&samples, "daiban_claims_total", &[("result", "won")]),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "daiban_claims_total",
            &[("result", "ORDER_ALREADY_CLAIMED")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "daiban_orders_submitted_total",
            &[("offer", "grid")]
        ),
        2.0
    );
    assert_eq!(sample(&samples, "daiban_store_up", &[]), 1.0);
    assert_eq!(
        sample(
            &samples,
            "daiban_http_requests_total",
            &[("route", "other"), ("status", "404")]
        ),
        1.0
    );
    // No webhook secret is set in production mode, so webhooks are off.
    assert_eq!(
        sample(
            &samples,
            "daiban_http_requests_total",
            &[("route", "sms_webhook"), ("status", "403")]
        ),
        1.0
    );
    assert!(
        !samples
            .keys()
            .any(|(name, labels)| name == "daiban_grpc_calls_total"
                && labels.get("method").map(String::as_str) == Some("other")),
        "HTTP requests are not counted as gRPC calls"
    );
    assert!(sample(&samples, "daiban_sms_total", &[("result", "sent")]) > 0.0);

    // The store's gauges, refreshed every second: the settlement consumer
    // handles the county's events, the calls above used the pool, and one
    // order is claimed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let samples = scrape(metrics_port);
        let lag = samples
            .get(&(
                "daiban_points_consumer_lag".to_owned(),
                BTreeMap::from([("county".to_owned(), "431127".to_owned())]),
            ))
            .copied();
        // Gauges read before the claim above may still show.
        let claimed = samples
            .get(&(
                "daiban_orders".to_owned(),
                BTreeMap::from([
                    ("county".to_owned(), "431127".to_owned()),
                    ("state".to_owned(), "claimed".to_owned()),
                ]),
            ))
            .copied();
        if lag == Some(0.0) && claimed == Some(1.0) {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "the gauges did not catch up: lag {lag:?}, claimed orders {claimed:?}"
        );
        sleep(Duration::from_millis(100)).await;
    };
    // Orders by state: of the two orders, one is claimed.
    let orders = |state: &str| {
        sample(
            &samples,
            "daiban_orders",
            &[("county", "431127"), ("state", state)],
        )
    };
    assert_eq!(orders("claimed"), 1.0);
    let all: f64 = [
        "offered_to_grid",
        "offered_to_county",
        "claimed",
        "completed",
        "settled",
        "cancelled",
    ]
    .into_iter()
    .map(orders)
    .sum();
    assert_eq!(all, 2.0, "every order is counted in one state");
    assert_eq!(sample(&samples, "daiban_redis_pool_max_size", &[]), 32.0);
    let size = sample(&samples, "daiban_redis_pool_size", &[]);
    assert!(size >= 1.0, "connections open: {size}");
    assert!(size <= 32.0, "connections open: {size}");
    let available = sample(&samples, "daiban_redis_pool_available", &[]);
    assert!(available <= size, "idle {available} of {size} connections");
    let waiting = sample(&samples, "daiban_redis_pool_waiting", &[]);
    assert!(waiting >= 0.0, "calls waiting: {waiting}");
}
