//! The system-test harness: starts a private `redis-server` and the daiban
//! service on free loopback ports, and stops them when dropped.

pub mod redis;
