//! SMS texts, in Chinese. Each fits one 70-character segment together
//! with a signature of up to 9 characters, and none says 代办.

use daiban_domain::{Directory, WorkOrder, mask_digit_runs};

/// Characters of the request text kept when the order has no matter yet.
const REQUEST_EXCERPT: usize = 12;

/// What the order is about: its matter's name, or the start of the
/// applicant's words for a fuzzy request.
fn subject(order: &WorkOrder) -> String {
    match &order.matter {
        Some(matter) => matter.name.clone(),
        None => {
            // Masked before cutting, so a number at the cut is not left
            // half visible.
            let masked = mask_digit_runs(&order.request_text);
            let mut text: String = masked.chars().take(REQUEST_EXCERPT).collect();
            if masked.chars().count() > REQUEST_EXCERPT {
                text.push('…');
            }
            text
        }
    }
}

fn place(order: &WorkOrder, directory: &Directory) -> String {
    order
        .grid
        .as_ref()
        .and_then(|code| directory.grid(code))
        .map(|grid| {
            let short = grid.name.strip_suffix("委会").unwrap_or(&grid.name);
            let short = short.strip_suffix('居').unwrap_or(short);
            format!("{}{}", grid.township.name, short)
        })
        .unwrap_or_else(|| "地址待核实".to_owned())
}

/// An SMS template. Providers send only texts from templates they approved
/// beforehand, so every text is a template's pattern with parameters. The
/// log and the generic gateway get the rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Template {
    GridOffer,
    CountyOffer,
    Escalation,
    /// The reply to an agent whose SMS grabbed the order.
    ClaimWon,
    /// The reply to an agent whose SMS did not grab the order.
    ClaimLost,
    /// The reply to an agent's SMS that names no open order.
    ReplyHelp,
    /// The answer to a reply from a number that is no agent's.
    ReplyStranger,
}

impl Template {
    pub const ALL: [Self; 7] = [
        Self::GridOffer,
        Self::CountyOffer,
        Self::Escalation,
        Self::ClaimWon,
        Self::ClaimLost,
        Self::ReplyHelp,
        Self::ReplyStranger,
    ];

    /// The name by which settings map the template to a provider's code.
    pub fn name(self) -> &'static str {
        match self {
            Self::GridOffer => "grid_offer",
            Self::CountyOffer => "county_offer",
            Self::Escalation => "escalation",
            Self::ClaimWon => "claim_won",
            Self::ClaimLost => "claim_lost",
            Self::ReplyHelp => "reply_help",
            Self::ReplyStranger => "reply_stranger",
        }
    }

    /// The template's text with `${parameter}` placeholders, in the order
    /// of `Message::params`. Register it with a provider in this form
    /// (Alibaba Cloud) or with `{1}`, `{2}`, … in the same order (Tencent
    /// Cloud).
    pub fn pattern(self) -> &'static str {
        match self {
            Self::GridOffer => {
                "新单${number}：${matter}，${grid}。本网格${minutes}分钟内优先，回复${code}抢单"
            }
            Self::CountyOffer => "全县新单${number}：${matter}，${grid}。回复${code}抢单",
            Self::Escalation => "单号${number}超时无人抢单：${matter}，${grid}。请值班台跟进",
            Self::ClaimWon => "抢单成功：单号${number}，${matter}，${grid}。请尽快联系申请人办理",
            Self::ClaimLost => "单号${number}未抢到：${reason}。感谢参与",
            Self::ReplyHelp => {
                "未识别您的回复。抢单请回复短信中的6位抢单码，其他事项请在帮办APP中操作"
            }
            Self::ReplyStranger => {
                "本号码未登记为帮办员，无法抢单。办事请通过政务APP、微信或网上大厅提交"
            }
        }
    }
}

/// A template with its parameters, in the order the pattern names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub template: Template,
    pub params: Vec<(&'static str, String)>,
}

impl Message {
    /// Renders the text the recipient reads, without the 【signature】 the
    /// provider adds.
    pub fn text(&self) -> String {
        let mut text = self.template.pattern().to_owned();
        for (name, value) in &self.params {
            text = text.replace(&format!("${{{name}}}"), value);
        }
        text
    }
}

/// Builds the offer to the agents of the order's own grid.
pub fn grid_offer(order: &WorkOrder, directory: &Directory, minutes: i64) -> Message {
    Message {
        template: Template::GridOffer,
        params: vec![
            ("number", order.number.clone()),
            ("matter", subject(order)),
            ("grid", place(order, directory)),
            ("minutes", minutes.to_string()),
            ("code", order.claim_code.clone()),
        ],
    }
}

/// Builds the offer to every agent of the county.
pub fn county_offer(order: &WorkOrder, directory: &Directory) -> Message {
    Message {
        template: Template::CountyOffer,
        params: vec![
            ("number", order.number.clone()),
            ("matter", subject(order)),
            ("grid", place(order, directory)),
            ("code", order.claim_code.clone()),
        ],
    }
}

/// The note to the duty desk about an order nobody grabbed.
pub fn escalation(order: &WorkOrder, directory: &Directory) -> Message {
    Message {
        template: Template::Escalation,
        params: vec![
            ("number", order.number.clone()),
            ("matter", subject(order)),
            ("grid", place(order, directory)),
        ],
    }
}

/// The reason a claim by SMS did not grab the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimLoss {
    /// Another agent has claimed it.
    Taken,
    /// It is in its grid phase and the agent is of another grid.
    Reserved,
    /// It is cancelled or done.
    Closed,
}

impl ClaimLoss {
    fn reason(self) -> &'static str {
        match self {
            Self::Taken => "已被其他帮办员抢到",
            Self::Reserved => "目前仅限本网格帮办员抢单",
            Self::Closed => "该单已取消或办结",
        }
    }
}

/// Builds the reply to an agent whose SMS grabbed the order.
pub fn claim_won(order: &WorkOrder, directory: &Directory) -> Message {
    Message {
        template: Template::ClaimWon,
        params: vec![
            ("number", order.number.clone()),
            ("matter", subject(order)),
            ("grid", place(order, directory)),
        ],
    }
}

/// Builds the reply to an agent whose SMS did not grab the order.
pub fn claim_lost(order: &WorkOrder, loss: ClaimLoss) -> Message {
    Message {
        template: Template::ClaimLost,
        params: vec![
            ("number", order.number.clone()),
            ("reason", loss.reason().to_owned()),
        ],
    }
}

/// Builds the reply to an SMS that is no claim code of an open order.
pub fn reply_help() -> Message {
    Message {
        template: Template::ReplyHelp,
        params: Vec::new(),
    }
}

/// Builds the reply to an SMS from a number that is no agent's.
pub fn reply_stranger() -> Message {
    Message {
        template: Template::ReplyStranger,
        params: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use daiban_domain::{
        Applicant, Channel, CountyCode, GridCode, MatterCode, OrderId, OrderState, PhoneNumber,
    };

    use super::*;

    fn order(directory: &Directory, matter: Option<&str>, text: &str) -> WorkOrder {
        let time = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
        WorkOrder {
            id: OrderId::new(CountyCode::parse("431127").unwrap(), 1),
            number: "20261123-0001".into(),
            state: OrderState::OfferedToGrid,
            request_text: text.into(),
            request_id: None,
            matter: matter.map(|m| {
                directory
                    .matter(&MatterCode::parse(m).unwrap())
                    .unwrap()
                    .clone()
            }),
            county: CountyCode::parse("431127").unwrap(),
            grid: Some(GridCode::parse("431127104226").unwrap()),
            address: String::new(),
            applicant: Applicant {
                name: "张三".into(),
                phone: PhoneNumber::parse("13812341234").unwrap(),
            },
            channel: Channel::Wechat,
            claim_code: "737111".into(),
            agent: None,
            create_time: time,
            widen_time: time,
            widened: false,
            escalated: false,
            claim_time: None,
            complete_time: None,
            result: None,
            rating: None,
            rating_comment: String::new(),
            rate_time: None,
            points_tenths: None,
            settle_time: None,
            cancel_time: None,
            cancel_reason: String::new(),
            released_by: vec![],
        }
    }

    #[test]
    fn texts_fit_one_segment() {
        let directory = Directory::lanshan_demo();
        let longest_matter = directory
            .matters()
            .max_by_key(|m| m.name.chars().count())
            .unwrap()
            .code
            .to_string();
        let fuzzy = "孩子刚出生，上户口要准备什么，能不能帮我跑一趟";
        // A signature such as 【蓝山县政务服务】 takes 9 characters of the 70.
        let budget = 70 - 9;
        for order in [
            order(&directory, Some(&longest_matter), "x"),
            order(&directory, None, fuzzy),
        ] {
            for text in [
                grid_offer(&order, &directory, 10).text(),
                county_offer(&order, &directory).text(),
                escalation(&order, &directory).text(),
                claim_won(&order, &directory).text(),
                claim_lost(&order, ClaimLoss::Reserved).text(),
                reply_help().text(),
                reply_stranger().text(),
            ] {
                assert!(
                    text.chars().count() <= budget,
                    "{} characters: {text}",
                    text.chars().count()
                );
                assert!(!text.contains("代办"), "{text}");
            }
        }
    }

    #[test]
    fn fuzzy_text_hides_phone_numbers() {
        let directory = Directory::lanshan_demo();
        let text = grid_offer(
            &order(&directory, None, "13912345678请回电"),
            &directory,
            10,
        )
        .text();
        assert!(text.contains("139****5678"), "{text}");
        assert!(!text.contains("13912345678"), "{text}");
    }

    #[test]
    fn offer_names_claim_code_and_place() {
        let directory = Directory::lanshan_demo();
        let text = grid_offer(&order(&directory, Some("M003"), "x"), &directory, 10).text();
        assert!(text.contains("回复737111抢单"), "{text}");
        assert!(text.contains("所城镇新山田村。"), "{text}");
        assert!(text.contains("我要开餐馆"), "{text}");
    }

    #[test]
    fn rendered_text_has_no_placeholder() {
        let directory = Directory::lanshan_demo();
        let order = order(&directory, Some("M003"), "x");
        for message in [
            grid_offer(&order, &directory, 10),
            county_offer(&order, &directory),
            escalation(&order, &directory),
            claim_won(&order, &directory),
            claim_lost(&order, ClaimLoss::Taken),
            claim_lost(&order, ClaimLoss::Closed),
            reply_help(),
            reply_stranger(),
        ] {
            let text = message.text();
            assert!(!text.contains('$'), "{text}");
            let named = message.template.pattern().matches("${").count();
            assert_eq!(named, message.params.len(), "{text}");
        }
    }
}
