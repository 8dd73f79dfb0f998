//! How a rule looks on the wire: in API answers and in `authorization_rule.*` event payloads.

use cardplane_store::rules::{RuleVersionRecord, RuleWithVersions};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleScopeView {
    /// program, cardholder or card.
    #[serde(rename = "type")]
    pub kind: String,
    /// The program's own `program_id`, or the cardholder or card id.
    pub id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleVersionView {
    pub version: i64,
    /// draft, active, superseded or discarded.
    pub state: String,
    pub name: String,
    pub priority: i64,
    /// The kind's parameters, as submitted (see docs/API.md, "Authorization rules").
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// The API key (or operator) that wrote it.
    pub created_by: String,
    pub created_at: String,
    pub promoted_by: Option<String>,
    pub promoted_at: Option<String>,
    /// When it was superseded or discarded.
    pub retired_at: Option<String>,
}

impl From<&RuleVersionRecord> for RuleVersionView {
    fn from(v: &RuleVersionRecord) -> Self {
        let d = &v.definition;
        RuleVersionView {
            version: v.version,
            state: v.state.as_str().to_owned(),
            name: d["name"].as_str().unwrap_or_default().to_owned(),
            priority: d["priority"].as_i64().unwrap_or_default(),
            parameters: d["parameters"].clone(),
            created_by: v.created_by.clone(),
            created_at: v.created_at.to_rfc3339(),
            promoted_by: v.promoted_by.clone(),
            promoted_at: v.promoted_at.map(|t| t.to_rfc3339()),
            retired_at: v.retired_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    #[schema(example = "arule_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    pub scope: RuleScopeView,
    /// conditional_action, velocity_limit or merchant_lock.
    #[serde(rename = "type")]
    pub kind: String,
    /// active (a version is applied), shadow (only a draft runs, in shadow) or disabled.
    pub status: String,
    /// The applied version.
    pub active: Option<RuleVersionView>,
    /// The version evaluated in shadow beside it until promoted.
    pub draft: Option<RuleVersionView>,
    pub latest_version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&RuleWithVersions> for RuleView {
    fn from(r: &RuleWithVersions) -> Self {
        let rule = &r.rule;
        let status = match (&r.active, &r.draft) {
            (Some(_), _) => "active",
            (None, Some(_)) => "shadow",
            (None, None) => "disabled",
        };
        RuleView {
            id: rule.id.to_string(),
            livemode: rule.environment.livemode(),
            scope: RuleScopeView {
                kind: rule.scope_kind.as_str().to_owned(),
                id: rule.scope_ref.clone(),
            },
            kind: rule.kind.as_str().to_owned(),
            status: status.to_owned(),
            active: r.active.as_ref().map(RuleVersionView::from),
            draft: r.draft.as_ref().map(RuleVersionView::from),
            latest_version: rule.latest_version,
            created_at: rule.created_at.to_rfc3339(),
            updated_at: rule.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleEnvelope {
    pub authorization_rule: RuleView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleList {
    pub authorization_rules: Vec<RuleEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleVersionList {
    pub versions: Vec<RuleVersionView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestWindowView {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestProgressView {
    /// Authorizations of the window replayed so far.
    pub processed: i64,
    /// Authorizations in the window.
    pub total: i64,
}

/// A backtest, as `GET /authorization_rules/{id}/backtests/{backtest_id}` and the
/// `authorization_rule.backtest.completed` event show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestView {
    #[schema(example = "abt_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    pub rule_id: String,
    /// The draft tested, and the active version it is compared with (null: none).
    pub draft_version: Option<i64>,
    pub active_version: Option<i64>,
    pub window: BacktestWindowView,
    /// queued, running, completed or failed.
    pub status: String,
    pub progress: BacktestProgressView,
    /// Once completed: `authorizations`, `active` and `draft` (each `approved`, `reviewed`,
    /// `declined` with `count` and `amount`), `changed`, and up to 20 `examples`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

impl From<&cardplane_store::rules::BacktestRecord> for BacktestView {
    fn from(b: &cardplane_store::rules::BacktestRecord) -> Self {
        BacktestView {
            id: b.id.to_string(),
            livemode: b.environment.livemode(),
            rule_id: b.rule_id.to_string(),
            draft_version: b.draft_version,
            active_version: b.active_version,
            window: BacktestWindowView {
                start: b.window_start.to_rfc3339(),
                end: b.window_end.to_rfc3339(),
            },
            status: b.status.as_str().to_owned(),
            progress: BacktestProgressView {
                processed: b.processed,
                total: b.total,
            },
            result: b.result.clone(),
            error: b.error.clone(),
            created_at: b.created_at.to_rfc3339(),
            started_at: b.started_at.map(|t| t.to_rfc3339()),
            completed_at: b.completed_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BacktestEnvelope {
    pub backtest: BacktestView,
}
