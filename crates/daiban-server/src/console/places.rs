//! The places page (乡镇与网格): each township and grid with its open
//! orders, active agents and average time to claim over the last seven
//! days. Grids without an active agent come first and stand out, because
//! their orders skip the grid phase.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{Duration, Utc};
use daiban_domain::{GridCode, TownshipCode};
use daiban_store::overview::GridClaims;

use super::html::{duration, escape};
use super::{Console, ConsoleError, Page, PageQuery};

/// Open orders read to count them per grid.
const OPEN_READ: usize = 5000;

/// Days of claims behind the average time to claim.
pub const AVERAGE_DAYS: i64 = 7;

pub async fn page(State(console): State<Console>, Query(query): Query<PageQuery>) -> Response {
    let page = render(&console, &query).await;
    console.render(&query, page)
}

/// Returns the UTC+8 dates of the last `count` days, oldest first, ending today.
pub fn last_days(count: i64) -> Vec<chrono::NaiveDate> {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let today = Utc::now().with_timezone(&china).date_naive();
    (0..count)
        .rev()
        .map(|back| today - Duration::days(back))
        .collect()
}

/// A grid's name and numbers.
type GridRow = (GridCode, String, Row);

#[derive(Default)]
struct Row {
    grids: usize,
    open: usize,
    agents: usize,
    claims: GridClaims,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.grids += other.grids;
        self.open += other.open;
        self.agents += other.agents;
        self.claims.claims += other.claims.claims;
        self.claims.wait_ms += other.claims.wait_ms;
    }

    fn cells(&self) -> String {
        let average = match self.claims.wait_ms.checked_div(self.claims.claims) {
            None => "<span class=\"muted\">—</span>".to_owned(),
            Some(ms) => duration(Duration::milliseconds(
                i64::try_from(ms).unwrap_or(i64::MAX),
            )),
        };
        format!(
            "<td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{average}</td>",
            self.open, self.agents, self.claims.claims
        )
    }
}

async fn render(console: &Console, query: &PageQuery) -> Result<Page, ConsoleError> {
    let county = console.county(query)?;
    let directory = &console.app.directory;
    let store = &console.app.store;

    let mut open: HashMap<GridCode, usize> = HashMap::new();
    for order in store.open_board(&county, OPEN_READ).await? {
        if let Some(grid) = order.grid {
            *open.entry(grid).or_default() += 1;
        }
    }
    let mut claims: HashMap<GridCode, GridClaims> = HashMap::new();
    for day in store.day_stats(&county, &last_days(AVERAGE_DAYS)).await? {
        for (grid, day_claims) in day.grid_claims {
            let entry = claims.entry(grid).or_default();
            entry.claims += day_claims.claims;
            entry.wait_ms += day_claims.wait_ms;
        }
    }

    // Townships by code, each with its grids by code.
    let mut townships: BTreeMap<TownshipCode, (String, Vec<GridRow>)> = BTreeMap::new();
    for grid in directory.grids().filter(|g| g.code.county() == county) {
        let row = Row {
            grids: 1,
            open: open.get(&grid.code).copied().unwrap_or(0),
            agents: directory.active_agents_in_grid(&grid.code).count(),
            claims: claims.get(&grid.code).copied().unwrap_or_default(),
        };
        townships
            .entry(grid.township.code.clone())
            .or_insert_with(|| (grid.township.name.clone(), Vec::new()))
            .1
            .push((grid.code.clone(), grid.name.clone(), row));
    }

    let mut body = String::new();
    let uncovered: Vec<_> = townships
        .values()
        .flat_map(|(township, grids)| grids.iter().map(move |g| (township, g)))
        .filter(|(_, (_, _, row))| row.agents == 0)
        .collect();
    let _ = write!(
        body,
        "<section><h2>无在岗帮办员的网格（<span id=\"uncovered-count\">{}</span>）</h2>\
         <p class=\"muted\">这些网格的工单不经本网格推送，直接推送全县。</p>",
        uncovered.len()
    );
    if uncovered.is_empty() {
        body.push_str("<p class=\"muted\">无</p>");
    } else {
        body.push_str("<table id=\"uncovered\"><tr><th>乡镇</th><th>网格</th><th>代码</th></tr>");
        for (township, (code, name, _)) in &uncovered {
            let _ = write!(
                body,
                "<tr class=\"alert\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(township),
                escape(name),
                escape(code.as_str())
            );
        }
        body.push_str("</table>");
    }
    body.push_str("</section>");

    let _ = write!(
        body,
        "<section><h2>乡镇与网格</h2><p class=\"muted\">抢单数与平均抢单用时统计最近 {AVERAGE_DAYS} 天。</p>\
         <table id=\"places\"><tr><th>乡镇 / 网格</th><th class=\"number\">待抢工单</th>\
         <th class=\"number\">在岗帮办员</th><th class=\"number\">抢单数</th>\
         <th class=\"number\">平均抢单用时</th></tr>"
    );
    for (code, (name, grids)) in &townships {
        let mut total = Row::default();
        for (_, _, row) in grids {
            total.add(row);
        }
        let _ = write!(
            body,
            "<tr class=\"township\" data-township=\"{}\"><td>{}（{} 个网格）</td>{}</tr>",
            escape(code.as_str()),
            escape(name),
            total.grids,
            total.cells()
        );
        for (grid, grid_name, row) in grids {
            let class = if row.agents == 0 {
                " class=\"alert\""
            } else {
                ""
            };
            let _ = write!(
                body,
                "<tr{class} data-grid=\"{}\"><td>　{}</td>{}</tr>",
                escape(grid.as_str()),
                escape(grid_name),
                row.cells()
            );
        }
    }
    body.push_str("</table></section>");

    Ok(Page {
        title: "乡镇与网格".into(),
        active: "/console/places",
        refresh: Some(10),
        body,
    })
}
