//! Webhooks in the portal: the endpoints of one environment with their recent failure rate,
//! creating one (its signing secret shown once), pausing, resuming, deleting and rotating the
//! secret; each endpoint's delivery log with the attempts of every delivery, redelivery of an
//! event and replay since an instant. The rules are the API's (`workflows::webhooks`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cardplane_domain::event::EventType;
use cardplane_domain::ids::WebhookAttemptId;
use cardplane_domain::page::PageRequest;
use cardplane_domain::people::Action;
use cardplane_domain::webhook::{AttemptVerdict, WebhookEndpoint, judge};
use cardplane_store::EffectRecords;
use cardplane_store::webhooks::WebhookAttempt;
use serde::Deserialize;

use super::events::{next_after, older_than};
use super::{Workspace, chrome};
use crate::http::error::ApiResult;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageError, PageResult, page, refused, when, without_query};
use crate::workflows::webhooks;

/// Endpoints are few; one page shows them all.
const ENDPOINTS_SHOWN_MAX: u32 = 100;
/// The failure rate shown for an endpoint is over its latest attempts.
const RECENT_ATTEMPTS_MAX: u32 = 50;
/// Rows per page of a delivery log.
pub const LOG_PAGE_SIZE: u32 = 25;
/// Attempts shown for one delivery (the retry schedule makes a few dozen at most).
const ATTEMPTS_SHOWN_MAX: u32 = 100;

/// Whether an attempt delivered its event (the rule the delivery worker applies).
fn delivered(a: &WebhookAttempt) -> bool {
    matches!(judge(a.status_code, None), AttemptVerdict::Delivered)
}

/// The audit entry of a page action on an endpoint, written with its effect.
fn audited(staff: &Staff, action: &str, endpoint: &WebhookEndpoint) -> ApiResult<Option<EffectRecords>> {
    Ok(Some(EffectRecords {
        replay: None,
        audit: Some(staff.audit(action, "webhook_endpoint", endpoint.id.as_str())),
    }))
}

pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    pub state: String,
    pub events: String,
    /// Failed of the latest attempts, e.g. `2 of 50 (4.0%)`; empty before any attempt.
    pub failure_rate: String,
    pub last_error: String,
}

async fn endpoint_row(state: &AppState, ws: &Workspace, e: &WebhookEndpoint) -> Result<EndpointRow, PageError> {
    let recent = state
        .webhooks
        .list_attempts(&ws.scope(), &e.id, &PageRequest::newest(RECENT_ATTEMPTS_MAX))
        .await?
        .items;
    let failed = recent.iter().filter(|a| !delivered(a)).count();
    let failure_rate = match recent.len() {
        0 => String::new(),
        n => format!("{failed} of {n} ({}.{}%)", failed * 100 / n, (failed * 1000 / n) % 10),
    };
    let last_error = recent
        .iter()
        .find(|a| !delivered(a))
        .map(|a| format!("{}: {}", when(a.attempted_at), outcome(a)))
        .unwrap_or_default();
    Ok(EndpointRow {
        id: e.id.to_string(),
        url: without_query(&e.url),
        description: e.description.clone().unwrap_or_default(),
        enabled: e.enabled,
        state: match (e.enabled, e.disabled_reason) {
            (true, _) => "enabled".to_owned(),
            (false, Some(why)) => format!("disabled ({})", why.as_str()),
            (false, None) => "disabled".to_owned(),
        },
        events: e.enabled_events.names().join(", "),
        failure_rate,
        last_error,
    })
}

/// What came back: the status and the error, whichever there are.
fn outcome(a: &WebhookAttempt) -> String {
    match (a.status_code, &a.error) {
        (Some(s), Some(e)) => format!("HTTP {s}, {e}"),
        (Some(s), None) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "portal/webhooks.html")]
struct EndpointsPage {
    chrome: Chrome,
    env: &'static str,
    endpoints: Vec<EndpointRow>,
    event_types: Vec<&'static str>,
    can_manage: bool,
    error: Option<String>,
    url: String,
    /// Just created: the endpoint's id and its signing secret, shown this once.
    created: Option<(String, String)>,
}

async fn endpoints_page(state: &AppState, staff: &Staff, ws: &Workspace) -> Result<EndpointsPage, PageError> {
    let endpoints = state
        .webhooks
        .list_endpoints(&ws.scope(), &PageRequest::newest(ENDPOINTS_SHOWN_MAX))
        .await?;
    let mut rows = Vec::with_capacity(endpoints.items.len());
    for e in &endpoints.items {
        rows.push(endpoint_row(state, ws, e).await?);
    }
    Ok(EndpointsPage {
        chrome: chrome(staff, "webhooks", Some(ws)),
        env: ws.env(),
        endpoints: rows,
        event_types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
        can_manage: staff.person.can(Action::ManageWebhooks),
        error: None,
        url: String::new(),
        created: None,
    })
}

pub async fn list(State(state): State<AppState>, staff: Staff, Path(env): Path<String>) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    page(&endpoints_page(&state, &staff, &ws).await?)
}

/// The create form: `url`, `description`, and one `event` field per ticked type (none: all).
async fn parse_new_endpoint(
    state: &AppState,
    ws: &Workspace,
    fields: &[(String, String)],
) -> ApiResult<webhooks::NewEndpoint> {
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned());
    let ticked: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "event")
        .map(|(_, v)| v.clone())
        .collect();
    Ok(webhooks::NewEndpoint {
        url: webhooks::parse_url(state, ws.environment, &field("url").unwrap_or_default()).await?,
        enabled_events: webhooks::parse_events((!ticked.is_empty()).then_some(ticked))?,
        description: webhooks::parse_description(field("description"))?,
    })
}

pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Path(env): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageWebhooks)?;
    let created = match parse_new_endpoint(&state, &ws, &fields).await {
        Ok(new) => {
            webhooks::create(&state, &ws.scope(), new, |e, _| {
                audited(&staff, "webhook_endpoint.create", e)
            })
            .await
        }
        Err(e) => Err(e),
    };
    let mut view = endpoints_page(&state, &staff, &ws).await?;
    match created {
        Ok((endpoint, secret)) => {
            view.created = Some((endpoint.id.to_string(), secret.expose()));
            page(&view)
        }
        Err(e) if e.status.is_client_error() => {
            view.error = Some(e.body.message.clone());
            view.url = fields
                .iter()
                .find(|(k, _)| k == "url")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            refused(page(&view), &e)
        }
        Err(e) => Err(e.into()),
    }
}

fn to_list(ws: &Workspace) -> Response {
    Redirect::to(&format!("/portal/{}/webhooks", ws.env())).into_response()
}

async fn set_enabled(state: &AppState, staff: &Staff, env: &str, id: &str, enabled: bool) -> PageResult {
    let ws = Workspace::of(staff, env)?;
    staff.require(Action::ManageWebhooks)?;
    let id = webhooks::parse_endpoint_id(id)?;
    let changes = webhooks::EndpointChanges {
        enabled: Some(enabled),
        ..webhooks::EndpointChanges::default()
    };
    let action = if enabled {
        "webhook_endpoint.enable"
    } else {
        "webhook_endpoint.disable"
    };
    webhooks::update(state, &ws.scope(), &id, changes, |e| audited(staff, action, e)).await?;
    Ok(to_list(&ws))
}

pub async fn enable(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
) -> PageResult {
    set_enabled(&state, &staff, &env, &id, true).await
}

pub async fn disable(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
) -> PageResult {
    set_enabled(&state, &staff, &env, &id, false).await
}

pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageWebhooks)?;
    let id = webhooks::parse_endpoint_id(&id)?;
    webhooks::delete(&state, &ws.scope(), &id, |e| {
        audited(&staff, "webhook_endpoint.delete", e)
    })
    .await?;
    Ok(to_list(&ws))
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageWebhooks)?;
    let id = webhooks::parse_endpoint_id(&id)?;
    let (_, secret) = webhooks::rotate_secret(&state, &ws.scope(), &id, |e, _| {
        audited(&staff, "webhook_endpoint.rotate_secret", e)
    })
    .await?;
    let mut view = log_page(&state, &staff, &ws, &id, &LogQuery::default()).await?;
    view.rotated = Some(secret.expose());
    page(&view)
}

pub struct AttemptRow {
    pub event_id: String,
    pub event_type: String,
    pub attempt_number: i64,
    pub at: String,
    pub status: &'static str,
    pub response: String,
    pub latency_ms: i64,
    pub next_retry: String,
}

impl From<&WebhookAttempt> for AttemptRow {
    fn from(a: &WebhookAttempt) -> Self {
        AttemptRow {
            event_id: a.event_id.to_string(),
            event_type: a.event_type.clone(),
            attempt_number: a.attempt_number,
            at: when(a.attempted_at),
            status: match (delivered(a), a.next_attempt_at) {
                (true, _) => "delivered",
                (false, Some(_)) => "retrying",
                (false, None) => "failed",
            },
            response: outcome(a),
            latency_ms: a.latency_ms,
            next_retry: a.next_attempt_at.map(when).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// The next page: attempts older than this one.
    after: Option<String>,
    /// How many deliveries a replay or redelivery just scheduled.
    scheduled: Option<u64>,
}

#[derive(Template)]
#[template(path = "portal/webhook.html")]
struct LogPage {
    chrome: Chrome,
    env: &'static str,
    endpoint: EndpointRow,
    attempts: Vec<AttemptRow>,
    next: Option<String>,
    can_manage: bool,
    scheduled: Option<u64>,
    /// Just rotated: the new signing secret, shown this once.
    rotated: Option<String>,
    overlap_hours: i64,
    error: Option<String>,
}

async fn log_page(
    state: &AppState,
    staff: &Staff,
    ws: &Workspace,
    id: &cardplane_domain::ids::WebhookEndpointId,
    q: &LogQuery,
) -> Result<LogPage, PageError> {
    let endpoint = webhooks::load(state, &ws.scope(), id).await?;
    let request = older_than(
        q.after.as_deref(),
        |a| WebhookAttemptId::parse(a).is_ok(),
        LOG_PAGE_SIZE,
    );
    let log = state.webhooks.list_attempts(&ws.scope(), id, &request).await?;
    let next = next_after(&log, |a| a.id.to_string());
    Ok(LogPage {
        chrome: chrome(staff, "webhooks", Some(ws)),
        env: ws.env(),
        endpoint: endpoint_row(state, ws, &endpoint).await?,
        attempts: log.items.iter().map(AttemptRow::from).collect(),
        next,
        can_manage: staff.person.can(Action::ManageWebhooks),
        scheduled: q.scheduled,
        rotated: None,
        overlap_hours: state.config.webhooks.secret_overlap_secs / 3600,
        error: None,
    })
}

pub async fn log(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    let id = webhooks::parse_endpoint_id(&id)?;
    page(&log_page(&state, &staff, &ws, &id, &q).await?)
}

#[derive(Debug, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    since: String,
}

pub async fn replay(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
    Form(form): Form<ReplayForm>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageWebhooks)?;
    let id = webhooks::parse_endpoint_id(&id)?;
    let audit = staff.audit("webhook_endpoint.replay", "webhook_endpoint", id.as_str());
    let respond = move |_: u64| {
        Some(EffectRecords {
            replay: None,
            audit: Some(audit.clone()),
        })
    };
    let scheduled = match webhooks::parse_since(&form.since) {
        Ok(since) => webhooks::replay(&state, &ws.scope(), &id, since, &respond).await,
        Err(e) => Err(e),
    };
    match scheduled {
        Ok(n) => Ok(Redirect::to(&format!("/portal/{}/webhooks/{id}?scheduled={n}", ws.env())).into_response()),
        Err(e) if e.status == axum::http::StatusCode::BAD_REQUEST => {
            let mut view = log_page(&state, &staff, &ws, &id, &LogQuery::default()).await?;
            view.error = Some(e.body.message.clone());
            refused(page(&view), &e)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal/delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    env: &'static str,
    endpoint_id: String,
    endpoint_url: String,
    event_id: String,
    attempts: Vec<AttemptRow>,
    can_manage: bool,
    scheduled: Option<u64>,
}

/// One delivery: the attempts to send one event to one endpoint, newest first.
pub async fn delivery(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, endpoint_id, event_id)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    let id = webhooks::parse_endpoint_id(&endpoint_id)?;
    let event_id = webhooks::parse_event_id(&event_id)?;
    let endpoint = webhooks::load(&state, &ws.scope(), &id).await?;
    webhooks::load_event(&state, &ws.scope(), &event_id).await?;
    let attempts = state
        .webhooks
        .delivery_attempts(&ws.scope(), &id, &event_id, ATTEMPTS_SHOWN_MAX)
        .await?;
    page(&DeliveryPage {
        chrome: chrome(&staff, "webhooks", Some(&ws)),
        env: ws.env(),
        endpoint_id: id.to_string(),
        endpoint_url: without_query(&endpoint.url),
        event_id: event_id.to_string(),
        attempts: attempts.iter().map(AttemptRow::from).collect(),
        can_manage: staff.person.can(Action::ManageWebhooks),
        scheduled: q.scheduled,
    })
}

/// Sends an event again, now, to every enabled endpoint subscribed to it (as the API does);
/// back to the delivery it was asked from.
pub async fn redeliver(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, endpoint_id, event_id)): Path<(String, String, String)>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageWebhooks)?;
    let id = webhooks::parse_endpoint_id(&endpoint_id)?;
    let event_id = webhooks::parse_event_id(&event_id)?;
    webhooks::load(&state, &ws.scope(), &id).await?;
    let audit = staff.audit("event.redeliver", "event", event_id.as_str());
    let respond = move |_: u64| {
        Some(EffectRecords {
            replay: None,
            audit: Some(audit.clone()),
        })
    };
    let n = webhooks::redeliver(&state, &ws.scope(), &event_id, &respond).await?;
    Ok(Redirect::to(&format!(
        "/portal/{}/webhooks/{id}/events/{event_id}?scheduled={n}",
        ws.env()
    ))
    .into_response())
}
