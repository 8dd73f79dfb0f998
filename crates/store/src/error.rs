/// Storage errors carry no SQL text outward: callers see what happened, not how.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The database is unreachable or overloaded; the request may be retried.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("storage failure")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                constraint: db
                    .constraint()
                    .map(str::to_owned)
                    .unwrap_or_else(|| db.message().to_owned()),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(e),
            _ => StoreError::Other(Box::new(e)),
        }
    }
}

impl StoreError {
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Other(Box::new(e))
    }

    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Other(what.into().into())
    }

    /// Whether this conflict is on the named unique index (PostgreSQL names the constraint;
    /// SQLite names the columns, so match either).
    pub fn is_conflict_on(&self, constraint: &str, column: &str) -> bool {
        matches!(self, StoreError::Conflict { constraint: c } if c.contains(constraint) || c.contains(column))
    }
}
