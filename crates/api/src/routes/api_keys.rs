//! `/api_keys`: list, create and revoke the keys of the caller's tenant and environment.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use cardplane_domain::ids::ApiKeyId;
use cardplane_store::StoreError;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{ApiKeyCreated, ApiKeyEnvelope, ApiKeyList, page_items};
use crate::workflows::api_keys;

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
    let new = api_keys::parse_new_key(req.name.as_deref(), &req.permissions.unwrap_or_default(), |p| {
        ctx.key.has(p)
    })?;
    let mut body = String::new();
    api_keys::issue(&state, &ctx.scope, new, |key, secret| {
        body = render(&ApiKeyCreated {
            api_key: key.into(),
            secret: secret.expose().to_owned(),
        })?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
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
    let mut body = String::new();
    api_keys::revoke(&state, &ctx.scope, &id, |revoked| {
        body = render(&ApiKeyEnvelope {
            api_key: revoked.into(),
        })?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}
