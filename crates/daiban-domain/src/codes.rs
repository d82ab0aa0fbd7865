//! Identifiers that carry their checks: each has a `parse` constructor and
//! no way to build an invalid value.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a piece of text is not a valid code; the message says what is
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodeError(pub String);

fn digits(text: &str, len: usize, what: &str) -> Result<String, CodeError> {
    let text = text.trim();
    if text.len() == len && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(CodeError(format!(
            "expected a {len}-digit {what}, got {text:?}"
        )))
    }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// A county's 6-digit statistical division code, such as `431127`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CountyCode(String);
string_newtype!(CountyCode);

impl CountyCode {
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        digits(text, 6, "county code").map(Self)
    }
}

/// A township's 9-digit division code: the county code and three digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TownshipCode(String);
string_newtype!(TownshipCode);

impl TownshipCode {
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        digits(text, 9, "township code").map(Self)
    }

    pub fn county(&self) -> CountyCode {
        CountyCode(self.0[..6].to_owned())
    }
}

/// A grid's (village or community) 12-digit division code, such as
/// `431127100202`. Its first 6 digits are the county, its first 9 the
/// township.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GridCode(String);
string_newtype!(GridCode);

impl GridCode {
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        digits(text, 12, "grid code").map(Self)
    }

    pub fn county(&self) -> CountyCode {
        CountyCode(self.0[..6].to_owned())
    }

    pub fn township(&self) -> TownshipCode {
        TownshipCode(self.0[..9].to_owned())
    }
}

/// A mainland China mobile number, kept as its 11 digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PhoneNumber(String);
string_newtype!(PhoneNumber);

impl PhoneNumber {
    /// Parses `13812341234`, with or without a `+86`, `86` or `0086` prefix,
    /// spaces or hyphens.
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let national = ["+86", "0086", "86"]
            .iter()
            .find_map(|prefix| compact.strip_prefix(prefix).filter(|rest| rest.len() == 11))
            .unwrap_or(&compact);
        let bytes = national.as_bytes();
        let valid = bytes.len() == 11
            && bytes.iter().all(u8::is_ascii_digit)
            && bytes[0] == b'1'
            && (b'3'..=b'9').contains(&bytes[1]);
        if valid {
            Ok(Self(national.to_owned()))
        } else {
            Err(CodeError(format!(
                "expected an 11-digit mainland mobile number such as 13812341234, got {}",
                mask_text(text)
            )))
        }
    }

    /// The number with its middle four digits hidden, as `138****1234`, for
    /// logs and for agents who do not hold the order.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

/// `text` with every run of seven or more digits masked: a run of eleven
/// or more keeps its first three and last four digits, as `138****1234`,
/// and a shorter one only its last four, as `***1234`. Mobile, landline and ID numbers that applicants type into free text
/// thus never reach agents who do not hold the order, nor logs.
pub fn mask_digit_runs(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, masked: &mut String| {
        let len = run.chars().count();
        if len >= 11 {
            masked.push_str(&run[..3]);
            masked.extend(std::iter::repeat_n('*', len - 7));
            masked.push_str(&run[len - 4..]);
        } else if len >= 7 {
            masked.extend(std::iter::repeat_n('*', len - 4));
            masked.push_str(&run[len - 4..]);
        } else {
            masked.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut masked);
            masked.push(c);
        }
    }
    flush(&mut run, &mut masked);
    masked
}

/// Keeps an invalid phone-like input out of error messages and logs: only
/// its first three characters, quoted, and its length are shown.
fn mask_text(text: &str) -> String {
    let head: String = text.chars().take(3).collect();
    let count = text.chars().count();
    let cut = if count > 3 { "…" } else { "" };
    format!("{:?} ({count} characters)", format!("{head}{cut}"))
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// A catalogue matter's code, such as `M003`: 1 to 32 letters, digits,
/// hyphens or underscores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MatterCode(String);
string_newtype!(MatterCode);

impl MatterCode {
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        token(text, "a matter code such as M003").map(Self)
    }
}

/// An agent's id, such as `A0001`: 1 to 32 letters, digits, hyphens or
/// underscores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgentId(String);
string_newtype!(AgentId);

impl AgentId {
    pub fn parse(text: &str) -> Result<Self, CodeError> {
        token(text, "an agent id such as A0001").map(Self)
    }
}

fn token(text: &str, what: &str) -> Result<String, CodeError> {
    let text = text.trim();
    let valid = (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(CodeError(format!(
            "expected {what} (1 to 32 letters, digits, '-' or '_'), got {:?}",
            text.chars().take(40).collect::<String>()
        )))
    }
}

/// A work order's id: its county code and a sequence number within that
/// county, written `431127-00000042`. The county prefix lets every replica
/// find the order's keys without a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderId {
    county: CountyCode,
    sequence: u64,
}

impl OrderId {
    pub fn new(county: CountyCode, sequence: u64) -> Self {
        Self { county, sequence }
    }

    pub fn parse(text: &str) -> Result<Self, CodeError> {
        let invalid = || {
            CodeError(format!(
                "expected an order id such as 431127-00000042, got {:?}",
                text.chars().take(40).collect::<String>()
            ))
        };
        let (county, sequence) = text.trim().split_once('-').ok_or_else(invalid)?;
        let county = CountyCode::parse(county).map_err(|_| invalid())?;
        if sequence.is_empty()
            || sequence.len() > 19
            || !sequence.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let sequence = sequence.parse().map_err(|_| invalid())?;
        Ok(Self { county, sequence })
    }

    pub fn county(&self) -> &CountyCode {
        &self.county
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:08}", self.county, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_accepts_country_prefixes() {
        for text in [
            "13812341234",
            "8613812341234",
            "+8613812341234",
            "008613812341234",
            "138 1234-1234",
        ] {
            let phone = PhoneNumber::parse(text).expect(text);
            assert_eq!(phone.as_str(), "13812341234", "{text}");
        }
    }

    #[test]
    fn phone_rejects_non_mobile_numbers() {
        for text in [
            "",
            "1381234123",
            "138123412345",
            "12812341234",
            "07468881234",
            "1381234123x",
            "+1 4155550100",
        ] {
            assert!(PhoneNumber::parse(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn phone_masks_middle_digits() {
        let phone = PhoneNumber::parse("13812341234").unwrap();
        assert_eq!(phone.masked(), "138****1234");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(138****1234)");
    }

    #[test]
    fn digit_runs_are_masked() {
        assert_eq!(mask_digit_runs("13912345678请回电"), "139****5678请回电");
        assert_eq!(mask_digit_runs("电话0746-8881234"), "电话0746-***1234");
        assert_eq!(
            mask_digit_runs("身份证431127199001011234"),
            "身份证431***********1234"
        );
        assert_eq!(mask_digit_runs("5组 123456"), "5组 123456");
        assert_eq!(mask_digit_runs(""), "");
    }

    #[test]
    fn phone_error_hides_input() {
        let err = PhoneNumber::parse("1381234567890").unwrap_err();
        assert!(!err.0.contains("1381234567890"), "{err}");
        assert!(err.0.ends_with(r#"got "138…" (13 characters)"#), "{err}");
    }

    #[test]
    fn phone_error_quotes_short_input() {
        let err = PhoneNumber::parse("123").unwrap_err();
        assert!(err.0.ends_with(r#"got "123" (3 characters)"#), "{err}");
    }

    #[test]
    fn grid_code_knows_county_and_township() {
        let grid = GridCode::parse("431127100202").unwrap();
        assert_eq!(grid.county().as_str(), "431127");
        assert_eq!(grid.township().as_str(), "431127100");
        assert!(GridCode::parse("43112710020").is_err());
        assert!(GridCode::parse("43112710020x").is_err());
    }

    #[test]
    fn order_id_round_trips() {
        let id = OrderId::new(CountyCode::parse("431127").unwrap(), 42);
        assert_eq!(id.to_string(), "431127-00000042");
        assert_eq!(OrderId::parse("431127-00000042").unwrap(), id);
        assert_eq!(OrderId::parse("431127-42").unwrap(), id);
        for bad in [
            "",
            "431127",
            "43112-1",
            "431127-",
            "431127-x",
            "431127--1",
            "431127-99999999999999999999",
        ] {
            assert!(OrderId::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn tokens_reject_odd_characters() {
        assert!(AgentId::parse("A0001").is_ok());
        assert!(AgentId::parse("").is_err());
        assert!(AgentId::parse("A 1").is_err());
        assert!(MatterCode::parse(&"M".repeat(33)).is_err());
    }
}
