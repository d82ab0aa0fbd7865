//! SMS providers behind `daiban_dispatch::Notifier`: the generic HTTP
//! gateway, Alibaba Cloud SMS and Tencent Cloud SMS, with their settings.
//!
//! **No phone number is logged whole and no credential is logged at all**:
//! errors name the recipient by agent id and masked number, and settings
//! print credentials as `***`.

mod aliyun;
mod gateway;
pub mod inbound;
mod outcome;
mod settings;
mod tencent;

use std::sync::Arc;
use std::time::Duration;

use daiban_dispatch::{LogNotifier, Notifier};
use tracing::info;

pub use aliyun::{AliyunNotifier, rpc_signature};
pub use gateway::GatewayNotifier;
pub use settings::{
    ALIYUN_ENDPOINT, AliyunSettings, GatewaySettings, Provider, Secret, SmsSettings,
    TENCENT_DEFAULT_REGION, TENCENT_ENDPOINT, TemplateCodes, TencentSettings,
};
pub use tencent::{TencentNotifier, authorization as tc3_authorization};

/// Maximum wait for a provider's response. A slower provider counts as a
/// transient failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Failure to set up the HTTP client.
#[derive(Debug)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to build the SMS HTTP client: {}", self.0)
    }
}

impl std::error::Error for ClientError {}

/// Builds the notifier the settings choose. The dispatcher's SMS sender
/// calls it, with retries and spacing per phone.
pub fn notifier(settings: &SmsSettings) -> Result<Arc<dyn Notifier>, ClientError> {
    let client = || {
        reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|err| ClientError(err.to_string()))
    };
    let duty_desk = settings.duty_desk.clone();
    let provider: Arc<dyn Notifier> = match &settings.provider {
        Provider::Log => Arc::new(LogNotifier),
        Provider::Gateway(gateway) => {
            Arc::new(GatewayNotifier::new(client()?, gateway.clone(), duty_desk))
        }
        Provider::Aliyun(aliyun) => {
            Arc::new(AliyunNotifier::new(client()?, aliyun.clone(), duty_desk))
        }
        Provider::Tencent(tencent) => {
            Arc::new(TencentNotifier::new(client()?, tencent.clone(), duty_desk))
        }
    };
    Ok(provider)
}

/// Logs at start-up where SMS go, naming the provider and the endpoint's
/// host but no credential.
pub fn log_settings(settings: &SmsSettings) {
    let desk = if settings.duty_desk.is_some() {
        "sent"
    } else {
        "not sent (DAIBAN_SMS_DUTY_DESK_PHONE unset)"
    };
    match &settings.provider {
        Provider::Log => info!("sms: logged, not sent (DAIBAN_SMS_PROVIDER unset)"),
        Provider::Gateway(gateway) => info!(
            provider = "gateway",
            host = gateway.url.host_str().unwrap_or_default(),
            duty_desk = desk,
            "sms: sent through the HTTP gateway"
        ),
        Provider::Aliyun(aliyun) => info!(
            provider = "aliyun",
            host = aliyun.endpoint.host_str().unwrap_or_default(),
            duty_desk = desk,
            "sms: sent through Alibaba Cloud SMS"
        ),
        Provider::Tencent(tencent) => info!(
            provider = "tencent",
            host = tencent.endpoint.host_str().unwrap_or_default(),
            region = %tencent.region,
            duty_desk = desk,
            "sms: sent through Tencent Cloud SMS"
        ),
    }
}
