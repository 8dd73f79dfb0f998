//! Backtests as stored: queued by the API, claimed under a lease by the background job, which
//! reads the rule set and pages through the scope's authorizations (keyset on created_at, id)
//! and writes progress and the result.

use std::collections::HashMap;

use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::authorization::Transaction;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{AuthorizationRuleId, BacktestId, TenantId, TransactionId};
use cardplane_domain::rules::backtest::CardFacts;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::records::{BacktestRecord, BacktestStatus};
use crate::effects::{insert_events, write_effect_records};

/// What a replay reads of a stored authorization, by position (the bulk of a backtest's time is
/// reading rows, so only these columns, and no lookup by name).
const HISTORY_COLUMNS: &str = "id, tenant_id, environment, card_id, cardholder_id, program_id, account_id, state, \
    currency, requested_amount, authorized_amount, reversed_amount, merchant_id, merchant_name, mcc, merchant_country, \
    entry_mode, decision_trace, created_at";

/// A stored authorization as a replay sees it: the columns of `HISTORY_COLUMNS`; what a replay
/// never reads (codes, holds, clearing, the city, the other timestamps) is left empty.
fn history_from_row(row: &AnyRow) -> Result<Transaction, StoreError> {
    use cardplane_domain::authorization::{Merchant, ResponseCode, TransactionKind, TransactionState};
    use cardplane_domain::ids::{AccountId, CardId, CardholderId, ProgramId};
    let bad = |what: &str| StoreError::corrupt(format!("stored transaction {what}"));
    let text = |i: usize| row.try_get::<String, _>(i);
    let state = TransactionState::parse(&text(7)?).ok_or_else(|| bad("state"))?;
    let created_at = Timestamp::from_micros(row.try_get(18)?);
    Ok(Transaction {
        id: TransactionId::parse(&text(0)?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&text(1)?).map_err(StoreError::other)?,
        environment: Environment::parse(&text(2)?).ok_or_else(|| bad("environment"))?,
        card_id: CardId::parse(&text(3)?).map_err(StoreError::other)?,
        cardholder_id: CardholderId::parse(&text(4)?).map_err(StoreError::other)?,
        program_id: ProgramId::parse(&text(5)?).map_err(StoreError::other)?,
        account_id: AccountId::parse(&text(6)?).map_err(StoreError::other)?,
        kind: TransactionKind::Authorization,
        state,
        network_transaction_id: String::new(),
        currency: cardplane_domain::money::Currency::parse(&text(8)?).map_err(|_| bad("currency"))?,
        requested_amount: row.try_get(9)?,
        authorized_amount: row.try_get(10)?,
        held_amount: 0,
        cleared_amount: 0,
        reversed_amount: row.try_get(11)?,
        response_code: if state == TransactionState::Declined {
            ResponseCode::DoNotHonor
        } else {
            ResponseCode::Approved
        },
        decline_reason: None,
        authorization_code: None,
        merchant: Merchant {
            id: text(12)?,
            name: text(13)?,
            mcc: text(14)?,
            country: text(15)?,
            city: String::new(),
        },
        entry_mode: text(16)?,
        stand_in: false,
        decision_trace: serde_json::from_str(&text(17)?).map_err(|_| bad("trace"))?,
        received_at: created_at,
        custodian_sent_at: None,
        custodian_answered_at: None,
        answered_at: created_at,
        expires_at: None,
        created_at,
        updated_at: created_at,
    })
}
use crate::sql::{opt_ts, ts};
use crate::{Backend, EffectRecords, Scope, SqlStore, StoreError};

const COLUMNS: &str = "id, tenant_id, environment, rule_id, draft_version, active_version, window_start, window_end, \
    status, processed, total, result, error, created_at, started_at, completed_at";

/// One rule of the tenant with the definitions of its active and draft versions (the tested
/// rule's are the versions the backtest was asked for).
#[derive(Debug, Clone)]
pub struct RuleSetRow {
    pub rule_id: AuthorizationRuleId,
    pub scope_kind: ControlScopeKind,
    pub scope_id: String,
    pub active: Option<(i64, serde_json::Value)>,
    pub draft: Option<(i64, serde_json::Value)>,
}

/// Where a page of history starts: after this (created_at, id).
pub type HistoryCursor = Option<(Timestamp, TransactionId)>;

#[async_trait]
pub trait BacktestStore: Send + Sync {
    async fn insert_backtest(&self, b: &BacktestRecord, records: Option<&EffectRecords>) -> Result<(), StoreError>;
    async fn get_backtest(
        &self,
        scope: &Scope,
        rule: &AuthorizationRuleId,
        id: &BacktestId,
    ) -> Result<BacktestRecord, StoreError>;
    /// A rule's backtests, newest first.
    async fn list_backtests(
        &self,
        scope: &Scope,
        rule: &AuthorizationRuleId,
        limit: u32,
    ) -> Result<Vec<BacktestRecord>, StoreError>;
    /// Takes one queued backtest (or one whose runner's lease ran out) and leases it.
    async fn claim_backtest(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<BacktestRecord>, StoreError>;
    /// Every rule of the backtest's tenant with its active and draft definitions.
    async fn backtest_rule_set(&self, b: &BacktestRecord) -> Result<Vec<RuleSetRow>, StoreError>;
    /// Creation time and KYC status of every card of a scope.
    async fn card_facts(
        &self,
        kind: ControlScopeKind,
        scope_id: &str,
    ) -> Result<HashMap<String, CardFacts>, StoreError>;
    /// How many authorizations of the scope fall in [start, end).
    async fn count_authorizations(
        &self,
        kind: ControlScopeKind,
        scope_id: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<i64, StoreError>;
    /// The next page of the scope's authorizations in [start, end), oldest first.
    async fn authorizations_page(
        &self,
        kind: ControlScopeKind,
        scope_id: &str,
        start: Timestamp,
        end: Timestamp,
        after: &HistoryCursor,
        limit: u32,
    ) -> Result<Vec<Transaction>, StoreError>;
    /// Progress, and a longer lease.
    async fn backtest_progress(
        &self,
        id: &BacktestId,
        processed: i64,
        total: i64,
        lease_until: Timestamp,
    ) -> Result<(), StoreError>;
    /// The result (and its event), or the failure.
    async fn finish_backtest(&self, b: &BacktestRecord, events: &[Event], now: Timestamp) -> Result<(), StoreError>;
}

fn scope_column(kind: ControlScopeKind) -> &'static str {
    match kind {
        ControlScopeKind::Card => "card_id",
        ControlScopeKind::Cardholder => "cardholder_id",
        ControlScopeKind::Program => "program_id",
    }
}

fn backtest_from_row(row: &AnyRow) -> Result<BacktestRecord, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored backtest {what}"));
    let text = |c: &str| row.try_get::<String, _>(c);
    let result: Option<String> = row.try_get("result")?;
    Ok(BacktestRecord {
        id: BacktestId::parse(&text("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&text("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&text("environment")?).ok_or_else(|| bad("environment"))?,
        rule_id: AuthorizationRuleId::parse(&text("rule_id")?).map_err(StoreError::other)?,
        draft_version: row.try_get("draft_version")?,
        active_version: row.try_get("active_version")?,
        window_start: ts(row, "window_start")?,
        window_end: ts(row, "window_end")?,
        status: BacktestStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?,
        processed: row.try_get("processed")?,
        total: row.try_get("total")?,
        result: result
            .map(|r| serde_json::from_str(&r).map_err(|_| bad("result")))
            .transpose()?,
        error: row.try_get("error")?,
        created_at: ts(row, "created_at")?,
        started_at: opt_ts(row, "started_at")?,
        completed_at: opt_ts(row, "completed_at")?,
    })
}

fn claim_sql(backend: Backend) -> String {
    let due = "status = 'queued' OR (status = 'running' AND lease_until <= $1)";
    match backend {
        Backend::Postgres => format!(
            "WITH due AS (SELECT id FROM rule_backtests WHERE {due} ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE rule_backtests SET status = 'running', lease_until = $2, started_at = $1, processed = 0 \
             FROM due WHERE rule_backtests.id = due.id RETURNING rule_backtests.id AS id"
        ),
        Backend::Sqlite => format!(
            "UPDATE rule_backtests SET status = 'running', lease_until = $2, started_at = $1, processed = 0 \
             WHERE id IN (SELECT id FROM rule_backtests WHERE {due} ORDER BY created_at LIMIT 1) RETURNING id"
        ),
    }
}

#[async_trait]
impl BacktestStore for SqlStore {
    async fn insert_backtest(&self, b: &BacktestRecord, records: Option<&EffectRecords>) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "INSERT INTO rule_backtests (id, tenant_id, environment, rule_id, draft_version, active_version, \
             window_start, window_end, status, processed, total, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(b.id.as_str())
        .bind(b.tenant_id.as_str())
        .bind(b.environment.as_str())
        .bind(b.rule_id.as_str())
        .bind(b.draft_version)
        .bind(b.active_version)
        .bind(b.window_start.as_micros())
        .bind(b.window_end.as_micros())
        .bind(b.status.as_str())
        .bind(b.processed)
        .bind(b.total)
        .bind(b.created_at.as_micros())
        .execute(&mut *tx)
        .await?;
        write_effect_records(&mut tx, &b.scope(), records, b.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_backtest(
        &self,
        scope: &Scope,
        rule: &AuthorizationRuleId,
        id: &BacktestId,
    ) -> Result<BacktestRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rule_backtests WHERE id = $1 AND rule_id = $2 AND tenant_id = $3 AND environment = $4"
        )))
        .bind(id.as_str())
        .bind(rule.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        backtest_from_row(&row)
    }

    async fn list_backtests(
        &self,
        scope: &Scope,
        rule: &AuthorizationRuleId,
        limit: u32,
    ) -> Result<Vec<BacktestRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rule_backtests WHERE rule_id = $1 AND tenant_id = $2 AND environment = $3 \
             ORDER BY id DESC LIMIT {}",
            i64::from(limit)
        )))
        .bind(rule.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(backtest_from_row).collect()
    }

    async fn claim_backtest(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<BacktestRecord>, StoreError> {
        let claimed = sqlx::query(AssertSqlSafe(claim_sql(self.db.backend())))
            .bind(now.as_micros())
            .bind(lease_until.as_micros())
            .fetch_optional(self.db.writer())
            .await?;
        let Some(row) = claimed else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rule_backtests WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(self.db.writer())
        .await?;
        backtest_from_row(&row).map(Some)
    }

    async fn backtest_rule_set(&self, b: &BacktestRecord) -> Result<Vec<RuleSetRow>, StoreError> {
        let rules = sqlx::query(
            "SELECT id, scope_kind, scope_id, active_version, draft_version FROM authorization_rules \
             WHERE tenant_id = $1 AND environment = $2",
        )
        .bind(b.tenant_id.as_str())
        .bind(b.environment.as_str())
        .fetch_all(self.db.reader())
        .await?;
        let versions = sqlx::query(
            "SELECT v.rule_id, v.version, v.definition FROM authorization_rule_versions v \
             JOIN authorization_rules r ON r.id = v.rule_id \
             WHERE r.tenant_id = $1 AND r.environment = $2 \
             AND (v.version = r.active_version OR (v.rule_id = $3 AND (v.version = $4 OR v.version = $5)))",
        )
        .bind(b.tenant_id.as_str())
        .bind(b.environment.as_str())
        .bind(b.rule_id.as_str())
        .bind(b.active_version.unwrap_or(-1))
        .bind(b.draft_version.unwrap_or(-1))
        .fetch_all(self.db.reader())
        .await?;
        let mut definitions: HashMap<(String, i64), serde_json::Value> = HashMap::new();
        for v in &versions {
            let raw: String = v.try_get("definition")?;
            let value = serde_json::from_str(&raw).map_err(|_| StoreError::corrupt("stored rule definition"))?;
            definitions.insert((v.try_get("rule_id")?, v.try_get("version")?), value);
        }
        let mut out = Vec::with_capacity(rules.len());
        for r in &rules {
            let id: String = r.try_get("id")?;
            let tested = id == b.rule_id.as_str();
            let (active, draft) = if tested {
                (b.active_version, b.draft_version)
            } else {
                (r.try_get("active_version")?, None)
            };
            let pick = |v: Option<i64>| v.and_then(|v| definitions.get(&(id.clone(), v)).map(|d| (v, d.clone())));
            let kind: String = r.try_get("scope_kind")?;
            out.push(RuleSetRow {
                rule_id: AuthorizationRuleId::parse(&id).map_err(StoreError::other)?,
                scope_kind: ControlScopeKind::parse(&kind).ok_or_else(|| StoreError::corrupt("stored rule scope"))?,
                scope_id: r.try_get("scope_id")?,
                active: pick(active),
                draft: pick(draft),
            });
        }
        Ok(out)
    }

    async fn card_facts(
        &self,
        kind: ControlScopeKind,
        scope_id: &str,
    ) -> Result<HashMap<String, CardFacts>, StoreError> {
        let column = match kind {
            ControlScopeKind::Card => "c.id",
            ControlScopeKind::Cardholder => "c.cardholder_id",
            ControlScopeKind::Program => "c.program_id",
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT c.id, c.created_at, h.kyc_status FROM cards c JOIN cardholders h ON h.id = c.cardholder_id \
             WHERE {column} = $1"
        )))
        .bind(scope_id)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("id")?,
                    CardFacts {
                        created_at: ts(r, "created_at")?,
                        kyc_status: r.try_get("kyc_status")?,
                    },
                ))
            })
            .collect()
    }

    async fn count_authorizations(
        &self,
        kind: ControlScopeKind,
        scope_id: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM transactions WHERE {} = $1 AND kind = 'authorization' \
             AND created_at >= $2 AND created_at < $3",
            scope_column(kind)
        )))
        .bind(scope_id)
        .bind(start.as_micros())
        .bind(end.as_micros())
        .fetch_one(self.db.reader())
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn authorizations_page(
        &self,
        kind: ControlScopeKind,
        scope_id: &str,
        start: Timestamp,
        end: Timestamp,
        after: &HistoryCursor,
        limit: u32,
    ) -> Result<Vec<Transaction>, StoreError> {
        let keyset = if after.is_some() {
            // The plain lower bound keeps the index range starting at the cursor (an OR alone
            // would scan every earlier row again for each page).
            " AND created_at >= $4 AND (created_at > $4 OR id > $5)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {HISTORY_COLUMNS} FROM transactions WHERE {} = $1 AND kind = 'authorization' \
             AND created_at >= $2 AND created_at < $3{keyset} ORDER BY created_at, id LIMIT {}",
            scope_column(kind),
            i64::from(limit)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(scope_id)
            .bind(start.as_micros())
            .bind(end.as_micros());
        if let Some((at, id)) = after {
            q = q.bind(at.as_micros()).bind(id.as_str());
        }
        let rows = match self.db.backend() {
            // The (scope, created_at) index gives the order up to ties, which an incremental sort
            // settles a page at a time. Stale statistics (a bulk load not yet analyzed) make the
            // planner sort the whole rest of the window for every page instead; it is told not to.
            Backend::Postgres => {
                let mut tx = self
                    .db
                    .reader()
                    .begin_with("BEGIN READ ONLY; SET LOCAL enable_sort = off")
                    .await?;
                let rows = q.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
            Backend::Sqlite => q.fetch_all(self.db.reader()).await?,
        };
        rows.iter().map(history_from_row).collect()
    }

    async fn backtest_progress(
        &self,
        id: &BacktestId,
        processed: i64,
        total: i64,
        lease_until: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE rule_backtests SET processed = $2, total = $3, lease_until = $4 WHERE id = $1")
            .bind(id.as_str())
            .bind(processed)
            .bind(total)
            .bind(lease_until.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn finish_backtest(&self, b: &BacktestRecord, events: &[Event], now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "UPDATE rule_backtests SET status = $2, processed = $3, total = $4, result = $5, error = $6, \
             completed_at = $7, lease_until = NULL WHERE id = $1",
        )
        .bind(b.id.as_str())
        .bind(b.status.as_str())
        .bind(b.processed)
        .bind(b.total)
        .bind(b.result.as_ref().map(|r| r.to_string()))
        .bind(b.error.as_deref())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }
}
