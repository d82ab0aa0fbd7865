//! The request checks of the gRPC services on any field values. The calls
//! go to a `daiban serve` service in this process with state in memory:
//! `SubmitRequest` (text fields, phone number, grid code, address, matter,
//! channel, request id, county), `GetWorkOrder` (order id) and
//! `ListAgentRanking` (year or quarter).
//!
//! A panic in any thread aborts the process, which libFuzzer reports as a
//! crash. Every call must end with a status of its own: `INTERNAL` or
//! `UNKNOWN` would mean a check let something through or the connection
//! broke.

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use daiban_proto::v1 as pb;
use daiban_proto::v1::points_service_client::PointsServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_server::{Service, Settings};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// The byte that separates the fields of one input. It never occurs in
/// UTF-8, so each field is free to hold any text.
const SEPARATOR: u8 = 0xFF;

struct Target {
    runtime: Runtime,
    channel: Channel,
}

/// The service, started once on a free loopback port in development mode,
/// with rate limits far above what the fuzzer sends.
static TARGET: LazyLock<Target> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let env = HashMap::from([
        ("DAIBAN_LISTEN", "127.0.0.1:0"),
        ("DAIBAN_RATE_LIMIT_KEY", "1000000"),
        ("DAIBAN_RATE_LIMIT_AGENT", "1000000"),
    ]);
    let settings = Settings::from_lookup(|name| env.get(name).map(|v| (*v).to_owned()))
        .expect("the fuzz settings are valid");
    let channel = runtime.block_on(async {
        let service = Service::bind(&settings).await.expect("the service binds");
        let addr = service.local_addr();
        tokio::spawn(service.run(std::future::pending()));
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("a loopback url is valid")
            .connect()
            .await
            .expect("the service accepts connections")
    });
    Target { runtime, channel }
});

fn assert_answered<T: std::fmt::Debug>(call: &str, result: Result<T, tonic::Status>) {
    if let Err(status) = result {
        assert!(
            !matches!(status.code(), Code::Internal | Code::Unknown),
            "{call} failed without a status of its own: {status:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let target = &*TARGET;
    let channel_value = data.first().map_or(0, |b| i32::from(*b) - 8);
    let mut fields = data
        .get(1..)
        .unwrap_or_default()
        .split(|b| *b == SEPARATOR)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    let mut next = || fields.next().unwrap_or_default();

    let submit = pb::SubmitRequestRequest {
        request_text: next(),
        matter_code: next(),
        applicant: Some(pb::Applicant {
            name: next(),
            phone: next(),
        }),
        grid_code: next(),
        address: next(),
        channel: channel_value,
        request_id: next(),
        county_code: next(),
    };
    let get = pb::GetWorkOrderRequest { order_id: next() };
    let ranking = pb::ListAgentRankingRequest {
        county_code: next(),
        period: next(),
        ..Default::default()
    };

    target.runtime.block_on(async {
        let mut work_orders = WorkOrderServiceClient::new(target.channel.clone());
        assert_answered("SubmitRequest", work_orders.submit_request(submit).await);
        assert_answered("GetWorkOrder", work_orders.get_work_order(get).await);
        let mut points = PointsServiceClient::new(target.channel.clone());
        assert_answered("ListAgentRanking", points.list_agent_ranking(ranking).await);
    });
});
