//! Settings from environment variables, each checked and reported by name.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use daiban_dispatch::Policy;
use daiban_domain::{BonusRate, yuan_per_point_to_fen};
use daiban_sms::SmsSettings;

use crate::auth::{Scope, parse_api_keys};
use crate::limits::RateLimits;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// The source of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// The Lanshan demo built into the binary.
    Bundled,
    /// A folder with `grids.csv`, `agents.csv` and `matters.csv`.
    Folder(PathBuf),
}

/// The credentials the service accepts.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No secret configured: a fixed development secret signs agent tokens,
    /// API keys are not checked, and only loopback addresses are allowed.
    Development,
    Production {
        token_secret: String,
        api_keys: Vec<(Scope, String)>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Development => f.write_str("Development"),
            Self::Production { api_keys, .. } => {
                write!(f, "Production({} api keys)", api_keys.len())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key files for TLS; `None` serves
    /// plaintext.
    pub tls: Option<TlsFiles>,
    /// Where to serve Prometheus metrics; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    pub redis_url: Option<String>,
    pub policy: Policy,
    pub directory: DirectorySource,
    pub credentials: Credentials,
    pub bonus_rate: BonusRate,
    pub rate_limits: RateLimits,
    /// Where SMS go: the log, a gateway or a provider.
    pub sms: SmsSettings,
    /// Which settings were left at their defaults, for the start-up log.
    pub defaults: Vec<&'static str>,
}

/// The files of the server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// Every invalid setting, one line each, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's
    /// value. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut errors = Vec::new();
        let mut defaults = Vec::new();

        let listen = match get("DAIBAN_LISTEN") {
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                errors.push(format!(
                    "DAIBAN_LISTEN: expected an address and port such as 127.0.0.1:50051, got {text:?}"
                ));
                default_listen()
            }),
            None => {
                defaults.push("DAIBAN_LISTEN");
                default_listen()
            }
        };

        let metrics_listen = get("DAIBAN_METRICS_LISTEN").and_then(|text| {
            let parsed: Option<SocketAddr> = text.trim().parse().ok();
            if parsed.is_none() {
                errors.push(format!(
                    "DAIBAN_METRICS_LISTEN: expected an address and port such as 127.0.0.1:9090, got {text:?}"
                ));
            }
            parsed
        });

        let tls = match (get("DAIBAN_TLS_CERT"), get("DAIBAN_TLS_KEY")) {
            (Some(certificate), Some(private_key)) => Some(TlsFiles {
                certificate: PathBuf::from(certificate.trim()),
                private_key: PathBuf::from(private_key.trim()),
            }),
            (None, None) => None,
            (Some(_), None) => {
                errors.push("DAIBAN_TLS_KEY: required when DAIBAN_TLS_CERT is set; give the PEM private key file".into());
                None
            }
            (None, Some(_)) => {
                errors.push("DAIBAN_TLS_CERT: required when DAIBAN_TLS_KEY is set; give the PEM certificate chain file".into());
                None
            }
        };

        let redis_url = get("DAIBAN_REDIS_URL").map(|url| url.trim().to_owned());
        if let Some(url) = &redis_url {
            // Several comma-separated urls name the nodes of a Redis Cluster.
            let valid = url.split(',').map(str::trim).all(|part| {
                part.starts_with("redis://")
                    || part.starts_with("rediss://")
                    || part.starts_with("unix://")
            });
            if !valid {
                errors.push(
                    "DAIBAN_REDIS_URL: expected a URL starting with redis://, rediss:// or unix://, or comma-separated redis:// URLs of a cluster's nodes"
                        .into(),
                );
            }
        } else {
            defaults.push("DAIBAN_REDIS_URL");
        }

        let defaults_policy = Policy::default();
        let mut duration = |name: &'static str, default: Duration| match get(name) {
            Some(text) => parse_duration(&text).unwrap_or_else(|reason| {
                errors.push(format!("{name}: {reason}"));
                default
            }),
            None => default,
        };
        let policy = Policy {
            widen_after: duration("DAIBAN_WIDEN_AFTER", defaults_policy.widen_after),
            escalate_after: duration("DAIBAN_ESCALATE_AFTER", defaults_policy.escalate_after),
            rating_window: duration("DAIBAN_RATING_WINDOW", defaults_policy.rating_window),
        };

        let directory = match get("DAIBAN_DIRECTORY") {
            Some(path) => DirectorySource::Folder(PathBuf::from(path.trim())),
            None => {
                defaults.push("DAIBAN_DIRECTORY");
                DirectorySource::Bundled
            }
        };

        let token_secret = get("DAIBAN_TOKEN_SECRET");
        let keys_text = get("DAIBAN_API_KEYS");
        if let Some(Err(reason)) = token_secret.as_deref().map(check_token_secret) {
            errors.push(format!("DAIBAN_TOKEN_SECRET: {reason}"));
        }
        let api_keys = match keys_text.as_deref().map(parse_api_keys) {
            Some(Ok(keys)) => {
                if token_secret
                    .as_ref()
                    .is_some_and(|secret| keys.iter().any(|(_, key)| key == secret))
                {
                    errors.push("DAIBAN_API_KEYS: a key equals DAIBAN_TOKEN_SECRET; give each a value of its own".into());
                }
                Some(keys)
            }
            Some(Err(reason)) => {
                errors.push(format!("DAIBAN_API_KEYS: {reason}"));
                None
            }
            None => None,
        };
        let credentials = match (token_secret, api_keys) {
            (None, None) if keys_text.is_none() => {
                defaults.push("DAIBAN_TOKEN_SECRET");
                Credentials::Development
            }
            (Some(secret), Some(api_keys)) => Credentials::Production {
                token_secret: secret,
                api_keys,
            },
            (Some(_), None) if keys_text.is_none() => {
                errors.push("DAIBAN_API_KEYS: required when DAIBAN_TOKEN_SECRET is set; give scope=key pairs such as app=...,sms=...".into());
                Credentials::Development
            }
            (None, _) => {
                errors.push("DAIBAN_TOKEN_SECRET: required when DAIBAN_API_KEYS is set; give a random string of at least 32 characters".into());
                Credentials::Development
            }
            // DAIBAN_API_KEYS was set but invalid, which is reported above;
            // the listen address is not judged by development rules then.
            (Some(secret), None) => Credentials::Production {
                token_secret: secret,
                api_keys: Vec::new(),
            },
        };
        if credentials == Credentials::Development && !listen.ip().is_loopback() {
            errors.push(format!(
                "DAIBAN_LISTEN: {listen} is not a loopback address; without DAIBAN_TOKEN_SECRET and DAIBAN_API_KEYS the service runs in development mode and listens on loopback only"
            ));
        }
        if let Some(metrics) = metrics_listen
            && credentials == Credentials::Development
            && !metrics.ip().is_loopback()
        {
            errors.push(format!(
                "DAIBAN_METRICS_LISTEN: {metrics} is not a loopback address; in development mode (no DAIBAN_TOKEN_SECRET and DAIBAN_API_KEYS) every listener stays on loopback"
            ));
        }

        let sms = SmsSettings::from_lookup(&get, &mut errors);

        let defaults_limits = RateLimits::default();
        let mut per_second = |name: &'static str, default: NonZeroU32| match get(name) {
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                errors.push(format!(
                    "{name}: expected calls per second, a whole number above 0, got {text:?}"
                ));
                default
            }),
            None => default,
        };
        let rate_limits = RateLimits {
            per_key: per_second("DAIBAN_RATE_LIMIT_KEY", defaults_limits.per_key),
            per_agent: per_second("DAIBAN_RATE_LIMIT_AGENT", defaults_limits.per_agent),
        };

        let bonus_rate = match get("DAIBAN_YUAN_PER_POINT") {
            Some(text) => match yuan_per_point_to_fen(&text) {
                Ok(fen) => BonusRate::from_fen_per_point(fen),
                Err(reason) => {
                    errors.push(format!("DAIBAN_YUAN_PER_POINT: {reason}"));
                    BonusRate::default()
                }
            },
            None => BonusRate::default(),
        };

        if errors.is_empty() {
            Ok(Self {
                listen,
                tls,
                metrics_listen,
                redis_url,
                policy,
                directory,
                credentials,
                bonus_rate,
                rate_limits,
                sms,
                defaults,
            })
        } else {
            Err(ConfigError(errors))
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address is valid")
}

/// Shortest token secret accepted, in characters.
const MIN_SECRET_CHARS: usize = 32;

/// Checks a production token secret: long enough, and not the development
/// secret, which is public.
fn check_token_secret(secret: &str) -> Result<(), String> {
    if secret == crate::auth::DEVELOPMENT_SECRET {
        return Err(
            "this is the public development secret; give a random string of your own".into(),
        );
    }
    let chars = secret.chars().count();
    if chars < MIN_SECRET_CHARS || secret.len() < MIN_SECRET_CHARS {
        return Err(format!(
            "expected at least {MIN_SECRET_CHARS} characters, got {chars}"
        ));
    }
    Ok(())
}

/// Parses a duration such as `10m`, `7d`, `1h 30m` or `500ms`. Bare numbers
/// are rejected, because they could mean seconds or minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "expected a duration with a unit such as 10m, 7d or 500ms, got {text:?}"
        ));
    }
    if text.contains('M') || text.contains('y') || text.contains("month") {
        return Err(format!(
            "expected a duration in d, h, m, s or ms such as 10m, got {text:?}; months and years are not accepted"
        ));
    }
    let duration = humantime::parse_duration(text).map_err(|err| {
        format!("expected a duration such as 10m, 7d or 500ms, got {text:?} ({err})")
    })?;
    if duration < Duration::from_millis(1) {
        return Err(format!("expected a duration of at least 1ms, got {text:?}"));
    }
    if duration > Duration::from_secs(366 * 24 * 3600) {
        return Err(format!(
            "expected a duration of at most a year, got {text:?}"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_variables_give_development_defaults() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(settings.redis_url, None);
        assert_eq!(settings.credentials, Credentials::Development);
        assert_eq!(settings.directory, DirectorySource::Bundled);
        assert_eq!(settings.policy, Policy::default());
        assert_eq!(settings.bonus_rate, BonusRate::default());
    }

    #[test]
    fn durations_accept_units_and_milliseconds() {
        let settings = settings(&[
            ("DAIBAN_WIDEN_AFTER", "250ms"),
            ("DAIBAN_ESCALATE_AFTER", "1h 30m"),
            ("DAIBAN_RATING_WINDOW", "7d"),
        ])
        .unwrap();
        assert_eq!(settings.policy.widen_after, Duration::from_millis(250));
        assert_eq!(settings.policy.escalate_after, Duration::from_secs(5400));
        assert_eq!(
            settings.policy.rating_window,
            Duration::from_secs(7 * 86400)
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let err = settings(&[
            ("DAIBAN_LISTEN", "nowhere"),
            ("DAIBAN_WIDEN_AFTER", "10"),
            ("DAIBAN_ESCALATE_AFTER", "soon"),
            ("DAIBAN_RATING_WINDOW", "0s"),
            ("DAIBAN_REDIS_URL", "localhost:6379"),
            ("DAIBAN_YUAN_PER_POINT", "ten"),
        ])
        .unwrap_err();
        for name in [
            "DAIBAN_LISTEN",
            "DAIBAN_WIDEN_AFTER",
            "DAIBAN_ESCALATE_AFTER",
            "DAIBAN_RATING_WINDOW",
            "DAIBAN_REDIS_URL",
            "DAIBAN_YUAN_PER_POINT",
        ] {
            assert!(
                err.0.iter().any(|line| line.starts_with(name)),
                "{name} missing from {err}"
            );
        }
    }

    #[test]
    fn development_mode_stays_on_loopback() {
        let err = settings(&[("DAIBAN_LISTEN", "0.0.0.0:50051")]).unwrap_err();
        assert!(err.0[0].contains("loopback"), "{err}");
        assert!(settings(&[("DAIBAN_LISTEN", "[::1]:50051")]).is_ok());
        let err = settings(&[("DAIBAN_METRICS_LISTEN", "0.0.0.0:9090")]).unwrap_err();
        assert!(err.0[0].contains("DAIBAN_METRICS_LISTEN"), "{err}");
        assert!(settings(&[("DAIBAN_METRICS_LISTEN", "127.0.0.1:9090")]).is_ok());
    }

    #[test]
    fn production_needs_both_secrets() {
        let secret = "s".repeat(32);
        let keys = "app=0123456789abcdef,export=fedcba9876543210";
        let err = settings(&[("DAIBAN_TOKEN_SECRET", &secret)]).unwrap_err();
        assert!(err.0[0].starts_with("DAIBAN_API_KEYS"), "{err}");
        let err = settings(&[("DAIBAN_API_KEYS", keys)]).unwrap_err();
        assert!(err.0[0].starts_with("DAIBAN_TOKEN_SECRET"), "{err}");
        let err =
            settings(&[("DAIBAN_API_KEYS", keys), ("DAIBAN_TOKEN_SECRET", "short")]).unwrap_err();
        assert!(err.0[0].contains("32 characters"), "{err}");

        let ok = settings(&[
            ("DAIBAN_API_KEYS", keys),
            ("DAIBAN_TOKEN_SECRET", &secret),
            ("DAIBAN_LISTEN", "0.0.0.0:1"),
        ]);
        assert!(matches!(
            ok.unwrap().credentials,
            Credentials::Production { .. }
        ));
    }

    #[test]
    fn weak_secrets_are_rejected() {
        let keys = "app=0123456789abcdef";
        let cases = [
            crate::auth::DEVELOPMENT_SECRET.to_owned(),
            "蓝".repeat(11),
            "short".to_owned(),
        ];
        for secret in cases {
            let err = settings(&[("DAIBAN_API_KEYS", keys), ("DAIBAN_TOKEN_SECRET", &secret)])
                .expect_err("a weak secret is rejected");
            assert!(
                err.0.iter().any(|l| l.starts_with("DAIBAN_TOKEN_SECRET")),
                "{secret}: {err}"
            );
        }
        let secret = "0123456789abcdef0123456789abcdef";
        let err = settings(&[
            ("DAIBAN_API_KEYS", &format!("app={secret}")),
            ("DAIBAN_TOKEN_SECRET", secret),
        ])
        .expect_err("a key equal to the secret is rejected");
        assert!(err.0[0].contains("equals DAIBAN_TOKEN_SECRET"), "{err}");
    }

    #[test]
    fn bad_keys_and_short_secret_are_both_reported() {
        let err = settings(&[
            ("DAIBAN_API_KEYS", "app=CHANGE-ME"),
            ("DAIBAN_TOKEN_SECRET", "CHANGE-ME"),
            ("DAIBAN_LISTEN", "0.0.0.0:50051"),
        ])
        .expect_err("both are invalid");
        let names: Vec<&str> = err.0.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(names, ["DAIBAN_TOKEN_SECRET", "DAIBAN_API_KEYS"], "{err}");
    }

    #[test]
    fn months_and_nanoseconds_are_rejected() {
        for text in ["10M", "1y", "2months", "1ns", "999us"] {
            assert!(parse_duration(text).is_err(), "{text} was accepted");
        }
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn sms_gateway_url_selects_gateway() {
        let settings = settings(&[("DAIBAN_SMS_GATEWAY_URL", "http://127.0.0.1:9/send")]).unwrap();
        assert_eq!(settings.sms.provider.name(), "gateway");
    }

    #[test]
    fn sms_provider_errors_named() {
        let err = settings(&[("DAIBAN_SMS_PROVIDER", "aliyun")]).unwrap_err();
        assert!(err.0[0].starts_with("DAIBAN_SMS_ACCESS_KEY_ID"), "{err}");
    }
}
