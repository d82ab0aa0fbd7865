//! Plain HTTP on the gRPC address: the SMS providers' webhooks under
//! `/sms/` and the operator console under `/console/`. The gRPC services
//! are added to the same router, so one listener, one TLS setting and one
//! shutdown serve both.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;

/// Returns the HTTP routes, without the gRPC services.
pub fn router(app: App) -> Router {
    Router::new()
        .merge(crate::webhooks::router(app.clone()))
        .merge(crate::console::router(app))
        .fallback(not_found)
}

/// Responds to a path that no route serves: a gRPC UNIMPLEMENTED status to a
/// gRPC client, a plain 404 to anything else.
async fn not_found(headers: HeaderMap) -> Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        let (parts, ()) = tonic::Status::unimplemented("no such method")
            .into_http::<()>()
            .into_parts();
        Response::from_parts(parts, Body::empty())
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}
