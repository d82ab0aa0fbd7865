//! Tables of SMS deliveries: the county's failures on the "now" page and
//! one order's SMS on its page. Error texts from providers may quote a
//! phone number, so digit runs in them are masked.

use std::fmt::Write as _;

use daiban_domain::mask_digit_runs;
use daiban_store::sms::{SmsDelivery, SmsRecipient, SmsState};

use super::Console;
use super::html::{escape, short_time};

fn state_name(state: SmsState) -> &'static str {
    match state {
        SmsState::Queued => "排队中",
        SmsState::Sending => "发送中",
        SmsState::Sent => "已发送",
        SmsState::Delivered => "已送达",
        SmsState::Failed => "失败",
        SmsState::Unknown => "结果未知",
        SmsState::Withdrawn => "已撤回",
    }
}

/// Formats the recipient: an agent with name and link, or the duty desk.
fn recipient(console: &Console, recipient: &SmsRecipient) -> String {
    match recipient.agent() {
        None => "值班台".to_owned(),
        Some(id) => {
            let name = console
                .app
                .directory
                .agent(id)
                .map_or("", |a| a.name.as_str());
            format!(
                "<a href=\"/console/agents/{id}\">{}</a> {}",
                escape(name),
                escape(id.as_str())
            )
        }
    }
}

/// Builds a table of `deliveries` with the id `table_id`, with a column of
/// order ids when `with_order` is set.
pub fn table(
    console: &Console,
    table_id: &str,
    deliveries: &[SmsDelivery],
    with_order: bool,
) -> String {
    if deliveries.is_empty() {
        return "<p class=\"muted\">暂无</p>".to_owned();
    }
    let order_head = if with_order { "<th>工单</th>" } else { "" };
    let mut html = format!(
        "<table id=\"{table_id}\"><tr>{order_head}<th>推送</th><th>接收人</th><th>状态</th>\
         <th class=\"number\">尝试次数</th><th>排队时间</th><th>发送时间</th><th>回执时间</th>\
         <th>错误</th></tr>"
    );
    for delivery in deliveries {
        let order = if with_order {
            let id = delivery.id.order.to_string();
            format!(
                "<td><a href=\"/console/orders/{}\">{}</a></td>",
                escape(&id),
                escape(&id)
            )
        } else {
            String::new()
        };
        let row_class = if delivery.state == SmsState::Failed {
            " class=\"alert\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<tr{row_class} data-state=\"{}\">{order}<td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"number\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            delivery.state.as_str(),
            escape(&delivery.id.offer),
            recipient(console, &delivery.id.recipient),
            state_name(delivery.state),
            delivery.attempts,
            short_time(delivery.queue_time),
            delivery.send_time.map_or(String::new(), short_time),
            delivery.report_time.map_or(String::new(), short_time),
            escape(&mask_digit_runs(&delivery.error)),
        );
    }
    html.push_str("</table>");
    html
}
