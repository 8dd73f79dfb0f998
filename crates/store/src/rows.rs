//! Helpers shared by the aggregates: events and idempotent responses written inside a caller's
//! transaction, and keyset pagination.

use cardplane_domain::Timestamp;
use cardplane_domain::event::Event;
use cardplane_domain::idempotency::IDEMPOTENCY_TTL_SECS;
use cardplane_domain::page::{Cursor, Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use crate::{EffectRecords, IdempotentResponse, Scope, StoreError};

/// Appends events with their sequence numbers and webhook deliveries, inside the caller's
/// transaction (see `network_batch::write_events`).
pub(crate) async fn insert_events(conn: &mut AnyConnection, events: &[Event]) -> Result<(), StoreError> {
    let backend = crate::Backend::of(conn);
    let mut statements = 0;
    let mut exec = crate::network_batch::Exec {
        conn,
        backend,
        statements: &mut statements,
    };
    crate::network_batch::write_events(&mut exec, events).await
}

/// Writes what goes with an effect (its idempotent answer, its audit entry) inside the effect's
/// transaction.
pub(crate) async fn write_effect_records(
    conn: &mut AnyConnection,
    scope: &Scope,
    records: Option<&EffectRecords>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(records) = records else { return Ok(()) };
    if let Some(r) = &records.replay {
        complete_idempotency(conn, scope, r, now).await?;
    }
    if let Some(audit) = &records.audit {
        crate::audit::append_audit(conn, audit).await?;
    }
    Ok(())
}

/// Completes a claimed key with the response. The claim must still be ours (in flight): anything
/// else means the key was taken over and we must roll back.
pub(crate) async fn complete_idempotency(
    conn: &mut AnyConnection,
    scope: &Scope,
    r: &IdempotentResponse,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', response_status = $4, response_body = $5, expires_at = $6 \
         WHERE tenant_id = $1 AND environment = $2 AND idempotency_key = $3 AND state = 'in_flight' AND claim_token = $7",
    )
    .bind(scope.tenant_id.as_str())
    .bind(scope.environment.as_str())
    .bind(r.key.as_str())
    .bind(i64::from(r.status))
    .bind(r.body.as_str())
    .bind(now.plus_secs(IDEMPOTENCY_TTL_SECS).as_micros())
    .bind(r.claim_token.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            constraint: "idempotency_keys_claim".into(),
        });
    }
    Ok(())
}

/// Describes a scoped, keyset-paginated list over a table whose IDs sort by creation time.
pub(crate) struct ListSpec<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    /// An optional extra equality filter, e.g. `("cardholder_id", id)`.
    pub filter: Option<(&'static str, &'a str)>,
}

pub(crate) async fn list_page<T>(
    pool: &AnyPool,
    spec: ListSpec<'_>,
    scope: &Scope,
    page: &PageRequest,
    map: impl Fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut predicate = String::from("tenant_id = $1 AND environment = $2");
    if let Some((column, _)) = spec.filter {
        predicate.push_str(&format!(" AND {column} = $3"));
    }
    let cursor_param = if spec.filter.is_some() { 4 } else { 3 };
    let (cursor_sql, order) = match &page.cursor {
        Cursor::Newest => (String::new(), "DESC"),
        Cursor::After(_) => (format!(" AND id < ${cursor_param}"), "DESC"),
        Cursor::Before(_) => (format!(" AND id > ${cursor_param}"), "ASC"),
    };
    let limit = i64::from(page.limit) + 1;
    let sql = format!(
        "SELECT {} FROM {} WHERE {predicate}{cursor_sql} ORDER BY id {order} LIMIT {limit}",
        spec.columns, spec.table
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str());
    if let Some((_, value)) = spec.filter {
        q = q.bind(value);
    }
    if let Cursor::After(id) | Cursor::Before(id) = &page.cursor {
        q = q.bind(id.as_str());
    }
    let rows = q.fetch_all(pool).await?;
    let has_more = rows.len() > page.limit as usize;
    let mut items = rows
        .iter()
        .take(page.limit as usize)
        .map(&map)
        .collect::<Result<Vec<T>, _>>()?;
    if matches!(page.cursor, Cursor::Before(_)) {
        items.reverse();
    }

    let count_sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {predicate}", spec.table);
    let mut cq = sqlx::query(AssertSqlSafe(count_sql))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str());
    if let Some((_, value)) = spec.filter {
        cq = cq.bind(value);
    }
    let total: i64 = cq.fetch_one(pool).await?.try_get("n")?;
    Ok(Page { items, has_more, total })
}

pub(crate) fn opt_ts(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(Timestamp::from_micros))
}

pub(crate) fn ts(row: &AnyRow, column: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_micros(row.try_get::<i64, _>(column)?))
}

/// A value bound to a dynamic filter.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// A WHERE clause built from optional filters, numbering its placeholders as it goes.
#[derive(Default)]
pub(crate) struct Filters {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Filters {
    /// Adds `template` with every `?` standing for `value`.
    pub fn add(&mut self, template: &str, value: Bind) {
        self.binds.push(value);
        self.clauses
            .push(template.replace('?', &format!("${}", self.binds.len())));
    }

    /// Adds a clause with no parameter (built only from closed sets of names).
    pub fn raw(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub async fn fetch_all(self, pool: &AnyPool, sql: String) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        Ok(q.fetch_all(pool).await?)
    }
}
