use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{EventId, TenantId};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{ListSpec, list_page, ts};
use crate::{Scope, SqlStore, StoreError};

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Newest first; only events of `of_type` when given.
    async fn list_events(
        &self,
        scope: &Scope,
        of_type: Option<EventType>,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError>;
    async fn get_event(&self, scope: &Scope, id: &EventId) -> Result<Event, StoreError>;
    /// The events about one object (a transaction, a card), oldest first, at most `limit`.
    async fn events_for_object(&self, scope: &Scope, object_id: &str, limit: u32) -> Result<Vec<Event>, StoreError>;
}

const COLUMNS: &str = "id, tenant_id, environment, type, object_id, data, created_at";

fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let env: String = row.try_get("environment")?;
    let ty: String = row.try_get("type")?;
    let data: String = row.try_get("data")?;
    Ok(Event {
        id: EventId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| StoreError::corrupt("event environment"))?,
        event_type: EventType::parse(&ty).ok_or_else(|| StoreError::corrupt("event type"))?,
        object_id: row.try_get("object_id")?,
        data: serde_json::from_str(&data).map_err(StoreError::other)?,
        created_at: ts(row, "created_at")?,
    })
}

#[async_trait]
impl EventStore for SqlStore {
    async fn list_events(
        &self,
        scope: &Scope,
        of_type: Option<EventType>,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        let spec = ListSpec {
            table: "events",
            columns: COLUMNS,
            filter: of_type.map(|t| ("type", t.as_str())),
        };
        list_page(self.db.reader(), spec, scope, page, event_from_row).await
    }

    async fn get_event(&self, scope: &Scope, id: &EventId) -> Result<Event, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, environment, type, object_id, data, created_at FROM events \
             WHERE tenant_id = $1 AND environment = $2 AND id = $3",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        event_from_row(&row)
    }

    async fn events_for_object(&self, scope: &Scope, object_id: &str, limit: u32) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE object_id = $1 AND tenant_id = $2 AND environment = $3 \
             ORDER BY id LIMIT {}",
            i64::from(limit)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(object_id)
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }
}
