//! Dispute rows: their columns, mappings, writes inside a caller's transaction, and the filters
//! of the lists.

use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{
    Disposition, Dispute, DisputePolicy, DisputeReason, DisputeState, DisputeStatus, ProvisionalCreditPolicy,
    ReasonFamily,
};
use cardplane_domain::ids::{AccountId, CardId, CardholderId, DisputeId, ProgramId, TenantId, TransactionId, UserId};
use cardplane_domain::money::Currency;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::records::{DisputeFilter, DisputeNote, DisputeRecord, Evidence};
use crate::StoreError;
use crate::sql::{Bind, Filters, opt_ts, ts};

pub(super) const COLUMNS: &str = "id, tenant_id, environment, transaction_id, card_id, cardholder_id, program_id, account_id, \
    currency, amount, reason, network_reason_code, customer_note, customer_filed_at, status, disposition, recovered, \
    resolution_reason, provisional_credit, provisional_credit_due_at, resolution_due_at, deadline_flagged_at, \
    assignee_id, submitted_at, representment_at, pre_arbitration_at, arbitration_at, closed_at, created_at, \
    updated_at, version";

pub(super) fn parse_id<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(StoreError::other)
}

pub(super) fn dispute_from_row(row: &AnyRow) -> Result<DisputeRecord, StoreError> {
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

pub(super) fn policy_from_row(row: &AnyRow) -> Result<DisputePolicy, StoreError> {
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

pub(super) fn filters_of(f: &DisputeFilter) -> Filters {
    let mut w = Filters::default();
    if let Some(scope) = &f.scope {
        w.add("tenant_id = ?", Bind::Text(scope.tenant_id.to_string()));
        w.add("environment = ?", Bind::Text(scope.environment.as_str().to_owned()));
    }
    if let Some(tenant) = &f.tenant_id {
        w.add("tenant_id = ?", Bind::Text(tenant.to_string()));
    }
    if !f.statuses.is_empty() {
        // A closed set of names (the enum's wire names): safe to inline.
        let names: Vec<String> = f.statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
        w.raw(format!("status IN ({})", names.join(", ")));
    }
    let ids = [
        ("card_id = ?", f.card_id.as_ref().map(|v| v.to_string())),
        ("cardholder_id = ?", f.cardholder_id.as_ref().map(|v| v.to_string())),
        ("program_id = ?", f.program_id.as_ref().map(|v| v.to_string())),
        ("assignee_id = ?", f.assignee_id.as_ref().map(|v| v.to_string())),
    ];
    for (clause, value) in ids {
        if let Some(v) = value {
            w.add(clause, Bind::Text(v));
        }
    }
    if let Some(v) = f.created_gte {
        w.add("created_at >= ?", Bind::Int(v.as_micros()));
    }
    if let Some(v) = f.created_lt {
        w.add("created_at < ?", Bind::Int(v.as_micros()));
    }
    w
}

pub(super) async fn insert_dispute_row(conn: &mut AnyConnection, d: &Dispute) -> Result<(), StoreError> {
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

pub(super) async fn update_dispute_row(
    conn: &mut AnyConnection,
    r: &DisputeRecord,
    expected: i64,
) -> Result<(), StoreError> {
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

pub(super) async fn insert_evidence_row(conn: &mut AnyConnection, e: &Evidence) -> Result<(), StoreError> {
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

pub(super) async fn insert_note_row(conn: &mut AnyConnection, n: &DisputeNote) -> Result<(), StoreError> {
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
pub(super) async fn disputed_so_far(
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
