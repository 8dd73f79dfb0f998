//! The request log in the portal: the tenant's API requests of one environment, newest first,
//! filtered by key, method, status, path, request id or idempotency key, a page at a time; one
//! request's detail with its bodies as stored (masked before they were written, see
//! `cardplane_domain::request_log`).

use askama::Template;
use axum::extract::{Path, Query, State};
use cardplane_domain::ids::{ApiKeyId, RequestLogId};
use cardplane_domain::people::Action;
use cardplane_store::request_log::{LogCursor, RequestLogFilter, RequestLogSummary, StatusFilter, StoredBody};
use serde::Deserialize;

use super::keys::key_names;
use super::{Workspace, chrome};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageResult, href, page, when};

const PAGE_SIZE: u32 = 50;
const METHODS: [&str; 4] = ["GET", "POST", "PATCH", "DELETE"];

/// The list's filters as the form sends them; empty means "any".
#[derive(Debug, Default, Deserialize)]
pub struct RequestsQuery {
    #[serde(default)]
    key: String,
    #[serde(default)]
    method: String,
    /// `404` or a class, `4xx`.
    #[serde(default)]
    status: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    idempotency_key: String,
    /// The next page: entries older than this cursor.
    after: Option<String>,
}

fn some(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `404` → that status, `4xx` → the class; anything else is refused with a reason.
fn parse_status(raw: &str) -> Result<Option<StatusFilter>, String> {
    let raw = raw.trim().to_ascii_lowercase();
    if raw.is_empty() {
        return Ok(None);
    }
    let refused = || format!("Status “{raw}” is neither a status (404) nor a class (4xx).");
    if let Some(class) = raw.strip_suffix("xx") {
        return match class.parse::<u8>() {
            Ok(c @ 1..=5) => Ok(Some(StatusFilter::Class(c))),
            _ => Err(refused()),
        };
    }
    match raw.parse::<u16>() {
        Ok(s @ 100..=599) => Ok(Some(StatusFilter::Exact(s))),
        _ => Err(refused()),
    }
}

impl RequestsQuery {
    fn filter(&self) -> Result<RequestLogFilter, String> {
        let api_key_id = match some(&self.key) {
            Some(k) => Some(ApiKeyId::parse(&k).map_err(|_| format!("“{k}” is not an API key id."))?),
            None => None,
        };
        let method = some(&self.method).map(|m| m.to_ascii_uppercase());
        if let Some(m) = &method
            && !METHODS.contains(&m.as_str())
        {
            return Err(format!("Method “{m}” is not one the API answers."));
        }
        Ok(RequestLogFilter {
            api_key_id,
            method,
            status: parse_status(&self.status)?,
            path_contains: some(&self.path),
            request_id: some(&self.request_id),
            idempotency_key: some(&self.idempotency_key),
            from: None,
            until: None,
        })
    }

    /// The next (older) page's link: the filters in use and the cursor.
    fn next_href(&self, env: &str, after: &LogCursor) -> String {
        href(
            &format!("/portal/{env}/requests"),
            &[
                ("key", Some(&self.key)),
                ("method", Some(&self.method)),
                ("status", Some(&self.status)),
                ("path", Some(&self.path)),
                ("request_id", Some(&self.request_id)),
                ("idempotency_key", Some(&self.idempotency_key)),
                ("after", Some(&after.encode())),
            ],
        )
    }
}

pub struct RequestRow {
    pub id: String,
    pub received: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub latency_ms: String,
    pub key: String,
    pub request_id: String,
    pub idempotency_key: String,
}

/// Milliseconds with one decimal, from microseconds.
pub fn latency_ms(us: i64) -> String {
    format!("{}.{}", us / 1_000, (us % 1_000) / 100)
}

impl RequestRow {
    fn of(e: &RequestLogSummary, key: String) -> Self {
        RequestRow {
            id: e.id.to_string(),
            received: when(e.received_at),
            method: e.method.clone(),
            path: match &e.query {
                Some(q) => format!("{}?{q}", e.path),
                None => e.path.clone(),
            },
            status: e.status,
            latency_ms: latency_ms(e.latency_us),
            key,
            request_id: e.request_id.clone().unwrap_or_default(),
            idempotency_key: e.idempotency_key.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/requests.html")]
struct RequestsPage {
    chrome: Chrome,
    env: &'static str,
    q: RequestsQuery,
    keys: Vec<(String, String)>,
    methods: [&'static str; 4],
    rows: Vec<RequestRow>,
    error: Option<String>,
    retention_days: u32,
    enabled: bool,
    /// The next (older) page's link, when there is one.
    next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Path(env): Path<String>,
    Query(q): Query<RequestsQuery>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    let names = key_names(&state, &ws).await?;
    let after = q.after.as_deref().and_then(LogCursor::parse);
    let (rows, next, error) = match q.filter() {
        Ok(filter) => {
            let found = state
                .request_log
                .list(&ws.scope(), &filter, after.as_ref(), PAGE_SIZE)
                .await?;
            let next = found.next.map(|c| q.next_href(ws.env(), &c));
            let rows = found
                .entries
                .iter()
                .map(|e| {
                    RequestRow::of(
                        e,
                        names
                            .get(&e.api_key_id)
                            .cloned()
                            .unwrap_or_else(|| e.api_key_id.clone()),
                    )
                })
                .collect();
            (rows, next, None)
        }
        Err(reason) => (Vec::new(), None, Some(reason)),
    };
    page(&RequestsPage {
        chrome: chrome(&staff, "requests", Some(&ws)),
        env: ws.env(),
        q,
        keys: names.into_iter().collect(),
        methods: METHODS,
        rows,
        error,
        retention_days: state.config.request_log.retention_days,
        enabled: state.config.request_log.enabled,
        next,
    })
}

pub struct BodyView {
    pub content_type: String,
    /// Pretty-printed when it is JSON; empty when there was no body.
    pub text: String,
    pub length_bytes: i64,
}

impl From<StoredBody> for BodyView {
    fn from(b: StoredBody) -> Self {
        let text = b.text.unwrap_or_default();
        let text = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(text);
        BodyView {
            content_type: b.content_type.unwrap_or_default(),
            text,
            length_bytes: b.length_bytes,
        }
    }
}

#[derive(Template)]
#[template(path = "portal/request.html")]
struct RequestPage {
    chrome: Chrome,
    env: &'static str,
    row: RequestRow,
    route: String,
    /// (heading, element id, body): the request's, then the response's.
    bodies: [(&'static str, &'static str, BodyView); 2],
}

pub async fn show(State(state): State<AppState>, staff: Staff, Path((env, id)): Path<(String, String)>) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    let id = RequestLogId::parse(&id).map_err(|_| ApiError::not_found("request"))?;
    let detail = state.request_log.get(&ws.scope(), &id).await?;
    let names = key_names(&state, &ws).await?;
    let key = names
        .get(&detail.summary.api_key_id)
        .cloned()
        .unwrap_or_else(|| detail.summary.api_key_id.clone());
    page(&RequestPage {
        chrome: chrome(&staff, "requests", Some(&ws)),
        env: ws.env(),
        route: format!("{} {}", detail.summary.method, detail.summary.route),
        row: RequestRow::of(&detail.summary, key),
        bodies: [
            ("Request body", "request-body", detail.request.into()),
            ("Response body", "response-body", detail.response.into()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_filter_takes_a_status_or_a_class() {
        assert_eq!(parse_status(""), Ok(None));
        assert_eq!(parse_status("404"), Ok(Some(StatusFilter::Exact(404))));
        assert_eq!(parse_status(" 4XX "), Ok(Some(StatusFilter::Class(4))));
        assert!(parse_status("9xx").is_err());
        assert!(parse_status("42").is_err());
        assert!(parse_status("abc").is_err());
    }

    #[test]
    fn latency_is_shown_in_milliseconds() {
        assert_eq!(latency_ms(1_234), "1.2");
        assert_eq!(latency_ms(56), "0.0");
        assert_eq!(latency_ms(250_000), "250.0");
    }
}
