//! gRPC over TLS with DAIBAN_TLS_CERT and DAIBAN_TLS_KEY: a client that
//! trusts the certificate gets answers, a plaintext client does not.

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
