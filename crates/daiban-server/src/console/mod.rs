//! The operator console, served under `/console/`.

use axum::Router;

use crate::app::App;

pub fn router(_app: App) -> Router {
    Router::new()
}
