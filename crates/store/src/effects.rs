//! What a state change writes beside itself, inside the caller's transaction: its events (with
//! their webhook deliveries), its idempotent response and its audit entry.

use cardplane_domain::Timestamp;
use cardplane_domain::event::Event;
use cardplane_domain::idempotency::IDEMPOTENCY_TTL_SECS;
use sqlx::AnyConnection;

use crate::{EffectRecords, IdempotentResponse, Scope, StoreError};

/// Appends events with their sequence numbers and webhook deliveries, inside the caller's
/// transaction (see `network_batch::write_events`).
pub(crate) async fn insert_events(conn: &mut AnyConnection, events: &[Event]) -> Result<(), StoreError> {
    let backend = crate::Backend::of(conn);
    let mut statements = 0;
    let mut exec = crate::network_batch::Exec {
        conn,
        backend,
        statements: &mut statements,
    };
    crate::network_batch::write_events(&mut exec, events).await
}

/// Writes what goes with an effect (its idempotent answer, its audit entry) inside the effect's
/// transaction.
pub(crate) async fn write_effect_records(
    conn: &mut AnyConnection,
    scope: &Scope,
    records: Option<&EffectRecords>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(records) = records else { return Ok(()) };
    if let Some(r) = &records.replay {
        complete_idempotency(conn, scope, r, now).await?;
    }
    if let Some(audit) = &records.audit {
        crate::audit::append_audit(conn, audit).await?;
    }
    Ok(())
}

/// Completes a claimed key with the response. The claim must still be ours (in flight): anything
/// else means the key was taken over and we must roll back.
pub(crate) async fn complete_idempotency(
    conn: &mut AnyConnection,
    scope: &Scope,
    r: &IdempotentResponse,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', response_status = $4, response_body = $5, expires_at = $6 \
         WHERE tenant_id = $1 AND environment = $2 AND idempotency_key = $3 AND state = 'in_flight' AND claim_token = $7",
    )
    .bind(scope.tenant_id.as_str())
    .bind(scope.environment.as_str())
    .bind(r.key.as_str())
    .bind(i64::from(r.status))
    .bind(r.body.as_str())
    .bind(now.plus_secs(IDEMPOTENCY_TTL_SECS).as_micros())
    .bind(r.claim_token.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            constraint: "idempotency_keys_claim".into(),
        });
    }
    Ok(())
}
