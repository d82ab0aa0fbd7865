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

    pub(super) fn request(&self, request_id: &str) -> String {
        format!("{}request:{request_id}", self.prefix)
    }

    pub(super) fn widen(&self) -> String {
        format!("{}widen", self.prefix)
    }

    pub(super) fn escalate(&self) -> String {
        format!("{}escalate", self.prefix)
    }

    pub(super) fn settle(&self) -> String {
        format!("{}settle", self.prefix)
    }

    pub(super) fn open_grid(&self, grid: &GridCode) -> String {
        format!("{}open:grid:{grid}", self.prefix)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_county_hash_tag() {
        let county = CountyCode::parse("431127").expect("valid county code");
        let keys = CountyKeys::new(&county);
        assert_eq!(keys.order(42), "daiban:{431127}:order:42");
        assert_eq!(keys.widen(), "daiban:{431127}:widen");
        assert_eq!(keys.day("20261123"), "daiban:{431127}:day:20261123");
        assert_eq!(keys.request("r-1"), "daiban:{431127}:request:r-1");
    }
}
