//! Agents' activity: the inactive list of a calendar year and the ranking
//! by completed orders, both from the store's counts of completions.

use std::collections::HashSet;
use std::fmt;

use chrono::Datelike;
use daiban_domain::{Agent, AgentId, Quarter};

/// A year or quarter that completions are counted by, in UTC+8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityPeriod {
    Year(i32),
    Quarter(Quarter),
}

impl fmt::Display for ActivityPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Year(year) => write!(f, "{year:04}"),
            Self::Quarter(quarter) => quarter.fmt(f),
        }
    }
}

/// An agent without a completed order in a year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactiveAgent {
    pub agent: Agent,
    /// Whether the agent joined during the year, so it was not an agent
    /// for all of it.
    pub joined_during_year: bool,
}

/// An agent's place by completed orders. Agents with equal counts share a
/// rank, and the next rank skips as many places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedAgent {
    pub rank: u32,
    pub agent_id: AgentId,
    /// `None` when the directory no longer lists the agent.
    pub agent: Option<Agent>,
    pub completed_orders: u64,
}

/// Lists `agents` without a completion in `year`, given the agents who
/// have one. Agents who joined after the year are left out.
pub(crate) fn inactive<'a>(
    agents: impl Iterator<Item = &'a Agent>,
    completed: &HashSet<AgentId>,
    year: i32,
) -> Vec<InactiveAgent> {
    agents
        .filter(|agent| !completed.contains(&agent.id))
        .filter(|agent| agent.joined.is_none_or(|joined| joined.year() <= year))
        .map(|agent| InactiveAgent {
            agent: agent.clone(),
            joined_during_year: agent.joined.is_some_and(|joined| joined.year() == year),
        })
        .collect()
}

/// Ranks `counts`, which are sorted by count, most first.
pub(crate) fn rank(
    counts: Vec<(AgentId, u64)>,
    agent: impl Fn(&AgentId) -> Option<Agent>,
) -> Vec<RankedAgent> {
    let mut ranked: Vec<RankedAgent> = Vec::with_capacity(counts.len());
    for (place, (agent_id, completed_orders)) in counts.into_iter().enumerate() {
        let rank = match ranked.last() {
            Some(previous) if previous.completed_orders == completed_orders => previous.rank,
            _ => u32::try_from(place + 1).unwrap_or(u32::MAX),
        };
        ranked.push(RankedAgent {
            rank,
            agent: agent(&agent_id),
            agent_id,
            completed_orders,
        });
    }
    ranked
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use daiban_domain::Directory;

    use super::*;

    #[test]
    fn inactive_marks_and_skips_by_join_date() {
        let directory = Directory::lanshan_demo();
        let mut agents: Vec<Agent> = directory.agents().take(4).cloned().collect();
        agents[1].joined = NaiveDate::from_ymd_opt(2026, 5, 1);
        agents[2].joined = NaiveDate::from_ymd_opt(2027, 1, 2);
        agents[3].joined = NaiveDate::from_ymd_opt(2025, 12, 31);
        let completed = HashSet::from([agents[0].id.clone()]);

        let listed = inactive(agents.iter(), &completed, 2026);
        let seen: Vec<(String, bool)> = listed
            .iter()
            .map(|a| (a.agent.id.to_string(), a.joined_during_year))
            .collect();
        let expected = vec![
            (agents[1].id.to_string(), true),
            (agents[3].id.to_string(), false),
        ];
        assert_eq!(seen, expected, "active agent and later joiner left out");
    }

    #[test]
    fn ties_share_a_rank() {
        let id = |text: &str| AgentId::parse(text).unwrap();
        let counts = vec![(id("A3"), 5), (id("A1"), 3), (id("A2"), 3), (id("A4"), 1)];
        let ranked = rank(counts, |_| None);
        let ranks: Vec<(u32, u64)> = ranked
            .iter()
            .map(|r| (r.rank, r.completed_orders))
            .collect();
        assert_eq!(ranks, [(1, 5), (2, 3), (2, 3), (4, 1)]);
    }
}
