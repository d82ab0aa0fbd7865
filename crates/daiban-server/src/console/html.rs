//! HTML building blocks of the console: the page frame, escaping, and the
//! Chinese names and time formats that every page uses.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use daiban_domain::{OrderState, WorkOrder};
use daiban_store::EventKind;

/// The pages of the console's menu, as path and title.
pub const MENU: [(&str, &str); 6] = [
    ("/console/", "实时概况"),
    ("/console/places", "乡镇与网格"),
    ("/console/agents", "帮办员"),
    ("/console/orders", "工单查询"),
    ("/console/quarters", "季度结算"),
    ("/console/plots", "统计图"),
];

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Percent-encodes text for a URL query value.
pub fn query_value(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// `time` in UTC+8, as `11-23 09:05:00`.
pub fn short_time(time: DateTime<Utc>) -> String {
    time.with_timezone(&china())
        .format("%m-%d %H:%M:%S")
        .to_string()
}

/// `time` in UTC+8, as `2026-11-23 09:05:00`.
pub fn full_time(time: DateTime<Utc>) -> String {
    time.with_timezone(&china())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Formats a duration in Chinese, such as `3分05秒` or `2小时10分`.
pub fn duration(span: chrono::Duration) -> String {
    let seconds = span.num_seconds().max(0);
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if hours > 0 {
        format!("{hours}小时{minutes:02}分")
    } else {
        format!("{minutes}分{seconds:02}秒")
    }
}

pub fn state_name(state: OrderState) -> &'static str {
    match state {
        OrderState::OfferedToGrid => "本网格推送中",
        OrderState::OfferedToCounty => "全县推送中",
        OrderState::Claimed => "已抢单",
        OrderState::Completed => "已办结",
        OrderState::Settled => "已结算",
        OrderState::Cancelled => "已取消",
    }
}

pub fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Submitted => "提交工单",
        EventKind::Widened => "转全县推送",
        EventKind::Escalated => "超时升级至值班台",
        EventKind::Claimed => "抢单",
        EventKind::Released => "退单",
        EventKind::Completed => "办结",
        EventKind::Cancelled => "取消",
        EventKind::Rated => "评价",
        EventKind::Settled => "积分结算",
    }
}

/// Returns the order's matter, or its request text for a fuzzy order.
pub fn order_subject(order: &WorkOrder) -> String {
    match &order.matter {
        Some(matter) => matter.name.clone(),
        None => order.request_text.chars().take(30).collect(),
    }
}

/// Builds a link to an order's page, showing its number.
pub fn order_link(order: &WorkOrder) -> String {
    format!(
        "<a href=\"/console/orders/{}\">{}</a>",
        escape(&order.id.to_string()),
        escape(&order.number)
    )
}

/// Builds a whole page: the menu with `active` marked, and `body`. A page with
/// `refresh` seconds has its live part fetched again that often.
pub fn page(title: &str, active: &str, refresh: Option<u32>, notice: &str, body: &str) -> String {
    let mut menu = String::new();
    for (path, name) in MENU {
        let class = if path == active {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(menu, "<a href=\"{path}\"{class}>{name}</a>");
    }
    let refresh = refresh.map_or(String::new(), |s| format!(" data-refresh=\"{s}\""));
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · 帮办抢单管理台</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body>\
         <header><h1>帮办抢单管理台</h1><nav>{menu}</nav>\
         <form method=\"post\" action=\"/console/logout\"><button type=\"submit\">退出</button></form>\
         </header>{notice}<main id=\"live\"{refresh}>{body}</main>\
         <script src=\"/console/assets/console.js\"></script></body></html>",
        title = escape(title),
    )
}

/// Builds an HTML response that no cache keeps, because it shows live
/// data.
pub fn respond(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn query_value_encodes_non_ascii() {
        assert_eq!(query_value("a b/中"), "a%20b%2F%E4%B8%AD");
    }

    #[test]
    fn duration_reads_in_chinese() {
        assert_eq!(duration(chrono::Duration::seconds(185)), "3分05秒");
        assert_eq!(duration(chrono::Duration::seconds(7800)), "2小时10分");
        assert_eq!(duration(chrono::Duration::seconds(-5)), "0分00秒");
    }
}
