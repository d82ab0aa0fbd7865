//! The SMS providers' webhooks: delivery reports and replies, each in its
//! provider's own request and response format.

use axum::Router;

use crate::app::App;

pub fn router(_app: App) -> Router {
    Router::new()
}
