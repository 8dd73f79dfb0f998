//! The dispute queue for operators: cases across tenants sorted by their nearest deadline,
//! assignment, notes, the issuer's steps and the network's answers, provisional credit by hand,
//! and the regulator-facing report. Every change is audited with the change itself.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::Timestamp;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::dispute::DisputeEvent;
use cardplane_domain::ids::{TenantId, UserId};
use cardplane_domain::people::Action;
use cardplane_engine::disputes::view::{
    DisputeNoteView, DisputeView, EvidenceView, OpsDisputeList, OpsDisputeRow, OpsDisputeView,
};
use cardplane_engine::disputes::{DisputeReport, Step};
use cardplane_store::disputes::DisputeRecord;
use cardplane_store::{EffectRecords, Scope};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, StrictQuery};
use crate::http::lookup::load_assignee;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::routes::disputes::{dispute_error, dispute_filter, network_event, parse_dispute_id};
use crate::state::AppState;

const QUEUE_MAX: u32 = 200;

fn scope_of(r: &DisputeRecord) -> Scope {
    Scope {
        tenant_id: r.dispute.tenant_id.clone(),
        environment: r.dispute.environment,
    }
}

pub async fn load(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<DisputeRecord> {
    staff.require(action)?;
    let id = parse_dispute_id(raw)?;
    let record = state
        .disputes
        .store()
        .get_dispute(None, &id)
        .await
        .map_err(|e| dispute_error(e.into()))?;
    staff.require_in(action, &record.dispute.tenant_id, "dispute")?;
    Ok(record)
}

pub async fn detail(state: &AppState, record: &DisputeRecord) -> ApiResult<OpsDisputeView> {
    let id = &record.dispute.id;
    let evidence = state.disputes.store().list_evidence(id).await?;
    let notes = state.disputes.store().list_dispute_notes(id).await?;
    Ok(OpsDisputeView {
        tenant_id: record.dispute.tenant_id.to_string(),
        dispute: DisputeView::of(record, Timestamp::now()),
        assignee_id: record.assignee_id.as_ref().map(ToString::to_string),
        evidence: evidence.iter().map(EvidenceView::from).collect(),
        notes: notes.iter().map(DisputeNoteView::from).collect(),
    })
}

/// Does a step as this operator, audited in the same transaction; the case as committed.
async fn act(
    state: &AppState,
    staff: &Staff,
    record: &DisputeRecord,
    step: Step,
    action: &str,
    details: serde_json::Value,
) -> ApiResult<DisputeRecord> {
    let mut audit: AuditRecord = staff.audit(action, "dispute", record.dispute.id.as_str());
    audit.tenant_id = Some(record.dispute.tenant_id.to_string());
    audit.environment = Some(record.dispute.environment.as_str().to_owned());
    audit.details = details;
    let records = EffectRecords {
        replay: None,
        audit: Some(audit),
    };
    let committed = state
        .disputes
        .step(
            &scope_of(record),
            &record.dispute.id,
            step,
            &|_, _| Some(records.clone()),
            Timestamp::now(),
        )
        .await
        .map_err(dispute_error)?;
    Ok(committed.record)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DisputeQueueQuery {
    pub tenant_id: Option<String>,
    /// new, pending_customer, submitted, representment, pre_arbitration, arbitration or closed.
    pub status: Option<String>,
    pub assignee_id: Option<String>,
    pub program_id: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message.to_owned()).with_param(field)
}

#[utoipa::path(
    get, path = "/ops/disputes", tag = "Operations console", params(DisputeQueueQuery),
    responses(
        (status = 200, description = "Open cases first, nearest deadline first", body = OpsDisputeList),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn list_disputes(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<DisputeQueueQuery>,
) -> ApiResult<Reply> {
    let rows = queue(&state, &staff, &q).await?;
    let now = Timestamp::now();
    Reply::ok(&OpsDisputeList {
        data: rows.iter().map(|r| OpsDisputeRow::of(r, now)).collect(),
    })
}

/// The queue as a person may see it (tenant users: their tenant), open cases first, nearest
/// deadline first; shared with the console.
pub async fn queue(state: &AppState, staff: &Staff, q: &DisputeQueueQuery) -> ApiResult<Vec<DisputeRecord>> {
    staff.require(Action::ViewDisputes)?;
    let mut filter = dispute_filter(None, q.status.as_deref(), None, None, q.program_id.as_deref())?;
    let tenant = match (&q.tenant_id, &staff.person.tenant_id) {
        (Some(raw), _) => Some(TenantId::parse(raw).map_err(|_| bad("tenant_id", "not a tenant id"))?),
        (None, own) => own.clone(),
    };
    if let Some(t) = &tenant {
        staff.require_in(Action::ViewDisputes, t, "tenant")?;
    }
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
    let mut rows = state
        .disputes
        .store()
        .dispute_queue(&filter, QUEUE_MAX.max(limit))
        .await?;
    if let Some(t) = &tenant {
        rows.retain(|r| &r.dispute.tenant_id == t);
    }
    rows.truncate(limit as usize);
    Ok(rows)
}

#[utoipa::path(
    get, path = "/ops/disputes/{dispute_id}", tag = "Operations console", params(("dispute_id" = String, Path)),
    responses(
        (status = 200, body = OpsDisputeView), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn get_dispute(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> ApiResult<Reply> {
    let record = load(&state, &staff, Action::ViewDisputes, &id).await?;
    Reply::ok(&detail(&state, &record).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeAssignRequest {
    /// An operator who may work disputes; null unassigns.
    pub assignee_id: Option<String>,
}

#[utoipa::path(
    post, path = "/ops/disputes/{dispute_id}/assign", tag = "Operations console",
    params(("dispute_id" = String, Path)), request_body = DisputeAssignRequest,
    responses(
        (status = 200, body = OpsDisputeView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn assign_dispute(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DisputeAssignRequest>,
) -> ApiResult<Reply> {
    let record = assign(&state, &staff, &id, req.assignee_id.as_deref()).await?;
    Reply::ok(&detail(&state, &record).await?)
}

/// Assigns a dispute to someone who may work disputes (`None` unassigns); shared with the console.
pub async fn assign(state: &AppState, staff: &Staff, id: &str, assignee_id: Option<&str>) -> ApiResult<DisputeRecord> {
    let record = load(state, staff, Action::WorkDisputes, id).await?;
    let assignee = load_assignee(state, assignee_id, |p| p.can(Action::WorkDisputes)).await?;
    let details = serde_json::json!({ "from": record.assignee_id, "to": assignee });
    act(
        state,
        staff,
        &record,
        Step::Assign(assignee),
        "dispute.assigned",
        details,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeNoteRequest {
    pub body: String,
}

#[utoipa::path(
    post, path = "/ops/disputes/{dispute_id}/notes", tag = "Operations console",
    params(("dispute_id" = String, Path)), request_body = DisputeNoteRequest,
    responses(
        (status = 200, body = OpsDisputeView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn add_note(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DisputeNoteRequest>,
) -> ApiResult<Reply> {
    let record = add_dispute_note(&state, &staff, &id, &req.body).await?;
    Reply::ok(&detail(&state, &record).await?)
}

/// Adds a note to a dispute; shared with the console.
pub async fn add_dispute_note(state: &AppState, staff: &Staff, id: &str, body: &str) -> ApiResult<DisputeRecord> {
    let record = load(state, staff, Action::WorkDisputes, id).await?;
    let body = body.trim().to_owned();
    if body.is_empty() || body.chars().count() > 5_000 {
        return Err(bad("body", "1 to 5,000 characters"));
    }
    let step = Step::Note(staff.person.id.clone(), body);
    act(state, staff, &record, step, "dispute.note_added", serde_json::json!({})).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeActionRequest {
    /// The issuer's steps: `request_evidence`, `submit`, `deny`, `accept_representment`,
    /// `pre_arbitrate`, `arbitrate`; provisional credit by hand: `grant_provisional_credit`,
    /// `reverse_provisional_credit`; what the network answered: `merchant_accept`,
    /// `representment`, `ruling`.
    #[schema(example = "submit")]
    pub action: Option<String>,
    /// For `ruling`: cardholder, merchant or partial.
    pub ruling: Option<String>,
    /// For a partial ruling (minor units).
    pub recovered_amount: Option<i64>,
    /// Required for `deny` and the provisional-credit actions; kept with the case and the audit entry.
    pub reason: Option<String>,
}

#[utoipa::path(
    post, path = "/ops/disputes/{dispute_id}/actions", tag = "Operations console",
    params(("dispute_id" = String, Path)), request_body = DisputeActionRequest,
    responses(
        (status = 200, body = OpsDisputeView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "An illegal step for the case's status (its own code), or credit already granted / none to reverse", body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn act_on_dispute(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DisputeActionRequest>,
) -> ApiResult<Reply> {
    let record = take_action(&state, &staff, &id, &req).await?;
    Reply::ok(&detail(&state, &record).await?)
}

/// One of the issuer's steps, a network answer or provisional credit by hand (the reason rules
/// live here); shared with the console.
pub async fn take_action(
    state: &AppState,
    staff: &Staff,
    id: &str,
    req: &DisputeActionRequest,
) -> ApiResult<DisputeRecord> {
    let record = load(state, staff, Action::WorkDisputes, id).await?;
    let action = req
        .action
        .clone()
        .ok_or_else(|| ApiError::invalid("parameter_missing", "`action` is required").with_param("action"))?;
    let reason = req
        .reason
        .clone()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(bad("reason", "at most 500 characters"));
    }
    let needs_reason = matches!(
        action.as_str(),
        "deny" | "grant_provisional_credit" | "reverse_provisional_credit"
    );
    if needs_reason && reason.is_none() {
        return Err(ApiError::invalid("parameter_missing", "this action needs a `reason`").with_param("reason"));
    }
    let step = match action.as_str() {
        "request_evidence" => Step::Move(DisputeEvent::RequestEvidence, reason.clone()),
        "deny" => Step::Move(DisputeEvent::Deny, reason.clone()),
        "grant_provisional_credit" => Step::GrantCredit,
        "reverse_provisional_credit" => Step::ReverseCredit,
        other => Step::Move(
            network_event(
                other,
                req.ruling.as_deref(),
                req.recovered_amount,
                record.dispute.state.status,
            )?,
            reason.clone().or_else(|| Some(other.to_owned())),
        ),
    };
    let details = serde_json::json!({
        "action": action,
        "reason": reason,
        "ruling": req.ruling,
        "recovered_amount": req.recovered_amount,
        "from_status": record.dispute.state.status.as_str(),
    });
    act(state, staff, &record, step, &format!("dispute.{action}"), details).await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DisputeReportQuery {
    pub tenant_id: Option<String>,
    /// sandbox or live (with `tenant_id`; default live).
    pub environment: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[utoipa::path(
    get, path = "/ops/reports/disputes", tag = "Operations console", params(DisputeReportQuery),
    responses(
        (status = 200, description = "JSON, or text/csv with `format=csv`", body = DisputeReport),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn dispute_report(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<DisputeReportQuery>,
) -> ApiResult<Response> {
    staff.require(Action::ViewDisputes)?;
    let tenant = match (&q.tenant_id, &staff.person.tenant_id) {
        (Some(raw), _) => Some(TenantId::parse(raw).map_err(|_| bad("tenant_id", "not a tenant id"))?),
        (None, own) => own.clone(),
    };
    let scope = match tenant {
        None => None,
        Some(t) => {
            staff.require_in(Action::ViewDisputes, &t, "tenant")?;
            let environment = match q.environment.as_deref() {
                None | Some("live") => cardplane_domain::Environment::Live,
                Some("sandbox") => cardplane_domain::Environment::Sandbox,
                Some(_) => return Err(bad("environment", "sandbox or live")),
            };
            Some(Scope {
                tenant_id: t,
                environment,
            })
        }
    };
    let report = state
        .disputes
        .report(scope.as_ref(), Timestamp::now())
        .await
        .map_err(dispute_error)?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Reply::ok(&report)?.into_response()),
        Some("csv") => {
            let mut r = (StatusCode::OK, report.to_csv()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            Ok(r)
        }
        Some(_) => Err(bad("format", "json or csv")),
    }
}
