//! Working fraud alerts: the queue's filters, assignment, and resolution as fraud or not (which
//! may freeze the card through its own lifecycle, in the same transaction as the alert, its
//! events and the audit entry). `/ops/alerts` and the console's alert pages both call these.

use cardplane_domain::Timestamp;
use cardplane_domain::alert::{Alert, AlertKind, AlertResolution, AlertStatus};
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::card::CardEvent;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{AlertId, CardId, TenantId, UserId};
use cardplane_domain::people::Action;
use cardplane_engine::views::AlertView;
use cardplane_store::alerts::{AlertChange, AlertFilter};
use cardplane_store::cards::CardChange;
use cardplane_store::{EffectRecords, Scope, StoreError};

use crate::http::error::{ApiError, ApiResult};
use crate::http::lookup::load_assignee;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::workflows::issuing::card_event_in;

pub const NOTE_MAX_CHARS: usize = 2_000;

pub fn parse_alert_id(raw: &str) -> ApiResult<AlertId> {
    AlertId::parse(raw).map_err(|_| ApiError::not_found("alert"))
}

fn bad_filter(field: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", format!("`{field}` is not valid here")).with_param(field)
}

/// The filters of a list, checked: a bad value is a 400 naming it.
pub fn alert_filter(
    scope: Option<Scope>,
    status: Option<&str>,
    kind: Option<&str>,
    card: Option<&str>,
) -> ApiResult<AlertFilter> {
    Ok(AlertFilter {
        scope,
        statuses: status
            .map(|s| AlertStatus::parse(s).ok_or_else(|| bad_filter("status")))
            .transpose()?
            .into_iter()
            .collect(),
        kind: kind
            .map(|k| AlertKind::parse(k).ok_or_else(|| bad_filter("kind")))
            .transpose()?,
        card_id: card
            .map(|c| CardId::parse(c).map_err(|_| bad_filter("card_id")))
            .transpose()?,
        ..AlertFilter::default()
    })
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message.to_owned()).with_param(field)
}

pub fn scope_of(a: &Alert) -> Scope {
    Scope {
        tenant_id: a.tenant_id.clone(),
        environment: a.environment,
    }
}

/// The filters of an operator's queue, checked: a tenant user is held to their own tenant, and
/// a bad value is a 400 naming it.
pub struct QueueAsk<'a> {
    pub tenant_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub card_id: Option<&'a str>,
    pub assignee_id: Option<&'a str>,
}

pub fn queue_filter(staff: &Staff, ask: &QueueAsk<'_>) -> ApiResult<AlertFilter> {
    staff.require(Action::ViewAlerts)?;
    let mut filter = alert_filter(None, ask.status, ask.kind, ask.card_id)?;
    let tenant = match (ask.tenant_id, &staff.person.tenant_id) {
        (Some(raw), _) => Some(TenantId::parse(raw).map_err(|_| bad("tenant_id", "not a tenant id"))?),
        (None, own) => own.clone(),
    };
    if let Some(t) = &tenant {
        staff.require_in(Action::ViewAlerts, t, "tenant")?;
    }
    filter.tenant_id = tenant;
    filter.assignee_id = ask
        .assignee_id
        .map(|a| UserId::parse(a).map_err(|_| bad("assignee_id", "not a user id")))
        .transpose()?;
    Ok(filter)
}

/// An alert this person may see (`ViewAlerts`) or work (`WorkAlerts`): another tenant's is a 404.
pub async fn load(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<Alert> {
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
) -> ApiResult<Alert> {
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
        Ok(()) => Ok(next),
        Err(StoreError::Conflict { .. }) => Err(ApiError::conflict(
            "concurrent_update",
            "The alert or its card changed concurrently; retry",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Assigns the alert to an operator who may work alerts (None: to oneself).
pub async fn assign(state: &AppState, staff: &Staff, raw: &str, assignee: Option<&str>) -> ApiResult<Alert> {
    let alert = load(state, staff, Action::WorkAlerts, raw).await?;
    let assignee = load_assignee(state, assignee, |p| p.can(Action::WorkAlerts))
        .await?
        .unwrap_or_else(|| staff.person.id.clone());
    let mut next = alert
        .assign(assignee.clone(), Timestamp::now())
        .map_err(|e| ApiError::conflict(e.code(), e.to_string()))?;
    next.version = alert.version + 1;
    let details = serde_json::json!({ "from": alert.assignee, "to": assignee });
    commit(state, staff, &alert, next, None, "alert.assigned", details).await
}

/// What a resolution asks for, as submitted.
pub struct Resolve<'a> {
    /// fraud or not_fraud.
    pub resolution: Option<&'a str>,
    pub note: Option<&'a str>,
    pub freeze_card: bool,
    /// The console asks for the operator's reasons; the JSON API keeps the note optional.
    pub note_required: bool,
}

pub async fn resolve(state: &AppState, staff: &Staff, raw: &str, req: &Resolve<'_>) -> ApiResult<Alert> {
    let alert = load(state, staff, Action::WorkAlerts, raw).await?;
    let resolution = req
        .resolution
        .ok_or_else(|| ApiError::invalid("parameter_missing", "`resolution` is required").with_param("resolution"))?;
    let resolution =
        AlertResolution::parse(resolution).ok_or_else(|| bad("resolution", "must be fraud or not_fraud"))?;
    let note = req.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note.is_none() && req.note_required {
        return Err(ApiError::invalid("parameter_missing", "A note giving the reason is required").with_param("note"));
    }
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
    commit(state, staff, &alert, next, card, "alert.resolved", details).await
}
