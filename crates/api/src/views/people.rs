//! Response shapes: people (operators and tenant users) as `/ops` shows them.

use cardplane_domain::Timestamp;
use cardplane_domain::people::Person;
use serde::Serialize;
use utoipa::ToSchema;

/// A person, as `/ops` shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    pub id: String,
    pub email: String,
    pub name: String,
    /// `operator` or `tenant_user`.
    pub kind: &'static str,
    pub role: &'static str,
    pub tenant_id: Option<String>,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

impl From<&Person> for PersonView {
    fn from(p: &Person) -> Self {
        PersonView {
            id: p.id.to_string(),
            email: p.email.clone(),
            name: p.name.clone(),
            kind: if p.role.is_operator() {
                "operator"
            } else {
                "tenant_user"
            },
            role: p.role.as_str(),
            tenant_id: p.tenant_id.as_ref().map(|t| t.to_string()),
            disabled: p.disabled,
            mfa_enabled: p.mfa_enabled,
            locked_until: p.guard.locked_at(Timestamp::now()).map(|t| t.to_rfc3339()),
            created_at: p.created_at.to_rfc3339(),
            last_login_at: p.last_login_at.map(|t| t.to_rfc3339()),
        }
    }
}
