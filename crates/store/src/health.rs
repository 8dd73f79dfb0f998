//! Program health for the operations console: per-minute aggregates (`health_rollups`) filled by
//! a roll-up job that walks each append-mostly source by id from a watermark, so a page view reads
//! a few hundred aggregate rows instead of scanning transactions.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::sql::{Bind, Filters};
use crate::{SqlStore, StoreError};

/// Latency buckets (upper bounds, milliseconds) for the authorization latency histogram; the
/// last bucket is everything above.
pub const LATENCY_BUCKETS_MS: [i64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000];

pub mod metric {
    pub const AUTHORIZATIONS: &str = "authorizations";
    pub const DECLINE: &str = "decline";
    pub const LATENCY_MS: &str = "latency_ms";
    pub const CLEARED: &str = "cleared";
    pub const WEBHOOK: &str = "webhook";
}

/// What one roll-up pass took from each source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupRun {
    pub transactions: u64,
    pub ledger_entries: u64,
    pub webhook_attempts: u64,
}

impl RollupRun {
    pub fn total(&self) -> u64 {
        self.transactions + self.ledger_entries + self.webhook_attempts
    }
}

/// Which aggregates a page asks for: from a minute on, optionally narrowed.
#[derive(Debug, Clone, Default)]
pub struct HealthFilter {
    /// Unix minutes, inclusive.
    pub since_minute: i64,
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    pub program_id: Option<String>,
    /// Read the hourly aggregates (windows of days): `since_minute` and series buckets are then
    /// whole hours.
    pub hourly: bool,
}

impl HealthFilter {
    fn table(&self) -> &'static str {
        if self.hourly {
            "health_rollups_hourly"
        } else {
            "health_rollups"
        }
    }
}

/// One aggregate summed over the filter's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupTotal {
    pub tenant_id: String,
    pub environment: String,
    pub program_id: String,
    pub metric: String,
    pub dim: String,
    pub n: i64,
    pub amount: i64,
}

/// Authorizations in one bucket of a time series (`bucket` = its first unix minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesPoint {
    pub bucket: i64,
    pub approved: i64,
    pub declined: i64,
}

/// Work waiting in the queues, with what is past its deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueHealth {
    pub open_cases: i64,
    pub breached_cases: i64,
    pub open_disputes: i64,
    pub breached_disputes: i64,
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Rolls up rows created up to `until` (callers leave a lag so transactions still committing
    /// are not passed over), at most `batch_max` rows per source.
    async fn roll_up(&self, until: Timestamp, batch_max: u32) -> Result<RollupRun, StoreError>;
    async fn health_totals(&self, filter: &HealthFilter) -> Result<Vec<RollupTotal>, StoreError>;
    /// Authorizations per bucket of `bucket_minutes`, oldest first; empty buckets are absent.
    async fn health_series(&self, filter: &HealthFilter, bucket_minutes: i64) -> Result<Vec<SeriesPoint>, StoreError>;
    async fn queue_health(&self, now: Timestamp, tenant_id: Option<&str>) -> Result<QueueHealth, StoreError>;
}

type Key = (String, String, String, i64, &'static str, String);

/// Aggregates of one batch, summed before they are written.
#[derive(Default)]
struct Batch {
    sums: BTreeMap<Key, (i64, i64)>,
}

impl Batch {
    fn add(
        &mut self,
        row: &AnyRow,
        program: String,
        metric: &'static str,
        dim: String,
        amount: i64,
    ) -> Result<(), StoreError> {
        let minute = row.try_get::<i64, _>("created_at")?.div_euclid(60_000_000);
        let key = (
            row.try_get("tenant_id")?,
            row.try_get("environment")?,
            program,
            minute,
            metric,
            dim,
        );
        let slot = self.sums.entry(key).or_default();
        slot.0 += 1;
        slot.1 = slot
            .1
            .checked_add(amount)
            .ok_or_else(|| StoreError::corrupt("health roll-up amount overflows"))?;
        Ok(())
    }
}

pub fn latency_bucket(latency_ms: i64) -> String {
    LATENCY_BUCKETS_MS
        .iter()
        .find(|b| latency_ms <= **b)
        .map(|b| format!("<={b}"))
        .unwrap_or_else(|| format!(">{}", LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.len() - 1]))
}

/// The rows after the watermark, in id order, up to the first one newer than `until`.
async fn next_rows(
    conn: &mut AnyConnection,
    source: &str,
    sql: &'static str,
    until: Timestamp,
    batch_max: u32,
) -> Result<Vec<AnyRow>, StoreError> {
    // Taking the watermark row for update first serializes concurrent roll-ups (other processes).
    let last: String =
        sqlx::query("UPDATE rollup_watermarks SET last_id = last_id WHERE source = $1 RETURNING last_id")
            .bind(source)
            .fetch_one(&mut *conn)
            .await?
            .try_get("last_id")?;
    let rows = sqlx::query(sql)
        .bind(last.as_str())
        .bind(i64::from(batch_max))
        .fetch_all(&mut *conn)
        .await?;
    let mut taken = Vec::with_capacity(rows.len());
    for row in rows {
        if row.try_get::<i64, _>("created_at")? > until.as_micros() {
            break;
        }
        taken.push(row);
    }
    Ok(taken)
}

async fn write_batch(conn: &mut AnyConnection, source: &str, rows: &[AnyRow], batch: Batch) -> Result<(), StoreError> {
    let Some(last) = rows.last() else {
        return Ok(());
    };
    let mut hourly: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
    for ((tenant, env, program, minute, metric, dim), (n, amount)) in batch.sums {
        let hour = (
            tenant.clone(),
            env.clone(),
            program.clone(),
            minute - minute.rem_euclid(60),
            metric,
            dim.clone(),
        );
        let slot = hourly.entry(hour).or_default();
        slot.0 += n;
        slot.1 = slot
            .1
            .checked_add(amount)
            .ok_or_else(|| StoreError::corrupt("health roll-up amount overflows"))?;
        upsert(
            conn,
            "health_rollups",
            (tenant, env, program, minute, metric, dim),
            (n, amount),
        )
        .await?;
    }
    for (key, sums) in hourly {
        upsert(conn, "health_rollups_hourly", key, sums).await?;
    }
    let last_id: String = last.try_get("id")?;
    sqlx::query("UPDATE rollup_watermarks SET last_id = $1 WHERE source = $2")
        .bind(last_id)
        .bind(source)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn upsert(
    conn: &mut AnyConnection,
    table: &'static str,
    key: Key,
    (n, amount): (i64, i64),
) -> Result<(), StoreError> {
    let (tenant, env, program, minute, metric, dim) = key;
    let sql = format!(
        "INSERT INTO {table} (tenant_id, environment, program_id, minute, metric, dim, n, amount) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, environment, program_id, minute, metric, dim) \
         DO UPDATE SET n = {table}.n + excluded.n, amount = {table}.amount + excluded.amount"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(tenant)
        .bind(env)
        .bind(program)
        .bind(minute)
        .bind(metric)
        .bind(dim)
        .bind(n)
        .bind(amount)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

const TRANSACTIONS_AFTER: &str = "SELECT id, tenant_id, environment, program_id, kind, state, decline_reason, \
     received_at, answered_at, created_at FROM transactions WHERE id > $1 ORDER BY id LIMIT $2";

/// Authorizations: approved or declined (a decline is final when the row is written), the decline
/// reason, and the decision latency (received to answered).
fn transaction_aggregates(rows: &[AnyRow]) -> Result<Batch, StoreError> {
    let mut batch = Batch::default();
    for row in rows {
        if row.try_get::<String, _>("kind")? != "authorization" {
            continue;
        }
        let program: String = row.try_get("program_id")?;
        let declined = row.try_get::<String, _>("state")? == "DECLINED";
        let outcome = if declined { "declined" } else { "approved" };
        batch.add(row, program.clone(), metric::AUTHORIZATIONS, outcome.into(), 0)?;
        if declined {
            let reason: Option<String> = row.try_get("decline_reason")?;
            batch.add(
                row,
                program.clone(),
                metric::DECLINE,
                reason.unwrap_or_else(|| "unknown".into()),
                0,
            )?;
        }
        let latency_us = row.try_get::<i64, _>("answered_at")? - row.try_get::<i64, _>("received_at")?;
        let latency_ms = latency_us.max(0) / 1_000;
        batch.add(row, program, metric::LATENCY_MS, latency_bucket(latency_ms), latency_ms)?;
    }
    Ok(batch)
}

const ENTRIES_AFTER: &str = "SELECT e.id, e.tenant_id, e.environment, e.direction, e.amount, e.currency, e.created_at, \
     a.program_id, a.kind AS account_kind, j.kind AS journal_kind \
     FROM ledger_entries e JOIN journals j ON j.id = e.journal_id JOIN accounts a ON a.id = e.account_id \
     WHERE e.id > $1 ORDER BY e.id LIMIT $2";

/// Clearing volume: what clearings and force posts credit to the program's settlement account.
fn clearing_aggregates(rows: &[AnyRow]) -> Result<Batch, StoreError> {
    let mut batch = Batch::default();
    for row in rows {
        let journal: String = row.try_get("journal_kind")?;
        let settlement_credit = row.try_get::<String, _>("account_kind")? == "program_settlement"
            && row.try_get::<String, _>("direction")? == "credit";
        if settlement_credit && (journal == "clearing" || journal == "force_post") {
            let amount: i64 = row.try_get("amount")?;
            batch.add(
                row,
                row.try_get("program_id")?,
                metric::CLEARED,
                row.try_get("currency")?,
                amount,
            )?;
        }
    }
    Ok(batch)
}

const ATTEMPTS_AFTER: &str = "SELECT id, tenant_id, environment, status_code, created_at FROM webhook_attempts \
     WHERE id > $1 ORDER BY id LIMIT $2";

fn webhook_aggregates(rows: &[AnyRow]) -> Result<Batch, StoreError> {
    let mut batch = Batch::default();
    for row in rows {
        let status: Option<i64> = row.try_get("status_code")?;
        let outcome = if status.is_some_and(|s| (200..300).contains(&s)) {
            "success"
        } else {
            "failure"
        };
        batch.add(row, String::new(), metric::WEBHOOK, outcome.into(), 0)?;
    }
    Ok(batch)
}

impl SqlStore {
    async fn roll_up_source(
        &self,
        source: &str,
        sql: &'static str,
        aggregate: fn(&[AnyRow]) -> Result<Batch, StoreError>,
        until: Timestamp,
        batch_max: u32,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let rows = next_rows(&mut tx, source, sql, until, batch_max).await?;
        let batch = aggregate(&rows)?;
        write_batch(&mut tx, source, &rows, batch).await?;
        tx.commit().await?;
        Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
    }
}

fn filters(filter: &HealthFilter) -> Filters {
    let mut f = Filters::default();
    f.add("minute >= ?", Bind::Int(filter.since_minute));
    if let Some(t) = &filter.tenant_id {
        f.add("tenant_id = ?", Bind::Text(t.clone()));
    }
    if let Some(e) = &filter.environment {
        f.add("environment = ?", Bind::Text(e.clone()));
    }
    if let Some(p) = &filter.program_id {
        f.add("program_id = ?", Bind::Text(p.clone()));
    }
    f
}

#[async_trait]
impl HealthStore for SqlStore {
    async fn roll_up(&self, until: Timestamp, batch_max: u32) -> Result<RollupRun, StoreError> {
        Ok(RollupRun {
            transactions: self
                .roll_up_source(
                    "transactions",
                    TRANSACTIONS_AFTER,
                    transaction_aggregates,
                    until,
                    batch_max,
                )
                .await?,
            ledger_entries: self
                .roll_up_source("ledger_entries", ENTRIES_AFTER, clearing_aggregates, until, batch_max)
                .await?,
            webhook_attempts: self
                .roll_up_source("webhook_attempts", ATTEMPTS_AFTER, webhook_aggregates, until, batch_max)
                .await?,
        })
    }

    async fn health_totals(&self, filter: &HealthFilter) -> Result<Vec<RollupTotal>, StoreError> {
        let f = filters(filter);
        let sql = format!(
            "SELECT tenant_id, environment, program_id, metric, dim, CAST(SUM(n) AS BIGINT) AS n, \
             CAST(SUM(amount) AS BIGINT) AS amount FROM {}{} \
             GROUP BY tenant_id, environment, program_id, metric, dim \
             ORDER BY tenant_id, environment, program_id, metric, dim",
            filter.table(),
            f.sql()
        );
        f.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(|r| {
                Ok(RollupTotal {
                    tenant_id: r.try_get("tenant_id")?,
                    environment: r.try_get("environment")?,
                    program_id: r.try_get("program_id")?,
                    metric: r.try_get("metric")?,
                    dim: r.try_get("dim")?,
                    n: r.try_get("n")?,
                    amount: r.try_get("amount")?,
                })
            })
            .collect()
    }

    async fn health_series(&self, filter: &HealthFilter, bucket_minutes: i64) -> Result<Vec<SeriesPoint>, StoreError> {
        let mut f = filters(filter);
        f.raw(format!("metric = '{}'", metric::AUTHORIZATIONS));
        let width = bucket_minutes.max(1);
        let sql = format!(
            "SELECT (minute / {width}) * {width} AS bucket, \
             CAST(SUM(CASE WHEN dim = 'approved' THEN n ELSE 0 END) AS BIGINT) AS approved, \
             CAST(SUM(CASE WHEN dim = 'declined' THEN n ELSE 0 END) AS BIGINT) AS declined \
             FROM {}{} GROUP BY (minute / {width}) * {width} ORDER BY bucket",
            filter.table(),
            f.sql()
        );
        f.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(|r| {
                Ok(SeriesPoint {
                    bucket: r.try_get("bucket")?,
                    approved: r.try_get("approved")?,
                    declined: r.try_get("declined")?,
                })
            })
            .collect()
    }

    async fn queue_health(&self, now: Timestamp, tenant_id: Option<&str>) -> Result<QueueHealth, StoreError> {
        let tenant = if tenant_id.is_some() { " AND tenant_id = $2" } else { "" };
        let cases = format!(
            "SELECT COUNT(*) AS open, CAST(COALESCE(SUM(CASE WHEN due_at < $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS breached \
             FROM compliance_cases WHERE closed_at IS NULL{tenant}"
        );
        let disputes = format!(
            "SELECT COUNT(*) AS open, CAST(COALESCE(SUM(CASE WHEN resolution_due_at < $1 OR deadline_flagged_at IS NOT NULL \
             THEN 1 ELSE 0 END), 0) AS BIGINT) AS breached FROM disputes WHERE status <> 'closed'{tenant}"
        );
        let mut out = QueueHealth::default();
        for (sql, open, breached) in [
            (cases, &mut out.open_cases, &mut out.breached_cases),
            (disputes, &mut out.open_disputes, &mut out.breached_disputes),
        ] {
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now.as_micros());
            if let Some(t) = tenant_id {
                q = q.bind(t);
            }
            let row = q.fetch_one(self.db.reader()).await?;
            *open = row.try_get("open")?;
            *breached = row.try_get("breached")?;
        }
        Ok(out)
    }
}
