//! Ledger storage: accounts with stored balances, immutable journals and entries. The database is
//! the arbiter of every floor: a debit is a conditional UPDATE that changes nothing (and fails the
//! whole transaction) when it would take the account below its floor.

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::ids::{AccountId, JournalId, LedgerEntryId};
use cardplane_domain::ledger::{Account, Direction, Journal, balance_after};
use cardplane_domain::money::{BALANCE_MAX_MINOR, Currency, Money};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::rows::accounts::account_from_row;
use crate::sql::{ListSpec, list_page, ts};
use crate::{Scope, SqlStore, StoreError};

/// The constraint a posting refused by the balance limit (`domain::ledger::balance_after`) names
/// in `StoreError::Conflict`: the database's own check, under the row lock, behind the check each
/// caller makes before writing. (A conflict rather than a `PostError` variant, so that callers
/// matching `PostError` exhaustively need no change; the API maps it to
/// `409 balance_limit_exceeded`.)
pub const BALANCE_LIMIT_CONSTRAINT: &str = "accounts_balance_limit";

/// Why a journal could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("account {0} would go below its floor")]
    InsufficientFunds(AccountId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PostError {
    fn from(e: sqlx::Error) -> Self {
        PostError::Store(e.into())
    }
}

/// An account's balances right after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceAfter {
    pub balance: i64,
    pub held: i64,
}

/// One posted entry as listed for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedEntry {
    pub id: LedgerEntryId,
    pub journal_id: JournalId,
    pub account_id: AccountId,
    pub direction: Direction,
    pub amount: Money,
    pub balance_after: i64,
    pub description: String,
    pub journal_kind: String,
    pub created_at: Timestamp,
}

/// What `ledger verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    pub accounts: i64,
    pub journals: i64,
    pub entries: i64,
    pub problems: Vec<String>,
}

#[async_trait]
pub trait LedgerStore: Send + Sync {
    async fn get_account(&self, scope: &Scope, id: &AccountId) -> Result<Account, StoreError>;
    async fn open_accounts(&self, accounts: &[Account]) -> Result<(), StoreError>;
    async fn list_entries(
        &self,
        scope: &Scope,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<PostedEntry>, StoreError>;
    /// Recomputes every balance from its entries and checks every journal balances.
    async fn verify_ledger(&self) -> Result<LedgerReport, StoreError>;
}

pub(crate) async fn insert_account(conn: &mut AnyConnection, a: &Account) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO accounts (id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(a.id.as_str())
    .bind(a.tenant_id.as_str())
    .bind(a.environment.as_str())
    .bind(a.program.as_str())
    .bind(a.kind.as_str())
    .bind(a.currency.code())
    .bind(a.floor)
    .bind(a.balance)
    .bind(a.held)
    .bind(a.created_at.as_micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Posts a journal inside the caller's transaction: conditional balance updates (in account-id
/// order, so concurrent journals lock rows in the same order) and immutable entries. Returns the
/// new balance of each account touched.
pub(crate) async fn write_journal(
    conn: &mut AnyConnection,
    journal: &Journal,
) -> Result<Vec<(AccountId, BalanceAfter)>, PostError> {
    journal.assert_balanced();
    sqlx::query("INSERT INTO journals (id, tenant_id, environment, kind, description, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(journal.id.as_str())
        .bind(journal.tenant_id.as_str())
        .bind(journal.environment.as_str())
        .bind(journal.kind.as_str())
        .bind(journal.description.as_str())
        .bind(journal.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
    let mut entries: Vec<_> = journal.entries.iter().collect();
    entries.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let mut balances = Vec::with_capacity(entries.len());
    for entry in entries {
        let delta = entry.delta();
        // The balance limit, as bounds on the current balance computed here (entries are at most
        // AMOUNT_MAX_MINOR, so these cannot overflow): no statement ever computes a sum outside
        // the range, which SQLite would turn into a float and PostgreSQL would fail on. The floor
        // is written the same way round (`balance - held >= floor - delta`).
        let (low, high) = (-BALANCE_MAX_MINOR - delta, BALANCE_MAX_MINOR - delta);
        let row = sqlx::query(
            "UPDATE accounts SET balance = balance + $2 \
             WHERE id = $1 AND currency = $3 AND tenant_id = $4 AND environment = $5 \
             AND balance BETWEEN $6 AND $7 \
             AND (floor IS NULL OR balance - held >= floor - $2) RETURNING balance, held",
        )
        .bind(entry.account_id.as_str())
        .bind(delta)
        .bind(entry.amount.currency().code())
        .bind(journal.tenant_id.as_str())
        .bind(journal.environment.as_str())
        .bind(low)
        .bind(high)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(refusal(conn, &entry.account_id, delta).await);
        };
        let balance_after: i64 = row.try_get("balance")?;
        let held: i64 = row.try_get("held")?;
        sqlx::query(
            "INSERT INTO ledger_entries (id, journal_id, tenant_id, environment, account_id, direction, amount, currency, \
             balance_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(entry.id.as_str())
        .bind(journal.id.as_str())
        .bind(journal.tenant_id.as_str())
        .bind(journal.environment.as_str())
        .bind(entry.account_id.as_str())
        .bind(entry.direction.as_str())
        .bind(entry.amount.minor())
        .bind(entry.amount.currency().code())
        .bind(balance_after)
        .bind(journal.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
        balances.push((
            entry.account_id.clone(),
            BalanceAfter {
                balance: balance_after,
                held,
            },
        ));
    }
    Ok(balances)
}

/// Why the conditional update of `account` changed nothing: the balance limit (reported as a
/// conflict on `BALANCE_LIMIT_CONSTRAINT`) or its floor.
async fn refusal(conn: &mut AnyConnection, account: &AccountId, delta: i64) -> PostError {
    let balance = sqlx::query("SELECT balance FROM accounts WHERE id = $1")
        .bind(account.as_str())
        .fetch_optional(&mut *conn)
        .await;
    match balance.map(|row| row.map(|r| r.try_get::<i64, _>("balance"))) {
        Ok(Some(Ok(balance))) if balance_after(balance, delta).is_none() => PostError::Store(StoreError::Conflict {
            constraint: BALANCE_LIMIT_CONSTRAINT.into(),
        }),
        Ok(_) => PostError::InsufficientFunds(account.clone()),
        Err(e) => e.into(),
    }
}

fn entry_from_row(row: &AnyRow) -> Result<PostedEntry, StoreError> {
    let direction: String = row.try_get("direction")?;
    let currency: String = row.try_get("currency")?;
    Ok(PostedEntry {
        id: LedgerEntryId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        journal_id: JournalId::parse(&row.try_get::<String, _>("journal_id")?).map_err(StoreError::other)?,
        account_id: AccountId::parse(&row.try_get::<String, _>("account_id")?).map_err(StoreError::other)?,
        direction: Direction::parse(&direction).ok_or_else(|| StoreError::corrupt("entry direction"))?,
        amount: Money::new(
            row.try_get("amount")?,
            Currency::parse(&currency).map_err(|_| StoreError::corrupt("currency"))?,
        ),
        balance_after: row.try_get("balance_after")?,
        description: row.try_get("description")?,
        journal_kind: row.try_get("kind")?,
        created_at: ts(row, "created_at")?,
    })
}

#[async_trait]
impl LedgerStore for SqlStore {
    async fn get_account(&self, scope: &Scope, id: &AccountId) -> Result<Account, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at FROM accounts \
             WHERE tenant_id = $1 AND environment = $2 AND id = $3",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.writer())
        .await?
        .ok_or(StoreError::NotFound)?;
        account_from_row(&row)
    }

    async fn open_accounts(&self, accounts: &[Account]) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        for a in accounts {
            insert_account(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_entries(
        &self,
        scope: &Scope,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<PostedEntry>, StoreError> {
        // A view joining each entry to its journal's description, scoped like every list.
        let spec = ListSpec {
            table: "(SELECT e.id, e.journal_id, e.tenant_id, e.environment, e.account_id, e.direction, e.amount, \
                    e.currency, e.balance_after, e.created_at, j.description, j.kind \
                    FROM ledger_entries e JOIN journals j ON j.id = e.journal_id) entries",
            columns: "id, journal_id, account_id, direction, amount, currency, balance_after, created_at, description, kind",
            filter: Some(("account_id", account.as_str())),
        };
        list_page(self.db.reader(), spec, scope, page, entry_from_row).await
    }

    // Long: the checks `ledger verify` runs, one query each, read together as one report.
    async fn verify_ledger(&self) -> Result<LedgerReport, StoreError> {
        let pool = self.db.reader();
        let mut report = LedgerReport {
            accounts: sqlx::query("SELECT COUNT(*) AS n FROM accounts")
                .fetch_one(pool)
                .await?
                .try_get("n")?,
            journals: sqlx::query("SELECT COUNT(*) AS n FROM journals")
                .fetch_one(pool)
                .await?
                .try_get("n")?,
            entries: sqlx::query("SELECT COUNT(*) AS n FROM ledger_entries")
                .fetch_one(pool)
                .await?
                .try_get("n")?,
            problems: Vec::new(),
        };
        let unbalanced = sqlx::query(
            "SELECT journal_id, currency, CAST(SUM(CASE WHEN direction = 'credit' THEN amount ELSE -amount END) AS BIGINT) AS net, \
             COUNT(*) AS n FROM ledger_entries GROUP BY journal_id, currency \
             HAVING SUM(CASE WHEN direction = 'credit' THEN amount ELSE -amount END) <> 0",
        )
        .fetch_all(pool)
        .await?;
        for row in unbalanced {
            let id: String = row.try_get("journal_id")?;
            let net: i64 = row.try_get("net")?;
            report.problems.push(format!("journal {id} is unbalanced by {net}"));
        }
        let short = sqlx::query(
            "SELECT j.id FROM journals j LEFT JOIN ledger_entries e ON e.journal_id = j.id GROUP BY j.id HAVING COUNT(e.id) < 2",
        )
        .fetch_all(pool)
        .await?;
        for row in short {
            report.problems.push(format!(
                "journal {} has fewer than two entries",
                row.try_get::<String, _>("id")?
            ));
        }
        let drift = sqlx::query(
            "SELECT a.id, a.balance, CAST(COALESCE(SUM(CASE WHEN e.direction = 'credit' THEN e.amount ELSE -e.amount END), 0) AS BIGINT) AS computed \
             FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id GROUP BY a.id, a.balance \
             HAVING a.balance <> COALESCE(SUM(CASE WHEN e.direction = 'credit' THEN e.amount ELSE -e.amount END), 0)",
        )
        .fetch_all(pool)
        .await?;
        for row in drift {
            let id: String = row.try_get("id")?;
            let stored: i64 = row.try_get("balance")?;
            let computed: i64 = row.try_get("computed")?;
            report.problems.push(format!(
                "account {id} stores balance {stored} but its entries sum to {computed}"
            ));
        }
        let below = sqlx::query(
            "SELECT id, balance, held, floor FROM accounts WHERE floor IS NOT NULL AND balance - held < floor",
        )
        .fetch_all(pool)
        .await?;
        for row in below {
            report.problems.push(format!(
                "account {} is below its floor",
                row.try_get::<String, _>("id")?
            ));
        }
        let holds = sqlx::query(
            "SELECT a.id, a.held, CAST(COALESCE(SUM(t.held_amount), 0) AS BIGINT) AS pending FROM accounts a \
             LEFT JOIN transactions t ON t.account_id = a.id AND t.state = 'PENDING' GROUP BY a.id, a.held \
             HAVING a.held <> COALESCE(SUM(t.held_amount), 0)",
        )
        .fetch_all(pool)
        .await?;
        for row in holds {
            report.problems.push(format!(
                "account {} holds {} but its pending authorizations hold {}",
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("held")?,
                row.try_get::<i64, _>("pending")?
            ));
        }
        let beyond = sqlx::query("SELECT id, balance FROM accounts WHERE balance > $1 OR balance < $2")
            .bind(BALANCE_MAX_MINOR)
            .bind(-BALANCE_MAX_MINOR)
            .fetch_all(pool)
            .await?;
        for row in beyond {
            report.problems.push(format!(
                "account {} holds {}, beyond the balance limit of ±{BALANCE_MAX_MINOR}",
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("balance")?
            ));
        }
        let mismatched = sqlx::query(
            "SELECT e.id FROM ledger_entries e JOIN accounts a ON a.id = e.account_id WHERE a.currency <> e.currency",
        )
        .fetch_all(pool)
        .await?;
        for row in mismatched {
            report.problems.push(format!(
                "entry {} is in another currency than its account",
                row.try_get::<String, _>("id")?
            ));
        }
        let totals = sqlx::query(
            "SELECT tenant_id, environment, currency, CAST(SUM(balance) AS BIGINT) AS total FROM accounts \
             GROUP BY tenant_id, environment, currency HAVING SUM(balance) <> 0",
        )
        .fetch_all(pool)
        .await?;
        for row in totals {
            report.problems.push(format!(
                "balances of {} {} in {} sum to {} instead of 0",
                row.try_get::<String, _>("tenant_id")?,
                row.try_get::<String, _>("environment")?,
                row.try_get::<String, _>("currency")?,
                row.try_get::<i64, _>("total")?
            ));
        }
        Ok(report)
    }
}
