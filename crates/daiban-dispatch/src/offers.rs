//! Who is told of an order, and what they read.
//!
//! Each agent gets one offer SMS per offer of an order: the grid's agents
//! when the order is submitted, the rest of the county when it widens, and
//! everyone but the agents who gave it back each time it is released.

use std::sync::Arc;

use daiban_domain::{Directory, WorkOrder};
use daiban_store::AnnouncementKind;
use daiban_store::sms::{SmsId, SmsRecipient};

use crate::texts::{self, ClaimLoss, Message};

/// The offers of the answers to a claim by reply, one per outcome.
pub const CLAIM_WON: &str = "claim-won";
pub const CLAIM_TAKEN: &str = "claim-taken";
pub const CLAIM_RESERVED: &str = "claim-reserved";
pub const CLAIM_CLOSED: &str = "claim-closed";

#[derive(Clone)]
pub struct Offers {
    directory: Arc<Directory>,
}

impl Offers {
    pub fn new(directory: Arc<Directory>) -> Self {
        Self { directory }
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Returns the offer that an announcement of `kind` makes and who gets
    /// it.
    ///
    /// A new order goes to its grid's active agents when it has a grid
    /// phase, else to every active agent of the county. The phase is read
    /// from the order's times, not its state, so a late announcement of an
    /// order widened since still goes to the grid's agents only: the
    /// widening announcement covers the rest.
    pub fn audience(
        &self,
        kind: AnnouncementKind,
        order: &WorkOrder,
    ) -> (String, Vec<SmsRecipient>) {
        match kind {
            AnnouncementKind::Submitted => {
                let recipients = match (&order.grid, in_grid_phase(order)) {
                    (Some(grid), true) => agents(self.directory.active_agents_in_grid(grid)),
                    _ => self.county(order, false),
                };
                ("submitted".to_owned(), recipients)
            }
            AnnouncementKind::Widened => ("widened".to_owned(), self.county(order, true)),
            AnnouncementKind::Released => (
                format!("released-{}", order.released_by.len()),
                self.county(order, false),
            ),
            AnnouncementKind::Escalated => ("escalated".to_owned(), vec![SmsRecipient::DutyDesk]),
        }
    }

    /// The county's active agents, except those who gave the order back
    /// and, when `skip_own_grid`, the agents of the order's grid, who were
    /// offered it in its grid phase.
    fn county(&self, order: &WorkOrder, skip_own_grid: bool) -> Vec<SmsRecipient> {
        agents(
            self.directory
                .active_agents_in_county(&order.county)
                .filter(|agent| !order.released_by.contains(&agent.id))
                .filter(|agent| !(skip_own_grid && order.grid.as_ref() == Some(&agent.grid))),
        )
    }

    /// Returns the text of SMS `id` about `order`, or `None` for an offer
    /// this version does not know.
    pub fn message(&self, id: &SmsId, order: &WorkOrder) -> Option<Message> {
        let directory = &self.directory;
        let message = match id.offer.as_str() {
            "submitted" => {
                let agent_grid = id
                    .recipient
                    .agent()
                    .and_then(|agent| directory.agent(agent))
                    .map(|agent| &agent.grid);
                if in_grid_phase(order) && agent_grid.is_some() && agent_grid == order.grid.as_ref()
                {
                    texts::grid_offer(order, directory, grid_phase_minutes(order))
                } else {
                    texts::county_offer(order, directory)
                }
            }
            "widened" => texts::county_offer(order, directory),
            offer if offer.starts_with("released-") => texts::county_offer(order, directory),
            "escalated" => texts::escalation(order, directory),
            CLAIM_WON => texts::claim_won(order, directory),
            CLAIM_TAKEN => texts::claim_lost(order, ClaimLoss::Taken),
            CLAIM_RESERVED => texts::claim_lost(order, ClaimLoss::Reserved),
            CLAIM_CLOSED => texts::claim_lost(order, ClaimLoss::Closed),
            _ => return None,
        };
        Some(message)
    }
}

/// Whether `offer` offers the order, so that it goes unsent once the
/// order is no longer open. Answers to claims go out regardless.
pub fn is_offer(offer: &str) -> bool {
    !offer.starts_with("claim-")
}

fn in_grid_phase(order: &WorkOrder) -> bool {
    order.widen_time > order.create_time
}

/// The length of the grid phase in whole minutes, rounded up.
fn grid_phase_minutes(order: &WorkOrder) -> i64 {
    (order.widen_time - order.create_time)
        .num_seconds()
        .max(1)
        .saturating_add(59)
        / 60
}

fn agents<'a>(agents: impl Iterator<Item = &'a daiban_domain::Agent>) -> Vec<SmsRecipient> {
    agents
        .map(|agent| SmsRecipient::Agent(agent.id.clone()))
        .collect()
}
