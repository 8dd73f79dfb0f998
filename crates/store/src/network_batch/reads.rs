//! What a batch reads, set-based: one statement per kind of thing, whatever the batch size.

use cardplane_domain::authorization::Transaction;
use cardplane_domain::card::Card;
use cardplane_domain::card_controls::TrackedUsage;
use cardplane_domain::controls::SpendControl;
use cardplane_domain::ids::{AccountId, ProgramId};
use cardplane_domain::ledger::{Account, AccountKind};
use cardplane_domain::money::Currency;
use cardplane_domain::network::ProgramAccounts;
use cardplane_domain::program::Program;
use cardplane_domain::{Environment, Timestamp};
use sqlx::{AssertSqlSafe, Row};

use super::recordset::{Col, RecordSet, V, text_array, text_list};
use super::{Exec, NetworkBatch};
use crate::rows::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::rows::cards::{CARD_COLUMNS, card_from_row};
use crate::rows::controls::{CONTROL_COLUMNS, control_from_row};
use crate::rows::programs::{PROGRAM_COLUMNS, program_from_row};
use crate::rows::transactions::{COLUMNS as TRANSACTION_COLUMNS, transaction_from_row};
use crate::sql::ts;
use crate::{Backend, StoreError};

/// A card with its account, locked for the rest of the batch, and its program's version stamp.
#[derive(Debug, Clone)]
pub struct LockedCard {
    pub card: Card,
    pub account: Account,
    pub program_version: Timestamp,
    /// The stamp of the program's authorization rules (moved by every rule change).
    pub rules_version: i64,
    /// The cardholder's KYC status, for rules.
    pub kyc_status: String,
}

/// What one usage has used in its window: by the index of the usage asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRow {
    pub index: usize,
    pub amount: i64,
    pub count: i64,
    pub oldest: Option<Timestamp>,
}

static NTIDS: RecordSet = RecordSet {
    columns: &[("environment", Col::Text), ("ntid", Col::Text)],
};

fn ntid_rows(keys: &[(Environment, &str)]) -> String {
    let mut rows = NTIDS.rows();
    for (env, ntid) in keys {
        rows.row(&[V::Text(env.as_str()), V::Text(ntid)]);
    }
    rows.finish()
}

/// `outer`'s rows, each joined to the rows of `table` that `on` finds for it, through an index:
/// on PostgreSQL a LATERAL subquery, so the batch's own rows drive the lookups whatever the
/// planner's statistics say of `table` (see `NetworkBatchStore::begin_batch`); SQLite's planner
/// already goes from the small side.
fn each(backend: Backend, outer: &str, table: &str, alias: &str, on: &str, columns: &str) -> String {
    match backend {
        // OFFSET 0 keeps the planner from flattening the subquery back into a join it may order
        // the other way round.
        Backend::Postgres => {
            format!("{outer} CROSS JOIN LATERAL (SELECT {columns} FROM {table} {alias} WHERE {on} OFFSET 0) {alias}")
        }
        Backend::Sqlite => format!("{outer} JOIN {table} {alias} ON {on}"),
    }
}

fn prefixed(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl NetworkBatch {
    /// Locks the accounts of every card named by a PAN hash, by id, or by the authorization a
    /// network transaction id started, in account-id order, and returns the cards as they are now.
    // Long: one set-based statement, spelled per backend, built in one place.
    pub async fn lock_cards(
        &mut self,
        pan_hashes: &[&str],
        card_ids: &[&str],
        originals: &[(Environment, &str)],
    ) -> Result<Vec<LockedCard>, StoreError> {
        if pan_hashes.is_empty() && card_ids.is_empty() && originals.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend;
        let named = format!(
            "{} UNION SELECT value FROM {} UNION {}",
            format_args!(
                "SELECT c2.id FROM {}",
                each(
                    backend,
                    &text_list(backend, 1, "h"),
                    "cards",
                    "c2",
                    "c2.pan_hash = h.value",
                    "c2.id"
                )
            ),
            text_list(backend, 2, "i"),
            format_args!(
                "SELECT t.card_id FROM {}",
                each(
                    backend,
                    &NTIDS.source(backend, "$3", "o"),
                    "transactions",
                    "t",
                    "t.environment = o.environment AND t.network_transaction_id = o.ntid AND t.kind = 'authorization'",
                    "t.card_id"
                )
            ),
        );
        let row = format!(
            "{cards}, a.balance AS a_balance, a.held AS a_held, a.floor AS a_floor, a.kind AS a_kind, \
             a.currency AS a_currency, a.program_id AS a_program_id, a.created_at AS a_created_at, \
             p.updated_at AS program_version, p.rules_version AS rules_version, h.kyc_status AS kyc_status \
             FROM cards c JOIN accounts a ON a.id = c.account_id JOIN programs p ON p.id = c.program_id \
             JOIN cardholders h ON h.id = c.cardholder_id",
            cards = prefixed(CARD_COLUMNS, "c"),
        );
        let sql = match backend {
            // Locks are taken one card at a time, in account-id order. The program row's key-share
            // lock makes a rule change (which locks programs FOR UPDATE) wait for this batch, and
            // a batch after it read the new rules stamp.
            Backend::Postgres => format!(
                "WITH k AS MATERIALIZED ({named}), \
                 targets AS MATERIALIZED (SELECT c.id, c.account_id FROM {} ORDER BY c.account_id) \
                 SELECT r.* FROM targets CROSS JOIN LATERAL (SELECT {row} WHERE c.id = targets.id OFFSET 0 FOR UPDATE OF a FOR KEY SHARE OF p) r",
                each(backend, "k", "cards", "c", "c.id = k.id", "c.id, c.account_id"),
            ),
            Backend::Sqlite => format!("SELECT {row} WHERE c.id IN ({named}) ORDER BY a.id"),
        };
        let q = sqlx::query(AssertSqlSafe(sql))
            .bind(text_array(pan_hashes.iter().copied()))
            .bind(text_array(card_ids.iter().copied()))
            .bind(ntid_rows(originals));
        let rows = self.exec().fetch_all(q).await?;
        rows.iter()
            .map(|row| {
                let card = card_from_row(row)?;
                let bad = |what: &str| StoreError::corrupt(format!("stored account {what}"));
                let account = Account {
                    id: card.account_id.clone(),
                    tenant_id: card.tenant_id.clone(),
                    environment: card.environment,
                    program: ProgramId::parse(&row.try_get::<String, _>("a_program_id")?).map_err(StoreError::other)?,
                    kind: AccountKind::parse(&row.try_get::<String, _>("a_kind")?).ok_or_else(|| bad("kind"))?,
                    currency: Currency::parse(&row.try_get::<String, _>("a_currency")?).map_err(|_| bad("currency"))?,
                    floor: row.try_get("a_floor")?,
                    balance: row.try_get("a_balance")?,
                    held: row.try_get("a_held")?,
                    created_at: ts(row, "a_created_at")?,
                };
                Ok(LockedCard {
                    card,
                    account,
                    program_version: ts(row, "program_version")?,
                    rules_version: row.try_get("rules_version")?,
                    kyc_status: row.try_get("kyc_status")?,
                })
            })
            .collect()
    }

    /// The stored answers of messages already handled: (environment, ntid, answer).
    pub async fn stored_answers(
        &mut self,
        keys: &[(Environment, &str)],
    ) -> Result<Vec<(Environment, String, String)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT m.environment, m.network_transaction_id, m.response FROM {}",
            each(
                self.backend,
                &NTIDS.source(self.backend, "$1", "o"),
                "network_messages",
                "m",
                "m.environment = o.environment AND m.network_transaction_id = o.ntid",
                "m.environment, m.network_transaction_id, m.response",
            ),
        );
        let q = sqlx::query(AssertSqlSafe(sql)).bind(ntid_rows(keys));
        let rows = self.exec().fetch_all(q).await?;
        rows.iter()
            .map(|row| {
                let env: String = row.try_get("environment")?;
                Ok((
                    Environment::parse(&env).ok_or_else(|| StoreError::corrupt("message environment"))?,
                    row.try_get("network_transaction_id")?,
                    row.try_get("response")?,
                ))
            })
            .collect()
    }

    /// Authorizations named by network transaction id, and transactions named by id, as they are
    /// now (their accounts are locked, and only a batch changes a transaction).
    pub async fn transactions(
        &mut self,
        originals: &[(Environment, &str)],
        ids: &[&str],
    ) -> Result<Vec<Transaction>, StoreError> {
        if originals.is_empty() && ids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend;
        let named = format!(
            "(SELECT t.id FROM {} UNION SELECT value FROM {}) AS k",
            each(
                backend,
                &NTIDS.source(backend, "$1", "o"),
                "transactions",
                "t",
                "t.environment = o.environment AND t.network_transaction_id = o.ntid AND t.kind = 'authorization'",
                "t.id"
            ),
            text_list(backend, 2, "i"),
        );
        let sql = format!(
            "SELECT {} FROM {}",
            prefixed(TRANSACTION_COLUMNS, "x"),
            each(
                backend,
                &named,
                "transactions",
                "x",
                "x.id = k.id",
                &prefixed(TRANSACTION_COLUMNS, "x")
            ),
        );
        let q = sqlx::query(AssertSqlSafe(sql))
            .bind(ntid_rows(originals))
            .bind(text_array(ids.iter().copied()));
        let rows = self.exec().fetch_all(q).await?;
        rows.iter().map(transaction_from_row).collect()
    }

    /// Active tenant spend controls on any of these cards, cardholders or programs.
    pub async fn spend_controls(&mut self, scope_ids: &[&str]) -> Result<Vec<SpendControl>, StoreError> {
        if scope_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM {}",
            prefixed(CONTROL_COLUMNS, "s"),
            each(
                self.backend,
                &text_list(self.backend, 1, "l"),
                "spend_controls",
                "s",
                "s.scope_id = l.value AND s.active = 1",
                &prefixed(CONTROL_COLUMNS, "s"),
            ),
        );
        let q = sqlx::query(AssertSqlSafe(sql)).bind(text_array(scope_ids.iter().copied()));
        let rows = self.exec().fetch_all(q).await?;
        rows.iter().map(control_from_row).collect()
    }

    /// Takes the row lock of every shared control scope (cardholder- or program-wide controls),
    /// in key order, so two batches never both spend one limit.
    pub async fn lock_control_scopes(&mut self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let sql = format!(
            "INSERT INTO control_locks (lock_key, version) SELECT value, 1 FROM {list} WHERE 1 = 1 ORDER BY value \
             ON CONFLICT (lock_key) DO UPDATE SET version = control_locks.version + 1",
            list = text_list(self.backend, 1, "l"),
        );
        let q = sqlx::query(AssertSqlSafe(sql)).bind(text_array(sorted));
        self.exec().execute(q).await?;
        Ok(())
    }

    /// Locks accounts (the program accounts postings touch), in id order.
    pub async fn lock_accounts(&mut self, ids: &[&AccountId]) -> Result<Vec<Account>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = match self.backend {
            Backend::Postgres => format!(
                "WITH l AS MATERIALIZED (SELECT value FROM {} ORDER BY value) SELECT r.* FROM l \
                 CROSS JOIN LATERAL (SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = l.value OFFSET 0 FOR UPDATE) r",
                text_list(self.backend, 1, "j"),
            ),
            Backend::Sqlite => format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN (SELECT value FROM {}) ORDER BY id",
                text_list(self.backend, 1, "l"),
            ),
        };
        let q = sqlx::query(AssertSqlSafe(sql)).bind(text_array(ids.iter().map(|i| i.as_str())));
        let rows = self.exec().fetch_all(q).await?;
        rows.iter().map(account_from_row).collect()
    }

    /// A program as it is now, with its settlement and losses accounts.
    pub async fn program(&mut self, id: &ProgramId) -> Result<(Program, ProgramAccounts), StoreError> {
        let sql = format!("SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = $1");
        let rows = self
            .exec()
            .fetch_all(sqlx::query(AssertSqlSafe(sql)).bind(id.as_str()))
            .await?;
        let program = rows
            .first()
            .map(program_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        let rows = self
            .exec()
            .fetch_all(
                sqlx::query(
                    "SELECT id, kind FROM accounts WHERE program_id = $1 \
                     AND kind IN ('program_settlement', 'program_losses')",
                )
                .bind(id.as_str()),
            )
            .await?;
        let mut settlement = None;
        let mut losses = None;
        for row in &rows {
            let account = AccountId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?;
            match AccountKind::parse(&row.try_get::<String, _>("kind")?) {
                Some(AccountKind::ProgramSettlement) => settlement = Some(account),
                Some(AccountKind::ProgramLosses) => losses = Some(account),
                _ => {}
            }
        }
        let missing = || StoreError::corrupt("a program without its settlement and losses accounts");
        Ok((
            program,
            ProgramAccounts {
                settlement: settlement.ok_or_else(missing)?,
                losses: losses.ok_or_else(missing)?,
            },
        ))
    }
}

pub(super) async fn programs_by_bin(
    exec: &mut Exec<'_>,
    environment: Environment,
    bins: &[&str],
) -> Result<Vec<Program>, StoreError> {
    let sql = format!(
        "SELECT {PROGRAM_COLUMNS} FROM programs WHERE environment = $1 AND bin IN (SELECT value FROM {list})",
        list = text_list(exec.backend, 2, "l"),
    );
    let q = sqlx::query(AssertSqlSafe(sql))
        .bind(environment.as_str())
        .bind(text_array(bins.iter().copied()));
    exec.fetch_all(q).await?.iter().map(program_from_row).collect()
}

static USAGES: RecordSet = RecordSet {
    columns: &[
        ("i", Col::Int),
        ("kind", Col::Text),
        ("scope_id", Col::Text),
        ("start", Col::Int),
        ("mccs", Col::Text),
    ],
};

/// What each usage's control has used in its window: the rule of `card_controls` in SQL (an
/// authorization counts while pending, complete or reversed, by authorized less reversed).
pub(super) async fn usage(exec: &mut Exec<'_>, usages: &[TrackedUsage]) -> Result<Vec<UsageRow>, StoreError> {
    let mut rows = USAGES.rows();
    for (i, u) in usages.iter().enumerate() {
        let Some(start) = u.window_start else { continue };
        let mccs = if u.control.limit.mccs.is_empty() {
            String::new()
        } else {
            format!(",{},", u.control.limit.mccs.join(","))
        };
        rows.row(&[
            V::Int(i64::try_from(i).unwrap_or(i64::MAX)),
            V::Text(u.control.scope.kind().as_str()),
            V::Text(u.control.scope.id()),
            V::Int(start.as_micros()),
            V::Text(&mccs),
        ]);
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let source = USAGES.source(exec.backend, "$1", "x");
    let backend = exec.backend;
    let per_scope = |column: &str, kind: &str| {
        let counted = each(
            backend,
            &source,
            "transactions",
            "t",
            &format!(
                "t.{column} = x.scope_id AND t.created_at >= x.start AND t.kind = 'authorization' \
                 AND t.state IN ('PENDING', 'COMPLETE', 'REVERSED') AND (x.mccs = '' OR x.mccs LIKE '%,' || t.mcc || ',%')"
            ),
            "t.id, t.authorized_amount, t.reversed_amount, t.created_at",
        );
        format!(
            "SELECT x.i AS i, CAST(COALESCE(SUM(t.authorized_amount - t.reversed_amount), 0) AS BIGINT) AS amount, \
             COUNT(t.id) AS n, MIN(t.created_at) AS oldest FROM {counted} WHERE x.kind = '{kind}' GROUP BY x.i"
        )
    };
    let sql = format!(
        "{} UNION ALL {} UNION ALL {}",
        per_scope("card_id", "card"),
        per_scope("cardholder_id", "cardholder"),
        per_scope("program_id", "program"),
    );
    let q = sqlx::query(AssertSqlSafe(sql)).bind(rows.finish());
    exec.fetch_all(q)
        .await?
        .iter()
        .map(|row| {
            let oldest: Option<i64> = row.try_get("oldest")?;
            Ok(UsageRow {
                index: usize::try_from(row.try_get::<i64, _>("i")?).map_err(StoreError::other)?,
                amount: row.try_get("amount")?,
                count: row.try_get("n")?,
                oldest: oldest.map(Timestamp::from_micros),
            })
        })
        .collect()
}
