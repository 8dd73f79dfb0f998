//! Disputes: the cases, their evidence and notes, each program's dispute policy, and the writes
//! that move a case along together with its journals, events and audit entry. Every change is
//! optimistic (the case's version); filing re-checks what was already disputed under a lock on
//! the transaction's row, so two filings of one purchase cannot both pass.

mod records;
mod rows;

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{Disposition, Dispute, DisputePolicy, DisputeReason, DisputeStatus};
use cardplane_domain::event::Event;
use cardplane_domain::ids::{
    AccountId, CardId, DisputeId, DisputeNoteId, DocumentId, ProgramId, TransactionId, UserId,
};
use cardplane_domain::ledger::AccountKind;
use cardplane_domain::money::Currency;
use cardplane_domain::page::{Cursor, Page, PageRequest};
use sqlx::{AssertSqlSafe, Row};

pub use records::{
    DisputeChange, DisputeFilter, DisputeNote, DisputeRecord, DisputeTally, DueDispute, Evidence, EvidenceSource,
    FileError, FilingFacts,
};
use rows::{
    COLUMNS, dispute_from_row, disputed_so_far, filters_of, insert_dispute_row, insert_evidence_row, insert_note_row,
    parse_id, policy_from_row, update_dispute_row,
};

use crate::effects::{insert_events, write_effect_records};
use crate::ledger::{PostError, write_journal};
use crate::rows::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::sql::{Bind, ts};
use crate::{Backend, EffectRecords, Scope, SqlStore, StoreError};

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
        let mut w = filters_of(&filter);
        w.add("id = ?", Bind::Text(id.to_string()));
        let sql = format!("SELECT {COLUMNS} FROM disputes{}", w.sql());
        let rows = w.fetch_all(self.db.reader(), sql).await?;
        rows.first().map(dispute_from_row).ok_or(StoreError::NotFound)?
    }

    async fn list_disputes(
        &self,
        filter: &DisputeFilter,
        page: &PageRequest,
    ) -> Result<Page<DisputeRecord>, StoreError> {
        let base = filters_of(filter);
        let total_sql = format!("SELECT COUNT(*) AS n FROM disputes{}", base.sql());
        let total: i64 = base.fetch_all(self.db.reader(), total_sql).await?[0].try_get("n")?;
        let mut w = filters_of(filter);
        let order = match &page.cursor {
            Cursor::Newest => "DESC",
            Cursor::After(id) => {
                w.add("id < ?", Bind::Text(id.clone()));
                "DESC"
            }
            Cursor::Before(id) => {
                w.add("id > ?", Bind::Text(id.clone()));
                "ASC"
            }
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM disputes{} ORDER BY id {order} LIMIT {}",
            w.sql(),
            i64::from(page.limit) + 1
        );
        let rows = w.fetch_all(self.db.reader(), sql).await?;
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
        let w = filters_of(filter);
        let sql = format!(
            "SELECT {COLUMNS} FROM disputes{} ORDER BY CASE WHEN status = 'closed' THEN 1 ELSE 0 END, \
             CASE WHEN provisional_credit = 0 AND provisional_credit_due_at < resolution_due_at \
             THEN provisional_credit_due_at ELSE resolution_due_at END, id LIMIT {}",
            w.sql(),
            i64::from(limit)
        );
        w.fetch_all(self.db.reader(), sql)
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
        // One read of the program's three accounts; a second only when the disputes account had
        // to be opened.
        let read = || async {
            let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE program_id = $1 AND kind IN ($2, $3, $4)");
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(program.as_str())
                .bind(AccountKind::ProgramDisputes.as_str())
                .bind(AccountKind::ProgramSettlement.as_str())
                .bind(AccountKind::ProgramLosses.as_str())
                .fetch_all(self.db.reader())
                .await?;
            rows.iter()
                .map(account_from_row)
                .collect::<Result<Vec<_>, StoreError>>()
        };
        let id_of = |accounts: &[cardplane_domain::ledger::Account], kind: AccountKind| {
            accounts.iter().find(|a| a.kind == kind).map(|a| a.id.clone())
        };
        let mut accounts = read().await?;
        if id_of(&accounts, AccountKind::ProgramDisputes).is_none() {
            let currency = accounts
                .iter()
                .find(|a| a.kind == AccountKind::ProgramSettlement)
                .ok_or(StoreError::NotFound)?
                .currency;
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
            .bind(currency.code())
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
            accounts = read().await?;
        }
        let id = |kind| id_of(&accounts, kind).ok_or(StoreError::NotFound);
        Ok(cardplane_domain::dispute::DisputeAccounts {
            disputes: id(AccountKind::ProgramDisputes)?,
            settlement: id(AccountKind::ProgramSettlement)?,
            losses: id(AccountKind::ProgramLosses)?,
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
        // One policy read per program, not per case.
        let mut policies: std::collections::HashMap<ProgramId, DisputePolicy> = std::collections::HashMap::new();
        for row in &rows {
            let record = dispute_from_row(row)?;
            let kyc: String = row.try_get("kyc_status")?;
            let program = &record.dispute.program_id;
            let policy = match policies.get(program) {
                Some(p) => *p,
                None => {
                    let p = self.dispute_policy(program).await?;
                    policies.insert(program.clone(), p);
                    p
                }
            };
            due.push(DueDispute {
                record,
                policy,
                kyc_verified: kyc == "PASSED",
            });
        }
        Ok(due)
    }

    async fn dispute_tallies(&self, scope: Option<&Scope>) -> Result<Vec<DisputeTally>, StoreError> {
        let w = filters_of(&DisputeFilter {
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
        w.fetch_all(self.db.reader(), sql)
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
