//! Quarter and year parsing on any text: neither panics, and a parsed
//! quarter prints as text that parses back to the same quarter.

#![no_main]

use daiban_domain::{Quarter, YEARS, parse_year};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(quarter) = Quarter::parse(text) {
        assert_eq!(Quarter::parse(&quarter.to_string()).ok(), Some(quarter));
    }
    if let Ok(year) = parse_year(text) {
        assert!(YEARS.contains(&year), "{year}");
    }
});
