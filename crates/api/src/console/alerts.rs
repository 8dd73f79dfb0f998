//! The fraud alert queue (newest first, keyset pages) and one alert with what raised it and the
//! authorization's decision trace; assign and resolve through the same workflow as `/ops/alerts`.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::alert::Alert;
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Action;
use serde::Deserialize;

use super::cases::names;
use super::transactions::value;
use super::{Chrome, ConsoleError, PageResult, page, when};
use crate::http::error::{ApiError, ApiResult};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{DoneQuery, href};
use crate::web::{TraceLine, refused, trace_lines};
use crate::workflows::alerts::{self as workflow, QueueAsk, Resolve};

const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct AlertQuery {
    status: Option<String>,
    assignee: Option<String>,
    tenant: Option<String>,
    before: Option<String>,
}

pub struct AlertRow {
    pub id: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub resolution: &'static str,
    pub detail: String,
    pub card_id: String,
    pub transaction_id: String,
    pub tenant_id: String,
    pub environment: &'static str,
    pub risk_score: i64,
    pub rule: Option<(String, i64)>,
    pub assignee: String,
    pub created: String,
}

fn row(a: &Alert, names: &BTreeMap<String, String>) -> AlertRow {
    let name = |id: &cardplane_domain::ids::UserId| names.get(id.as_str()).cloned().unwrap_or_else(|| id.to_string());
    AlertRow {
        id: a.id.to_string(),
        kind: a.kind.as_str(),
        status: a.status.as_str(),
        resolution: a.resolution.map(|r| r.as_str()).unwrap_or_default(),
        detail: a.detail.clone(),
        card_id: a.card_id.to_string(),
        transaction_id: a.transaction_id.to_string(),
        tenant_id: a.tenant_id.to_string(),
        environment: a.environment.as_str(),
        risk_score: a.risk_score,
        rule: a
            .rule_id
            .as_ref()
            .map(|r| (r.to_string(), a.rule_version.unwrap_or_default())),
        assignee: a.assignee.as_ref().map(name).unwrap_or_default(),
        created: when(a.created_at),
    }
}

#[derive(Template)]
#[template(path = "console/alerts.html")]
struct QueuePage {
    chrome: Chrome,
    q: AlertQuery,
    rows: Vec<AlertRow>,
    next: Option<String>,
    error: Option<String>,
}

impl QueuePage {
    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    fn next_href(&self, before: &str) -> String {
        let q = &self.q;
        href(
            "/console/alerts",
            &[
                ("status", q.status.as_deref()),
                ("assignee", q.assignee.as_deref()),
                ("tenant", q.tenant.as_deref()),
                ("before", Some(before)),
            ],
        )
    }
}

pub async fn queue(State(state): State<AppState>, staff: Staff, Query(q): Query<AlertQuery>) -> PageResult {
    staff.require(Action::ViewAlerts)?;
    let me = staff.person.id.to_string();
    let assignee = value(&q.assignee).map(|a| if a == "me" { me.clone() } else { a });
    let (tenant, status) = (value(&q.tenant), value(&q.status));
    let ask = QueueAsk {
        tenant_id: tenant.as_deref(),
        status: status.as_deref(),
        kind: None,
        card_id: None,
        assignee_id: assignee.as_deref(),
    };
    let (rows, next, error) = match workflow::queue_filter(&staff, &ask) {
        Ok(filter) => {
            let cursor = value(&q.before).map_or(Cursor::Newest, Cursor::After);
            let found = state
                .alerts
                .list_alerts(
                    &filter,
                    &PageRequest {
                        limit: PAGE_SIZE,
                        cursor,
                    },
                )
                .await?;
            let next = found
                .has_more
                .then(|| found.items.last().map(|a| a.id.to_string()).unwrap_or_default());
            let names = names(&state, found.items.iter().filter_map(|a| a.assignee.as_ref())).await;
            (found.items.iter().map(|a| row(a, &names)).collect(), next, None)
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => (Vec::new(), None, Some(e.body.message)),
        Err(e) => return Err(e.into()),
    };
    let invalid = error.is_some();
    let mut r = page(&QueuePage {
        chrome: Chrome::new(&staff, "alerts"),
        q,
        rows,
        next,
        error,
    })?;
    if invalid {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

#[derive(Template)]
#[template(path = "console/alert.html")]
struct AlertPage {
    chrome: Chrome,
    a: AlertRow,
    note: String,
    resolved_by: String,
    resolved_at: String,
    card_frozen: bool,
    open: bool,
    /// The authorization's decision trace, step by step.
    trace: Vec<TraceLine>,
    /// Operators who may work alerts: (id, name), for "assign to".
    workers: Vec<(String, String)>,
    can_work: bool,
    assigned_to_me: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn alert_page(
    state: &AppState,
    staff: &Staff,
    id: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Result<AlertPage, ConsoleError> {
    let alert = workflow::load(state, staff, Action::ViewAlerts, id).await?;
    let trace = match state.transactions.find_transaction(&alert.transaction_id).await {
        Ok(t) => trace_lines(&t.decision_trace),
        Err(cardplane_store::StoreError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let can_work = staff.person.can(Action::WorkAlerts);
    let workers = if can_work {
        let people = state.people.list_users(None).await?;
        people
            .into_iter()
            .filter(|p| !p.disabled && p.can(Action::WorkAlerts))
            .map(|p| (p.id.to_string(), format!("{} ({})", p.name, p.role.as_str())))
            .collect()
    } else {
        Vec::new()
    };
    let people = names(state, alert.assignee.iter().chain(alert.resolved_by.iter())).await;
    let resolved_by = alert
        .resolved_by
        .as_ref()
        .map(|u| people.get(u.as_str()).cloned().unwrap_or_else(|| u.to_string()))
        .unwrap_or_default();
    Ok(AlertPage {
        chrome: Chrome::new(staff, "alerts"),
        note: alert.resolution_note.clone().unwrap_or_default(),
        resolved_by,
        resolved_at: alert.resolved_at.map(when).unwrap_or_default(),
        card_frozen: alert.card_frozen,
        open: alert.status != cardplane_domain::alert::AlertStatus::Resolved,
        trace,
        workers,
        can_work,
        assigned_to_me: alert.assignee.as_ref() == Some(&staff.person.id),
        a: row(&alert, &people),
        error,
        notice,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let notice = q
        .notice(&[("assign", "Assignment saved."), ("resolve", "Alert resolved.")])
        .map(str::to_owned);
    page(&alert_page(&state, &staff, &id, None, notice).await?)
}

#[derive(Debug, Deserialize, Default)]
pub struct AlertForm {
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    resolution: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    freeze_card: Option<String>,
}

/// `POST /console/alerts/{id}/{assign|resolve}`; refusals (a resolved alert, a missing note)
/// are shown in place on the alert page.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<AlertForm>,
) -> PageResult {
    let outcome: ApiResult<Alert> = match action.as_str() {
        "assign" => {
            let to = match form.assignee.as_str() {
                "" | "me" => None,
                other => Some(other),
            };
            workflow::assign(&state, &staff, &id, to).await
        }
        "resolve" => {
            let req = Resolve {
                resolution: Some(form.resolution.as_str()).filter(|r| !r.is_empty()),
                note: Some(form.note.as_str()),
                freeze_card: form.freeze_card.is_some(),
                note_required: true,
            };
            workflow::resolve(&state, &staff, &id, &req).await
        }
        _ => return Err(ApiError::not_found("alert action").into()),
    };
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/console/alerts/{id}?done={action}")).into_response()),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            let html = alert_page(&state, &staff, &id, Some(e.body.message.clone()), None).await?;
            refused(page(&html), &e)
        }
        Err(e) => Err(e.into()),
    }
}
