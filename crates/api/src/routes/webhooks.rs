//! `/webhook_endpoints`: where a tenant's events are delivered, each endpoint with its own signing
//! secret (shown once); the delivery log; replay and redelivery.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::Timestamp;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{EventId, WebhookAttemptId, WebhookEndpointId};
use cardplane_domain::webhook::{DisabledReason, EnabledEvents, WebhookEndpoint, WebhookSecret};
use cardplane_store::StoreError;
use cardplane_store::webhooks::WebhookAttempt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{EndpointView, page_items};
use cardplane_engine::delivery::{UrlError, check_url, secret_context};

const URL_LEN_MAX: usize = 2048;
const DESCRIPTION_LEN_MAX: usize = 500;

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

fn parse_endpoint_id(raw: &str) -> ApiResult<WebhookEndpointId> {
    WebhookEndpointId::parse(raw).map_err(|_| ApiError::not_found("webhook_endpoint"))
}

fn endpoint_missing(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("webhook_endpoint"),
        other => other.into(),
    }
}

async fn parse_url(state: &AppState, ctx: &Ctx, raw: &str) -> ApiResult<String> {
    if raw.len() > URL_LEN_MAX {
        return Err(ApiError::invalid("parameter_invalid", "url is too long").with_param("url"));
    }
    match check_url(raw, ctx.scope.environment, &state.webhook_allowlist).await {
        Ok(url) => Ok(url.to_string()),
        Err(e @ UrlError::NotAllowed) => Err(ApiError::invalid("url_not_allowed", e.to_string()).with_param("url")),
        Err(e @ UrlError::Unresolvable) => Err(ApiError::invalid("url_unresolvable", e.to_string()).with_param("url")),
        Err(e @ UrlError::Invalid) => Err(ApiError::invalid("parameter_invalid", e.to_string()).with_param("url")),
    }
}

fn parse_events(raw: Option<Vec<String>>) -> ApiResult<EnabledEvents> {
    match raw {
        None => Ok(EnabledEvents::All),
        Some(list) => EnabledEvents::parse(&list)
            .map_err(|m| ApiError::invalid("parameter_invalid", m).with_param("enabled_events")),
    }
}

fn parse_description(raw: Option<String>) -> ApiResult<Option<String>> {
    match raw.map(|d| d.trim().to_owned()) {
        Some(d) if d.chars().count() > DESCRIPTION_LEN_MAX => {
            Err(ApiError::invalid("parameter_invalid", "description is too long").with_param("description"))
        }
        Some(d) if d.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn endpoint_event(ctx: &Ctx, kind: EventType, endpoint: &WebhookEndpoint, now: Timestamp) -> Event {
    let data = serde_json::to_value(EndpointView::from(endpoint)).unwrap_or_default();
    Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        kind,
        endpoint.id.as_str(),
        data,
        now,
    )
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
    let url = parse_url(&state, &ctx, &req.url).await?;
    let enabled_events = parse_events(req.enabled_events)?;
    let description = parse_description(req.description)?;
    let now = ctx.now();
    let id = WebhookEndpointId::generate();
    let secret = WebhookSecret::generate();
    let endpoint = WebhookEndpoint {
        secret_sealed: state.vault.seal(secret.key_bytes(), &secret_context(id.as_str())),
        id,
        tenant_id: ctx.scope.tenant_id.clone(),
        environment: ctx.scope.environment,
        url,
        description,
        enabled_events,
        enabled: true,
        disabled_reason: None,
        previous_secret_sealed: None,
        previous_secret_expires_at: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let body = render(&EndpointWithSecret {
        webhook_endpoint: (&endpoint).into(),
        secret: secret.expose(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let events = [endpoint_event(&ctx, EventType::WebhookEndpointCreated, &endpoint, now)];
    state
        .webhooks
        .insert_endpoint(&ctx.scope, &endpoint, &events, response.as_ref(), now)
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
    let id = parse_endpoint_id(&id)?;
    let endpoint = state
        .webhooks
        .get_endpoint(&ctx.scope, &id)
        .await
        .map_err(endpoint_missing)?;
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
    let id = parse_endpoint_id(&id)?;
    let mut endpoint = state
        .webhooks
        .get_endpoint(&ctx.scope, &id)
        .await
        .map_err(endpoint_missing)?;
    if let Some(url) = &req.url {
        endpoint.url = parse_url(&state, &ctx, url).await?;
    }
    if req.enabled_events.is_some() {
        endpoint.enabled_events = parse_events(req.enabled_events)?;
    }
    if req.description.is_some() {
        endpoint.description = parse_description(req.description)?;
    }
    match req.enabled {
        Some(true) => {
            endpoint.enabled = true;
            endpoint.disabled_reason = None;
            endpoint.failing_since = None;
        }
        Some(false) if endpoint.enabled => {
            endpoint.enabled = false;
            endpoint.disabled_reason = Some(DisabledReason::Manual);
        }
        Some(false) | None => {}
    }
    let now = ctx.now();
    endpoint.updated_at = now;
    let body = render(&EndpointEnvelope {
        webhook_endpoint: (&endpoint).into(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let events = [endpoint_event(&ctx, EventType::WebhookEndpointUpdated, &endpoint, now)];
    state
        .webhooks
        .update_endpoint(&ctx.scope, &endpoint, &events, response.as_ref(), now)
        .await
        .map_err(endpoint_missing)?;
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
    let id = parse_endpoint_id(&id)?;
    let mut endpoint = state
        .webhooks
        .get_endpoint(&ctx.scope, &id)
        .await
        .map_err(endpoint_missing)?;
    let now = ctx.now();
    endpoint.enabled = false;
    endpoint.updated_at = now;
    let body = render(&EndpointEnvelope {
        webhook_endpoint: (&endpoint).into(),
    })?;
    let events = [endpoint_event(&ctx, EventType::WebhookEndpointDeleted, &endpoint, now)];
    state
        .webhooks
        .delete_endpoint(
            &ctx.scope,
            &id,
            &events,
            ctx.records(StatusCode::OK, &body).as_ref(),
            now,
        )
        .await
        .map_err(endpoint_missing)?;
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
    let id = parse_endpoint_id(&id)?;
    let mut endpoint = state
        .webhooks
        .get_endpoint(&ctx.scope, &id)
        .await
        .map_err(endpoint_missing)?;
    let now = ctx.now();
    let secret = WebhookSecret::generate();
    let sealed = state.vault.seal(secret.key_bytes(), &secret_context(id.as_str()));
    endpoint.previous_secret_sealed = Some(std::mem::replace(&mut endpoint.secret_sealed, sealed));
    endpoint.previous_secret_expires_at = Some(now.plus_secs(state.config.webhooks.secret_overlap_secs));
    endpoint.updated_at = now;
    let body = render(&EndpointWithSecret {
        webhook_endpoint: (&endpoint).into(),
        secret: secret.expose(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let events = [endpoint_event(&ctx, EventType::WebhookEndpointUpdated, &endpoint, now)];
    state
        .webhooks
        .update_endpoint(&ctx.scope, &endpoint, &events, response.as_ref(), now)
        .await
        .map_err(endpoint_missing)?;
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
    let id = parse_endpoint_id(&id)?;
    state
        .webhooks
        .get_endpoint(&ctx.scope, &id)
        .await
        .map_err(endpoint_missing)?;
    let page = params.page(|a| WebhookAttemptId::parse(a).is_ok())?;
    let page = state.webhooks.list_attempts(&ctx.scope, &id, &page).await?;
    let (deliveries, has_more, total) = page_items(&page, |a| DeliveryAttemptEnvelope { delivery: a.into() });
    Reply::ok(&DeliveryAttemptList {
        deliveries,
        has_more,
        total,
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
    let id = parse_endpoint_id(&id)?;
    let since = time::OffsetDateTime::parse(req.since.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).ok())
        .map(Timestamp::from_micros)
        .ok_or_else(|| {
            ApiError::invalid("parameter_invalid", "since must be an RFC 3339 instant").with_param("since")
        })?;
    let respond = scheduled_reply(&ctx);
    let n = state
        .webhooks
        .replay_endpoint(&ctx.scope, &id, since, ctx.now(), &respond)
        .await
        .map_err(endpoint_missing)?;
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
    let id = EventId::parse(&id).map_err(|_| ApiError::not_found("event"))?;
    let respond = scheduled_reply(&ctx);
    let n = state
        .webhooks
        .redeliver_event(&ctx.scope, &id, ctx.now(), &respond)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("event"),
            other => other.into(),
        })?;
    Ok(Reply::committed(
        StatusCode::OK,
        render(&ScheduledView { scheduled: n })?,
    ))
}
