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
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
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

impl Db {
    pub async fn connect(options: &DbOptions) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if options.url.starts_with("sqlite:") {
            let url = if options.url.contains("mode=") {
                options.url.clone()
            } else if options.url.contains('?') {
                format!("{}&mode=rwc", options.url)
            } else {
                format!("{}?mode=rwc", options.url)
            };
            (Backend::Sqlite, url)
        } else if options.url.starts_with("postgres:") || options.url.starts_with("postgresql:") {
            (Backend::Postgres, options.url.clone())
        } else {
            return Err(StoreError::corrupt("database URL must start with sqlite: or postgres:"));
        };
        let connect = AnyConnectOptions::from_str(&url)?;
        let db = match backend {
            Backend::Sqlite => {
                let writer = pool_options(1, options.acquire_timeout, SQLITE_WRITER_PRAGMAS)
                    .connect_with(connect.clone())
                    .await?;
                let reader = pool_options(options.max_connections.max(2), options.acquire_timeout, "")
                    .connect_with(connect)
                    .await?;
                Db {
                    backend,
                    writer,
                    reader,
                }
            }
            Backend::Postgres => {
                let pool = pool_options(options.max_connections, options.acquire_timeout, "")
                    .connect_with(connect)
                    .await?;
                Db {
                    backend,
                    writer: pool.clone(),
                    reader: pool,
                }
            }
        };
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend)
            .run(&self.writer)
            .await
            .map_err(StoreError::other)
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

    /// SQLite: copies what it can of the write-ahead log back into the database without
    /// waiting for (or blocking) the writer. `serve` calls it a few times a second. PostgreSQL
    /// checkpoints by itself.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.reader)
                .await?;
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
    }
}
