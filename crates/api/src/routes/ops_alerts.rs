//! The fraud alert queue for operators: alerts across tenants (unresolved first), assignment,
//! and resolution as fraud or not; a fraud resolution may freeze the card through the card's
//! own lifecycle, in the same transaction as the alert, its events and the audit entry.

use axum::extract::{Path, State};
use cardplane_domain::Timestamp;
use cardplane_domain::alert::{Alert, AlertResolution};
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::card::CardEvent;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{TenantId, UserId};
use cardplane_domain::people::Action;
use cardplane_engine::views::AlertView;
use cardplane_store::alerts::AlertChange;
use cardplane_store::cards::CardChange;
use cardplane_store::{EffectRecords, Scope, StoreError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, StrictQuery};
use crate::http::lookup::load_assignee;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::routes::alerts::{alert_filter, parse_alert_id};
use crate::state::AppState;
use crate::views::{OpsAlertList, OpsAlertView};
use crate::workflows::issuing::card_event_in;

const QUEUE_MAX: u32 = 200;
const NOTE_MAX_CHARS: usize = 2_000;

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message.to_owned()).with_param(field)
}

fn scope_of(a: &Alert) -> Scope {
    Scope {
        tenant_id: a.tenant_id.clone(),
        environment: a.environment,
    }
}

fn view(a: &Alert) -> OpsAlertView {
    OpsAlertView {
        tenant_id: a.tenant_id.to_string(),
        alert: AlertView::from(a),
    }
}

async fn load(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<Alert> {
    staff.require(action)?;
    let id = parse_alert_id(raw)?;
    let alert = state.alerts.get_alert(None, &id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("alert"),
        e => e.into(),
    })?;
    staff.require_in(action, &alert.tenant_id, "alert")?;
    Ok(alert)
}

/// Writes the alert's change (with the card's, when it freezes it), its events and the audit
/// entry in one transaction.
async fn commit(
    state: &AppState,
    staff: &Staff,
    current: &Alert,
    next: Alert,
    card: Option<CardChange>,
    action: &str,
    details: serde_json::Value,
) -> ApiResult<Reply> {
    let now = next.updated_at;
    let scope = scope_of(current);
    let mut events = vec![Event::new(
        &next.tenant_id,
        next.environment,
        EventType::AlertUpdated,
        next.id.to_string(),
        serde_json::to_value(AlertView::from(&next)).unwrap_or_default(),
        now,
    )];
    if let Some(c) = &card {
        events.push(card_event_in(&scope, EventType::CardUpdated, &c.card, now));
    }
    let mut audit: AuditRecord = staff.audit(action, "alert", next.id.as_str());
    audit.tenant_id = Some(next.tenant_id.to_string());
    audit.environment = Some(next.environment.as_str().to_owned());
    audit.details = details;
    let records = EffectRecords {
        replay: None,
        audit: Some(audit),
    };
    let written = state
        .alerts
        .change_alert(
            AlertChange {
                next: &next,
                expected_version: current.version,
                card: card.as_ref().map(|c| (&scope, c)),
                events: &events,
                records: Some(&records),
            },
            now,
        )
        .await;
    match written {
        Ok(()) => Reply::ok(&view(&next)),
        Err(StoreError::Conflict { .. }) => Err(ApiError::conflict(
            "concurrent_update",
            "The alert or its card changed concurrently; retry",
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQueueQuery {
    pub tenant_id: Option<String>,
    /// open, assigned or resolved.
    pub status: Option<String>,
    /// rule_review, risk_score or card_testing.
    pub kind: Option<String>,
    pub card_id: Option<String>,
    pub assignee_id: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

#[utoipa::path(
    get, path = "/ops/alerts", tag = "Operations console", params(AlertQueueQuery),
    responses(
        (status = 200, description = "Unresolved alerts first, oldest first", body = OpsAlertList),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<AlertQueueQuery>,
) -> ApiResult<Reply> {
    staff.require(Action::ViewAlerts)?;
    let mut filter = alert_filter(None, q.status.as_deref(), q.kind.as_deref(), q.card_id.as_deref())?;
    let tenant = match (&q.tenant_id, &staff.person.tenant_id) {
        (Some(raw), _) => Some(TenantId::parse(raw).map_err(|_| bad("tenant_id", "not a tenant id"))?),
        (None, own) => own.clone(),
    };
    if let Some(t) = &tenant {
        staff.require_in(Action::ViewAlerts, t, "tenant")?;
    }
    filter.tenant_id = tenant;
    filter.assignee_id = q
        .assignee_id
        .as_deref()
        .map(|a| UserId::parse(a).map_err(|_| bad("assignee_id", "not a user id")))
        .transpose()?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=QUEUE_MAX).contains(l))
            .ok_or_else(|| bad("limit", "1 to 200"))?,
    };
    let rows = state.alerts.alert_queue(&filter, limit).await?;
    Reply::ok(&OpsAlertList {
        data: rows.iter().map(view).collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertAssignRequest {
    /// An operator who may work alerts; absent or null: yourself.
    pub assignee_id: Option<String>,
}

#[utoipa::path(
    post, path = "/ops/alerts/{alert_id}/assign", tag = "Operations console",
    params(("alert_id" = String, Path)), request_body = AlertAssignRequest,
    responses(
        (status = 200, body = OpsAlertView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "alert_resolved or concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn assign_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AlertAssignRequest>,
) -> ApiResult<Reply> {
    let alert = load(&state, &staff, Action::WorkAlerts, &id).await?;
    let assignee = load_assignee(&state, req.assignee_id.as_deref(), |p| p.can(Action::WorkAlerts))
        .await?
        .unwrap_or_else(|| staff.person.id.clone());
    let mut next = alert
        .assign(assignee.clone(), Timestamp::now())
        .map_err(|e| ApiError::conflict(e.code(), e.to_string()))?;
    next.version = alert.version + 1;
    let details = serde_json::json!({ "from": alert.assignee, "to": assignee });
    commit(&state, &staff, &alert, next, None, "alert.assigned", details).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertResolveRequest {
    /// fraud or not_fraud.
    pub resolution: Option<String>,
    /// Up to 2,000 characters.
    pub note: Option<String>,
    /// Freeze the card (a fraud resolution only); a card already frozen or closed is left as it is.
    #[serde(default)]
    pub freeze_card: bool,
}

#[utoipa::path(
    post, path = "/ops/alerts/{alert_id}/resolve", tag = "Operations console",
    params(("alert_id" = String, Path)), request_body = AlertResolveRequest,
    responses(
        (status = 200, body = OpsAlertView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "alert_resolved, freeze_needs_fraud or concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn resolve_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AlertResolveRequest>,
) -> ApiResult<Reply> {
    let alert = load(&state, &staff, Action::WorkAlerts, &id).await?;
    let resolution = req
        .resolution
        .as_deref()
        .ok_or_else(|| ApiError::invalid("parameter_missing", "`resolution` is required").with_param("resolution"))?;
    let resolution =
        AlertResolution::parse(resolution).ok_or_else(|| bad("resolution", "must be fraud or not_fraud"))?;
    let note = req.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > NOTE_MAX_CHARS) {
        return Err(bad("note", "at most 2,000 characters"));
    }
    let now = Timestamp::now();
    let mut next = alert
        .resolve(staff.person.id.clone(), resolution, note, req.freeze_card, now)
        .map_err(|e| ApiError::conflict(e.code(), e.to_string()))?;
    next.version = alert.version + 1;
    let scope = scope_of(&alert);
    let card = if req.freeze_card {
        let card = state.cards.get_card(&scope, &alert.card_id).await?;
        // A card already frozen or closed stays as it is: the alert still records the request.
        card.apply(CardEvent::Freeze, now).ok().map(|frozen| CardChange {
            card: frozen,
            expected_version: card.version,
        })
    } else {
        None
    };
    let details = serde_json::json!({
        "resolution": resolution.as_str(),
        "freeze_card": req.freeze_card,
        "card_frozen_now": card.is_some(),
    });
    commit(&state, &staff, &alert, next, card, "alert.resolved", details).await
}
