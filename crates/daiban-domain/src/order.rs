//! Work orders: their states, ratings and the texts that identify them.

use chrono::{DateTime, FixedOffset, Utc};

use crate::codes::{AgentId, CountyCode, GridCode, OrderId, PhoneNumber};
use crate::directory::{Matter, MatterClass};

/// Where an order is in its lifecycle.
///
/// `OfferedToGrid` → `OfferedToCounty` → `Claimed` → `Completed` →
/// `Settled`, or `Cancelled` from any state before `Completed`. A release
/// returns a `Claimed` order to `OfferedToCounty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    OfferedToGrid,
    OfferedToCounty,
    Claimed,
    Completed,
    Settled,
    Cancelled,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OfferedToGrid => "offered_to_grid",
            Self::OfferedToCounty => "offered_to_county",
            Self::Claimed => "claimed",
            Self::Completed => "completed",
            Self::Settled => "settled",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::OfferedToGrid,
            Self::OfferedToCounty,
            Self::Claimed,
            Self::Completed,
            Self::Settled,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether an agent may grab an order in this state.
    pub fn is_open(self) -> bool {
        matches!(self, Self::OfferedToGrid | Self::OfferedToCounty)
    }
}

/// The applicant's one rating of a completed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rating {
    VerySatisfied,
    Satisfied,
    Average,
    Unsatisfied,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerySatisfied => "very_satisfied",
            Self::Satisfied => "satisfied",
            Self::Average => "average",
            Self::Unsatisfied => "unsatisfied",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::VerySatisfied,
            Self::Satisfied,
            Self::Average,
            Self::Unsatisfied,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }

    /// Very satisfied and satisfied both count as satisfied.
    pub fn is_satisfied(self) -> bool {
        matches!(self, Self::VerySatisfied | Self::Satisfied)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    WebHall,
    GovApp,
    Wechat,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebHall => "web_hall",
            Self::GovApp => "gov_app",
            Self::Wechat => "wechat",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::WebHall, Self::GovApp, Self::Wechat]
            .into_iter()
            .find(|c| c.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicant {
    pub name: String,
    pub phone: PhoneNumber,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkResult {
    pub text: String,
    pub reference: String,
}

/// A work order as stored. Times are UTC; the fields that only some states
/// have are `Option`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkOrder {
    pub id: OrderId,
    pub number: String,
    pub state: OrderState,
    pub request_text: String,
    pub request_id: Option<String>,
    pub matter: Option<Matter>,
    pub county: CountyCode,
    pub grid: Option<GridCode>,
    /// The address as the applicant gave it; empty when a grid code was
    /// given.
    pub address: String,
    pub applicant: Applicant,
    pub channel: Channel,
    pub claim_code: String,
    pub agent: Option<AgentId>,
    pub create_time: DateTime<Utc>,
    /// When the grid phase ends; equal to `create_time` for an order
    /// offered county-wide at once.
    pub widen_time: DateTime<Utc>,
    /// Whether the order has been offered county-wide.
    pub widened: bool,
    pub escalated: bool,
    pub claim_time: Option<DateTime<Utc>>,
    pub complete_time: Option<DateTime<Utc>>,
    pub result: Option<WorkResult>,
    pub rating: Option<Rating>,
    pub rating_comment: String,
    pub rate_time: Option<DateTime<Utc>>,
    pub points_tenths: Option<i32>,
    pub settle_time: Option<DateTime<Utc>>,
    pub cancel_time: Option<DateTime<Utc>>,
    pub cancel_reason: String,
    /// Agents who held the order and gave it back; they are not notified of
    /// it again.
    pub released_by: Vec<AgentId>,
}

impl WorkOrder {
    /// Whether `grid`'s agents alone may grab the order at `now`: it is in
    /// its grid phase and the phase has not ended yet, whether or not the
    /// dispatcher has widened it.
    pub fn reserved_for_grid(&self, now: DateTime<Utc>) -> bool {
        self.state == OrderState::OfferedToGrid && now < self.widen_time
    }

    pub fn matter_class(&self) -> Option<MatterClass> {
        self.matter.as_ref().map(|m| m.class)
    }
}

/// The order's six-digit claim code, derived from its county sequence
/// number. Multiplying by a number coprime to 10^6 keeps consecutive
/// orders' codes apart, so a mistyped reply rarely names a neighbouring
/// order, and no two of any million consecutive orders of a county share
/// one. The codes are predictable from the sequence, so they are no
/// secret: a grab by reply still needs the phone of an agent who may take
/// the order.
pub fn claim_code_for(sequence: u64) -> String {
    let code = (sequence % CLAIM_CODE_MODULUS) * CLAIM_CODE_MULTIPLIER % CLAIM_CODE_MODULUS;
    format!("{code:06}")
}

const CLAIM_CODE_MODULUS: u64 = 1_000_000;
const CLAIM_CODE_MULTIPLIER: u64 = 737_111;
/// The inverse of `CLAIM_CODE_MULTIPLIER` modulo `CLAIM_CODE_MODULUS`.
const CLAIM_CODE_INVERSE: u64 = 293_991;

/// Returns the smallest sequence number whose claim code is `code`, or
/// `None` when `code` is not six digits. The orders with that code are the
/// returned sequence plus any multiple of 1,000,000.
pub fn claim_code_sequence(code: &str) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u64 = code.parse().ok()?;
    Some(code * CLAIM_CODE_INVERSE % CLAIM_CODE_MODULUS)
}

/// Finds the claim code in an SMS reply: the first run of exactly six
/// ASCII or full-width digits, as in `抢单 737111` or `７３７１１１`.
pub fn find_claim_code(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            _ => c,
        })
        .collect();
    digits
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_owned)
}

/// The order's human-readable number: its creation date in UTC+8 and its
/// sequence within that day, as `20261123-0042`.
pub fn order_number(create_time: DateTime<Utc>, daily_sequence: u64) -> String {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    format!(
        "{}-{daily_sequence:04}",
        create_time.with_timezone(&china).format("%Y%m%d")
    )
}

/// The date of `time` in UTC+8, as `20261123`: the key of the daily
/// sequence behind [`order_number`].
pub fn order_day(time: DateTime<Utc>) -> String {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    time.with_timezone(&china).format("%Y%m%d").to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn claim_code_inverts() {
        for sequence in [0, 1, 42, 999_999, 123_456] {
            let code = claim_code_for(sequence);
            assert_eq!(claim_code_sequence(&code), Some(sequence), "{code}");
        }
        assert_eq!(claim_code_sequence(&claim_code_for(1_000_042)), Some(42));
        assert_eq!(claim_code_sequence("12345"), None);
        assert_eq!(claim_code_sequence("12345a"), None);
    }

    #[test]
    fn claim_code_found_in_reply() {
        assert_eq!(find_claim_code("737111").as_deref(), Some("737111"));
        assert_eq!(
            find_claim_code("抢单 737111 谢谢").as_deref(),
            Some("737111")
        );
        assert_eq!(find_claim_code("７３７１１１").as_deref(), Some("737111"));
        assert_eq!(
            find_claim_code("13812341234"),
            None,
            "a phone number is no code"
        );
        assert_eq!(find_claim_code("12345 好的"), None);
        assert_eq!(find_claim_code("好的"), None);
    }

    #[test]
    fn claim_codes_are_unique_over_a_million() {
        let codes: HashSet<String> = (1..=1_000_000).map(claim_code_for).collect();
        assert_eq!(codes.len(), 1_000_000);
        assert_eq!(claim_code_for(1).len(), 6);
        assert_ne!(claim_code_for(1), claim_code_for(2));
    }

    #[test]
    fn order_number_uses_china_date() {
        // 16:30 UTC on 22 November is 00:30 on 23 November in UTC+8.
        let time = Utc.with_ymd_and_hms(2026, 11, 22, 16, 30, 0).unwrap();
        assert_eq!(order_number(time, 42), "20261123-0042");
        assert_eq!(order_day(time), "20261123");
    }

    #[test]
    fn states_round_trip() {
        for state in [
            OrderState::OfferedToGrid,
            OrderState::OfferedToCounty,
            OrderState::Claimed,
            OrderState::Completed,
            OrderState::Settled,
            OrderState::Cancelled,
        ] {
            assert_eq!(OrderState::parse(state.as_str()), Some(state));
        }
        assert_eq!(OrderState::parse("open"), None);
    }
}
