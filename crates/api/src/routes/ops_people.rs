//! `/ops/operators`, `/ops/tenants`, a tenant's users and API keys. Who may do what is the
//! domain's permission matrix; every change is audited with its before and after.

use axum::extract::{Path, State};
use cardplane_domain::people::Action;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::ApiResult;
use crate::http::extract::JsonBody;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::ApiKeyView;
use crate::views::PersonView;
pub use crate::workflows::people::{CreatePersonRequest, ResetRequest, UpdatePersonRequest};
use crate::workflows::people::{
    create_person, load_operator, load_tenant, load_tenant_user, reset_person, revoke_tenant_api_key as revoke,
    tenant_api_keys, update_person,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct PeopleList {
    pub users: Vec<PersonView>,
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
    Reply::ok(&PersonView::from(&reset_person(&state, &staff, &target, req).await?))
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
    Reply::created(&PersonView::from(&create_person(&state, &staff, None, req).await?))
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
    Reply::ok(&PersonView::from(&update_person(&state, &staff, &target, req).await?))
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
    Reply::created(&PersonView::from(&create_person(&state, &staff, Some(&id), req).await?))
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
    let target = load_tenant_user(&state, &tenant, &user).await?;
    Reply::ok(&PersonView::from(&update_person(&state, &staff, &target, req).await?))
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
    let keys = tenant_api_keys(&state, &tenant_id).await?;
    let api_keys = keys.iter().map(ApiKeyView::from).collect();
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
    let revoked = revoke(&state, &staff, &tenant_id, &key, None).await?;
    Reply::ok(&ApiKeyView::from(&revoked))
}
