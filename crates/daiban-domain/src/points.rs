//! The points rules and the periods they are booked in.
//!
//! Points are kept in tenths and money in fen, both integers: a class-1
//! order earns 1.5 points, which is 15 tenths.

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use crate::directory::MatterClass;
use crate::order::Rating;

/// The points an order settles at, in tenths.
///
/// A class-1 order earns 15 and a class-2 order 20. A satisfied or very
/// satisfied applicant adds 10, an unsatisfied one makes the total 0, and
/// an average rating or no rating within the rating window (`None`) leaves
/// the base points.
pub fn points_tenths(class: MatterClass, rating: Option<Rating>) -> i32 {
    let base = match class {
        MatterClass::One => 15,
        MatterClass::Two => 20,
    };
    match rating {
        Some(Rating::VerySatisfied | Rating::Satisfied) => base + 10,
        Some(Rating::Unsatisfied) => 0,
        Some(Rating::Average) | None => base,
    }
}

/// The month and quarter a settlement belongs to: those of its settlement
/// time in China Standard Time (UTC+8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    /// `YYYY-MM`.
    pub month: String,
    /// `YYYYQn`.
    pub quarter: String,
}

impl Period {
    pub fn of(time: DateTime<Utc>) -> Self {
        let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
        let local = time.with_timezone(&china);
        Self {
            month: format!("{:04}-{:02}", local.year(), local.month()),
            quarter: format!("{:04}Q{}", local.year(), (local.month() - 1) / 3 + 1),
        }
    }

    /// The period's calendar year, `YYYY`.
    pub fn year(&self) -> &str {
        &self.month[..4]
    }
}

/// The bonus paid per point, in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BonusRate {
    fen_per_point: i64,
}

impl BonusRate {
    pub fn from_fen_per_point(fen_per_point: i64) -> Self {
        Self { fen_per_point }
    }

    pub fn fen_per_point(self) -> i64 {
        self.fen_per_point
    }

    /// The bonus for `tenths` points, in fen, rounded half up.
    pub fn bonus_fen(self, tenths: i64) -> i64 {
        (tenths * self.fen_per_point * 2 + 10).div_euclid(20)
    }
}

impl Default for BonusRate {
    /// 10 yuan per point.
    fn default() -> Self {
        Self {
            fen_per_point: 1000,
        }
    }
}

/// Formats points given in tenths with one decimal, as `8.5` or `2.0`.
pub fn format_points(tenths: i64) -> String {
    let sign = if tenths < 0 { "-" } else { "" };
    let tenths = tenths.unsigned_abs();
    format!("{sign}{}.{}", tenths / 10, tenths % 10)
}

/// Formats an amount given in fen as yuan with two decimals, as `85.00`.
pub fn format_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

/// Parses a yuan amount such as `10` or `12.5` into fen. At most two
/// decimal places; negative amounts are rejected.
pub fn yuan_per_point_to_fen(text: &str) -> Result<i64, String> {
    let invalid = || format!("expected yuan per point such as 10 or 12.5, got {text:?}");
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 9
        || !all_digits(whole)
        || fraction.len() > 2
        || !all_digits(fraction)
    {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    Ok(whole * 100 + fraction)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn points_follow_class_and_rating() {
        let cases = [
            (MatterClass::One, None, 15),
            (MatterClass::Two, None, 20),
            (MatterClass::One, Some(Rating::VerySatisfied), 25),
            (MatterClass::Two, Some(Rating::Satisfied), 30),
            (MatterClass::One, Some(Rating::Average), 15),
            (MatterClass::Two, Some(Rating::Average), 20),
            (MatterClass::One, Some(Rating::Unsatisfied), 0),
            (MatterClass::Two, Some(Rating::Unsatisfied), 0),
        ];
        for (class, rating, expected) in cases {
            assert_eq!(
                points_tenths(class, rating),
                expected,
                "{class:?} {rating:?}"
            );
        }
    }

    #[test]
    fn period_uses_china_time() {
        // 30 September 17:00 UTC is 1 October 01:00 in UTC+8.
        let time = Utc.with_ymd_and_hms(2026, 9, 30, 17, 0, 0).unwrap();
        let period = Period::of(time);
        assert_eq!(period.month, "2026-10");
        assert_eq!(period.quarter, "2026Q4");
        assert_eq!(period.year(), "2026");

        let time = Utc.with_ymd_and_hms(2026, 9, 30, 15, 59, 59).unwrap();
        assert_eq!(Period::of(time).quarter, "2026Q3");
    }

    #[test]
    fn bonus_is_exact_in_fen() {
        let rate = BonusRate::default();
        assert_eq!(rate.bonus_fen(15), 1500);
        assert_eq!(rate.bonus_fen(0), 0);
        let odd = BonusRate::from_fen_per_point(1255);
        // 1.5 points at 12.55 yuan is 18.825 yuan, rounded to 1883 fen.
        assert_eq!(odd.bonus_fen(15), 1883);
    }

    #[test]
    fn amounts_format_with_fixed_decimals() {
        assert_eq!(format_points(85), "8.5");
        assert_eq!(format_points(20), "2.0");
        assert_eq!(format_points(0), "0.0");
        assert_eq!(format_points(-15), "-1.5");
        assert_eq!(format_yuan(8500), "85.00");
        assert_eq!(format_yuan(1883), "18.83");
        assert_eq!(format_yuan(5), "0.05");
        assert_eq!(format_yuan(-150), "-1.50");
    }

    #[test]
    fn yuan_parses_to_fen() {
        assert_eq!(yuan_per_point_to_fen("10"), Ok(1000));
        assert_eq!(yuan_per_point_to_fen("12.5"), Ok(1250));
        assert_eq!(yuan_per_point_to_fen("0.05"), Ok(5));
        for bad in ["", "-1", "1.234", "ten", ".5", "1e3"] {
            assert!(yuan_per_point_to_fen(bad).is_err(), "{bad}");
        }
    }
}
