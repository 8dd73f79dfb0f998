//! The developer portal's request log and daily usage rollup. The capture layer hands a batch of
//! already-masked entries to [`RequestLogStore::insert_batch`], which writes the rows and merges
//! their usage counters in one transaction (one multi-row INSERT per table and chunk), so the
//! usage figures always count exactly the rows written. Reads are scoped by tenant and
//! environment; another tenant's entry is `NotFound`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::ids::{ApiKeyId, RequestLogId};
use cardplane_domain::request_log::{LATENCY_BUCKETS, RequestLogEntry, day_of, latency_bucket, latency_quantile_us};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::sql::{Bind, Filters, ts};
use crate::{Backend, Scope, SqlStore, StoreError};

const SUMMARY_COLUMNS: &str = "id, api_key_id, received_at, method, route, path, query, status, latency_us, \
    request_id, idempotency_key";
const DETAIL_COLUMNS: &str = "request_content_type, request_body, request_bytes, response_content_type, \
    response_body, response_bytes";
/// Rows per INSERT statement: 19 parameters each stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535.
const LOG_ROWS_PER_STATEMENT: usize = 800;
/// Rollup rows per upsert: 26 parameters each.
const USAGE_ROWS_PER_STATEMENT: usize = 500;
/// The most entries one list page returns.
pub const LIST_LIMIT_MAX: u32 = 200;

/// A request as the portal lists it (no bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogSummary {
    pub id: RequestLogId,
    pub api_key_id: String,
    pub received_at: Timestamp,
    pub method: String,
    /// The route template, e.g. `/cards/{card_id}`.
    pub route: String,
    /// The path as called (masked).
    pub path: String,
    /// The query string, decoded and masked.
    pub query: Option<String>,
    pub status: u16,
    pub latency_us: i64,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// One side of an exchange as stored: masked JSON (possibly cut, with the marker) or, for other
/// content, only its type and length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBody {
    pub content_type: Option<String>,
    pub text: Option<String>,
    pub length_bytes: i64,
}

/// A request with its masked bodies (the portal's detail page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogDetail {
    pub summary: RequestLogSummary,
    pub request: StoredBody,
    pub response: StoredBody,
}

/// Which statuses a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(u16),
    /// 2 for 2xx, 4 for 4xx...
    Class(u8),
}

/// The list's filters; every one optional.
#[derive(Debug, Clone, Default)]
pub struct RequestLogFilter {
    pub api_key_id: Option<ApiKeyId>,
    pub method: Option<String>,
    pub status: Option<StatusFilter>,
    /// Matched (case-insensitively) against the route template and the path.
    pub path_contains: Option<String>,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Received at or after.
    pub from: Option<Timestamp>,
    /// Received before.
    pub until: Option<Timestamp>,
}

/// Where a newest-first page continues: the last entry of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    pub received_at: Timestamp,
    pub id: RequestLogId,
}

impl LogCursor {
    pub fn of(entry: &RequestLogSummary) -> LogCursor {
        LogCursor {
            received_at: entry.received_at,
            id: entry.id.clone(),
        }
    }

    /// `<micros>.<id>`, for a query parameter.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.received_at.as_micros(), self.id)
    }

    pub fn parse(raw: &str) -> Option<LogCursor> {
        let (micros, id) = raw.split_once('.')?;
        Some(LogCursor {
            received_at: Timestamp::from_micros(micros.parse().ok()?),
            id: RequestLogId::parse(id).ok()?,
        })
    }
}

/// One page of the log, newest first.
#[derive(Debug, Clone)]
pub struct LogPage {
    pub entries: Vec<RequestLogSummary>,
    /// Set when older entries remain.
    pub next: Option<LogCursor>,
}

/// Requests, 4xx and 5xx answers of a day, a key or an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub requests: i64,
    pub errors_4xx: i64,
    pub errors_5xx: i64,
}

impl UsageCounts {
    /// Answers with a 4xx or 5xx status, per thousand requests.
    pub fn error_rate_per_mille(&self) -> i64 {
        if self.requests == 0 {
            0
        } else {
            (self.errors_4xx + self.errors_5xx) * 1000 / self.requests
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    /// Days since 1970-01-01 UTC (`cardplane_domain::request_log::day_start` gives its instant).
    pub day: i64,
    pub counts: UsageCounts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub api_key_id: String,
    pub counts: UsageCounts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLatency {
    pub method: String,
    pub route: String,
    pub counts: UsageCounts,
    /// Estimated from the log-scale histogram (within a factor of two).
    pub p50_us: Option<i64>,
    pub p99_us: Option<i64>,
    pub mean_us: i64,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeRun {
    pub log_rows: u64,
    pub usage_rows: u64,
}

#[async_trait]
pub trait RequestLogStore: Send + Sync {
    /// Writes the entries and merges their usage counters, in one transaction.
    async fn insert_batch(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError>;
    /// Newest first; `limit` is capped at [`LIST_LIMIT_MAX`].
    async fn list(
        &self,
        scope: &Scope,
        filter: &RequestLogFilter,
        after: Option<&LogCursor>,
        limit: u32,
    ) -> Result<LogPage, StoreError>;
    /// `NotFound` for another tenant's or environment's entry.
    async fn get(&self, scope: &Scope, id: &RequestLogId) -> Result<RequestLogDetail, StoreError>;
    /// Per UTC day over the last `days` days up to `now`, oldest first (days without requests
    /// are absent).
    async fn requests_per_day(&self, scope: &Scope, now: Timestamp, days: u32) -> Result<Vec<DailyUsage>, StoreError>;
    /// Per API key over the last `days` days, busiest first.
    async fn requests_per_key(&self, scope: &Scope, now: Timestamp, days: u32) -> Result<Vec<KeyUsage>, StoreError>;
    /// Per endpoint (method + route template) over the last `days` days, busiest first.
    async fn endpoint_latency(
        &self,
        scope: &Scope,
        now: Timestamp,
        days: u32,
    ) -> Result<Vec<EndpointLatency>, StoreError>;
    /// Removes entries received before `cutoff` (`chunk_rows` per statement, so a large backlog
    /// never holds one long transaction) and usage days that ended before it.
    async fn purge_before(&self, cutoff: Timestamp, chunk_rows: u32) -> Result<PurgeRun, StoreError>;
}

/// The usage of one (tenant, environment, day, key, method, route) within a batch.
#[derive(Default)]
struct UsageDelta {
    counts: UsageCounts,
    latency_us_total: i64,
    buckets: [i64; LATENCY_BUCKETS],
}

type UsageKey<'a> = (&'a str, &'static str, i64, &'a str, &'a str, &'a str);

/// The batch's usage, merged per rollup row and sorted by key (concurrent writers then lock rows
/// in the same order).
fn usage_deltas(entries: &[RequestLogEntry]) -> BTreeMap<UsageKey<'_>, UsageDelta> {
    let mut deltas: BTreeMap<UsageKey<'_>, UsageDelta> = BTreeMap::new();
    for e in entries {
        let key = (
            e.tenant_id.as_str(),
            e.environment.as_str(),
            e.day(),
            e.api_key_id.as_str(),
            e.method.as_str(),
            e.route.as_str(),
        );
        let d = deltas.entry(key).or_default();
        d.counts.requests += 1;
        d.counts.errors_4xx += i64::from((400..500).contains(&e.status));
        d.counts.errors_5xx += i64::from(e.status >= 500);
        d.latency_us_total = d.latency_us_total.saturating_add(e.latency_us);
        d.buckets[latency_bucket(e.latency_us)] += 1;
    }
    deltas
}

/// `($1, $2, ...), ($n+1, ...)`: `rows` groups of `width` numbered placeholders; on SQLite
/// anonymous `?`s, bound in order (SQLite finds a numbered parameter by walking the statement's
/// list of names: binding thousands of them is quadratic).
fn placeholders(backend: Backend, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=width)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", r * width + c),
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn insert_log_rows(conn: &mut AnyConnection, entries: &[RequestLogEntry]) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO request_log (id, tenant_id, environment, api_key_id, received_at, method, route, path, query, \
         status, latency_us, request_id, idempotency_key, request_content_type, request_body, request_bytes, \
         response_content_type, response_body, response_bytes) VALUES {}",
        placeholders(Backend::of(conn), entries.len(), 19)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for e in entries {
        q = q
            .bind(e.id.as_str())
            .bind(e.tenant_id.as_str())
            .bind(e.environment.as_str())
            .bind(e.api_key_id.as_str())
            .bind(e.received_at.as_micros())
            .bind(e.method.as_str())
            .bind(e.route.as_str())
            .bind(e.path.as_str())
            .bind(e.query.as_deref())
            .bind(i64::from(e.status))
            .bind(e.latency_us)
            .bind(e.request_id.as_deref())
            .bind(e.idempotency_key.as_deref())
            .bind(e.request.content_type.as_deref())
            .bind(e.request.text.as_deref())
            .bind(len_i64(e.request.length_bytes))
            .bind(e.response.content_type.as_deref())
            .bind(e.response.text.as_deref())
            .bind(len_i64(e.response.length_bytes));
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

fn bucket_columns() -> Vec<String> {
    (0..LATENCY_BUCKETS).map(|i| format!("lat_{i:02}")).collect()
}

async fn upsert_usage(conn: &mut AnyConnection, rows: &[(&UsageKey<'_>, &UsageDelta)]) -> Result<(), StoreError> {
    let buckets = bucket_columns();
    let mut added: Vec<String> = ["requests", "errors_4xx", "errors_5xx", "latency_us_total"]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    added.extend(buckets.iter().cloned());
    let updates: Vec<String> = added
        .iter()
        .map(|c| format!("{c} = request_usage_daily.{c} + excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO request_usage_daily (tenant_id, environment, day, api_key_id, method, route, {}) VALUES {} \
         ON CONFLICT (tenant_id, environment, day, api_key_id, method, route) DO UPDATE SET {}",
        added.join(", "),
        placeholders(Backend::of(conn), rows.len(), 6 + added.len()),
        updates.join(", ")
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for ((tenant, env, day, key, method, route), d) in rows {
        q = q
            .bind(*tenant)
            .bind(*env)
            .bind(*day)
            .bind(*key)
            .bind(*method)
            .bind(*route);
        q = q
            .bind(d.counts.requests)
            .bind(d.counts.errors_4xx)
            .bind(d.counts.errors_5xx)
            .bind(d.latency_us_total);
        for n in d.buckets {
            q = q.bind(n);
        }
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

fn summary(row: &AnyRow) -> Result<RequestLogSummary, StoreError> {
    let id: String = row.try_get("id")?;
    let status: i64 = row.try_get("status")?;
    Ok(RequestLogSummary {
        id: RequestLogId::parse(&id).map_err(StoreError::other)?,
        api_key_id: row.try_get("api_key_id")?,
        received_at: ts(row, "received_at")?,
        method: row.try_get("method")?,
        route: row.try_get("route")?,
        path: row.try_get("path")?,
        query: row.try_get("query")?,
        status: u16::try_from(status).map_err(StoreError::other)?,
        latency_us: row.try_get("latency_us")?,
        request_id: row.try_get("request_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
    })
}

fn stored_body(row: &AnyRow, side: &str) -> Result<StoredBody, StoreError> {
    Ok(StoredBody {
        content_type: row.try_get(format!("{side}_content_type").as_str())?,
        text: row.try_get(format!("{side}_body").as_str())?,
        length_bytes: row.try_get(format!("{side}_bytes").as_str())?,
    })
}

/// `%text%` for LIKE, lower-cased, with the wildcards in `text` taken literally.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

fn list_filters(scope: &Scope, filter: &RequestLogFilter, after: Option<&LogCursor>) -> Filters {
    let mut f = Filters::default();
    f.add("tenant_id = ?", Bind::Text(scope.tenant_id.to_string()));
    f.add("environment = ?", Bind::Text(scope.environment.as_str().to_owned()));
    if let Some(k) = &filter.api_key_id {
        f.add("api_key_id = ?", Bind::Text(k.to_string()));
    }
    if let Some(m) = &filter.method {
        f.add("method = ?", Bind::Text(m.to_uppercase()));
    }
    match filter.status {
        Some(StatusFilter::Exact(s)) => f.add("status = ?", Bind::Int(i64::from(s))),
        Some(StatusFilter::Class(c)) => {
            f.add("status >= ?", Bind::Int(i64::from(c) * 100));
            f.add("status < ?", Bind::Int(i64::from(c) * 100 + 100));
        }
        None => {}
    }
    if let Some(text) = &filter.path_contains {
        f.add(
            "(LOWER(path) LIKE ? ESCAPE '\\' OR LOWER(route) LIKE ? ESCAPE '\\')",
            Bind::Text(contains_pattern(text)),
        );
    }
    if let Some(r) = &filter.request_id {
        f.add("request_id = ?", Bind::Text(r.clone()));
    }
    if let Some(k) = &filter.idempotency_key {
        f.add("idempotency_key = ?", Bind::Text(k.clone()));
    }
    if let Some(t) = filter.from {
        f.add("received_at >= ?", Bind::Int(t.as_micros()));
    }
    if let Some(t) = filter.until {
        f.add("received_at < ?", Bind::Int(t.as_micros()));
    }
    if let Some(c) = after {
        // Row-value keyset `(received_at, id) < (t, id)`, spelled out so it can use the index.
        f.add_pair(
            "received_at <= ?1 AND (received_at < ?1 OR id < ?2)",
            Bind::Int(c.received_at.as_micros()),
            Bind::Text(c.id.to_string()),
        );
    }
    f
}

/// The first rollup day of a window of `days` days ending on `now`'s day.
fn first_day(now: Timestamp, days: u32) -> i64 {
    day_of(now) - i64::from(days.max(1)) + 1
}

/// `CAST(SUM(c) AS BIGINT) AS c` for each column (PostgreSQL sums BIGINT as NUMERIC).
fn sums(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const COUNT_COLUMNS: [&str; 3] = ["requests", "errors_4xx", "errors_5xx"];

fn counts(row: &AnyRow) -> Result<UsageCounts, StoreError> {
    Ok(UsageCounts {
        requests: row.try_get("requests")?,
        errors_4xx: row.try_get("errors_4xx")?,
        errors_5xx: row.try_get("errors_5xx")?,
    })
}

impl SqlStore {
    /// Usage rows of the window, summed and grouped by `group` (closed set of column names).
    async fn usage(
        &self,
        scope: &Scope,
        now: Timestamp,
        days: u32,
        group: &str,
        extra: &[&str],
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut columns = COUNT_COLUMNS.to_vec();
        columns.extend_from_slice(extra);
        let sql = format!(
            "SELECT {group}, {} FROM request_usage_daily \
             WHERE tenant_id = $1 AND environment = $2 AND day >= $3 AND day <= $4 \
             GROUP BY {group} ORDER BY {}",
            sums(&columns),
            if group == "day" { "day" } else { "requests DESC, 1" }
        );
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(first_day(now, days))
            .bind(day_of(now))
            .fetch_all(self.db().log_reader())
            .await?)
    }
}

#[async_trait]
impl RequestLogStore for SqlStore {
    async fn insert_batch(&self, entries: &[RequestLogEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let deltas = usage_deltas(entries);
        let deltas: Vec<_> = deltas.iter().collect();
        let mut tx = self.db().log_writer().begin().await?;
        for chunk in entries.chunks(LOG_ROWS_PER_STATEMENT) {
            insert_log_rows(&mut tx, chunk).await?;
        }
        for chunk in deltas.chunks(USAGE_ROWS_PER_STATEMENT) {
            upsert_usage(&mut tx, chunk).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list(
        &self,
        scope: &Scope,
        filter: &RequestLogFilter,
        after: Option<&LogCursor>,
        limit: u32,
    ) -> Result<LogPage, StoreError> {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let filters = list_filters(scope, filter, after);
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM request_log{} ORDER BY received_at DESC, id DESC LIMIT {}",
            filters.sql(),
            limit + 1
        );
        let rows = filters.fetch_all(self.db().log_reader(), sql).await?;
        let mut entries = rows.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let next = if more { entries.last().map(LogCursor::of) } else { None };
        Ok(LogPage { entries, next })
    }

    async fn get(&self, scope: &Scope, id: &RequestLogId) -> Result<RequestLogDetail, StoreError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, {DETAIL_COLUMNS} FROM request_log \
             WHERE id = $1 AND tenant_id = $2 AND environment = $3"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .fetch_optional(self.db().log_reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(RequestLogDetail {
            summary: summary(&row)?,
            request: stored_body(&row, "request")?,
            response: stored_body(&row, "response")?,
        })
    }

    async fn requests_per_day(&self, scope: &Scope, now: Timestamp, days: u32) -> Result<Vec<DailyUsage>, StoreError> {
        let rows = self.usage(scope, now, days, "day", &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(DailyUsage {
                    day: r.try_get("day")?,
                    counts: counts(r)?,
                })
            })
            .collect()
    }

    async fn requests_per_key(&self, scope: &Scope, now: Timestamp, days: u32) -> Result<Vec<KeyUsage>, StoreError> {
        let rows = self.usage(scope, now, days, "api_key_id", &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(KeyUsage {
                    api_key_id: r.try_get("api_key_id")?,
                    counts: counts(r)?,
                })
            })
            .collect()
    }

    async fn endpoint_latency(
        &self,
        scope: &Scope,
        now: Timestamp,
        days: u32,
    ) -> Result<Vec<EndpointLatency>, StoreError> {
        let buckets = bucket_columns();
        let mut extra: Vec<&str> = vec!["latency_us_total"];
        extra.extend(buckets.iter().map(String::as_str));
        let rows = self.usage(scope, now, days, "method, route", &extra).await?;
        rows.iter().map(|r| endpoint(r, &buckets)).collect()
    }

    async fn purge_before(&self, cutoff: Timestamp, chunk_rows: u32) -> Result<PurgeRun, StoreError> {
        let mut run = PurgeRun::default();
        let chunk = i64::from(chunk_rows.max(1));
        loop {
            let deleted = sqlx::query(
                "DELETE FROM request_log WHERE id IN \
                 (SELECT id FROM request_log WHERE received_at < $1 LIMIT $2)",
            )
            .bind(cutoff.as_micros())
            .bind(chunk)
            .execute(self.db().log_writer())
            .await?
            .rows_affected();
            run.log_rows += deleted;
            if deleted < u64::try_from(chunk).unwrap_or(u64::MAX) {
                break;
            }
        }
        // A day is dropped once all of it is older than the cutoff; a few hundred rows per day.
        run.usage_rows = sqlx::query("DELETE FROM request_usage_daily WHERE day < $1")
            .bind(day_of(cutoff))
            .execute(self.db().log_writer())
            .await?
            .rows_affected();
        Ok(run)
    }
}

fn endpoint(row: &AnyRow, bucket_columns: &[String]) -> Result<EndpointLatency, StoreError> {
    let mut buckets = [0i64; LATENCY_BUCKETS];
    for (slot, column) in buckets.iter_mut().zip(bucket_columns) {
        *slot = row.try_get(column.as_str())?;
    }
    let counts = counts(row)?;
    let total: i64 = row.try_get("latency_us_total")?;
    Ok(EndpointLatency {
        method: row.try_get("method")?,
        route: row.try_get("route")?,
        counts,
        p50_us: latency_quantile_us(&buckets, 500),
        p99_us: latency_quantile_us(&buckets, 990),
        mean_us: if counts.requests > 0 {
            total / counts.requests
        } else {
            0
        },
    })
}
