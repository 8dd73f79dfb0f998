//! Storage for the authorization engine's batches: one database transaction applies a whole
//! batch of network messages with set-based statements (every list travels as one JSON
//! parameter, see `recordset`). The engine drives it in this order, which is also the lock order
//! every process follows, so concurrent batches never deadlock:
//!
//! 1. `lock_cards`: the messages' cards, found by PAN hash, by id, or through the authorization a
//!    network transaction id names, with their accounts locked in account-id order;
//! 2. `stored_answers`: messages already answered (retries, or a duplicate committed while we
//!    waited for a lock);
//! 3. `transactions`, `spend_controls`, `usage`, `program_rules` (when a program's rules stamp
//!    moved), `risk_profiles`: what the decisions read;
//! 4. `lock_control_scopes` (cardholder- and program-wide controls and velocity counters, in key
//!    order), then `velocity_counters`, then `lock_accounts` (program accounts a posting credits
//!    or debits, in id order);
//! 5. `write`: every answer, transaction, balance, journal, event and webhook delivery;
//! 6. `commit`.
//!
//! Every statement is counted (`statements`), so the engine can report statements per message.

mod reads;
mod recordset;
mod screening;
mod writes;

pub use reads::{LockedCard, UsageRow};
pub use screening::StoredRuleVersion;
pub(crate) use writes::write_events;
pub use writes::{BatchWrites, RecordedMessage};

use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::card_controls::TrackedUsage;
use cardplane_domain::ids::{CardId, TransactionId};
use cardplane_domain::program::Program;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use crate::{Backend, SqlStore, StoreError};

/// An open batch transaction.
pub struct NetworkBatch {
    tx: sqlx::Transaction<'static, Any>,
    backend: Backend,
    statements: u64,
}

/// Runs statements on a connection, counting them.
pub(crate) struct Exec<'c> {
    pub conn: &'c mut AnyConnection,
    pub backend: Backend,
    pub statements: &'c mut u64,
}

impl Exec<'_> {
    pub async fn execute(
        &mut self,
        q: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    ) -> Result<u64, StoreError> {
        *self.statements += 1;
        Ok(q.execute(&mut *self.conn).await?.rows_affected())
    }

    pub async fn fetch_all(
        &mut self,
        q: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        *self.statements += 1;
        Ok(q.fetch_all(&mut *self.conn).await?)
    }
}

impl NetworkBatch {
    pub(crate) fn exec(&mut self) -> Exec<'_> {
        Exec {
            conn: &mut self.tx,
            backend: self.backend,
            statements: &mut self.statements,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Statements run so far, BEGIN included.
    pub fn statements(&self) -> u64 {
        self.statements
    }

    /// Commits; returns the statements the batch ran, BEGIN and COMMIT included.
    pub async fn commit(mut self) -> Result<u64, StoreError> {
        self.statements += 1;
        let n = self.statements;
        self.tx.commit().await?;
        Ok(n)
    }
}

/// What the engine reads outside a batch, and how it opens one.
#[async_trait]
pub trait NetworkBatchStore: Send + Sync {
    /// Begins a batch transaction (SQLite: takes the write lock at once).
    async fn begin_batch(&self) -> Result<NetworkBatch, StoreError>;
    /// Programs of an environment whose BIN is one of these (BINs never overlap).
    async fn programs_by_bin(&self, environment: Environment, bins: &[&str]) -> Result<Vec<Program>, StoreError>;
    /// Fills in what each usage has used in its window (outside a batch: for display and for the
    /// checks made before asking a custodian). Returns the oldest counted time of each.
    async fn read_usage(&self, usages: &mut [TrackedUsage]) -> Result<Vec<Option<Timestamp>>, StoreError>;
    /// Pending authorizations whose hold expired at `now`, oldest first, at most `limit`.
    async fn due_holds(&self, now: Timestamp, limit: i64) -> Result<Vec<(TransactionId, CardId)>, StoreError>;
    /// Deletes velocity counter buckets no window reaches any more (`rules::velocity::RETENTION_SECS`).
    async fn prune_velocity_counters(&self, now: Timestamp) -> Result<u64, StoreError>;
}

#[async_trait]
impl NetworkBatchStore for SqlStore {
    async fn begin_batch(&self) -> Result<NetworkBatch, StoreError> {
        let backend = self.db.backend();
        let begin = match backend {
            // The first statements only read: a deferred transaction could fail to upgrade to a
            // writer once another process has written.
            Backend::Sqlite => "BEGIN IMMEDIATE",
            // Every statement of a batch starts from its own few hundred rows (the JSON
            // parameter) and reaches each table through an index, row by row. The planner is told
            // so: its statistics can say otherwise (a young table looks empty), and a plan made
            // from them would scan the table, or hash all of it, for every batch as it grows (the
            // plan is kept for the connection's life). Nor JIT: it pays off for long analytic
            // queries and costs a batch milliseconds each time.
            Backend::Postgres => {
                "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; \
                 SET LOCAL enable_mergejoin = off; SET LOCAL jit = off"
            }
        };
        let tx = self.db.writer().begin_with(begin).await?;
        Ok(NetworkBatch {
            tx,
            backend,
            statements: 1,
        })
    }

    async fn programs_by_bin(&self, environment: Environment, bins: &[&str]) -> Result<Vec<Program>, StoreError> {
        let mut conn = self.db.reader().acquire().await?;
        let mut statements = 0;
        let mut exec = Exec {
            conn: &mut conn,
            backend: self.db.backend(),
            statements: &mut statements,
        };
        reads::programs_by_bin(&mut exec, environment, bins).await
    }

    async fn read_usage(&self, usages: &mut [TrackedUsage]) -> Result<Vec<Option<Timestamp>>, StoreError> {
        let mut conn = self.db.reader().acquire().await?;
        let mut statements = 0;
        let mut exec = Exec {
            conn: &mut conn,
            backend: self.db.backend(),
            statements: &mut statements,
        };
        let rows = reads::usage(&mut exec, usages).await?;
        Ok(fill_usage(usages, &rows))
    }

    async fn due_holds(&self, now: Timestamp, limit: i64) -> Result<Vec<(TransactionId, CardId)>, StoreError> {
        sqlx::query(
            "SELECT id, card_id FROM transactions WHERE state = 'PENDING' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now.as_micros())
        .bind(limit)
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(|row| {
            Ok((
                TransactionId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
                CardId::parse(&row.try_get::<String, _>("card_id")?).map_err(StoreError::other)?,
            ))
        })
        .collect()
    }

    async fn prune_velocity_counters(&self, now: Timestamp) -> Result<u64, StoreError> {
        let before = now.unix_seconds() - cardplane_domain::rules::velocity::RETENTION_SECS;
        let done = sqlx::query("DELETE FROM velocity_counters WHERE bucket < $1")
            .bind(before)
            .execute(self.db.writer())
            .await?;
        Ok(done.rows_affected())
    }
}

/// Sets each usage from its row (usages with no row used nothing); returns the oldest times.
pub(crate) fn fill_usage(usages: &mut [TrackedUsage], rows: &[UsageRow]) -> Vec<Option<Timestamp>> {
    let mut oldest = vec![None; usages.len()];
    for u in usages.iter_mut() {
        u.used_amount = 0;
        u.used_count = 0;
    }
    for row in rows {
        if let Some(u) = usages.get_mut(row.index) {
            u.used_amount = row.amount;
            u.used_count = row.count;
            oldest[row.index] = row.oldest;
        }
    }
    oldest
}

impl NetworkBatch {
    pub async fn read_usage(&mut self, usages: &mut [TrackedUsage]) -> Result<(), StoreError> {
        let rows = reads::usage(&mut self.exec(), usages).await?;
        fill_usage(usages, &rows);
        Ok(())
    }
}
