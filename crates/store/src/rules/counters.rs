//! What every rule change does beside itself, in its own transaction: it moves the rules stamp of
//! the tenant's programs (after waiting for the batches deciding with the old rules), and it
//! starts and stops the velocity counters the change brings into or out of use. A counter that
//! starts is seeded from the stored history of its rule's scope, so a velocity rule created
//! after some approvals counts them; a counter no longer read is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use cardplane_domain::Timestamp;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::rules::RuleDefinition;
use cardplane_domain::rules::velocity::{CounterSpec, RETENTION_SECS, VelocityBook};
use futures::TryStreamExt;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::rows::transactions::{COLUMNS, transaction_from_row};
use crate::{Backend, Scope, StoreError};

/// A counter in use: what it counts and the scope of the rule that reads it.
#[derive(Debug, Clone)]
pub(crate) struct CounterInUse {
    pub spec: Arc<CounterSpec>,
    pub rule_scope: ControlScopeKind,
    pub rule_scope_id: String,
}

/// Waits for the batches deciding with the tenant's current rules (they hold `FOR KEY SHARE`
/// on their program rows) and moves the stamp so the next batch reloads the rules. SQLite's
/// writer transaction is already exclusive.
pub(crate) async fn stamp_rules_change(conn: &mut AnyConnection, scope: &Scope) -> Result<(), StoreError> {
    if Backend::of(conn) == Backend::Postgres {
        sqlx::query("SELECT id FROM programs WHERE tenant_id = $1 AND environment = $2 ORDER BY id FOR UPDATE")
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .fetch_all(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE programs SET rules_version = rules_version + 1 WHERE tenant_id = $1 AND environment = $2")
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The counters the tenant's active and draft velocity versions read, by key.
pub(crate) async fn counters_in_use(
    conn: &mut AnyConnection,
    scope: &Scope,
) -> Result<BTreeMap<String, CounterInUse>, StoreError> {
    let rows = sqlx::query(
        "SELECT r.scope_kind, r.scope_id, v.definition FROM authorization_rules r \
         JOIN authorization_rule_versions v ON v.rule_id = r.id \
         AND (v.version = r.active_version OR v.version = r.draft_version) \
         WHERE r.tenant_id = $1 AND r.environment = $2 AND r.kind = 'velocity_limit'",
    )
    .bind(scope.tenant_id.as_str())
    .bind(scope.environment.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut keys = BTreeMap::new();
    for row in rows {
        let kind: String = row.try_get("scope_kind")?;
        let kind = ControlScopeKind::parse(&kind).ok_or_else(|| StoreError::corrupt("stored rule scope"))?;
        let scope_id: String = row.try_get("scope_id")?;
        let raw: String = row.try_get("definition")?;
        let value: serde_json::Value =
            serde_json::from_str(&raw).map_err(|_| StoreError::corrupt("stored rule definition"))?;
        let definition = RuleDefinition::parse(&value, kind, &scope_id)
            .map_err(|_| StoreError::corrupt("stored rule definition"))?;
        if let Some((key, spec)) = definition.counter() {
            keys.entry(key.to_owned()).or_insert_with(|| CounterInUse {
                spec: spec.clone(),
                rule_scope: kind,
                rule_scope_id: scope_id.clone(),
            });
        }
    }
    Ok(keys)
}

/// Seeds the counters that came into use and deletes those no longer used.
pub(crate) async fn reconcile_counters(
    conn: &mut AnyConnection,
    before: &BTreeMap<String, CounterInUse>,
    after: &BTreeMap<String, CounterInUse>,
    now: Timestamp,
) -> Result<(), StoreError> {
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        sqlx::query("DELETE FROM velocity_counters WHERE counter = $1")
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
    }
    for (key, counter) in after.iter().filter(|(k, _)| !before.contains_key(*k)) {
        seed_counter(conn, key, counter, now).await?;
    }
    Ok(())
}

fn scope_column(kind: ControlScopeKind) -> &'static str {
    match kind {
        ControlScopeKind::Card => "card_id",
        ControlScopeKind::Cardholder => "cardholder_id",
        ControlScopeKind::Program => "program_id",
    }
}

/// Recomputes one counter from the rule scope's authorizations still inside the retention, as
/// the batches would have kept it had the counter existed all along.
async fn seed_counter(
    conn: &mut AnyConnection,
    key: &str,
    counter: &CounterInUse,
    now: Timestamp,
) -> Result<(), StoreError> {
    // Whatever an earlier use of the same key left behind is replaced, never added to.
    sqlx::query("DELETE FROM velocity_counters WHERE counter = $1")
        .bind(key)
        .execute(&mut *conn)
        .await?;
    let specs = [(key.to_owned(), counter.spec.clone())];
    let mut book = VelocityBook::default();
    {
        let sql = format!(
            "SELECT {COLUMNS} FROM transactions WHERE {} = $1 AND kind = 'authorization' AND created_at >= $2",
            scope_column(counter.rule_scope)
        );
        let mut rows = sqlx::query(AssertSqlSafe(sql))
            .bind(counter.rule_scope_id.as_str())
            .bind(now.plus_secs(-RETENTION_SECS).as_micros())
            .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await? {
            let t = transaction_from_row(&row)?;
            book.record(&specs, None, &t);
        }
    }
    for row in book.buckets() {
        sqlx::query(
            "INSERT INTO velocity_counters (counter, scope_id, bucket, amount, count) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(row.counter.as_str())
        .bind(row.scope_id.as_str())
        .bind(row.bucket)
        .bind(row.amount)
        .bind(row.count)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
