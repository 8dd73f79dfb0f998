//! Authorization rules: a tenant's rules (newest first, keyset pages) with their status and
//! current version, and one rule with its versions (conditions written out), its backtests and
//! their results; promote and disable through the same rule workflow as `/authorization_rules`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::Environment;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::ids::TenantId;
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Action;
use cardplane_store::Scope;
use cardplane_store::rules::{BacktestRecord, RuleFilter, RuleVersionRecord, RuleWithVersions};
use serde::Deserialize;
use serde_json::Value;

use super::transactions::value;
use super::{Chrome, ConsoleError, PageResult, page, when};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::refused;
use crate::web::{DoneQuery, href};
use crate::workflows::rules::{change_by_staff, load_for, scope_of};

const PAGE_SIZE: u32 = 50;
const BACKTESTS_SHOWN: u32 = 20;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct RuleQuery {
    tenant: Option<String>,
    env: Option<String>,
    program: Option<String>,
    before: Option<String>,
}

pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub active_version: String,
    pub draft_version: String,
    pub latest_version: i64,
    pub tenant: String,
    pub updated: String,
}

fn status_of(r: &RuleWithVersions) -> &'static str {
    match (&r.active, &r.draft) {
        (Some(_), _) => "active",
        (None, Some(_)) => "shadow",
        (None, None) => "disabled",
    }
}

fn row(r: &RuleWithVersions) -> RuleRow {
    let shown = r.active.as_ref().or(r.draft.as_ref());
    let v = |n: Option<i64>| n.map(|n| format!("v{n}")).unwrap_or_else(|| "—".into());
    RuleRow {
        id: r.rule.id.to_string(),
        name: shown
            .and_then(|s| s.definition["name"].as_str())
            .unwrap_or_default()
            .to_owned(),
        scope: format!("{} {}", r.rule.scope_kind.as_str(), r.rule.scope_ref),
        kind: r.rule.kind.as_str(),
        status: status_of(r),
        active_version: v(r.rule.active_version),
        draft_version: v(r.rule.draft_version),
        latest_version: r.rule.latest_version,
        tenant: format!("{} · {}", r.rule.tenant_id, r.rule.environment.as_str()),
        updated: when(r.rule.updated_at),
    }
}

#[derive(Template)]
#[template(path = "console/rules.html")]
struct ListPage {
    chrome: Chrome,
    q: RuleQuery,
    /// Operators choose a tenant; a tenant's users see their own.
    choose_tenant: bool,
    rows: Vec<RuleRow>,
    next: Option<String>,
    error: Option<String>,
}

impl ListPage {
    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    fn next_href(&self, before: &str) -> String {
        let q = &self.q;
        href(
            "/console/rules",
            &[
                ("tenant", q.tenant.as_deref()),
                ("env", q.env.as_deref()),
                ("program", q.program.as_deref()),
                ("before", Some(before)),
            ],
        )
    }
}

/// The tenant and environment a list is about, checked: None when an operator has not chosen.
fn list_scope(staff: &Staff, q: &RuleQuery) -> Result<Option<Scope>, ApiError> {
    let bad = |field: &str, m: &str| ApiError::invalid("parameter_invalid", m.to_owned()).with_param(field);
    let environment = match value(&q.env).as_deref() {
        None | Some("sandbox") => Environment::Sandbox,
        Some("live") => Environment::Live,
        Some(_) => return Err(bad("env", "The environment is sandbox or live")),
    };
    let tenant = match (value(&q.tenant), &staff.person.tenant_id) {
        (Some(raw), _) => TenantId::parse(&raw).map_err(|_| bad("tenant", "That is not a tenant id"))?,
        (None, Some(own)) => own.clone(),
        (None, None) => return Ok(None),
    };
    staff.require_in(Action::ViewPrograms, &tenant, "tenant")?;
    Ok(Some(Scope {
        tenant_id: tenant,
        environment,
    }))
}

pub async fn list(State(state): State<AppState>, staff: Staff, Query(q): Query<RuleQuery>) -> PageResult {
    staff.require(Action::ViewPrograms)?;
    let (rows, next, error) = match list_scope(&staff, &q) {
        Ok(Some(scope)) => {
            let filter = RuleFilter {
                scope_kind: value(&q.program).map(|_| ControlScopeKind::Program),
                scope_ref: value(&q.program),
            };
            let cursor = value(&q.before).map_or(Cursor::Newest, Cursor::After);
            let found = state
                .rules
                .store()
                .list_rules(
                    &scope,
                    &filter,
                    &PageRequest {
                        limit: PAGE_SIZE,
                        cursor,
                    },
                )
                .await?;
            let next = found
                .has_more
                .then(|| found.items.last().map(|r| r.rule.id.to_string()).unwrap_or_default());
            (found.items.iter().map(row).collect(), next, None)
        }
        Ok(None) => (Vec::new(), None, None),
        Err(e) if e.status == StatusCode::BAD_REQUEST => (Vec::new(), None, Some(e.body.message)),
        Err(e) => return Err(e.into()),
    };
    let invalid = error.is_some();
    let mut r = page(&ListPage {
        chrome: Chrome::new(&staff, "rules"),
        choose_tenant: staff.person.tenant_id.is_none(),
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

/// A JSON value as a reader would write it: text bare, lists comma-separated.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A version's parameters as lines to read: conditions as "mcc is one of 7995, 7801", the rest
/// as "name: value".
pub fn describe(parameters: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let Some(map) = parameters.as_object() else {
        return lines;
    };
    if let Some(conditions) = map.get("conditions").and_then(Value::as_array) {
        let how = map.get("match").and_then(Value::as_str).unwrap_or("all");
        lines.push(format!("When {how} of:"));
        for c in conditions {
            lines.push(format!(
                "· {} {} {}",
                plain(&c["attribute"]),
                plain(&c["operation"]).replace('_', " "),
                plain(&c["value"])
            ));
        }
    }
    for (k, v) in map
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "conditions" | "match"))
    {
        let shown = match v {
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| format!("{k} {}", plain(v)))
                .collect::<Vec<_>>()
                .join("; "),
            v => plain(v),
        };
        lines.push(format!("{}: {shown}", k.replace('_', " ")));
    }
    lines
}

pub struct VersionLine {
    pub version: i64,
    pub state: &'static str,
    pub name: String,
    pub priority: i64,
    pub lines: Vec<String>,
    pub created: String,
    pub promoted: String,
}

fn version_line(v: &RuleVersionRecord) -> VersionLine {
    let d = &v.definition;
    VersionLine {
        version: v.version,
        state: v.state.as_str(),
        name: d["name"].as_str().unwrap_or_default().to_owned(),
        priority: d["priority"].as_i64().unwrap_or_default(),
        lines: describe(&d["parameters"]),
        created: format!("{} by {}", when(v.created_at), v.created_by),
        promoted: match (&v.promoted_by, v.promoted_at) {
            (Some(by), Some(at)) => format!("{} by {by}", when(at)),
            _ => String::new(),
        },
    }
}

pub struct BacktestLine {
    pub id: String,
    pub window: String,
    pub versions: String,
    pub status: &'static str,
    pub progress: String,
    /// (outcome, under the active version, under the draft)
    pub outcomes: Vec<(&'static str, String, String)>,
    pub changed: String,
    pub error: String,
}

fn backtest_line(b: &BacktestRecord) -> BacktestLine {
    let result = b.result.clone().unwrap_or(Value::Null);
    let count = |side: &str, outcome: &str| plain(&result[side][outcome]["count"]);
    let outcomes = if result.is_null() {
        Vec::new()
    } else {
        ["approved", "reviewed", "declined"]
            .into_iter()
            .map(|o| (o, count("active", o), count("draft", o)))
            .collect()
    };
    let v = |n: Option<i64>| n.map(|n| format!("v{n}")).unwrap_or_else(|| "none".into());
    BacktestLine {
        id: b.id.to_string(),
        window: format!("{} to {}", when(b.window_start), when(b.window_end)),
        versions: format!("draft {} against active {}", v(b.draft_version), v(b.active_version)),
        status: b.status.as_str(),
        progress: format!("{}/{}", b.processed, b.total),
        outcomes,
        changed: plain(&result["changed"]),
        error: b.error.clone().unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "console/rule.html")]
struct RulePage {
    chrome: Chrome,
    r: RuleRow,
    draft: Option<i64>,
    versions: Vec<VersionLine>,
    backtests: Vec<BacktestLine>,
    can_manage: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn rule_page(
    state: &AppState,
    staff: &Staff,
    id: &str,
    error: Option<String>,
    notice: Option<String>,
) -> Result<RulePage, ConsoleError> {
    let rule = load_for(state, staff, Action::ViewPrograms, id).await?;
    let scope = scope_of(&rule);
    let versions = state.rules.store().list_rule_versions(&scope, &rule.rule.id).await?;
    let backtests = state
        .rules
        .backtests()
        .list_backtests(&scope, &rule.rule.id, BACKTESTS_SHOWN)
        .await?;
    Ok(RulePage {
        chrome: Chrome::new(staff, "rules"),
        draft: rule.rule.draft_version,
        versions: versions.iter().rev().map(version_line).collect(),
        backtests: backtests.iter().map(backtest_line).collect(),
        can_manage: staff.person.can(Action::ManagePrograms),
        r: row(&rule),
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
            ("promote", "The draft is now the active version."),
            ("disable", "The rule is disabled."),
        ])
        .map(str::to_owned);
    page(&rule_page(&state, &staff, &id, None, notice).await?)
}

#[derive(Debug, Deserialize, Default)]
pub struct RuleForm {
    #[serde(default)]
    version: String,
}

/// `POST /console/rules/{id}/{promote|disable}`; refusals (no draft, a newer draft than the one
/// shown, already disabled) are shown in place on the rule page.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<RuleForm>,
) -> PageResult {
    let change = match action.as_str() {
        "promote" => {
            let version = match form.version.trim() {
                "" => None,
                v => Some(v.parse::<i64>().map_err(|_| {
                    ApiError::invalid("parameter_invalid", "The version is a number").with_param("version")
                })?),
            };
            cardplane_engine::rules::Change::Promote(version)
        }
        "disable" => cardplane_engine::rules::Change::Disable,
        _ => return Err(ApiError::not_found("rule action").into()),
    };
    match change_by_staff(&state, &staff, &id, change).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/rules/{id}?done={action}")).into_response()),
        Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
            let html = rule_page(&state, &staff, &id, Some(e.body.message.clone()), None).await?;
            refused(page(&html), &e)
        }
        Err(e) => Err(e.into()),
    }
}
