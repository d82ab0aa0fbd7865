//! Calendar quarters in China Standard Time (UTC+8), the periods that
//! bonus statements are closed and paid by.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

use crate::points::Period;

/// A calendar quarter such as `2026Q3`: July to September 2026 in UTC+8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quarter {
    year: i32,
    /// 1 to 4.
    number: u32,
}

/// Years a quarter or an inactivity year may name. Orders predate neither
/// end, and the bound keeps every date arithmetic in range.
pub const YEARS: std::ops::RangeInclusive<i32> = 2000..=2199;

/// The error for a text that is not a quarter or a year. Its message
/// shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PeriodError(pub String);

impl Quarter {
    /// Parses `YYYYQn`, such as `2026Q3`, with `n` from 1 to 4.
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        let invalid = || {
            PeriodError(format!(
                "expected a quarter such as 2026Q3 (year, Q, 1 to 4), got {:?}",
                text.chars().take(20).collect::<String>()
            ))
        };
        let text = text.trim();
        let bytes = text.as_bytes();
        if bytes.len() != 6 || bytes[4] != b'Q' {
            return Err(invalid());
        }
        let year = parse_year(&text[..4]).map_err(|_| invalid())?;
        let number = match bytes[5] {
            digit @ b'1'..=b'4' => u32::from(digit - b'0'),
            _ => return Err(invalid()),
        };
        Ok(Self { year, number })
    }

    /// Returns the quarter that `time` falls in, in UTC+8.
    pub fn of(time: DateTime<Utc>) -> Self {
        let period = Period::of(time);
        Self::parse(&period.quarter).expect("Period::of writes valid quarters")
    }

    pub fn year(self) -> i32 {
        self.year
    }

    /// The quarter's number within its year, 1 to 4.
    pub fn number(self) -> u32 {
        self.number
    }

    /// Returns the quarter after this one.
    pub fn next(self) -> Self {
        if self.number == 4 {
            Self {
                year: self.year + 1,
                number: 1,
            }
        } else {
            Self {
                year: self.year,
                number: self.number + 1,
            }
        }
    }

    /// Returns its three months, as `YYYY-MM`.
    pub fn months(self) -> [String; 3] {
        let first = (self.number - 1) * 3 + 1;
        [first, first + 1, first + 2].map(|month| format!("{:04}-{month:02}", self.year))
    }

    /// Returns the period of the quarter's first month, where a settlement
    /// lands when the quarter it was made in is already closed.
    pub fn first_period(self) -> Period {
        let [first, _, _] = self.months();
        Period {
            month: first,
            quarter: self.to_string(),
        }
    }

    /// Returns the instant the quarter starts: midnight of its first day in
    /// UTC+8.
    pub fn start(self) -> DateTime<Utc> {
        china_midnight(self.year, (self.number - 1) * 3 + 1)
    }

    /// Returns the instant the quarter ends, which is the start of the next
    /// one.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}Q{}", self.year, self.number)
    }
}

/// Parses a four-digit calendar year within [`YEARS`], such as `2026`.
pub fn parse_year(text: &str) -> Result<i32, PeriodError> {
    let text = text.trim();
    let invalid = || {
        PeriodError(format!(
            "expected a year from {} to {}, such as 2026, got {:?}",
            YEARS.start(),
            YEARS.end(),
            text.chars().take(20).collect::<String>()
        ))
    };
    if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let year: i32 = text.parse().map_err(|_| invalid())?;
    if YEARS.contains(&year) {
        Ok(year)
    } else {
        Err(invalid())
    }
}

/// Returns midnight of the first day of `month` in `year`, UTC+8, as UTC.
fn china_midnight(year: i32, month: u32) -> DateTime<Utc> {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let date = NaiveDate::from_ymd_opt(year, month, 1).expect("a quarter's first month exists");
    china
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has one local time")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarter_parses_strictly() {
        let quarter = Quarter::parse("2026Q3").unwrap();
        assert_eq!(quarter.year(), 2026);
        assert_eq!(quarter.number(), 3);
        assert_eq!(quarter.to_string(), "2026Q3");
        for bad in [
            "2026Q5", "2026Q0", "2026-Q3", "2026q3", "26Q3", "2026Q", "Q3", "", "1999Q1",
        ] {
            assert!(Quarter::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn quarter_bounds_use_china_time() {
        let q3 = Quarter::parse("2026Q3").unwrap();
        // Midnight of 1 July in UTC+8 is 16:00 UTC on 30 June.
        assert_eq!(q3.start().to_rfc3339(), "2026-06-30T16:00:00+00:00");
        assert_eq!(q3.end().to_rfc3339(), "2026-09-30T16:00:00+00:00");
        assert_eq!(Quarter::of(q3.end()), q3.next());
        assert_eq!(
            Quarter::of(q3.end() - chrono::Duration::milliseconds(1)),
            q3
        );
    }

    #[test]
    fn quarter_steps_into_next_year() {
        let q4 = Quarter::parse("2026Q4").unwrap();
        assert_eq!(q4.next().to_string(), "2027Q1");
        assert_eq!(q4.months(), ["2026-10", "2026-11", "2026-12"]);
        let first = q4.next().first_period();
        assert_eq!(first.month, "2027-01");
        assert_eq!(first.quarter, "2027Q1");
    }

    #[test]
    fn year_parses_in_range() {
        assert_eq!(parse_year("2026"), Ok(2026));
        for bad in ["26", "20266", "1999", "2200", "year", ""] {
            assert!(parse_year(bad).is_err(), "{bad} was accepted");
        }
    }
}
