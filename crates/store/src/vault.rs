use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::ids::DataKeyId;
use cardplane_domain::vault::WrappedDataKey;
use sqlx::Row;

use crate::{SqlStore, StoreError};

/// Wrapped data keys. Clear keys never reach the database.
#[async_trait]
pub trait VaultStore: Send + Sync {
    /// Oldest first; the newest is the active one.
    async fn list_data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError>;
    async fn insert_data_key(&self, key: &WrappedDataKey, now: Timestamp) -> Result<(), StoreError>;
    /// Replaces the wrapping of every given data key at once (KEK rotation).
    async fn rewrap_data_keys(&self, keys: &[WrappedDataKey]) -> Result<(), StoreError>;
    async fn get_vault_secret(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Stores a sealed secret unless one exists; returns the one that is stored either way.
    async fn put_vault_secret(&self, name: &str, sealed: &str, now: Timestamp) -> Result<String, StoreError>;
}

#[async_trait]
impl VaultStore for SqlStore {
    async fn list_data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        let rows = sqlx::query("SELECT id, kek_id, wrapped FROM data_keys ORDER BY id")
            .fetch_all(self.db.reader())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(WrappedDataKey {
                    id: DataKeyId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
                    kek_id: row.try_get("kek_id")?,
                    wrapped: row.try_get("wrapped")?,
                })
            })
            .collect()
    }

    async fn insert_data_key(&self, key: &WrappedDataKey, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key.id.as_str())
            .bind(key.kek_id.as_str())
            .bind(key.wrapped.as_str())
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn rewrap_data_keys(&self, keys: &[WrappedDataKey]) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        for k in keys {
            let done = sqlx::query("UPDATE data_keys SET kek_id = $2, wrapped = $3 WHERE id = $1")
                .bind(k.id.as_str())
                .bind(k.kek_id.as_str())
                .bind(k.wrapped.as_str())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_vault_secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT sealed FROM vault_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db.writer())
            .await?;
        Ok(row.map(|r| r.try_get("sealed")).transpose()?)
    }

    async fn put_vault_secret(&self, name: &str, sealed: &str, now: Timestamp) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO vault_secrets (name, sealed, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(sealed)
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        self.get_vault_secret(name).await?.ok_or(StoreError::NotFound)
    }
}
