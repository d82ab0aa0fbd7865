//! The operator console of the bureau, in Chinese, served under
//! `/console/` on the service's own address.
//!
//! Every page is HTML rendered here from the store that the gRPC services
//! use. The style sheet, the script and the plots (inline SVG) come from
//! this binary, so the browser fetches nothing else. A page's live part is
//! fetched again every few seconds (`assets/console.js`), so no response
//! stays open and shutdown never waits for the console. Phone numbers
//! appear masked (`138****1234`) on every page.

mod agents;
mod html;
mod now;
mod orders;
mod places;
mod plots;
mod quarters;
mod session;
mod sms;
mod svg;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use daiban_domain::CountyCode;
use serde::Deserialize;
use tracing::{info, warn};

use self::html::{escape, respond};
use self::session::{COOKIE, Sessions, cookie, is_admin_key, is_https, same_origin, set_cookie};
use crate::app::App;

/// The state of every console handler.
#[derive(Clone)]
pub struct Console {
    app: App,
    sessions: Arc<Sessions>,
}

/// The query parameters every page takes.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// The county to show; the directory's first by default.
    county: Option<String>,
    /// `1` for the live part of the page only, as the script fetches it.
    fragment: Option<String>,
}

/// A rendered page, before the frame is added.
pub struct Page {
    title: String,
    /// The menu entry to mark, a path of `html::MENU`.
    active: &'static str,
    /// Seconds between fetches of the live part; `None` for a page with
    /// forms, which a refresh would reset.
    refresh: Option<u32>,
    body: String,
}

/// A failure to render a page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Store(#[from] daiban_store::StoreError),
    #[error(transparent)]
    Points(#[from] daiban_points::PointsError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::NotFound(what) => (StatusCode::NOT_FOUND, what.clone()),
            Self::Invalid(what) => (StatusCode::BAD_REQUEST, what.clone()),
            Self::Store(err) => {
                warn!(error = %err, "console page failed: store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("数据暂时无法读取：{err}"),
                )
            }
            Self::Points(err) => {
                warn!(error = %err, "console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("操作失败：{err}"),
                )
            }
        };
        let body = format!(
            "<section><h2>出错了</h2><p class=\"error\">{}</p></section>",
            escape(&message)
        );
        respond(status, html::page("出错了", "", None, "", &body))
    }
}

impl Console {
    /// Returns the county that `query` names, or the directory's first.
    fn county(&self, query: &PageQuery) -> Result<CountyCode, ConsoleError> {
        let counties = self.app.directory.counties();
        match query.county.as_deref().filter(|c| !c.is_empty()) {
            Some(text) => CountyCode::parse(text)
                .ok()
                .filter(|county| counties.contains(county))
                .ok_or_else(|| ConsoleError::NotFound(format!("目录中没有县 {text}"))),
            None => counties
                .into_iter()
                .next()
                .ok_or_else(|| ConsoleError::NotFound("目录中没有任何县".into())),
        }
    }

    /// Returns the notice above every page in development mode.
    fn notice(&self) -> &'static str {
        if self.app.auth.is_development() {
            "<p class=\"notice\">开发模式：未配置密钥，管理台不要求登录，仅限本机访问。</p>"
        } else {
            ""
        }
    }

    /// Renders `page` whole, or only its live part for `fragment=1`.
    fn render(&self, query: &PageQuery, page: Result<Page, ConsoleError>) -> Response {
        match page {
            Ok(page) if query.fragment.as_deref() == Some("1") => {
                respond(StatusCode::OK, page.body)
            }
            Ok(page) => respond(
                StatusCode::OK,
                html::page(
                    &page.title,
                    page.active,
                    page.refresh,
                    self.notice(),
                    &page.body,
                ),
            ),
            Err(err) => err.into_response(),
        }
    }
}

/// Builds the console's routes under `/console`.
pub fn router(app: App) -> Router {
    let console = Console {
        app,
        sessions: Arc::new(Sessions::new()),
    };
    let pages = Router::new()
        .route("/console/", get(now::page))
        .route("/console/places", get(places::page))
        .route("/console/agents", get(agents::page))
        .route("/console/agents/{id}", get(agents::agent_page))
        .route("/console/orders", get(orders::search_page))
        .route("/console/orders/{id}", get(orders::order_page))
        .route("/console/quarters", get(quarters::page))
        .route("/console/quarters/{county}/{file}", get(quarters::download))
        .route(
            "/console/quarters/close",
            get(quarters::confirm_page).post(quarters::close),
        )
        .route("/console/plots", get(plots::page))
        .route("/console/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ));
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/login", get(login_page).post(login))
        .route("/console/assets/console.css", get(style_sheet))
        .route("/console/assets/console.js", get(script))
        .merge(pages)
        .with_state(console)
}

async fn style_sheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Returns whether the request's `Host` names this machine: `localhost`, a
/// loopback IP address, with or without a port.
fn loopback_host(headers: &axum::http::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Lets a request with a valid session through. Others get the login page,
/// or 401 for the script's fetches and for POSTs. State-changing requests
/// must also come from a console page (`Origin`).
async fn require_session(State(console): State<Console>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if request.method() == axum::http::Method::POST && !same_origin(headers) {
        warn!(path = %request.uri().path(), "console POST rejected: Origin missing or foreign");
        return (StatusCode::FORBIDDEN, "请求来源不符，已拒绝\n").into_response();
    }
    if console.app.auth.is_development() {
        // Without a login, a page from another site could reach the
        // console through a DNS name that resolves to loopback; only
        // loopback host names are served.
        if !loopback_host(headers) {
            warn!("console request rejected in development mode: Host is not a loopback name");
            return (StatusCode::FORBIDDEN, "开发模式仅接受本机地址访问\n").into_response();
        }
        return next.run(request).await;
    }
    let session = cookie(headers, COOKIE).unwrap_or_default();
    match console.sessions.check(&console.app, session).await {
        Ok(true) => next.run(request).await,
        Ok(false) => {
            let fetch = request
                .uri()
                .query()
                .is_some_and(|q| q.contains("fragment=1"));
            if fetch || request.method() == axum::http::Method::POST {
                (StatusCode::UNAUTHORIZED, "请重新登录\n").into_response()
            } else {
                Redirect::to("/console/login").into_response()
            }
        }
        Err(err) => {
            warn!(error = %err, "console session check failed");
            ConsoleError::Invalid(format!("无法校验会话：{err}")).into_response()
        }
    }
}

fn login_form(message: &str) -> String {
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"error\" id=\"login-error\">{}</p>",
            escape(message)
        )
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <title>登录 · 帮办抢单管理台</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body>\
         <section class=\"login\"><h2>帮办抢单管理台</h2>\
         <p class=\"muted\">请输入管理密钥（admin 权限的 API 密钥）。</p>{message}\
         <form method=\"post\" action=\"/console/login\">\
         <input type=\"password\" name=\"key\" id=\"key\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"login\">登录</button></form></section></body></html>"
    )
}

async fn login_page(State(console): State<Console>) -> Response {
    if console.app.auth.is_development() {
        return Redirect::to("/console/").into_response();
    }
    respond(StatusCode::OK, login_form(""))
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

/// Checks the key and opens a session. The key itself is neither stored
/// nor logged.
async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        warn!("console login rejected: Origin missing or foreign");
        return respond(StatusCode::FORBIDDEN, login_form("请求来源不符，已拒绝"));
    }
    if console.app.auth.is_development() {
        return Redirect::to("/console/").into_response();
    }
    if !is_admin_key(&console.app, form.key.trim()) {
        warn!("console login rejected: not an admin key");
        return respond(
            StatusCode::UNAUTHORIZED,
            login_form("密钥无效，或没有 admin 权限"),
        );
    }
    match console.sessions.open(&console.app).await {
        Ok(value) => {
            info!("console login");
            let mut response = Redirect::to("/console/").into_response();
            if let Ok(cookie) = HeaderValue::from_str(&set_cookie(&value, is_https(&headers))) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(err) => {
            warn!(error = %err, "console login failed");
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                login_form("暂时无法登录：存储不可用"),
            )
        }
    }
}

async fn logout(headers: HeaderMap) -> Response {
    let mut response = Redirect::to("/console/login").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&set_cookie("", is_https(&headers))) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::loopback_host;

    #[test]
    fn loopback_host_names() {
        for (host, loopback) in [
            ("localhost:50051", true),
            ("127.0.0.1:50051", true),
            ("127.0.0.1", true),
            ("[::1]:50051", true),
            ("LOCALHOST", true),
            ("attacker.example:50051", false),
            ("10.0.0.5:50051", false),
            ("127.0.0.1.attacker.example", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(loopback_host(&headers), loopback, "{host}");
        }
        assert!(!loopback_host(&HeaderMap::new()), "no Host header");
    }
}
