//! The operator console's pages in headless Chromium against a service
//! started here. Its store queries are conformance cases
//! (tests/store_conformance.rs).
//!
//! Screenshots of each page go to `target/console-screenshots/`, or, with
//! `DAIBAN_UPDATE_SCREENSHOTS=1`, to `docs/console/` for the README.

use std::time::{Duration, Instant};

use daiban_domain::Quarter;
use daiban_proto::v1 as pb;
use daiban_tests::service::{ADMIN_KEY, APP_KEY, agent_token};
use daiban_tests::{
    Config, agents_outside, demo_directory, grid_agents, precise_request, spawn_app, with_bearer,
};
use fantoccini::Locator;

/// Chromedriver on a free loopback port with a fresh profile folder, and
/// a WebDriver session of headless Chromium. Dropping it ends both.
struct Browser {
    client: fantoccini::Client,
    driver: std::process::Child,
    _profile: TempDir,
}

/// A folder under the system's temporary folder, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("daiban-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let driver = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start /usr/bin/chromedriver; scripts/test installs chromium-driver");
        let profile = TempDir::new("chromium-profile");
        let args = serde_json::json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.0.display()),
        ]);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("start a chromium session through chromedriver: {err}"),
            }
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Waits until `css` matches an element, reloading nothing.
    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("waiting for {css}: {err}"))
    }

    /// Waits until `css` matches no element.
    async fn wait_for_absence(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .client
                .find_all(Locator::Css(css))
                .await
                .expect("find elements");
            if found.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "{css} is still on the page");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a screenshot of the page as `<name>.png`, and checks that
    /// the page shows no whole phone number.
    async fn keep(&self, name: &str) {
        let source = self.client.source().await.expect("page source");
        assert!(
            !source.contains(APPLICANT_PHONE),
            "{name} shows the applicant's whole phone number"
        );
        if let Some(phone) = mobile_number_in(&source) {
            panic!("{name} shows the whole mobile number {phone}");
        }
        let png = self.client.screenshot().await.expect("screenshot");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let folder = if std::env::var_os("DAIBAN_UPDATE_SCREENSHOTS").is_some() {
            root.join("docs/console")
        } else {
            root.join("target/console-screenshots")
        };
        std::fs::create_dir_all(&folder).expect("create the screenshot folder");
        std::fs::write(folder.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Returns the first run of exactly 11 digits starting with 1 in `text`:
/// a whole mainland mobile number.
fn mobile_number_in(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = (start..bytes.len())
            .find(|&i| !bytes[i].is_ascii_digit())
            .unwrap_or(bytes.len());
        if end - start == 11 && bytes[start] == b'1' {
            return Some(&text[start..end]);
        }
        start = end;
    }
    None
}

#[test]
fn mobile_numbers_are_found() {
    assert_eq!(mobile_number_in("a 13912345678 b"), Some("13912345678"));
    assert_eq!(mobile_number_in("139****5678 431127100202"), None);
}

/// The applicant phone of `precise_request`.
const APPLICANT_PHONE: &str = "13912345678";

/// Fetches `path` in the page's own session, as a download would, and
/// returns the status, the `Content-Disposition` and the body's bytes.
async fn fetch_in_page(browser: &Browser, path: &str) -> (u64, String, Vec<u8>) {
    let script = r#"
        const [path, done] = arguments;
        fetch(path, { credentials: "same-origin" })
          .then(r => r.arrayBuffer().then(b => done({
            status: r.status,
            disposition: r.headers.get("content-disposition") || "",
            bytes: Array.from(new Uint8Array(b)),
          })))
          .catch(e => done({ status: 0, disposition: String(e), bytes: [] }));
    "#;
    let value = browser
        .client
        .execute_async(script, vec![serde_json::json!(path)])
        .await
        .expect("fetch in the page");
    let status = value["status"].as_u64().unwrap_or(0);
    let disposition = value["disposition"].as_str().unwrap_or("").to_owned();
    let bytes = value["bytes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| u8::try_from(b.as_u64().unwrap_or(0)).unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    (status, disposition, bytes)
}

/// Returns the quarter before the current one, which has ended and may
/// be closed.
fn previous_quarter() -> Quarter {
    let current = Quarter::of(chrono::Utc::now());
    let (year, number) = match current.number() {
        1 => (current.year() - 1, 4),
        n => (current.year(), n - 1),
    };
    Quarter::parse(&format!("{year}Q{number}")).expect("a valid quarter")
}

#[tokio::test]
async fn console_follows_an_order_in_chromium() {
    let app = spawn_app(Config {
        widen_after: "3s",
        ..Config::default()
    })
    .await;
    let base = format!("http://{}", app.addr);
    let browser = Browser::start().await;
    let client = &browser.client;

    // The console redirects to its login, which rejects a key without
    // the admin scope.
    client
        .goto(&format!("{base}/console"))
        .await
        .expect("open the console");
    let url = client.current_url().await.expect("current url");
    assert_eq!(url.path(), "/console/login", "redirected to the login");
    browser.keep("login").await;
    let key = browser.wait_for("#key").await;
    key.send_keys(APP_KEY).await.expect("type a key");
    browser
        .wait_for("#login")
        .await
        .click()
        .await
        .expect("log in");
    let error = browser.wait_for("#login-error").await;
    assert!(
        error.text().await.expect("error text").contains("密钥无效"),
        "a key without the admin scope is rejected"
    );

    let key = browser.wait_for("#key").await;
    key.send_keys(ADMIN_KEY).await.expect("type the admin key");
    browser
        .wait_for("#login")
        .await
        .click()
        .await
        .expect("log in");
    browser.wait_for("#state-counts").await;
    let cookie = client
        .get_named_cookie("daiban_console")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true), "HttpOnly");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Strict)",
        "SameSite=Strict"
    );
    assert_eq!(cookie.path(), Some("/console"), "Path=/console");
    assert_ne!(
        cookie.value(),
        ADMIN_KEY,
        "the cookie does not hold the key"
    );

    // A new order shows in its grid phase, then widens and is claimed,
    // while the page stays open.
    let grid = demo_directory()
        .grids()
        .find(|g| !grid_agents(g.code.as_str()).is_empty())
        .map(|g| g.code.to_string())
        .expect("a grid with active agents");
    let order = app
        .work_orders()
        .submit_request(with_bearer(
            precise_request(&grid, "M003", "console-1"),
            APP_KEY,
        ))
        .await
        .expect("submit an order")
        .into_inner();
    let row = format!("tr[data-order=\"{}\"]", order.order_id);
    browser
        .wait_for(&format!("#grid-phase {row} [data-deadline]"))
        .await;
    browser.keep("now").await;
    browser.wait_for(&format!("#county-phase {row}")).await;

    let claimer = agents_outside(&grid, 1).remove(0);
    app.agent_api()
        .claim_work_order(with_bearer(
            pb::ClaimWorkOrderRequest {
                order_id: order.order_id.clone(),
            },
            &agent_token(&claimer),
        ))
        .await
        .expect("claim after widening");
    browser.wait_for(&format!("#recent-claims {row}")).await;
    browser
        .wait_for_absence(&format!("#county-phase {row}"))
        .await;
    let url_after = client.current_url().await.expect("current url");
    assert_eq!(url_after.path(), "/console/", "the page was never left");

    // Searching by phone lists the order with the number masked.
    client
        .goto(&format!("{base}/console/orders"))
        .await
        .expect("open the search");
    let search = browser.wait_for("#search").await;
    search
        .send_keys(APPLICANT_PHONE)
        .await
        .expect("type a phone");
    browser
        .wait_for("#search-button")
        .await
        .click()
        .await
        .expect("search");
    let phone_cell = browser.wait_for(&format!("#results {row} .phone")).await;
    assert_eq!(
        phone_cell.text().await.expect("phone text"),
        "139****5678",
        "masked phone"
    );
    browser.keep("orders").await;

    // The order's history lists each step.
    browser
        .wait_for(&format!("#results {row} a"))
        .await
        .click()
        .await
        .expect("open the order");
    for kind in ["submitted", "widened", "claimed"] {
        browser
            .wait_for(&format!("#history li[data-kind=\"{kind}\"]"))
            .await;
    }
    let state = browser.wait_for("#order-state").await;
    assert_eq!(
        state.text().await.expect("state"),
        "已抢单",
        "claimed state"
    );
    browser.keep("order").await;

    for (path, name, css) in [
        ("/console/places", "places", "#places"),
        ("/console/agents", "agents", "#quarter-leaders"),
        (
            &format!("/console/agents/{claimer}") as &str,
            "agent",
            "#agent-orders",
        ),
        ("/console/plots", "plots", "#plot-phases svg"),
    ] {
        client
            .goto(&format!("{base}{path}"))
            .await
            .expect("open a page");
        browser.wait_for(css).await;
        browser.keep(name).await;
    }

    // The statement of the last quarter downloads as CSV and XLSX.
    let quarter = previous_quarter();
    client
        .goto(&format!("{base}/console/quarters?quarter={quarter}"))
        .await
        .expect("open the quarters");
    browser.wait_for("#statement").await;
    browser.keep("quarters").await;
    let csv_link = browser.wait_for("#download-csv").await;
    let href = csv_link.attr("href").await.expect("href").expect("a link");
    let (status, disposition, bytes) = fetch_in_page(&browser, &href).await;
    assert_eq!(status, 200, "CSV download");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "CSV has a byte order mark"
    );
    let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8 CSV");
    assert!(text.starts_with("帮办员积分奖励明细表\n"), "{text}");
    assert!(text.contains(&format!("季度,{quarter}\n")), "{text}");
    assert!(text.contains("状态,未结账，数据可能变化\n"), "{text}");
    assert!(text.contains("合计,0人"), "{text}");
    let xlsx_link = browser.wait_for("#download-xlsx").await;
    let href = xlsx_link.attr("href").await.expect("href").expect("a link");
    let (status, _, bytes) = fetch_in_page(&browser, &href).await;
    assert_eq!(status, 200, "XLSX download");
    assert!(bytes.starts_with(b"PK"), "an XLSX file is a zip archive");

    // Closing takes effect only once the quarter is typed again.
    browser
        .wait_for("#close-quarter")
        .await
        .click()
        .await
        .expect("start closing");
    browser.wait_for("#confirm").await;
    browser.keep("close").await;
    let confirm = browser.wait_for("#confirm").await;
    confirm
        .send_keys("2000Q1")
        .await
        .expect("type a wrong quarter");
    browser
        .wait_for("#confirm-close")
        .await
        .click()
        .await
        .expect("confirm");
    browser.wait_for("#close-error").await;
    let confirm = browser.wait_for("#confirm").await;
    confirm
        .send_keys(&quarter.to_string())
        .await
        .expect("type the quarter");
    browser
        .wait_for("#confirm-close")
        .await
        .click()
        .await
        .expect("confirm");
    let result = browser.wait_for("#close-result").await;
    let result = result.text().await.expect("result text");
    assert!(result.starts_with("已结账"), "{result}");
    client
        .goto(&format!("{base}/console/quarters?quarter={quarter}"))
        .await
        .expect("open the quarters");
    let status = browser.wait_for("#statement-status").await;
    assert!(
        status.text().await.expect("status").starts_with("已结账"),
        "the statement is closed"
    );
    let csv_link = browser.wait_for("#download-csv").await;
    let href = csv_link.attr("href").await.expect("href").expect("a link");
    let (_, _, bytes) = fetch_in_page(&browser, &href).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(text.contains("状态,已结账\n"), "{text}");

    browser.stop().await;
    app.stop().await;
}
