//! Per-caller rate limits: every API key and every agent has a budget of
//! calls per second, with bursts of up to two seconds' worth. A call over
//! budget fails with RESOURCE_EXHAUSTED and a `google.rpc.RetryInfo` with
//! the delay before a retry can pass.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::DOMAIN;

/// Calls per second for each API key and each agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_key: NonZeroU32,
    pub per_agent: NonZeroU32,
}

impl Default for RateLimits {
    /// An app backend speaks for a whole county, so its key gets far more
    /// than one agent's phone.
    fn default() -> Self {
        Self {
            per_key: NonZeroU32::new(2000).expect("2000 is not zero"),
            per_agent: NonZeroU32::new(20).expect("20 is not zero"),
        }
    }
}

pub struct Limiter {
    keys: DefaultKeyedRateLimiter<String>,
    agents: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Self {
        let quota = |per_second: NonZeroU32| {
            let burst = per_second.saturating_mul(NonZeroU32::new(2).expect("2 is not zero"));
            Quota::per_second(per_second).allow_burst(burst)
        };
        Self {
            keys: RateLimiter::keyed(quota(limits.per_key)),
            agents: RateLimiter::keyed(quota(limits.per_agent)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one call from the budget of the API key `key`.
    pub fn check_key(&self, key: &str) -> Result<(), Status> {
        self.check(&self.keys, key, "API key")
    }

    /// Takes one call from the budget of agent `agent`.
    pub fn check_agent(&self, agent: &str) -> Result<(), Status> {
        self.check(&self.agents, agent, "agent")
    }

    fn check(
        &self,
        limiter: &DefaultKeyedRateLimiter<String>,
        caller: &str,
        what: &str,
    ) -> Result<(), Status> {
        match limiter.check_key(&caller.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1));
                let mut details = ErrorDetails::with_retry_info(Some(wait));
                details.set_error_info("RATE_LIMITED", DOMAIN, std::collections::HashMap::new());
                Err(Status::with_error_details(
                    Code::ResourceExhausted,
                    format!(
                        "this {what} made too many calls; retry in {} ms",
                        wait.as_millis()
                    ),
                    details,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_and_names_delay() {
        let limiter = Limiter::new(RateLimits {
            per_key: NonZeroU32::new(5).unwrap(),
            per_agent: NonZeroU32::new(1).unwrap(),
        });
        // A burst of two seconds' worth passes, the next call does not.
        for _ in 0..10 {
            limiter.check_key("k").expect("within the burst");
        }
        let status = limiter.check_key("k").expect_err("over budget");
        assert_eq!(status.code(), Code::ResourceExhausted);
        let delay = status
            .get_error_details()
            .retry_info()
            .and_then(|r| r.retry_delay);
        assert!(
            delay.is_some_and(|d| d > Duration::ZERO && d <= Duration::from_millis(200)),
            "{delay:?}"
        );
        limiter
            .check_key("other")
            .expect("each key has its own budget");

        limiter.check_agent("A1").expect("first call");
        limiter.check_agent("A1").expect("burst of two");
        assert!(limiter.check_agent("A1").is_err());
    }
}
