//! Card transactions on the ledger. Every network message is one transaction that first claims
//! its network transaction id (a retry gets the stored answer), then locks what the decision
//! depends on (the card account, shared control scopes), reads the inputs, lets the caller's pure
//! decision run, and writes the outcome: hold, postings, transaction row, events, answer.

use async_trait::async_trait;
use cardplane_domain::authorization::{
    ControlUsage, DeclineReason, Merchant, ResponseCode, Transaction, TransactionKind, TransactionState,
};
use cardplane_domain::controls::SpendLimit;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{AccountId, CardId, CardholderId, ProgramId, TenantId, TransactionId};
use cardplane_domain::ledger::Journal;
use cardplane_domain::money::Currency;
use cardplane_domain::page::{Page, PageRequest};
use cardplane_domain::{Environment, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::ledger::{PostError, write_journal};
use crate::rows::{ListSpec, insert_events, list_page, opt_ts, ts};
use crate::{Backend, Scope, SqlStore, StoreError};

/// What a network message's handling produced, or the answer stored the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Fresh(String),
    Replayed(String),
}

impl Answer {
    pub fn body(&self) -> &str {
        match self {
            Answer::Fresh(b) | Answer::Replayed(b) => b,
        }
    }
}

/// Where a spend control counts usage: one card, all of a cardholder's, all of a program's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlScope {
    Card(CardId),
    Cardholder(CardholderId),
    Program(ProgramId),
}

impl ControlScope {
    fn column_and_id(&self) -> (&'static str, &str) {
        match self {
            ControlScope::Card(id) => ("card_id", id.as_str()),
            ControlScope::Cardholder(id) => ("cardholder_id", id.as_str()),
            ControlScope::Program(id) => ("program_id", id.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ControlSpec {
    pub id: String,
    pub limit: SpendLimit,
    pub scope: ControlScope,
}

/// The locked inputs a decision sees.
#[derive(Debug, Clone)]
pub struct Locked {
    pub balance: i64,
    pub held: i64,
    pub floor: Option<i64>,
    pub usages: Vec<ControlUsage>,
    /// The original transaction (incremental authorization, reversal, clearing).
    pub original: Option<Transaction>,
}

impl Locked {
    pub fn spendable(&self) -> i64 {
        match self.floor {
            Some(floor) => self.balance - self.held - floor,
            None => i64::MAX,
        }
    }
}

/// What to write for a message.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Rows to insert.
    pub new_transactions: Vec<Transaction>,
    /// Rows to update (by id).
    pub updated_transactions: Vec<Transaction>,
    /// Change to the account's held amount (positive places a hold, negative releases).
    pub held_delta: i64,
    /// Postings (clearing, force post, refund).
    pub journal: Option<Journal>,
    pub events: Vec<Event>,
    pub answer: String,
    /// The transaction the network message refers to, for the message log.
    pub transaction_id: Option<TransactionId>,
}

/// One network message to handle.
pub struct Message<'a> {
    pub environment: Environment,
    pub network_transaction_id: &'a str,
    pub kind: &'a str,
    /// The card account to lock (absent when the PAN matched no card).
    pub account: Option<&'a AccountId>,
    /// The original transaction, by its network transaction id.
    pub original: Option<&'a str>,
    pub controls: &'a [ControlSpec],
    pub now: Timestamp,
}

pub type Decide<'a> = dyn for<'b> Fn(&'b Locked) -> Outcome + Send + Sync + 'a;

#[async_trait]
pub trait TransactionStore: Send + Sync {
    /// Handles a network message exactly once per network transaction id (see module docs).
    async fn handle_message(&self, message: &Message<'_>, decide: &Decide<'_>) -> Result<Answer, PostError>;
    async fn get_transaction(&self, scope: &Scope, id: &TransactionId) -> Result<Transaction, StoreError>;
    /// The authorization a network transaction id started (unscoped: the network's view).
    async fn find_authorization_by_ntid(
        &self,
        environment: Environment,
        ntid: &str,
    ) -> Result<Option<Transaction>, StoreError>;
    async fn list_transactions(
        &self,
        scope: &Scope,
        filter: Option<(&'static str, &str)>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, StoreError>;
    /// Pending transactions whose hold expired at `now` (oldest first, at most `limit`).
    async fn expired_holds(&self, now: Timestamp, limit: i64) -> Result<Vec<Transaction>, StoreError>;
    /// Releases one expired hold (if it is still pending) with its event.
    async fn expire(&self, transaction: &Transaction, events: &[Event], now: Timestamp) -> Result<bool, StoreError>;
    /// What each control has used in its current window, for display.
    async fn control_usage(
        &self,
        controls: &[ControlSpec],
        now: Timestamp,
    ) -> Result<Vec<(ControlUsage, Option<Timestamp>)>, StoreError>;
}

const COLUMNS: &str = "id, tenant_id, environment, card_id, cardholder_id, program_id, account_id, kind, state, \
    network_transaction_id, currency, requested_amount, authorized_amount, held_amount, cleared_amount, reversed_amount, \
    response_code, decline_reason, authorization_code, merchant_id, merchant_name, mcc, merchant_country, merchant_city, \
    entry_mode, stand_in, decision_trace, received_at, custodian_sent_at, custodian_answered_at, answered_at, expires_at, \
    created_at, updated_at";

fn transaction_from_row(row: &AnyRow) -> Result<Transaction, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored transaction {what}"));
    let env: String = row.try_get("environment")?;
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let code: String = row.try_get("response_code")?;
    let reason: Option<String> = row.try_get("decline_reason")?;
    let trace: String = row.try_get("decision_trace")?;
    Ok(Transaction {
        id: TransactionId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| bad("environment"))?,
        card_id: CardId::parse(&row.try_get::<String, _>("card_id")?).map_err(StoreError::other)?,
        cardholder_id: CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?).map_err(StoreError::other)?,
        program_id: ProgramId::parse(&row.try_get::<String, _>("program_id")?).map_err(StoreError::other)?,
        account_id: AccountId::parse(&row.try_get::<String, _>("account_id")?).map_err(StoreError::other)?,
        kind: TransactionKind::parse(&kind).ok_or_else(|| bad("kind"))?,
        state: TransactionState::parse(&state).ok_or_else(|| bad("state"))?,
        network_transaction_id: row.try_get("network_transaction_id")?,
        currency: Currency::parse(&row.try_get::<String, _>("currency")?).map_err(|_| bad("currency"))?,
        requested_amount: row.try_get("requested_amount")?,
        authorized_amount: row.try_get("authorized_amount")?,
        held_amount: row.try_get("held_amount")?,
        cleared_amount: row.try_get("cleared_amount")?,
        reversed_amount: row.try_get("reversed_amount")?,
        response_code: ResponseCode::parse(&code).ok_or_else(|| bad("response code"))?,
        decline_reason: reason
            .map(|r| DeclineReason::parse(&r).ok_or_else(|| bad("reason")))
            .transpose()?,
        authorization_code: row.try_get("authorization_code")?,
        merchant: Merchant {
            id: row.try_get("merchant_id")?,
            name: row.try_get("merchant_name")?,
            mcc: row.try_get("mcc")?,
            country: row.try_get("merchant_country")?,
            city: row.try_get("merchant_city")?,
        },
        entry_mode: row.try_get("entry_mode")?,
        stand_in: row.try_get::<i16, _>("stand_in")? == 1,
        decision_trace: serde_json::from_str(&trace).map_err(|_| bad("trace"))?,
        received_at: ts(row, "received_at")?,
        custodian_sent_at: opt_ts(row, "custodian_sent_at")?,
        custodian_answered_at: opt_ts(row, "custodian_answered_at")?,
        answered_at: ts(row, "answered_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

async fn insert_transaction(conn: &mut AnyConnection, t: &Transaction) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO transactions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)"
    )))
    .bind(t.id.as_str())
    .bind(t.tenant_id.as_str())
    .bind(t.environment.as_str())
    .bind(t.card_id.as_str())
    .bind(t.cardholder_id.as_str())
    .bind(t.program_id.as_str())
    .bind(t.account_id.as_str())
    .bind(t.kind.as_str())
    .bind(t.state.as_str())
    .bind(t.network_transaction_id.as_str())
    .bind(t.currency.code())
    .bind(t.requested_amount)
    .bind(t.authorized_amount)
    .bind(t.held_amount)
    .bind(t.cleared_amount)
    .bind(t.reversed_amount)
    .bind(t.response_code.as_str())
    .bind(t.decline_reason.map(|r| r.as_str()))
    .bind(t.authorization_code.as_deref())
    .bind(t.merchant.id.as_str())
    .bind(t.merchant.name.as_str())
    .bind(t.merchant.mcc.as_str())
    .bind(t.merchant.country.as_str())
    .bind(t.merchant.city.as_str())
    .bind(t.entry_mode.as_str())
    .bind(i16::from(t.stand_in))
    .bind(t.decision_trace.to_string())
    .bind(t.received_at.as_micros())
    .bind(t.custodian_sent_at.map(Timestamp::as_micros))
    .bind(t.custodian_answered_at.map(Timestamp::as_micros))
    .bind(t.answered_at.as_micros())
    .bind(t.expires_at.map(Timestamp::as_micros))
    .bind(t.created_at.as_micros())
    .bind(t.updated_at.as_micros())
    .execute(conn)
    .await?;
    Ok(())
}

async fn update_transaction(conn: &mut AnyConnection, t: &Transaction) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE transactions SET state = $2, authorized_amount = $3, held_amount = $4, cleared_amount = $5, \
         reversed_amount = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(t.id.as_str())
    .bind(t.state.as_str())
    .bind(t.authorized_amount)
    .bind(t.held_amount)
    .bind(t.cleared_amount)
    .bind(t.reversed_amount)
    .bind(t.updated_at.as_micros())
    .execute(conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn for_update(backend: Backend) -> &'static str {
    // SQLite serialises all writers (one writer connection), so a plain read in the write
    // transaction is already exclusive; PostgreSQL needs the row lock.
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE",
    }
}

async fn usage(
    conn: &mut AnyConnection,
    spec: &ControlSpec,
    now: Timestamp,
) -> Result<(ControlUsage, Option<Timestamp>), StoreError> {
    let Some(start) = spec.limit.window.start(now) else {
        let usage = ControlUsage {
            control_id: spec.id.clone(),
            limit: spec.limit.clone(),
            used_amount: 0,
            used_count: 0,
        };
        return Ok((usage, None));
    };
    let (column, id) = spec.scope.column_and_id();
    let mut sql = format!(
        "SELECT CAST(COALESCE(SUM(authorized_amount - reversed_amount), 0) AS BIGINT) AS amount, COUNT(*) AS n, \
         MIN(created_at) AS oldest FROM transactions WHERE {column} = $1 AND created_at >= $2 AND kind = 'authorization' \
         AND state IN ('PENDING', 'COMPLETE', 'REVERSED')"
    );
    if !spec.limit.mccs.is_empty() {
        let list: Vec<String> = (0..spec.limit.mccs.len()).map(|i| format!("${}", i + 3)).collect();
        sql.push_str(&format!(" AND mcc IN ({})", list.join(", ")));
    }
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(id).bind(start.as_micros());
    for mcc in &spec.limit.mccs {
        q = q.bind(mcc.as_str());
    }
    let row = q.fetch_one(conn).await?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    let usage = ControlUsage {
        control_id: spec.id.clone(),
        limit: spec.limit.clone(),
        used_amount: row.try_get("amount")?,
        used_count: row.try_get("n")?,
    };
    let renews = spec.limit.window.renews_at(now, oldest.map(Timestamp::from_micros));
    Ok((usage, renews))
}

impl SqlStore {
    async fn handle_message_once(&self, m: &Message<'_>, decide: &Decide<'_>) -> Result<Answer, PostError> {
        let backend = self.db.backend();
        // The message is recorded with its answer at the end: a duplicate in flight waits on the
        // same locks (the card account, the original) or on the unique key, then finds it taken.
        // SQLite: take the write lock up front, since the first statements only read (a deferred
        // transaction would fail to upgrade once another process has written).
        let begin = match backend {
            crate::Backend::Sqlite => "BEGIN IMMEDIATE",
            crate::Backend::Postgres => "BEGIN",
        };
        let mut tx = self.db.writer().begin_with(begin).await?;
        // Lock order: the card account, then shared control scopes in key order.
        let (balance, held, floor) = match m.account {
            Some(account) => {
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT balance, held, floor FROM accounts WHERE id = $1{}",
                    for_update(backend)
                )))
                .bind(account.as_str())
                .fetch_one(&mut *tx)
                .await?;
                (row.try_get("balance")?, row.try_get("held")?, row.try_get("floor")?)
            }
            None => (0, 0, Some(0)),
        };
        let mut shared: Vec<String> = m
            .controls
            .iter()
            .filter(|c| !matches!(c.scope, ControlScope::Card(_)))
            .map(|c| format!("{}:{}", c.id, c.scope.column_and_id().1))
            .collect();
        shared.sort();
        shared.dedup();
        for key in &shared {
            sqlx::query("INSERT INTO control_locks (lock_key, version) VALUES ($1, 0) ON CONFLICT DO NOTHING")
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE control_locks SET version = version + 1 WHERE lock_key = $1")
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let original = match m.original {
            Some(ntid) => {
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM transactions WHERE environment = $1 AND network_transaction_id = $2 \
                     AND kind = 'authorization'{}",
                    for_update(backend)
                )))
                .bind(m.environment.as_str())
                .bind(ntid)
                .fetch_optional(&mut *tx)
                .await?;
                row.as_ref().map(transaction_from_row).transpose()?
            }
            None => None,
        };
        let mut usages = Vec::with_capacity(m.controls.len());
        for spec in m.controls {
            usages.push(usage(&mut tx, spec, m.now).await?.0);
        }
        let locked = Locked {
            balance,
            held,
            floor,
            usages,
            original,
        };
        let outcome = decide(&locked);

        if outcome.held_delta != 0 {
            let account = m
                .account
                .ok_or_else(|| StoreError::corrupt("a hold without an account"))?;
            // Placing a hold is conditional on the floor; releasing one always succeeds.
            let done = sqlx::query(
                "UPDATE accounts SET held = held + $2 WHERE id = $1 \
                 AND ($2 < 0 OR floor IS NULL OR balance - held - $2 >= floor)",
            )
            .bind(account.as_str())
            .bind(outcome.held_delta)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(PostError::InsufficientFunds(account.clone()));
            }
        }
        for t in &outcome.new_transactions {
            insert_transaction(&mut tx, t).await?;
        }
        for t in &outcome.updated_transactions {
            update_transaction(&mut tx, t).await?;
        }
        if let Some(journal) = &outcome.journal {
            write_journal(&mut tx, journal).await?;
        }
        insert_events(&mut tx, &outcome.events).await?;
        let recorded = sqlx::query(
            "INSERT INTO network_messages (environment, network_transaction_id, kind, response, created_at, transaction_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(m.environment.as_str())
        .bind(m.network_transaction_id)
        .bind(m.kind)
        .bind(outcome.answer.as_str())
        .bind(m.now.as_micros())
        .bind(outcome.transaction_id.as_ref().map(|t| t.as_str()))
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 0 {
            // Answered before (or by a concurrent duplicate): undo this attempt, replay that answer.
            tx.rollback().await?;
            return Ok(Answer::Replayed(self.stored_answer(m).await?));
        }
        tx.commit().await?;
        Ok(Answer::Fresh(outcome.answer))
    }

    async fn stored_answer(&self, m: &Message<'_>) -> Result<String, StoreError> {
        let row =
            sqlx::query("SELECT response FROM network_messages WHERE environment = $1 AND network_transaction_id = $2")
                .bind(m.environment.as_str())
                .bind(m.network_transaction_id)
                .fetch_one(self.db.writer())
                .await?;
        Ok(row.try_get("response")?)
    }
}

#[async_trait]
impl TransactionStore for SqlStore {
    async fn handle_message(&self, m: &Message<'_>, decide: &Decide<'_>) -> Result<Answer, PostError> {
        match self.handle_message_once(m, decide).await {
            Ok(answer) => Ok(answer),
            // A duplicate that failed part way (it saw the state its original left) gets the
            // original's answer; anything else is a real failure.
            Err(e) => match self.stored_answer(m).await {
                Ok(answer) => Ok(Answer::Replayed(answer)),
                Err(_) => Err(e),
            },
        }
    }

    async fn get_transaction(&self, scope: &Scope, id: &TransactionId) -> Result<Transaction, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transactions WHERE tenant_id = $1 AND environment = $2 AND id = $3"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        transaction_from_row(&row)
    }

    async fn find_authorization_by_ntid(
        &self,
        environment: Environment,
        ntid: &str,
    ) -> Result<Option<Transaction>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transactions WHERE environment = $1 AND network_transaction_id = $2 AND kind = 'authorization'"
        )))
        .bind(environment.as_str())
        .bind(ntid)
        .fetch_optional(self.db.writer())
        .await?;
        row.as_ref().map(transaction_from_row).transpose()
    }

    async fn list_transactions(
        &self,
        scope: &Scope,
        filter: Option<(&'static str, &str)>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, StoreError> {
        let spec = ListSpec {
            table: "transactions",
            columns: COLUMNS,
            filter,
        };
        list_page(self.db.reader(), spec, scope, page, transaction_from_row).await
    }

    async fn expired_holds(&self, now: Timestamp, limit: i64) -> Result<Vec<Transaction>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transactions WHERE state = 'PENDING' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
        )))
        .bind(now.as_micros())
        .bind(limit)
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(transaction_from_row)
        .collect()
    }

    async fn expire(&self, t: &Transaction, events: &[Event], now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE transactions SET state = 'EXPIRED', held_amount = 0, updated_at = $2 \
             WHERE id = $1 AND state = 'PENDING' AND held_amount = $3",
        )
        .bind(t.id.as_str())
        .bind(now.as_micros())
        .bind(t.held_amount)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE accounts SET held = held - $2 WHERE id = $1")
            .bind(t.account_id.as_str())
            .bind(t.held_amount)
            .execute(&mut *tx)
            .await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn control_usage(
        &self,
        controls: &[ControlSpec],
        now: Timestamp,
    ) -> Result<Vec<(ControlUsage, Option<Timestamp>)>, StoreError> {
        let mut conn = self.db.reader().acquire().await?;
        let mut out = Vec::with_capacity(controls.len());
        for spec in controls {
            out.push(usage(&mut conn, spec, now).await?);
        }
        Ok(out)
    }
}
