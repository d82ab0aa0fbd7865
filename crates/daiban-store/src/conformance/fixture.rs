//! The fixtures and helpers that the cases share.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;

use chrono::{DateTime, Duration, TimeZone, Utc};
use daiban_domain::{
    AgentId, Applicant, Channel, CountyCode, GridCode, Matter, MatterClass, MatterCode, OrderId,
    PhoneNumber, WorkOrder, WorkResult,
};

use crate::{NewOrder, Store, Submitted};

/// A county of its own for one case, with three of its grids.
pub(super) struct Fixture {
    pub(super) county: CountyCode,
    pub(super) grid: GridCode,
    pub(super) other_grid: GridCode,
    pub(super) third_grid: GridCode,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let county = fresh_county();
        let grid = |suffix: &str| {
            GridCode::parse(&format!("{county}{suffix}")).expect("a county code and 6 digits")
        };
        Self {
            grid: grid("100201"),
            other_grid: grid("100202"),
            third_grid: grid("200301"),
            county,
        }
    }

    /// Builds an order of `grid` with a class-1 matter, created at `at(0)`,
    /// reserved for its grid until `at(10)` and escalating at `at(30)`.
    pub(super) fn order(&self) -> NewOrder {
        NewOrder {
            county: self.county.clone(),
            request_id: None,
            request_text: "办理居住证".to_owned(),
            matter: Some(matter(MatterClass::One)),
            grid: Some(self.grid.clone()),
            address: String::new(),
            applicant: Applicant {
                name: "张三".to_owned(),
                phone: PhoneNumber::parse("13812341234").expect("a valid mobile number"),
            },
            channel: Channel::Wechat,
            create_time: at(0),
            grid_phase_until: Some(at(10)),
            escalate_at: at(30),
        }
    }

    /// Builds the same order, offered county-wide at once.
    pub(super) fn county_wide_order(&self) -> NewOrder {
        NewOrder {
            grid_phase_until: None,
            ..self.order()
        }
    }
}

/// Returns a county code that no other case of this process uses. The start
/// depends on the clock, so two runs of the suite on one Redis database
/// most likely use different counties too.
pub(super) fn fresh_county() -> CountyCode {
    const FIRST: u32 = 100_000;
    const COUNT: u32 = 900_000;
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);

    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        nanos % COUNT
    });
    let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
    CountyCode::parse(&(FIRST + offset).to_string()).expect("a six-digit number")
}

/// Returns the time `minutes` after the suite's start, 2026-11-23 01:00
/// UTC.
pub(super) fn at(minutes: i64) -> DateTime<Utc> {
    start() + Duration::minutes(minutes)
}

pub(super) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0)
        .single()
        .expect("a valid time")
}

pub(super) fn agent(id: &str) -> AgentId {
    AgentId::parse(id).expect("a valid agent id")
}

pub(super) fn matter(class: MatterClass) -> Matter {
    let (code, name) = match class {
        MatterClass::One => ("M001", "居住证办理"),
        MatterClass::Two => ("M002", "不动产登记"),
    };
    Matter {
        code: MatterCode::parse(code).expect("a valid matter code"),
        name: name.to_owned(),
        class,
        department: "县政务服务中心".to_owned(),
    }
}

pub(super) fn work_result() -> WorkResult {
    WorkResult {
        text: "已代办完成".to_owned(),
        reference: "R-001".to_owned(),
    }
}

/// Submits `new` and returns the order, which must be new.
pub(super) async fn create(store: &dyn Store, new: NewOrder) -> WorkOrder {
    match store.submit(new).await {
        Ok(Submitted::Created(order)) => order,
        other => panic!("submit: expected a created order, got {other:?}"),
    }
}

/// Submits `new` and claims it for `holder` of `new`'s grid at `at(1)`.
pub(super) async fn create_claimed(
    store: &dyn Store,
    new: NewOrder,
    holder: &AgentId,
) -> WorkOrder {
    let grid = new
        .grid
        .clone()
        .expect("a claimed order in these cases has a grid");
    let order = create(store, new).await;
    store
        .claim(&order.id, holder, &grid, at(1))
        .await
        .expect("the grid's agent claims the order in its grid phase")
}

/// Submits `new`, claims it for `holder` and completes it at `at(2)`,
/// settling at `settle_at` unless rated first.
pub(super) async fn create_completed(
    store: &dyn Store,
    new: NewOrder,
    holder: &AgentId,
    settle_at: DateTime<Utc>,
) -> WorkOrder {
    let order = create_claimed(store, new, holder).await;
    store
        .complete(&order.id, holder, work_result(), None, at(2), settle_at)
        .await
        .expect("the holder completes the order")
}

pub(super) fn ids(orders: &[WorkOrder]) -> Vec<OrderId> {
    orders.iter().map(|order| order.id.clone()).collect()
}

pub(super) fn sorted_ids(orders: &[WorkOrder]) -> Vec<OrderId> {
    let mut ids = ids(orders);
    ids.sort();
    ids
}

/// Polls `futures` together on the current task until all are done, and
/// returns their outputs in order. The store receives all their calls at
/// once, without the `'static` bound of a spawned task.
pub(super) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished"))
        .collect()
}
