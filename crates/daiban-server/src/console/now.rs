//! The "now" page (实时概况): orders by state, the open orders in their
//! grid phase with the time left before they widen, the widened and
//! escalated ones, the claims of the last hour and failed SMS.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use daiban_domain::{CountyCode, Directory, GridCode, OrderState, WorkOrder};
use daiban_store::EventKind;

use super::html::{duration, escape, order_link, order_subject, short_time, state_name};
use super::{Console, ConsoleError, Page, PageQuery};

/// Open orders shown in each of the two tables.
const OPEN_SHOWN: usize = 200;

/// Latest events read for the claims of the last hour. NOTE: a county with
/// more events than this in an hour shows fewer claims than it had.
const RECENT_EVENTS: usize = 5000;

/// Claims of the last hour listed by order; all are counted.
const CLAIMS_LISTED: usize = 20;

/// Formats the grid's name with its township, or the code for a grid the
/// directory does not list.
pub fn grid_label(directory: &Directory, grid: Option<&GridCode>) -> String {
    match grid {
        None => "<span class=\"muted\">地址未能定位</span>".to_owned(),
        Some(code) => match directory.grid(code) {
            Some(grid) => format!("{} · {}", escape(&grid.township.name), escape(&grid.name)),
            None => escape(code.as_str()),
        },
    }
}

pub async fn page(State(console): State<Console>, Query(query): Query<PageQuery>) -> Response {
    let page = render(&console, &query).await;
    console.render(&query, page)
}

async fn render(console: &Console, query: &PageQuery) -> Result<Page, ConsoleError> {
    let county = console.county(query)?;
    let store = &console.app.store;
    let mut body = String::new();

    let counts = store.state_counts(&county).await?;
    body.push_str("<section><h2>工单状态</h2><div class=\"cards\" id=\"state-counts\">");
    for (state, count) in counts {
        let _ = write!(
            body,
            "<div class=\"card\" data-state=\"{}\"><div class=\"value\">{count}</div>\
             <div class=\"label\">{}</div></div>",
            state.as_str(),
            state_name(state)
        );
    }
    body.push_str("</div></section>");

    let board = store.open_board(&county, OPEN_SHOWN).await?;
    let (in_grid, county_wide): (Vec<&WorkOrder>, Vec<&WorkOrder>) = board
        .iter()
        .partition(|o| o.state == OrderState::OfferedToGrid);
    body.push_str(&grid_phase_table(console, &in_grid));
    body.push_str(&county_phase_table(console, &county_wide));
    body.push_str(&recent_claims(console, &county).await?);
    body.push_str(&sms_failures(console, &county).await?);

    Ok(Page {
        title: "实时概况".into(),
        active: "/console/",
        refresh: Some(2),
        body,
    })
}

fn grid_phase_table(console: &Console, orders: &[&WorkOrder]) -> String {
    let now = Utc::now();
    let directory = &console.app.directory;
    let mut html = format!("<section><h2>本网格推送中（{}）</h2>", orders.len());
    if orders.is_empty() {
        html.push_str("<p class=\"muted\">暂无</p></section>");
        return html;
    }
    html.push_str(
        "<table id=\"grid-phase\"><tr><th>单号</th><th>事项</th><th>网格</th>\
         <th>提交时间</th><th>距转全县推送</th></tr>",
    );
    for order in orders {
        let _ = write!(
            html,
            "<tr data-order=\"{id}\"><td>{link}</td><td>{subject}</td><td>{grid}</td>\
             <td>{created}</td><td><span class=\"badge grid\">本网格</span> \
             <span data-deadline=\"{deadline}\">{left}</span></td></tr>",
            id = escape(&order.id.to_string()),
            link = order_link(order),
            subject = escape(&order_subject(order)),
            grid = grid_label(directory, order.grid.as_ref()),
            created = short_time(order.create_time),
            deadline = order.widen_time.timestamp_millis(),
            left = duration(order.widen_time - now),
        );
    }
    html.push_str("</table></section>");
    html
}

fn county_phase_table(console: &Console, orders: &[&WorkOrder]) -> String {
    let now = Utc::now();
    let directory = &console.app.directory;
    let escalated = orders.iter().filter(|o| o.escalated).count();
    let mut html = format!(
        "<section><h2>全县推送中（{}，其中超时升级 {escalated}）</h2>",
        orders.len()
    );
    if orders.is_empty() {
        html.push_str("<p class=\"muted\">暂无</p></section>");
        return html;
    }
    html.push_str(
        "<table id=\"county-phase\"><tr><th>单号</th><th>事项</th><th>网格</th>\
         <th>提交时间</th><th>已等待</th><th>状态</th></tr>",
    );
    for order in orders {
        let status = if order.escalated {
            "<span class=\"badge alert\">已升级至值班台</span>"
        } else if order.released_by.is_empty() {
            "<span class=\"badge county\">已转全县</span>"
        } else {
            "<span class=\"badge county\">退单后重推</span>"
        };
        let row_class = if order.escalated {
            " class=\"alert\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<tr{row_class} data-order=\"{id}\"><td>{link}</td><td>{subject}</td><td>{grid}</td>\
             <td>{created}</td><td>{waited}</td><td>{status}</td></tr>",
            id = escape(&order.id.to_string()),
            link = order_link(order),
            subject = escape(&order_subject(order)),
            grid = grid_label(directory, order.grid.as_ref()),
            created = short_time(order.create_time),
            waited = duration(now - order.create_time),
        );
    }
    html.push_str("</table></section>");
    html
}

async fn recent_claims(console: &Console, county: &CountyCode) -> Result<String, ConsoleError> {
    let since = Utc::now() - chrono::Duration::hours(1);
    let events = console.app.store.events(county, RECENT_EVENTS).await?;
    let claims: Vec<_> = events
        .iter()
        .rev()
        .filter(|e| e.kind == EventKind::Claimed && e.time >= since)
        .collect();
    let mut html = format!(
        "<section><h2>最近一小时抢单（<span id=\"claims-last-hour\">{}</span>）</h2>",
        claims.len()
    );
    if claims.is_empty() {
        html.push_str("<p class=\"muted\">暂无</p></section>");
        return Ok(html);
    }
    html.push_str(
        "<table id=\"recent-claims\"><tr><th>时间</th><th>单号</th><th>事项</th>\
         <th>帮办员</th><th>用时</th></tr>",
    );
    for event in claims.iter().take(CLAIMS_LISTED) {
        let order = match console.app.store.order(&event.order).await {
            Ok(order) => order,
            Err(daiban_store::StoreError::OrderNotFound(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let agent = event.agent.as_ref().map_or(String::new(), |id| {
            let name = console
                .app
                .directory
                .agent(id)
                .map_or(String::new(), |a| a.name.clone());
            format!(
                "<a href=\"/console/agents/{id}\">{}</a> {}",
                escape(&name),
                escape(id.as_str())
            )
        });
        let _ = write!(
            html,
            "<tr data-order=\"{id}\"><td>{time}</td><td>{link}</td><td>{subject}</td>\
             <td>{agent}</td><td>{wait}</td></tr>",
            id = escape(&order.id.to_string()),
            time = short_time(event.time),
            link = order_link(&order),
            subject = escape(&order_subject(&order)),
            wait = duration(event.time - order.create_time),
        );
    }
    html.push_str("</table></section>");
    Ok(html)
}

/// Failed SMS listed on the page, newest first.
const SMS_FAILURES: usize = 20;

async fn sms_failures(console: &Console, county: &CountyCode) -> Result<String, ConsoleError> {
    let failed = console.app.store.failed_sms(county, SMS_FAILURES).await?;
    Ok(format!(
        "<section><h2>短信发送失败（最近 {}）</h2>{}</section>",
        failed.len(),
        super::sms::table(console, "sms-failures", &failed, true)
    ))
}
