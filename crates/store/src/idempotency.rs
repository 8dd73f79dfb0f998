use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::idempotency::{Claim, IDEMPOTENCY_CLAIM_STALE_SECS, IDEMPOTENCY_TTL_SECS};
use sqlx::Row;

use crate::effects::complete_idempotency;
use crate::{IdempotentResponse, Scope, SqlStore, StoreError};

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with this fingerprint, or reports what holds it.
    async fn claim(&self, scope: &Scope, key: &str, fingerprint: &str, now: Timestamp) -> Result<Claim, StoreError>;
    /// Stores a response that had no effect to commit with it (an error answer).
    async fn complete(&self, scope: &Scope, response: &IdempotentResponse, now: Timestamp) -> Result<(), StoreError>;
    /// Gives a claim back (the request could not even produce an answer to store).
    async fn release(&self, scope: &Scope, key: &str, token: &str) -> Result<(), StoreError>;
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn claim(&self, scope: &Scope, key: &str, fingerprint: &str, now: Timestamp) -> Result<Claim, StoreError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let expires = now.plus_secs(IDEMPOTENCY_TTL_SECS).as_micros();
        let stale_before = now.plus_secs(-IDEMPOTENCY_CLAIM_STALE_SECS).as_micros();
        // A few rounds: a row can expire or be purged between our statements.
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (tenant_id, environment, idempotency_key, fingerprint, state, claim_token, claimed_at, expires_at) \
                 VALUES ($1, $2, $3, $4, 'in_flight', $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(key)
            .bind(fingerprint)
            .bind(token.as_str())
            .bind(now.as_micros())
            .bind(expires)
            .execute(self.db.writer())
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::Acquired { token });
            }
            // Take over an expired key, or a claim whose request died without finishing.
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $4, state = 'in_flight', claim_token = $5, claimed_at = $6, \
                 expires_at = $7, response_status = NULL, response_body = NULL \
                 WHERE tenant_id = $1 AND environment = $2 AND idempotency_key = $3 \
                 AND (expires_at <= $6 OR (state = 'in_flight' AND claimed_at < $8))",
            )
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(key)
            .bind(fingerprint)
            .bind(token.as_str())
            .bind(now.as_micros())
            .bind(expires)
            .bind(stale_before)
            .execute(self.db.writer())
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(Claim::Acquired { token });
            }
            let row = sqlx::query(
                "SELECT fingerprint, state, response_status, response_body FROM idempotency_keys \
                 WHERE tenant_id = $1 AND environment = $2 AND idempotency_key = $3",
            )
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(key)
            .fetch_optional(self.db.writer())
            .await?;
            let Some(row) = row else { continue };
            let fingerprint: String = row.try_get("fingerprint")?;
            let state: String = row.try_get("state")?;
            if state == "completed" {
                let status: i64 = row.try_get("response_status")?;
                let body: String = row.try_get("response_body")?;
                let status = u16::try_from(status).map_err(|_| StoreError::corrupt("stored status"))?;
                return Ok(Claim::Completed {
                    fingerprint,
                    status,
                    body: body.into_bytes(),
                });
            }
            return Ok(Claim::InFlight { fingerprint });
        }
        Err(StoreError::corrupt("idempotency key kept changing under us"))
    }

    async fn complete(&self, scope: &Scope, response: &IdempotentResponse, now: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.db.writer().acquire().await?;
        complete_idempotency(&mut conn, scope, response, now).await
    }

    async fn release(&self, scope: &Scope, key: &str, token: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND environment = $2 AND idempotency_key = $3 \
             AND claim_token = $4 AND state = 'in_flight'",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(key)
        .bind(token)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1 AND state = 'completed'")
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
