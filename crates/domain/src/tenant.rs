use crate::ids::TenantId;
use crate::time::Timestamp;
use crate::version::ApiVersion;

/// A fintech client (the seed's "custodian" / `corporation`). Owns a sandbox and a live
/// environment; every other object belongs to one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The API version requests get when they send no `Cardplane-Version` header.
    pub api_version: ApiVersion,
    /// Requests per second each of its API keys may make; `None`: the server's default.
    pub rate_limit_per_second: Option<u32>,
    pub created_at: Timestamp,
}
