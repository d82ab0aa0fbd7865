//! What the client commands share: finding the service and presenting
//! credentials.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use daiban_server::auth::parse_api_keys;
use daiban_server::{Auth, Credentials, Scope};
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

#[derive(Args, Clone)]
pub struct ClientArgs {
    /// URL of the running service.
    #[arg(long, env = "DAIBAN_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// API key to present. When unset, a key of the scope each call needs
    /// is taken from DAIBAN_API_KEYS, as the service reads it.
    #[arg(long, env = "DAIBAN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl ClientArgs {
    /// Connects to the service; fails when it does not answer within ten
    /// seconds.
    pub async fn channel(&self) -> Result<Channel> {
        // grpcurl and most gRPC clients take host:port; accept that too.
        let url = if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("http://{}", self.server)
        };
        let endpoint = Endpoint::from_shared(url)
            .with_context(|| {
                format!(
                    "--server: {:?} is not a URL such as http://127.0.0.1:50051",
                    self.server
                )
            })?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        endpoint.connect().await.with_context(|| {
            format!(
                "failed to connect to {}; is `daiban serve` running there?",
                self.server
            )
        })
    }

    /// The API key for calls that need `scope`, if any is configured.
    pub fn key_for(&self, scope: Scope) -> Option<String> {
        if let Some(key) = &self.api_key {
            return Some(key.clone());
        }
        let keys = std::env::var("DAIBAN_API_KEYS").ok()?;
        parse_api_keys(&keys)
            .ok()?
            .into_iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, key)| key)
    }
}

/// Signs agent tokens as the service checks them: with
/// DAIBAN_TOKEN_SECRET, or the development secret when it is unset.
pub fn token_signer() -> Auth {
    match std::env::var("DAIBAN_TOKEN_SECRET") {
        Ok(secret) if !secret.trim().is_empty() => Auth::new(&Credentials::Production {
            token_secret: secret,
            api_keys: Vec::new(),
        }),
        _ => Auth::new(&Credentials::Development),
    }
}

/// Wraps `message` in a request carrying `credential` as a bearer token.
pub fn authorized<T>(message: T, credential: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(credential) = credential
        && let Ok(value) = format!("Bearer {credential}").parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
