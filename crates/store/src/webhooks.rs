//! Webhook endpoints, the delivery outbox and the attempt log.
//!
//! Deliveries are derived from the event log inside the event's own transaction
//! (`network_batch::write_events`, under every event insert), so every event that commits has its
//! deliveries. Workers claim due deliveries with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! on SQLite every write goes through one writer, so the claim UPDATE alone is safe), deliver
//! outside any transaction, then record the attempt. A worker that dies mid-delivery leaves a
//! lease that expires, and the delivery is claimed again: at least once.

use async_trait::async_trait;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{EventId, TenantId, WebhookAttemptId, WebhookEndpointId};
use cardplane_domain::page::{Page, PageRequest};
use cardplane_domain::webhook::{DisabledReason, EnabledEvents, WebhookEndpoint};
use cardplane_domain::{Environment, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::Backend;
use crate::effects::{insert_events, write_effect_records};
use crate::sql::{ListSpec, list_page, opt_ts, ts};
use crate::{EffectRecords, Scope, SqlStore, StoreError};

/// Builds the idempotent response once the number of scheduled deliveries is known.
pub type RespondWith<'a> = &'a (dyn Fn(u64) -> Option<EffectRecords> + Send + Sync);

/// One attempt in the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAttempt {
    pub id: WebhookAttemptId,
    pub endpoint_id: WebhookEndpointId,
    pub event_id: EventId,
    pub event_type: String,
    pub attempt_number: i64,
    pub attempted_at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// When the next attempt is due; `None` when delivered or given up.
    pub next_attempt_at: Option<Timestamp>,
}

/// An endpoint as the console's webhook page shows it.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub id: String,
    pub tenant_id: String,
    pub environment: String,
    pub url: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<Timestamp>,
    /// Deliveries waiting for a (next) attempt.
    pub pending: i64,
    /// Deliveries given up on.
    pub failed: i64,
}

/// A delivery of an event about some object, as the console lists it.
#[derive(Debug, Clone)]
pub struct ObjectDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    /// pending, delivered or failed.
    pub state: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A delivery a worker has claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery_id: String,
    pub lease_token: String,
    pub scope: Scope,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub failing_since: Option<Timestamp>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event_id: EventId,
    pub event_type: String,
    pub event_object_id: String,
    pub event_data: String,
    pub event_created_at: Timestamp,
    pub event_sequence: Option<i64>,
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered,
    RetryAt(Timestamp),
    /// No retries left, or the endpoint asked us to stop (410).
    GaveUp,
}

/// What happens to the endpoint after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointOutcome {
    Healthy,
    Failing,
    /// Disable it (if still enabled) and append this event.
    Disable(DisabledReason, Box<Event>),
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt_id: WebhookAttemptId,
    pub attempt_number: u32,
    pub attempted_at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub delivery: DeliveryOutcome,
    pub endpoint: EndpointOutcome,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn insert_endpoint(
        &self,
        scope: &Scope,
        endpoint: &WebhookEndpoint,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn get_endpoint(&self, scope: &Scope, id: &WebhookEndpointId) -> Result<WebhookEndpoint, StoreError>;
    async fn list_endpoints(&self, scope: &Scope, page: &PageRequest) -> Result<Page<WebhookEndpoint>, StoreError>;
    /// Writes every mutable field (url, description, subscriptions, enabled, secrets).
    async fn update_endpoint(
        &self,
        scope: &Scope,
        endpoint: &WebhookEndpoint,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Deletes the endpoint with its pending deliveries and its delivery log.
    async fn delete_endpoint(
        &self,
        scope: &Scope,
        id: &WebhookEndpointId,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn list_attempts(
        &self,
        scope: &Scope,
        endpoint_id: &WebhookEndpointId,
        page: &PageRequest,
    ) -> Result<Page<WebhookAttempt>, StoreError>;
    /// Schedules the event again, now, for every enabled endpoint subscribed to it.
    async fn redeliver_event(
        &self,
        scope: &Scope,
        event_id: &EventId,
        now: Timestamp,
        respond: RespondWith<'_>,
    ) -> Result<u64, StoreError>;
    /// Schedules, now, every event created after `since` that the endpoint subscribes to.
    async fn replay_endpoint(
        &self,
        scope: &Scope,
        endpoint_id: &WebhookEndpointId,
        since: Timestamp,
        now: Timestamp,
        respond: RespondWith<'_>,
    ) -> Result<u64, StoreError>;

    /// Claims up to `limit` due deliveries of enabled endpoints until `lease_until`.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Logs an attempt and applies its outcome, if our lease still holds.
    async fn record_attempt(&self, due: &DueDelivery, record: &AttemptRecord) -> Result<(), StoreError>;
    /// Forgets attempts made before `before` and settled deliveries last touched before it.
    async fn purge_webhook_history(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Every tenant's endpoints (or one tenant's) with their delivery state, for the console: no
    /// secret is read.
    async fn endpoint_health(&self, tenant_id: Option<&str>, limit: u32) -> Result<Vec<EndpointHealth>, StoreError>;
    /// The deliveries of the events about one object (the console's transaction page), oldest
    /// first, at most `limit`.
    async fn deliveries_for_object(
        &self,
        scope: &Scope,
        object_id: &str,
        limit: u32,
    ) -> Result<Vec<ObjectDelivery>, StoreError>;
    /// The deliveries of one event, one per endpoint it went to, at most `limit`.
    async fn deliveries_for_event(
        &self,
        scope: &Scope,
        event_id: &EventId,
        limit: u32,
    ) -> Result<Vec<ObjectDelivery>, StoreError>;
    /// The attempts to deliver one event to one endpoint, newest first, at most `limit`.
    async fn delivery_attempts(
        &self,
        scope: &Scope,
        endpoint_id: &WebhookEndpointId,
        event_id: &EventId,
        limit: u32,
    ) -> Result<Vec<WebhookAttempt>, StoreError>;
}

const ENDPOINT_COLUMNS: &str = "id, tenant_id, environment, url, description, all_events, enabled, disabled_reason, \
     secret_sealed, previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at";

fn flag(b: bool) -> i16 {
    i16::from(b)
}

fn endpoint_from_row(row: &AnyRow, subscriptions: Vec<EventType>) -> Result<WebhookEndpoint, StoreError> {
    let env: String = row.try_get("environment")?;
    let all: i16 = row.try_get("all_events")?;
    let enabled: i16 = row.try_get("enabled")?;
    let reason: Option<String> = row.try_get("disabled_reason")?;
    Ok(WebhookEndpoint {
        id: WebhookEndpointId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| StoreError::corrupt("endpoint environment"))?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        enabled_events: if all == 1 {
            EnabledEvents::All
        } else {
            EnabledEvents::Only(subscriptions)
        },
        enabled: enabled == 1,
        disabled_reason: reason
            .map(|r| DisabledReason::parse(&r).ok_or_else(|| StoreError::corrupt("endpoint disabled_reason")))
            .transpose()?,
        secret_sealed: row.try_get("secret_sealed")?,
        previous_secret_sealed: row.try_get("previous_secret_sealed")?,
        previous_secret_expires_at: opt_ts(row, "previous_secret_expires_at")?,
        failing_since: opt_ts(row, "failing_since")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

async fn subscriptions(pool: &sqlx::AnyPool, id: &str) -> Result<Vec<EventType>, StoreError> {
    let rows = sqlx::query("SELECT event_type FROM webhook_endpoint_events WHERE endpoint_id = $1 ORDER BY event_type")
        .bind(id)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let t: String = r.try_get("event_type")?;
            EventType::parse(&t).ok_or_else(|| StoreError::corrupt("subscribed event type"))
        })
        .collect()
}

async fn write_subscriptions(conn: &mut AnyConnection, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM webhook_endpoint_events WHERE endpoint_id = $1")
        .bind(endpoint.id.as_str())
        .execute(&mut *conn)
        .await?;
    if let EnabledEvents::Only(types) = &endpoint.enabled_events {
        for t in types {
            sqlx::query("INSERT INTO webhook_endpoint_events (endpoint_id, event_type) VALUES ($1, $2)")
                .bind(endpoint.id.as_str())
                .bind(t.as_str())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

fn object_delivery_from_row(r: &AnyRow) -> Result<ObjectDelivery, StoreError> {
    Ok(ObjectDelivery {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

const ATTEMPT_COLUMNS: &str = "id, endpoint_id, event_id, event_type, attempt_number, attempted_at, status_code, latency_ms, error, next_attempt_at";

fn attempt_from_row(row: &AnyRow) -> Result<WebhookAttempt, StoreError> {
    let status: Option<i64> = row.try_get("status_code")?;
    Ok(WebhookAttempt {
        id: WebhookAttemptId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        endpoint_id: WebhookEndpointId::parse(&row.try_get::<String, _>("endpoint_id")?).map_err(StoreError::other)?,
        event_id: EventId::parse(&row.try_get::<String, _>("event_id")?).map_err(StoreError::other)?,
        event_type: row.try_get("event_type")?,
        attempt_number: row.try_get("attempt_number")?,
        attempted_at: ts(row, "attempted_at")?,
        status_code: status
            .map(|s| u16::try_from(s).map_err(|_| StoreError::corrupt("attempt status")))
            .transpose()?,
        latency_ms: row.try_get("latency_ms")?,
        error: row.try_get("error")?,
        next_attempt_at: opt_ts(row, "next_attempt_at")?,
    })
}

/// The claim statement: the one place the backends differ. PostgreSQL locks the chosen rows and
/// skips rows another worker is claiming; SQLite has one writer at a time, so the UPDATE alone
/// cannot race.
fn claim_sql(backend: Backend) -> &'static str {
    match backend {
        // A locking CTE is evaluated exactly once, so the LIMIT holds however the plan looks.
        Backend::Postgres => {
            "WITH due AS (\
             SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $3 AND (d.lease_until IS NULL OR d.lease_until <= $3) \
             AND e.enabled = 1 ORDER BY d.next_attempt_at LIMIT $4 FOR UPDATE OF d SKIP LOCKED) \
             UPDATE webhook_deliveries SET lease_token = $1, lease_until = $2 FROM due \
             WHERE webhook_deliveries.id = due.id RETURNING webhook_deliveries.id AS id"
        }
        Backend::Sqlite => {
            "UPDATE webhook_deliveries SET lease_token = $1, lease_until = $2 WHERE id IN (\
             SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $3 AND (d.lease_until IS NULL OR d.lease_until <= $3) \
             AND e.enabled = 1 ORDER BY d.next_attempt_at LIMIT $4) RETURNING id"
        }
    }
}

const UPSERT_DELIVERY: &str = "ON CONFLICT (id) DO UPDATE SET state = 'pending', attempts = 0, \
     next_attempt_at = excluded.next_attempt_at, lease_token = NULL, lease_until = NULL, updated_at = excluded.updated_at";

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_endpoint(
        &self,
        scope: &Scope,
        endpoint: &WebhookEndpoint,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, tenant_id, environment, url, description, all_events, enabled, \
             disabled_reason, secret_sealed, previous_secret_sealed, previous_secret_expires_at, failing_since, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(endpoint.id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_deref())
        .bind(flag(endpoint.enabled_events == EnabledEvents::All))
        .bind(flag(endpoint.enabled))
        .bind(endpoint.disabled_reason.map(|r| r.as_str()))
        .bind(endpoint.secret_sealed.as_str())
        .bind(endpoint.previous_secret_sealed.as_deref())
        .bind(endpoint.previous_secret_expires_at.map(Timestamp::as_micros))
        .bind(endpoint.failing_since.map(Timestamp::as_micros))
        .bind(endpoint.created_at.as_micros())
        .bind(endpoint.updated_at.as_micros())
        .execute(&mut *tx)
        .await?;
        write_subscriptions(&mut tx, endpoint).await?;
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_endpoint(&self, scope: &Scope, id: &WebhookEndpointId) -> Result<WebhookEndpoint, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND environment = $2 AND id = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(id.as_str())
            .fetch_optional(self.db.reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        let subs = subscriptions(self.db.reader(), id.as_str()).await?;
        endpoint_from_row(&row, subs)
    }

    async fn list_endpoints(&self, scope: &Scope, page: &PageRequest) -> Result<Page<WebhookEndpoint>, StoreError> {
        let spec = ListSpec {
            table: "webhook_endpoints",
            columns: ENDPOINT_COLUMNS,
            filter: None,
        };
        let page = list_page(self.db.reader(), spec, scope, page, |r| {
            endpoint_from_row(r, Vec::new())
        })
        .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for mut e in page.items {
            if e.enabled_events != EnabledEvents::All {
                e.enabled_events = EnabledEvents::Only(subscriptions(self.db.reader(), e.id.as_str()).await?);
            }
            items.push(e);
        }
        Ok(Page {
            items,
            has_more: page.has_more,
            total: page.total,
        })
    }

    async fn update_endpoint(
        &self,
        scope: &Scope,
        endpoint: &WebhookEndpoint,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = $4, description = $5, all_events = $6, enabled = $7, \
             disabled_reason = $8, secret_sealed = $9, previous_secret_sealed = $10, previous_secret_expires_at = $11, \
             failing_since = $12, updated_at = $13 WHERE tenant_id = $1 AND environment = $2 AND id = $3",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(endpoint.id.as_str())
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_deref())
        .bind(flag(endpoint.enabled_events == EnabledEvents::All))
        .bind(flag(endpoint.enabled))
        .bind(endpoint.disabled_reason.map(|r| r.as_str()))
        .bind(endpoint.secret_sealed.as_str())
        .bind(endpoint.previous_secret_sealed.as_deref())
        .bind(endpoint.previous_secret_expires_at.map(Timestamp::as_micros))
        .bind(endpoint.failing_since.map(Timestamp::as_micros))
        .bind(endpoint.updated_at.as_micros())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        write_subscriptions(&mut tx, endpoint).await?;
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_endpoint(
        &self,
        scope: &Scope,
        id: &WebhookEndpointId,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        // Children first: the schema cascades, but explicit deletes do not depend on the pragma.
        for table in ["webhook_attempts", "webhook_deliveries", "webhook_endpoint_events"] {
            let sql = format!(
                "DELETE FROM {table} WHERE endpoint_id IN (SELECT id FROM webhook_endpoints \
                 WHERE tenant_id = $1 AND environment = $2 AND id = $3)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(scope.tenant_id.as_str())
                .bind(scope.environment.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND environment = $2 AND id = $3")
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(id.as_str())
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

    async fn endpoint_health(&self, tenant_id: Option<&str>, limit: u32) -> Result<Vec<EndpointHealth>, StoreError> {
        let tenant = if tenant_id.is_some() {
            "WHERE e.tenant_id = $1 "
        } else {
            ""
        };
        let sql = format!(
            "SELECT e.id, e.tenant_id, e.environment, e.url, e.enabled, e.disabled_reason, e.failing_since, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending') AS pending, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'failed') AS failed \
             FROM webhook_endpoints e {tenant}ORDER BY e.id DESC LIMIT {}",
            i64::from(limit)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(t) = tenant_id {
            q = q.bind(t);
        }
        q.fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(EndpointHealth {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    environment: r.try_get("environment")?,
                    url: r.try_get("url")?,
                    enabled: r.try_get::<i16, _>("enabled")? == 1,
                    disabled_reason: r.try_get("disabled_reason")?,
                    failing_since: crate::sql::opt_ts(r, "failing_since")?,
                    pending: r.try_get("pending")?,
                    failed: r.try_get("failed")?,
                })
            })
            .collect()
    }

    async fn deliveries_for_object(
        &self,
        scope: &Scope,
        object_id: &str,
        limit: u32,
    ) -> Result<Vec<ObjectDelivery>, StoreError> {
        self.deliveries_of_events(scope, "object_id", object_id, limit).await
    }

    async fn deliveries_for_event(
        &self,
        scope: &Scope,
        event_id: &EventId,
        limit: u32,
    ) -> Result<Vec<ObjectDelivery>, StoreError> {
        self.deliveries_of_events(scope, "id", event_id.as_str(), limit).await
    }

    async fn delivery_attempts(
        &self,
        scope: &Scope,
        endpoint_id: &WebhookEndpointId,
        event_id: &EventId,
        limit: u32,
    ) -> Result<Vec<WebhookAttempt>, StoreError> {
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE tenant_id = $1 AND environment = $2 \
             AND endpoint_id = $3 AND event_id = $4 ORDER BY id DESC LIMIT {}",
            i64::from(limit)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(endpoint_id.as_str())
            .bind(event_id.as_str())
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(attempt_from_row)
            .collect()
    }

    async fn list_attempts(
        &self,
        scope: &Scope,
        endpoint_id: &WebhookEndpointId,
        page: &PageRequest,
    ) -> Result<Page<WebhookAttempt>, StoreError> {
        let spec = ListSpec {
            table: "webhook_attempts",
            columns: ATTEMPT_COLUMNS,
            filter: Some(("endpoint_id", endpoint_id.as_str())),
        };
        list_page(self.db.reader(), spec, scope, page, attempt_from_row).await
    }

    async fn redeliver_event(
        &self,
        scope: &Scope,
        event_id: &EventId,
        now: Timestamp,
        respond: RespondWith<'_>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let row = sqlx::query("SELECT type FROM events WHERE tenant_id = $1 AND environment = $2 AND id = $3")
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(event_id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let event_type: String = row.try_get("type")?;
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, tenant_id, environment, endpoint_id, event_id, state, attempts, \
             next_attempt_at, created_at, updated_at) \
             SELECT e.id || ':' || $1, e.tenant_id, e.environment, e.id, $1, 'pending', 0, $4, $4, $4 \
             FROM webhook_endpoints e WHERE e.tenant_id = $2 AND e.environment = $3 AND e.enabled = 1 \
             AND (e.all_events = 1 OR EXISTS (SELECT 1 FROM webhook_endpoint_events s \
                  WHERE s.endpoint_id = e.id AND s.event_type = $5)) {UPSERT_DELIVERY}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event_id.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(now.as_micros())
            .bind(event_type.as_str())
            .execute(&mut *tx)
            .await?;
        let n = done.rows_affected();
        write_effect_records(&mut tx, scope, respond(n).as_ref(), now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn replay_endpoint(
        &self,
        scope: &Scope,
        endpoint_id: &WebhookEndpointId,
        since: Timestamp,
        now: Timestamp,
        respond: RespondWith<'_>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let row = sqlx::query(
            "SELECT all_events FROM webhook_endpoints WHERE tenant_id = $1 AND environment = $2 AND id = $3",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(endpoint_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let all: i16 = row.try_get("all_events")?;
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, tenant_id, environment, endpoint_id, event_id, state, attempts, \
             next_attempt_at, created_at, updated_at) \
             SELECT $1 || ':' || ev.id, ev.tenant_id, ev.environment, $1, ev.id, 'pending', 0, $5, $5, $5 \
             FROM events ev WHERE ev.tenant_id = $2 AND ev.environment = $3 AND ev.created_at > $4 \
             AND ($6 = 1 OR EXISTS (SELECT 1 FROM webhook_endpoint_events s \
                  WHERE s.endpoint_id = $1 AND s.event_type = ev.type)) {UPSERT_DELIVERY}"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(endpoint_id.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(since.as_micros())
            .bind(now.as_micros())
            .bind(all)
            .execute(&mut *tx)
            .await?;
        let n = done.rows_affected();
        write_effect_records(&mut tx, scope, respond(n).as_ref(), now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let claimed = sqlx::query(claim_sql(self.db.backend()))
            .bind(token.as_str())
            .bind(lease_until.as_micros())
            .bind(now.as_micros())
            .bind(i64::from(limit))
            .fetch_all(self.db.writer())
            .await?;
        let mut due = Vec::with_capacity(claimed.len());
        for row in claimed {
            let id: String = row.try_get("id")?;
            let r = sqlx::query(
                "SELECT d.id, d.tenant_id, d.environment, d.endpoint_id, d.attempts, e.url, e.secret_sealed, \
                 e.previous_secret_sealed, e.previous_secret_expires_at, e.failing_since, ev.id AS event_id, \
                 ev.type, ev.object_id, ev.data, ev.created_at, ev.sequence \
                 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 JOIN events ev ON ev.id = d.event_id WHERE d.id = $1 AND d.lease_token = $2",
            )
            .bind(id.as_str())
            .bind(token.as_str())
            .fetch_optional(self.db.writer())
            .await?;
            let Some(r) = r else { continue };
            let env: String = r.try_get("environment")?;
            let attempts: i64 = r.try_get("attempts")?;
            due.push(DueDelivery {
                delivery_id: id,
                lease_token: token.clone(),
                scope: Scope {
                    tenant_id: TenantId::parse(&r.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
                    environment: Environment::parse(&env).ok_or_else(|| StoreError::corrupt("delivery environment"))?,
                },
                endpoint_id: WebhookEndpointId::parse(&r.try_get::<String, _>("endpoint_id")?)
                    .map_err(StoreError::other)?,
                url: r.try_get("url")?,
                secret_sealed: r.try_get("secret_sealed")?,
                previous_secret_sealed: r.try_get("previous_secret_sealed")?,
                previous_secret_expires_at: opt_ts(&r, "previous_secret_expires_at")?,
                failing_since: opt_ts(&r, "failing_since")?,
                attempts: u32::try_from(attempts).map_err(|_| StoreError::corrupt("delivery attempts"))?,
                event_id: EventId::parse(&r.try_get::<String, _>("event_id")?).map_err(StoreError::other)?,
                event_type: r.try_get("type")?,
                event_object_id: r.try_get("object_id")?,
                event_data: r.try_get("data")?,
                event_created_at: ts(&r, "created_at")?,
                event_sequence: r.try_get("sequence")?,
            });
        }
        Ok(due)
    }

    async fn record_attempt(&self, due: &DueDelivery, record: &AttemptRecord) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let next = match &record.delivery {
            DeliveryOutcome::RetryAt(t) => Some(*t),
            DeliveryOutcome::Delivered | DeliveryOutcome::GaveUp => None,
        };
        sqlx::query(
            "INSERT INTO webhook_attempts (id, tenant_id, environment, endpoint_id, event_id, event_type, attempt_number, \
             attempted_at, status_code, latency_ms, error, next_attempt_at, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $8 \
             WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $4)",
        )
        .bind(record.attempt_id.as_str())
        .bind(due.scope.tenant_id.as_str())
        .bind(due.scope.environment.as_str())
        .bind(due.endpoint_id.as_str())
        .bind(due.event_id.as_str())
        .bind(due.event_type.as_str())
        .bind(i64::from(record.attempt_number))
        .bind(record.attempted_at.as_micros())
        .bind(record.status_code.map(i64::from))
        .bind(record.latency_ms)
        .bind(record.error.as_deref())
        .bind(next.map(Timestamp::as_micros))
        .execute(&mut *tx)
        .await?;
        // (An endpoint deleted while we were sending has no log left to write to.)
        let state = match record.delivery {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::RetryAt(_) => "pending",
            DeliveryOutcome::GaveUp => "failed",
        };
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET state = $3, attempts = $4, next_attempt_at = $5, lease_token = NULL, \
             lease_until = NULL, updated_at = $6 WHERE id = $1 AND lease_token = $2",
        )
        .bind(due.delivery_id.as_str())
        .bind(due.lease_token.as_str())
        .bind(state)
        .bind(i64::from(record.attempt_number))
        .bind(next.map(Timestamp::as_micros))
        .bind(record.attempted_at.as_micros())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            apply_endpoint_outcome(&mut tx, due, record).await?;
        }
        // Otherwise our lease was taken over (we were too slow, or the delivery was re-queued):
        // the attempt stays in the log and the new holder decides what happens next.
        tx.commit().await?;
        Ok(())
    }

    async fn purge_webhook_history(&self, before: Timestamp) -> Result<u64, StoreError> {
        let attempts = sqlx::query("DELETE FROM webhook_attempts WHERE attempted_at < $1")
            .bind(before.as_micros())
            .execute(self.db.writer())
            .await?;
        let deliveries = sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND updated_at < $1")
            .bind(before.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(attempts.rows_affected() + deliveries.rows_affected())
    }
}

impl SqlStore {
    /// The deliveries of the events whose `column` is `value`, oldest first, at most `limit`.
    async fn deliveries_of_events(
        &self,
        scope: &Scope,
        column: &'static str,
        value: &str,
        limit: u32,
    ) -> Result<Vec<ObjectDelivery>, StoreError> {
        let sql = format!(
            "SELECT d.id, d.endpoint_id, d.event_id, e.type AS event_type, d.state, d.attempts, d.created_at, \
             d.updated_at FROM events e JOIN webhook_deliveries d ON d.event_id = e.id \
             WHERE e.{column} = $1 AND e.tenant_id = $2 AND e.environment = $3 ORDER BY d.id LIMIT {}",
            i64::from(limit)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(object_delivery_from_row)
            .collect()
    }
}

async fn apply_endpoint_outcome(
    conn: &mut AnyConnection,
    due: &DueDelivery,
    record: &AttemptRecord,
) -> Result<(), StoreError> {
    let now = record.attempted_at.as_micros();
    match &record.endpoint {
        EndpointOutcome::Healthy => {
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(due.endpoint_id.as_str())
            .execute(&mut *conn)
            .await?;
        }
        EndpointOutcome::Failing => {
            sqlx::query("UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
                .bind(due.endpoint_id.as_str())
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        EndpointOutcome::Disable(reason, event) => {
            let done = sqlx::query(
                "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, failing_since = NULL, updated_at = $3 \
                 WHERE id = $1 AND enabled = 1",
            )
            .bind(due.endpoint_id.as_str())
            .bind(reason.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 1 {
                insert_events(conn, std::slice::from_ref(event.as_ref())).await?;
            }
        }
    }
    Ok(())
}
