//! Webhook endpoints: the rules for an endpoint's url, subscriptions and description, creating,
//! changing, deleting one, rotating its signing secret, and scheduling deliveries again. Shared
//! by `/webhook_endpoints` (a key managing its tenant's endpoints) and the developer portal (a
//! tenant user managing them).

use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{EventId, WebhookEndpointId};
use cardplane_domain::webhook::{DisabledReason, EnabledEvents, WebhookEndpoint, WebhookSecret};
use cardplane_domain::{Environment, Timestamp};
use cardplane_engine::delivery::{UrlError, check_url, secret_context};
use cardplane_store::webhooks::RespondWith;
use cardplane_store::{EffectRecords, Scope, StoreError};

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::EndpointView;

const URL_LEN_MAX: usize = 2048;
const DESCRIPTION_LEN_MAX: usize = 500;

/// What is written with a change: the idempotent answer, the audit entry.
pub type Records = ApiResult<Option<EffectRecords>>;

/// A malformed id cannot name an endpoint of this scope: 404, like a foreign one.
pub fn parse_endpoint_id(raw: &str) -> ApiResult<WebhookEndpointId> {
    WebhookEndpointId::parse(raw).map_err(|_| ApiError::not_found("webhook_endpoint"))
}

pub fn parse_event_id(raw: &str) -> ApiResult<EventId> {
    EventId::parse(raw).map_err(|_| ApiError::not_found("event"))
}

/// An event of `scope`, or 404.
pub async fn load_event(state: &AppState, scope: &Scope, id: &EventId) -> ApiResult<Event> {
    state.events.get_event(scope, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("event"),
        other => other.into(),
    })
}

fn endpoint_missing(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("webhook_endpoint"),
        other => other.into(),
    }
}

/// A url deliveries may go to from `environment` (live endpoints never reach private networks
/// outside the operator's allowlist).
pub async fn parse_url(state: &AppState, environment: Environment, raw: &str) -> ApiResult<String> {
    if raw.len() > URL_LEN_MAX {
        return Err(ApiError::invalid("parameter_invalid", "url is too long").with_param("url"));
    }
    match check_url(raw, environment, &state.webhook_allowlist).await {
        Ok(url) => Ok(url.to_string()),
        Err(e @ UrlError::NotAllowed) => Err(ApiError::invalid("url_not_allowed", e.to_string()).with_param("url")),
        Err(e @ UrlError::Unresolvable) => Err(ApiError::invalid("url_unresolvable", e.to_string()).with_param("url")),
        Err(e @ UrlError::Invalid) => Err(ApiError::invalid("parameter_invalid", e.to_string()).with_param("url")),
    }
}

/// Subscriptions: absent is every event type.
pub fn parse_events(raw: Option<Vec<String>>) -> ApiResult<EnabledEvents> {
    match raw {
        None => Ok(EnabledEvents::All),
        Some(list) => EnabledEvents::parse(&list)
            .map_err(|m| ApiError::invalid("parameter_invalid", m).with_param("enabled_events")),
    }
}

/// A description of at most 500 characters; blank is none.
pub fn parse_description(raw: Option<String>) -> ApiResult<Option<String>> {
    match raw.map(|d| d.trim().to_owned()) {
        Some(d) if d.chars().count() > DESCRIPTION_LEN_MAX => {
            Err(ApiError::invalid("parameter_invalid", "description is too long").with_param("description"))
        }
        Some(d) if d.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// "Every event created after this instant": RFC 3339.
pub fn parse_since(raw: &str) -> ApiResult<Timestamp> {
    time::OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).ok())
        .map(Timestamp::from_micros)
        .ok_or_else(|| ApiError::invalid("parameter_invalid", "since must be an RFC 3339 instant").with_param("since"))
}

/// A new endpoint, its fields already parsed.
#[derive(Debug)]
pub struct NewEndpoint {
    pub url: String,
    pub enabled_events: EnabledEvents,
    pub description: Option<String>,
}

/// Changes to an endpoint, each already parsed; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub enabled_events: Option<EnabledEvents>,
    pub description: Option<Option<String>>,
    /// `false` pauses deliveries; `true` resumes them (also after an automatic disable).
    pub enabled: Option<bool>,
}

fn endpoint_event(scope: &Scope, kind: EventType, endpoint: &WebhookEndpoint, now: Timestamp) -> Event {
    let data = serde_json::to_value(EndpointView::from(endpoint)).unwrap_or_default();
    Event::new(
        &scope.tenant_id,
        scope.environment,
        kind,
        endpoint.id.as_str(),
        data,
        now,
    )
}

pub async fn load(state: &AppState, scope: &Scope, id: &WebhookEndpointId) -> ApiResult<WebhookEndpoint> {
    state.webhooks.get_endpoint(scope, id).await.map_err(endpoint_missing)
}

/// Creates an endpoint with a fresh signing secret, which exists only in the return value.
pub async fn create(
    state: &AppState,
    scope: &Scope,
    new: NewEndpoint,
    records: impl FnOnce(&WebhookEndpoint, &WebhookSecret) -> Records,
) -> ApiResult<(WebhookEndpoint, WebhookSecret)> {
    let now = Timestamp::now();
    let id = WebhookEndpointId::generate();
    let secret = WebhookSecret::generate();
    let endpoint = WebhookEndpoint {
        secret_sealed: state.vault.seal(secret.key_bytes(), &secret_context(id.as_str())),
        id,
        tenant_id: scope.tenant_id.clone(),
        environment: scope.environment,
        url: new.url,
        description: new.description,
        enabled_events: new.enabled_events,
        enabled: true,
        disabled_reason: None,
        previous_secret_sealed: None,
        previous_secret_expires_at: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let records = records(&endpoint, &secret)?;
    let events = [endpoint_event(scope, EventType::WebhookEndpointCreated, &endpoint, now)];
    state
        .webhooks
        .insert_endpoint(scope, &endpoint, &events, records.as_ref(), now)
        .await?;
    Ok((endpoint, secret))
}

/// Applies `changes`; re-enabling also forgets an automatic disable and the failing run.
pub async fn update(
    state: &AppState,
    scope: &Scope,
    id: &WebhookEndpointId,
    changes: EndpointChanges,
    records: impl FnOnce(&WebhookEndpoint) -> Records,
) -> ApiResult<WebhookEndpoint> {
    let mut endpoint = load(state, scope, id).await?;
    if let Some(url) = changes.url {
        endpoint.url = url;
    }
    if let Some(events) = changes.enabled_events {
        endpoint.enabled_events = events;
    }
    if let Some(description) = changes.description {
        endpoint.description = description;
    }
    match changes.enabled {
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
    save(state, scope, endpoint, records).await
}

async fn save(
    state: &AppState,
    scope: &Scope,
    mut endpoint: WebhookEndpoint,
    records: impl FnOnce(&WebhookEndpoint) -> Records,
) -> ApiResult<WebhookEndpoint> {
    let now = Timestamp::now();
    endpoint.updated_at = now;
    let records = records(&endpoint)?;
    let events = [endpoint_event(scope, EventType::WebhookEndpointUpdated, &endpoint, now)];
    state
        .webhooks
        .update_endpoint(scope, &endpoint, &events, records.as_ref(), now)
        .await
        .map_err(endpoint_missing)?;
    Ok(endpoint)
}

/// Deletes an endpoint with its pending deliveries and its delivery log.
pub async fn delete(
    state: &AppState,
    scope: &Scope,
    id: &WebhookEndpointId,
    records: impl FnOnce(&WebhookEndpoint) -> Records,
) -> ApiResult<WebhookEndpoint> {
    let mut endpoint = load(state, scope, id).await?;
    let now = Timestamp::now();
    endpoint.enabled = false;
    endpoint.updated_at = now;
    let records = records(&endpoint)?;
    let events = [endpoint_event(scope, EventType::WebhookEndpointDeleted, &endpoint, now)];
    state
        .webhooks
        .delete_endpoint(scope, id, &events, records.as_ref(), now)
        .await
        .map_err(endpoint_missing)?;
    Ok(endpoint)
}

/// A new signing secret (returned this once); the previous one keeps signing for the
/// configured overlap, so receivers can switch without losing deliveries.
pub async fn rotate_secret(
    state: &AppState,
    scope: &Scope,
    id: &WebhookEndpointId,
    records: impl FnOnce(&WebhookEndpoint, &WebhookSecret) -> Records,
) -> ApiResult<(WebhookEndpoint, WebhookSecret)> {
    let mut endpoint = load(state, scope, id).await?;
    let secret = WebhookSecret::generate();
    let sealed = state.vault.seal(secret.key_bytes(), &secret_context(id.as_str()));
    endpoint.previous_secret_sealed = Some(std::mem::replace(&mut endpoint.secret_sealed, sealed));
    endpoint.previous_secret_expires_at = Some(Timestamp::now().plus_secs(state.config.webhooks.secret_overlap_secs));
    let endpoint = save(state, scope, endpoint, |e| records(e, &secret)).await?;
    Ok((endpoint, secret))
}

/// Schedules again every event after `since` the endpoint subscribes to; how many.
pub async fn replay(
    state: &AppState,
    scope: &Scope,
    id: &WebhookEndpointId,
    since: Timestamp,
    respond: RespondWith<'_>,
) -> ApiResult<u64> {
    state
        .webhooks
        .replay_endpoint(scope, id, since, Timestamp::now(), respond)
        .await
        .map_err(endpoint_missing)
}

/// Schedules an event again for every enabled endpoint subscribed to it; how many.
pub async fn redeliver(state: &AppState, scope: &Scope, id: &EventId, respond: RespondWith<'_>) -> ApiResult<u64> {
    state
        .webhooks
        .redeliver_event(scope, id, Timestamp::now(), respond)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("event"),
            other => other.into(),
        })
}
