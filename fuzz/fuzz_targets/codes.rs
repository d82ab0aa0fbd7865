//! The domain's code parsers on any text: none panics, and a parsed code
//! prints as text that parses back to the same code.

#![no_main]

use daiban_domain::{
    AgentId, CountyCode, GridCode, MatterCode, OrderId, PhoneNumber, TownshipCode, mask_digit_runs,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(phone) = PhoneNumber::parse(text) {
        assert_eq!(
            PhoneNumber::parse(&phone.to_string()).ok(),
            Some(phone.clone())
        );
        let masked = phone.masked();
        assert_eq!(masked.chars().count(), 11, "{masked}");
    }
    if let Ok(grid) = GridCode::parse(text) {
        assert_eq!(GridCode::parse(&grid.to_string()).ok(), Some(grid.clone()));
        assert_eq!(grid.county().to_string(), grid.to_string()[..6]);
        let _ = grid.township();
    }
    if let Ok(county) = CountyCode::parse(text) {
        assert_eq!(CountyCode::parse(&county.to_string()).ok(), Some(county));
    }
    if let Ok(township) = TownshipCode::parse(text) {
        let _ = township.county();
    }
    if let Ok(order) = OrderId::parse(text) {
        assert_eq!(OrderId::parse(&order.to_string()).ok(), Some(order));
    }
    if let Ok(agent) = AgentId::parse(text) {
        assert_eq!(AgentId::parse(&agent.to_string()).ok(), Some(agent));
    }
    if let Ok(matter) = MatterCode::parse(text) {
        assert_eq!(MatterCode::parse(&matter.to_string()).ok(), Some(matter));
    }

    // No run of seven or more ASCII digits survives the masking.
    let masked = mask_digit_runs(text);
    let mut run = 0;
    for c in masked.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < 7, "a digit run survived in {masked:?}");
    }
});
