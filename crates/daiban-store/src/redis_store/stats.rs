//! The Redis store's figures for the metrics: the settlement group's lag
//! from `XINFO GROUPS` and the pool's state from deadpool.

use async_trait::async_trait;
use daiban_domain::CountyCode;
use redis::Value;

use super::keys::CountyKeys;
use super::reply::{items, text, unexpected};
use super::{RedisStore, command_failed};
use crate::stats::{ConsumerLag, PoolUse, Stats, StoreStats};
use crate::{SETTLEMENT_GROUP, StoreError};

#[async_trait]
impl Stats for RedisStore {
    async fn stats(&self, counties: &[CountyCode]) -> Result<StoreStats, StoreError> {
        let mut settlement_lag = Vec::with_capacity(counties.len());
        for county in counties {
            settlement_lag.push((county.clone(), self.settlement_lag(county).await?));
        }
        Ok(StoreStats {
            settlement_lag,
            pool: Some(self.pool_use()),
        })
    }
}

impl RedisStore {
    /// Reads how far the settlement group trails the county's event log.
    /// Before the group exists, every entry of the log counts as
    /// undelivered, because the group starts at the beginning of the log.
    async fn settlement_lag(&self, county: &CountyCode) -> Result<ConsumerLag, StoreError> {
        let key = CountyKeys::new(county).events();
        let mut connection = self.connection().await?;
        let groups: Value = match redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut connection)
            .await
        {
            Ok(groups) => groups,
            // No event was ever appended, so there is nothing to handle.
            Err(err) if err.detail().is_some_and(|d| d.contains("no such key")) => {
                return Ok(ConsumerLag {
                    undelivered: Some(0),
                    pending: 0,
                });
            }
            Err(err) => return Err(command_failed(err)),
        };
        let groups = items(groups).ok_or_else(|| unexpected(&key, "an XINFO GROUPS reply"))?;
        for group in groups {
            let fields = group_fields(group).ok_or_else(|| unexpected(&key, "a group's fields"))?;
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(field, _)| field == name)
                    .map(|(_, value)| value)
            };
            if field("name").and_then(text).as_deref() != Some(SETTLEMENT_GROUP) {
                continue;
            }
            let pending = field("pending")
                .and_then(count)
                .ok_or_else(|| unexpected(&key, "the group's pending count"))?;
            // `lag` is missing before Redis 7.0 and nil when Redis cannot
            // tell it, such as after entries were deleted from the middle.
            return Ok(ConsumerLag {
                undelivered: field("lag").and_then(count),
                pending,
            });
        }

        let length: u64 = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(command_failed)?;
        Ok(ConsumerLag {
            undelivered: Some(length),
            pending: 0,
        })
    }

    /// Reads the pool's state from deadpool. Calls do not hold a pooled
    /// connection each: they share the few that `connection` keeps checked
    /// out, and only blocking reads and the opening of a shared connection
    /// check one out. So the connections in use are the shared ones and
    /// the blocking reads in progress, whether calls are in flight or not,
    /// and `waiting` counts only blocking reads and openings that wait for
    /// a free connection.
    fn pool_use(&self) -> PoolUse {
        let status = self.backend.pool_status();
        PoolUse {
            size: status.size,
            available: status.available,
            waiting: status.waiting,
            max_size: status.max_size,
        }
    }
}

/// Returns the fields of one group in an `XINFO GROUPS` reply, with their
/// raw values: a flat array in RESP2, a map in RESP3.
fn group_fields(group: Value) -> Option<Vec<(String, Value)>> {
    match group {
        Value::Map(entries) => entries
            .into_iter()
            .map(|(field, value)| Some((text(&field)?, value)))
            .collect(),
        group => {
            let items = items(group)?;
            if items.len() % 2 != 0 {
                return None;
            }
            let mut fields = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(field), Some(value)) = (items.next(), items.next()) {
                fields.push((text(&field)?, value));
            }
            Some(fields)
        }
    }
}

/// Returns a count from an integer reply; nil and anything else are `None`.
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Int(number) => u64::try_from(*number).ok(),
        _ => None,
    }
}
