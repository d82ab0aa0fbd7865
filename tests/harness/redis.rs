//! A private `redis-server` for one test: on a free loopback port, with its
//! own directory, killed when dropped. It keeps nothing on disk unless
//! started with [`RedisServer::start_durable`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Maximum time from starting a server to its first reply to PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Free ports tried when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child process listening on 127.0.0.1 only.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Whether every write goes to an append-only file, fsynced at once, so
    /// a restart keeps the data.
    durable: bool,
    /// Further `redis-server` arguments, such as cluster mode.
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it replies
    /// to PING.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed, or the server does not reply
    /// within 10 seconds; the message includes the end of the server's log.
    pub fn start() -> Self {
        Self::start_with(false, Vec::new())
    }

    /// Starts a server like [`RedisServer::start`] with the persistence
    /// settings of `deploy/redis.conf`, which write every command to an
    /// append-only file before replying, so that [`RedisServer::restart`]
    /// (a SIGKILL and a new start) keeps all acknowledged data.
    pub fn start_durable() -> Self {
        Self::start_with(true, Vec::new())
    }

    fn start_with(durable: bool, extra_args: Vec<String>) -> Self {
        let dir = private_dir();
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut server = Self {
                port,
                dir: dir.clone(),
                child: None,
                durable,
                extra_args: extra_args.clone(),
            };
            match server.launch() {
                Ok(()) => return server,
                // Another process may have bound the port after we freed
                // it; any other failure repeats on the next port too.
                Err(failure) if failure.contains("Address already in use") => {
                    last_failure = failure;
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("redis-server found no free port in {PORT_ATTEMPTS} attempts: {last_failure}");
    }

    /// Returns the server's url, such as `redis://127.0.0.1:41234/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server, as a crash would. Its data is gone, because it
    /// keeps none on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The child may have exited already; either way it is reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs and starts a new, empty one on the same
    /// port.
    ///
    /// # Panics
    ///
    /// When the new server does not answer PING, for example because
    /// another process took the port meanwhile.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.launch() {
            panic!("restart on port {}: {failure}", self.port);
        }
    }

    /// Starts `redis-server` on `self.port` and waits for PING, or returns
    /// what went wrong with the end of the log.
    fn launch(&mut self) -> Result<(), String> {
        let log = self.dir.join(format!("redis-{}.log", self.port));
        let mut command = Command::new("redis-server");
        if self.durable {
            // The shipped configuration decides persistence, so the tests
            // check what operators deploy.
            command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/redis.conf"));
        } else {
            command.args(["--save", ""]).args(["--appendonly", "no"]);
        }
        let spawned = command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(
                    "redis-server was not found on PATH; the tests start their own, \
                     so install it with `apt-get install redis-server`"
                        .to_owned(),
                );
            }
            Err(err) => return Err(format!("failed to start redis-server: {err}")),
        };
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if replies_to_ping(self.port) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited with {status}; its log ends:\n{}",
                    self.port,
                    log_tail(&log)
                ));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}; \
                     its log ends:\n{}",
                    self.port,
                    log_tail(&log)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters on loopback, each a `RedisServer`,
/// with the 16384 slots split between them.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-mode servers, joins them with
    /// `redis-cli --cluster create` and waits until the cluster is ok.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    false,
                    ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
                        .map(str::to_owned)
                        .to_vec(),
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );

        let deadline = Instant::now() + START_TIMEOUT;
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    /// Every node's url, comma-separated, as `DAIBAN_REDIS_URL` takes them.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Returns a port that was free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Creates a new empty directory under the system's temporary directory.
fn private_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "daiban-redis-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    // A directory left by an earlier process with the same id is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|err| panic!("failed to create {}: {err}", dir.display()));
    dir
}

/// Checks whether a Redis server on `port` replies `+PONG` to an inline
/// PING.
fn replies_to_ping(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if stream.set_read_timeout(timeout).is_err() || stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Reads the last 20 lines of the server's log, or describes the read error.
fn log_tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", log.display()),
    }
}
