//! The plots page (统计图): orders submitted and claimed per hour over the
//! last 24 hours, the time to claim over the last seven days, and claims in
//! the grid phase against the county phase per day.

use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::Utc;
use daiban_store::overview::{CLAIM_WAIT_BOUNDS, DayStats, china_hour};

use super::places::last_days;
use super::svg::{Series, stacked_bars};
use super::{Console, ConsoleError, Page, PageQuery};

/// Days shown by the weekly plots.
const WEEK: i64 = 7;

pub async fn page(State(console): State<Console>, Query(query): Query<PageQuery>) -> Response {
    let page = render(&console, &query).await;
    console.render(&query, page)
}

/// The labels of the claim-wait buckets.
fn wait_labels() -> Vec<String> {
    let name = |seconds: i64| {
        if seconds >= 3600 {
            format!("{}小时", seconds / 3600)
        } else {
            format!("{}分", seconds / 60)
        }
    };
    let mut labels = Vec::new();
    let mut lower = 0;
    for bound in CLAIM_WAIT_BOUNDS {
        labels.push(format!("{}–{}", name(lower), name(bound)));
        lower = bound;
    }
    labels.push(format!("{}以上", name(lower)));
    labels
}

/// Submissions and claims in each of the last 24 hours, oldest first,
/// from yesterday's and today's statistics.
fn last_24_hours(yesterday: &DayStats, today: &DayStats) -> (Vec<String>, Vec<u64>, Vec<u64>) {
    let hour_now = china_hour(Utc::now());
    let mut labels = Vec::new();
    let mut submitted = Vec::new();
    let mut claimed = Vec::new();
    for back in (0..24).rev() {
        let (day, hour) = if back <= hour_now {
            (today, hour_now - back)
        } else {
            (yesterday, 24 + hour_now - back)
        };
        labels.push(format!("{hour}时"));
        submitted.push(day.submitted_by_hour[hour]);
        claimed.push(day.claimed_by_hour[hour]);
    }
    (labels, submitted, claimed)
}

async fn render(console: &Console, query: &PageQuery) -> Result<Page, ConsoleError> {
    let county = console.county(query)?;
    let days = last_days(WEEK);
    let stats = console.app.store.day_stats(&county, &days).await?;
    let mut body = String::from("<div class=\"plots\">");

    if let [.., yesterday, today] = stats.as_slice() {
        let (labels, submitted, claimed) = last_24_hours(yesterday, today);
        let plot = stacked_bars(
            "每小时提交工单",
            &labels,
            &[Series {
                class: "bar",
                name: "提交",
                values: submitted.clone(),
            }],
            3,
        );
        let _ = write!(
            body,
            "<section id=\"plot-hourly\"><h2>最近 24 小时每小时提交工单（共 {}）</h2>{plot}",
            submitted.iter().sum::<u64>()
        );
        let plot = stacked_bars(
            "每小时抢单",
            &labels,
            &[Series {
                class: "bar-grid",
                name: "抢单",
                values: claimed.clone(),
            }],
            3,
        );
        let _ = write!(
            body,
            "<h2>最近 24 小时每小时抢单（共 {}）</h2>{plot}</section>",
            claimed.iter().sum::<u64>()
        );
    }

    let mut waits = vec![0u64; CLAIM_WAIT_BOUNDS.len() + 1];
    for day in &stats {
        for (total, count) in waits.iter_mut().zip(day.claim_waits) {
            *total += count;
        }
    }
    let plot = stacked_bars(
        "抢单用时分布",
        &wait_labels(),
        &[Series {
            class: "bar",
            name: "抢单数",
            values: waits,
        }],
        1,
    );
    let _ = write!(
        body,
        "<section id=\"plot-waits\"><h2>最近 {WEEK} 天抢单用时（提交到抢单）</h2>{plot}</section>"
    );

    let labels: Vec<String> = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    let plot = stacked_bars(
        "本网格与全县抢单",
        &labels,
        &[
            Series {
                class: "bar-grid",
                name: "本网格推送期间抢单",
                values: stats.iter().map(|d| d.claimed_in_grid_phase).collect(),
            },
            Series {
                class: "bar-county",
                name: "全县推送期间抢单",
                values: stats.iter().map(|d| d.claimed_in_county_phase).collect(),
            },
        ],
        1,
    );
    let widened: u64 = stats.iter().map(|d| d.widened).sum();
    let escalated: u64 = stats.iter().map(|d| d.escalated).sum();
    let _ = write!(
        body,
        "<section id=\"plot-phases\"><h2>最近 {WEEK} 天：本网格推送与全县推送期间抢单</h2>{plot}\
         <p class=\"muted\">同期转全县推送 {widened} 单，超时升级 {escalated} 单。</p></section>"
    );
    body.push_str("</div>");

    Ok(Page {
        title: "统计图".into(),
        active: "/console/plots",
        refresh: Some(15),
        body,
    })
}
