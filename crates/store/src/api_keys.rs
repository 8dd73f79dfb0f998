use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::{ApiKey, Permission};
use cardplane_domain::event::Event;
use cardplane_domain::ids::{ApiKeyId, TenantId};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::effects::{insert_events, write_effect_records};
use crate::sql::{ListSpec, list_page, opt_ts, ts};
use crate::{EffectRecords, Scope, SqlStore, StoreError};

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Unscoped: authentication looks a key up by its id before any scope is known.
    async fn find_api_key(&self, id: &ApiKeyId) -> Result<ApiKey, StoreError>;
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError>;
    async fn get_api_key(&self, scope: &Scope, id: &ApiKeyId) -> Result<ApiKey, StoreError>;
    async fn list_api_keys(&self, scope: &Scope, page: &PageRequest) -> Result<Page<ApiKey>, StoreError>;
    async fn insert_api_key(
        &self,
        scope: &Scope,
        key: &ApiKey,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Revokes an active key; `NotFound` if it is not active in this scope any more.
    async fn revoke_api_key(
        &self,
        scope: &Scope,
        id: &ApiKeyId,
        now: Timestamp,
        events: &[Event],
        response: Option<&EffectRecords>,
    ) -> Result<(), StoreError>;
}

const COLUMNS: &str =
    "id, tenant_id, environment, name, secret_hash, secret_last4, permissions, created_at, revoked_at, last_used_at";

fn key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let env: String = row.try_get("environment")?;
    let perms: String = row.try_get("permissions")?;
    let permissions = perms
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| Permission::parse(p).ok_or_else(|| StoreError::corrupt("api key permission")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApiKey {
        id: ApiKeyId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| StoreError::corrupt("api key environment"))?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        secret_last4: row.try_get("secret_last4")?,
        permissions,
        created_at: ts(row, "created_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

pub(crate) async fn insert_api_key_row(conn: &mut AnyConnection, key: &ApiKey) -> Result<(), StoreError> {
    let permissions: Vec<&str> = key.permissions.iter().map(|p| p.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, environment, name, secret_hash, secret_last4, permissions, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(key.id.as_str())
    .bind(key.tenant_id.as_str())
    .bind(key.environment.as_str())
    .bind(key.name.as_str())
    .bind(key.secret_hash.as_str())
    .bind(key.secret_last4.as_str())
    .bind(permissions.join(","))
    .bind(key.created_at.as_micros())
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    async fn find_api_key(&self, id: &ApiKeyId) -> Result<ApiKey, StoreError> {
        let row = sqlx::query("SELECT id, tenant_id, environment, name, secret_hash, secret_last4, permissions, created_at, revoked_at, last_used_at FROM api_keys WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.db.reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        key_from_row(&row)
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn get_api_key(&self, scope: &Scope, id: &ApiKeyId) -> Result<ApiKey, StoreError> {
        let row = sqlx::query("SELECT id, tenant_id, environment, name, secret_hash, secret_last4, permissions, created_at, revoked_at, last_used_at FROM api_keys WHERE tenant_id = $1 AND environment = $2 AND id = $3")
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(id.as_str())
            .fetch_optional(self.db.reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        key_from_row(&row)
    }

    async fn list_api_keys(&self, scope: &Scope, page: &PageRequest) -> Result<Page<ApiKey>, StoreError> {
        let spec = ListSpec {
            table: "api_keys",
            columns: COLUMNS,
            filter: None,
        };
        list_page(self.db.reader(), spec, scope, page, key_from_row).await
    }

    async fn insert_api_key(
        &self,
        scope: &Scope,
        key: &ApiKey,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        insert_api_key_row(&mut tx, key).await?;
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_api_key(
        &self,
        scope: &Scope,
        id: &ApiKeyId,
        now: Timestamp,
        events: &[Event],
        response: Option<&EffectRecords>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $4 WHERE tenant_id = $1 AND environment = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
