//! The audit log: appended inside the caller's transaction where the change has one, chained
//! through the `audit_head` row so concurrent writers (several processes too) form one chain.

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::audit::{ActorKind, AuditEntry, AuditRecord, ChainBreak, ChainVerifier, Outcome, entry_hash};
use cardplane_domain::ids::AuditEntryId;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::sql::{Bind, Filters, ts};
use crate::{SqlStore, StoreError};

/// Filters for `/ops/audit`; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub tenant_id: Option<String>,
    pub object_id: Option<String>,
    /// An exact action, or a prefix when it ends with `*` (`session.*`).
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Entries older than this sequence number (keyset pagination, newest first).
    pub before_seq: Option<i64>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, record: &AuditRecord) -> Result<AuditEntry, StoreError>;
    async fn list_audit(&self, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// Walks the whole chain: `Ok(Ok(entries))` when intact, `Ok(Err(break))` at the first break.
    async fn verify_audit(&self) -> Result<Result<(i64, String), ChainBreak>, StoreError>;
}

/// Takes the next place in the chain and writes `record` there, in the caller's transaction.
pub(crate) async fn append_audit(conn: &mut AnyConnection, record: &AuditRecord) -> Result<AuditEntry, StoreError> {
    // Returning the new seq and the still-old hash; the row stays locked until commit, which is
    // what orders the chain across connections and processes.
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let id = AuditEntryId::generate().to_string();
    let hash = entry_hash(&prev_hash, seq, &id, record);
    sqlx::query(
        "INSERT INTO audit_log (seq, id, occurred_at, actor_kind, actor_id, tenant_id, environment, action, \
         object_type, object_id, outcome, status, origin_ip, request_id, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(seq)
    .bind(id.as_str())
    .bind(record.occurred_at.as_micros())
    .bind(record.actor_kind.as_str())
    .bind(record.actor_id.as_deref())
    .bind(record.tenant_id.as_deref())
    .bind(record.environment.as_deref())
    .bind(record.action.as_str())
    .bind(record.object_type.as_deref())
    .bind(record.object_id.as_deref())
    .bind(record.outcome.as_str())
    .bind(record.status.map(i64::from))
    .bind(record.origin_ip.as_deref())
    .bind(record.request_id.as_deref())
    .bind(record.details.to_string())
    .bind(prev_hash.as_str())
    .bind(hash.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(hash.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(AuditEntry {
        seq,
        id,
        record: record.clone(),
        prev_hash,
        hash,
    })
}

const COLUMNS: &str = "seq, id, occurred_at, actor_kind, actor_id, tenant_id, environment, action, object_type, \
     object_id, outcome, status, origin_ip, request_id, details, prev_hash, hash";

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    let details: String = row.try_get("details")?;
    let status: Option<i64> = row.try_get("status")?;
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        record: AuditRecord {
            occurred_at: ts(row, "occurred_at")?,
            actor_kind: ActorKind::parse(&row.try_get::<String, _>("actor_kind")?)
                .ok_or_else(|| StoreError::corrupt("audit actor kind"))?,
            actor_id: row.try_get("actor_id")?,
            tenant_id: row.try_get("tenant_id")?,
            environment: row.try_get("environment")?,
            action: row.try_get("action")?,
            object_type: row.try_get("object_type")?,
            object_id: row.try_get("object_id")?,
            outcome: Outcome::parse(&row.try_get::<String, _>("outcome")?)
                .ok_or_else(|| StoreError::corrupt("audit outcome"))?,
            status: status
                .map(|s| u16::try_from(s).map_err(|_| StoreError::corrupt("audit status")))
                .transpose()?,
            origin_ip: row.try_get("origin_ip")?,
            request_id: row.try_get("request_id")?,
            // An edited details column must reach the verifier as it is, not as an error.
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const VERIFY_BATCH: i64 = 1000;

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<AuditEntry, StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let entry = append_audit(&mut tx, record).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn list_audit(&self, f: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let mut w = Filters::default();
        if let Some(v) = &f.actor_id {
            w.add("actor_id = ?", Bind::Text(v.clone()));
        }
        if let Some(v) = &f.tenant_id {
            w.add("tenant_id = ?", Bind::Text(v.clone()));
        }
        if let Some(v) = &f.object_id {
            w.add("object_id = ?", Bind::Text(v.clone()));
        }
        match f.action.as_deref().map(|a| (a, a.strip_suffix('*'))) {
            // A prefix match without LIKE, whose case rules differ between the backends.
            Some((_, Some(prefix))) => w.add("substr(action, 1, length(?)) = ?", Bind::Text(prefix.to_owned())),
            Some((exact, None)) => w.add("action = ?", Bind::Text(exact.to_owned())),
            None => {}
        }
        if let Some(o) = f.outcome {
            w.add("outcome = ?", Bind::Text(o.as_str().to_owned()));
        }
        if let Some(t) = f.since {
            w.add("occurred_at >= ?", Bind::Int(t.as_micros()));
        }
        if let Some(t) = f.until {
            w.add("occurred_at < ?", Bind::Int(t.as_micros()));
        }
        if let Some(s) = f.before_seq {
            w.add("seq < ?", Bind::Int(s));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log{} ORDER BY seq DESC LIMIT {limit}",
            w.sql()
        );
        let rows = w.fetch_all(self.db.reader(), sql).await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn verify_audit(&self) -> Result<Result<(i64, String), ChainBreak>, StoreError> {
        // One snapshot: the head and the rows it covers are read in the same transaction.
        let mut tx = self.db.reader().begin().await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        let mut verifier = ChainVerifier::default();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT {VERIFY_BATCH}"
            )))
            .bind(after)
            .bind(head_seq)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let entry = entry_from_row(row)?;
                if let Err(b) = verifier.check(&entry) {
                    return Ok(Err(b));
                }
                after = entry.seq;
            }
        }
        // Rows past the head were written by someone who did not move it.
        let beyond: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE seq > $1")
            .bind(head_seq)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if beyond > 0 {
            return Ok(Err(ChainBreak::Head));
        }
        Ok(verifier.finish(head_seq, &head_hash).map(|n| (n, head_hash)))
    }
}
