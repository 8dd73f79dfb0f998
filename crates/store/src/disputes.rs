//! Disputes: the cases, their evidence and notes, each program's dispute policy, and the writes
//! that move a case along together with its journals, events and audit entry. Every change is
//! optimistic (the case's version); filing re-checks what was already disputed under a lock on
//! the transaction's row, so two filings of one purchase cannot both pass.

use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{
    Disposition, Dispute, DisputePolicy, DisputeReason, DisputeState, DisputeStatus, ProvisionalCreditPolicy,
    ReasonFamily,
};
use cardplane_domain::event::Event;
use cardplane_domain::ids::{
    AccountId, CardId, CardholderId, DisputeId, DisputeNoteId, DocumentId, ProgramId, TenantId, TransactionId, UserId,
};
use cardplane_domain::ledger::{AccountKind, Journal};
use cardplane_domain::money::Currency;
use cardplane_domain::page::{Cursor, Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::compliance::DocumentRecord;
use crate::effects::{insert_events, write_effect_records};
use crate::ledger::{PostError, write_journal};
use crate::rows::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::sql::{opt_ts, ts};
use crate::{Backend, EffectRecords, Scope, SqlStore, StoreError};

/// What filing must know, read in one go (outside the write; re-checked inside it).
#[derive(Debug, Clone)]
pub struct FilingFacts {
    /// Amounts of the transaction in open or won disputes.
    pub already_disputed: i64,
    /// Fraud disputes ever filed on the card (withdrawn ones excepted).
    pub fraud_disputes_on_card: u32,
    pub account_opened_at: Timestamp,
    pub policy: DisputePolicy,
}

// Who brought a piece of evidence.
crate::store_enum!(EvidenceSource {
    Custodian => "custodian",
    Merchant => "merchant",
    Operator => "operator",
});

#[derive(Debug, Clone)]
pub struct Evidence {
    pub id: DocumentId,
    pub dispute_id: DisputeId,
    pub source: EvidenceSource,
    pub document: DocumentRecord,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct DisputeNote {
    pub id: DisputeNoteId,
    pub dispute_id: DisputeId,
    pub author_id: Option<UserId>,
    pub body: String,
    pub created_at: Timestamp,
}

/// A dispute as stored: the domain case plus who works it and whether the deadline job flagged it.
#[derive(Debug, Clone)]
pub struct DisputeRecord {
    pub dispute: Dispute,
    pub assignee_id: Option<UserId>,
    pub deadline_flagged_at: Option<Timestamp>,
}

/// One change to a case and everything written with it, in one transaction.
pub struct DisputeChange<'a> {
    pub next: &'a DisputeRecord,
    pub expected_version: i64,
    pub journals: &'a [Journal],
    pub events: &'a [Event],
    pub note: Option<&'a DisputeNote>,
    pub evidence: Option<&'a Evidence>,
    pub records: Option<&'a EffectRecords>,
}

/// The custodian's and the queue's filters.
#[derive(Debug, Clone, Default)]
pub struct DisputeFilter {
    /// None: every tenant (operators).
    pub scope: Option<Scope>,
    pub statuses: Vec<DisputeStatus>,
    pub card_id: Option<CardId>,
    pub cardholder_id: Option<CardholderId>,
    pub program_id: Option<ProgramId>,
    pub assignee_id: Option<UserId>,
    pub created_gte: Option<Timestamp>,
    pub created_lt: Option<Timestamp>,
}

/// Open cases the deadline job must look at.
#[derive(Debug, Clone)]
pub struct DueDispute {
    pub record: DisputeRecord,
    pub policy: DisputePolicy,
    pub kyc_verified: bool,
}

/// A group of cases for the report: by reason, status and disposition.
#[derive(Debug, Clone)]
pub struct DisputeTally {
    pub reason: DisputeReason,
    pub status: DisputeStatus,
    pub disposition: Option<Disposition>,
    pub currency: Currency,
    pub count: i64,
    pub amount: i64,
    pub recovered: i64,
    pub provisional_credit: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// What was disputed or the fraud count moved since the facts were read: read again.
    #[error("the transaction's disputes changed concurrently")]
    Raced,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait DisputeStore: Send + Sync {
    async fn dispute_policy(&self, program: &ProgramId) -> Result<DisputePolicy, StoreError>;
    async fn put_dispute_policy(
        &self,
        program: &ProgramId,
        policy: &DisputePolicy,
        records: Option<&EffectRecords>,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn filing_facts(
        &self,
        transaction: &TransactionId,
        card: &CardId,
        account: &AccountId,
        program: &ProgramId,
    ) -> Result<FilingFacts, StoreError>;
    /// Inserts a filed case if `facts` still hold under a lock on the transaction's row.
    async fn insert_dispute(
        &self,
        dispute: &Dispute,
        facts: &FilingFacts,
        events: &[Event],
        records: Option<&EffectRecords>,
    ) -> Result<(), FileError>;
    async fn get_dispute(&self, scope: Option<&Scope>, id: &DisputeId) -> Result<DisputeRecord, StoreError>;
    /// Newest first, keyset pages (the custodian's list).
    async fn list_disputes(
        &self,
        filter: &DisputeFilter,
        page: &PageRequest,
    ) -> Result<Page<DisputeRecord>, StoreError>;
    /// Open cases first by the nearest deadline (the operators' queue).
    async fn dispute_queue(&self, filter: &DisputeFilter, limit: u32) -> Result<Vec<DisputeRecord>, StoreError>;
    /// Writes a change; `Conflict` when the version moved, `InsufficientFunds` when a journal no
    /// longer fits the card.
    async fn change_dispute(&self, scope: &Scope, change: DisputeChange<'_>, now: Timestamp) -> Result<(), PostError>;
    async fn list_evidence(&self, id: &DisputeId) -> Result<Vec<Evidence>, StoreError>;
    async fn list_dispute_notes(&self, id: &DisputeId) -> Result<Vec<DisputeNote>, StoreError>;
    /// The program's disputes account (opened on first use), settlement and losses accounts.
    async fn dispute_accounts(
        &self,
        scope: &Scope,
        program: &ProgramId,
        now: Timestamp,
    ) -> Result<cardplane_domain::dispute::DisputeAccounts, StoreError>;
    /// Open cases whose provisional credit is due, whose resolution deadline passed, or which
    /// are within `warn_secs` of it and not flagged yet.
    async fn due_disputes(&self, now: Timestamp, warn_secs: i64, limit: u32) -> Result<Vec<DueDispute>, StoreError>;
    async fn dispute_tallies(&self, scope: Option<&Scope>) -> Result<Vec<DisputeTally>, StoreError>;
    /// Open cases (for age buckets and deadlines at risk).
    async fn open_disputes(&self, scope: Option<&Scope>, limit: u32) -> Result<Vec<DisputeRecord>, StoreError>;
}

const COLUMNS: &str = "id, tenant_id, environment, transaction_id, card_id, cardholder_id, program_id, account_id, \
    currency, amount, reason, network_reason_code, customer_note, customer_filed_at, status, disposition, recovered, \
    resolution_reason, provisional_credit, provisional_credit_due_at, resolution_due_at, deadline_flagged_at, \
    assignee_id, submitted_at, representment_at, pre_arbitration_at, arbitration_at, closed_at, created_at, \
    updated_at, version";

fn parse_id<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(StoreError::other)
}

fn dispute_from_row(row: &AnyRow) -> Result<DisputeRecord, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored dispute {what}"));
    let text = |c: &str| row.try_get::<String, _>(c);
    let disposition: Option<String> = row.try_get("disposition")?;
    let assignee: Option<String> = row.try_get("assignee_id")?;
    let dispute = Dispute {
        id: parse_id(DisputeId::parse(&text("id")?))?,
        tenant_id: parse_id(TenantId::parse(&text("tenant_id")?))?,
        environment: Environment::parse(&text("environment")?).ok_or_else(|| bad("environment"))?,
        transaction_id: parse_id(TransactionId::parse(&text("transaction_id")?))?,
        card_id: parse_id(CardId::parse(&text("card_id")?))?,
        cardholder_id: parse_id(CardholderId::parse(&text("cardholder_id")?))?,
        program_id: parse_id(ProgramId::parse(&text("program_id")?))?,
        account_id: parse_id(AccountId::parse(&text("account_id")?))?,
        currency: Currency::parse(&text("currency")?).map_err(|_| bad("currency"))?,
        amount: row.try_get("amount")?,
        reason: DisputeReason::parse(&text("reason")?).ok_or_else(|| bad("reason"))?,
        network_reason_code: text("network_reason_code")?,
        customer_note: row.try_get("customer_note")?,
        customer_filed_at: ts(row, "customer_filed_at")?,
        state: DisputeState {
            status: DisputeStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?,
            disposition: disposition
                .map(|d| Disposition::parse(&d).ok_or_else(|| bad("disposition")))
                .transpose()?,
            recovered: row.try_get("recovered")?,
        },
        resolution_reason: row.try_get("resolution_reason")?,
        provisional_credit: row.try_get("provisional_credit")?,
        provisional_credit_due_at: ts(row, "provisional_credit_due_at")?,
        resolution_due_at: ts(row, "resolution_due_at")?,
        submitted_at: opt_ts(row, "submitted_at")?,
        representment_at: opt_ts(row, "representment_at")?,
        pre_arbitration_at: opt_ts(row, "pre_arbitration_at")?,
        arbitration_at: opt_ts(row, "arbitration_at")?,
        closed_at: opt_ts(row, "closed_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        version: row.try_get("version")?,
    };
    Ok(DisputeRecord {
        dispute,
        assignee_id: assignee.map(|a| parse_id(UserId::parse(&a))).transpose()?,
        deadline_flagged_at: opt_ts(row, "deadline_flagged_at")?,
    })
}

fn policy_from_row(row: &AnyRow) -> Result<DisputePolicy, StoreError> {
    let days = |c: &str| -> Result<u32, StoreError> {
        u32::try_from(row.try_get::<i64, _>(c)?).map_err(|_| StoreError::corrupt("dispute policy days"))
    };
    let credit: String = row.try_get("provisional_credit")?;
    Ok(DisputePolicy {
        filing_window_days: days("filing_window_days")?,
        fraud_disputes_per_card_max: days("fraud_disputes_per_card_max")?,
        provisional_credit_business_days: days("provisional_credit_business_days")?,
        resolution_days: days("resolution_days")?,
        extended_resolution_days: days("extended_resolution_days")?,
        provisional_credit: ProvisionalCreditPolicy::parse(&credit)
            .ok_or_else(|| StoreError::corrupt("dispute policy provisional credit"))?,
    })
}

fn opt_micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.as_micros())
}

enum Bind {
    Text(String),
    Int(i64),
}

/// A dynamic WHERE clause, numbering its placeholders as filters are added.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    fn push(&mut self, template: &str, value: Bind) {
        self.binds.push(value);
        self.clauses
            .push(template.replace('?', &format!("${}", self.binds.len())));
    }

    fn text(&mut self, template: &str, value: &str) {
        self.push(template, Bind::Text(value.to_owned()));
    }

    fn int(&mut self, template: &str, value: i64) {
        self.push(template, Bind::Int(value));
    }

    fn of(f: &DisputeFilter) -> Where {
        let mut w = Where::default();
        if let Some(scope) = &f.scope {
            w.text("tenant_id = ?", scope.tenant_id.as_str());
            w.text("environment = ?", scope.environment.as_str());
        }
        if !f.statuses.is_empty() {
            // Closed set of names (the enum's own wire names): safe to inline.
            let names: Vec<String> = f.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
            w.clauses.push(format!("status IN ({})", names.join(", ")));
        }
        if let Some(v) = &f.card_id {
            w.text("card_id = ?", v.as_str());
        }
        if let Some(v) = &f.cardholder_id {
            w.text("cardholder_id = ?", v.as_str());
        }
        if let Some(v) = &f.program_id {
            w.text("program_id = ?", v.as_str());
        }
        if let Some(v) = &f.assignee_id {
            w.text("assignee_id = ?", v.as_str());
        }
        if let Some(v) = f.created_gte {
            w.int("created_at >= ?", v.as_micros());
        }
        if let Some(v) = f.created_lt {
            w.int("created_at < ?", v.as_micros());
        }
        w
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    async fn fetch(&self, pool: &sqlx::AnyPool, sql: String) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in &self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        Ok(q.fetch_all(pool).await?)
    }
}

async fn insert_dispute_row(conn: &mut AnyConnection, d: &Dispute) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO disputes (id, tenant_id, environment, transaction_id, card_id, cardholder_id, program_id, \
         account_id, currency, amount, reason, reason_family, network_reason_code, customer_note, customer_filed_at, \
         status, provisional_credit, provisional_credit_due_at, resolution_due_at, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
    )
    .bind(d.id.as_str())
    .bind(d.tenant_id.as_str())
    .bind(d.environment.as_str())
    .bind(d.transaction_id.as_str())
    .bind(d.card_id.as_str())
    .bind(d.cardholder_id.as_str())
    .bind(d.program_id.as_str())
    .bind(d.account_id.as_str())
    .bind(d.currency.code())
    .bind(d.amount)
    .bind(d.reason.as_str())
    .bind(d.reason.family().as_str())
    .bind(d.network_reason_code.as_str())
    .bind(d.customer_note.as_deref())
    .bind(d.customer_filed_at.as_micros())
    .bind(d.state.status.as_str())
    .bind(d.provisional_credit)
    .bind(d.provisional_credit_due_at.as_micros())
    .bind(d.resolution_due_at.as_micros())
    .bind(d.created_at.as_micros())
    .bind(d.updated_at.as_micros())
    .bind(d.version)
    .execute(conn)
    .await?;
    Ok(())
}

async fn update_dispute_row(conn: &mut AnyConnection, r: &DisputeRecord, expected: i64) -> Result<(), StoreError> {
    let d = &r.dispute;
    let done = sqlx::query(
        "UPDATE disputes SET status = $3, disposition = $4, recovered = $5, resolution_reason = $6, \
         provisional_credit = $7, deadline_flagged_at = $8, assignee_id = $9, submitted_at = $10, \
         representment_at = $11, pre_arbitration_at = $12, arbitration_at = $13, closed_at = $14, updated_at = $15, \
         version = $16 WHERE id = $1 AND version = $2",
    )
    .bind(d.id.as_str())
    .bind(expected)
    .bind(d.state.status.as_str())
    .bind(d.state.disposition.map(Disposition::as_str))
    .bind(d.state.recovered)
    .bind(d.resolution_reason.as_deref())
    .bind(d.provisional_credit)
    .bind(opt_micros(r.deadline_flagged_at))
    .bind(r.assignee_id.as_ref().map(|a| a.as_str().to_owned()))
    .bind(opt_micros(d.submitted_at))
    .bind(opt_micros(d.representment_at))
    .bind(opt_micros(d.pre_arbitration_at))
    .bind(opt_micros(d.arbitration_at))
    .bind(opt_micros(d.closed_at))
    .bind(d.updated_at.as_micros())
    .bind(d.version)
    .execute(conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            constraint: "disputes_version".into(),
        });
    }
    Ok(())
}

async fn insert_evidence_row(conn: &mut AnyConnection, e: &Evidence) -> Result<(), StoreError> {
    crate::compliance::insert_document_row(conn, &e.document).await?;
    sqlx::query(
        "INSERT INTO dispute_evidence (id, dispute_id, document_id, submitted_by, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.id.as_str())
    .bind(e.dispute_id.as_str())
    .bind(e.document.id.as_str())
    .bind(e.source.as_str())
    .bind(e.created_at.as_micros())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_note_row(conn: &mut AnyConnection, n: &DisputeNote) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO dispute_notes (id, dispute_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(n.id.as_str())
        .bind(n.dispute_id.as_str())
        .bind(n.author_id.as_ref().map(|a| a.as_str().to_owned()))
        .bind(n.body.as_str())
        .bind(n.created_at.as_micros())
        .execute(conn)
        .await?;
    Ok(())
}

/// What is disputed of a transaction and how many fraud cases its card has, as of now.
async fn disputed_so_far(
    conn: &mut AnyConnection,
    transaction: &TransactionId,
    card: &CardId,
) -> Result<(i64, u32), StoreError> {
    // Open cases and won ones hold their amount; lost, denied and withdrawn ones free it.
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN disposition = 'partially_won' THEN recovered ELSE amount END), 0) AS BIGINT) \
         AS disputed \
         FROM disputes WHERE transaction_id = $1 AND (disposition IS NULL OR disposition IN ('won', 'partially_won'))",
    )
    .bind(transaction.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let disputed: i64 = row.try_get("disputed")?;
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM disputes WHERE card_id = $1 AND reason_family = $2 \
         AND (disposition IS NULL OR disposition <> 'withdrawn')",
    )
    .bind(card.as_str())
    .bind(ReasonFamily::Fraud.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let fraud: i64 = row.try_get("n")?;
    Ok((disputed, u32::try_from(fraud).unwrap_or(u32::MAX)))
}

#[async_trait]
impl DisputeStore for SqlStore {
    async fn dispute_policy(&self, program: &ProgramId) -> Result<DisputePolicy, StoreError> {
        let row = sqlx::query("SELECT * FROM dispute_policies WHERE program_id = $1")
            .bind(program.as_str())
            .fetch_optional(self.db.reader())
            .await?;
        row.map_or(Ok(DisputePolicy::default()), |r| policy_from_row(&r))
    }

    async fn put_dispute_policy(
        &self,
        program: &ProgramId,
        p: &DisputePolicy,
        records: Option<&EffectRecords>,
        scope: &Scope,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "INSERT INTO dispute_policies (program_id, filing_window_days, fraud_disputes_per_card_max, \
             provisional_credit_business_days, resolution_days, extended_resolution_days, provisional_credit, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (program_id) DO UPDATE SET \
             filing_window_days = excluded.filing_window_days, \
             fraud_disputes_per_card_max = excluded.fraud_disputes_per_card_max, \
             provisional_credit_business_days = excluded.provisional_credit_business_days, \
             resolution_days = excluded.resolution_days, extended_resolution_days = excluded.extended_resolution_days, \
             provisional_credit = excluded.provisional_credit, updated_at = excluded.updated_at",
        )
        .bind(program.as_str())
        .bind(i64::from(p.filing_window_days))
        .bind(i64::from(p.fraud_disputes_per_card_max))
        .bind(i64::from(p.provisional_credit_business_days))
        .bind(i64::from(p.resolution_days))
        .bind(i64::from(p.extended_resolution_days))
        .bind(p.provisional_credit.as_str())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        write_effect_records(&mut tx, scope, records, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn filing_facts(
        &self,
        transaction: &TransactionId,
        card: &CardId,
        account: &AccountId,
        program: &ProgramId,
    ) -> Result<FilingFacts, StoreError> {
        let mut conn = self.db.reader().acquire().await?;
        let (already_disputed, fraud_disputes_on_card) = disputed_so_far(&mut conn, transaction, card).await?;
        let row = sqlx::query("SELECT created_at FROM accounts WHERE id = $1")
            .bind(account.as_str())
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        Ok(FilingFacts {
            already_disputed,
            fraud_disputes_on_card,
            account_opened_at: ts(&row, "created_at")?,
            policy: self.dispute_policy(program).await?,
        })
    }

    async fn insert_dispute(
        &self,
        d: &Dispute,
        facts: &FilingFacts,
        events: &[Event],
        records: Option<&EffectRecords>,
    ) -> Result<(), FileError> {
        let mut tx = self.db.writer().begin().await.map_err(StoreError::from)?;
        if self.db.backend() == Backend::Postgres {
            // SQLite's one writer already serialises filings.
            sqlx::query("SELECT id FROM transactions WHERE id = $1 FOR UPDATE")
                .bind(d.transaction_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        }
        let now = disputed_so_far(&mut tx, &d.transaction_id, &d.card_id).await?;
        if now != (facts.already_disputed, facts.fraud_disputes_on_card) {
            return Err(FileError::Raced);
        }
        insert_dispute_row(&mut tx, d).await?;
        insert_events(&mut tx, events).await?;
        let scope = Scope {
            tenant_id: d.tenant_id.clone(),
            environment: d.environment,
        };
        write_effect_records(&mut tx, &scope, records, d.created_at).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn get_dispute(&self, scope: Option<&Scope>, id: &DisputeId) -> Result<DisputeRecord, StoreError> {
        let filter = DisputeFilter {
            scope: scope.cloned(),
            ..DisputeFilter::default()
        };
        let mut w = Where::of(&filter);
        w.text("id = ?", id.as_str());
        let sql = format!("SELECT {COLUMNS} FROM disputes{}", w.sql());
        let rows = w.fetch(self.db.reader(), sql).await?;
        rows.first().map(dispute_from_row).ok_or(StoreError::NotFound)?
    }

    async fn list_disputes(
        &self,
        filter: &DisputeFilter,
        page: &PageRequest,
    ) -> Result<Page<DisputeRecord>, StoreError> {
        let base = Where::of(filter);
        let total_sql = format!("SELECT COUNT(*) AS n FROM disputes{}", base.sql());
        let total: i64 = base.fetch(self.db.reader(), total_sql).await?[0].try_get("n")?;
        let mut w = Where::of(filter);
        let order = match &page.cursor {
            Cursor::Newest => "DESC",
            Cursor::After(id) => {
                w.text("id < ?", id.as_str());
                "DESC"
            }
            Cursor::Before(id) => {
                w.text("id > ?", id.as_str());
                "ASC"
            }
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM disputes{} ORDER BY id {order} LIMIT {}",
            w.sql(),
            i64::from(page.limit) + 1
        );
        let rows = w.fetch(self.db.reader(), sql).await?;
        let has_more = rows.len() > page.limit as usize;
        let mut items = rows
            .iter()
            .take(page.limit as usize)
            .map(dispute_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(page.cursor, Cursor::Before(_)) {
            items.reverse();
        }
        Ok(Page { items, has_more, total })
    }

    async fn dispute_queue(&self, filter: &DisputeFilter, limit: u32) -> Result<Vec<DisputeRecord>, StoreError> {
        let w = Where::of(filter);
        let sql = format!(
            "SELECT {COLUMNS} FROM disputes{} ORDER BY CASE WHEN status = 'closed' THEN 1 ELSE 0 END, \
             CASE WHEN provisional_credit = 0 AND provisional_credit_due_at < resolution_due_at \
             THEN provisional_credit_due_at ELSE resolution_due_at END, id LIMIT {}",
            w.sql(),
            i64::from(limit)
        );
        w.fetch(self.db.reader(), sql)
            .await?
            .iter()
            .map(dispute_from_row)
            .collect()
    }

    async fn change_dispute(&self, scope: &Scope, c: DisputeChange<'_>, now: Timestamp) -> Result<(), PostError> {
        let mut tx = self.db.writer().begin().await?;
        update_dispute_row(&mut tx, c.next, c.expected_version).await?;
        for journal in c.journals {
            write_journal(&mut tx, journal).await?;
        }
        if let Some(note) = c.note {
            insert_note_row(&mut tx, note).await?;
        }
        if let Some(evidence) = c.evidence {
            insert_evidence_row(&mut tx, evidence).await?;
        }
        insert_events(&mut tx, c.events).await?;
        write_effect_records(&mut tx, scope, c.records, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_evidence(&self, id: &DisputeId) -> Result<Vec<Evidence>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id AS evidence_id, e.dispute_id, e.submitted_by, e.created_at AS evidence_created_at, d.* \
             FROM dispute_evidence e JOIN documents d ON d.id = e.document_id WHERE e.dispute_id = $1 ORDER BY e.id",
        )
        .bind(id.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|row| {
                let source: String = row.try_get("submitted_by")?;
                Ok(Evidence {
                    id: parse_id(DocumentId::parse(&row.try_get::<String, _>("evidence_id")?))?,
                    dispute_id: parse_id(DisputeId::parse(&row.try_get::<String, _>("dispute_id")?))?,
                    source: EvidenceSource::parse(&source).ok_or_else(|| StoreError::corrupt("evidence source"))?,
                    document: crate::compliance::document_from_row(row)?,
                    created_at: ts(row, "evidence_created_at")?,
                })
            })
            .collect()
    }

    async fn list_dispute_notes(&self, id: &DisputeId) -> Result<Vec<DisputeNote>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, dispute_id, author_id, body, created_at FROM dispute_notes WHERE dispute_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|row| {
                let author: Option<String> = row.try_get("author_id")?;
                Ok(DisputeNote {
                    id: parse_id(DisputeNoteId::parse(&row.try_get::<String, _>("id")?))?,
                    dispute_id: parse_id(DisputeId::parse(&row.try_get::<String, _>("dispute_id")?))?,
                    author_id: author.map(|a| parse_id(UserId::parse(&a))).transpose()?,
                    body: row.try_get("body")?,
                    created_at: ts(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn dispute_accounts(
        &self,
        scope: &Scope,
        program: &ProgramId,
        now: Timestamp,
    ) -> Result<cardplane_domain::dispute::DisputeAccounts, StoreError> {
        let find = |kind: AccountKind| {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE program_id = $1 AND kind = $2");
            async move {
                sqlx::query(AssertSqlSafe(sql))
                    .bind(program.as_str())
                    .bind(kind.as_str())
                    .fetch_optional(self.db.reader())
                    .await
            }
        };
        if find(AccountKind::ProgramDisputes).await?.is_none() {
            let settlement = find(AccountKind::ProgramSettlement)
                .await?
                .ok_or(StoreError::NotFound)?;
            let settlement = account_from_row(&settlement)?;
            // Programs made before disputes existed get their account on first use; two
            // processes opening it at once leave one (the unique index on program and kind).
            sqlx::query(
                "INSERT INTO accounts (id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, 0, $7) \
                 ON CONFLICT (program_id, kind) WHERE kind <> 'card_balance' DO NOTHING",
            )
            .bind(AccountId::generate().as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(program.as_str())
            .bind(AccountKind::ProgramDisputes.as_str())
            .bind(settlement.currency.code())
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        }
        let id_of = |row: Option<AnyRow>| -> Result<AccountId, StoreError> {
            Ok(account_from_row(&row.ok_or(StoreError::NotFound)?)?.id)
        };
        Ok(cardplane_domain::dispute::DisputeAccounts {
            disputes: id_of(find(AccountKind::ProgramDisputes).await?)?,
            settlement: id_of(find(AccountKind::ProgramSettlement).await?)?,
            losses: id_of(find(AccountKind::ProgramLosses).await?)?,
        })
    }

    async fn due_disputes(&self, now: Timestamp, warn_secs: i64, limit: u32) -> Result<Vec<DueDispute>, StoreError> {
        let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("d.{}", c.trim())).collect();
        let sql = format!(
            "SELECT {}, c.kyc_status AS kyc_status FROM disputes d JOIN cardholders c ON c.id = d.cardholder_id \
             WHERE d.status <> 'closed' AND ((d.provisional_credit = 0 AND d.provisional_credit_due_at <= $1) \
             OR d.resolution_due_at <= $1 OR (d.deadline_flagged_at IS NULL AND d.resolution_due_at <= $2)) \
             ORDER BY d.resolution_due_at, d.id LIMIT {}",
            cols.join(", "),
            i64::from(limit)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.as_micros())
            .bind(now.plus_secs(warn_secs).as_micros())
            .fetch_all(self.db.reader())
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = dispute_from_row(row)?;
            let kyc: String = row.try_get("kyc_status")?;
            let policy = self.dispute_policy(&record.dispute.program_id).await?;
            due.push(DueDispute {
                record,
                policy,
                kyc_verified: kyc == "PASSED",
            });
        }
        Ok(due)
    }

    async fn dispute_tallies(&self, scope: Option<&Scope>) -> Result<Vec<DisputeTally>, StoreError> {
        let w = Where::of(&DisputeFilter {
            scope: scope.cloned(),
            ..DisputeFilter::default()
        });
        let sql = format!(
            "SELECT reason, status, disposition, currency, COUNT(*) AS n, CAST(SUM(amount) AS BIGINT) AS amount, \
             CAST(SUM(COALESCE(recovered, 0)) AS BIGINT) AS recovered, \
             CAST(SUM(provisional_credit) AS BIGINT) AS credit FROM disputes{} \
             GROUP BY reason, status, disposition, currency ORDER BY reason, status, disposition, currency",
            w.sql()
        );
        let bad = |what: &str| StoreError::corrupt(format!("dispute tally {what}"));
        w.fetch(self.db.reader(), sql)
            .await?
            .iter()
            .map(|row| {
                let disposition: Option<String> = row.try_get("disposition")?;
                Ok(DisputeTally {
                    reason: DisputeReason::parse(&row.try_get::<String, _>("reason")?).ok_or_else(|| bad("reason"))?,
                    status: DisputeStatus::parse(&row.try_get::<String, _>("status")?).ok_or_else(|| bad("status"))?,
                    disposition: disposition
                        .map(|d| Disposition::parse(&d).ok_or_else(|| bad("disposition")))
                        .transpose()?,
                    currency: Currency::parse(&row.try_get::<String, _>("currency")?).map_err(|_| bad("currency"))?,
                    count: row.try_get("n")?,
                    amount: row.try_get("amount")?,
                    recovered: row.try_get("recovered")?,
                    provisional_credit: row.try_get("credit")?,
                })
            })
            .collect()
    }

    async fn open_disputes(&self, scope: Option<&Scope>, limit: u32) -> Result<Vec<DisputeRecord>, StoreError> {
        let filter = DisputeFilter {
            scope: scope.cloned(),
            statuses: DisputeStatus::ALL
                .iter()
                .copied()
                .filter(|s| *s != DisputeStatus::Closed)
                .collect(),
            ..DisputeFilter::default()
        };
        self.dispute_queue(&filter, limit).await
    }
}
