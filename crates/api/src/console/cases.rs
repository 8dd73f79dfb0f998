//! The compliance queue: cases with SLA breaches highlighted, and one case with its cardholder,
//! approval chain (who decided each step: four eyes visible), notes and documents; assign, note
//! and decide through the same functions as `/ops/cases`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::Timestamp;
use cardplane_domain::compliance::Case;
use cardplane_domain::ids::{CaseId, UserId};
use cardplane_domain::people::Action;
use cardplane_store::Scope;
use serde::Deserialize;

use super::transactions::value;
use super::{Chrome, ConsoleError, PageResult, RefusalCode, page, when};
use crate::http::error::{ApiError, ApiResult};
use crate::http::people::Staff;
use crate::routes::ops_cases::{CaseQuery, add_case_note, assign, case_filter, decide};
use crate::state::AppState;
use crate::web::{DoneQuery, href};

const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct QueueQuery {
    status: Option<String>,
    assignee: Option<String>,
    overdue: Option<String>,
    before: Option<String>,
}

pub struct CaseRow {
    pub id: String,
    pub cardholder_id: String,
    pub tenant_id: String,
    pub reason: &'static str,
    pub status: &'static str,
    pub assignee: String,
    pub due: String,
    pub overdue: bool,
    pub progress: String,
}

/// Names for user ids, looked up once per page.
pub(super) async fn names(
    state: &AppState,
    ids: impl Iterator<Item = &UserId>,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for id in ids {
        if out.contains_key(id.as_str()) {
            continue;
        }
        let name = match state.people.get_user(id).await {
            Ok(u) => format!("{} ({})", u.person.name, u.person.role.as_str()),
            Err(_) => id.to_string(),
        };
        out.insert(id.to_string(), name);
    }
    out
}

fn row(c: &Case, now: Timestamp, names: &std::collections::BTreeMap<String, String>) -> CaseRow {
    CaseRow {
        id: c.id.to_string(),
        cardholder_id: c.cardholder_id.to_string(),
        tenant_id: c.tenant_id.to_string(),
        reason: c.reason.as_str(),
        status: c.status.as_str(),
        assignee: c
            .assignee_id
            .as_ref()
            .map(|a| names.get(a.as_str()).cloned().unwrap_or_else(|| a.to_string()))
            .unwrap_or_default(),
        due: when(c.due_at),
        overdue: c.overdue(now),
        progress: format!("{}/{}", c.approvals.len(), c.chain.steps.len()),
    }
}

#[derive(Template)]
#[template(path = "console/cases.html")]
struct QueuePage {
    chrome: Chrome,
    q: QueueQuery,
    rows: Vec<CaseRow>,
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
            "/console/cases",
            &[
                ("status", q.status.as_deref()),
                ("assignee", q.assignee.as_deref()),
                ("overdue", q.overdue.as_deref()),
                ("before", Some(before)),
            ],
        )
    }
}

pub async fn queue(State(state): State<AppState>, staff: Staff, Query(q): Query<QueueQuery>) -> PageResult {
    staff.require(Action::ViewCases)?;
    let query = CaseQuery {
        status: value(&q.status),
        assignee: value(&q.assignee),
        overdue: value(&q.overdue),
        starting_after: value(&q.before),
        ..CaseQuery::default()
    };
    let (rows, next, error) = match case_filter(&query, &staff) {
        Ok((filter, _)) => {
            let mut cases = state.compliance.list_cases(&filter, PAGE_SIZE + 1).await?;
            let next = (cases.len() > PAGE_SIZE as usize).then(|| {
                cases.truncate(PAGE_SIZE as usize);
                cases.last().map(|c| c.id.to_string()).unwrap_or_default()
            });
            let names = names(&state, cases.iter().filter_map(|c| c.assignee_id.as_ref())).await;
            let now = Timestamp::now();
            (cases.iter().map(|c| row(c, now, &names)).collect(), next, None)
        }
        Err(e) => (Vec::new(), None, Some(e.body.message)),
    };
    let invalid = error.is_some();
    let mut r = page(&QueuePage {
        chrome: Chrome::new(&staff, "cases"),
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

/// One step of the approval chain as the page shows it.
pub struct StepLine {
    pub role: &'static str,
    /// "approve"/"reject" with who and when, or empty while waiting.
    pub decided: String,
    pub comment: String,
    pub waiting: bool,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage {
    chrome: Chrome,
    case: CaseRow,
    holder_name: String,
    holder_kyc: String,
    steps: Vec<StepLine>,
    /// Who may not decide the next step (four eyes): the people who decided earlier steps.
    excluded: Vec<String>,
    notes: Vec<(String, String, String)>,
    documents: Vec<(String, String, String)>,
    closed: bool,
    can_work: bool,
    can_decide: bool,
    /// Whether this person's own decision is what the next step waits for.
    my_turn: bool,
    assigned_to_me: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn case_page(
    state: &AppState,
    staff: &Staff,
    id: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Result<CasePage, ConsoleError> {
    staff.require(Action::ViewCases)?;
    let id = CaseId::parse(id).map_err(|_| ApiError::not_found("case"))?;
    let case = state.compliance.get_case(&id).await?;
    let scope = Scope {
        tenant_id: case.tenant_id.clone(),
        environment: case.environment,
    };
    let holder = state.cardholders.get_cardholder(&scope, &case.cardholder_id).await?;
    let notes = state.compliance.list_notes(&case.id).await?;
    let documents = state.compliance.list_documents(&case.cardholder_id).await?;
    let people = names(
        state,
        case.approvals
            .iter()
            .map(|a| &a.user_id)
            .chain(case.assignee_id.iter())
            .chain(notes.iter().filter_map(|n| n.author_id.as_ref())),
    )
    .await;
    let name = |id: &UserId| people.get(id.as_str()).cloned().unwrap_or_else(|| id.to_string());
    let next = case.next_step();
    let steps = case
        .chain
        .steps
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let approval = case.approvals.iter().find(|a| a.step == i);
            StepLine {
                role: role.as_str(),
                decided: approval
                    .map(|a| {
                        format!(
                            "{} by {} at {}",
                            a.decision.as_str(),
                            name(&a.user_id),
                            when(a.created_at)
                        )
                    })
                    .unwrap_or_default(),
                comment: approval.and_then(|a| a.comment.clone()).unwrap_or_default(),
                waiting: next.is_some_and(|(n, _)| n == i),
            }
        })
        .collect();
    let excluded = case.approvals.iter().map(|a| name(&a.user_id)).collect();
    let my_turn = next.is_some_and(|(_, role)| {
        staff.person.role == cardplane_domain::people::Role::Operator(role)
            && staff.person.can(Action::DecideCases)
            && !case.approvals.iter().any(|a| a.user_id == staff.person.id)
    });
    let kyc = holder.kyc.result;
    Ok(CasePage {
        chrome: Chrome::new(staff, "cases"),
        holder_name: format!("{} {}", holder.identity.first_name, holder.identity.last_name),
        holder_kyc: kyc.status().as_str().to_owned(),
        steps,
        excluded,
        notes: notes
            .iter()
            .map(|n| {
                (
                    when(n.created_at),
                    n.author_id.as_ref().map(&name).unwrap_or_else(|| "system".into()),
                    n.body.clone(),
                )
            })
            .collect(),
        documents: documents
            .into_iter()
            .map(|d| (when(d.created_at), d.kind, d.file_name))
            .collect(),
        closed: case.status.is_closed(),
        can_work: staff.person.can(Action::WorkCases),
        can_decide: staff.person.can(Action::DecideCases),
        my_turn,
        assigned_to_me: case.assignee_id.as_ref() == Some(&staff.person.id),
        case: row(&case, Timestamp::now(), &people),
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
        .notice(&[
            ("assign", "Assignment saved."),
            ("note", "Note added."),
            ("decide", "Decision recorded."),
        ])
        .map(str::to_owned);
    page(&case_page(&state, &staff, &id, None, notice).await?)
}

#[derive(Debug, Deserialize, Default)]
pub struct CaseForm {
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /console/cases/{id}/{assign|note|decide}`: the `/ops` case functions; refusals (a
/// wrong role, four eyes, an empty note) are shown in place on the case page.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CaseForm>,
) -> PageResult {
    let outcome: ApiResult<()> = match action.as_str() {
        "assign" => {
            let to = match form.assignee.as_str() {
                "me" => Some(staff.person.id.to_string()),
                "" | "none" => None,
                other => Some(other.to_owned()),
            };
            assign(&state, &staff, &id, to.as_deref()).await.map(|_| ())
        }
        "note" => add_case_note(&state, &staff, &id, &form.body).await.map(|_| ()),
        "decide" => {
            let comment = Some(form.comment.trim()).filter(|c| !c.is_empty());
            decide(&state, &staff, &id, &form.decision, comment).await.map(|_| ())
        }
        _ => return Err(ApiError::not_found("case action").into()),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/console/cases/{id}?done={action}")).into_response()),
        Err(e)
            if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN && e.status != StatusCode::NOT_FOUND =>
        {
            let status = e.status;
            let code = e.body.code.clone();
            let mut r = page(&case_page(&state, &staff, &id, Some(e.body.message), None).await?)?;
            *r.status_mut() = status;
            r.extensions_mut().insert(RefusalCode(code));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
