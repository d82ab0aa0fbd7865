//! Who is told of an order, and when.
//!
//! Each agent gets one offer SMS per order: the grid's agents when the
//! order is submitted, the rest of the county when it widens, and everyone
//! but the agents who gave it back when it is released.

use std::sync::Arc;

use daiban_domain::{Agent, AgentId, Directory, WorkOrder};
use tracing::{info, warn};

use crate::notifier::{Notifier, Recipient, Sms};
use crate::texts::{self, Message};

#[derive(Clone)]
pub struct Offers {
    directory: Arc<Directory>,
    notifier: Arc<dyn Notifier>,
}

impl Offers {
    pub fn new(directory: Arc<Directory>, notifier: Arc<dyn Notifier>) -> Self {
        Self {
            directory,
            notifier,
        }
    }

    /// Offers a new order: to its grid's active agents when it has a grid
    /// phase, else to every active agent of the county. The phase is read
    /// from the order's times, not its state, so a late announcement of an
    /// order widened since still goes to the grid's agents only: the
    /// widening announcement covers the rest.
    pub async fn submitted(&self, order: &WorkOrder) -> usize {
        let grid_phase = order.widen_time > order.create_time;
        if let (Some(grid), true) = (&order.grid, grid_phase) {
            let minutes = (order.widen_time - order.create_time)
                .num_seconds()
                .max(1)
                .saturating_add(59)
                / 60;
            let message = texts::grid_offer(order, &self.directory, minutes);
            let audience: Vec<&Agent> = self.directory.active_agents_in_grid(grid).collect();
            self.send_all(order, &audience, &message, "offered to grid")
                .await
        } else {
            self.offer_county(order, &[], false).await
        }
    }

    /// Offers a widened order to the county's active agents who were not
    /// offered it in its grid phase.
    pub async fn widened(&self, order: &WorkOrder) -> usize {
        self.offer_county(order, &order.released_by, true).await
    }

    /// Offers a released order again to the county's active agents, except
    /// those who gave it back.
    pub async fn released(&self, order: &WorkOrder) -> usize {
        self.offer_county(order, &order.released_by, false).await
    }

    /// Tells the duty desk that nobody grabbed the order in time.
    pub async fn escalated(&self, order: &WorkOrder) {
        let sms = Sms {
            recipient: Recipient::DutyDesk,
            order: order.id.clone(),
            message: texts::escalation(order, &self.directory),
        };
        if let Err(err) = self.notifier.send(sms).await {
            warn!(order.id = %order.id, error = %err, "duty desk notification failed");
        }
    }

    async fn offer_county(
        &self,
        order: &WorkOrder,
        excluded: &[AgentId],
        skip_own_grid: bool,
    ) -> usize {
        let message = texts::county_offer(order, &self.directory);
        let audience: Vec<&Agent> = self
            .directory
            .active_agents_in_county(&order.county)
            .filter(|agent| !excluded.contains(&agent.id))
            .filter(|agent| !(skip_own_grid && order.grid.as_ref() == Some(&agent.grid)))
            .collect();
        self.send_all(order, &audience, &message, "offered to county")
            .await
    }

    async fn send_all(
        &self,
        order: &WorkOrder,
        audience: &[&Agent],
        message: &Message,
        what: &'static str,
    ) -> usize {
        let mut sent = 0;
        for agent in audience {
            let sms = Sms {
                recipient: Recipient::Agent {
                    id: agent.id.clone(),
                    phone: agent.phone.clone(),
                },
                order: order.id.clone(),
                message: message.clone(),
            };
            match self.notifier.send(sms).await {
                Ok(()) => {
                    metrics::counter!("daiban_sms_total", "result" => "sent").increment(1);
                    sent += 1;
                }
                Err(err) => {
                    metrics::counter!("daiban_sms_total", "result" => "failed").increment(1);
                    warn!(order.id = %order.id, agent.id = %agent.id, error = %err, "offer sms failed")
                }
            }
        }
        let text = message.text();
        info!(order.id = %order.id, agents = audience.len(), sent, text, "{what}");
        sent
    }
}
