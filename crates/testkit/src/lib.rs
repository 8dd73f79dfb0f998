//! Every storage test runs on both backends. Each test gets its own database: a SQLite file in a
//! temporary directory, or a uniquely named PostgreSQL database that is dropped when the test ends
//! (even if it panics).
//!
//! PostgreSQL comes from `CARDPLANE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! If it is unreachable the PostgreSQL half is skipped with a loud message, unless
//! `CARDPLANE_REQUIRE_POSTGRES=1` (set by `.ci/run`), in which case the test fails.
//!
//! [`net`] builds the card network's messages and [`http`] calls a running server (and reveals
//! PANs), for the API and CLI tests alike.

use std::io::Write;
use std::sync::Once;

use sqlx::{Connection, Executor, PgConnection};

mod cluster;
pub mod http;
pub mod net;
pub use cluster::PgCluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn admin_url() -> String {
    std::env::var("CARDPLANE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn postgres_required() -> bool {
    std::env::var("CARDPLANE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

fn warn_skipped(reason: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Written straight to the process's stderr so the test harness's capture cannot hide it.
        let banner = format!(
            "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!  PostgreSQL is unreachable ({reason}).\n\
             !!  THE POSTGRESQL HALF OF THE STORAGE TESTS WAS SKIPPED; only SQLite ran.\n\
             !!  Set CARDPLANE_REQUIRE_POSTGRES=1 to make this a failure (CI does).\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n"
        );
        let _ = std::io::stderr().write_all(banner.as_bytes());
    });
}

fn with_database(url: &str, name: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{url}/{name}"),
    }
}

impl TestDb {
    /// A fresh, empty database, or `None` when PostgreSQL is unavailable and not required.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("cardplane.db").display());
                Some(TestDb {
                    backend,
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                let admin = admin_url();
                let mut conn = match PgConnection::connect(&admin).await {
                    Ok(c) => c,
                    Err(e) if !postgres_required() => {
                        warn_skipped(&e.to_string());
                        return None;
                    }
                    Err(e) => panic!("CARDPLANE_REQUIRE_POSTGRES is set but PostgreSQL is unreachable at {admin}: {e}"),
                };
                let name = format!("cardplane_test_{}", uuid::Uuid::new_v4().simple());
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let _ = conn.close().await;
                let url = with_database(&admin, &name);
                Some(TestDb {
                    backend,
                    url,
                    _dir: None,
                    pg_name: Some(name),
                })
            }
        }
    }

    /// The path of the SQLite file (for scans of what is stored at rest).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self._dir.as_ref().map(|d| d.path().join("cardplane.db"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any async context we can rely on: use a private runtime on a thread.
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Generates `sqlite` and `postgres` test functions in a module named after each test. The test
/// body is an `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await;
            }
        }
    )+};
}
