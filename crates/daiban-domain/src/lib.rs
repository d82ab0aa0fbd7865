//! The grab-order domain: division codes, the county directory, work orders
//! and the points rules. **This crate does no I/O**: it parses text it is
//! given and computes with times it is given, so every rule is testable
//! without a clock, a network or a file.

mod codes;
mod directory;
mod order;
mod points;
mod quarter;

pub use codes::{
    AgentId, CodeError, CountyCode, GridCode, MatterCode, OrderId, PhoneNumber, TownshipCode,
    mask_digit_runs,
};
pub use directory::{
    Agent, AgentRole, Directory, DirectoryError, Grid, Matter, MatterClass, Township,
};
pub use order::{
    Applicant, Channel, OrderState, Rating, WorkOrder, WorkResult, claim_code_for,
    claim_code_sequence, find_claim_code, order_day, order_number,
};
pub use points::{
    BonusRate, Period, format_points, format_yuan, points_tenths, yuan_per_point_to_fen,
};
pub use quarter::{PeriodError, Quarter, YEARS, parse_year};
