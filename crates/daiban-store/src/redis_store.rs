//! Placeholder: the Redis store is being written.

use crate::MemoryStore;

#[derive(Debug, thiserror::Error)]
#[error("redis store error")]
pub struct RedisStoreError;

pub type RedisStore = MemoryStore;
