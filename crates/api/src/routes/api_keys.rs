//! `/api_keys`: list, create and revoke the keys of the caller's tenant and environment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::{ApiKey, Permission};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::ApiKeyId;
use cardplane_store::StoreError;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{ApiKeyCreated, ApiKeyEnvelope, ApiKeyList, ApiKeyView, page_items};

const KEY_NAME_LEN_MAX: usize = 100;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(example = "Backend service")]
    pub name: Option<String>,
    /// Extra rights; a key can only grant rights it holds itself. Known: `reveal`.
    pub permissions: Option<Vec<String>>,
}

fn parse_key_id(raw: &str) -> ApiResult<ApiKeyId> {
    ApiKeyId::parse(raw).map_err(|_| ApiError::not_found("api_key"))
}

fn key_event(ctx: &Ctx, kind: EventType, key: &ApiKey, now: Timestamp) -> Event {
    let data = serde_json::to_value(ApiKeyView::from(key)).unwrap_or_default();
    Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        kind,
        key.id.as_str(),
        data,
        now,
    )
}

#[utoipa::path(
    get, path = "/api_keys", tag = "API keys",
    params(ListParams),
    responses((status = 200, body = ApiKeyList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_api_keys(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| ApiKeyId::parse(id).is_ok())?;
    let page = state.api_keys.list_api_keys(&ctx.scope, &page).await?;
    let (api_keys, has_more, total) = page_items(&page, |k| ApiKeyEnvelope { api_key: k.into() });
    Reply::ok(&ApiKeyList {
        api_keys,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/api_keys/{api_key_id}", tag = "API keys",
    params(("api_key_id" = String, Path)),
    responses((status = 200, body = ApiKeyEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_api_key(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_key_id(&id)?;
    let key = state.api_keys.get_api_key(&ctx.scope, &id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("api_key"),
        other => other.into(),
    })?;
    Reply::ok(&ApiKeyEnvelope { api_key: (&key).into() })
}

#[utoipa::path(
    post, path = "/api_keys", tag = "API keys",
    request_body = CreateApiKeyRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "The secret is shown this once", body = ApiKeyCreated),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CreateApiKeyRequest>,
) -> ApiResult<Reply> {
    let name = cardplane_domain::cardholder::parse_name("name", req.name.as_deref())
        .map_err(ApiError::from)
        .and_then(|n| {
            if n.chars().count() > KEY_NAME_LEN_MAX {
                Err(ApiError::invalid("parameter_invalid", "name is too long").with_param("name"))
            } else {
                Ok(n)
            }
        })?;
    let mut permissions = Vec::new();
    for (i, raw) in req.permissions.unwrap_or_default().iter().enumerate() {
        let p = Permission::parse(raw).ok_or_else(|| {
            ApiError::invalid("parameter_invalid", format!("unknown permission `{raw}`"))
                .with_param(format!("permissions[{i}]"))
        })?;
        if !ctx.key.has(p) {
            return Err(ApiError::forbidden(
                "permission_not_held",
                format!("this key cannot grant `{raw}`: it does not hold it"),
            )
            .with_param(format!("permissions[{i}]")));
        }
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    let now = Timestamp::now();
    let (key, secret) = ApiKey::issue(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        name,
        permissions,
        &state.pepper,
        now,
    );
    let body = render(&ApiKeyCreated {
        api_key: (&key).into(),
        secret: secret.expose().to_owned(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let events = [key_event(&ctx, EventType::ApiKeyCreated, &key, now)];
    state
        .api_keys
        .insert_api_key(&ctx.scope, &key, &events, response.as_ref(), now)
        .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    post, path = "/api_keys/{api_key_id}/revoke", tag = "API keys",
    params(("api_key_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "Revoked; requests with it fail at once", body = ApiKeyEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn revoke_api_key(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_key_id(&id)?;
    let key = state.api_keys.get_api_key(&ctx.scope, &id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("api_key"),
        other => other.into(),
    })?;
    if !key.is_active() {
        return Err(ApiError::conflict(
            "api_key_already_revoked",
            "This API key is already revoked",
        ));
    }
    let now = Timestamp::now();
    let revoked = ApiKey {
        revoked_at: Some(now),
        ..key
    };
    let body = render(&ApiKeyEnvelope {
        api_key: (&revoked).into(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let events = [key_event(&ctx, EventType::ApiKeyRevoked, &revoked, now)];
    match state
        .api_keys
        .revoke_api_key(&ctx.scope, &id, now, &events, response.as_ref())
        .await
    {
        Ok(()) => Ok(Reply::committed(StatusCode::OK, body)),
        Err(StoreError::NotFound) => Err(ApiError::conflict(
            "api_key_already_revoked",
            "This API key is already revoked",
        )),
        Err(e) => Err(e.into()),
    }
}
