//! Names of a county's Redis keys. The layout is described in the module
//! comment of `redis_store`; the Lua scripts derive the same names from
//! [`CountyKeys::prefix`].

use daiban_domain::{AgentId, CountyCode, GridCode, PhoneNumber};

/// The keys of one county, all under `daiban:{<county code>}:`.
pub(super) struct CountyKeys {
    prefix: String,
}

impl CountyKeys {
    pub(super) fn new(county: &CountyCode) -> Self {
        Self {
            prefix: format!("daiban:{{{county}}}:"),
        }
    }

    /// Returns the prefix shared by every key of the county, including its
    /// hash tag.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn order(&self, sequence: u64) -> String {
        format!("{}order:{sequence}", self.prefix)
    }

    pub(super) fn sequence(&self) -> String {
        format!("{}seq", self.prefix)
    }

    /// Returns the key of the counter behind the order numbers of one UTC+8
    /// day, given as `yyyymmdd`.
    pub(super) fn day(&self, day: &str) -> String {
        format!("{}day:{day}", self.prefix)
    }

    /// Returns the hash that maps `request_id`, among others, to its
    /// order's sequence number.
    pub(super) fn requests(&self, request_id: &str) -> String {
        format!("{}requests:{}", self.prefix, request_bucket(request_id))
    }

    /// Returns the key of one request id of an order submitted before the
    /// request ids moved into [`Self::requests`].
    pub(super) fn old_request(&self, request_id: &str) -> String {
        format!("{}request:{request_id}", self.prefix)
    }

    /// Returns the hash and the field that map order `number` to its
    /// sequence number, or `None` when `number` is not `yyyymmdd-NNNN`.
    /// Each hash contains the numbers of one day whose NNNN differ only in
    /// their last two digits, at most 100, so Redis keeps it compact.
    pub(super) fn number(&self, number: &str) -> Option<(String, String)> {
        let (day, daily) = number.split_once('-')?;
        let valid_day = day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit());
        let daily: u64 = daily.parse().ok().filter(|_| valid_day)?;
        Some((
            format!("{}numbers:{day}:{}", self.prefix, daily / 100),
            (daily % 100).to_string(),
        ))
    }

    /// Returns the hash of every order number of orders last changed
    /// before the numbers moved into [`Self::number`]'s hashes.
    pub(super) fn old_numbers(&self) -> String {
        format!("{}numbers", self.prefix)
    }

    /// Returns the index of the county's grids that have orders in their
    /// grid phase.
    pub(super) fn grid_phases(&self) -> String {
        format!("{}grid_phases", self.prefix)
    }

    /// Returns the index of the buckets of `grid`'s grid phase schedule
    /// (see `lua/common.lua`).
    pub(super) fn grid_buckets(&self, grid: &GridCode) -> String {
        format!("{}grid_buckets:{grid}", self.prefix)
    }

    /// Returns the widening schedule of the orders put in their grid phase
    /// before the schedules per grid.
    pub(super) fn old_widen(&self) -> String {
        format!("{}widen", self.prefix)
    }

    pub(super) fn escalate(&self) -> String {
        format!("{}escalate", self.prefix)
    }

    pub(super) fn settle(&self) -> String {
        format!("{}settle", self.prefix)
    }

    pub(super) fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    pub(super) fn outbox(&self) -> String {
        format!("{}outbox", self.prefix)
    }

    pub(super) fn points(&self, agent: &AgentId) -> String {
        format!("{}points:{agent}", self.prefix)
    }

    pub(super) fn sms(&self, sequence: u64) -> String {
        format!("{}sms:{sequence}", self.prefix)
    }

    pub(super) fn sms_due(&self) -> String {
        format!("{}smsdue", self.prefix)
    }

    pub(super) fn sms_failed(&self) -> String {
        format!("{}smsfailed", self.prefix)
    }

    pub(super) fn reply(&self, key: &str) -> String {
        format!("{}reply:{key}", self.prefix)
    }

    pub(super) fn helped(&self, phone: &PhoneNumber) -> String {
        format!("{}helped:{phone}", self.prefix)
    }
}

/// Request ids are spread over this many hashes, so that each stays small
/// enough for Redis's compact encoding up to millions of orders.
const REQUEST_BUCKETS: u64 = 1 << 16;

/// Returns the bucket of `request_id`: 64-bit FNV-1a of its bytes, modulo
/// [`REQUEST_BUCKETS`]. Stored keys depend on it, so it must never change.
fn request_bucket(request_id: &str) -> u64 {
    let hash = request_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    hash % REQUEST_BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_county_hash_tag() {
        let county = CountyCode::parse("431127").expect("valid county code");
        let keys = CountyKeys::new(&county);
        assert_eq!(keys.order(42), "daiban:{431127}:order:42");
        assert_eq!(keys.grid_phases(), "daiban:{431127}:grid_phases");
        assert_eq!(keys.day("20261123"), "daiban:{431127}:day:20261123");
        assert_eq!(keys.old_request("r-1"), "daiban:{431127}:request:r-1");
    }

    #[test]
    fn request_buckets_are_stable() {
        let keys = CountyKeys::new(&CountyCode::parse("431127").expect("valid county code"));
        // FNV-1a of the empty string is its offset basis, 0xcbf29ce484222325.
        assert_eq!(request_bucket(""), 0x2325);
        assert_eq!(keys.requests("r-1"), keys.requests("r-1"));
        assert_ne!(keys.requests("r-1"), keys.requests("r-2"));
        let buckets: std::collections::HashSet<u64> = (0..1000)
            .map(|i| request_bucket(&format!("req-{i}")))
            .collect();
        assert!(buckets.len() > 950, "{} buckets", buckets.len());
    }

    #[test]
    fn numbers_share_a_hash_per_hundred() {
        let keys = CountyKeys::new(&CountyCode::parse("431127").expect("valid county code"));
        let prefix = "daiban:{431127}:numbers:20261123";
        let of = |number: &str| keys.number(number);
        assert_eq!(
            of("20261123-0042"),
            Some((format!("{prefix}:0"), "42".to_owned()))
        );
        assert_eq!(
            of("20261123-0142"),
            Some((format!("{prefix}:1"), "42".to_owned()))
        );
        assert_eq!(
            of("20261123-12345"),
            Some((format!("{prefix}:123"), "45".to_owned()))
        );
        for bad in [
            "",
            "20261123",
            "2026112-0001",
            "2026112x-0001",
            "20261123-",
            "20261123-1a",
        ] {
            assert_eq!(of(bad), None, "{bad:?}");
        }
    }
}
