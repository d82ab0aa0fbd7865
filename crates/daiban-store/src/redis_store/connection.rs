//! Connecting to Redis: a single server or a Redis Cluster, the pool, its
//! timeouts and the start-up check.
//!
//! The connections that deadpool-redis hands out are multiplexed: one
//! connection carries many requests at once. deadpool checks every
//! connection it hands out again with a round trip (`UNWATCH` and `PING`),
//! so calls do not take one from the pool each. Instead a few connections
//! are checked out once and kept, and every call gets a clone of one of
//! them, in turn. A call that fails with an I/O or protocol error takes
//! its connection out of the pool for good, so the next call on that
//! place gets a new one from the pool. A blocking command, such as
//! `XREAD` with `BLOCK`, would stall every request queued behind it on a
//! shared connection, so it runs on a connection of its own from the pool.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::{Manager, Pool, Runtime, Status, cluster};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

use super::RedisStore;
use crate::Store;

/// Maximum time to open one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Maximum wait for one command's reply. A script handles at most one
/// batch of orders, which takes milliseconds.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Maximum wait for a free connection of the pool.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: the shared ones, and one for each blocking
/// read in progress, such as each county's live-offer reader waiting for
/// events.
const POOL_SIZE: usize = 32;

/// Connections kept checked out and shared by all calls. Each one
/// carries any number of requests at once, and fewer connections let
/// Redis and the client read and write more requests per system call.
/// Two spread the work of the connections' tasks over two threads.
const SHARED_CONNECTIONS: usize = 2;

/// Why `RedisStore::connect` failed. Each message shows the url with its
/// password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    #[error("invalid redis url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build the redis connection pool for {url}: {reason}")]
    Pool { url: String, reason: String },
    #[error("cannot reach redis at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// The pool of a single server or of a cluster, and the connections that
/// calls share. Clones share both.
#[derive(Clone)]
pub(super) struct Backend {
    inner: Arc<Shared>,
}

struct Shared {
    pool: Pools,
    slots: Vec<Slot>,
    /// The slot of the next call; calls take the slots in turn.
    next_slot: AtomicUsize,
    /// The id of the next lease, so a failure never replaces a newer
    /// connection than the one that failed.
    next_lease: AtomicU64,
}

enum Pools {
    Single(Pool),
    Cluster(cluster::Pool),
}

/// A connection checked out of the pool. Commands to a cluster go to the
/// node that serves their first key, so a script's KEYS[1] decides.
enum Pooled {
    Single(deadpool_redis::Connection),
    Cluster(cluster::Connection),
}

/// A handle to a multiplexed connection; clones send on the same one.
#[derive(Clone)]
enum Multiplexed {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// One place for a shared connection.
struct Slot {
    lease: Mutex<Option<Lease>>,
    /// Locked while a call gets a connection for this slot from the pool.
    /// It contains the last failure to get one, which calls that waited
    /// for that attempt return instead of trying again.
    opening: tokio::sync::Mutex<Option<Failure>>,
}

/// A connection checked out for sharing, and the handle that calls clone.
struct Lease {
    id: u64,
    handle: Multiplexed,
    /// Kept so that the pool counts the connection as in use.
    pooled: Pooled,
}

struct Failure {
    at: Instant,
    reason: String,
}

/// A connection for one call: a clone of a shared connection, and for
/// blocking commands a connection of its own, taken from the pool when
/// the first one is sent.
pub(super) struct Connection {
    backend: Backend,
    slot: usize,
    lease: u64,
    shared: Multiplexed,
    own: Option<Pooled>,
}

impl Backend {
    fn new(pool: Pools) -> Self {
        let slots = (0..SHARED_CONNECTIONS)
            .map(|_| Slot {
                lease: Mutex::new(None),
                opening: tokio::sync::Mutex::new(None),
            })
            .collect();
        Self {
            inner: Arc::new(Shared {
                pool,
                slots,
                next_slot: AtomicUsize::new(0),
                next_lease: AtomicU64::new(0),
            }),
        }
    }

    /// Returns a connection for one call, on the next shared connection.
    /// Fails when that one is broken and the pool cannot open another.
    pub(super) async fn get(&self) -> Result<Connection, String> {
        let slots = &self.inner.slots;
        let slot = self.inner.next_slot.fetch_add(1, Ordering::Relaxed) % slots.len();
        let (lease, shared) = self.lease(slot).await?;
        Ok(Connection {
            backend: self.clone(),
            slot,
            lease,
            shared,
            own: None,
        })
    }

    /// Returns the id and a handle of the shared connection in `slot`,
    /// getting one from the pool when the slot is empty.
    async fn lease(&self, slot: usize) -> Result<(u64, Multiplexed), String> {
        let place = &self.inner.slots[slot];
        if let Some(found) = place.current() {
            return Ok(found);
        }

        let requested = Instant::now();
        let mut last_failure = place.opening.lock().await;
        if let Some(found) = place.current() {
            return Ok(found);
        }
        // While Redis is down, calls queued behind a failed attempt fail
        // with its reason, so each call waits for at most one attempt.
        if let Some(failure) = last_failure.as_ref()
            && failure.at >= requested
        {
            return Err(failure.reason.clone());
        }
        let pooled = match self.checkout().await {
            Ok(pooled) => pooled,
            Err(reason) => {
                *last_failure = Some(Failure {
                    at: Instant::now(),
                    reason: reason.clone(),
                });
                return Err(reason);
            }
        };
        *last_failure = None;
        let id = self.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        let handle = pooled.handle();
        *place.lock() = Some(Lease {
            id,
            handle: handle.clone(),
            pooled,
        });
        Ok((id, handle))
    }

    /// Takes the shared connection `lease` out of `slot` and out of the
    /// pool, unless it was replaced already. Calls in flight on it finish
    /// or fail on their own clones.
    fn discard(&self, slot: usize, lease: u64, err: &RedisError) {
        let place = &self.inner.slots[slot];
        let discarded = {
            let mut current = place.lock();
            match current.as_ref() {
                Some(found) if found.id == lease => current.take(),
                _ => None,
            }
        };
        if let Some(discarded) = discarded {
            tracing::warn!(error = %err, "replacing a failed redis connection");
            discarded.pooled.detach();
        }
    }

    /// Checks a connection out of the pool; deadpool checks an idle one
    /// with a round trip first.
    async fn checkout(&self) -> Result<Pooled, String> {
        match &self.inner.pool {
            Pools::Single(pool) => pool
                .get()
                .await
                .map(Pooled::Single)
                .map_err(|e| e.to_string()),
            Pools::Cluster(pool) => pool
                .get()
                .await
                .map(Pooled::Cluster)
                .map_err(|e| e.to_string()),
        }
    }

    /// Returns the pool's state as deadpool reports it. The shared connections
    /// count as in use for as long as they work, whether calls are in
    /// flight on them or not.
    pub(super) fn pool_status(&self) -> Status {
        match &self.inner.pool {
            Pools::Single(pool) => pool.status(),
            Pools::Cluster(pool) => pool.status(),
        }
    }

    /// Connections open and the pool's maximum.
    pub(super) fn status(&self) -> (usize, usize) {
        let status = self.pool_status();
        (status.size, status.max_size)
    }
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Lease>> {
        // The lock is held only to read or swap the lease, which leaves
        // it whole even if a holder panicked.
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> Option<(u64, Multiplexed)> {
        self.lock()
            .as_ref()
            .map(|lease| (lease.id, lease.handle.clone()))
    }
}

impl Pooled {
    fn handle(&self) -> Multiplexed {
        match self {
            Self::Single(connection) => {
                let connection: &MultiplexedConnection = connection;
                Multiplexed::Single(connection.clone())
            }
            Self::Cluster(connection) => {
                let connection: &ClusterConnection = connection;
                Multiplexed::Cluster(connection.clone())
            }
        }
    }

    /// Takes the connection out of the pool, so it is closed once the
    /// last handle is dropped instead of being handed out again.
    fn detach(self) {
        match self {
            Self::Single(connection) => drop(deadpool_redis::Connection::take(connection)),
            Self::Cluster(connection) => drop(cluster::Connection::take(connection)),
        }
    }
}

impl Connection {
    /// Returns this call's own connection, checking it out of the pool on
    /// first use.
    async fn own(&mut self) -> RedisResult<&mut Pooled> {
        let pooled = match self.own.take() {
            Some(pooled) => pooled,
            None => self.backend.checkout().await.map_err(|reason| {
                RedisError::from((ErrorKind::Io, "no redis connection", reason))
            })?,
        };
        Ok(self.own.insert(pooled))
    }

    /// Replaces the shared connection when `result` shows it broken: an
    /// I/O error (a dropped connection or a response timeout) or an error
    /// after which redis-rs would reconnect, such as an unreadable reply. Errors that Redis replies with leave the connection in use.
    fn check<T>(&self, result: &RedisResult<T>) {
        if let Err(err) = result
            && (err.is_io_error() || err.is_unrecoverable_error())
        {
            self.backend.discard(self.slot, self.lease, err);
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            if is_blocking(cmd) {
                return self.own().await?.req_packed_command(cmd).await;
            }
            let result = self.shared.req_packed_command(cmd).await;
            self.check(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            if pipeline.cmd_iter().any(is_blocking) {
                let own = self.own().await?;
                return own.req_packed_commands(pipeline, offset, count).await;
            }
            let result = self
                .shared
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.check(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.get_db()
    }
}

impl ConnectionLike for Pooled {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

impl ConnectionLike for Multiplexed {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Tells whether Redis may hold `cmd`'s reply back until something
/// happens: `XREAD` or `XREADGROUP` with `BLOCK`, or one of the blocking
/// list, sorted-set and replication commands.
fn is_blocking(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let Some(name) = args.next() else {
        return false;
    };
    const BLOCKING: [&[u8]; 10] = [
        b"BLPOP",
        b"BRPOP",
        b"BRPOPLPUSH",
        b"BLMOVE",
        b"BLMPOP",
        b"BZPOPMIN",
        b"BZPOPMAX",
        b"BZMPOP",
        b"WAIT",
        b"WAITAOF",
    ];
    if BLOCKING.iter().any(|b| name.eq_ignore_ascii_case(b)) {
        return true;
    }
    let reads_stream =
        name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP");
    reads_stream && args.any(|arg| arg.eq_ignore_ascii_case(b"BLOCK"))
}

impl RedisStore {
    /// Connects to the Redis at `url`, such as `redis://127.0.0.1:6379/0`,
    /// or, given several comma-separated urls, to the Redis Cluster they
    /// belong to, and checks that it replies to PING, so a wrong url fails
    /// at start-up.
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        if url.contains(',') {
            return Self::connect_cluster(url).await;
        }
        let redacted = redact_url(url);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let manager =
            Manager::new_with_config(url, config).map_err(|err| RedisStoreError::InvalidUrl {
                url: redacted.clone(),
                reason: err.to_string(),
            })?;
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(RESPONSE_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| RedisStoreError::Pool {
                url: redacted.clone(),
                reason: err.to_string(),
            })?;

        let store = Self::from_pool(pool);
        store.check(&redacted).await
    }

    /// Connects to a Redis Cluster through any of its nodes' urls.
    async fn connect_cluster(urls: &str) -> Result<Self, RedisStoreError> {
        let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
        let redacted = urls
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(",");
        if urls.iter().any(String::is_empty) {
            return Err(RedisStoreError::InvalidUrl {
                url: redacted,
                reason: "an empty url between commas; remove the extra comma".into(),
            });
        }
        let pool = cluster::Config::from_urls(urls)
            .builder()
            .map_err(|err| RedisStoreError::InvalidUrl {
                url: redacted.clone(),
                reason: err.to_string(),
            })?
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(RESPONSE_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| RedisStoreError::Pool {
                url: redacted.clone(),
                reason: err.to_string(),
            })?;
        // NOTE: the cluster client keeps redis-rs's own response timeout;
        // the pool's create and recycle timeouts still bound a dead node.
        let store = Self {
            backend: Backend::new(Pools::Cluster(pool)),
        };
        store.check(&redacted).await.map_err(|err| match err {
            RedisStoreError::Unreachable { url, reason }
                if reason.contains("cluster support disabled") =>
            {
                RedisStoreError::Unreachable {
                    url,
                    reason: "several urls mean a Redis Cluster, but these servers run without cluster mode; give the one url of a single server".into(),
                }
            }
            other => other,
        })
    }

    /// Checks that the store replies to PING, naming `redacted` otherwise.
    async fn check(self, redacted: &str) -> Result<Self, RedisStoreError> {
        self.ping()
            .await
            .map_err(|err| RedisStoreError::Unreachable {
                url: redacted.to_owned(),
                reason: err.to_string(),
            })?;
        tracing::info!(redis.url = %redacted, "connected to redis");
        Ok(self)
    }

    /// Wraps a pool that the caller built, without checking the server.
    pub fn from_pool(pool: Pool) -> Self {
        Self {
            backend: Backend::new(Pools::Single(pool)),
        }
    }
}

/// Returns `url` with any password replaced by `***`, for messages and
/// logs.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@` before any query ends the user info, even when an
    // unescaped `/` or `@` sits in the password.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, query) = rest.split_at(query_start);
    let Some((user_info, host_and_path)) = before_query.rsplit_once('@') else {
        return url.to_owned();
    };
    // `redis://secret@host` names a user, but people write passwords there
    // too, so user info without a colon is hidden whole.
    let user_info = match user_info.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{user_info}@{host_and_path}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:s3cret@host:6379", "redis://:***@host:6379"),
            ("redis://user:s3cret@host/2", "redis://user:***@host/2"),
            ("rediss://s3cret@host", "rediss://***@host"),
            ("redis://u:p@ss@host/0", "redis://u:***@host/0"),
            (
                "redis://:pa/ss@host/0?protocol=resp3",
                "redis://:***@host/0?protocol=resp3",
            ),
            ("not a url", "not a url"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }
}
