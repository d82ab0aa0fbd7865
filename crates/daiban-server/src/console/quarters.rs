//! The quarters pages (季度结算): a county's bonus statement of a
//! quarter, its download as CSV or XLSX, and closing an ended quarter
//! after a confirmation in which the operator types the quarter again.

use std::fmt::Write as _;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use daiban_domain::{AgentRole, CountyCode, Quarter, format_points, format_yuan};
use daiban_points::{PointsError, Statement, statement_file};
use serde::Deserialize;
use tracing::{info, warn};

use super::html::{escape, full_time, query_value, respond};
use super::{Console, ConsoleError, Page, PageQuery};

/// Quarters offered in the selector, the current one first.
const QUARTERS_LISTED: usize = 8;

/// Statement lines shown on the page; the files have all.
const LINES_SHOWN: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct QuarterQuery {
    county: Option<String>,
    quarter: Option<String>,
}

/// Returns the current quarter and the ones before it, newest first.
fn recent_quarters() -> Vec<Quarter> {
    let mut quarter = Quarter::of(Utc::now());
    let mut quarters = vec![quarter];
    while quarters.len() < QUARTERS_LISTED {
        let (year, number) = match quarter.number() {
            1 => (quarter.year() - 1, 4),
            n => (quarter.year(), n - 1),
        };
        match Quarter::parse(&format!("{year:04}Q{number}")) {
            Ok(previous) => quarter = previous,
            Err(_) => break,
        }
        quarters.push(quarter);
    }
    quarters
}

impl Console {
    fn county_and_quarter(
        &self,
        query: &QuarterQuery,
    ) -> Result<(CountyCode, Quarter), ConsoleError> {
        let county = self.county(&PageQuery {
            county: query.county.clone(),
            fragment: None,
        })?;
        let quarter = match query.quarter.as_deref().filter(|q| !q.is_empty()) {
            Some(text) => Quarter::parse(text)
                .map_err(|_| ConsoleError::Invalid(format!("季度无效：{text}，应如 2026Q3")))?,
            None => Quarter::of(Utc::now()),
        };
        Ok((county, quarter))
    }
}

pub async fn page(State(console): State<Console>, Query(query): Query<QuarterQuery>) -> Response {
    let page = render(&console, &query).await;
    console.render(&PageQuery::default(), page)
}

fn selector(console: &Console, county: &CountyCode, quarter: Quarter) -> String {
    let mut html = String::from(
        "<section><h2>季度结算</h2><form class=\"inline\" method=\"get\" action=\"/console/quarters\">\
         <label>县 <select name=\"county\" id=\"county\">",
    );
    for code in console.app.directory.counties() {
        let selected = if &code == county { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{code}\"{selected}>{code}</option>");
    }
    html.push_str("</select></label> <label>季度 <select name=\"quarter\" id=\"quarter\">");
    for option in recent_quarters() {
        let selected = if option == quarter { " selected" } else { "" };
        let _ = write!(
            html,
            "<option value=\"{option}\"{selected}>{option}</option>"
        );
    }
    html.push_str("</select></label> <button type=\"submit\">查看</button></form></section>");
    html
}

fn statement_table(statement: &Statement) -> String {
    let totals = statement.totals();
    let status = match statement.close_time {
        Some(time) => format!("已结账（{}）", full_time(time)),
        None => "未结账，数据可能变化".to_owned(),
    };
    let mut html = format!(
        "<section><h2>{} 县 {} 奖励明细</h2><p>状态：<span id=\"statement-status\">{status}</span>；\
         每分奖励 {} 元；{} 人，积分 {}，奖励合计 {} 元。</p>",
        statement.county,
        statement.quarter,
        format_yuan(statement.fen_per_point),
        totals.agents,
        format_points(totals.tally.points_tenths),
        format_yuan(totals.bonus_fen)
    );
    html.push_str(
        "<table id=\"statement\"><tr><th>帮办员编号</th><th>姓名</th><th>网格</th><th>乡镇</th>\
         <th>角色</th><th class=\"number\">一类</th><th class=\"number\">二类</th>\
         <th class=\"number\">满意</th><th class=\"number\">不满意</th>\
         <th class=\"number\">积分</th><th class=\"number\">奖励（元）</th></tr>",
    );
    for line in statement.lines.iter().take(LINES_SHOWN) {
        let role = AgentRole::parse(&line.role).map_or("", AgentRole::chinese_name);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{role}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            escape(&line.agent_id),
            escape(&line.name),
            escape(&line.grid_name),
            escape(&line.township_name),
            line.class1_orders,
            line.class2_orders,
            line.satisfied,
            line.unsatisfied,
            format_points(line.points_tenths),
            format_yuan(line.bonus_fen)
        );
    }
    if statement.lines.len() > LINES_SHOWN {
        let _ = write!(
            html,
            "<tr><td colspan=\"11\" class=\"muted\">另有 {} 人，见下载文件</td></tr>",
            statement.lines.len() - LINES_SHOWN
        );
    }
    html.push_str("</table></section>");
    html
}

async fn render(console: &Console, query: &QuarterQuery) -> Result<Page, ConsoleError> {
    let (county, quarter) = console.county_and_quarter(query)?;
    let app = &console.app;
    let statement = app
        .points
        .statement(&app.directory, &county, quarter)
        .await?;

    let mut body = selector(console, &county, quarter);
    let _ = write!(
        body,
        "<section><a id=\"download-csv\" href=\"/console/quarters/{county}/{quarter}.csv\">下载 CSV</a> \
         <a id=\"download-xlsx\" href=\"/console/quarters/{county}/{quarter}.xlsx\">下载 XLSX</a>"
    );
    if statement.close_time.is_none() {
        if Utc::now() >= quarter.end() {
            let _ = write!(
                body,
                "　<a id=\"close-quarter\" href=\"/console/quarters/close?county={county}&amp;quarter={}\">结账…</a>",
                query_value(&quarter.to_string())
            );
        } else {
            let _ = write!(
                body,
                "　<span class=\"muted\">本季度 {} 结束后方可结账</span>",
                full_time(quarter.end())
            );
        }
    }
    body.push_str("</section>");
    body.push_str(&statement_table(&statement));

    Ok(Page {
        title: "季度结算".into(),
        active: "/console/quarters",
        refresh: None,
        body,
    })
}

/// Sends the statement file `<quarter>.csv` or `<quarter>.xlsx`.
pub async fn download(
    State(console): State<Console>,
    Path((county, file)): Path<(String, String)>,
) -> Response {
    match render_file(&console, &county, &file).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn render_file(
    console: &Console,
    county: &str,
    file: &str,
) -> Result<Response, ConsoleError> {
    let (quarter, extension) = file
        .rsplit_once('.')
        .ok_or_else(|| ConsoleError::NotFound(format!("没有文件 {file}")))?;
    let (county, quarter) = console.county_and_quarter(&QuarterQuery {
        county: Some(county.to_owned()),
        quarter: Some(quarter.to_owned()),
    })?;
    let app = &console.app;
    let statement = app
        .points
        .statement(&app.directory, &county, quarter)
        .await?;
    let (bytes, content_type) = match extension {
        "csv" => (
            statement_file::csv_bytes(&statement),
            "text/csv; charset=utf-8",
        ),
        "xlsx" => (
            statement_file::xlsx_bytes(&statement),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        _ => return Err(ConsoleError::NotFound(format!("没有文件 {file}"))),
    };
    let bytes = bytes.map_err(|err| {
        warn!(error = %err, county = %county, quarter = %quarter, "console statement file failed");
        ConsoleError::Invalid(format!("无法生成文件：{err}"))
    })?;
    info!(county = %county, quarter = %quarter, format = extension, "console statement downloaded");

    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"bonus-{county}-{quarter}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn confirm_form(
    county: &CountyCode,
    quarter: Quarter,
    statement: &Statement,
    error: &str,
) -> String {
    let totals = statement.totals();
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"error\" id=\"close-error\">{}</p>",
            escape(error)
        )
    };
    format!(
        "<section><h2>确认结账：{county} 县 {quarter}</h2>\
         <p>结账后该季度的奖励明细冻结，不再变化；之后结算的积分计入下一季度。此操作不可撤销。</p>\
         <p>当前明细：{} 人，积分 {}，奖励合计 {} 元。</p>{error}\
         <form method=\"post\" action=\"/console/quarters/close\" class=\"inline\">\
         <input type=\"hidden\" name=\"county\" value=\"{county}\">\
         <input type=\"hidden\" name=\"quarter\" value=\"{quarter}\">\
         <label>请输入季度 <b>{quarter}</b> 以确认：<input name=\"confirm\" id=\"confirm\" autocomplete=\"off\"></label>\
         <button type=\"submit\" class=\"danger\" id=\"confirm-close\">确认结账</button></form>\
         <p><a href=\"/console/quarters?county={county}&amp;quarter={quarter}\">返回</a></p></section>",
        totals.agents,
        format_points(totals.tally.points_tenths),
        format_yuan(totals.bonus_fen)
    )
}

/// Shows the confirmation step before a close.
pub async fn confirm_page(
    State(console): State<Console>,
    Query(query): Query<QuarterQuery>,
) -> Response {
    let page = async {
        let (county, quarter) = console.county_and_quarter(&query)?;
        let app = &console.app;
        let statement = app
            .points
            .statement(&app.directory, &county, quarter)
            .await?;
        Ok(Page {
            title: "确认结账".into(),
            active: "/console/quarters",
            refresh: None,
            body: confirm_form(&county, quarter, &statement, ""),
        })
    }
    .await;
    console.render(&PageQuery::default(), page)
}

#[derive(Debug, Deserialize)]
pub struct CloseForm {
    county: String,
    quarter: String,
    #[serde(default)]
    confirm: String,
}

/// Closes the quarter once the typed confirmation matches it.
pub async fn close(State(console): State<Console>, Form(form): Form<CloseForm>) -> Response {
    let result = close_quarter(&console, &form).await;
    match result {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn close_quarter(console: &Console, form: &CloseForm) -> Result<Response, ConsoleError> {
    let (county, quarter) = console.county_and_quarter(&QuarterQuery {
        county: Some(form.county.clone()),
        quarter: Some(form.quarter.clone()),
    })?;
    let app = &console.app;
    if form.confirm.trim() != quarter.to_string() {
        let statement = app
            .points
            .statement(&app.directory, &county, quarter)
            .await?;
        let body = confirm_form(&county, quarter, &statement, "输入的季度不符，未结账");
        let page = Page {
            title: "确认结账".into(),
            active: "/console/quarters",
            refresh: None,
            body,
        };
        let html = super::html::page(&page.title, page.active, None, console.notice(), &page.body);
        return Ok(respond(StatusCode::BAD_REQUEST, html));
    }
    let message = match app
        .points
        .close_quarter(&app.directory, &county, quarter, Utc::now())
        .await
    {
        Ok(statement) => {
            info!(county = %county, quarter = %quarter, "quarter closed from the console");
            format!(
                "<p id=\"close-result\">已结账：{county} 县 {quarter}，{} 人，奖励合计 {} 元。</p>",
                statement.totals().agents,
                format_yuan(statement.totals().bonus_fen)
            )
        }
        Err(PointsError::QuarterNotEnded { end, .. }) => format!(
            "<p class=\"error\" id=\"close-result\">{quarter} 尚未结束（{}），不能结账。</p>",
            full_time(end)
        ),
        Err(PointsError::AlreadyClosed { close_time, .. }) => format!(
            "<p class=\"error\" id=\"close-result\">{quarter} 已于 {} 结账。</p>",
            full_time(close_time)
        ),
        Err(err) => return Err(err.into()),
    };
    let body = format!(
        "<section><h2>季度结算</h2>{message}\
         <p><a href=\"/console/quarters?county={county}&amp;quarter={quarter}\">查看奖励明细</a></p></section>"
    );
    Ok(respond(
        StatusCode::OK,
        super::html::page(
            "季度结算",
            "/console/quarters",
            None,
            console.notice(),
            &body,
        ),
    ))
}
