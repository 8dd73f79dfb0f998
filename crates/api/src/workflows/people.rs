//! People and tenants administration, shared by `/ops/operators*`, `/ops/tenants/*` and the
//! console: create a person with a role, change their role / name / disabled flag, reset their
//! credentials, and revoke a tenant's API key. Every change is audited with its before and after.

use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{ApiKeyId, TenantId, UserId};
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::{Action, OperatorRole, Person, Role, SignInGuard, TenantRole, normalize_email};
use cardplane_store::people::UserChange;
use cardplane_store::{Scope, StoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::views::ApiKeyView;
use crate::workflows::admin::{email_taken, new_user};

/// A tenant's keys listed per environment, newest first.
pub const TENANT_KEYS_MAX: u32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePersonRequest {
    #[schema(example = "grace@example.com")]
    pub email: String,
    #[schema(example = "Grace Hopper")]
    pub name: String,
    /// Operators: admin, compliance_officer, operations, support, read_only. Tenant users: owner,
    /// developer, viewer.
    pub role: String,
    /// At least 12 characters; the person should change it after first sign-in.
    pub password: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePersonRequest {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The new password (at least 12 characters), to hand to the person out of band.
    pub password: String,
}

fn parse_user_id(raw: &str) -> ApiResult<UserId> {
    UserId::parse(raw).map_err(|_| ApiError::not_found("user"))
}

/// The roles a person of this kind may hold, as the form and the error message list them.
pub fn role_names(tenant: bool) -> Vec<&'static str> {
    if tenant {
        TenantRole::ALL.iter().map(|r| r.as_str()).collect()
    } else {
        OperatorRole::ALL.iter().map(|r| r.as_str()).collect()
    }
}

fn parse_role(raw: &str, tenant: bool) -> ApiResult<Role> {
    cardplane_store::people::role_from(raw, tenant).ok_or_else(|| {
        ApiError::invalid(
            "parameter_invalid",
            format!("role must be one of {}", role_names(tenant).join(", ")),
        )
        .with_param("role")
    })
}

fn parse_name(raw: &str) -> ApiResult<String> {
    Ok(cardplane_domain::cardholder::parse_name("name", Some(raw))?)
}

/// A new operator (`tenant` None) or tenant user, with the password given.
pub async fn create_person(
    state: &AppState,
    staff: &Staff,
    tenant: Option<&TenantId>,
    req: CreatePersonRequest,
) -> ApiResult<Person> {
    let email = normalize_email(&req.email)
        .map_err(|_| ApiError::invalid("parameter_invalid", "not an email address").with_param("email"))?;
    let role = parse_role(&req.role, tenant.is_some())?;
    let person = Person {
        id: UserId::generate(),
        email,
        name: parse_name(&req.name)?,
        role,
        tenant_id: tenant.cloned(),
        disabled: false,
        mfa_enabled: false,
        guard: SignInGuard::default(),
        created_at: Timestamp::now(),
        last_login_at: None,
    };
    let user = new_user(person, req.password).await?;
    let mut audit = staff.audit("user.created", "user", user.person.id.as_str());
    audit.tenant_id = tenant.map(|t| t.to_string());
    audit.details = serde_json::json!({ "email": user.person.email, "role": role.as_str() });
    state.people.insert_user(&user, &audit).await.map_err(email_taken)?;
    Ok(user.person)
}

/// Changes a person's role, name or disabled flag (never one's own role or access).
pub async fn update_person(
    state: &AppState,
    staff: &Staff,
    target: &Person,
    req: UpdatePersonRequest,
) -> ApiResult<Person> {
    let role = req
        .role
        .as_deref()
        .map(|r| parse_role(r, target.tenant_id.is_some()))
        .transpose()?;
    if target.id == staff.person.id && (role.is_some_and(|r| r != target.role) || req.disabled == Some(true)) {
        return Err(ApiError::conflict(
            "cannot_modify_self",
            "Ask another administrator to change your own role or disable you",
        ));
    }
    let change = UserChange {
        role,
        disabled: req.disabled,
        name: req.name.as_deref().map(parse_name).transpose()?,
    };
    let mut audit = staff.audit("user.updated", "user", target.id.as_str());
    audit.tenant_id = target.tenant_id.as_ref().map(|t| t.to_string());
    audit.details = serde_json::json!({
        "role": role.map(|r| serde_json::json!({ "from": target.role.as_str(), "to": r.as_str() })),
        "disabled": req.disabled.map(|d| serde_json::json!({ "from": target.disabled, "to": d })),
        "name": change.name.as_ref().map(|n| serde_json::json!({ "from": target.name, "to": n })),
    });
    Ok(state
        .people
        .update_user(&target.id, &change, Timestamp::now(), &audit)
        .await?)
}

/// A person locked out or without their second factor: new password, lock lifted, TOTP and
/// recovery codes removed (they enrol again at next sign-in), sessions ended.
pub async fn reset_person(state: &AppState, staff: &Staff, target: &Person, req: ResetRequest) -> ApiResult<Person> {
    if target.id == staff.person.id {
        return Err(ApiError::conflict(
            "cannot_modify_self",
            "Change your own password with POST /ops/password",
        ));
    }
    let user = new_user(target.clone(), req.password).await?;
    let mut audit = staff.audit("user.credentials_reset", "user", target.id.as_str());
    audit.tenant_id = target.tenant_id.as_ref().map(|t| t.to_string());
    state
        .people
        .reset_credentials(&target.id, &user.password_hash, Timestamp::now(), &audit)
        .await?;
    Ok(state.people.get_user(&target.id).await?.person)
}

pub async fn load_operator(state: &AppState, id: &str) -> ApiResult<Person> {
    let id = parse_user_id(id)?;
    match state.people.get_user(&id).await {
        Ok(u) if u.person.tenant_id.is_none() => Ok(u.person),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("operator")),
        Err(e) => Err(e.into()),
    }
}

/// A tenant this person may do `action` in.
pub async fn load_tenant(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<TenantId> {
    let id = TenantId::parse(raw).map_err(|_| ApiError::not_found("tenant"))?;
    staff.require_in(action, &id, "tenant")?;
    match state.tenants.get_tenant(&id).await {
        Ok(_) => Ok(id),
        Err(StoreError::NotFound) => Err(ApiError::not_found("tenant")),
        Err(e) => Err(e.into()),
    }
}

pub async fn load_tenant_user(state: &AppState, tenant: &TenantId, raw: &str) -> ApiResult<Person> {
    let user = parse_user_id(raw)?;
    match state.people.get_user(&user).await {
        Ok(u) if u.person.tenant_id.as_ref() == Some(tenant) => Ok(u.person),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("user")),
        Err(e) => Err(e.into()),
    }
}

/// The tenant's keys in both environments, newest first (at most `TENANT_KEYS_MAX` each).
pub async fn tenant_api_keys(state: &AppState, tenant_id: &TenantId) -> ApiResult<Vec<ApiKey>> {
    let mut api_keys = Vec::new();
    for environment in [Environment::Sandbox, Environment::Live] {
        let scope = Scope {
            tenant_id: tenant_id.clone(),
            environment,
        };
        let page = PageRequest {
            limit: TENANT_KEYS_MAX,
            cursor: Cursor::Newest,
        };
        api_keys.extend(state.api_keys.list_api_keys(&scope, &page).await?.items);
    }
    Ok(api_keys)
}

/// Revokes an active key of the tenant (with `api_key.revoked` event and webhook), audited
/// with the reason when one is given.
pub async fn revoke_tenant_api_key(
    state: &AppState,
    staff: &Staff,
    tenant_id: &TenantId,
    raw_key: &str,
    reason: Option<&str>,
) -> ApiResult<ApiKey> {
    let key_id = ApiKeyId::parse(raw_key).map_err(|_| ApiError::not_found("api_key"))?;
    let key: ApiKey = match state.api_keys.find_api_key(&key_id).await {
        Ok(k) if k.tenant_id == *tenant_id && k.is_active() => k,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("api_key")),
        Err(e) => return Err(e.into()),
    };
    let scope = Scope {
        tenant_id: tenant_id.clone(),
        environment: key.environment,
    };
    let now = Timestamp::now();
    let mut revoked = key.clone();
    revoked.revoked_at = Some(now);
    let event = Event::new(
        tenant_id,
        key.environment,
        EventType::ApiKeyRevoked,
        key.id.as_str(),
        serde_json::to_value(ApiKeyView::from(&revoked)).unwrap_or_default(),
        now,
    );
    state
        .api_keys
        .revoke_api_key(&scope, &key.id, now, &[event], None)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("api_key"),
            other => other.into(),
        })?;
    let mut audit = staff.audit("api_key.revoked", "api_key", key.id.as_str());
    audit.tenant_id = Some(tenant_id.to_string());
    audit.environment = Some(key.environment.as_str().to_owned());
    if let Some(reason) = reason {
        audit.details = serde_json::json!({ "reason": reason, "via": "console" });
    }
    state.audit.append_audit(&audit).await?;
    Ok(revoked)
}
