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
    async fn insert_data_key(&self, key: &WrappedDataKey, now: Timestamp)
    -> Result<(), StoreError>;
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
                    id: DataKeyId::parse(&row.try_get::<String, _>("id")?)
                        .map_err(StoreError::other)?,
                    kek_id: row.try_get("kek_id")?,
                    wrapped: row.try_get("wrapped")?,
                })
            })
            .collect()
    }

    async fn insert_data_key(
        &self,
        key: &WrappedDataKey,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO data_keys (id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key.id.as_str())
        .bind(key.kek_id.as_str())
        .bind(key.wrapped.as_str())
        .bind(now.as_micros())
        .execute(self.db.writer())
        .await?;
        Ok(())
    }
}
