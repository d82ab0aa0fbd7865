//! The generic HTTP gateway: one JSON POST per SMS to
//! `DAIBAN_SMS_GATEWAY_URL`, for an in-house gateway that holds the
//! provider contract itself.
//!
//! The body is
//! `{"phone": "13812341234", "text": "…", "template": "grid_offer",
//! "params": {"number": "…", …}, "order_id": "431127-00000001",
//! "out_id": "431127-00000001.submitted.A0001"}`; `order_id` and `out_id`
//! are empty for an answer to a reply. A 2xx status means sent, and a JSON
//! body `{"id": "…"}` names the gateway's message id; 5xx, 408 and 429 are
//! retried; any other status is final.

use async_trait::async_trait;
use daiban_dispatch::{Notifier, NotifyError, Sent, Sms};
use daiban_domain::PhoneNumber;
use serde::{Deserialize, Serialize};

use crate::outcome::{self, Target};
use crate::settings::GatewaySettings;

#[derive(Debug, Serialize)]
struct GatewayRequest<'a> {
    phone: &'a str,
    text: String,
    template: &'static str,
    params: serde_json::Map<String, serde_json::Value>,
    order_id: String,
    out_id: String,
}

#[derive(Debug, Deserialize)]
struct GatewayResponse {
    #[serde(default)]
    id: Option<String>,
}

pub struct GatewayNotifier {
    client: reqwest::Client,
    settings: GatewaySettings,
    duty_desk: Option<PhoneNumber>,
}

impl GatewayNotifier {
    pub fn new(
        client: reqwest::Client,
        settings: GatewaySettings,
        duty_desk: Option<PhoneNumber>,
    ) -> Self {
        Self {
            client,
            settings,
            duty_desk,
        }
    }
}

#[async_trait]
impl Notifier for GatewayNotifier {
    async fn send(&self, sms: Sms) -> Result<Sent, NotifyError> {
        let phone = outcome::phone(&sms, self.duty_desk.as_ref())?;
        let target = Target::new(&sms);
        let request = GatewayRequest {
            phone: phone.as_str(),
            text: sms.message.text(),
            template: sms.message.template.name(),
            params: sms
                .message
                .params
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
                .collect(),
            order_id: sms.order().map(ToString::to_string).unwrap_or_default(),
            out_id: sms.out_id(),
        };
        let response = self
            .client
            .post(self.settings.url.clone())
            .json(&request)
            .send()
            .await
            .map_err(|err| target.transport(err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(target.status(status));
        }
        // The gateway may name its message id for delivery reports.
        let provider_id = response
            .json::<GatewayResponse>()
            .await
            .ok()
            .and_then(|body| body.id)
            .filter(|id| !id.is_empty());
        Ok(Sent { provider_id })
    }
}
