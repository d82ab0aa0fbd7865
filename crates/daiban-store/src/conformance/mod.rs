//! The conformance suite: the behaviour that every [`Store`] must show,
//! written once and run against each implementation.
//!
//! Each case is a public async function that takes a store, works in a
//! county code of its own, and panics with a message naming what differed.
//! Cases therefore share one store, or one Redis database, without
//! interfering. [`CASES`] lists them, [`run`] runs one by name and
//! [`run_all`] runs them all in that order.
//!
//! Times are fixed (the suite starts at 2026-11-23 01:00 UTC, 09:00 in
//! UTC+8), so no case waits for a clock.

use crate::Store;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// The names of every case, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(stringify!($name)),*];

        /// Runs the case called `name`.
        ///
        /// # Panics
        ///
        /// When the case fails, or when no case has that name.
        pub async fn run(name: &str, store: &dyn Store) {
            match name {
                $(stringify!($name) => $name(store).await,)*
                _ => panic!("no conformance case is called {name:?}; see conformance::CASES"),
            }
        }
    };
}

cases!(
    submit_creates_orders,
    times_keep_milliseconds,
    submit_is_idempotent_by_request_id,
    concurrent_retries_create_once,
    unknown_order_is_not_found,
    grid_agent_claims_in_grid_phase,
    other_grid_is_reserved_in_grid_phase,
    other_grid_claims_after_grid_phase,
    second_claim_is_already_claimed,
    claim_of_cancelled_conflicts,
    claim_of_own_completed_conflicts,
    release_offers_county_wide,
    release_reschedules_escalation,
    complete_checks_holder_and_state,
    complete_sets_matter_of_fuzzy_order,
    cancel_checks_state,
    rated_orders_settle_by_points_rules,
    second_rating_is_already_rated,
    rating_before_completion_conflicts,
    rating_after_settlement_conflicts,
    widen_due_takes_due_orders_once,
    widen_due_concurrently_once,
    escalate_due_takes_unclaimed_once,
    settle_due_takes_unrated_once,
    next_deadline_tracks_schedules,
    grid_phases_interleave_across_grids,
    open_orders_by_grid,
    agent_points_by_month,
    events_in_order,
    concurrent_claims_have_one_winner,
    settle_rated_books_once,
    settlement_group_delivers_rated_events,
    unacknowledged_events_are_taken_over,
    settlement_after_close_lands_in_next_quarter,
    frozen_statement_is_kept_once,
    quarter_totals_by_agent_and_county,
    settle_due_settles_rated_leftovers,
    completed_orders_by_year_and_quarter,
    announcements_follow_state_changes,
    announcements_taken_once_concurrently,
    read_events_follows_log,
    sms_queued_once_per_offer,
    sms_taken_once_and_finished,
    sms_lease_expiry_is_not_resent,
    sms_reports_match_once,
    sms_withdrawn_and_uncertain,
    sms_deferred_keeps_attempts,
    replies_handled_once,
    state_counts_follow_changes,
    open_board_lists_grid_phase_first,
    day_stats_count_claims_by_phase,
    orders_found_by_number_phone_and_agent,
    phone_search_finds_the_newest,
    order_changes_match_events,
    console_secret_is_kept,
);

/// Runs every case of [`CASES`] against `store`, one after another.
pub async fn run_all(store: &dyn Store) {
    for name in CASES {
        run(name, store).await;
    }
}

/// Asserts that `$result` is an `Err` matching `$pattern`, naming `$what`
/// and the actual result otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat, $what:expr) => {
        match $result {
            Err($pattern) => {}
            other => panic!(
                "{}: expected Err({}), got {:?}",
                $what,
                stringify!($pattern),
                other
            ),
        }
    };
}

mod announcements;
mod claims;
mod fixture;
mod ledger;
mod orders;
mod overview;
mod queries;
mod settlement;
mod sms;
mod timers;

pub use announcements::*;
pub use claims::*;
pub use ledger::*;
pub use orders::*;
pub use overview::*;
pub use queries::*;
pub use settlement::*;
pub use sms::*;
pub use timers::*;
