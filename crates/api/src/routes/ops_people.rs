//! `/ops/operators`, `/ops/tenants`, a tenant's users and API keys. Who may do what is the
//! domain's permission matrix; every change is audited with its before and after.

use axum::extract::{Path, State};
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{ApiKeyId, TenantId, UserId};
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::{Action, OperatorRole, Person, Role, SignInGuard, TenantRole, normalize_email};
use cardplane_store::people::UserChange;
use cardplane_store::{Scope, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::ApiKeyView;
use crate::views::PersonView;
use crate::workflows::admin::{email_taken, new_user};

#[derive(Debug, Serialize, ToSchema)]
pub struct PeopleList {
    pub users: Vec<PersonView>,
}

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePersonRequest {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub name: Option<String>,
}

fn parse_user_id(raw: &str) -> ApiResult<UserId> {
    UserId::parse(raw).map_err(|_| ApiError::not_found("user"))
}

fn parse_tenant_id(raw: &str) -> ApiResult<TenantId> {
    TenantId::parse(raw).map_err(|_| ApiError::not_found("tenant"))
}

fn parse_role(raw: &str, tenant: bool) -> ApiResult<Role> {
    cardplane_store::people::role_from(raw, tenant).ok_or_else(|| {
        let known: Vec<&str> = if tenant {
            TenantRole::ALL.iter().map(|r| r.as_str()).collect()
        } else {
            OperatorRole::ALL.iter().map(|r| r.as_str()).collect()
        };
        ApiError::invalid("parameter_invalid", format!("role must be one of {}", known.join(", "))).with_param("role")
    })
}

fn parse_name(raw: &str) -> ApiResult<String> {
    Ok(cardplane_domain::cardholder::parse_name("name", Some(raw))?)
}

async fn create_person(
    state: &AppState,
    staff: &Staff,
    tenant: Option<&TenantId>,
    req: CreatePersonRequest,
) -> ApiResult<Reply> {
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
    Reply::created(&PersonView::from(&user.person))
}

async fn update_person(state: &AppState, staff: &Staff, target: &Person, req: UpdatePersonRequest) -> ApiResult<Reply> {
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
    let person = state
        .people
        .update_user(&target.id, &change, Timestamp::now(), &audit)
        .await?;
    Reply::ok(&PersonView::from(&person))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The new password (at least 12 characters), to hand to the person out of band.
    pub password: String,
}

/// A person locked out or without their second factor: new password, lock lifted, TOTP and
/// recovery codes removed (they enrol again at next sign-in), sessions ended.
async fn reset_person(state: &AppState, staff: &Staff, target: &Person, req: ResetRequest) -> ApiResult<Reply> {
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
    let reset = state.people.get_user(&target.id).await?;
    Reply::ok(&PersonView::from(&reset.person))
}

#[utoipa::path(
    post, path = "/ops/operators/{user_id}/reset", tag = "Operations console",
    params(("user_id" = String, Path)),
    request_body = ResetRequest,
    responses(
        (status = 200, body = PersonView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn reset_operator(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ResetRequest>,
) -> ApiResult<Reply> {
    staff.require(Action::ManageOperators)?;
    let target = load_operator(&state, &id).await?;
    reset_person(&state, &staff, &target, req).await
}

#[utoipa::path(
    get, path = "/ops/operators", tag = "Operations console",
    responses((status = 200, body = PeopleList), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_operators(State(state): State<AppState>, staff: Staff) -> ApiResult<Reply> {
    staff.require(Action::ViewOperators)?;
    let users = state.people.list_users(None).await?;
    Reply::ok(&PeopleList {
        users: users.iter().map(PersonView::from).collect(),
    })
}

#[utoipa::path(
    post, path = "/ops/operators", tag = "Operations console",
    request_body = CreatePersonRequest,
    responses(
        (status = 201, body = PersonView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn create_operator(
    State(state): State<AppState>,
    staff: Staff,
    JsonBody(req): JsonBody<CreatePersonRequest>,
) -> ApiResult<Reply> {
    staff.require(Action::ManageOperators)?;
    create_person(&state, &staff, None, req).await
}

async fn load_operator(state: &AppState, id: &str) -> ApiResult<Person> {
    let id = parse_user_id(id)?;
    match state.people.get_user(&id).await {
        Ok(u) if u.person.tenant_id.is_none() => Ok(u.person),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("operator")),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    post, path = "/ops/operators/{user_id}", tag = "Operations console",
    params(("user_id" = String, Path)),
    request_body = UpdatePersonRequest,
    responses(
        (status = 200, body = PersonView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn update_operator(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdatePersonRequest>,
) -> ApiResult<Reply> {
    staff.require(Action::ManageOperators)?;
    let target = load_operator(&state, &id).await?;
    update_person(&state, &staff, &target, req).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub api_version: String,
    pub rate_limit_per_second: Option<u32>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

fn tenant_view(t: &cardplane_domain::tenant::Tenant) -> TenantView {
    TenantView {
        id: t.id.to_string(),
        name: t.name.clone(),
        api_version: t.api_version.as_str().to_owned(),
        rate_limit_per_second: t.rate_limit_per_second,
        created_at: t.created_at.to_rfc3339(),
    }
}

#[utoipa::path(
    get, path = "/ops/tenants", tag = "Operations console",
    responses((status = 200, body = TenantList), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_tenants(State(state): State<AppState>, staff: Staff) -> ApiResult<Reply> {
    staff.require(Action::ViewTenants)?;
    let tenants = state.tenants.list_tenants().await?;
    Reply::ok(&TenantList {
        tenants: tenants
            .iter()
            .filter(|t| staff.person.reaches(&t.id))
            .map(tenant_view)
            .collect(),
    })
}

async fn load_tenant(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<TenantId> {
    let id = parse_tenant_id(raw)?;
    staff.require_in(action, &id, "tenant")?;
    match state.tenants.get_tenant(&id).await {
        Ok(_) => Ok(id),
        Err(StoreError::NotFound) => Err(ApiError::not_found("tenant")),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get, path = "/ops/tenants/{tenant_id}", tag = "Operations console",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantView), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn get_tenant(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = load_tenant(&state, &staff, Action::ViewTenants, &id).await?;
    Reply::ok(&tenant_view(&state.tenants.get_tenant(&id).await?))
}

#[utoipa::path(
    get, path = "/ops/tenants/{tenant_id}/users", tag = "Operations console",
    params(("tenant_id" = String, Path)),
    responses((status = 200, body = PeopleList), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_tenant_users(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Reply> {
    let id = load_tenant(&state, &staff, Action::ViewTenantUsers, &id).await?;
    let users = state.people.list_users(Some(&id)).await?;
    Reply::ok(&PeopleList {
        users: users.iter().map(PersonView::from).collect(),
    })
}

#[utoipa::path(
    post, path = "/ops/tenants/{tenant_id}/users", tag = "Operations console",
    params(("tenant_id" = String, Path)),
    request_body = CreatePersonRequest,
    responses(
        (status = 201, body = PersonView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn create_tenant_user(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CreatePersonRequest>,
) -> ApiResult<Reply> {
    let id = load_tenant(&state, &staff, Action::ManageTenantUsers, &id).await?;
    create_person(&state, &staff, Some(&id), req).await
}

#[utoipa::path(
    post, path = "/ops/tenants/{tenant_id}/users/{user_id}", tag = "Operations console",
    params(("tenant_id" = String, Path), ("user_id" = String, Path)),
    request_body = UpdatePersonRequest,
    responses(
        (status = 200, body = PersonView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn update_tenant_user(
    State(state): State<AppState>,
    staff: Staff,
    Path((tenant, user)): Path<(String, String)>,
    JsonBody(req): JsonBody<UpdatePersonRequest>,
) -> ApiResult<Reply> {
    let tenant = load_tenant(&state, &staff, Action::ManageTenantUsers, &tenant).await?;
    let user = parse_user_id(&user)?;
    let target = match state.people.get_user(&user).await {
        Ok(u) if u.person.tenant_id.as_ref() == Some(&tenant) => u.person,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::not_found("user")),
        Err(e) => return Err(e.into()),
    };
    update_person(&state, &staff, &target, req).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantApiKeys {
    pub api_keys: Vec<ApiKeyView>,
}

#[utoipa::path(
    get, path = "/ops/tenants/{tenant_id}/api_keys", tag = "Operations console",
    params(("tenant_id" = String, Path)),
    responses((status = 200, description = "Both environments, newest first (at most 100 each)", body = TenantApiKeys), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_tenant_api_keys(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Reply> {
    let tenant_id = load_tenant(&state, &staff, Action::ViewApiKeys, &id).await?;
    let mut api_keys = Vec::new();
    for environment in [Environment::Sandbox, Environment::Live] {
        let scope = Scope {
            tenant_id: tenant_id.clone(),
            environment,
        };
        let page = PageRequest {
            limit: 100,
            cursor: Cursor::Newest,
        };
        let keys = state.api_keys.list_api_keys(&scope, &page).await?;
        api_keys.extend(keys.items.iter().map(ApiKeyView::from));
    }
    Reply::ok(&TenantApiKeys { api_keys })
}

#[utoipa::path(
    post, path = "/ops/tenants/{tenant_id}/api_keys/{api_key_id}/revoke", tag = "Operations console",
    params(("tenant_id" = String, Path), ("api_key_id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn revoke_tenant_api_key(
    State(state): State<AppState>,
    staff: Staff,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<Reply> {
    let tenant_id = load_tenant(&state, &staff, Action::ManageApiKeys, &tenant).await?;
    let key_id = ApiKeyId::parse(&key).map_err(|_| ApiError::not_found("api_key"))?;
    let key: ApiKey = match state.api_keys.find_api_key(&key_id).await {
        Ok(k) if k.tenant_id == tenant_id && k.is_active() => k,
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
        &tenant_id,
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
    state.audit.append_audit(&audit).await?;
    Reply::ok(&ApiKeyView::from(&revoked))
}
