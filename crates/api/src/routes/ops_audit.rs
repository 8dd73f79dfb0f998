//! `/ops/audit`: the audit log, filtered, as JSON pages or a CSV export.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::Timestamp;
use cardplane_domain::audit::{AuditEntry, Outcome};
use cardplane_domain::people::Action;
use cardplane_store::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::StrictQuery;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An API key or user id.
    pub actor_id: Option<String>,
    pub tenant_id: Option<String>,
    /// The affected object's id.
    pub object_id: Option<String>,
    /// An exact action (`case.decided`, `POST /cards/{card_id}/reveal`) or a prefix ending in `*`.
    pub action: Option<String>,
    /// success or failure.
    pub outcome: Option<String>,
    /// RFC 3339: entries at or after.
    pub since: Option<String>,
    /// RFC 3339: entries before.
    pub until: Option<String>,
    /// 1 to 500, default 100 (the CSV export ignores it and streams up to 100,000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// A sequence number: entries older than it.
    #[param(value_type = Option<i64>)]
    pub before_seq: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub id: String,
    pub occurred_at: String,
    /// api_key, user, system or cli.
    pub actor_kind: &'static str,
    pub actor_id: Option<String>,
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    pub action: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: &'static str,
    pub status: Option<u16>,
    pub origin_ip: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub hash: String,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        let r = &e.record;
        AuditEntryView {
            seq: e.seq,
            id: e.id.clone(),
            occurred_at: r.occurred_at.to_rfc3339(),
            actor_kind: r.actor_kind.as_str(),
            actor_id: r.actor_id.clone(),
            tenant_id: r.tenant_id.clone(),
            environment: r.environment.clone(),
            action: r.action.clone(),
            object_type: r.object_type.clone(),
            object_id: r.object_id.clone(),
            outcome: r.outcome.as_str(),
            status: r.status,
            origin_ip: r.origin_ip.clone(),
            request_id: r.request_id.clone(),
            details: r.details.clone(),
            hash: e.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    pub has_more: bool,
}

fn bad(param: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message).with_param(param)
}

fn time(param: &str, raw: &Option<String>) -> ApiResult<Option<Timestamp>> {
    raw.as_deref()
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(|d| Timestamp::from_micros(i64::try_from(d.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)))
                .map_err(|_| bad(param, "an RFC 3339 time"))
        })
        .transpose()
}

/// The query as a store filter, each bad field named; shared by `/ops/audit` and the console.
pub fn filter(q: &AuditQuery) -> ApiResult<AuditFilter> {
    let bounded = |param: &str, v: &Option<String>| -> ApiResult<Option<String>> {
        match v {
            Some(s) if s.is_empty() || s.len() > 200 => Err(bad(param, "between 1 and 200 characters")),
            other => Ok(other.clone()),
        }
    };
    Ok(AuditFilter {
        actor_id: bounded("actor_id", &q.actor_id)?,
        tenant_id: bounded("tenant_id", &q.tenant_id)?,
        object_id: bounded("object_id", &q.object_id)?,
        action: bounded("action", &q.action)?,
        outcome: q
            .outcome
            .as_deref()
            .map(|o| Outcome::parse(o).ok_or_else(|| bad("outcome", "success or failure")))
            .transpose()?,
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
        before_seq: q
            .before_seq
            .as_deref()
            .map(|s| s.parse::<i64>().map_err(|_| bad("before_seq", "a sequence number")))
            .transpose()?,
    })
}

#[utoipa::path(
    get, path = "/ops/audit", tag = "Operations console",
    params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<AuditQuery>,
) -> ApiResult<Reply> {
    staff.require(Action::ViewAudit)?;
    let f = filter(&q)?;
    let limit = match &q.limit {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| bad("limit", "between 1 and 500"))?,
    };
    let mut entries = state.audit.list_audit(&f, limit + 1).await?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Reply::ok(&AuditPage {
        entries: entries.iter().map(AuditEntryView::from).collect(),
        has_more,
    })
}

const EXPORT_MAX_ROWS: u32 = 100_000;

#[utoipa::path(
    get, path = "/ops/audit/export", tag = "Operations console",
    params(AuditQuery),
    responses(
        (status = 200, description = "text/csv, newest first", content_type = "text/csv"),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn export_audit(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<AuditQuery>,
) -> ApiResult<Response> {
    staff.require(Action::ExportAudit)?;
    let f = filter(&q)?;
    export_csv(&state, &staff, &f).await
}

/// The filtered log as CSV (newest first, at most `EXPORT_MAX_ROWS`), the export itself audited;
/// shared by `/ops/audit/export` and the console.
pub async fn export_csv(state: &AppState, staff: &Staff, f: &AuditFilter) -> ApiResult<Response> {
    staff.require(Action::ExportAudit)?;
    let entries = state.audit.list_audit(f, EXPORT_MAX_ROWS).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "seq",
        "id",
        "occurred_at",
        "actor_kind",
        "actor_id",
        "tenant_id",
        "environment",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "status",
        "origin_ip",
        "request_id",
        "details",
        "prev_hash",
        "hash",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    for e in &entries {
        let r = &e.record;
        out.write_record([
            e.seq.to_string(),
            e.id.clone(),
            r.occurred_at.to_rfc3339(),
            r.actor_kind.as_str().to_owned(),
            r.actor_id.clone().unwrap_or_default(),
            r.tenant_id.clone().unwrap_or_default(),
            r.environment.clone().unwrap_or_default(),
            csv_safe(&r.action),
            r.object_type.clone().unwrap_or_default(),
            csv_safe(r.object_id.as_deref().unwrap_or_default()),
            r.outcome.as_str().to_owned(),
            r.status.map(|s| s.to_string()).unwrap_or_default(),
            r.origin_ip.clone().unwrap_or_default(),
            r.request_id.clone().unwrap_or_default(),
            csv_safe(&r.details.to_string()),
            e.prev_hash.clone(),
            e.hash.clone(),
        ])
        .map_err(ApiError::internal)?;
    }
    let body = out.into_inner().map_err(ApiError::internal)?;
    let mut audit = staff.audit("audit.exported", "audit_log", "audit_log");
    audit.details = serde_json::json!({ "rows": entries.len() });
    state.audit.append_audit(&audit).await?;
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"cardplane-audit.csv\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Spreadsheets run cells starting with = + - @ as formulas (CSV injection): prefix a quote.
fn csv_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}
