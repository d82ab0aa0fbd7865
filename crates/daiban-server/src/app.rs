//! The state every service shares.

use std::sync::Arc;

use daiban_dispatch::{Notifier, Policy};
use daiban_domain::{Agent, Directory, OrderId};
use daiban_points::Points;
use daiban_sms::Secret;
use daiban_store::Store;
use tokio::sync::{Notify, watch};
use tonic::{Code, Request, Status};

use crate::auth::Auth;
use crate::error::{invalid_field, status};
use crate::live::Live;

#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    pub auth: Auth,
    /// Wakes this process's dispatcher to send the notifications a call
    /// just owed.
    pub dispatcher: Arc<Notify>,
    pub points: Arc<Points>,
    pub policy: Policy,
    pub live: Arc<Live>,
    /// Turns true when the server starts shutting down, to end streams.
    pub shutdown: watch::Receiver<bool>,
    /// Wakes this process's SMS sender for SMS a call just queued.
    pub sms_sender: Arc<Notify>,
    /// Sends the answers to replies that are kept in no SMS record.
    pub notifier: Arc<dyn Notifier>,
    /// The secret the SMS webhooks must present, if set.
    pub webhook_secret: Option<Secret>,
}

impl App {
    /// The active agent who makes the call, from its bearer token.
    pub fn calling_agent<T>(&self, request: &Request<T>) -> Result<&Agent, Status> {
        let id = self.auth.agent(request)?;
        let agent = self.directory.agent(&id).ok_or_else(|| {
            crate::auth::unauthenticated(
                "UNKNOWN_AGENT",
                format!("agent token names agent {id}, which the directory does not list"),
            )
        })?;
        if !agent.active {
            return Err(status(
                Code::PermissionDenied,
                "AGENT_INACTIVE",
                format!("agent {id} is inactive and cannot take orders"),
                &[("agent_id", id.to_string())],
            ));
        }
        Ok(agent)
    }
}

/// Parses the `order_id` field of a request.
pub fn order_id(text: &str) -> Result<OrderId, Status> {
    if text.trim().is_empty() {
        return Err(invalid_field(
            "order_id",
            "required: the order_id of a work order, such as 431127-00000042",
        ));
    }
    OrderId::parse(text).map_err(|err| invalid_field("order_id", err.0))
}

/// The free-text fields that may hold line breaks; ids, names and
/// addresses are single lines, so they never carry a newline into a log.
const MULTILINE_FIELDS: [&str; 4] = ["request_text", "result_text", "comment", "reason"];

/// Whether `c` is invisible when printed: zero-width spaces and joiners,
/// byte-order marks, and bidirectional controls.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}') || is_bidi_control(c)
}

/// Whether `c` reorders the text around it, which could make an SMS read
/// differently from what was sent.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a free-text field: trimmed of whitespace and invisible
/// characters, at most `max` characters, and not empty when `required`.
/// Control and bidirectional control characters are rejected, except line
/// breaks in the fields of `MULTILINE_FIELDS`.
pub fn text_field(
    violations: &mut crate::error::FieldViolations,
    field: &str,
    text: &str,
    required: bool,
    max: usize,
) -> String {
    let text = text.trim_matches(|c: char| c.is_whitespace() || is_invisible(c));
    let len = text.chars().count();
    let multiline = MULTILINE_FIELDS.contains(&field);
    if required && len == 0 {
        violations.add(field, format!("required: 1 to {max} characters"));
    } else if len > max {
        violations.add(field, format!("too long: {len} characters, at most {max}"));
    } else if text
        .chars()
        .any(|c| (c.is_control() && !(multiline && c == '\n')) || is_bidi_control(c))
    {
        violations.add(field, "contains control characters; remove them");
    }
    text.to_owned()
}
