//! Authorization rules: the rules and their immutable versions, the velocity counters they keep,
//! and backtests. Every rule change is one transaction that also moves the rules stamp of the
//! tenant's programs and starts or stops the counters it brings into or out of use
//! (`counters`); it is optimistic on the rule's versions.

mod backtests;
mod counters;
mod records;
mod rows;

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::ids::AuthorizationRuleId;
use cardplane_domain::page::{Page, PageRequest};
use cardplane_domain::rules::velocity::CounterRow;
use sqlx::{AssertSqlSafe, Row};

pub use backtests::{BacktestStore, HistoryCursor, RuleSetRow};
pub use records::{
    BacktestRecord, BacktestStatus, RuleFilter, RuleRecord, RuleStamp, RuleVersionRecord, RuleWithVersions, RuleWrite,
};
use rows::{RULE_COLUMNS, VERSION_COLUMNS, rule_from_row, version_from_row};

use crate::effects::{insert_events, write_effect_records};
use crate::sql::{Bind, Filters};
use crate::{Backend, Scope, SqlStore, StoreError};

#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Writes a rule change (see `RuleWrite`); `Conflict` when the rule moved since it was read.
    async fn write_rule(&self, scope: &Scope, write: RuleWrite<'_>, now: Timestamp) -> Result<(), StoreError>;
    async fn get_rule(&self, scope: &Scope, id: &AuthorizationRuleId) -> Result<RuleWithVersions, StoreError>;
    /// A rule in any tenant (the operations console, which checks the tenant itself).
    async fn find_rule(&self, id: &AuthorizationRuleId) -> Result<RuleWithVersions, StoreError>;
    /// Newest first, keyset pages.
    async fn list_rules(
        &self,
        scope: &Scope,
        filter: &RuleFilter,
        page: &PageRequest,
    ) -> Result<Page<RuleWithVersions>, StoreError>;
    /// Every version, oldest first.
    async fn list_rule_versions(
        &self,
        scope: &Scope,
        id: &AuthorizationRuleId,
    ) -> Result<Vec<RuleVersionRecord>, StoreError>;
    /// Every stored bucket of every counter (for checking them against a recomputation).
    async fn velocity_counter_rows(&self) -> Result<Vec<CounterRow>, StoreError>;
}

async fn versions_of(pool: &sqlx::AnyPool, rules: &[RuleRecord]) -> Result<Vec<RuleWithVersions>, StoreError> {
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        let wanted: Vec<i64> = [rule.active_version, rule.draft_version]
            .into_iter()
            .flatten()
            .collect();
        let mut found = Vec::new();
        for v in wanted {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {VERSION_COLUMNS} FROM authorization_rule_versions WHERE rule_id = $1 AND version = $2"
            )))
            .bind(rule.id.as_str())
            .bind(v)
            .fetch_one(pool)
            .await?;
            found.push(version_from_row(&row)?);
        }
        let pick = |v: Option<i64>| v.and_then(|v| found.iter().find(|f| f.version == v).cloned());
        out.push(RuleWithVersions {
            active: pick(rule.active_version),
            draft: pick(rule.draft_version),
            rule: rule.clone(),
        });
    }
    Ok(out)
}

#[async_trait]
impl RuleStore for SqlStore {
    async fn write_rule(&self, scope: &Scope, w: RuleWrite<'_>, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        counters::stamp_rules_change(&mut tx, scope).await?;
        let before = counters::counters_in_use(&mut tx, scope).await?;
        let r = w.rule;
        match w.expected {
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO authorization_rules ({RULE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                )))
                .bind(r.id.as_str())
                .bind(scope.tenant_id.as_str())
                .bind(scope.environment.as_str())
                .bind(r.scope_kind.as_str())
                .bind(r.scope_id.as_str())
                .bind(r.scope_ref.as_str())
                .bind(r.kind.as_str())
                .bind(r.active_version)
                .bind(r.draft_version)
                .bind(r.latest_version)
                .bind(r.created_at.as_micros())
                .bind(r.updated_at.as_micros())
                .execute(&mut *tx)
                .await?;
            }
            Some(expected) => {
                let lock = if self.db.backend() == Backend::Postgres {
                    " FOR UPDATE"
                } else {
                    ""
                };
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {RULE_COLUMNS} FROM authorization_rules WHERE id = $1 AND tenant_id = $2 AND environment = $3{lock}"
                )))
                .bind(r.id.as_str())
                .bind(scope.tenant_id.as_str())
                .bind(scope.environment.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                if rule_from_row(&row)?.stamp() != expected {
                    return Err(StoreError::Conflict {
                        constraint: "authorization_rules_version".into(),
                    });
                }
                sqlx::query(
                    "UPDATE authorization_rules SET active_version = $2, draft_version = $3, latest_version = $4, \
                     updated_at = $5 WHERE id = $1",
                )
                .bind(r.id.as_str())
                .bind(r.active_version)
                .bind(r.draft_version)
                .bind(r.latest_version)
                .bind(r.updated_at.as_micros())
                .execute(&mut *tx)
                .await?;
            }
        }
        for v in w.versions {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO authorization_rule_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (rule_id, version) DO UPDATE SET state = excluded.state, \
                 promoted_by = excluded.promoted_by, promoted_at = excluded.promoted_at, retired_at = excluded.retired_at"
            )))
            .bind(v.rule_id.as_str())
            .bind(v.version)
            .bind(v.state.as_str())
            .bind(v.definition.to_string())
            .bind(v.created_by.as_str())
            .bind(v.created_at.as_micros())
            .bind(v.promoted_by.as_deref())
            .bind(v.promoted_at.map(Timestamp::as_micros))
            .bind(v.retired_at.map(Timestamp::as_micros))
            .execute(&mut *tx)
            .await?;
        }
        let after = counters::counters_in_use(&mut tx, scope).await?;
        counters::reconcile_counters(&mut tx, &before, &after, now).await?;
        insert_events(&mut tx, w.events).await?;
        write_effect_records(&mut tx, scope, w.records, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_rule(&self, scope: &Scope, id: &AuthorizationRuleId) -> Result<RuleWithVersions, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM authorization_rules WHERE id = $1 AND tenant_id = $2 AND environment = $3"
        )))
        .bind(id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        let rule = rule_from_row(&row)?;
        let mut with = versions_of(self.db.reader(), &[rule]).await?;
        with.pop().ok_or(StoreError::NotFound)
    }

    async fn find_rule(&self, id: &AuthorizationRuleId) -> Result<RuleWithVersions, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM authorization_rules WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        let rule = rule_from_row(&row)?;
        let mut with = versions_of(self.db.reader(), &[rule]).await?;
        with.pop().ok_or(StoreError::NotFound)
    }

    async fn list_rules(
        &self,
        scope: &Scope,
        filter: &RuleFilter,
        page: &PageRequest,
    ) -> Result<Page<RuleWithVersions>, StoreError> {
        let filters = || {
            let mut w = Filters::default();
            w.add("tenant_id = ?", Bind::Text(scope.tenant_id.to_string()));
            w.add("environment = ?", Bind::Text(scope.environment.as_str().to_owned()));
            if let Some(kind) = filter.scope_kind {
                w.add("scope_kind = ?", Bind::Text(kind.as_str().to_owned()));
            }
            if let Some(r) = &filter.scope_ref {
                w.add("scope_ref = ?", Bind::Text(r.clone()));
            }
            w
        };
        let base = filters();
        let total_sql = format!("SELECT COUNT(*) AS n FROM authorization_rules{}", base.sql());
        let total: i64 = base.fetch_all(self.db.reader(), total_sql).await?[0].try_get("n")?;
        let mut w = filters();
        let order = match &page.cursor {
            cardplane_domain::page::Cursor::Newest => "DESC",
            cardplane_domain::page::Cursor::After(id) => {
                w.add("id < ?", Bind::Text(id.clone()));
                "DESC"
            }
            cardplane_domain::page::Cursor::Before(id) => {
                w.add("id > ?", Bind::Text(id.clone()));
                "ASC"
            }
        };
        let sql = format!(
            "SELECT {RULE_COLUMNS} FROM authorization_rules{} ORDER BY id {order} LIMIT {}",
            w.sql(),
            i64::from(page.limit) + 1
        );
        let rows = w.fetch_all(self.db.reader(), sql).await?;
        let has_more = rows.len() > page.limit as usize;
        let mut rules = rows
            .iter()
            .take(page.limit as usize)
            .map(rule_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(page.cursor, cardplane_domain::page::Cursor::Before(_)) {
            rules.reverse();
        }
        let items = versions_of(self.db.reader(), &rules).await?;
        Ok(Page { items, has_more, total })
    }

    async fn list_rule_versions(
        &self,
        scope: &Scope,
        id: &AuthorizationRuleId,
    ) -> Result<Vec<RuleVersionRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM authorization_rule_versions v JOIN authorization_rules r ON r.id = v.rule_id \
             WHERE v.rule_id = $1 AND r.tenant_id = $2 AND r.environment = $3 ORDER BY v.version",
            VERSION_COLUMNS
                .split(", ")
                .map(|c| format!("v.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn velocity_counter_rows(&self) -> Result<Vec<CounterRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT counter, scope_id, bucket, amount, count FROM velocity_counters \
             WHERE amount <> 0 OR count <> 0",
        )
        .fetch_all(self.db.reader())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(CounterRow {
                    counter: r.try_get("counter")?,
                    scope_id: r.try_get("scope_id")?,
                    bucket: r.try_get("bucket")?,
                    amount: r.try_get("amount")?,
                    count: r.try_get("count")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| (&a.counter, &a.scope_id, a.bucket).cmp(&(&b.counter, &b.scope_id, b.bucket)));
        Ok(out)
    }
}
