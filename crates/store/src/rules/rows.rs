//! Rule and version rows: their columns and mappings.

use cardplane_domain::Environment;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::ids::{AuthorizationRuleId, TenantId};
use cardplane_domain::rules::{RuleKind, VersionState};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::records::{RuleRecord, RuleVersionRecord};
use crate::StoreError;
use crate::sql::{opt_ts, ts};

pub(super) const RULE_COLUMNS: &str = "id, tenant_id, environment, scope_kind, scope_id, scope_ref, kind, active_version, draft_version, latest_version, created_at, updated_at";

pub(super) const VERSION_COLUMNS: &str =
    "rule_id, version, state, definition, created_by, created_at, promoted_by, promoted_at, retired_at";

fn bad(what: &str) -> StoreError {
    StoreError::corrupt(format!("stored authorization rule {what}"))
}

pub(super) fn rule_from_row(row: &AnyRow) -> Result<RuleRecord, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c);
    Ok(RuleRecord {
        id: AuthorizationRuleId::parse(&text("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&text("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&text("environment")?).ok_or_else(|| bad("environment"))?,
        scope_kind: ControlScopeKind::parse(&text("scope_kind")?).ok_or_else(|| bad("scope"))?,
        scope_id: text("scope_id")?,
        scope_ref: text("scope_ref")?,
        kind: RuleKind::parse(&text("kind")?).ok_or_else(|| bad("kind"))?,
        active_version: row.try_get("active_version")?,
        draft_version: row.try_get("draft_version")?,
        latest_version: row.try_get("latest_version")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(super) fn version_from_row(row: &AnyRow) -> Result<RuleVersionRecord, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c);
    Ok(RuleVersionRecord {
        rule_id: AuthorizationRuleId::parse(&text("rule_id")?).map_err(StoreError::other)?,
        version: row.try_get("version")?,
        state: VersionState::parse(&text("state")?).ok_or_else(|| bad("version state"))?,
        definition: serde_json::from_str(&text("definition")?).map_err(|_| bad("definition"))?,
        created_by: text("created_by")?,
        created_at: ts(row, "created_at")?,
        promoted_by: row.try_get("promoted_by")?,
        promoted_at: opt_ts(row, "promoted_at")?,
        retired_at: opt_ts(row, "retired_at")?,
    })
}
