//! The agents pages (帮办员): leaderboards of this month and quarter, the
//! year's inactive list, and one agent's orders and points.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{Datelike, FixedOffset, Utc};
use daiban_domain::{AgentId, Quarter, format_points, format_yuan};
use daiban_points::ActivityPeriod;
use daiban_store::Tally;

use super::html::{escape, order_link, order_subject, short_time, state_name};
use super::now::grid_label;
use super::{Console, ConsoleError, Page, PageQuery};

/// Rows of each leaderboard.
const LEADERS: usize = 30;

/// Orders shown on an agent's page.
const AGENT_ORDERS: usize = daiban_store::overview::INDEXED_ORDERS;

pub async fn page(State(console): State<Console>, Query(query): Query<PageQuery>) -> Response {
    let page = render(&console, &query).await;
    console.render(&query, page)
}

pub async fn agent_page(
    State(console): State<Console>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = render_agent(&console, &query, &id).await;
    console.render(&query, page)
}

/// Formats the agent's name and grid as table cells.
fn agent_cells(console: &Console, id: &AgentId) -> String {
    match console.app.directory.agent(id) {
        Some(agent) => format!(
            "<td><a href=\"/console/agents/{id}\">{}</a></td><td>{}</td>",
            escape(&agent.name),
            grid_label(&console.app.directory, Some(&agent.grid))
        ),
        None => format!(
            "<td><a href=\"/console/agents/{id}\">{}</a></td><td class=\"muted\">目录中已无此人</td>",
            escape(id.as_str())
        ),
    }
}

async fn render(console: &Console, query: &PageQuery) -> Result<Page, ConsoleError> {
    let county = console.county(query)?;
    let app = &console.app;
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let now = Utc::now();
    let quarter = Quarter::of(now);
    let month = now.with_timezone(&china).format("%Y-%m").to_string();

    let ranking = app
        .points
        .ranking(&app.directory, &county, ActivityPeriod::Quarter(quarter))
        .await?;
    let quarter_totals = app.store.quarter_totals(&county, quarter).await?;
    let quarter_points: HashMap<&AgentId, &Tally> = quarter_totals
        .agents
        .iter()
        .map(|(id, t)| (id, t))
        .collect();

    // Every agent with points this month has points this quarter.
    let mut month_rows: Vec<(AgentId, Tally)> = Vec::new();
    for (agent, _) in &quarter_totals.agents {
        let months = app.store.agent_points(&county, agent).await?;
        if let Some(totals) = months.iter().find(|m| m.month == month) {
            month_rows.push((agent.clone(), Tally::of_month(totals)));
        }
    }
    month_rows.sort_by(|a, b| {
        (b.1.points_tenths, b.1.orders())
            .cmp(&(a.1.points_tenths, a.1.orders()))
            .then_with(|| a.0.cmp(&b.0))
    });

    let mut body = String::new();
    let _ = write!(
        body,
        "<section><h2>本季度（{quarter}）排行：按办结工单</h2>\
         <table id=\"quarter-leaders\"><tr><th>名次</th><th>帮办员</th><th>网格</th>\
         <th class=\"number\">办结工单</th><th class=\"number\">已结算积分</th></tr>"
    );
    for ranked in ranking.iter().take(LEADERS) {
        let points = quarter_points
            .get(&ranked.agent_id)
            .map_or(0, |t| t.points_tenths);
        let _ = write!(
            body,
            "<tr><td>{}</td>{}<td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            ranked.rank,
            agent_cells(console, &ranked.agent_id),
            ranked.completed_orders,
            format_points(points)
        );
    }
    if ranking.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">本季度尚无办结工单</td></tr>");
    }
    body.push_str("</table></section>");

    let _ = write!(
        body,
        "<section><h2>本月（{month}）排行：按积分</h2>\
         <table id=\"month-leaders\"><tr><th>名次</th><th>帮办员</th><th>网格</th>\
         <th class=\"number\">结算工单</th><th class=\"number\">积分</th>\
         <th class=\"number\">奖励（元）</th></tr>"
    );
    for (place, (agent, tally)) in month_rows.iter().take(LEADERS).enumerate() {
        let _ = write!(
            body,
            "<tr><td>{}</td>{}<td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td></tr>",
            place + 1,
            agent_cells(console, agent),
            tally.orders(),
            format_points(tally.points_tenths),
            format_yuan(app.points.rate().bonus_fen(tally.points_tenths))
        );
    }
    if month_rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\" class=\"muted\">本月尚无结算积分</td></tr>");
    }
    body.push_str("</table></section>");

    let year = now.with_timezone(&china).year();
    let inactive = app
        .points
        .inactive_agents(&app.directory, &county, year)
        .await?;
    let _ = write!(
        body,
        "<section><h2>{year} 年清退名单候选（全年无办结工单，<span id=\"inactive-count\">{}</span> 人）</h2>\
         <table id=\"inactive\"><tr><th>帮办员</th><th>网格</th><th>角色</th><th>备注</th></tr>",
        inactive.len()
    );
    for entry in &inactive {
        let note = if entry.joined_during_year {
            "年内新加入"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr>{}<td>{}</td><td>{note}</td></tr>",
            agent_cells(console, &entry.agent.id),
            entry.agent.role.chinese_name()
        );
    }
    body.push_str("</table></section>");

    Ok(Page {
        title: "帮办员".into(),
        active: "/console/agents",
        refresh: Some(30),
        body,
    })
}

async fn render_agent(
    console: &Console,
    query: &PageQuery,
    id: &str,
) -> Result<Page, ConsoleError> {
    let county = console.county(query)?;
    let app = &console.app;
    let id = AgentId::parse(id).map_err(|_| ConsoleError::NotFound("帮办员编号无效".into()))?;
    let agent = app.directory.agent(&id);

    let mut body = String::new();
    match agent {
        Some(agent) => {
            let status = if agent.active { "在岗" } else { "已停用" };
            let _ = write!(
                body,
                "<section><h2>{} {}</h2><p>{} · {} · 手机 {} · {status}</p></section>",
                escape(&agent.name),
                escape(id.as_str()),
                grid_label(&app.directory, Some(&agent.grid)),
                agent.role.chinese_name(),
                escape(&agent.phone.masked()),
            );
        }
        None => {
            let _ = write!(
                body,
                "<section><h2>{}</h2><p class=\"muted\">目录中已无此人</p></section>",
                escape(id.as_str())
            );
        }
    }

    let report = app.points.agent_report(&county, &id).await?;
    body.push_str(
        "<section><h2>每月积分</h2><table id=\"agent-months\"><tr><th>月份</th>\
         <th class=\"number\">一类</th><th class=\"number\">二类</th>\
         <th class=\"number\">满意</th><th class=\"number\">不满意</th>\
         <th class=\"number\">积分</th><th class=\"number\">奖励（元）</th></tr>",
    );
    for month in &report {
        let t = &month.totals;
        let _ = write!(
            body,
            "<tr><td>{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            escape(&t.month),
            t.class1_orders,
            t.class2_orders,
            t.satisfied,
            t.unsatisfied,
            format_points(t.points_tenths),
            format_yuan(month.bonus_fen)
        );
    }
    if report.is_empty() {
        body.push_str("<tr><td colspan=\"7\" class=\"muted\">暂无结算</td></tr>");
    }
    body.push_str("</table></section>");

    let orders = app
        .store
        .orders_by_agent(&county, &id, AGENT_ORDERS)
        .await?;
    body.push_str(
        "<section><h2>抢过的工单</h2><table id=\"agent-orders\"><tr><th>单号</th>\
         <th>事项</th><th>提交时间</th><th>状态</th><th>备注</th></tr>",
    );
    for order in &orders {
        let note = if order.agent.as_ref() != Some(&id) && order.released_by.contains(&id) {
            "已退单"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{note}</td></tr>",
            order_link(order),
            escape(&order_subject(order)),
            short_time(order.create_time),
            state_name(order.state)
        );
    }
    if orders.is_empty() {
        body.push_str("<tr><td colspan=\"5\" class=\"muted\">暂无</td></tr>");
    }
    body.push_str("</table></section>");

    Ok(Page {
        title: format!("帮办员 {id}"),
        active: "/console/agents",
        refresh: Some(10),
        body,
    })
}
