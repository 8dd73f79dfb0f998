//! The audit log: filtered pages (newest first, keyset by sequence number), chain verification on
//! request (it walks the whole log), and the CSV export of `/ops/audit/export`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use cardplane_domain::people::Action;
use serde::Deserialize;

use super::transactions::value;
use super::{Chrome, PageResult, page, when};
use crate::http::people::Staff;
use crate::routes::ops_audit::{AuditQuery, export_csv, filter};
use crate::state::AppState;

const PAGE_SIZE: u32 = 100;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct LogQuery {
    actor_id: Option<String>,
    tenant_id: Option<String>,
    object_id: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before_seq: Option<String>,
}

impl LogQuery {
    fn as_api(&self) -> AuditQuery {
        AuditQuery {
            actor_id: value(&self.actor_id),
            tenant_id: value(&self.tenant_id),
            object_id: value(&self.object_id),
            action: value(&self.action),
            outcome: value(&self.outcome),
            since: value(&self.since),
            until: value(&self.until),
            before_seq: value(&self.before_seq),
            limit: None,
        }
    }

    fn pairs(&self, before_seq: Option<i64>) -> String {
        let q = self.as_api();
        let pairs: Vec<(&str, String)> = [
            ("actor_id", q.actor_id),
            ("tenant_id", q.tenant_id),
            ("object_id", q.object_id),
            ("action", q.action),
            ("outcome", q.outcome),
            ("since", q.since),
            ("until", q.until),
            ("before_seq", before_seq.map(|s| s.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

pub struct EntryRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: &'static str,
    pub failed: bool,
    pub status: String,
    pub details: String,
    pub tenant: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct LogPage {
    chrome: Chrome,
    q: LogQuery,
    rows: Vec<EntryRow>,
    next: Option<i64>,
    error: Option<String>,
    can_export: bool,
    /// The result of a chain verification, when one was asked for.
    verification: Option<(bool, String)>,
}

impl LogPage {
    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    fn next_href(&self, before: &i64) -> String {
        format!("/console/audit?{}", self.q.pairs(Some(*before)))
    }

    fn export_href(&self) -> String {
        format!("/console/audit/export?{}", self.q.pairs(None))
    }
}

async fn log_page(state: &AppState, staff: &Staff, q: LogQuery, verification: Option<(bool, String)>) -> PageResult {
    staff.require(Action::ViewAudit)?;
    let (rows, next, error) = match filter(&q.as_api()) {
        Ok(f) => {
            let mut entries = state.audit.list_audit(&f, PAGE_SIZE + 1).await?;
            let next = (entries.len() > PAGE_SIZE as usize).then(|| {
                entries.truncate(PAGE_SIZE as usize);
                entries.last().map(|e| e.seq).unwrap_or_default()
            });
            let rows = entries
                .iter()
                .map(|e| {
                    let r = &e.record;
                    EntryRow {
                        seq: e.seq,
                        at: when(r.occurred_at),
                        actor: format!("{} {}", r.actor_kind.as_str(), r.actor_id.clone().unwrap_or_default()),
                        action: r.action.clone(),
                        object: match (&r.object_type, &r.object_id) {
                            (Some(t), Some(id)) => format!("{t} {id}"),
                            (_, Some(id)) => id.clone(),
                            _ => String::new(),
                        },
                        outcome: r.outcome.as_str(),
                        failed: r.outcome.as_str() != "success",
                        status: r.status.map(|s| s.to_string()).unwrap_or_default(),
                        details: if r.details.is_null() || r.details == serde_json::json!({}) {
                            String::new()
                        } else {
                            r.details.to_string()
                        },
                        tenant: r.tenant_id.clone().unwrap_or_default(),
                    }
                })
                .collect();
            (rows, next, None)
        }
        Err(e) => (
            Vec::new(),
            None,
            Some(format!(
                "{}: {}",
                e.body.param.clone().unwrap_or_default(),
                e.body.message
            )),
        ),
    };
    let invalid = error.is_some();
    let mut r = page(&LogPage {
        chrome: Chrome::new(staff, "audit"),
        q,
        rows,
        next,
        error,
        can_export: staff.person.can(Action::ExportAudit),
        verification,
    })?;
    if invalid {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

pub async fn log(State(state): State<AppState>, staff: Staff, Query(q): Query<LogQuery>) -> PageResult {
    log_page(&state, &staff, q, None).await
}

/// Walks the whole chain (entries are read in batches; the time grows with the log), then shows
/// the log with the verdict above it.
pub async fn verify(State(state): State<AppState>, staff: Staff, Query(q): Query<LogQuery>) -> PageResult {
    staff.require(Action::ViewAudit)?;
    let verdict = match state.audit.verify_audit().await? {
        Ok((entries, head)) => (
            true,
            format!("The chain is intact: {entries} entries, head hash {head}."),
        ),
        Err(broken) => (false, format!("The chain is broken: {broken}.")),
    };
    log_page(&state, &staff, q, Some(verdict)).await
}

pub async fn export(State(state): State<AppState>, staff: Staff, Query(q): Query<LogQuery>) -> PageResult {
    let f = filter(&q.as_api())?;
    Ok(export_csv(&state, &staff, &f).await?)
}
