//! The dispute queue (nearest deadline first; deadlines at risk highlighted) and one dispute with
//! its notes and evidence; assign, notes and the issuer's steps through the `/ops/disputes`
//! functions.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::Timestamp;
use cardplane_domain::people::Action;
use cardplane_engine::disputes::view::{OpsDisputeRow, OpsDisputeView};
use serde::Deserialize;

use super::transactions::value;
use super::{Chrome, ConsoleError, PageResult, RefusalCode, money, page};
use crate::http::error::ApiResult;
use crate::http::people::Staff;
use crate::routes::ops_disputes::{
    DisputeActionRequest, DisputeQueueQuery, add_dispute_note, assign, detail as dispute_detail, load,
    queue as dispute_queue, take_action,
};
use crate::state::AppState;
use crate::web::DoneQuery;

/// The issuer's steps and network answers the page offers (`/ops` decides which the status allows).
const ACTIONS: [&str; 10] = [
    "request_evidence",
    "submit",
    "deny",
    "accept_representment",
    "pre_arbitrate",
    "arbitrate",
    "grant_provisional_credit",
    "reverse_provisional_credit",
    "merchant_accept",
    "representment",
];

#[derive(Debug, Deserialize, Default, Clone)]
pub struct DisputeQuery {
    status: Option<String>,
    tenant: Option<String>,
}

#[derive(Template)]
#[template(path = "console/disputes.html")]
struct QueuePage {
    chrome: Chrome,
    q: DisputeQuery,
    rows: Vec<OpsDisputeRow>,
    error: Option<String>,
}

impl QueuePage {
    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    fn amount(&self, r: &OpsDisputeRow) -> String {
        money(r.dispute.amount, &r.dispute.currency)
    }
}

pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<DisputeQuery>) -> PageResult {
    let query = DisputeQueueQuery {
        tenant_id: value(&q.tenant),
        status: value(&q.status),
        limit: Some("200".into()),
        ..DisputeQueueQuery::default()
    };
    let (rows, error) = match dispute_queue(&state, &staff, &query).await {
        Ok(rows) => {
            let now = Timestamp::now();
            (rows.iter().map(|r| OpsDisputeRow::of(r, now)).collect(), None)
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => (Vec::new(), Some(e.body.message)),
        Err(e) => return Err(e.into()),
    };
    let invalid = error.is_some();
    let mut r = page(&QueuePage {
        chrome: Chrome::new(&staff, "disputes"),
        q,
        rows,
        error,
    })?;
    if invalid {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

#[derive(Template)]
#[template(path = "console/dispute.html")]
struct DisputePage {
    chrome: Chrome,
    d: OpsDisputeView,
    amount: String,
    credit: String,
    can_work: bool,
    assigned_to_me: bool,
    actions: [&'static str; 10],
    error: Option<String>,
    notice: Option<String>,
}

async fn dispute_page(
    state: &AppState,
    staff: &Staff,
    id: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Result<DisputePage, ConsoleError> {
    let record = load(state, staff, Action::ViewDisputes, id).await?;
    let d = dispute_detail(state, &record).await?;
    Ok(DisputePage {
        chrome: Chrome::new(staff, "disputes"),
        amount: money(d.dispute.amount, &d.dispute.currency),
        credit: money(d.dispute.provisional_credit.amount, &d.dispute.currency),
        can_work: staff.person.can(Action::WorkDisputes),
        assigned_to_me: record.assignee_id.as_ref() == Some(&staff.person.id),
        actions: ACTIONS,
        d,
        error,
        notice,
    })
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let notice = q
        .notice(&[
            ("assign", "Assignment saved."),
            ("note", "Note added."),
            ("action", "Dispute updated."),
        ])
        .map(str::to_owned);
    page(&dispute_page(&state, &staff, &id, None, notice).await?)
}

#[derive(Debug, Deserialize, Default)]
pub struct DisputeForm {
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/disputes/{id}/{assign|note|action}`; refusals shown in place.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, what)): Path<(String, String)>,
    Form(form): Form<DisputeForm>,
) -> PageResult {
    let outcome: ApiResult<()> = match what.as_str() {
        "assign" => {
            let to = match form.assignee.as_str() {
                "me" => Some(staff.person.id.to_string()),
                _ => None,
            };
            assign(&state, &staff, &id, to.as_deref()).await.map(|_| ())
        }
        "note" => add_dispute_note(&state, &staff, &id, &form.body).await.map(|_| ()),
        "action" => {
            let req = DisputeActionRequest {
                action: Some(form.action.clone()),
                reason: Some(form.reason.clone()),
                ..DisputeActionRequest::default()
            };
            take_action(&state, &staff, &id, &req).await.map(|_| ())
        }
        _ => return Err(crate::http::error::ApiError::not_found("dispute action").into()),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/console/disputes/{id}?done={what}")).into_response()),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            let status = e.status;
            let code = e.body.code.clone();
            let mut r = page(&dispute_page(&state, &staff, &id, Some(e.body.message), None).await?)?;
            *r.status_mut() = status;
            r.extensions_mut().insert(RefusalCode(code));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
