//! Conversion of every failure into a `tonic::Status`, in one place.
//!
//! Each status carries `google.rpc.ErrorInfo` with domain `daiban` and a
//! reason, and invalid requests carry `google.rpc.BadRequest` naming each
//! field.

use std::collections::HashMap;

use daiban_points::PointsError;
use daiban_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::error;

pub const DOMAIN: &str = "daiban";

/// The invalid fields of one request, collected so that one error names
/// them all.
#[derive(Debug, Default)]
pub struct FieldViolations(Vec<(String, String)>);

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push((field.into(), description.into()));
    }

    /// Records `result`'s error under `field` and returns its value.
    pub fn check<T>(&mut self, field: &str, result: Result<T, impl ToString>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.add(field, err.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when no field was invalid, else `INVALID_ARGUMENT`.
    pub fn into_result(self) -> Result<(), Status> {
        if self.0.is_empty() {
            return Ok(());
        }
        let summary: Vec<String> = self.0.iter().map(|(f, d)| format!("{f}: {d}")).collect();
        let mut details = ErrorDetails::new();
        details.set_error_info("INVALID_FIELD", DOMAIN, HashMap::new());
        for (field, description) in &self.0 {
            details.add_bad_request_violation(field.clone(), description.clone());
        }
        Err(Status::with_error_details(
            Code::InvalidArgument,
            format!("invalid request: {}", summary.join("; ")),
            details,
        ))
    }
}

/// A status with `ErrorInfo` naming `reason`.
pub fn status(
    code: Code,
    reason: &str,
    message: impl Into<String>,
    metadata: &[(&str, String)],
) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let details = ErrorDetails::with_error_info(reason, DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// A single invalid field.
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    violations
        .into_result()
        .expect_err("one violation was added")
}

/// Converts a failure to close a quarter or build its statement.
pub fn points_status(err: PointsError) -> Status {
    let message = err.to_string();
    match err {
        PointsError::QuarterNotEnded { quarter, end } => status(
            Code::FailedPrecondition,
            "QUARTER_NOT_ENDED",
            message,
            &[
                ("quarter", quarter.to_string()),
                ("end_time", end.to_rfc3339()),
            ],
        ),
        PointsError::AlreadyClosed {
            quarter,
            close_time,
        } => status(
            Code::FailedPrecondition,
            "QUARTER_ALREADY_CLOSED",
            message,
            &[
                ("quarter", quarter.to_string()),
                ("close_time", close_time.to_rfc3339()),
            ],
        ),
        // `Points` logged the details when it found the disagreement.
        PointsError::Inconsistent { quarter, .. } => status(
            Code::Internal,
            "LEDGER_INCONSISTENT",
            format!(
                "the points ledger of quarter {quarter} does not add up; the service log has details"
            ),
            &[("quarter", quarter.to_string())],
        ),
        PointsError::Store(err) => store_status(err),
    }
}

/// The `ErrorInfo` reason that `store_status` gives `err`.
pub fn store_reason(err: &StoreError) -> &'static str {
    match err {
        StoreError::OrderNotFound(_) => "ORDER_NOT_FOUND",
        StoreError::AlreadyClaimed { .. } => "ORDER_ALREADY_CLAIMED",
        StoreError::ReservedForGrid { .. } => "ORDER_RESERVED_FOR_GRID",
        StoreError::StateConflict { .. } => "ORDER_STATE_CONFLICT",
        StoreError::AlreadyRated { .. } => "ALREADY_RATED",
        StoreError::NotHolder { .. } => "NOT_ORDER_HOLDER",
        StoreError::Unavailable(_) => "STORE_UNAVAILABLE",
        StoreError::Corrupt { .. } => "STORE_CORRUPT",
    }
}

pub fn store_status(err: StoreError) -> Status {
    let message = err.to_string();
    let reason = store_reason(&err);
    match err {
        StoreError::OrderNotFound(id) => status(
            Code::NotFound,
            reason,
            message,
            &[("order_id", id.to_string())],
        ),
        StoreError::AlreadyClaimed { order } => status(
            Code::FailedPrecondition,
            reason,
            message,
            &[("order_id", order.to_string())],
        ),
        StoreError::ReservedForGrid { order, grid, until } => status(
            Code::FailedPrecondition,
            reason,
            message,
            &[
                ("order_id", order.to_string()),
                ("grid_code", grid.to_string()),
                ("widen_time", until.to_rfc3339()),
            ],
        ),
        StoreError::StateConflict { order, state, .. } => status(
            Code::FailedPrecondition,
            reason,
            message,
            &[
                ("order_id", order.to_string()),
                ("state", state.as_str().to_owned()),
            ],
        ),
        StoreError::AlreadyRated { order } => status(
            Code::FailedPrecondition,
            reason,
            message,
            &[("order_id", order.to_string())],
        ),
        StoreError::NotHolder { order, .. } => status(
            Code::PermissionDenied,
            reason,
            message,
            &[("order_id", order.to_string())],
        ),
        StoreError::Unavailable(_) => {
            error!(error = %message, "store unavailable");
            status(
                Code::Unavailable,
                reason,
                "order store unavailable; retry shortly",
                &[],
            )
        }
        StoreError::Corrupt { .. } => {
            error!(error = %message, "store returned unreadable data");
            status(
                Code::Internal,
                reason,
                "stored order is unreadable; the service log has details",
                &[],
            )
        }
    }
}
