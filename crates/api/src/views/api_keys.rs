//! Response shapes: API keys.

use cardplane_domain::api_key::ApiKey;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub livemode: bool,
    pub name: String,
    /// Extra rights beyond the default API: `reveal` (card numbers).
    pub permissions: Vec<String>,
    pub secret_last4: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.to_string(),
            livemode: k.environment.livemode(),
            name: k.name.clone(),
            permissions: k.permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            secret_last4: k.secret_last4.clone(),
            created_at: k.created_at.to_rfc3339(),
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyEnvelope {
    pub api_key: ApiKeyView,
}

/// Returned once, at creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub api_key: ApiKeyView,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyEnvelope>,
    pub has_more: bool,
    pub total: i64,
}
