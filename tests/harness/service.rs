//! Starting the service for a test: in this process, or as `daiban serve`
//! child processes sharing one Redis.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daiban_domain::AgentId;
use daiban_proto::v1::agent_service_client::AgentServiceClient;
use daiban_proto::v1::directory_service_client::DirectoryServiceClient;
use daiban_proto::v1::points_service_client::PointsServiceClient;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_server::{Auth, Service, Settings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

use crate::redis::RedisServer;

/// API keys and token secret of the tests that run in production mode.
pub const APP_KEY: &str = "test-app-key-0123456789";
pub const EXPORT_KEY: &str = "test-export-key-0123456789";
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const SMS_KEY: &str = "test-sms-key-0123456789";
pub const TOKEN_SECRET: &str = "test-token-secret-0123456789abcdef0123";

/// How a test service is configured.
#[derive(Debug, Clone)]
pub struct Config {
    pub widen_after: &'static str,
    pub escalate_after: &'static str,
    pub rating_window: &'static str,
    /// Keep state in a private Redis rather than in memory.
    pub redis: bool,
    /// Require API keys and signed tokens rather than run in development
    /// mode.
    pub production: bool,
    /// Further variables, such as rate limits.
    pub extra_env: Vec<(&'static str, &'static str)>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            widen_after: "10m",
            escalate_after: "30m",
            rating_window: "7d",
            redis: true,
            production: true,
            extra_env: Vec::new(),
        }
    }
}

impl Config {
    /// The environment `daiban serve` reads, without DAIBAN_LISTEN and
    /// DAIBAN_REDIS_URL.
    pub fn env(&self) -> HashMap<String, String> {
        let mut env = HashMap::from([
            ("DAIBAN_WIDEN_AFTER".to_owned(), self.widen_after.to_owned()),
            (
                "DAIBAN_ESCALATE_AFTER".to_owned(),
                self.escalate_after.to_owned(),
            ),
            (
                "DAIBAN_RATING_WINDOW".to_owned(),
                self.rating_window.to_owned(),
            ),
        ]);
        for (name, value) in &self.extra_env {
            env.insert((*name).to_owned(), (*value).to_owned());
        }
        if self.production {
            env.insert("DAIBAN_TOKEN_SECRET".into(), TOKEN_SECRET.into());
            env.insert(
                "DAIBAN_API_KEYS".into(),
                format!("app={APP_KEY},export={EXPORT_KEY},admin={ADMIN_KEY},sms={SMS_KEY}"),
            );
        }
        env
    }
}

/// A service running inside the test process, with its own Redis when the
/// config asks for one. Dropping it stops both.
pub struct TestApp {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub redis: Option<RedisServer>,
    auth: Auth,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub async fn spawn_app(config: Config) -> TestApp {
    let redis = config.redis.then(RedisServer::start);
    let mut env = config.env();
    env.insert("DAIBAN_LISTEN".into(), "127.0.0.1:0".into());
    if let Some(redis) = &redis {
        env.insert("DAIBAN_REDIS_URL".into(), redis.url());
    }
    let settings =
        Settings::from_lookup(|name| env.get(name).cloned()).expect("test settings are valid");
    let auth = Auth::new(&settings.credentials);
    let service = Service::bind(&settings).await.expect("test service starts");
    let addr = service.local_addr();

    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        service
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("test service runs");
    });
    let channel = connect(addr).await;
    TestApp {
        addr,
        channel,
        redis,
        auth,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn work_orders(&self) -> WorkOrderServiceClient<Channel> {
        WorkOrderServiceClient::new(self.channel.clone())
    }

    pub fn agent_api(&self) -> AgentServiceClient<Channel> {
        AgentServiceClient::new(self.channel.clone())
    }

    pub fn points(&self) -> PointsServiceClient<Channel> {
        PointsServiceClient::new(self.channel.clone())
    }

    pub fn directory(&self) -> DirectoryServiceClient<Channel> {
        DirectoryServiceClient::new(self.channel.clone())
    }

    /// A bearer token for `agent`, valid for an hour.
    pub fn token(&self, agent: &str) -> String {
        self.auth.mint(
            &AgentId::parse(agent).expect("test agent id is valid"),
            Duration::from_secs(3600),
        )
    }

    /// Stops the service and waits for it to finish its calls in flight.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("test service stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A bearer token for `agent`, valid for ten minutes, signed with
/// [`TOKEN_SECRET`] as the production-mode test services check it.
pub fn agent_token(agent: &str) -> String {
    let signer = Auth::new(&daiban_server::Credentials::Production {
        token_secret: TOKEN_SECRET.into(),
        api_keys: Vec::new(),
    });
    signer.mint(
        &AgentId::parse(agent).expect("test agent id is valid"),
        Duration::from_secs(600),
    )
}

/// Wraps `message` with `credential` as its bearer token.
pub fn with_bearer<T>(message: T, credential: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {credential}")
            .parse()
            .expect("credential is ASCII"),
    );
    request
}

/// Connects a channel, retrying while the server starts.
pub async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("loopback URL is valid");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(err) if Instant::now() > deadline => {
                panic!("service at {addr} did not accept connections: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The `daiban` binary built beside the test binaries.
pub fn daiban_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path is known");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary sits in target/<profile>/deps");
    let binary = dir.join(format!("daiban{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build -p daiban` (scripts/test does)",
        binary.display()
    );
    binary
}

/// A free loopback port, found by binding port 0.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port is free")
        .port()
}

/// A `daiban serve` child process. Its log lines are kept in memory;
/// dropping it kills the process.
pub struct ServiceProcess {
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Starts `daiban serve` with `env` added to this process's
    /// environment, on a free port, and waits until it listens.
    pub fn start(env: &HashMap<String, String>) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address is valid");
        let mut child = Command::new(daiban_binary())
            .arg("serve")
            .env("RUST_LOG", "info")
            // The tests read the text format; a pipe would get JSON.
            .env("DAIBAN_LOG_FORMAT", "text")
            .envs(env)
            .env("DAIBAN_LISTEN", addr.to_string())
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daiban serve starts");

        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout is piped"))
                as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr is piped")),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log lock").push(line);
                }
            });
        }

        let process = Self { addr, child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !process.log_contains("listening") {
            if Instant::now() > deadline {
                panic!(
                    "daiban serve did not start listening:\n{}",
                    process.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .any(|line| line.contains(needle))
    }

    /// Sends SIGTERM and waits up to ten seconds for the process to exit.
    /// This blocks the thread: a test that must keep its own connections
    /// served meanwhile uses [`ServiceProcess::send_sigterm`] and
    /// [`ServiceProcess::exited`].
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("daiban serve did not stop within ten seconds of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn send_sigterm(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("child status is readable")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
