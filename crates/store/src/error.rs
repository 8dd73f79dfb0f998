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
            _ if is_unavailable(&e) => StoreError::Unavailable(e),
            _ => StoreError::Other(Box::new(e)),
        }
    }
}

/// Whether an error means "the database cannot be reached or is not serving right now" (retry
/// later) rather than "this request or our code is wrong": a connection that broke or could not be
/// opened in time, a server shutting down or starting up, or (SQLite) a lock that stayed busy past
/// the busy timeout.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        // A connection cut mid-message leaves the protocol state unreadable.
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs (class 08 connection exception, 57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now, 53300 too many connections) and SQLite result codes
/// (SQLITE_BUSY 5, SQLITE_LOCKED 6, with their extended variants).
fn unavailable_code(code: &str) -> bool {
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300") {
        return true;
    }
    // SQLSTATEs are always five characters; SQLite's (extended) result codes are shorter numbers.
    code.len() < 5 && code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

impl StoreError {
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Other(Box::new(e))
    }

    pub fn corrupt(what: impl Into<String>) -> Self {
        StoreError::Other(what.into().into())
    }

    /// Whether a posting was refused because a balance would leave the ledger's limit.
    pub fn is_balance_limit(&self) -> bool {
        matches!(self, StoreError::Conflict { constraint } if constraint == crate::ledger::BALANCE_LIMIT_CONSTRAINT)
    }

    /// Whether this conflict is on the named unique index (PostgreSQL names the constraint;
    /// SQLite names the columns, so match either).
    pub fn is_conflict_on(&self, constraint: &str, column: &str) -> bool {
        matches!(self, StoreError::Conflict { constraint: c } if c.contains(constraint) || c.contains(column))
    }
}

#[cfg(test)]
mod tests {
    use super::unavailable_code;

    #[test]
    fn connection_and_shutdown_codes_mean_unavailable() {
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "53300", "5", "517", "261", "6", "262",
        ] {
            assert!(unavailable_code(code), "{code}");
        }
        for code in ["23505", "40001", "22012", "42P01", "2067", "19", "1555"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }
}
