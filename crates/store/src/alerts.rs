//! Fraud alerts: read by the custodian and worked by operators. The engine raises them in the
//! authorization's own batch transaction; a change here (assignment, resolution) is optimistic on
//! the alert's version and is written with its events, the audit entry and, for a resolution
//! that freezes the card, the card's change, in one transaction.

use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::alert::{Alert, AlertKind, AlertResolution, AlertStatus};
use cardplane_domain::event::Event;
use cardplane_domain::ids::{
    AlertId, AuthorizationRuleId, CardId, CardholderId, ProgramId, TenantId, TransactionId, UserId,
};
use cardplane_domain::page::{Cursor, Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::cards::{CardChange, write_card_change};
use crate::effects::{insert_events, write_effect_records};
use crate::sql::{Bind, Filters, opt_ts, ts};
use crate::{EffectRecords, Scope, SqlStore, StoreError};

const COLUMNS: &str = "id, tenant_id, environment, kind, status, card_id, cardholder_id, program_id, transaction_id, \
    rule_id, rule_version, risk_score, detail, assignee_id, resolution, resolution_note, card_frozen, resolved_by, \
    resolved_at, created_at, updated_at, version";

/// The custodian's and the queue's filters.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// None: every tenant (operators).
    pub scope: Option<Scope>,
    /// One tenant, both environments (operators).
    pub tenant_id: Option<TenantId>,
    pub statuses: Vec<AlertStatus>,
    pub kind: Option<AlertKind>,
    pub card_id: Option<CardId>,
    pub assignee_id: Option<UserId>,
}

/// One change to an alert and everything written with it.
pub struct AlertChange<'a> {
    pub next: &'a Alert,
    pub expected_version: i64,
    /// The card frozen by a fraud resolution.
    pub card: Option<(&'a Scope, &'a CardChange)>,
    pub events: &'a [Event],
    pub records: Option<&'a EffectRecords>,
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    /// An alert raised outside an authorization batch (tools and tests; the engine writes its
    /// own in the batch transaction), with its events.
    async fn insert_alert(&self, alert: &Alert, events: &[Event]) -> Result<(), StoreError>;
    async fn get_alert(&self, scope: Option<&Scope>, id: &AlertId) -> Result<Alert, StoreError>;
    /// Newest first, keyset pages.
    async fn list_alerts(&self, filter: &AlertFilter, page: &PageRequest) -> Result<Page<Alert>, StoreError>;
    /// Unresolved first, then oldest first (the operators' queue).
    async fn alert_queue(&self, filter: &AlertFilter, limit: u32) -> Result<Vec<Alert>, StoreError>;
    /// `Conflict` when the alert (or the card) moved since it was read.
    async fn change_alert(&self, change: AlertChange<'_>, now: Timestamp) -> Result<(), StoreError>;
}

fn filters_of(f: &AlertFilter) -> Filters {
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
    if let Some(kind) = f.kind {
        w.add("kind = ?", Bind::Text(kind.as_str().to_owned()));
    }
    if let Some(card) = &f.card_id {
        w.add("card_id = ?", Bind::Text(card.to_string()));
    }
    if let Some(a) = &f.assignee_id {
        w.add("assignee_id = ?", Bind::Text(a.to_string()));
    }
    w
}

fn alert_from_row(row: &AnyRow) -> Result<Alert, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored alert {what}"));
    let text = |c: &str| row.try_get::<String, _>(c);
    let opt = |c: &str| row.try_get::<Option<String>, _>(c);
    Ok(Alert {
        id: AlertId::parse(&text("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&text("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&text("environment")?).ok_or_else(|| bad("environment"))?,
        kind: AlertKind::parse(&text("kind")?).ok_or_else(|| bad("kind"))?,
        status: AlertStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?,
        card_id: CardId::parse(&text("card_id")?).map_err(StoreError::other)?,
        cardholder_id: CardholderId::parse(&text("cardholder_id")?).map_err(StoreError::other)?,
        program_id: ProgramId::parse(&text("program_id")?).map_err(StoreError::other)?,
        transaction_id: TransactionId::parse(&text("transaction_id")?).map_err(StoreError::other)?,
        rule_id: opt("rule_id")?
            .map(|r| AuthorizationRuleId::parse(&r).map_err(StoreError::other))
            .transpose()?,
        rule_version: row.try_get("rule_version")?,
        risk_score: row.try_get("risk_score")?,
        detail: text("detail")?,
        assignee: opt("assignee_id")?
            .map(|a| UserId::parse(&a).map_err(StoreError::other))
            .transpose()?,
        resolution: opt("resolution")?
            .map(|r| AlertResolution::parse(&r).ok_or_else(|| bad("resolution")))
            .transpose()?,
        resolution_note: opt("resolution_note")?,
        card_frozen: row.try_get::<i64, _>("card_frozen")? == 1,
        resolved_by: opt("resolved_by")?
            .map(|a| UserId::parse(&a).map_err(StoreError::other))
            .transpose()?,
        resolved_at: opt_ts(row, "resolved_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Inserts alerts inside the caller's transaction.
pub(crate) async fn insert_alert_rows(conn: &mut AnyConnection, alerts: &[Alert]) -> Result<(), StoreError> {
    for a in alerts {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO alerts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             $16, $17, $18, $19, $20, $21, $22)"
        )))
        .bind(a.id.as_str())
        .bind(a.tenant_id.as_str())
        .bind(a.environment.as_str())
        .bind(a.kind.as_str())
        .bind(a.status.as_str())
        .bind(a.card_id.as_str())
        .bind(a.cardholder_id.as_str())
        .bind(a.program_id.as_str())
        .bind(a.transaction_id.as_str())
        .bind(a.rule_id.as_ref().map(|r| r.as_str()))
        .bind(a.rule_version)
        .bind(a.risk_score)
        .bind(a.detail.as_str())
        .bind(a.assignee.as_ref().map(|u| u.as_str()))
        .bind(a.resolution.map(|r| r.as_str()))
        .bind(a.resolution_note.as_deref())
        .bind(i64::from(a.card_frozen))
        .bind(a.resolved_by.as_ref().map(|u| u.as_str()))
        .bind(a.resolved_at.map(Timestamp::as_micros))
        .bind(a.created_at.as_micros())
        .bind(a.updated_at.as_micros())
        .bind(a.version)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl AlertStore for SqlStore {
    async fn insert_alert(&self, alert: &Alert, events: &[Event]) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        insert_alert_rows(&mut tx, std::slice::from_ref(alert)).await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_alert(&self, scope: Option<&Scope>, id: &AlertId) -> Result<Alert, StoreError> {
        let mut w = filters_of(&AlertFilter {
            scope: scope.cloned(),
            ..AlertFilter::default()
        });
        w.add("id = ?", Bind::Text(id.to_string()));
        let sql = format!("SELECT {COLUMNS} FROM alerts{}", w.sql());
        let rows = w.fetch_all(self.db.reader(), sql).await?;
        rows.first().map(alert_from_row).ok_or(StoreError::NotFound)?
    }

    async fn list_alerts(&self, filter: &AlertFilter, page: &PageRequest) -> Result<Page<Alert>, StoreError> {
        let base = filters_of(filter);
        let total_sql = format!("SELECT COUNT(*) AS n FROM alerts{}", base.sql());
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
            "SELECT {COLUMNS} FROM alerts{} ORDER BY id {order} LIMIT {}",
            w.sql(),
            i64::from(page.limit) + 1
        );
        let rows = w.fetch_all(self.db.reader(), sql).await?;
        let has_more = rows.len() > page.limit as usize;
        let mut items = rows
            .iter()
            .take(page.limit as usize)
            .map(alert_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(page.cursor, Cursor::Before(_)) {
            items.reverse();
        }
        Ok(Page { items, has_more, total })
    }

    async fn alert_queue(&self, filter: &AlertFilter, limit: u32) -> Result<Vec<Alert>, StoreError> {
        let w = filters_of(filter);
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts{} ORDER BY CASE WHEN status = 'resolved' THEN 1 ELSE 0 END, id LIMIT {}",
            w.sql(),
            i64::from(limit)
        );
        w.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(alert_from_row)
            .collect()
    }

    async fn change_alert(&self, c: AlertChange<'_>, now: Timestamp) -> Result<(), StoreError> {
        let a = c.next;
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE alerts SET status = $2, assignee_id = $3, resolution = $4, resolution_note = $5, card_frozen = $6, \
             resolved_by = $7, resolved_at = $8, updated_at = $9, version = $10 WHERE id = $1 AND version = $11",
        )
        .bind(a.id.as_str())
        .bind(a.status.as_str())
        .bind(a.assignee.as_ref().map(|u| u.as_str()))
        .bind(a.resolution.map(|r| r.as_str()))
        .bind(a.resolution_note.as_deref())
        .bind(i64::from(a.card_frozen))
        .bind(a.resolved_by.as_ref().map(|u| u.as_str()))
        .bind(a.resolved_at.map(Timestamp::as_micros))
        .bind(a.updated_at.as_micros())
        .bind(a.version)
        .bind(c.expected_version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict {
                constraint: "alerts_version".into(),
            });
        }
        if let Some((scope, card)) = c.card {
            write_card_change(&mut tx, scope, card).await?;
        }
        insert_events(&mut tx, c.events).await?;
        let scope = Scope {
            tenant_id: a.tenant_id.clone(),
            environment: a.environment,
        };
        write_effect_records(&mut tx, &scope, c.records, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
