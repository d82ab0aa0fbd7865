//! Figures for the service's metrics: how far the settlement group trails
//! each county's event log, and how busy the store's connection pool is.

use async_trait::async_trait;
use daiban_domain::CountyCode;

use crate::StoreError;

/// Figures a store reports for the metrics. A store without a figure
/// leaves it out rather than reporting zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The settlement group's lag, by county, for the counties whose lag
    /// the store can read.
    pub settlement_lag: Vec<(CountyCode, ConsumerLag)>,
    /// The connection pool, for a store that has one.
    pub pool: Option<PoolUse>,
}

/// How far a consumer group trails an event log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerLag {
    /// Entries no consumer of the group has taken yet, or `None` when the
    /// store cannot count them.
    pub undelivered: Option<u64>,
    /// Entries taken by a consumer and not acknowledged yet.
    pub pending: u64,
}

impl ConsumerLag {
    /// Returns the entries the group has not handled yet, taken or not,
    /// or `None` when the untaken ones cannot be counted.
    pub fn unhandled(&self) -> Option<u64> {
        self.undelivered
            .map(|undelivered| undelivered + self.pending)
    }
}

/// The state of a connection pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open, in use or idle.
    pub size: usize,
    /// Idle connections among them.
    pub available: usize,
    /// Calls waiting for a connection.
    pub waiting: usize,
    /// Maximum number of connections.
    pub max_size: usize,
}

/// A store's figures for the metrics.
#[async_trait]
pub trait Stats {
    /// Reads the settlement group's lag for each of `counties` and the
    /// connection pool's use.
    async fn stats(&self, counties: &[CountyCode]) -> Result<StoreStats, StoreError>;
}
