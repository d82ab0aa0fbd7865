//! Connecting to Redis: a single server or a Redis Cluster, the pool, its
//! timeouts and the start-up check.

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime, cluster};
use redis::aio::ConnectionLike;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use super::RedisStore;
use crate::Store;

/// Maximum time to open one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Maximum wait for one command's reply. A script handles at most one
/// batch of orders, which takes milliseconds.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Maximum wait for a free connection of the pool.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool. A call holds one for its round trip, and each
/// county's live-offer reader holds one while it waits for events, so the
/// pool is sized for bursts of a few thousand concurrent calls rather
/// than deadpool's default of four per core.
const POOL_SIZE: usize = 32;

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

/// The pool of a single server or of a cluster.
#[derive(Clone)]
pub(super) enum Backend {
    Single(Pool),
    Cluster(cluster::Pool),
}

/// A pooled connection to a single server or a cluster. Commands go to the
/// node that serves their first key, so a script's KEYS[1] decides.
pub(super) enum Connection {
    Single(deadpool_redis::Connection),
    Cluster(cluster::Connection),
}

impl Backend {
    pub(super) async fn get(&self) -> Result<Connection, String> {
        match self {
            Self::Single(pool) => pool
                .get()
                .await
                .map(Connection::Single)
                .map_err(|e| e.to_string()),
            Self::Cluster(pool) => pool
                .get()
                .await
                .map(Connection::Cluster)
                .map_err(|e| e.to_string()),
        }
    }

    /// Connections open and the pool's maximum.
    pub(super) fn status(&self) -> (usize, usize) {
        match self {
            Self::Single(pool) => (pool.status().size, pool.status().max_size),
            Self::Cluster(pool) => (pool.status().size, pool.status().max_size),
        }
    }
}

impl ConnectionLike for Connection {
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
            backend: Backend::Cluster(pool),
        };
        store.check(&redacted).await
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
            backend: Backend::Single(pool),
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
