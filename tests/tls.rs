//! TLS with DAIBAN_TLS_CERT and DAIBAN_TLS_KEY: a gRPC client that trusts
//! the certificate gets responses and a plaintext one does not, an HTTP/1.1
//! webhook sender completes its handshake, and a bad key stops the start.

use std::collections::HashMap;
use std::time::Duration;

use daiban_proto::v1 as pb;
use daiban_proto::v1::work_order_service_client::WorkOrderServiceClient;
use daiban_tests::ServiceProcess;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

#[tokio::test]
async fn tls_serves_trusting_clients_only() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate is generated");
    let dir = std::env::temp_dir().join(format!("daiban-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary folder is created");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let cert_pem = certified.cert.pem();
    std::fs::write(&cert_path, &cert_pem).expect("the certificate is written");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("the key is written");

    let env = HashMap::from([
        (
            "DAIBAN_TLS_CERT".to_owned(),
            cert_path.display().to_string(),
        ),
        ("DAIBAN_TLS_KEY".to_owned(), key_path.display().to_string()),
    ]);
    let service = ServiceProcess::start(&env);
    assert!(
        service.log_contains("tls: on"),
        "{}",
        service.log().join("\n")
    );

    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{}", service.addr.port()))
        .expect("the url is valid")
        .tls_config(tls)
        .expect("the TLS settings are valid")
        .connect()
        .await
        .expect("a trusting client connects");
    let matters = WorkOrderServiceClient::new(channel)
        .list_matters(pb::ListMattersRequest {})
        .await
        .expect("the call succeeds over TLS")
        .into_inner()
        .matters;
    assert_eq!(matters.len(), 100);

    let plaintext = Endpoint::from_shared(format!("http://{}", service.addr))
        .expect("the url is valid")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(channel) => WorkOrderServiceClient::new(channel)
            .list_matters(pb::ListMattersRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client must not get an answer");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a fresh self-signed certificate for `localhost` and its key into
/// a temporary folder, and returns the folder, the two paths and the
/// certificate's PEM.
fn certificate(name: &str) -> (std::path::PathBuf, String, String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate is generated");
    let dir = std::env::temp_dir().join(format!("daiban-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary folder is created");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let cert_pem = certified.cert.pem();
    std::fs::write(&cert_path, &cert_pem).expect("the certificate is written");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("the key is written");
    (
        dir,
        cert_path.display().to_string(),
        key_path.display().to_string(),
        cert_pem,
    )
}

#[tokio::test]
async fn tls_serves_webhooks_over_http1() {
    let (dir, cert_path, key_path, cert_pem) = certificate("tls-http1");
    let env = HashMap::from([
        ("DAIBAN_TLS_CERT".to_owned(), cert_path),
        ("DAIBAN_TLS_KEY".to_owned(), key_path),
    ]);
    let service = ServiceProcess::start(&env);

    // A webhook sender that speaks only HTTP/1.1 offers only that in its
    // TLS handshake.
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("the certificate parses"),
        )
        .http1_only()
        .build()
        .expect("the client is built");
    let url = format!(
        "https://localhost:{}/sms/aliyun/report",
        service.addr.port()
    );
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"[{"success":true,"biz_id":"no-such-message"}]"#)
        .send()
        .await
        .expect("an HTTP/1.1 client completes the TLS handshake");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("a JSON answer");
    assert_eq!(body["code"], 0, "{body}");

    let rejected = client
        .post(&url)
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .expect("the request completes");
    assert_eq!(rejected.status(), reqwest::StatusCode::BAD_REQUEST);

    // Without a webhook secret (development mode), a form that a page on
    // another site could post is rejected.
    let form = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"[{"success":true,"biz_id":"no-such-message"}]"#)
        .send()
        .await
        .expect("the request completes");
    assert_eq!(form.status(), reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_key_stops_the_start() {
    let (dir, cert_path, key_path, _) = certificate("tls-bad-key");
    std::fs::write(&key_path, "not a key\n").expect("the key is overwritten");
    let output = std::process::Command::new(daiban_tests::service::daiban_binary())
        .arg("serve")
        .env("DAIBAN_LISTEN", "127.0.0.1:0")
        .env("DAIBAN_TLS_CERT", &cert_path)
        .env("DAIBAN_TLS_KEY", &key_path)
        .env_remove("DAIBAN_REDIS_URL")
        .output()
        .expect("daiban serve runs");
    assert!(!output.status.success(), "serve must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DAIBAN_TLS_KEY"), "{stderr}");
    assert!(stderr.contains(&key_path), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
