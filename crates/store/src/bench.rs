//! Storage operations for the benchmark harness: bulk provisioning of funded cards (multi-row
//! inserts, balanced journals, so `ledger verify` stays clean) and the naive database bound.

use std::time::{Duration, Instant};

use cardplane_domain::Timestamp;
use cardplane_domain::ids::{AccountId, JournalId, LedgerEntryId};
use cardplane_domain::ledger::{Account, JournalKind};
use sqlx::{AnyConnection, AssertSqlSafe};

use crate::cards::{CardIssue, write_card_issues};
use crate::ledger::PostError;
use crate::{Backend, Scope, SqlStore, StoreError};

const ENTRY_ROWS: usize = 500;

fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            format!(
                "({})",
                (0..columns)
                    .map(|c| format!("${}", r * columns + c + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_entries(
    conn: &mut AnyConnection,
    scope: &Scope,
    journal: &JournalId,
    entries: &[(&AccountId, &str, i64, i64)],
    currency: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    for chunk in entries.chunks(ENTRY_ROWS) {
        let sql = format!(
            "INSERT INTO ledger_entries (id, journal_id, tenant_id, environment, account_id, direction, amount, currency, \
             balance_after, created_at) VALUES {}",
            placeholders(chunk.len(), 10)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (account, direction, amount, after) in chunk {
            q = q
                .bind(LedgerEntryId::generate().to_string())
                .bind(journal.as_str())
                .bind(scope.tenant_id.as_str())
                .bind(scope.environment.as_str())
                .bind(account.as_str())
                .bind(*direction)
                .bind(*amount)
                .bind(currency)
                .bind(*after)
                .bind(now.as_micros());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl SqlStore {
    /// Issues cards already funded with `amount` each from the program's funding account, in one
    /// transaction: card accounts are opened at their funded balance and one balanced journal
    /// (one debit of the funding account, one credit per card) explains every balance.
    pub async fn provision_funded_cards(
        &self,
        scope: &Scope,
        funding: &Account,
        issues: &[CardIssue],
        amount: i64,
    ) -> Result<(), PostError> {
        let now = Timestamp::now();
        let total = amount
            .checked_mul(i64::try_from(issues.len()).unwrap_or(i64::MAX))
            .ok_or_else(|| StoreError::corrupt("overflow"))?;
        let funded: Vec<CardIssue> = issues
            .iter()
            .map(|i| {
                let mut i = i.clone();
                if let Some(a) = i.new_account.as_mut() {
                    a.balance = amount;
                }
                i
            })
            .collect();
        let mut tx = self.db.writer().begin().await?;
        let journal = JournalId::generate();
        sqlx::query("INSERT INTO journals (id, tenant_id, environment, kind, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(journal.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(JournalKind::BalanceAdjustment.as_str())
            .bind("Benchmark provisioning")
            .bind(now.as_micros())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1 AND (floor IS NULL OR balance - $2 - held >= floor) \
             RETURNING balance",
        )
        .bind(funding.id.as_str())
        .bind(total)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(PostError::InsufficientFunds(funding.id.clone()));
        };
        let funding_after: i64 = sqlx::Row::try_get(&row, "balance")?;
        write_card_issues(&mut tx, scope, &funded).await?;
        let currency = funding.currency.code();
        let mut entries: Vec<(&AccountId, &str, i64, i64)> = vec![(&funding.id, "debit", total, funding_after)];
        entries.extend(
            funded
                .iter()
                .filter_map(|i| i.new_account.as_ref())
                .map(|a| (&a.id, "credit", amount, amount)),
        );
        insert_entries(&mut tx, scope, &journal, &entries, currency, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// After bulk provisioning: fresh planner statistics and a checkpoint, so the measured run
    /// meets the database in the state steady traffic leaves it in, not the aftermath of a load.
    pub async fn settle_after_provisioning(&self) -> Result<(), StoreError> {
        let statements: &[&str] = match self.db.backend() {
            Backend::Postgres => &[
                "VACUUM (ANALYZE) cards, accounts, journals, ledger_entries",
                "CHECKPOINT",
            ],
            Backend::Sqlite => &["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"],
        };
        for statement in statements {
            sqlx::query(*statement).execute(self.db.writer()).await?;
        }
        Ok(())
    }

    /// The naive bound: `connections` workers each moving 1 unit between two accounts of a scratch
    /// table and recording a journal row, one transaction per transfer, for `duration`. Returns
    /// transfers per second. The scratch tables are dropped afterwards.
    pub async fn naive_transfer_bound(&self, connections: usize, duration: Duration) -> Result<f64, StoreError> {
        let pool = self.db.writer().clone();
        for sql in [
            "DROP TABLE IF EXISTS bench_naive_journal",
            "DROP TABLE IF EXISTS bench_naive_accounts",
            "CREATE TABLE bench_naive_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)",
            "CREATE TABLE bench_naive_journal (id TEXT PRIMARY KEY, debit BIGINT NOT NULL, credit BIGINT NOT NULL, amount BIGINT NOT NULL)",
        ] {
            sqlx::query(sql).execute(&pool).await?;
        }
        let accounts: i64 = 1_000;
        for start in (0..accounts).step_by(200) {
            let rows: Vec<String> = (start..(start + 200).min(accounts))
                .map(|i| format!("({i}, 1000000000)"))
                .collect();
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO bench_naive_accounts (id, balance) VALUES {}",
                rows.join(", ")
            )))
            .execute(&pool)
            .await?;
        }
        let postgres = self.db.backend() == Backend::Postgres;
        let deadline = Instant::now() + duration;
        let mut workers = Vec::new();
        for w in 0..connections {
            let pool = pool.clone();
            workers.push(tokio::spawn(async move {
                let mut done: u64 = 0;
                let mut i = i64::try_from(w).unwrap_or(0);
                while Instant::now() < deadline {
                    let (from, to) = (i % accounts, (i * 7 + 1) % accounts);
                    i += 1;
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    if postgres {
                        // Debit, credit and journal in one statement.
                        sqlx::query(
                            "WITH d AS (UPDATE bench_naive_accounts SET balance = balance - 1 WHERE id = $1 AND balance >= 1 RETURNING id), \
                             c AS (UPDATE bench_naive_accounts SET balance = balance + 1 WHERE id = $2 AND EXISTS (SELECT 1 FROM d) RETURNING id) \
                             INSERT INTO bench_naive_journal (id, debit, credit, amount) SELECT $3, $1, $2, 1 FROM c",
                        )
                        .bind(from)
                        .bind(to)
                        .bind(id)
                        .execute(&pool)
                        .await?;
                    } else {
                        let mut tx = pool.begin().await?;
                        sqlx::query("UPDATE bench_naive_accounts SET balance = balance - 1 WHERE id = $1 AND balance >= 1").bind(from).execute(&mut *tx).await?;
                        sqlx::query("UPDATE bench_naive_accounts SET balance = balance + 1 WHERE id = $1").bind(to).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO bench_naive_journal (id, debit, credit, amount) VALUES ($1, $2, $3, 1)")
                            .bind(id)
                            .bind(from)
                            .bind(to)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                    }
                    done += 1;
                }
                Ok::<u64, StoreError>(done)
            }));
        }
        let started = Instant::now();
        let mut total = 0u64;
        for w in workers {
            total += w.await.map_err(StoreError::other)??;
        }
        let secs = started.elapsed().as_secs_f64().max(duration.as_secs_f64());
        for sql in [
            "DROP TABLE IF EXISTS bench_naive_journal",
            "DROP TABLE IF EXISTS bench_naive_accounts",
        ] {
            sqlx::query(sql).execute(&pool).await?;
        }
        #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
        Ok(total as f64 / secs)
    }
}

impl SqlStore {
    /// The total held and posted balance of a tenant's card accounts (benchmark conservation checks).
    pub async fn tenant_holds(&self, scope: &Scope) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(held), 0) AS BIGINT) AS held, CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS balance \
             FROM accounts WHERE tenant_id = $1 AND environment = $2 AND kind = 'card_balance'",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .fetch_one(self.db.reader())
        .await?;
        Ok((sqlx::Row::try_get(&row, "held")?, sqlx::Row::try_get(&row, "balance")?))
    }
}

impl SqlStore {
    /// Installs active authorization rules on a program (definitions as the rules API takes
    /// them), as the rules API would: versions written, the tenant's rules stamp moved.
    pub async fn install_bench_rules(
        &self,
        scope: &Scope,
        program: &cardplane_domain::ids::ProgramId,
        definitions: &[serde_json::Value],
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.db.writer().begin().await?;
        for (i, definition) in definitions.iter().enumerate() {
            let id = cardplane_domain::ids::AuthorizationRuleId::generate();
            let kind = definition["type"].as_str().unwrap_or_default().to_owned();
            sqlx::query(
                "INSERT INTO authorization_rules (id, tenant_id, environment, scope_kind, scope_id, kind, active_version, \
                 draft_version, latest_version, created_at, updated_at) VALUES ($1, $2, $3, 'program', $4, $5, 1, NULL, 1, $6, $6)",
            )
            .bind(id.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(program.as_str())
            .bind(kind)
            .bind(now + i64::try_from(i).unwrap_or(0))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO authorization_rule_versions (rule_id, version, state, definition, created_by, created_at) \
                 VALUES ($1, 1, 'active', $2, 'bench', $3)",
            )
            .bind(id.as_str())
            .bind(definition.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE programs SET rules_version = rules_version + 1 WHERE tenant_id = $1 AND environment = $2")
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl SqlStore {
    /// Writes `n` stored authorizations of `program`'s cards, spread evenly over
    /// [`from`, `from + span_secs`), as the engine would have stored them (merchants, entry
    /// modes and amounts varied; every 20th declined for funds; a risk-score step in every trace),
    /// in one set-based statement: history for backtests to replay. Returns how many were written.
    pub async fn insert_bench_history(
        &self,
        scope: &Scope,
        program: &cardplane_domain::ids::ProgramId,
        n: i64,
        from: Timestamp,
        span_secs: i64,
    ) -> Result<u64, StoreError> {
        let offset = i64::from(uuid::Uuid::new_v4().as_fields().0) << 24;
        let step = (span_secs * 1_000_000 / n.max(1)).max(1);
        let series = match self.db.backend() {
            Backend::Postgres => "SELECT generate_series(0, $3 - 1) AS x",
            Backend::Sqlite => {
                "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $3) SELECT x FROM s"
            }
        };
        let hex = match self.db.backend() {
            Backend::Postgres => "lpad(to_hex(g.x + $4), 32, '0')",
            Backend::Sqlite => "printf('%032x', g.x + $4)",
        };
        let sql = format!(
            "WITH g AS ({series}), \
             c AS (SELECT id, cardholder_id, account_id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS k FROM cards WHERE program_id = $1), \
             n AS (SELECT COUNT(*) AS total FROM c) \
             INSERT INTO transactions (id, tenant_id, environment, card_id, cardholder_id, program_id, account_id, kind, state, \
             network_transaction_id, currency, requested_amount, authorized_amount, held_amount, cleared_amount, reversed_amount, \
             response_code, decline_reason, authorization_code, merchant_id, merchant_name, mcc, merchant_country, merchant_city, \
             entry_mode, stand_in, decision_trace, received_at, custodian_sent_at, custodian_answered_at, answered_at, expires_at, \
             created_at, updated_at) \
             SELECT 'txn_' || {hex}, $2, $5, c.id, c.cardholder_id, $1, c.account_id, 'authorization', \
             CASE WHEN g.x % 20 = 19 THEN 'DECLINED' ELSE 'COMPLETE' END, 'hist_' || {hex}, 'USD', \
             100 + (g.x * 7919) % 50000, CASE WHEN g.x % 20 = 19 THEN 0 ELSE 100 + (g.x * 7919) % 50000 END, 0, \
             CASE WHEN g.x % 20 = 19 THEN 0 ELSE 100 + (g.x * 7919) % 50000 END, 0, \
             CASE WHEN g.x % 20 = 19 THEN '51' ELSE '00' END, CASE WHEN g.x % 20 = 19 THEN 'insufficient_funds' ELSE NULL END, \
             NULL, 'm_' || (g.x % 500), 'Merchant ' || (g.x % 500), \
             CASE g.x % 5 WHEN 0 THEN '5411' WHEN 1 THEN '5812' WHEN 2 THEN '5999' WHEN 3 THEN '7995' ELSE '4829' END, \
             CASE WHEN g.x % 10 = 3 THEN 'FRA' ELSE 'USA' END, 'Austin', \
             CASE WHEN g.x % 3 = 0 THEN 'ecommerce' ELSE 'chip' END, 0, \
             '[{{\"check\":\"funds\",\"result\":\"' || CASE WHEN g.x % 20 = 19 THEN 'fail' ELSE 'pass' END || \
             '\",\"detail\":\"\"}},{{\"check\":\"risk_score\",\"result\":\"pass\",\"detail\":\"' || ((g.x * 37) % 1000) || ': bench\"}}]', \
             $6 + g.x * $7, NULL, NULL, $6 + g.x * $7, NULL, $6 + g.x * $7, $6 + g.x * $7 \
             FROM g JOIN c ON c.k = g.x % (SELECT total FROM n)",
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(program.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(n)
            .bind(offset)
            .bind(scope.environment.as_str())
            .bind(from.as_micros())
            .bind(step)
            .execute(self.db.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
