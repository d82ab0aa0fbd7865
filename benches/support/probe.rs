//! Reading a Redis server's own figures: memory, CPU time, per-command
//! statistics and the memory of keys. Besides reading, the benchmarks only
//! reset the statistics between phases and write scratch keys to measure
//! other ways of storing an order.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use daiban_domain::CountyCode;
use redis::aio::MultiplexedConnection;

/// A connection for reading a Redis server's figures, and the key prefix
/// of the county that the bench uses.
#[derive(Clone)]
pub struct Probe {
    connection: MultiplexedConnection,
    prefix: String,
}

/// The notifications owed when a wait for the outbox began, and how long
/// the dispatcher took to send them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drain {
    pub owed: u64,
    /// Notifications still owed when the wait ended.
    pub left: u64,
    pub elapsed: Duration,
}

/// One line of `INFO commandstats`.
#[derive(Debug, Clone)]
pub struct CommandStat {
    pub command: String,
    pub calls: u64,
    pub usec_per_call: f64,
}

/// The memory of the keys of one kind, such as every `order:<sequence>`.
#[derive(Debug, Clone)]
pub struct KeyKind {
    /// The key after the county prefix, with a varying last part replaced
    /// by `*`: `order:*`, `widen`, `open:grid:*`.
    pub pattern: String,
    pub keys: u64,
    /// `MEMORY USAGE` summed over every key of the kind, estimated from a
    /// sample when there are many.
    pub bytes: u64,
    /// Keys measured for `bytes`.
    pub measured: u64,
    /// `OBJECT ENCODING` of the measured keys, with counts.
    pub encodings: BTreeMap<String, u64>,
    /// The first few measured keys, for a closer look.
    pub examples: Vec<String>,
}

/// The size of a hash's contents, from `HGETALL`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashShape {
    pub fields: usize,
    pub name_bytes: usize,
    pub value_bytes: usize,
}

/// Measured keys of each kind kept as examples.
const EXAMPLE_KEYS_PER_KIND: usize = 50;

/// Keys of one kind measured one by one; a kind with more keys is estimated
/// from this many, spread evenly over the kind.
const MEASURED_KEYS_PER_KIND: usize = 500;

impl Probe {
    /// Connects to the Redis at `url`, where the bench's service keeps
    /// `county`.
    ///
    /// # Panics
    ///
    /// When the server does not accept the connection.
    pub async fn connect(url: &str, county: &CountyCode) -> Self {
        let client =
            redis::Client::open(url).unwrap_or_else(|err| panic!("invalid redis url {url}: {err}"));
        // MEMORY USAGE with SAMPLES 0 walks a whole key, which takes
        // seconds for a sorted set of a million members.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(120)));
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|err| panic!("failed to connect to redis at {url}: {err}"));
        // NOTE: this follows the key layout of `RedisStore`, which puts a
        // county's keys under `daiban:{<county>}:`.
        let prefix = format!("daiban:{{{county}}}:");
        Self { connection, prefix }
    }

    /// Returns the prefix of the county's keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the number of notifications that the county's outbox owes;
    /// a missing outbox reads as empty.
    pub async fn outbox_len(&self) -> u64 {
        self.queue_len("outbox").await
    }

    /// Counts the members of the county's sorted set `name`.
    async fn queue_len(&self, name: &str) -> u64 {
        let key = format!("{}{name}", self.prefix);
        self.query(redis::cmd("ZCARD").arg(key)).await
    }

    /// Waits until the dispatcher has sent every notification the county's
    /// outbox owes, polling every 100 ms for at most `limit`, so that a
    /// measurement does not share the cores with sending them.
    pub async fn drain_outbox(&self, limit: Duration) -> Drain {
        self.drain("outbox", limit).await
    }

    /// Waits until the senders have sent every SMS of the county's queue,
    /// polling every 100 ms for at most `limit`.
    pub async fn drain_sms(&self, limit: Duration) -> Drain {
        self.drain("smsdue", limit).await
    }

    async fn drain(&self, queue: &str, limit: Duration) -> Drain {
        let started = Instant::now();
        let owed = self.queue_len(queue).await;
        let mut left = owed;
        while left > 0 && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = self.queue_len(queue).await;
        }
        Drain {
            owed,
            left,
            elapsed: started.elapsed(),
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let mut connection = self.connection.clone();
        command
            .query_async(&mut connection)
            .await
            .unwrap_or_else(|err| panic!("redis command {command:?} failed: {err}"))
    }

    /// Returns the `field: value` lines of one `INFO` section.
    pub async fn info(&self, section: &str) -> HashMap<String, String> {
        let text: String = self.query(redis::cmd("INFO").arg(section)).await;
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(field, value)| (field.to_owned(), value.trim().to_owned()))
            .collect()
    }

    async fn info_number(&self, section: &str, field: &str) -> f64 {
        let info = self.info(section).await;
        info.get(field)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("INFO {section} has no number {field}"))
    }

    pub async fn version(&self) -> String {
        let info = self.info("server").await;
        info.get("redis_version").cloned().unwrap_or_default()
    }

    /// Returns `used_memory`: the bytes that the server's allocator handed
    /// out, without fragmentation.
    pub async fn used_memory(&self) -> u64 {
        self.info_number("memory", "used_memory").await as u64
    }

    /// Returns the CPU time of the server process, user and system, in
    /// seconds.
    pub async fn cpu_seconds(&self) -> f64 {
        self.info_number("cpu", "used_cpu_user").await
            + self.info_number("cpu", "used_cpu_sys").await
    }

    /// Clears the command statistics, so that the next reading covers one
    /// phase.
    pub async fn reset_stats(&self) {
        let _: String = self.query(redis::cmd("CONFIG").arg("RESETSTAT")).await;
    }

    /// Returns the command statistics since the last reset, most called
    /// first.
    pub async fn command_stats(&self) -> Vec<CommandStat> {
        let mut stats: Vec<CommandStat> = self
            .info("commandstats")
            .await
            .into_iter()
            .filter_map(|(field, value)| {
                let command = field.strip_prefix("cmdstat_")?.to_owned();
                let parts: HashMap<&str, &str> =
                    value.split(',').filter_map(|p| p.split_once('=')).collect();
                Some(CommandStat {
                    command,
                    calls: parts.get("calls")?.parse().ok()?,
                    usec_per_call: parts.get("usec_per_call")?.parse().ok()?,
                })
            })
            .collect();
        stats.sort_by_key(|s| std::cmp::Reverse(s.calls));
        stats
    }

    pub async fn config(&self, name: &str) -> String {
        let pair: Vec<String> = self.query(redis::cmd("CONFIG").arg("GET").arg(name)).await;
        pair.get(1).cloned().unwrap_or_default()
    }

    pub async fn set_config(&self, name: &str, value: &str) {
        let _: String = self
            .query(redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
            .await;
    }

    /// Replaces whatever is at `key` by a sorted set of `members`, each
    /// scored by its position.
    pub async fn write_sorted_set(&self, key: &str, members: &[String]) {
        self.delete(key).await;
        let mut command = redis::cmd("ZADD");
        command.arg(key);
        for (score, member) in members.iter().enumerate() {
            command.arg(score).arg(member);
        }
        let _: u64 = self.query(&command).await;
    }

    /// Returns `MEMORY USAGE` of `key`, counting every element of an
    /// aggregate rather than a sample.
    pub async fn memory_usage(&self, key: &str) -> u64 {
        let bytes: Option<u64> = self
            .query(
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .arg("SAMPLES")
                    .arg(0),
            )
            .await;
        bytes.unwrap_or(0)
    }

    pub async fn encoding(&self, key: &str) -> String {
        let encoding: Option<String> = self
            .query(redis::cmd("OBJECT").arg("ENCODING").arg(key))
            .await;
        encoding.unwrap_or_default()
    }

    /// Returns the field, value pairs of the hash at `key`.
    pub async fn hash_pairs(&self, key: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.query(redis::cmd("HGETALL").arg(key)).await
    }

    /// Returns the number of fields and the bytes of the names and values of
    /// the hash at `key`.
    pub async fn hash_shape(&self, key: &str) -> HashShape {
        let pairs = self.hash_pairs(key).await;
        HashShape {
            fields: pairs.len(),
            name_bytes: pairs.iter().map(|(name, _)| name.len()).sum(),
            value_bytes: pairs.iter().map(|(_, value)| value.len()).sum(),
        }
    }

    /// Replaces whatever is at `key` by a hash of `pairs`, written with one
    /// `HSET` as `submit` writes an order.
    pub async fn write_hash(&self, key: &str, pairs: &[(Vec<u8>, Vec<u8>)]) {
        self.delete(key).await;
        let mut command = redis::cmd("HSET");
        command.arg(key);
        for (name, value) in pairs {
            command.arg(name).arg(value);
        }
        let _: u64 = self.query(&command).await;
    }

    /// Replaces whatever is at `key` by the string `bytes`.
    pub async fn write_string(&self, key: &str, bytes: &[u8]) {
        let _: String = self.query(redis::cmd("SET").arg(key).arg(bytes)).await;
    }

    pub async fn delete(&self, key: &str) {
        let _: u64 = self.query(redis::cmd("DEL").arg(key)).await;
    }

    /// Returns every key that matches `pattern`, by `SCAN`.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await;
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Measures the county's keys by kind, largest first.
    pub async fn key_kinds(&self) -> Vec<KeyKind> {
        let prefix = self.prefix.as_str();
        let mut by_pattern: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in self.keys(&format!("{}*", glob_escape(prefix))).await {
            let rest = key.strip_prefix(prefix).unwrap_or(&key);
            by_pattern.entry(kind_pattern(rest)).or_default().push(key);
        }

        let mut kinds = Vec::new();
        for (pattern, keys) in by_pattern {
            let step = keys.len().div_ceil(MEASURED_KEYS_PER_KIND).max(1);
            let mut measured_bytes = 0;
            let mut measured = 0;
            let mut encodings = BTreeMap::new();
            let mut examples = Vec::new();
            for key in keys.iter().step_by(step) {
                measured_bytes += self.memory_usage(key).await;
                measured += 1;
                *encodings.entry(self.encoding(key).await).or_default() += 1;
                if examples.len() < EXAMPLE_KEYS_PER_KIND {
                    examples.push(key.clone());
                }
            }
            let bytes = measured_bytes * keys.len() as u64 / measured.max(1);
            kinds.push(KeyKind {
                pattern,
                keys: keys.len() as u64,
                bytes,
                measured,
                encodings,
                examples,
            });
        }
        kinds.sort_by_key(|k| std::cmp::Reverse(k.bytes));
        kinds
    }
}

/// Formats the commands called at least `min_calls` times, with their mean
/// time inside Redis.
pub fn format_command_stats(stats: &[CommandStat], min_calls: u64) -> String {
    stats
        .iter()
        .filter(|s| s.calls >= min_calls)
        .map(|s| format!("{} {}× {:.1} µs", s.command, s.calls, s.usec_per_call))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Returns the kind of a key given without its county prefix: every part
/// after the first becomes `*` when it contains a digit, because order
/// sequences, buckets, grids, days and agent ids vary there.
fn kind_pattern(key: &str) -> String {
    let mut parts = key.split(':');
    let mut pattern = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        pattern.push(':');
        if part.bytes().any(|b| b.is_ascii_digit()) {
            pattern.push('*');
        } else {
            pattern.push_str(part);
        }
    }
    pattern
}

/// Escapes the glob characters of `text` for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
