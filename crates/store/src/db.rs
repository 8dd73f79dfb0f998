use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a connection talks to.
    pub fn of(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl DbOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Connection pools. PostgreSQL uses one pool for everything. SQLite allows one writer at a time,
/// so writes go through a single-connection pool (no SQLITE_BUSY between our own writers) while
/// reads use a pool of WAL readers.
///
/// On a SQLite file the developer portal's request log lives in a second file beside it
/// ([`request_log_url`]) with pools of its own: its batched writes then never hold the writer the
/// API and the authorization engine wait on (sharing it cost the API ~10% of its throughput).
/// Nothing joins the log to other tables. On PostgreSQL the log writes through a small pool of
/// its own (reads share the main pool); in-memory SQLite shares everything.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    log_writer: AnyPool,
    log_reader: AnyPool,
}

/// PostgreSQL connections kept for the request log's writer (one batch at a time, plus the
/// retention purge).
const LOG_WRITER_CONNECTIONS: u32 = 2;

/// Where the request log lives on SQLite: `x.db` → `x-request-log.db` beside it (same query
/// options). `None` for PostgreSQL and in-memory SQLite, where the log shares the database.
pub fn request_log_url(url: &str) -> Option<String> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, format!("?{query}")),
        None => (url, String::new()),
    };
    let stem = path.strip_suffix(".db").unwrap_or(path);
    Some(format!("{stem}-request-log.db{query}"))
}

/// The request log's tables, for its own SQLite file.
fn request_log_migrator() -> Migrator {
    let mut m = Migrator::with_migrations(vec![migration(
        33,
        "request log",
        include_str!("../migrations/0033_request_log.sql"),
    )]);
    m.set_ignore_missing(true);
    m
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";
/// The one writer connection keeps a larger page cache (64 MiB, against 2 MiB by default): every
/// batch of network messages reads and writes through it, and pages it keeps are reads it saves.
/// It leaves checkpoints to `Db::checkpoint` on a reader connection (a checkpoint on the writer
/// stalls every message queued behind it); its own only past 80 MiB of WAL, as a backstop.
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 20000;";

fn migration(version: i64, description: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        description.into(),
        MigrationType::Simple,
        sqlx::AssertSqlSafe(sql).into_sql_str(),
        false,
    )
}

/// Shared, portable migrations plus the few statements each backend spells its own way.
fn migrator(backend: Backend) -> Migrator {
    let immutable = match backend {
        Backend::Sqlite => include_str!("../migrations/0003_immutable_ledger.sqlite.sql"),
        Backend::Postgres => include_str!("../migrations/0003_immutable_ledger.postgres.sql"),
    };
    let append_only = match backend {
        Backend::Sqlite => include_str!("../migrations/0021_append_only.sqlite.sql"),
        Backend::Postgres => include_str!("../migrations/0021_append_only.postgres.sql"),
    };
    let system_notes = match backend {
        Backend::Sqlite => include_str!("../migrations/0022_system_case_notes.sqlite.sql"),
        Backend::Postgres => include_str!("../migrations/0022_system_case_notes.postgres.sql"),
    };
    let mut migrations = vec![
        migration(1, "foundation", include_str!("../migrations/0001_foundation.sql")),
        migration(2, "cards ledger", include_str!("../migrations/0002_cards_ledger.sql")),
        migration(3, "immutable ledger", immutable),
        migration(
            4,
            "authorizations",
            include_str!("../migrations/0004_authorizations.sql"),
        ),
        migration(5, "rate limits", include_str!("../migrations/0005_rate_limits.sql")),
        migration(10, "webhooks", include_str!("../migrations/0010_webhooks.sql")),
        migration(
            20,
            "people compliance audit",
            include_str!("../migrations/0020_people_compliance_audit.sql"),
        ),
        migration(21, "append only", append_only),
        migration(22, "system case notes", system_notes),
        migration(24, "disputes", include_str!("../migrations/0024_disputes.sql")),
        match backend {
            Backend::Sqlite => Migration::new(
                25,
                "dispute accounts".into(),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(include_str!("../migrations/0025_dispute_accounts.sqlite.sql")).into_sql_str(),
                true,
            ),
            Backend::Postgres => migration(
                25,
                "dispute accounts",
                include_str!("../migrations/0025_dispute_accounts.postgres.sql"),
            ),
        },
        migration(
            26,
            "authorization rules",
            include_str!("../migrations/0026_authorization_rules.sql"),
        ),
        migration(
            30,
            "health rollups",
            include_str!("../migrations/0030_health_rollups.sql"),
        ),
        migration(
            31,
            "console lookups",
            include_str!("../migrations/0031_console_lookups.sql"),
        ),
        migration(
            27,
            "rule scope refs",
            include_str!("../migrations/0027_rule_scope_refs.sql"),
        ),
        migration(
            32,
            "health rollups hourly",
            include_str!("../migrations/0032_health_rollups_hourly.sql"),
        ),
        migration(
            34,
            "portal invitations",
            include_str!("../migrations/0034_portal_invitations.sql"),
        ),
        migration(33, "request log", include_str!("../migrations/0033_request_log.sql")),
    ];
    if backend == Backend::Postgres {
        migrations.push(migration(
            23,
            "transaction checks",
            include_str!("../migrations/0023_transaction_checks.postgres.sql"),
        ));
        migrations.push(migration(
            11,
            "event sequence",
            include_str!("../migrations/0011_event_sequence.postgres.sql"),
        ));
    }
    migrations.sort_by_key(|m| m.version);
    Migrator::with_migrations(migrations)
}

fn pool_options(max: u32, acquire_timeout: Duration, sqlite_pragmas: &'static str) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if Backend::of(conn) == Backend::Sqlite {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    if !sqlite_pragmas.is_empty() {
                        conn.execute(sqlite_pragmas).await?;
                    }
                }
                Ok(())
            })
        })
}

/// A SQLite file's single writer and its pool of WAL readers (`mode=rwc` unless the URL says).
async fn sqlite_pools(url: &str, options: &DbOptions) -> Result<(AnyPool, AnyPool), StoreError> {
    let url = if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    let connect = AnyConnectOptions::from_str(&url)?;
    let writer = pool_options(1, options.acquire_timeout, SQLITE_WRITER_PRAGMAS)
        .connect_with(connect.clone())
        .await?;
    let reader = pool_options(options.max_connections.max(2), options.acquire_timeout, "")
        .connect_with(connect)
        .await?;
    Ok((writer, reader))
}

impl Db {
    pub async fn connect(options: &DbOptions) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        if options.url.starts_with("sqlite:") {
            let (writer, reader) = sqlite_pools(&options.url, options).await?;
            let (log_writer, log_reader) = match request_log_url(&options.url) {
                Some(log_url) => sqlite_pools(&log_url, options).await?,
                None => (writer.clone(), reader.clone()),
            };
            Ok(Db {
                backend: Backend::Sqlite,
                writer,
                reader,
                log_writer,
                log_reader,
            })
        } else if options.url.starts_with("postgres:") || options.url.starts_with("postgresql:") {
            let connect = AnyConnectOptions::from_str(&options.url)?;
            let pool = pool_options(options.max_connections, options.acquire_timeout, "")
                .connect_with(connect.clone())
                .await?;
            // The log's batch writes take connections of their own, never one a request waits for.
            let log_writer = pool_options(LOG_WRITER_CONNECTIONS, options.acquire_timeout, "")
                .connect_with(connect)
                .await?;
            Ok(Db {
                backend: Backend::Postgres,
                writer: pool.clone(),
                reader: pool.clone(),
                log_writer,
                log_reader: pool,
            })
        } else {
            Err(StoreError::corrupt("database URL must start with sqlite: or postgres:"))
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend)
            .run(&self.writer)
            .await
            .map_err(StoreError::other)?;
        if self.backend == Backend::Sqlite {
            // A no-op when the log shares the database (migration 33 is already applied there).
            request_log_migrator()
                .run(&self.log_writer)
                .await
                .map_err(StoreError::other)?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// The request log's writer (see [`Db`]).
    pub(crate) fn log_writer(&self) -> &AnyPool {
        &self.log_writer
    }

    pub(crate) fn log_reader(&self) -> &AnyPool {
        &self.log_reader
    }

    /// SQLite: copies what it can of the write-ahead log back into the database without
    /// waiting for (or blocking) the writer. `serve` calls it a few times a second. PostgreSQL
    /// checkpoints by itself.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            for pool in [&self.reader, &self.log_reader] {
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        self.log_writer.close().await;
        self.log_reader.close().await;
    }
}

#[cfg(test)]
mod request_log_file_tests {
    use super::request_log_url;

    #[test]
    fn the_request_log_file_sits_beside_a_sqlite_file_only() {
        assert_eq!(
            request_log_url("sqlite:///var/lib/cardplane.db").as_deref(),
            Some("sqlite:///var/lib/cardplane-request-log.db")
        );
        assert_eq!(
            request_log_url("sqlite://data/x?mode=rwc").as_deref(),
            Some("sqlite://data/x-request-log.db?mode=rwc")
        );
        assert_eq!(request_log_url("sqlite::memory:"), None);
        assert_eq!(request_log_url("postgres://postgres@127.0.0.1/db"), None);
    }
}
