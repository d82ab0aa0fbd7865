//! daiban's gRPC server: the services, their credentials and settings, and
//! the start-up that wires them to a store and the dispatcher.
//!
//! **Every failure becomes a `tonic::Status` in `error`**, and no raw
//! request string passes a service's validation into the store.

mod agents;
mod app;
pub mod auth;
pub mod config;
mod console;
mod convert;
mod directory;
mod error;
mod health;
mod http;
mod limits;
mod live;
mod metrics;
mod points;
mod sms_gateway;
mod sms_inbox;
mod tls;
mod webhooks;
mod work_orders;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use daiban_dispatch::{Dispatcher, Offers, SendPolicy};
use daiban_domain::Directory;
use daiban_points::{Points, SettlementConsumer, process_consumer_name};
use daiban_proto::v1::agent_service_server::AgentServiceServer;
use daiban_proto::v1::directory_service_server::DirectoryServiceServer;
use daiban_proto::v1::points_service_server::PointsServiceServer;
use daiban_proto::v1::sms_gateway_service_server::SmsGatewayServiceServer;
use daiban_proto::v1::work_order_service_server::WorkOrderServiceServer;
use daiban_store::{MemoryStore, RedisStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub use crate::auth::{Auth, Scope};
pub use crate::config::{Credentials, DirectorySource, Settings, TlsFiles};
pub use crate::limits::RateLimits;

/// Longest wait for in-flight calls once shutdown starts.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Largest request message accepted, in bytes. The longest valid request
/// is a few kilobytes.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest `SmsGatewayService` message accepted, in bytes: a batch of
/// 1,000 delivery reports takes about 70 to 300 kilobytes.
const MAX_SMS_BATCH_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("DAIBAN_DIRECTORY: failed to load {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("DAIBAN_REDIS_URL: failed to connect to Redis: {0}")]
    Redis(String),
    #[error("DAIBAN_SMS_PROVIDER: {0}")]
    Sms(String),
    #[error("DAIBAN_LISTEN: failed to listen on {addr}; free the port or choose another")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("DAIBAN_METRICS_LISTEN: failed to serve metrics on {addr}: {reason}")]
    Metrics { addr: SocketAddr, reason: String },
    #[error("DAIBAN_TLS_CERT / DAIBAN_TLS_KEY: failed to load {path}: {reason}")]
    Tls { path: String, reason: String },
    #[error("failed to build gRPC reflection: {0}")]
    Reflection(String),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Loads the directory from its source.
pub fn load_directory(source: &DirectorySource) -> Result<Directory, ServeError> {
    match source {
        DirectorySource::Bundled => Ok(Directory::lanshan_demo()),
        DirectorySource::Folder(folder) => {
            let read = |name: &str| {
                let path = folder.join(name);
                std::fs::read_to_string(&path).map_err(|err| ServeError::Directory {
                    path: path.display().to_string(),
                    reason: err.to_string(),
                })
            };
            let (grids, agents, matters) = (
                read("grids.csv")?,
                read("agents.csv")?,
                read("matters.csv")?,
            );
            Directory::from_csv(&grids, &agents, &matters).map_err(|err| ServeError::Directory {
                path: folder.display().to_string(),
                reason: err.to_string(),
            })
        }
    }
}

/// Returns the SMS sender's policy: logged SMS need no spacing per phone, since
/// no provider limits them.
fn send_policy(sms: &daiban_sms::SmsSettings) -> SendPolicy {
    match sms.provider {
        daiban_sms::Provider::Log => SendPolicy {
            phone_interval: std::time::Duration::ZERO,
            ..SendPolicy::default()
        },
        _ => SendPolicy::default(),
    }
}

/// A service bound to its address, ready to run.
pub struct Service {
    app: app::App,
    listener: TcpListener,
    local_addr: SocketAddr,
    dispatcher: Dispatcher,
    /// Tells the dispatcher, the live-offer readers and the streams to
    /// stop.
    stop: watch::Sender<bool>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Service {
    /// Loads the directory, connects the store and binds the listener,
    /// logging each setting left at its default.
    pub async fn bind(settings: &Settings) -> Result<Self, ServeError> {
        let defaulted = |name: &str| settings.defaults.contains(&name);

        let directory = load_directory(&settings.directory)?;
        let counties: Vec<_> = directory.counties().into_iter().collect();
        match &settings.directory {
            DirectorySource::Bundled => info!(
                grids = directory.grids().count(),
                agents = directory.agents().count(),
                "directory: the bundled Lanshan County demo (DAIBAN_DIRECTORY unset)"
            ),
            DirectorySource::Folder(path) => info!(
                path = %path.display(),
                grids = directory.grids().count(),
                agents = directory.agents().count(),
                "directory loaded"
            ),
        }

        let store: Arc<dyn Store> = match &settings.redis_url {
            None => {
                info!("state: in memory, lost at exit (DAIBAN_REDIS_URL unset)");
                Arc::new(MemoryStore::new())
            }
            Some(url) => {
                let store = RedisStore::connect(url)
                    .await
                    .map_err(|err| ServeError::Redis(err.to_string()))?;
                info!("state: Redis");
                Arc::new(store)
            }
        };

        daiban_sms::log_settings(&settings.sms);
        let notifier =
            daiban_sms::notifier(&settings.sms).map_err(|err| ServeError::Sms(err.to_string()))?;
        if let Some(addr) = settings.metrics_listen {
            metrics::install(addr).map_err(|reason| ServeError::Metrics { addr, reason })?;
            info!(addr = %addr, "metrics served at /metrics");
        }
        let auth = Auth::new(&settings.credentials).with_limits(settings.rate_limits);
        if auth.is_development() {
            warn!(
                "development mode: no DAIBAN_TOKEN_SECRET or DAIBAN_API_KEYS, so API keys are not checked, agent tokens use a public secret, and only loopback addresses are allowed"
            );
        }
        let policy = settings.policy;
        info!(
            widen_after = %humantime::format_duration(policy.widen_after),
            escalate_after = %humantime::format_duration(policy.escalate_after),
            rating_window = %humantime::format_duration(policy.rating_window),
            "timing"
        );

        let directory = Arc::new(directory);
        let offers = Offers::new(directory.clone());
        let points = Arc::new(Points::new(store.clone(), settings.bonus_rate));
        let dispatcher = Dispatcher::new(
            store.clone(),
            offers,
            notifier.clone(),
            send_policy(&settings.sms),
            points.clone(),
            counties.clone(),
        );
        let (stop, shutdown) = watch::channel(false);
        let live = Arc::new(live::Live::new(&counties));
        let app = app::App {
            live,
            shutdown,
            store,
            directory,
            auth,
            dispatcher: dispatcher.waker(),
            sms_sender: dispatcher.sender_waker(),
            notifier: notifier.clone(),
            webhook_secret: settings.sms.webhook_secret.clone(),
            points,
            policy,
        };

        // Loaded before listening, so a bad file stops the start.
        let tls = settings.tls.as_ref().map(tls::server_config).transpose()?;
        if tls.is_some() {
            info!("tls: on");
        }
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: settings.listen,
            source,
        })?;
        if defaulted("DAIBAN_LISTEN") {
            info!(addr = %local_addr, "listening on the default address (DAIBAN_LISTEN unset)");
        } else {
            info!(addr = %local_addr, "listening");
        }
        Ok(Self {
            app,
            listener,
            local_addr,
            dispatcher,
            stop,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting calls, lets
    /// the calls in flight finish and stops the dispatcher.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let stop = self.stop;
        let dispatcher = tokio::spawn(self.dispatcher.run(stop.subscribe()));
        let (reporter, health_service) = health::service().await;
        let health = tokio::spawn(health::watch_store(
            self.app.store.clone(),
            self.app.directory.counties().into_iter().collect(),
            reporter,
            stop.subscribe(),
        ));
        let live = tokio::spawn(
            self.app
                .live
                .clone()
                .run(self.app.store.clone(), stop.subscribe()),
        );
        let counties = self.app.directory.counties().into_iter().collect();
        let consumer =
            SettlementConsumer::new(self.app.store.clone(), counties, process_consumer_name());
        let settlement = tokio::spawn(consumer.run(stop.subscribe()));

        // Both reflection versions, because grpcurl before 1.9 speaks only
        // v1alpha; the google.rpc types let clients decode error details.
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(daiban_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|err| ServeError::Reflection(err.to_string()))?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(daiban_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|err| ServeError::Reflection(err.to_string()))?;

        let app = self.app;
        let mut stopping = stop.subscribe();
        let builder = tonic::transport::Server::builder();
        let routes = tonic::service::Routes::from(http::router(app.clone()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(
                WorkOrderServiceServer::new(work_orders::WorkOrders::new(app.clone()))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                AgentServiceServer::new(agents::Agents::new(app.clone()))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                PointsServiceServer::new(points::PointsApi::new(app.clone()))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                DirectoryServiceServer::new(directory::DirectoryApi::new(app.clone()))
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            )
            .add_service(
                SmsGatewayServiceServer::new(sms_gateway::SmsGatewayApi::new(app.clone()))
                    .max_decoding_message_size(MAX_SMS_BATCH_BYTES),
            );
        // HTTP/1.1 is accepted for the webhooks and the console; gRPC
        // clients speak HTTP/2 as before.
        let router = builder
            .accept_http1(true)
            .layer(metrics::CallsLayer)
            .add_routes(routes);
        let signal = async {
            shutdown.await;
            info!("shutting down: no new calls accepted, streams closed");
            // Streams would otherwise keep the server draining forever.
            let _ = stop.send(true);
        };
        let server: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send + '_>,
        > = match self.tls {
            Some(config) => Box::pin(
                router.serve_with_incoming_shutdown(tls::incoming(self.listener, config), signal),
            ),
            None => {
                let incoming = tonic::transport::server::TcpIncoming::from(self.listener)
                    .with_nodelay(Some(true));
                Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
            }
        };
        // In-flight calls get DRAIN_DEADLINE to finish after shutdown
        // starts; a call stuck longer does not keep the process alive.
        let served = tokio::select! {
            served = server => served,
            () = async {
                let _ = stopping.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(DRAIN_DEADLINE).await;
            } => {
                warn!(deadline = ?DRAIN_DEADLINE, "calls still in flight at the drain deadline; stopping anyway");
                Ok(())
            }
        };

        let _ = stop.send(true);
        let _ = dispatcher.await;
        let _ = live.await;
        let _ = health.await;
        let _ = settlement.await;
        info!("stopped");
        served.map_err(ServeError::from)
    }
}
