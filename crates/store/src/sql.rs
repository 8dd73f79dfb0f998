//! SQL helpers shared by the aggregates: keyset pagination, timestamp columns and WHERE clauses
//! built from optional filters.

use cardplane_domain::Timestamp;
use cardplane_domain::page::{Cursor, Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, AssertSqlSafe, Row};

use crate::{Scope, StoreError};

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

    /// Adds `template` with `?1` standing for `first` and `?2` for `second`.
    pub fn add_pair(&mut self, template: &str, first: Bind, second: Bind) {
        self.binds.push(first);
        let one = format!("${}", self.binds.len());
        self.binds.push(second);
        let two = format!("${}", self.binds.len());
        self.clauses.push(template.replace("?1", &one).replace("?2", &two));
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

    /// Runs `sql` (built around `self.sql()`) with the filters' values bound; the filters can be
    /// used again (a page and its count).
    pub async fn fetch_all(&self, pool: &AnyPool, sql: String) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in &self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        Ok(q.fetch_all(pool).await?)
    }
}
