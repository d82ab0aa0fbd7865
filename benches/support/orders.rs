//! Orders for the benchmarks, built from the rows of the demo week's
//! requests (`data/lanshan/requests.csv`), so that texts, names, grids and
//! matters have realistic lengths and mixes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use daiban_domain::{
    Applicant, Channel, CountyCode, Directory, GridCode, MatterCode, OrderId, PhoneNumber,
};
use daiban_proto::v1 as pb;
use daiban_store::{NewOrder, RedisStore, Store};

use super::load::{self, Load, Outcome};

/// One row of the demo week's requests.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    pub channel: String,
    pub applicant_name: String,
    pub applicant_phone: String,
    pub grid_code: String,
    pub address: String,
    pub matter_code: String,
    pub request_text: String,
}

/// Reads every row of `data/lanshan/requests.csv`.
///
/// # Panics
///
/// When the file is missing or a row lacks a column.
pub fn demo_requests() -> Vec<DemoRequest> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/lanshan/requests.csv");
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|err| panic!("failed to open {path}: {err}"));
    let headers = reader
        .headers()
        .unwrap_or_else(|err| panic!("failed to read the header of {path}: {err}"))
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{path} has no column {name}"))
    };
    let columns = [
        column("channel"),
        column("applicant_name"),
        column("applicant_phone"),
        column("grid_code"),
        column("address"),
        column("matter_code"),
        column("request_text"),
    ];

    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.unwrap_or_else(|err| panic!("invalid row in {path}: {err}"));
        let [channel, name, phone, grid, address, matter, text] =
            columns.map(|i| record.get(i).unwrap_or_default().to_owned());
        rows.push(DemoRequest {
            channel,
            applicant_name: name,
            applicant_phone: phone,
            grid_code: grid,
            address,
            matter_code: matter,
            request_text: text,
        });
    }
    rows
}

impl DemoRequest {
    /// Builds the gRPC request that the app backend would send for this row.
    pub fn submit_request(&self, request_id: String) -> pb::SubmitRequestRequest {
        pb::SubmitRequestRequest {
            request_text: self.request_text.clone(),
            matter_code: self.matter_code.clone(),
            applicant: Some(pb::Applicant {
                name: self.applicant_name.clone(),
                phone: self.applicant_phone.clone(),
            }),
            grid_code: self.grid_code.clone(),
            address: self.address.clone(),
            channel: pb::Channel::from_str_name(&self.channel)
                .map_or(pb::Channel::Wechat as i32, |c| c as i32),
            request_id,
            county_code: String::new(),
        }
    }

    /// Returns the row's grid: its grid code, or the grid its address
    /// resolves to.
    pub fn grid(&self, directory: &Directory) -> Option<GridCode> {
        match GridCode::parse(&self.grid_code) {
            Ok(grid) => Some(grid),
            Err(_) => directory.resolve_address(&self.address, None),
        }
    }

    /// Builds the order that the service would pass to `Store::submit` for
    /// this row, with the timing given.
    ///
    /// # Panics
    ///
    /// When the row's phone number or channel is invalid.
    pub fn new_order(&self, directory: &Directory, timing: Timing, request_id: String) -> NewOrder {
        let grid = self.grid(directory);
        let county = grid
            .as_ref()
            .map(GridCode::county)
            .unwrap_or_else(|| bench_county(directory));
        let matter = MatterCode::parse(&self.matter_code)
            .ok()
            .and_then(|code| directory.matter(&code).cloned());
        let phone = PhoneNumber::parse(&self.applicant_phone)
            .unwrap_or_else(|err| panic!("demo request has an invalid phone: {err}"));
        let channel = Channel::parse(&self.channel.to_lowercase())
            .unwrap_or_else(|| panic!("demo request has an invalid channel {:?}", self.channel));
        NewOrder {
            county,
            request_id: Some(request_id),
            request_text: self.request_text.clone(),
            matter,
            grid,
            address: self.address.clone(),
            applicant: Applicant {
                name: self.applicant_name.clone(),
                phone,
            },
            channel,
            create_time: timing.create_time,
            grid_phase_until: timing.grid_phase_until,
            escalate_at: timing.escalate_at,
        }
    }
}

/// The times of a new order.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub create_time: DateTime<Utc>,
    /// End of the grid phase, or `None` to offer the order county-wide at
    /// once.
    pub grid_phase_until: Option<DateTime<Utc>>,
    pub escalate_at: DateTime<Utc>,
}

/// Returns the first county of `directory`; the bundled demo has one.
///
/// # Panics
///
/// When the directory has no county.
pub fn bench_county(directory: &Directory) -> CountyCode {
    directory
        .counties()
        .into_iter()
        .next()
        .expect("the directory has a county")
}

/// Submits `count` orders straight to the store, `concurrency` at a time,
/// where `order(i)` builds the `i`th, and returns their ids in the order of
/// `i`.
///
/// # Panics
///
/// When a submit fails, or the orders take longer than `time_limit`.
pub async fn submit_all<F>(
    store: &RedisStore,
    count: usize,
    concurrency: usize,
    time_limit: Duration,
    order: F,
) -> Vec<OrderId>
where
    F: Fn(usize) -> NewOrder + Send + Sync + 'static,
{
    let ids: Arc<Mutex<Vec<Option<OrderId>>>> = Arc::new(Mutex::new(vec![None; count]));
    let store = store.clone();
    let slots = ids.clone();
    let result = load::run(
        Load {
            concurrency,
            calls: count,
            time_limit,
        },
        move |i| {
            let store = store.clone();
            let slots = slots.clone();
            let new = order(i);
            async move {
                match store.submit(new).await {
                    Ok(submitted) => {
                        slots.lock().expect("ids lock")[i] = Some(submitted.order().id.clone());
                        Outcome::Done
                    }
                    Err(err) => Outcome::Failed(err.to_string()),
                }
            }
        },
    )
    .await;
    assert!(
        result.failed == 0 && !result.truncated,
        "submitting {count} orders failed: {} failed, {} of {count} made within {time_limit:?}; \
         first failures: {:?}",
        result.failed,
        result.summary.calls,
        result.failures
    );

    let mut ids = ids.lock().expect("ids lock");
    ids.drain(..)
        .map(|id| id.expect("every submit recorded its id"))
        .collect()
}
