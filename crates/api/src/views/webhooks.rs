//! Response shapes: webhook endpoints.

use cardplane_domain::Timestamp;
use cardplane_domain::webhook::WebhookEndpoint;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    #[schema(example = "we_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    #[schema(example = "https://example.com/webhooks/cardplane")]
    pub url: String,
    pub description: Option<String>,
    /// Event types delivered to this endpoint; `["*"]` is every type.
    #[schema(example = json!(["*"]))]
    pub enabled_events: Vec<String>,
    pub enabled: bool,
    /// Why it is disabled: `manual`, `gone` (it answered 410) or `failing` (every attempt failed
    /// for the configured period). Null when enabled.
    pub disabled_reason: Option<String>,
    /// While a secret rotation overlaps: when the previous secret stops signing.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&WebhookEndpoint> for EndpointView {
    fn from(e: &WebhookEndpoint) -> Self {
        let now = Timestamp::now();
        EndpointView {
            id: e.id.to_string(),
            livemode: e.environment.livemode(),
            url: e.url.clone(),
            description: e.description.clone(),
            enabled_events: e.enabled_events.names(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.map(|r| r.as_str().to_owned()),
            previous_secret_expires_at: e
                .previous_secret_expires_at
                .filter(|_| e.rotation_active(now))
                .map(|t| t.to_rfc3339()),
            created_at: e.created_at.to_rfc3339(),
            updated_at: e.updated_at.to_rfc3339(),
        }
    }
}
