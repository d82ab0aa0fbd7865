//! `daiban serve` refusing to start: every invalid variable is reported at
//! once, an address already in use names its variable, and several urls
//! of a server without cluster mode say so.

use std::net::TcpListener;
use std::process::{Command, Output};

use daiban_tests::service::daiban_binary;

/// Runs `daiban serve` with `env` on top of a clean environment and
/// returns its output; the start is expected to fail before listening.
fn serve(env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(daiban_binary());
    command.arg("serve").env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("daiban serve runs")
}

#[test]
fn invalid_log_format_reported_with_others() {
    let output = serve(&[
        ("DAIBAN_LOG_FORMAT", "xml"),
        ("DAIBAN_WIDEN_AFTER", "soon"),
        ("DAIBAN_LISTEN", "127.0.0.1:0"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DAIBAN_LOG_FORMAT"), "{stderr}");
    assert!(stderr.contains("DAIBAN_WIDEN_AFTER"), "{stderr}");
}

#[test]
fn busy_port_names_its_variable() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a free port is bound");
    let addr = taken.local_addr().expect("bound address").to_string();

    let output = serve(&[("DAIBAN_LISTEN", &addr)]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DAIBAN_LISTEN"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");

    let output = serve(&[
        ("DAIBAN_LISTEN", "127.0.0.1:0"),
        ("DAIBAN_METRICS_LISTEN", &addr),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DAIBAN_METRICS_LISTEN"), "{stderr}");
}

#[test]
fn several_urls_of_one_server_explained() {
    let redis = daiban_tests::redis::RedisServer::start();
    let urls = format!("{},{}", redis.url(), redis.url());

    let output = serve(&[
        ("DAIBAN_LISTEN", "127.0.0.1:0"),
        ("DAIBAN_REDIS_URL", &urls),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DAIBAN_REDIS_URL"), "{stderr}");
    assert!(
        stderr.contains("without cluster mode"),
        "the message says why several urls fail: {stderr}"
    );
}
