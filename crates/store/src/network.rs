//! Network credentials (the card network's own, separate from tenant API keys) and spend
//! controls.

use async_trait::async_trait;
use cardplane_domain::controls::SpendControl;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{NetworkCredentialId, SpendControlId};
use cardplane_domain::page::{Page, PageRequest};
use cardplane_domain::{Environment, Timestamp};
use sqlx::Row;

use crate::effects::{insert_events, write_effect_records};
use crate::rows::controls::{CONTROL_COLUMNS, control_from_row};
use crate::sql::{ListSpec, list_page, opt_ts, ts};
use crate::{EffectRecords, Scope, SqlStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkCredential {
    pub id: NetworkCredentialId,
    pub environment: Environment,
    pub name: String,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[async_trait]
pub trait NetworkStore: Send + Sync {
    async fn insert_network_credential(&self, credential: &NetworkCredential) -> Result<(), StoreError>;
    async fn find_network_credential(&self, id: &NetworkCredentialId) -> Result<NetworkCredential, StoreError>;
    async fn insert_spend_control(
        &self,
        scope: &Scope,
        control: &SpendControl,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn set_spend_control_active(
        &self,
        scope: &Scope,
        control: &SpendControl,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn get_spend_control(&self, scope: &Scope, id: &SpendControlId) -> Result<SpendControl, StoreError>;
    async fn list_spend_controls(&self, scope: &Scope, page: &PageRequest) -> Result<Page<SpendControl>, StoreError>;
    /// Active controls on any of these scope ids (a card, its cardholder, its program).
    async fn active_spend_controls(&self, scope_ids: &[&str]) -> Result<Vec<SpendControl>, StoreError>;
}

#[async_trait]
impl NetworkStore for SqlStore {
    async fn insert_network_credential(&self, c: &NetworkCredential) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO network_credentials (id, environment, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(c.id.as_str())
            .bind(c.environment.as_str())
            .bind(c.name.as_str())
            .bind(c.secret_hash.as_str())
            .bind(c.created_at.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn find_network_credential(&self, id: &NetworkCredentialId) -> Result<NetworkCredential, StoreError> {
        let row = sqlx::query(
            "SELECT id, environment, name, secret_hash, created_at, revoked_at FROM network_credentials WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        let env: String = row.try_get("environment")?;
        Ok(NetworkCredential {
            id: id.clone(),
            environment: Environment::parse(&env).ok_or_else(|| StoreError::corrupt("credential environment"))?,
            name: row.try_get("name")?,
            secret_hash: row.try_get("secret_hash")?,
            created_at: ts(&row, "created_at")?,
            revoked_at: opt_ts(&row, "revoked_at")?,
        })
    }

    async fn insert_spend_control(
        &self,
        scope: &Scope,
        c: &SpendControl,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO spend_controls ({CONTROL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(c.id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(c.scope_kind.as_str())
        .bind(c.scope_id.as_str())
        .bind(c.limit.amount_limit)
        .bind(c.limit.count_limit)
        .bind(c.limit.window.as_str())
        .bind(c.limit.window.trailing_secs())
        .bind(serde_json::to_string(&c.limit.mccs).unwrap_or_default())
        .bind(i16::from(c.active))
        .bind(c.created_at.as_micros())
        .bind(c.updated_at.as_micros())
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_spend_control_active(
        &self,
        scope: &Scope,
        c: &SpendControl,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query("UPDATE spend_controls SET active = $4, updated_at = $5 WHERE tenant_id = $1 AND environment = $2 AND id = $3")
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(c.id.as_str())
            .bind(i16::from(c.active))
            .bind(c.updated_at.as_micros())
            .execute(&mut *tx)
            .await?;
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_spend_control(&self, scope: &Scope, id: &SpendControlId) -> Result<SpendControl, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONTROL_COLUMNS} FROM spend_controls WHERE tenant_id = $1 AND environment = $2 AND id = $3"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        control_from_row(&row)
    }

    async fn list_spend_controls(&self, scope: &Scope, page: &PageRequest) -> Result<Page<SpendControl>, StoreError> {
        let spec = ListSpec {
            table: "spend_controls",
            columns: CONTROL_COLUMNS,
            filter: None,
        };
        list_page(self.db.reader(), spec, scope, page, control_from_row).await
    }

    async fn active_spend_controls(&self, scope_ids: &[&str]) -> Result<Vec<SpendControl>, StoreError> {
        if scope_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (0..scope_ids.len()).map(|i| format!("${}", i + 1)).collect();
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONTROL_COLUMNS} FROM spend_controls WHERE active = 1 AND scope_id IN ({}) ORDER BY id",
            list.join(", ")
        )));
        for id in scope_ids {
            q = q.bind(*id);
        }
        q.fetch_all(self.db.reader())
            .await?
            .iter()
            .map(control_from_row)
            .collect()
    }
}

use sqlx::AssertSqlSafe;
