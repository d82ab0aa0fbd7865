//! Prometheus metrics on their own address (`DAIBAN_METRICS_LISTEN`).
//!
//! The series, all prefixed `daiban_`:
//! - `grpc_calls_total{method, code}`: gRPC calls, counted when their
//!   response starts: at the end of a unary call, at the start of a
//!   stream. Paths outside `daiban.v1` and `grpc.` count as `other`.
//! - `http_requests_total{route, status}`: plain HTTP requests on the
//!   service's address, `route` = `sms_webhook`, `console` or `other`.
//! - `orders_submitted_total{offer}`: new orders, `offer` = `grid` or
//!   `county` (offered county-wide at once).
//! - `claims_total{result}`: grabs, `result` = `won` or the reason of the
//!   loss (`ORDER_ALREADY_CLAIMED`, `ORDER_RESERVED_FOR_GRID`, …).
//! - `widening_lag_seconds`: histogram of how late after its deadline each
//!   order widened (dispatcher).
//! - `sms_total{result}`: SMS sends by result, `sent`, `retried`, `failed`,
//!   `unknown` (may have been sent), `withdrawn` (the order closed first)
//!   or `deferred` (the phone's turn was far off) (dispatcher).
//! - `sms_reports_total{result}`: delivery reports, `recorded`,
//!   `duplicate` or `unmatched`.
//! - `sms_replies_total{outcome}`: SMS replies, `claimed`, `claim_lost`,
//!   `not_understood`, `unknown_phone` or `duplicate`.
//! - `store_up`: 1 while the store responds to PING, else 0.
//!
//! Gauges read from the store every second while it responds (health):
//! - `points_consumer_lag{county}`: entries of the county's event log that
//!   the `points` settlement group has not handled yet: not delivered to
//!   any consumer, or delivered and not acknowledged. NaN when Redis
//!   cannot count the undelivered ones (before Redis 7.0, or after entries
//!   were deleted from the middle of the log).
//! - `redis_pool_size`, `redis_pool_available`, `redis_pool_waiting`,
//!   `redis_pool_max_size`: connections open, idle among them, calls
//!   waiting for one, and the pool's maximum.
//!
//! - `orders{county, state}`: orders by state. On Redis these count the
//!   changes made since the counts were introduced, so orders last changed
//!   before are missing.
//!
//! The memory store has no lag or pool figure, so without
//! `DAIBAN_REDIS_URL` those gauges are absent.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use daiban_domain::{CountyCode, OrderState};
use daiban_store::stats::StoreStats;
use metrics_exporter_prometheus::PrometheusBuilder;
use tonic::codegen::http;
use tower::{Layer, Service};

/// Buckets of the widening-lag histogram, in seconds: fine below 100 ms,
/// where the dispatcher should stay, coarse above.
const LAG_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0,
];

/// Installs the process-wide recorder and serves `/metrics` on `addr`.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("daiban_widening_lag_seconds".into()),
            &LAG_BUCKETS,
        )
        .map_err(|err| err.to_string())?
        .install()
        .map_err(|err| err.to_string())
}

/// Sets the gauges of the store's figures.
pub fn record_store_stats(stats: &StoreStats) {
    for (county, lag) in &stats.settlement_lag {
        let unhandled = lag.unhandled().map_or(f64::NAN, |count| count as f64);
        metrics::gauge!("daiban_points_consumer_lag", "county" => county.to_string())
            .set(unhandled);
    }
    if let Some(pool) = stats.pool {
        metrics::gauge!("daiban_redis_pool_size").set(pool.size as f64);
        metrics::gauge!("daiban_redis_pool_available").set(pool.available as f64);
        metrics::gauge!("daiban_redis_pool_waiting").set(pool.waiting as f64);
        metrics::gauge!("daiban_redis_pool_max_size").set(pool.max_size as f64);
    }
}

/// Sets the order-count gauges of one county.
pub fn record_state_counts(county: &CountyCode, counts: &[(OrderState, u64)]) {
    for (state, count) in counts {
        metrics::gauge!(
            "daiban_orders",
            "county" => county.to_string(),
            "state" => state.as_str(),
        )
        .set(*count as f64);
    }
}

/// Counts finished gRPC calls by method and status code.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallsLayer;

impl<S> Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Calls { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Calls<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for Calls<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Only the service's own methods and routes become label values,
        // so callers cannot add series by sending made-up paths.
        let path = request.uri().path();
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc"));
        if !grpc {
            let route = if path.starts_with("/sms/") {
                "sms_webhook"
            } else if path == "/console" || path.starts_with("/console/") {
                "console"
            } else {
                "other"
            };
            let response = self.inner.call(request);
            return Box::pin(async move {
                let response = response.await;
                if let Ok(response) = &response {
                    metrics::counter!(
                        "daiban_http_requests_total",
                        "route" => route,
                        "status" => response.status().as_u16().to_string(),
                    )
                    .increment(1);
                }
                response
            });
        }
        let known = path.starts_with("/daiban.v1.") || path.starts_with("/grpc.");
        let method = if known && path.len() <= 100 {
            path.to_owned()
        } else {
            "other".to_owned()
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            if let Ok(response) = &response {
                // A failed unary call carries its status in the headers
                // ("trailers-only"); a successful one sends OK in trailers.
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from);
                metrics::counter!(
                    "daiban_grpc_calls_total",
                    "method" => method,
                    "code" => format!("{code:?}"),
                )
                .increment(1);
            }
            response
        })
    }
}
