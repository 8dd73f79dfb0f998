//! Compliance cases, their approvals, notes and documents, and per-program approval chains.
//! Case changes are optimistic (a version column) and carry their audit entry.

use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::compliance::{Approval, ApprovalChain, Case, CaseReason, CaseStatus, ChainTrigger, Decision};
use cardplane_domain::ids::{CardholderId, CaseId, CaseNoteId, DocumentId, ProgramId, TenantId, UserId};
use cardplane_domain::people::OperatorRole;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::audit::append_audit;
use crate::effects::write_effect_records;
use crate::sql::{Bind, Filters, opt_ts, ts};
use crate::{EffectRecords, Scope, SqlStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseNote {
    pub id: CaseNoteId,
    pub case_id: CaseId,
    /// `None` for a note the system wrote (a case closed by a KYC re-run).
    pub author_id: Option<UserId>,
    pub body: String,
    pub created_at: Timestamp,
}

/// A stored document's metadata; the bytes live behind the document storage port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub id: DocumentId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub cardholder_id: CardholderId,
    pub case_id: Option<CaseId>,
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub storage_key: String,
    /// The person (`usr_...`) or API key (`key_...`) that uploaded it.
    pub uploaded_by: String,
    pub created_at: Timestamp,
}

/// The queue's filters.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub statuses: Vec<CaseStatus>,
    pub assignee_id: Option<UserId>,
    pub unassigned: bool,
    pub reason: Option<CaseReason>,
    pub tenant_id: Option<TenantId>,
    pub program_id: Option<ProgramId>,
    pub cardholder_id: Option<CardholderId>,
    /// Only open cases past their SLA at this time.
    pub overdue_at: Option<Timestamp>,
    /// Cases with a smaller id (older), for keyset pagination.
    pub before_id: Option<CaseId>,
}

/// A case change with what it appends.
#[derive(Clone, Copy)]
pub struct CaseChange<'a> {
    pub case: &'a Case,
    pub expected_version: i64,
    pub approval: Option<&'a Approval>,
    pub note: Option<&'a CaseNote>,
    pub document: Option<&'a DocumentRecord>,
    pub audit: &'a AuditRecord,
}

impl<'a> CaseChange<'a> {
    /// A change that appends nothing but its audit entry.
    pub fn of(case: &'a Case, expected_version: i64, audit: &'a AuditRecord) -> Self {
        Self {
            case,
            expected_version,
            approval: None,
            note: None,
            document: None,
            audit,
        }
    }
}

#[async_trait]
pub trait ComplianceStore: Send + Sync {
    async fn approval_chain(
        &self,
        program: &ProgramId,
        trigger: ChainTrigger,
    ) -> Result<Option<ApprovalChain>, StoreError>;
    async fn put_approval_chain(
        &self,
        program: &ProgramId,
        trigger: ChainTrigger,
        chain: &ApprovalChain,
        by: &UserId,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// `Conflict` on `compliance_cases_one_open` when the cardholder already has an open case.
    async fn insert_case(&self, case: &Case, audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_case(&self, id: &CaseId) -> Result<Case, StoreError>;
    async fn open_case_of(&self, cardholder: &CardholderId) -> Result<Option<Case>, StoreError>;
    async fn list_cases(&self, filter: &CaseFilter, limit: u32) -> Result<Vec<Case>, StoreError>;
    /// `Conflict` on `compliance_cases_version` when the case changed since it was read.
    async fn update_case(&self, change: CaseChange<'_>) -> Result<(), StoreError>;
    /// A document from the tenant's API, in one transaction with what it changes: the case it
    /// joins (whose change inserts it), or the document alone, and the request's records.
    async fn attach_document(
        &self,
        scope: &Scope,
        doc: &DocumentRecord,
        case: Option<CaseChange<'_>>,
        records: &EffectRecords,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn list_notes(&self, case: &CaseId) -> Result<Vec<CaseNote>, StoreError>;
    async fn list_documents(&self, cardholder: &CardholderId) -> Result<Vec<DocumentRecord>, StoreError>;
    async fn get_document(&self, id: &DocumentId) -> Result<DocumentRecord, StoreError>;
    /// The tenant and environment an object lives in, for operators who address it by id alone.
    async fn scope_of(&self, object: ScopedObject<'_>) -> Result<Scope, StoreError>;
}

/// Objects operators look up across tenants.
#[derive(Debug, Clone, Copy)]
pub enum ScopedObject<'a> {
    Cardholder(&'a CardholderId),
    Program(&'a ProgramId),
}

fn steps_text(chain: &ApprovalChain) -> String {
    chain.steps.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

fn steps_from(raw: &str) -> Result<Vec<OperatorRole>, StoreError> {
    raw.split(',')
        .map(|r| OperatorRole::parse(r).ok_or_else(|| StoreError::corrupt("approval chain role")))
        .collect()
}

fn parse<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(StoreError::other)
}

const CASE_COLUMNS: &str = "id, tenant_id, environment, cardholder_id, program_id, reason, status, assignee_id, \
     opened_by, chain_steps, sla_hours, due_at, created_at, updated_at, closed_at, version";

fn case_from_row(row: &AnyRow) -> Result<Case, StoreError> {
    let opt_user = |c: &str| -> Result<Option<UserId>, StoreError> {
        row.try_get::<Option<String>, _>(c)?
            .as_deref()
            .map(|s| parse(UserId::parse(s)))
            .transpose()
    };
    Ok(Case {
        id: parse(CaseId::parse(&row.try_get::<String, _>("id")?))?,
        tenant_id: parse(TenantId::parse(&row.try_get::<String, _>("tenant_id")?))?,
        environment: Environment::parse(&row.try_get::<String, _>("environment")?)
            .ok_or_else(|| StoreError::corrupt("case environment"))?,
        cardholder_id: parse(CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?))?,
        program_id: row
            .try_get::<Option<String>, _>("program_id")?
            .as_deref()
            .map(|s| parse(ProgramId::parse(s)))
            .transpose()?,
        reason: CaseReason::parse(&row.try_get::<String, _>("reason")?)
            .ok_or_else(|| StoreError::corrupt("case reason"))?,
        status: CaseStatus::parse(&row.try_get::<String, _>("status")?)
            .ok_or_else(|| StoreError::corrupt("case status"))?,
        assignee_id: opt_user("assignee_id")?,
        opened_by: opt_user("opened_by")?,
        chain: ApprovalChain {
            steps: steps_from(&row.try_get::<String, _>("chain_steps")?)?,
            sla_hours: row.try_get("sla_hours")?,
        },
        approvals: Vec::new(),
        due_at: ts(row, "due_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        closed_at: opt_ts(row, "closed_at")?,
        version: row.try_get("version")?,
    })
}

fn approval_from_row(row: &AnyRow) -> Result<(CaseId, Approval), StoreError> {
    let step: i64 = row.try_get("step")?;
    Ok((
        parse(CaseId::parse(&row.try_get::<String, _>("case_id")?))?,
        Approval {
            step: usize::try_from(step).map_err(|_| StoreError::corrupt("approval step"))?,
            role: OperatorRole::parse(&row.try_get::<String, _>("role")?)
                .ok_or_else(|| StoreError::corrupt("approval role"))?,
            user_id: parse(UserId::parse(&row.try_get::<String, _>("user_id")?))?,
            decision: Decision::parse(&row.try_get::<String, _>("decision")?)
                .ok_or_else(|| StoreError::corrupt("approval decision"))?,
            comment: row.try_get("comment")?,
            created_at: ts(row, "created_at")?,
        },
    ))
}

const DOCUMENT_COLUMNS: &str = "id, tenant_id, environment, cardholder_id, case_id, kind, file_name, content_type, \
     size_bytes, sha256, storage_key, uploaded_by, created_at";

pub(crate) fn document_from_row(row: &AnyRow) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        id: parse(DocumentId::parse(&row.try_get::<String, _>("id")?))?,
        tenant_id: parse(TenantId::parse(&row.try_get::<String, _>("tenant_id")?))?,
        environment: Environment::parse(&row.try_get::<String, _>("environment")?)
            .ok_or_else(|| StoreError::corrupt("document environment"))?,
        cardholder_id: parse(CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?))?,
        case_id: row
            .try_get::<Option<String>, _>("case_id")?
            .as_deref()
            .map(|s| parse(CaseId::parse(s)))
            .transpose()?,
        kind: row.try_get("kind")?,
        file_name: row.try_get("file_name")?,
        content_type: row.try_get("content_type")?,
        size_bytes: row.try_get("size_bytes")?,
        sha256: row.try_get("sha256")?,
        storage_key: row.try_get("storage_key")?,
        uploaded_by: row.try_get("uploaded_by")?,
        created_at: ts(row, "created_at")?,
    })
}

/// Opens `case` unless its cardholder already has an open one; true when it was inserted.
pub(crate) async fn insert_case_row(conn: &mut AnyConnection, case: &Case) -> Result<bool, StoreError> {
    let done = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO compliance_cases ({CASE_COLUMNS}) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
         WHERE NOT EXISTS (SELECT 1 FROM compliance_cases WHERE cardholder_id = $4 AND closed_at IS NULL)"
    )))
    .bind(case.id.as_str())
    .bind(case.tenant_id.as_str())
    .bind(case.environment.as_str())
    .bind(case.cardholder_id.as_str())
    .bind(case.program_id.as_ref().map(|p| p.as_str()))
    .bind(case.reason.as_str())
    .bind(case.status.as_str())
    .bind(case.assignee_id.as_ref().map(|u| u.as_str()))
    .bind(case.opened_by.as_ref().map(|u| u.as_str()))
    .bind(steps_text(&case.chain))
    .bind(case.chain.sla_hours)
    .bind(case.due_at.as_micros())
    .bind(case.created_at.as_micros())
    .bind(case.updated_at.as_micros())
    .bind(case.closed_at.map(Timestamp::as_micros))
    .bind(case.version)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn insert_document_row(conn: &mut AnyConnection, d: &DocumentRecord) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )))
    .bind(d.id.as_str())
    .bind(d.tenant_id.as_str())
    .bind(d.environment.as_str())
    .bind(d.cardholder_id.as_str())
    .bind(d.case_id.as_ref().map(|c| c.as_str()))
    .bind(d.kind.as_str())
    .bind(d.file_name.as_str())
    .bind(d.content_type.as_str())
    .bind(d.size_bytes)
    .bind(d.sha256.as_str())
    .bind(d.storage_key.as_str())
    .bind(d.uploaded_by.as_str())
    .bind(d.created_at.as_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a case change in the caller's transaction (the cardholder write uses it for decisions
/// that change KYC).
pub(crate) async fn write_case_change(conn: &mut AnyConnection, c: &CaseChange<'_>) -> Result<(), StoreError> {
    let case = c.case;
    let done = sqlx::query(
        "UPDATE compliance_cases SET status = $3, assignee_id = $4, updated_at = $5, closed_at = $6, version = $7 \
         WHERE id = $1 AND version = $2",
    )
    .bind(case.id.as_str())
    .bind(c.expected_version)
    .bind(case.status.as_str())
    .bind(case.assignee_id.as_ref().map(|u| u.as_str()))
    .bind(case.updated_at.as_micros())
    .bind(case.closed_at.map(Timestamp::as_micros))
    .bind(case.version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            constraint: "compliance_cases_version".into(),
        });
    }
    if let Some(a) = c.approval {
        sqlx::query(
            "INSERT INTO case_approvals (case_id, step, role, user_id, decision, comment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(case.id.as_str())
        .bind(i64::try_from(a.step).map_err(|_| StoreError::corrupt("approval step"))?)
        .bind(a.role.as_str())
        .bind(a.user_id.as_str())
        .bind(a.decision.as_str())
        .bind(a.comment.as_deref())
        .bind(a.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(n) = c.note {
        sqlx::query("INSERT INTO case_notes (id, case_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(n.id.as_str())
            .bind(n.case_id.as_str())
            .bind(n.author_id.as_ref().map(UserId::as_str))
            .bind(n.body.as_str())
            .bind(n.created_at.as_micros())
            .execute(&mut *conn)
            .await?;
    }
    if let Some(d) = c.document {
        insert_document_row(conn, d).await?;
    }
    append_audit(conn, c.audit).await?;
    Ok(())
}

impl SqlStore {
    async fn with_approvals(&self, mut cases: Vec<Case>) -> Result<Vec<Case>, StoreError> {
        for case in &mut cases {
            let rows = sqlx::query(
                "SELECT case_id, step, role, user_id, decision, comment, created_at FROM case_approvals \
                 WHERE case_id = $1 ORDER BY step",
            )
            .bind(case.id.as_str())
            .fetch_all(self.db.reader())
            .await?;
            case.approvals = rows
                .iter()
                .map(|r| approval_from_row(r).map(|(_, a)| a))
                .collect::<Result<_, _>>()?;
        }
        Ok(cases)
    }
}

#[async_trait]
impl ComplianceStore for SqlStore {
    async fn approval_chain(
        &self,
        program: &ProgramId,
        trigger: ChainTrigger,
    ) -> Result<Option<ApprovalChain>, StoreError> {
        let row = sqlx::query("SELECT steps, sla_hours FROM approval_chains WHERE program_id = $1 AND trigger = $2")
            .bind(program.as_str())
            .bind(trigger.as_str())
            .fetch_optional(self.db.reader())
            .await?;
        row.map(|r| {
            Ok(ApprovalChain {
                steps: steps_from(&r.try_get::<String, _>("steps")?)?,
                sla_hours: r.try_get("sla_hours")?,
            })
        })
        .transpose()
    }

    async fn put_approval_chain(
        &self,
        program: &ProgramId,
        trigger: ChainTrigger,
        chain: &ApprovalChain,
        by: &UserId,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "INSERT INTO approval_chains (program_id, trigger, steps, sla_hours, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (program_id, trigger) DO UPDATE SET \
             steps = excluded.steps, sla_hours = excluded.sla_hours, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
        )
        .bind(program.as_str())
        .bind(trigger.as_str())
        .bind(steps_text(chain))
        .bind(chain.sla_hours)
        .bind(by.as_str())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_case(&self, case: &Case, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        if !insert_case_row(&mut tx, case).await? {
            return Err(StoreError::Conflict {
                constraint: "compliance_cases_one_open".into(),
            });
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_case(&self, id: &CaseId) -> Result<Case, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CASE_COLUMNS} FROM compliance_cases WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        let case = case_from_row(&row)?;
        Ok(self.with_approvals(vec![case]).await?.remove(0))
    }

    async fn open_case_of(&self, cardholder: &CardholderId) -> Result<Option<Case>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CASE_COLUMNS} FROM compliance_cases WHERE cardholder_id = $1 AND closed_at IS NULL"
        )))
        .bind(cardholder.as_str())
        .fetch_optional(self.db.reader())
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(self.with_approvals(vec![case_from_row(&r)?]).await?.pop()),
        }
    }

    async fn list_cases(&self, f: &CaseFilter, limit: u32) -> Result<Vec<Case>, StoreError> {
        let mut w = Filters::default();
        if !f.statuses.is_empty() {
            // Wire names from a closed enum: safe to inline.
            let list: Vec<String> = f.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
            w.raw(format!("status IN ({})", list.join(", ")));
        }
        if let Some(u) = &f.assignee_id {
            w.add("assignee_id = ?", Bind::Text(u.to_string()));
        }
        if f.unassigned {
            w.raw("assignee_id IS NULL".into());
        }
        if let Some(r) = f.reason {
            w.add("reason = ?", Bind::Text(r.as_str().into()));
        }
        if let Some(t) = &f.tenant_id {
            w.add("tenant_id = ?", Bind::Text(t.to_string()));
        }
        if let Some(p) = &f.program_id {
            w.add("program_id = ?", Bind::Text(p.to_string()));
        }
        if let Some(c) = &f.cardholder_id {
            w.add("cardholder_id = ?", Bind::Text(c.to_string()));
        }
        if let Some(t) = f.overdue_at {
            w.raw("closed_at IS NULL".into());
            w.add("due_at < ?", Bind::Int(t.as_micros()));
        }
        if let Some(id) = &f.before_id {
            w.add("id < ?", Bind::Text(id.to_string()));
        }
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM compliance_cases{} ORDER BY id DESC LIMIT {limit}",
            w.sql()
        );
        let rows = w.fetch_all(self.db.reader(), sql).await?;
        let cases = rows.iter().map(case_from_row).collect::<Result<Vec<_>, _>>()?;
        self.with_approvals(cases).await
    }

    async fn update_case(&self, change: CaseChange<'_>) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        write_case_change(&mut tx, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attach_document(
        &self,
        scope: &Scope,
        doc: &DocumentRecord,
        case: Option<CaseChange<'_>>,
        records: &EffectRecords,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        match case {
            Some(change) => write_case_change(&mut tx, &change).await?,
            None => insert_document_row(&mut tx, doc).await?,
        }
        write_effect_records(&mut tx, scope, Some(records), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_notes(&self, case: &CaseId) -> Result<Vec<CaseNote>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, case_id, author_id, body, created_at FROM case_notes WHERE case_id = $1 ORDER BY id",
        )
        .bind(case.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CaseNote {
                    id: parse(CaseNoteId::parse(&r.try_get::<String, _>("id")?))?,
                    case_id: parse(CaseId::parse(&r.try_get::<String, _>("case_id")?))?,
                    author_id: r
                        .try_get::<Option<String>, _>("author_id")?
                        .map(|a| parse(UserId::parse(&a)))
                        .transpose()?,
                    body: r.try_get("body")?,
                    created_at: ts(r, "created_at")?,
                })
            })
            .collect()
    }

    async fn list_documents(&self, cardholder: &CardholderId) -> Result<Vec<DocumentRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE cardholder_id = $1 ORDER BY id"
        )))
        .bind(cardholder.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(document_from_row).collect()
    }

    async fn scope_of(&self, object: ScopedObject<'_>) -> Result<Scope, StoreError> {
        let (sql, id) = match object {
            ScopedObject::Cardholder(id) => (
                "SELECT tenant_id, environment FROM cardholders WHERE id = $1",
                id.as_str(),
            ),
            ScopedObject::Program(id) => ("SELECT tenant_id, environment FROM programs WHERE id = $1", id.as_str()),
        };
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(Scope {
            tenant_id: parse(TenantId::parse(&row.try_get::<String, _>("tenant_id")?))?,
            environment: Environment::parse(&row.try_get::<String, _>("environment")?)
                .ok_or_else(|| StoreError::corrupt("environment"))?,
        })
    }

    async fn get_document(&self, id: &DocumentId) -> Result<DocumentRecord, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        document_from_row(&row)
    }
}
