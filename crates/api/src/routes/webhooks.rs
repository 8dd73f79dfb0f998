//! `/webhook_endpoints`: where a tenant's events are delivered, each endpoint with its own signing
//! secret (shown once); the delivery log; replay and redelivery.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::ids::{WebhookAttemptId, WebhookEndpointId};
use cardplane_domain::webhook::{WebhookEndpoint, WebhookSecret};
use cardplane_store::webhooks::WebhookAttempt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiResult;
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{EndpointView, page_items};
use crate::workflows::webhooks;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointEnvelope {
    pub webhook_endpoint: EndpointView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    pub webhook_endpoint: EndpointView,
    /// The signing secret (`whsec_...`), shown only in this response.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointList {
    pub webhook_endpoints: Vec<EndpointEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    #[schema(example = "whatt_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt of a delivery.
    pub attempt_number: i64,
    pub attempted_at: String,
    /// The HTTP status the endpoint answered; null when none came back (timeout, refused...).
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// When the next attempt is due; null when delivered or given up.
    pub next_attempt_at: Option<String>,
}

impl From<&WebhookAttempt> for DeliveryAttemptView {
    fn from(a: &WebhookAttempt) -> Self {
        DeliveryAttemptView {
            id: a.id.to_string(),
            endpoint_id: a.endpoint_id.to_string(),
            event_id: a.event_id.to_string(),
            event_type: a.event_type.clone(),
            attempt_number: a.attempt_number,
            attempted_at: a.attempted_at.to_rfc3339(),
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            next_attempt_at: a.next_attempt_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryAttemptEnvelope {
    pub delivery: DeliveryAttemptView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryAttemptList {
    pub deliveries: Vec<DeliveryAttemptEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduledView {
    /// How many deliveries were scheduled.
    pub scheduled: u64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    #[schema(example = "https://example.com/webhooks/cardplane")]
    pub url: String,
    /// Event types to deliver, or `["*"]` (the default) for all.
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    pub url: Option<String>,
    pub enabled_events: Option<Vec<String>>,
    /// An empty string clears it.
    pub description: Option<String>,
    /// `false` pauses deliveries; `true` resumes them (also after an automatic disable).
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// RFC 3339: every event created after this instant is sent again.
    #[schema(example = "2026-11-21T10:00:00Z")]
    pub since: String,
}

#[utoipa::path(
    post, path = "/webhook_endpoints", tag = "Webhooks",
    request_body = CreateEndpointRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "The secret is shown this once", body = EndpointWithSecret),
        (status = 400, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CreateEndpointRequest>,
) -> ApiResult<Reply> {
    let new = webhooks::NewEndpoint {
        url: webhooks::parse_url(&state, ctx.scope.environment, &req.url).await?,
        enabled_events: webhooks::parse_events(req.enabled_events)?,
        description: webhooks::parse_description(req.description)?,
    };
    let mut body = String::new();
    webhooks::create(&state, &ctx.scope, new, |endpoint, secret| {
        body = with_secret(endpoint, secret)?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    get, path = "/webhook_endpoints", tag = "Webhooks",
    params(ListParams),
    responses((status = 200, body = EndpointList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| WebhookEndpointId::parse(id).is_ok())?;
    let page = state.webhooks.list_endpoints(&ctx.scope, &page).await?;
    let (webhook_endpoints, has_more, total) = page_items(&page, |e| EndpointEnvelope {
        webhook_endpoint: e.into(),
    });
    Reply::ok(&EndpointList {
        webhook_endpoints,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/webhook_endpoints/{endpoint_id}", tag = "Webhooks",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_endpoint(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = webhooks::parse_endpoint_id(&id)?;
    let endpoint = webhooks::load(&state, &ctx.scope, &id).await?;
    Reply::ok(&EndpointEnvelope {
        webhook_endpoint: (&endpoint).into(),
    })
}

#[utoipa::path(
    post, path = "/webhook_endpoints/{endpoint_id}", tag = "Webhooks",
    request_body = UpdateEndpointRequest,
    params(("endpoint_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = EndpointEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn update_endpoint(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateEndpointRequest>,
) -> ApiResult<Reply> {
    let id = webhooks::parse_endpoint_id(&id)?;
    webhooks::load(&state, &ctx.scope, &id).await?;
    let url = match &req.url {
        Some(url) => Some(webhooks::parse_url(&state, ctx.scope.environment, url).await?),
        None => None,
    };
    let changes = webhooks::EndpointChanges {
        url,
        enabled_events: req
            .enabled_events
            .is_some()
            .then(|| webhooks::parse_events(req.enabled_events))
            .transpose()?,
        description: req
            .description
            .is_some()
            .then(|| webhooks::parse_description(req.description))
            .transpose()?,
        enabled: req.enabled,
    };
    let mut body = String::new();
    webhooks::update(&state, &ctx.scope, &id, changes, |endpoint| {
        body = enveloped(endpoint)?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    delete, path = "/webhook_endpoints/{endpoint_id}", tag = "Webhooks",
    params(("endpoint_id" = String, Path)),
    responses(
        (status = 200, description = "Deleted, with its pending deliveries and its delivery log", body = EndpointEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn delete_endpoint(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = webhooks::parse_endpoint_id(&id)?;
    let mut body = String::new();
    webhooks::delete(&state, &ctx.scope, &id, |endpoint| {
        body = enveloped(endpoint)?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    post, path = "/webhook_endpoints/{endpoint_id}/rotate_secret", tag = "Webhooks",
    params(("endpoint_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "The new secret, shown this once; the previous one keeps signing during the overlap",
         body = EndpointWithSecret),
        (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn rotate_secret(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = webhooks::parse_endpoint_id(&id)?;
    let mut body = String::new();
    webhooks::rotate_secret(&state, &ctx.scope, &id, |endpoint, secret| {
        body = with_secret(endpoint, secret)?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    get, path = "/webhook_endpoints/{endpoint_id}/deliveries", tag = "Webhooks",
    params(("endpoint_id" = String, Path), ListParams),
    responses((status = 200, description = "Every attempt, newest first", body = DeliveryAttemptList),
              (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let id = webhooks::parse_endpoint_id(&id)?;
    webhooks::load(&state, &ctx.scope, &id).await?;
    let page = params.page(|a| WebhookAttemptId::parse(a).is_ok())?;
    let page = state.webhooks.list_attempts(&ctx.scope, &id, &page).await?;
    let (deliveries, has_more, total) = page_items(&page, |a| DeliveryAttemptEnvelope { delivery: a.into() });
    Reply::ok(&DeliveryAttemptList {
        deliveries,
        has_more,
        total,
    })
}

fn with_secret(endpoint: &WebhookEndpoint, secret: &WebhookSecret) -> ApiResult<String> {
    render(&EndpointWithSecret {
        webhook_endpoint: endpoint.into(),
        secret: secret.expose(),
    })
}

fn enveloped(endpoint: &WebhookEndpoint) -> ApiResult<String> {
    render(&EndpointEnvelope {
        webhook_endpoint: endpoint.into(),
    })
}

fn scheduled_reply(ctx: &Ctx) -> impl Fn(u64) -> Option<cardplane_store::EffectRecords> + Send + Sync + '_ {
    move |n| {
        let body = render(&ScheduledView { scheduled: n }).ok()?;
        ctx.records(StatusCode::OK, &body)
    }
}

#[utoipa::path(
    post, path = "/webhook_endpoints/{endpoint_id}/replay", tag = "Webhooks",
    request_body = ReplayRequest,
    params(("endpoint_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "Every event after `since` that the endpoint subscribes to is scheduled again",
         body = ScheduledView),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> ApiResult<Reply> {
    let id = webhooks::parse_endpoint_id(&id)?;
    let since = webhooks::parse_since(&req.since)?;
    let n = webhooks::replay(&state, &ctx.scope, &id, since, &scheduled_reply(&ctx)).await?;
    Ok(Reply::committed(
        StatusCode::OK,
        render(&ScheduledView { scheduled: n })?,
    ))
}

#[utoipa::path(
    post, path = "/events/{event_id}/redeliver", tag = "Webhooks",
    params(("event_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "Scheduled again for every enabled endpoint subscribed to it", body = ScheduledView),
        (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn redeliver_event(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = webhooks::parse_event_id(&id)?;
    let n = webhooks::redeliver(&state, &ctx.scope, &id, &scheduled_reply(&ctx)).await?;
    Ok(Reply::committed(
        StatusCode::OK,
        render(&ScheduledView { scheduled: n })?,
    ))
}
