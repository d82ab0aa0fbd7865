//! Quarterly bonus statements: built from the ledger's quarter totals and
//! the directory, and frozen when the quarter closes.

use chrono::{DateTime, Utc};
use daiban_domain::{BonusRate, CountyCode, Directory, Quarter};
use daiban_store::{FrozenStatement, QuarterTotals, StatementLine, Tally};
use tracing::warn;

/// One county's bonus statement for one quarter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub county: CountyCode,
    pub quarter: Quarter,
    /// When the quarter closed; `None` while it is open and the statement
    /// may still grow.
    pub close_time: Option<DateTime<Utc>>,
    pub fen_per_point: i64,
    /// One line per agent with a settlement in the quarter, by agent id.
    pub lines: Vec<StatementLine>,
}

/// The sums of a statement's lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatementTotals {
    pub agents: i64,
    pub tally: Tally,
    pub bonus_fen: i64,
}

impl Statement {
    pub(crate) fn frozen(county: CountyCode, quarter: Quarter, frozen: FrozenStatement) -> Self {
        Self {
            county,
            quarter,
            close_time: Some(frozen.close_time),
            fen_per_point: frozen.fen_per_point,
            lines: frozen.lines,
        }
    }

    pub(crate) fn to_frozen(&self, close_time: DateTime<Utc>) -> FrozenStatement {
        FrozenStatement {
            close_time,
            fen_per_point: self.fen_per_point,
            lines: self.lines.clone(),
        }
    }

    /// Sums the lines. The bonus total is the sum of the lines' rounded
    /// bonuses, so the statement adds up to the fen.
    pub fn totals(&self) -> StatementTotals {
        let mut totals = StatementTotals::default();
        for line in &self.lines {
            totals.agents += 1;
            totals.tally.add(&line_tally(line));
            totals.bonus_fen += line.bonus_fen;
        }
        totals
    }
}

pub(crate) fn line_tally(line: &StatementLine) -> Tally {
    Tally {
        class1_orders: line.class1_orders,
        class2_orders: line.class2_orders,
        satisfied: line.satisfied,
        unsatisfied: line.unsatisfied,
        points_tenths: line.points_tenths,
    }
}

/// Builds the statement lines of `totals` with the directory's names and
/// the bonus at `rate`. An agent the directory no longer lists keeps its
/// id and numbers, with the names left empty.
pub(crate) fn build_lines(
    directory: &Directory,
    county: &CountyCode,
    totals: &QuarterTotals,
    rate: BonusRate,
) -> Vec<StatementLine> {
    let mut lines = Vec::with_capacity(totals.agents.len());
    for (agent_id, tally) in &totals.agents {
        let agent = directory.agent(agent_id);
        let grid = agent.and_then(|a| directory.grid(&a.grid));
        if agent.is_none() {
            warn!(
                agent.id = %agent_id,
                county = %county,
                "agent with settlements is missing from the directory; its statement line has no names"
            );
        }
        lines.push(StatementLine {
            agent_id: agent_id.to_string(),
            name: agent.map(|a| a.name.clone()).unwrap_or_default(),
            grid_code: agent.map(|a| a.grid.to_string()).unwrap_or_default(),
            grid_name: grid.map(|g| g.name.clone()).unwrap_or_default(),
            township_code: grid
                .map(|g| g.township.code.to_string())
                .unwrap_or_default(),
            township_name: grid.map(|g| g.township.name.clone()).unwrap_or_default(),
            role: agent
                .map(|a| a.role.as_str().to_owned())
                .unwrap_or_default(),
            class1_orders: tally.class1_orders,
            class2_orders: tally.class2_orders,
            satisfied: tally.satisfied,
            unsatisfied: tally.unsatisfied,
            points_tenths: tally.points_tenths,
            bonus_fen: rate.bonus_fen(tally.points_tenths),
        });
    }
    lines.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    lines
}

#[cfg(test)]
mod tests {
    use daiban_domain::AgentId;

    use super::*;

    #[test]
    fn lines_carry_directory_names_and_bonus() {
        let directory = Directory::lanshan_demo();
        let county = CountyCode::parse("431127").unwrap();
        let tally = Tally {
            class1_orders: 2,
            class2_orders: 1,
            satisfied: 1,
            unsatisfied: 1,
            points_tenths: 55,
        };
        let totals = QuarterTotals {
            agents: vec![
                (AgentId::parse("A0002").unwrap(), tally),
                (AgentId::parse("Z9999").unwrap(), tally),
                (AgentId::parse("A0001").unwrap(), tally),
            ],
            county: Tally::default(),
        };
        let lines = build_lines(&directory, &county, &totals, BonusRate::default());
        let ids: Vec<&str> = lines.iter().map(|l| l.agent_id.as_str()).collect();
        assert_eq!(ids, ["A0001", "A0002", "Z9999"], "lines by agent id");

        let first = &lines[0];
        assert_eq!(first.name, "邓燕");
        assert_eq!(first.grid_code, "431127100008");
        assert_eq!(first.township_code, "431127100");
        assert_eq!(first.role, "grid_worker");
        assert_eq!(first.bonus_fen, 5500, "5.5 points at 10 yuan");
        assert_eq!(lines[2].name, "", "an unknown agent has no name");
        assert_eq!(lines[2].points_tenths, 55, "but keeps its numbers");

        let statement = Statement {
            county,
            quarter: Quarter::parse("2026Q3").unwrap(),
            close_time: None,
            fen_per_point: 1000,
            lines,
        };
        let totals = statement.totals();
        assert_eq!(totals.agents, 3);
        assert_eq!(totals.tally.points_tenths, 165);
        assert_eq!(totals.tally.orders(), 9);
        assert_eq!(totals.bonus_fen, 16500);
    }
}
