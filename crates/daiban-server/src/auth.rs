//! Credentials: API keys with scopes for services, HS256 tokens for agents.
//!
//! Both travel as gRPC metadata `authorization: Bearer <credential>`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use daiban_domain::AgentId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

use crate::config::Credentials;
use crate::limits::{Limiter, RateLimits};

/// The secret that signs agent tokens in development mode. It is public, so
/// development mode listens on loopback only.
pub const DEVELOPMENT_SECRET: &str = "daiban-development-secret-not-for-production";

/// The set of services an API key may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The mobile app backend: `WorkOrderService`.
    App,
    /// SMS gateway callbacks: `SmsGatewayService`.
    Sms,
    /// The bonus export job: `PointsService`.
    Export,
    /// Bureau staff tooling: `DirectoryService`, and reading points.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "app" => Some(Self::App),
            "sms" => Some(Self::Sms),
            "export" => Some(Self::Export),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Sms => "sms",
            Self::Export => "export",
            Self::Admin => "admin",
        }
    }
}

/// Shortest API key accepted.
const MIN_KEY_LEN: usize = 16;

/// Parses `scope=key` pairs separated by commas, such as
/// `app=k1,export=k2`. A scope may have several keys, for rotation.
pub fn parse_api_keys(text: &str) -> Result<Vec<(Scope, String)>, String> {
    let mut keys = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (scope, key) = pair.split_once('=').ok_or_else(|| {
            format!(
                "expected scope=key, got an entry without '=' at position {}",
                keys.len() + 1
            )
        })?;
        let scope = Scope::parse(scope.trim()).ok_or_else(|| {
            format!(
                "unknown scope {:?}; expected app, sms, export or admin",
                scope.trim()
            )
        })?;
        let key = key.trim();
        if key.len() < MIN_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the {} key must be at least {MIN_KEY_LEN} characters without spaces",
                scope.as_str()
            ));
        }
        keys.push((scope, key.to_owned()));
    }
    if keys.is_empty() {
        return Err("expected at least one scope=key pair".into());
    }
    Ok(keys)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// Issue time; tokens minted here carry it, but it is not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Checks credentials on incoming calls and mints agent tokens.
#[derive(Clone)]
pub struct Auth {
    development: bool,
    keys: HashMap<String, HashSet<Scope>>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Per-caller budgets; `None` checks none, as in tools that only mint.
    limiter: Option<Arc<Limiter>>,
}

impl Auth {
    pub fn new(credentials: &Credentials) -> Self {
        let (development, secret, pairs) = match credentials {
            Credentials::Development => (true, DEVELOPMENT_SECRET, &[][..]),
            Credentials::Production {
                token_secret,
                api_keys,
            } => (false, token_secret.as_str(), &api_keys[..]),
        };
        let mut keys: HashMap<String, HashSet<Scope>> = HashMap::new();
        for (scope, key) in pairs {
            keys.entry(key.clone()).or_default().insert(*scope);
        }
        Self {
            development,
            keys,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            limiter: None,
        }
    }

    /// Enforces `limits` on every call this `Auth` admits.
    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.limiter = Some(Arc::new(Limiter::new(limits)));
        self
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Admits a call whose API key has one of `scopes`. Development mode
    /// admits every call.
    pub fn require_scope<T>(&self, request: &Request<T>, scopes: &[Scope]) -> Result<(), Status> {
        if self.development {
            // Calls without a key share one budget.
            let credential = bearer(request).unwrap_or("development");
            return self
                .limiter
                .as_ref()
                .map_or(Ok(()), |l| l.check_key(credential));
        }
        let credential = bearer(request)?;
        let granted = self.keys.get(credential).ok_or_else(|| {
            unauthenticated(
                "UNKNOWN_API_KEY",
                "unknown API key; send a key from DAIBAN_API_KEYS",
            )
        })?;
        if scopes.iter().any(|s| granted.contains(s)) {
            self.limiter
                .as_ref()
                .map_or(Ok(()), |l| l.check_key(credential))
        } else {
            let wanted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            Err(permission_denied(
                "SCOPE_MISSING",
                format!(
                    "this API key lacks the {} scope this call needs",
                    wanted.join(" or ")
                ),
            ))
        }
    }

    /// Returns the agent named by the call's bearer token.
    pub fn agent<T>(&self, request: &Request<T>) -> Result<AgentId, Status> {
        let agent = self.verify(bearer(request)?)?;
        if let Some(limiter) = &self.limiter {
            limiter.check_agent(agent.as_str())?;
        }
        Ok(agent)
    }

    /// Whether the call carries something shaped like an agent token rather
    /// than an API key.
    pub fn has_agent_token<T>(&self, request: &Request<T>) -> bool {
        bearer(request).is_ok_and(|c| c.split('.').count() == 3)
    }

    pub fn verify(&self, token: &str) -> Result<AgentId, Status> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|err| token_error(&err))?;
        AgentId::parse(&data.claims.sub).map_err(|err| {
            unauthenticated(
                "INVALID_TOKEN",
                format!("agent token subject is not an agent id: {err}"),
            )
        })
    }

    /// Mints an agent token valid for `ttl`.
    pub fn mint(&self, agent: &AgentId, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: agent.to_string(),
            iat: Some(now),
            exp: now + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }
}

/// Builds an UNAUTHENTICATED status with an `ErrorInfo` reason.
pub fn unauthenticated(reason: &str, message: impl Into<String>) -> Status {
    crate::error::status(tonic::Code::Unauthenticated, reason, message, &[])
}

/// Builds a PERMISSION_DENIED status with an `ErrorInfo` reason.
pub fn permission_denied(reason: &str, message: impl Into<String>) -> Status {
    crate::error::status(tonic::Code::PermissionDenied, reason, message, &[])
}

/// Turns a token check failure into a status whose message states the fix,
/// without the JWT library's wording.
fn token_error(err: &jsonwebtoken::errors::Error) -> Status {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => unauthenticated(
            "TOKEN_EXPIRED",
            "agent token expired; mint a new one with `daiban token agent <agent-id>`",
        ),
        ErrorKind::InvalidSignature => unauthenticated(
            "INVALID_TOKEN",
            "agent token signature does not match this service's DAIBAN_TOKEN_SECRET",
        ),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            unauthenticated("INVALID_TOKEN", "agent token must be signed with HS256")
        }
        ErrorKind::MissingRequiredClaim(claim) => unauthenticated(
            "INVALID_TOKEN",
            format!("agent token lacks the {claim} claim; tokens need sub and exp"),
        ),
        _ => unauthenticated(
            "INVALID_TOKEN",
            "agent token is malformed; expected an HS256 JWT with sub and exp claims",
        ),
    }
}

fn bearer<T>(request: &Request<T>) -> Result<&str, Status> {
    let value = request.metadata().get("authorization").ok_or_else(|| {
        unauthenticated(
            "MISSING_CREDENTIAL",
            "missing authorization metadata; send 'authorization: Bearer <credential>'",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        unauthenticated("MISSING_CREDENTIAL", "authorization metadata is not ASCII")
    })?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            unauthenticated(
                "MISSING_CREDENTIAL",
                "authorization metadata must be 'Bearer <credential>'",
            )
        })
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn production() -> Auth {
        Auth::new(&Credentials::Production {
            token_secret: "t".repeat(32),
            api_keys: parse_api_keys("app=app-key-0123456789,export=export-key-012345").unwrap(),
        })
    }

    fn with_bearer(credential: &str) -> Request<()> {
        let mut request = Request::new(());
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {credential}").parse().unwrap(),
        );
        request
    }

    #[test]
    fn api_keys_parse_scopes() {
        let keys = parse_api_keys("app=0123456789abcdef, admin=fedcba9876543210").unwrap();
        assert_eq!(keys[0].0, Scope::App);
        assert_eq!(keys[1].0, Scope::Admin);
        assert!(
            parse_api_keys("root=0123456789abcdef")
                .unwrap_err()
                .contains("unknown scope")
        );
        assert!(
            parse_api_keys("app=short")
                .unwrap_err()
                .contains("at least 16")
        );
        assert!(parse_api_keys("app").is_err());
        assert!(parse_api_keys(",").is_err());
    }

    #[test]
    fn scope_is_enforced() {
        let auth = production();
        assert!(
            auth.require_scope(&with_bearer("app-key-0123456789"), &[Scope::App])
                .is_ok()
        );
        let denied = auth
            .require_scope(&with_bearer("app-key-0123456789"), &[Scope::Export])
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        let unknown = auth
            .require_scope(&with_bearer("nope-nope-nope-nope"), &[Scope::App])
            .unwrap_err();
        assert_eq!(unknown.code(), Code::Unauthenticated);
        let missing = auth
            .require_scope(&Request::new(()), &[Scope::App])
            .unwrap_err();
        assert_eq!(missing.code(), Code::Unauthenticated);
    }

    #[test]
    fn tokens_round_trip_and_reject_other_secrets() {
        let auth = production();
        let agent = AgentId::parse("A0001").unwrap();
        let token = auth.mint(&agent, Duration::from_secs(60));
        assert_eq!(auth.agent(&with_bearer(&token)).unwrap(), agent);

        let other = Auth::new(&Credentials::Development);
        let err = other.agent(&with_bearer(&token)).unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }

    #[test]
    fn expired_token_is_rejected() {
        let auth = production();
        let claims = Claims {
            sub: "A0001".into(),
            iat: Some(1),
            exp: 2,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth.encoding).unwrap();
        let err = auth.agent(&with_bearer(&token)).unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert!(err.message().contains("expired"), "{}", err.message());
    }
}
