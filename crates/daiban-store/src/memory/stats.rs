//! The memory store reports no figures for the metrics: it has no
//! connection pool, and its settlement group's position is private to its
//! ledger.

use async_trait::async_trait;
use daiban_domain::CountyCode;

use super::MemoryStore;
use crate::StoreError;
use crate::stats::{Stats, StoreStats};

#[async_trait]
impl Stats for MemoryStore {
    async fn stats(&self, _counties: &[CountyCode]) -> Result<StoreStats, StoreError> {
        Ok(StoreStats::default())
    }
}
