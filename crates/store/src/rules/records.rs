//! A rule and its versions as the store keeps them, and what one rule change writes.

use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{AuthorizationRuleId, BacktestId, TenantId};
use cardplane_domain::rules::{RuleKind, VersionState};

use crate::{EffectRecords, Scope};

/// A rule's row: whom it belongs to and which of its versions is active and which is the draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    pub id: AuthorizationRuleId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub scope_kind: ControlScopeKind,
    /// The internal id the engine matches (a program's `prog_...`).
    pub scope_id: String,
    /// The id as the tenant named it (a program's own `program_id`).
    pub scope_ref: String,
    pub kind: RuleKind,
    pub active_version: Option<i64>,
    pub draft_version: Option<i64>,
    pub latest_version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl RuleRecord {
    /// What a concurrent change must not have moved.
    pub fn stamp(&self) -> RuleStamp {
        RuleStamp {
            active_version: self.active_version,
            draft_version: self.draft_version,
            latest_version: self.latest_version,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleStamp {
    pub active_version: Option<i64>,
    pub draft_version: Option<i64>,
    pub latest_version: i64,
}

/// One immutable version: its definition never changes, only its state and who promoted it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleVersionRecord {
    pub rule_id: AuthorizationRuleId,
    pub version: i64,
    pub state: VersionState,
    /// `{name, priority, type, parameters}` as submitted (names and priorities filled in).
    pub definition: serde_json::Value,
    pub created_by: String,
    pub created_at: Timestamp,
    pub promoted_by: Option<String>,
    pub promoted_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
}

/// A rule with the versions that run: the active one and the draft (shadow).
#[derive(Debug, Clone)]
pub struct RuleWithVersions {
    pub rule: RuleRecord,
    pub active: Option<RuleVersionRecord>,
    pub draft: Option<RuleVersionRecord>,
}

/// One change to a rule, written in one transaction with the rules stamp of the tenant's
/// programs, the velocity counters the change starts or stops using, the events and the
/// idempotent answer / audit entry.
pub struct RuleWrite<'a> {
    pub rule: &'a RuleRecord,
    /// None: a new rule. Otherwise the stamp the change was planned from (a `Conflict` when it
    /// moved).
    pub expected: Option<RuleStamp>,
    /// Versions inserted (new) or whose state changed (existing; the definition is not touched).
    pub versions: &'a [RuleVersionRecord],
    pub events: &'a [Event],
    pub records: Option<&'a EffectRecords>,
}

#[derive(Debug, Clone, Default)]
pub struct RuleFilter {
    pub scope_kind: Option<ControlScopeKind>,
    pub scope_ref: Option<String>,
}

crate::store_enum!(BacktestStatus {
    Queued => "queued",
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

/// A backtest run: what it replays and how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRecord {
    pub id: BacktestId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub rule_id: AuthorizationRuleId,
    pub draft_version: Option<i64>,
    pub active_version: Option<i64>,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub status: BacktestStatus,
    pub processed: i64,
    pub total: i64,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

impl BacktestRecord {
    pub fn scope(&self) -> Scope {
        Scope {
            tenant_id: self.tenant_id.clone(),
            environment: self.environment,
        }
    }
}
