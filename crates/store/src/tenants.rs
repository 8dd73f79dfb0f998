use async_trait::async_trait;
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::event::Event;
use cardplane_domain::ids::TenantId;
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use sqlx::Row;

use crate::api_keys::insert_api_key_row;
use crate::effects::insert_events;
use crate::sql::ts;
use crate::{SqlStore, StoreError};

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant with its first API keys, atomically.
    async fn create_tenant(&self, tenant: &Tenant, keys: &[ApiKey], events: &[Event]) -> Result<(), StoreError>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Tenant, StoreError>;
    /// Every tenant, oldest first (operators' view; tenants are few).
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
}

/// A tenant with its first keys and their events, inside the caller's transaction.
pub(crate) async fn insert_tenant_rows(
    conn: &mut sqlx::AnyConnection,
    tenant: &Tenant,
    keys: &[ApiKey],
    events: &[Event],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tenants (id, name, api_version, created_at, rate_limit_per_second) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.id.as_str())
    .bind(tenant.name.as_str())
    .bind(tenant.api_version.as_str())
    .bind(tenant.created_at.as_micros())
    .bind(tenant.rate_limit_per_second.map(i64::from))
    .execute(&mut *conn)
    .await?;
    for key in keys {
        insert_api_key_row(conn, key).await?;
    }
    insert_events(conn, events).await
}

#[async_trait]
impl TenantStore for SqlStore {
    async fn create_tenant(&self, tenant: &Tenant, keys: &[ApiKey], events: &[Event]) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        insert_tenant_rows(&mut tx, tenant, keys, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Tenant, StoreError> {
        let row =
            sqlx::query("SELECT id, name, api_version, created_at, rate_limit_per_second FROM tenants WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(self.db.reader())
                .await?
                .ok_or(StoreError::NotFound)?;
        tenant_from_row(&row)
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, api_version, created_at, rate_limit_per_second FROM tenants ORDER BY id")
                .fetch_all(self.db.reader())
                .await?;
        rows.iter().map(tenant_from_row).collect()
    }
}

fn tenant_from_row(row: &sqlx::any::AnyRow) -> Result<Tenant, StoreError> {
    let version: String = row.try_get("api_version")?;
    Ok(Tenant {
        id: TenantId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        name: row.try_get("name")?,
        // A version we no longer support falls forward to the current one.
        api_version: ApiVersion::parse(&version).unwrap_or_else(ApiVersion::current),
        created_at: ts(row, "created_at")?,
        rate_limit_per_second: row
            .try_get::<Option<i64>, _>("rate_limit_per_second")?
            .and_then(|n| u32::try_from(n).ok()),
    })
}
