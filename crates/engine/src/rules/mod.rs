//! The rules desk: creating authorization rules, writing new (draft) versions, promoting a draft
//! and disabling a rule. A version's meaning is the domain's (`domain::rules`); this module
//! checks each submitted version once, plans the change of version states, and has the store
//! write it in one transaction with its event and the idempotent answer / audit entry,
//! retrying from a fresh read when a concurrent change to the rule won.

pub mod backtests;
pub mod view;

use std::sync::Arc;

use cardplane_domain::Timestamp;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::error::FieldError;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::AuthorizationRuleId;
use cardplane_domain::ids::BacktestId;
use cardplane_domain::rules::backtest::WINDOW_MAX_SECS;
use cardplane_domain::rules::{RuleDefinition, RuleKind, VersionState};
use cardplane_store::rules::{
    BacktestRecord, BacktestStatus, BacktestStore, RuleRecord, RuleStore, RuleVersionRecord, RuleWithVersions,
    RuleWrite,
};
use cardplane_store::{EffectRecords, Scope, StoreError};
use serde_json::{Value, json};

use view::{RuleEnvelope, RuleView};

/// How a workflow gets what is written with its effect from the answer it is about to give.
pub type Recorder<'a> = &'a (dyn Fn(u16, &str) -> Option<EffectRecords> + Sync);

/// A concurrent change to the same rule is retried this many times before the caller is told
/// to retry.
const ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("no such authorization rule")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("the rule has no draft version to promote")]
    NoDraft,
    #[error("version {0} is not the rule's draft")]
    NotTheDraft(i64),
    #[error("the rule is already disabled")]
    AlreadyDisabled,
    #[error("the backtest window must end after it starts and span at most 93 days")]
    BadWindow,
    #[error("the rule kept changing concurrently; retry")]
    Busy,
    #[error(transparent)]
    Store(StoreError),
}

impl RuleError {
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::NotFound => "resource_missing",
            RuleError::Invalid(_) => "parameter_invalid",
            RuleError::NoDraft => "rule_has_no_draft",
            RuleError::NotTheDraft(_) => "version_not_draft",
            RuleError::AlreadyDisabled => "rule_disabled",
            RuleError::BadWindow => "parameter_invalid",
            RuleError::Busy => "concurrent_update",
            RuleError::Store(_) => "internal_error",
        }
    }
}

impl From<StoreError> for RuleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => RuleError::NotFound,
            e => RuleError::Store(e),
        }
    }
}

/// Whether a new rule's first version is applied at once or runs in shadow as a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Active,
    Shadow,
}

/// Where a rule belongs: the internal id the engine matches and the id as the tenant named it.
#[derive(Debug, Clone)]
pub struct RuleScope {
    pub kind: ControlScopeKind,
    pub id: String,
    pub shown: String,
}

/// A submitted version, not yet checked: `name` and `priority` may be absent (a new version
/// keeps the previous one's).
#[derive(Debug, Clone, Default)]
pub struct Submitted {
    pub name: Option<Value>,
    pub priority: Option<Value>,
    pub kind: Option<Value>,
    pub parameters: Option<Value>,
}

/// One thing done to an existing rule.
#[derive(Debug, Clone)]
pub enum Change {
    NewVersion(Submitted),
    /// The draft becomes active (`Some(v)`: only if `v` is still the draft).
    Promote(Option<i64>),
    Disable,
}

/// A rule to create: where, its first version, and who asks.
#[derive(Debug, Clone)]
pub struct NewRule<'a> {
    pub scope: RuleScope,
    pub submitted: &'a Submitted,
    pub mode: Mode,
    pub by: &'a str,
}

#[derive(Debug)]
pub struct Committed {
    pub rule: RuleWithVersions,
    pub body: String,
}

/// Checks a submitted version for a rule of `scope` and returns the definition to store:
/// `{name, priority, type, parameters}` with the defaults filled in.
pub fn check_definition(submitted: &Submitted, scope: ControlScopeKind, scope_id: &str) -> Result<Value, FieldError> {
    let mut raw = serde_json::Map::new();
    for (field, value) in [
        ("name", &submitted.name),
        ("priority", &submitted.priority),
        ("type", &submitted.kind),
        ("parameters", &submitted.parameters),
    ] {
        if let Some(v) = value {
            raw.insert(field.to_owned(), v.clone());
        }
    }
    let raw = Value::Object(raw);
    let definition = RuleDefinition::parse(&raw, scope, scope_id)?;
    Ok(json!({
        "name": definition.name,
        "priority": definition.priority,
        "type": definition.body.kind().as_str(),
        "parameters": raw["parameters"],
    }))
}

fn body_of(rule: &RuleWithVersions) -> String {
    serde_json::to_string(&RuleEnvelope {
        authorization_rule: RuleView::from(rule),
    })
    .unwrap_or_default()
}

fn event(rule: &RuleWithVersions, kind: EventType, now: Timestamp) -> Event {
    let r = &rule.rule;
    let data = serde_json::to_value(RuleView::from(rule)).unwrap_or_default();
    Event::new(&r.tenant_id, r.environment, kind, r.id.to_string(), data, now)
}

fn retired(v: &RuleVersionRecord, state: VersionState, now: Timestamp) -> RuleVersionRecord {
    RuleVersionRecord {
        state,
        retired_at: Some(now),
        ..v.clone()
    }
}

/// What a change writes: the rule after it and the versions inserted or moved.
struct Plan {
    next: RuleWithVersions,
    versions: Vec<RuleVersionRecord>,
}

fn plan(current: &RuleWithVersions, change: &Change, by: &str, now: Timestamp) -> Result<Plan, RuleError> {
    let mut next = current.clone();
    next.rule.updated_at = now;
    let mut versions = Vec::new();
    match change {
        Change::NewVersion(submitted) => {
            let r = &current.rule;
            // The previous version's name and priority carry over unless given.
            let previous = current.draft.as_ref().or(current.active.as_ref());
            let mut submitted = submitted.clone();
            submitted.kind = Some(Value::from(r.kind.as_str()));
            if submitted.name.is_none() {
                submitted.name = previous.map(|p| p.definition["name"].clone());
            }
            if submitted.priority.is_none() {
                submitted.priority = previous.map(|p| p.definition["priority"].clone());
            }
            let definition = check_definition(&submitted, r.scope_kind, &r.scope_id)?;
            let version = r.latest_version + 1;
            if let Some(draft) = &current.draft {
                versions.push(retired(draft, VersionState::Discarded, now));
            }
            let draft = RuleVersionRecord {
                rule_id: r.id.clone(),
                version,
                state: VersionState::Draft,
                definition,
                created_by: by.to_owned(),
                created_at: now,
                promoted_by: None,
                promoted_at: None,
                retired_at: None,
            };
            versions.push(draft.clone());
            next.rule.draft_version = Some(version);
            next.rule.latest_version = version;
            next.draft = Some(draft);
        }
        Change::Promote(wanted) => {
            let draft = current.draft.as_ref().ok_or(RuleError::NoDraft)?;
            if let Some(v) = wanted
                && *v != draft.version
            {
                return Err(RuleError::NotTheDraft(*v));
            }
            if let Some(active) = &current.active {
                versions.push(retired(active, VersionState::Superseded, now));
            }
            let active = RuleVersionRecord {
                state: VersionState::Active,
                promoted_by: Some(by.to_owned()),
                promoted_at: Some(now),
                ..draft.clone()
            };
            versions.push(active.clone());
            next.rule.active_version = Some(active.version);
            next.rule.draft_version = None;
            next.active = Some(active);
            next.draft = None;
        }
        Change::Disable => {
            if current.active.is_none() && current.draft.is_none() {
                return Err(RuleError::AlreadyDisabled);
            }
            if let Some(active) = &current.active {
                versions.push(retired(active, VersionState::Superseded, now));
            }
            if let Some(draft) = &current.draft {
                versions.push(retired(draft, VersionState::Discarded, now));
            }
            next.rule.active_version = None;
            next.rule.draft_version = None;
            next.active = None;
            next.draft = None;
        }
    }
    Ok(Plan { next, versions })
}

#[derive(Clone)]
pub struct RuleDesk {
    rules: Arc<dyn RuleStore>,
    backtests: Arc<dyn BacktestStore>,
}

impl RuleDesk {
    pub fn new(rules: Arc<dyn RuleStore>, backtests: Arc<dyn BacktestStore>) -> Self {
        RuleDesk { rules, backtests }
    }

    pub fn store(&self) -> &dyn RuleStore {
        self.rules.as_ref()
    }

    pub fn backtests(&self) -> &dyn BacktestStore {
        self.backtests.as_ref()
    }

    /// Queues a backtest of the rule's draft over [start, end) (202 answer).
    pub async fn start_backtest(
        &self,
        scope: &Scope,
        id: &AuthorizationRuleId,
        window: (Timestamp, Timestamp),
        records: Recorder<'_>,
        now: Timestamp,
    ) -> Result<(BacktestRecord, String), RuleError> {
        let (start, end) = window;
        let rule = self.rules.get_rule(scope, id).await?;
        if end <= start || end.as_micros() - start.as_micros() > WINDOW_MAX_SECS * 1_000_000 {
            return Err(RuleError::BadWindow);
        }
        let draft = rule.draft.as_ref().ok_or(RuleError::NoDraft)?;
        let b = BacktestRecord {
            id: BacktestId::generate(),
            tenant_id: scope.tenant_id.clone(),
            environment: scope.environment,
            rule_id: rule.rule.id.clone(),
            draft_version: Some(draft.version),
            active_version: rule.active.as_ref().map(|a| a.version),
            window_start: start,
            window_end: end,
            status: BacktestStatus::Queued,
            processed: 0,
            total: 0,
            result: None,
            error: None,
            created_at: now,
            started_at: None,
            completed_at: None,
        };
        let body = serde_json::to_string(&view::BacktestEnvelope {
            backtest: view::BacktestView::from(&b),
        })
        .unwrap_or_default();
        self.backtests.insert_backtest(&b, records(202, &body).as_ref()).await?;
        Ok((b, body))
    }

    /// Creates a rule with its first version, active or in shadow (201 answer).
    pub async fn create(
        &self,
        scope: &Scope,
        new: NewRule<'_>,
        records: Recorder<'_>,
        now: Timestamp,
    ) -> Result<Committed, RuleError> {
        let NewRule {
            scope: rule_scope,
            submitted,
            mode,
            by,
        } = new;
        let definition = check_definition(submitted, rule_scope.kind, &rule_scope.id)?;
        let kind = definition["type"]
            .as_str()
            .and_then(RuleKind::parse)
            .ok_or_else(|| FieldError::missing("type"))?;
        let id = AuthorizationRuleId::generate();
        let state = match mode {
            Mode::Active => VersionState::Active,
            Mode::Shadow => VersionState::Draft,
        };
        let version = RuleVersionRecord {
            rule_id: id.clone(),
            version: 1,
            state,
            definition,
            created_by: by.to_owned(),
            created_at: now,
            promoted_by: (mode == Mode::Active).then(|| by.to_owned()),
            promoted_at: (mode == Mode::Active).then_some(now),
            retired_at: None,
        };
        let rule = RuleWithVersions {
            rule: RuleRecord {
                id,
                tenant_id: scope.tenant_id.clone(),
                environment: scope.environment,
                scope_kind: rule_scope.kind,
                scope_id: rule_scope.id,
                scope_ref: rule_scope.shown,
                kind,
                active_version: (mode == Mode::Active).then_some(1),
                draft_version: (mode == Mode::Shadow).then_some(1),
                latest_version: 1,
                created_at: now,
                updated_at: now,
            },
            active: (mode == Mode::Active).then(|| version.clone()),
            draft: (mode == Mode::Shadow).then(|| version.clone()),
        };
        let body = body_of(&rule);
        let events = [event(&rule, EventType::AuthorizationRuleCreated, now)];
        self.rules
            .write_rule(
                scope,
                RuleWrite {
                    rule: &rule.rule,
                    expected: None,
                    versions: std::slice::from_ref(&version),
                    events: &events,
                    records: records(201, &body).as_ref(),
                },
                now,
            )
            .await?;
        Ok(Committed { rule, body })
    }

    /// Changes a rule (200 answer), retrying from a fresh read when a concurrent change won.
    pub async fn change(
        &self,
        scope: &Scope,
        id: &AuthorizationRuleId,
        change: Change,
        by: &str,
        records: Recorder<'_>,
        now: Timestamp,
    ) -> Result<Committed, RuleError> {
        for _ in 0..ATTEMPTS {
            let current = self.rules.get_rule(scope, id).await?;
            let Plan { next, versions } = plan(&current, &change, by, now)?;
            let body = body_of(&next);
            let events = [event(&next, EventType::AuthorizationRuleUpdated, now)];
            let written = self
                .rules
                .write_rule(
                    scope,
                    RuleWrite {
                        rule: &next.rule,
                        expected: Some(current.rule.stamp()),
                        versions: &versions,
                        events: &events,
                        records: records(200, &body).as_ref(),
                    },
                    now,
                )
                .await;
            match written {
                Ok(()) => return Ok(Committed { rule: next, body }),
                Err(StoreError::Conflict { constraint }) if constraint == "authorization_rules_version" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RuleError::Busy)
    }
}
