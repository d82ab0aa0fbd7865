//! The orders pages (工单查询): search by order number or id, applicant
//! phone, or agent id or name, and one order's whole history. Phone
//! numbers, and runs of digits in free text, are shown masked.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use daiban_domain::{
    AgentId, Channel, OrderId, PhoneNumber, Rating, WorkOrder, format_points, mask_digit_runs,
};
use serde::Deserialize;

use super::html::{
    escape, event_name, full_time, order_link, order_subject, short_time, state_name,
};
use super::now::grid_label;
use super::{Console, ConsoleError, Page, PageQuery};

/// Orders listed for one search.
const RESULTS: usize = daiban_store::overview::INDEXED_ORDERS;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    county: Option<String>,
}

pub async fn search_page(
    State(console): State<Console>,
    Query(query): Query<SearchQuery>,
) -> Response {
    let page_query = PageQuery {
        county: query.county.clone(),
        fragment: None,
    };
    let page = render_search(&console, &page_query, query.q.trim()).await;
    console.render(&page_query, page)
}

pub async fn order_page(
    State(console): State<Console>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = render_order(&console, &id).await;
    console.render(&query, page)
}

/// Finds the orders that a search text names, with a title for them. A
/// phone number appears masked in the title.
async fn search(
    console: &Console,
    query: &PageQuery,
    text: &str,
) -> Result<(String, Vec<WorkOrder>), ConsoleError> {
    let county = console.county(query)?;
    let store = &console.app.store;
    if let Ok(id) = OrderId::parse(text) {
        let order = match store.order(&id).await {
            Ok(order) => vec![order],
            Err(daiban_store::StoreError::OrderNotFound(_)) => Vec::new(),
            Err(err) => return Err(err.into()),
        };
        return Ok((format!("工单编号 {}", escape(text)), order));
    }
    if is_order_number(text) {
        let order = store.order_by_number(&county, text).await?;
        return Ok((
            format!("单号 {}", escape(text)),
            order.into_iter().collect(),
        ));
    }
    if let Ok(phone) = PhoneNumber::parse(text) {
        let orders = store.orders_by_phone(&county, &phone, RESULTS).await?;
        return Ok((format!("申请人手机 {}", phone.masked()), orders));
    }
    let directory = &console.app.directory;
    let agent = AgentId::parse(text)
        .ok()
        .filter(|id| directory.agent(id).is_some())
        .or_else(|| {
            directory
                .agents()
                .find(|a| a.name == text && a.grid.county() == county)
                .map(|a| a.id.clone())
        });
    if let Some(agent) = agent {
        let orders = store.orders_by_agent(&county, &agent, RESULTS).await?;
        return Ok((format!("帮办员 {}", escape(agent.as_str())), orders));
    }
    Err(ConsoleError::Invalid(
        "请输入单号（如 20261123-0042）、工单编号、申请人手机号，或帮办员编号或姓名".into(),
    ))
}

async fn render_search(
    console: &Console,
    query: &PageQuery,
    text: &str,
) -> Result<Page, ConsoleError> {
    // The search text is not echoed into the form, since it may be a
    // whole phone number.
    let mut body = String::from(
        "<section><h2>工单查询</h2><form class=\"inline\" method=\"get\" action=\"/console/orders\">\
         <input name=\"q\" id=\"search\" size=\"32\" placeholder=\"单号、手机号、帮办员编号或姓名\">\
         <button type=\"submit\" id=\"search-button\">查询</button></form></section>",
    );
    if text.is_empty() {
        return Ok(search_page_of(body));
    }
    match search(console, query, text).await {
        Ok((title, orders)) => {
            body.push_str(&results(console, &title, &orders));
        }
        Err(ConsoleError::Invalid(message)) => {
            let _ = write!(
                body,
                "<section><p class=\"error\">{}</p></section>",
                escape(&message)
            );
        }
        Err(err) => return Err(err),
    }
    Ok(search_page_of(body))
}

fn search_page_of(body: String) -> Page {
    Page {
        title: "工单查询".into(),
        active: "/console/orders",
        refresh: None,
        body,
    }
}

fn results(console: &Console, title: &str, orders: &[WorkOrder]) -> String {
    let mut html = format!(
        "<section><h2>{title}：{} 条</h2><table id=\"results\"><tr><th>单号</th><th>事项</th>\
         <th>申请人</th><th>手机</th><th>网格</th><th>提交时间</th><th>状态</th><th>帮办员</th></tr>",
        orders.len()
    );
    for order in orders {
        let agent = order.agent.as_ref().map_or(String::new(), |id| {
            format!(
                "<a href=\"/console/agents/{id}\">{}</a>",
                escape(id.as_str())
            )
        });
        let _ = write!(
            html,
            "<tr data-order=\"{id}\"><td>{link}</td><td>{subject}</td><td>{name}</td>\
             <td class=\"phone\">{phone}</td><td>{grid}</td><td>{created}</td><td>{state}</td>\
             <td>{agent}</td></tr>",
            id = escape(&order.id.to_string()),
            link = order_link(order),
            subject = escape(&mask_digit_runs(&order_subject(order))),
            name = escape(&order.applicant.name),
            phone = escape(&order.applicant.phone.masked()),
            grid = grid_label(&console.app.directory, order.grid.as_ref()),
            created = short_time(order.create_time),
            state = state_name(order.state),
        );
    }
    if orders.is_empty() {
        html.push_str("<tr><td colspan=\"8\" class=\"muted\">没有找到工单</td></tr>");
    }
    html.push_str("</table></section>");
    html
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::WebHall => "网上办事大厅",
        Channel::GovApp => "政务 App",
        Channel::Wechat => "微信公众号",
    }
}

fn rating_name(rating: Rating) -> &'static str {
    match rating {
        Rating::VerySatisfied => "非常满意",
        Rating::Satisfied => "满意",
        Rating::Average => "一般",
        Rating::Unsatisfied => "不满意",
    }
}

async fn render_order(console: &Console, id: &str) -> Result<Page, ConsoleError> {
    let id = OrderId::parse(id).map_err(|_| ConsoleError::NotFound("工单编号无效".into()))?;
    let store = &console.app.store;
    let order = match store.order(&id).await {
        Ok(order) => order,
        Err(daiban_store::StoreError::OrderNotFound(_)) => {
            return Err(ConsoleError::NotFound(format!("没有工单 {id}")));
        }
        Err(err) => return Err(err.into()),
    };
    let directory = &console.app.directory;
    let agent_name = |agent: &AgentId| {
        let name = directory.agent(agent).map_or("", |a| a.name.as_str());
        format!(
            "<a href=\"/console/agents/{agent}\">{}</a> {}",
            escape(name),
            escape(agent.as_str())
        )
    };

    let mut rows: Vec<(&str, String)> = vec![
        ("单号", escape(&order.number)),
        ("工单编号", escape(&order.id.to_string())),
        (
            "状态",
            format!(
                "<span id=\"order-state\">{}</span>",
                state_name(order.state)
            ),
        ),
        ("事项", escape(&order_subject(&order))),
        ("申请内容", escape(&mask_digit_runs(&order.request_text))),
        ("申请人", escape(&order.applicant.name)),
        ("手机", escape(&order.applicant.phone.masked())),
        ("地址", escape(&mask_digit_runs(&order.address))),
        ("网格", grid_label(directory, order.grid.as_ref())),
        ("渠道", channel_name(order.channel).to_owned()),
        ("提交时间", full_time(order.create_time)),
    ];
    if let Some(agent) = &order.agent {
        rows.push(("帮办员", agent_name(agent)));
    }
    if let Some(result) = &order.result {
        rows.push(("办理结果", escape(&mask_digit_runs(&result.text))));
        if !result.reference.is_empty() {
            rows.push(("结果编号", escape(&result.reference)));
        }
    }
    if let Some(rating) = order.rating {
        let comment = mask_digit_runs(&order.rating_comment);
        rows.push((
            "评价",
            format!("{} {}", rating_name(rating), escape(&comment)),
        ));
    }
    if let Some(points) = order.points_tenths {
        rows.push(("积分", format_points(points.into())));
    }
    if !order.cancel_reason.is_empty() {
        rows.push(("取消原因", escape(&mask_digit_runs(&order.cancel_reason))));
    }

    let mut body = format!(
        "<section><h2>工单 {}</h2><table id=\"order\">",
        escape(&order.number)
    );
    for (label, value) in rows {
        let _ = write!(body, "<tr><th>{label}</th><td>{value}</td></tr>");
    }
    body.push_str("</table></section>");

    let changes = store.order_changes(&id).await?;
    body.push_str("<section><h2>处理过程</h2><ol class=\"history\" id=\"history\">");
    for change in &changes {
        let agent = change.agent.as_ref().map_or(String::new(), &agent_name);
        let detail = match change.kind {
            daiban_store::EventKind::Submitted if order.widen_time > order.create_time => {
                format!("，本网格推送至 {}", short_time(order.widen_time))
            }
            daiban_store::EventKind::Submitted => "，直接推送全县".to_owned(),
            daiban_store::EventKind::Rated => order
                .rating
                .map_or(String::new(), |r| format!("：{}", rating_name(r))),
            daiban_store::EventKind::Settled => order.points_tenths.map_or(String::new(), |p| {
                format!("：{} 分", format_points(p.into()))
            }),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<li data-kind=\"{}\">{} {}{detail} {agent}</li>",
            change.kind.as_str(),
            full_time(change.time),
            event_name(change.kind)
        );
    }
    if changes.is_empty() {
        body.push_str("<li class=\"muted\">没有记录</li>");
    }
    body.push_str("</ol></section>");
    body.push_str(&sms_deliveries(console, &order).await?);

    Ok(Page {
        title: format!("工单 {}", order.number),
        active: "/console/orders",
        refresh: Some(3),
        body,
    })
}

async fn sms_deliveries(console: &Console, order: &WorkOrder) -> Result<String, ConsoleError> {
    let deliveries = console.app.store.order_sms(&order.id).await?;
    Ok(format!(
        "<section><h2>短信推送（{}）</h2>{}</section>",
        deliveries.len(),
        super::sms::table(console, "order-sms", &deliveries, false)
    ))
}

/// Returns whether `text` has the form of an order number: the UTC+8 day
/// as `yyyymmdd`, a dash and the day's sequence number, at least four
/// digits and more from the 10,000th order of a day on.
fn is_order_number(text: &str) -> bool {
    let Some((day, daily)) = text.split_once('-') else {
        return false;
    };
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    day.len() == 8 && digits(day) && (4..=9).contains(&daily.len()) && digits(daily)
}

#[cfg(test)]
mod tests {
    use super::is_order_number;

    #[test]
    fn order_numbers_of_any_day_length() {
        for number in [
            "20261123-0042",
            "20261123-9999",
            "20261123-10000",
            "20261123-123456",
        ] {
            assert!(is_order_number(number), "{number}");
        }
        for text in [
            "20261123-042",
            "2026112-0042",
            "20261123-00a2",
            "20261123+0042",
            "20261123-",
            "431127-00000042",
            "13812341234",
        ] {
            assert!(!is_order_number(text), "{text}");
        }
    }
}
