//! SMS settings from environment variables, each checked and reported by
//! name. Credentials never appear in `Debug` output or in messages.

use std::collections::HashMap;
use std::fmt;

use daiban_dispatch::Template;
use daiban_domain::PhoneNumber;
use reqwest::Url;

/// Alibaba Cloud's SMS endpoint, which serves every mainland region.
pub const ALIYUN_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com/";
/// Tencent Cloud's SMS endpoint.
pub const TENCENT_ENDPOINT: &str = "https://sms.tencentcloudapi.com/";
/// The region Tencent Cloud's SMS API is called in when none is set.
pub const TENCENT_DEFAULT_REGION: &str = "ap-guangzhou";

/// A credential, shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Each template's code as the provider approved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCodes(HashMap<Template, String>);

impl TemplateCodes {
    /// Parses `grid_offer=SMS_1,county_offer=SMS_2,…`. Every template of
    /// `Template::ALL` needs a code.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut codes = HashMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, code)) = pair.split_once('=') else {
                return Err(format!("expected name=code, got {pair:?}"));
            };
            let (name, code) = (name.trim(), code.trim());
            let Some(template) = Template::ALL.into_iter().find(|t| t.name() == name) else {
                return Err(format!(
                    "unknown template {name:?}; expected one of {}",
                    template_names()
                ));
            };
            if code.is_empty() {
                return Err(format!("template {name} has an empty code"));
            }
            codes.insert(template, code.to_owned());
        }
        let missing: Vec<&str> = Template::ALL
            .into_iter()
            .filter(|t| !codes.contains_key(t))
            .map(Template::name)
            .collect();
        if !missing.is_empty() {
            return Err(format!("missing a code for {}", missing.join(", ")));
        }
        Ok(Self(codes))
    }

    pub fn code(&self, template: Template) -> &str {
        // `parse` checked that every template has a code.
        self.0
            .get(&template)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

fn template_names() -> String {
    Template::ALL.map(Template::name).join(", ")
}

/// A JSON POST to an in-house gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    pub url: Url,
}

/// Alibaba Cloud SMS (`SendSms`, API version 2017-05-25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliyunSettings {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub sign_name: String,
    pub templates: TemplateCodes,
    pub endpoint: Url,
}

/// Tencent Cloud SMS (`SendSms`, API version 2021-01-11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TencentSettings {
    pub secret_id: String,
    pub secret_key: Secret,
    pub sdk_app_id: String,
    pub sign_name: String,
    pub templates: TemplateCodes,
    pub region: String,
    pub endpoint: Url,
}

/// The destination of SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// Written to the log at debug level, not sent.
    Log,
    Gateway(GatewaySettings),
    Aliyun(AliyunSettings),
    Tencent(TencentSettings),
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Gateway(_) => "gateway",
            Self::Aliyun(_) => "aliyun",
            Self::Tencent(_) => "tencent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSettings {
    pub provider: Provider,
    /// The duty desk's mobile number; without one, escalation notes are
    /// only logged.
    pub duty_desk: Option<PhoneNumber>,
    /// The shared secret that the providers' webhooks present, in their
    /// URL path or the `X-Daiban-Webhook-Secret` header.
    pub webhook_secret: Option<Secret>,
}

/// Shortest webhook secret accepted, in characters: it travels in URLs
/// that providers' consoles show, so it must not be guessable.
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

impl Default for SmsSettings {
    fn default() -> Self {
        Self {
            provider: Provider::Log,
            duty_desk: None,
            webhook_secret: None,
        }
    }
}

impl SmsSettings {
    /// Reads the `DAIBAN_SMS_*` variables through `get`, which returns a
    /// set, non-empty value. Each invalid variable adds one line, naming
    /// it, to `errors`.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>, errors: &mut Vec<String>) -> Self {
        let gateway_url = get("DAIBAN_SMS_GATEWAY_URL");
        let provider_name = get("DAIBAN_SMS_PROVIDER")
            .map(|name| name.trim().to_ascii_lowercase())
            .unwrap_or_else(|| match gateway_url {
                Some(_) => "gateway".to_owned(),
                None => "log".to_owned(),
            });

        let required = |name: &str, errors: &mut Vec<String>| {
            get(name).map(|v| v.trim().to_owned()).unwrap_or_else(|| {
                errors.push(format!(
                    "{name}: required when DAIBAN_SMS_PROVIDER is {provider_name}"
                ));
                String::new()
            })
        };
        let provider = match provider_name.as_str() {
            "log" => Provider::Log,
            "gateway" => match gateway_url.as_deref().map(parse_url) {
                Some(Ok(url)) => Provider::Gateway(GatewaySettings { url }),
                Some(Err(reason)) => {
                    errors.push(format!("DAIBAN_SMS_GATEWAY_URL: {reason}"));
                    Provider::Log
                }
                None => {
                    errors.push("DAIBAN_SMS_GATEWAY_URL: required when DAIBAN_SMS_PROVIDER is gateway; give the gateway's http:// or https:// URL".into());
                    Provider::Log
                }
            },
            "aliyun" => Provider::Aliyun(AliyunSettings {
                access_key_id: required("DAIBAN_SMS_ACCESS_KEY_ID", errors),
                access_key_secret: Secret(required("DAIBAN_SMS_ACCESS_KEY_SECRET", errors)),
                sign_name: required("DAIBAN_SMS_SIGN_NAME", errors),
                templates: templates(&required("DAIBAN_SMS_TEMPLATES", errors), errors),
                endpoint: endpoint(get, ALIYUN_ENDPOINT, errors),
            }),
            "tencent" => Provider::Tencent(TencentSettings {
                secret_id: required("DAIBAN_SMS_ACCESS_KEY_ID", errors),
                secret_key: Secret(required("DAIBAN_SMS_ACCESS_KEY_SECRET", errors)),
                sdk_app_id: required("DAIBAN_SMS_APP_ID", errors),
                sign_name: required("DAIBAN_SMS_SIGN_NAME", errors),
                templates: templates(&required("DAIBAN_SMS_TEMPLATES", errors), errors),
                region: get("DAIBAN_SMS_REGION")
                    .map(|r| r.trim().to_owned())
                    .unwrap_or_else(|| TENCENT_DEFAULT_REGION.to_owned()),
                endpoint: endpoint(get, TENCENT_ENDPOINT, errors),
            }),
            other => {
                errors.push(format!(
                    "DAIBAN_SMS_PROVIDER: expected log, gateway, aliyun or tencent, got {other:?}"
                ));
                Provider::Log
            }
        };
        if gateway_url.is_some() && !matches!(provider, Provider::Gateway(_)) {
            errors.push(format!(
                "DAIBAN_SMS_GATEWAY_URL: set, but DAIBAN_SMS_PROVIDER is {provider_name}; unset one of them"
            ));
        }

        let duty_desk = get("DAIBAN_SMS_DUTY_DESK_PHONE").and_then(|text| {
            PhoneNumber::parse(&text)
                .map_err(|err| errors.push(format!("DAIBAN_SMS_DUTY_DESK_PHONE: {err}")))
                .ok()
        });
        let webhook_secret = get("DAIBAN_SMS_WEBHOOK_SECRET").and_then(|secret| {
            let secret = secret.trim().to_owned();
            let valid = secret.chars().count() >= MIN_WEBHOOK_SECRET_CHARS
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if valid {
                Some(Secret(secret))
            } else {
                errors.push(format!(
                    "DAIBAN_SMS_WEBHOOK_SECRET: expected at least {MIN_WEBHOOK_SECRET_CHARS} letters, digits, '-' or '_', as `openssl rand -hex 16` prints"
                ));
                None
            }
        });
        Self {
            provider,
            duty_desk,
            webhook_secret,
        }
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|err| format!("invalid URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "expected an http:// or https:// URL, got scheme {:?}",
            url.scheme()
        ));
    }
    Ok(url)
}

fn templates(text: &str, errors: &mut Vec<String>) -> TemplateCodes {
    if text.is_empty() {
        // Reported as missing already.
        return TemplateCodes(HashMap::new());
    }
    TemplateCodes::parse(text).unwrap_or_else(|reason| {
        errors.push(format!("DAIBAN_SMS_TEMPLATES: {reason}"));
        TemplateCodes(HashMap::new())
    })
}

fn endpoint(get: &dyn Fn(&str) -> Option<String>, default: &str, errors: &mut Vec<String>) -> Url {
    let default = Url::parse(default).expect("the default endpoints are valid URLs");
    match get("DAIBAN_SMS_ENDPOINT") {
        Some(text) => parse_url(&text).unwrap_or_else(|reason| {
            errors.push(format!("DAIBAN_SMS_ENDPOINT: {reason}"));
            default
        }),
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<SmsSettings, Vec<String>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |name: &str| vars.get(name).cloned();
        let mut errors = Vec::new();
        let settings = SmsSettings::from_lookup(&get, &mut errors);
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    const TEMPLATES: &str = "grid_offer=SMS_1, county_offer=SMS_2, escalation=SMS_3, \
        claim_won=SMS_4, claim_lost=SMS_5, reply_help=SMS_6, reply_stranger=SMS_7";

    #[test]
    fn unset_logs_sms() {
        assert_eq!(read(&[]).unwrap().provider, Provider::Log);
    }

    #[test]
    fn gateway_url_alone_selects_gateway() {
        let settings = read(&[("DAIBAN_SMS_GATEWAY_URL", "http://127.0.0.1:9/sms")]).unwrap();
        assert_eq!(settings.provider.name(), "gateway");
    }

    #[test]
    fn aliyun_needs_credentials_by_name() {
        let errors = read(&[("DAIBAN_SMS_PROVIDER", "aliyun")]).unwrap_err();
        for name in [
            "DAIBAN_SMS_ACCESS_KEY_ID",
            "DAIBAN_SMS_ACCESS_KEY_SECRET",
            "DAIBAN_SMS_SIGN_NAME",
            "DAIBAN_SMS_TEMPLATES",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(name)),
                "{name} not reported: {errors:?}"
            );
        }
    }

    #[test]
    fn tencent_settings_read_and_secret_hidden() {
        let settings = read(&[
            ("DAIBAN_SMS_PROVIDER", "tencent"),
            ("DAIBAN_SMS_ACCESS_KEY_ID", "AKIDexample"),
            ("DAIBAN_SMS_ACCESS_KEY_SECRET", "very-secret-key"),
            ("DAIBAN_SMS_APP_ID", "1400000000"),
            ("DAIBAN_SMS_SIGN_NAME", "蓝山县政务服务"),
            ("DAIBAN_SMS_TEMPLATES", TEMPLATES),
        ])
        .unwrap();
        let Provider::Tencent(tencent) = &settings.provider else {
            panic!("expected tencent, got {:?}", settings.provider);
        };
        assert_eq!(tencent.region, TENCENT_DEFAULT_REGION);
        assert_eq!(tencent.templates.code(Template::CountyOffer), "SMS_2");
        assert!(!format!("{settings:?}").contains("very-secret-key"));
    }

    #[test]
    fn incomplete_templates_rejected() {
        let errors = TemplateCodes::parse("grid_offer=SMS_1").unwrap_err();
        assert!(errors.contains("county_offer"), "{errors}");
        let errors = TemplateCodes::parse("offer=SMS_1").unwrap_err();
        assert!(errors.contains("unknown template"), "{errors}");
    }

    #[test]
    fn gateway_url_with_other_provider_rejected() {
        let errors = read(&[
            ("DAIBAN_SMS_PROVIDER", "log"),
            ("DAIBAN_SMS_GATEWAY_URL", "http://127.0.0.1:9/sms"),
        ])
        .unwrap_err();
        assert!(
            errors[0].starts_with("DAIBAN_SMS_GATEWAY_URL"),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_provider_rejected() {
        let errors = read(&[("DAIBAN_SMS_PROVIDER", "smtp")]).unwrap_err();
        assert!(errors[0].starts_with("DAIBAN_SMS_PROVIDER"), "{errors:?}");
    }
}
