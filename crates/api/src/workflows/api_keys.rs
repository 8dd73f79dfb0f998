//! API keys: the rules for naming, granting and revoking a key, shared by `/api_keys` (a key
//! managing its tenant's keys) and the developer portal (a tenant user managing them).

use cardplane_domain::Timestamp;
use cardplane_domain::api_key::{ApiKey, ApiSecret, Permission};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::ApiKeyId;
use cardplane_store::{EffectRecords, Scope, StoreError};

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::ApiKeyView;

const KEY_NAME_LEN_MAX: usize = 100;

/// A key to issue: its name and the extra rights it carries.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub permissions: Vec<Permission>,
}

/// Checks a requested key: a name of at most 100 characters and known permissions, each of which
/// the grantor holds itself (`may_grant`). Errors name the field (`name`, `permissions[i]`).
pub fn parse_new_key(
    name: Option<&str>,
    permissions: &[String],
    may_grant: impl Fn(Permission) -> bool,
) -> ApiResult<NewKey> {
    let name = cardplane_domain::cardholder::parse_name("name", name)
        .map_err(ApiError::from)
        .and_then(|n| {
            if n.chars().count() > KEY_NAME_LEN_MAX {
                Err(ApiError::invalid("parameter_invalid", "name is too long").with_param("name"))
            } else {
                Ok(n)
            }
        })?;
    let mut granted = Vec::new();
    for (i, raw) in permissions.iter().enumerate() {
        let p = Permission::parse(raw).ok_or_else(|| {
            ApiError::invalid("parameter_invalid", format!("unknown permission `{raw}`"))
                .with_param(format!("permissions[{i}]"))
        })?;
        if !may_grant(p) {
            return Err(ApiError::forbidden(
                "permission_not_held",
                format!("`{raw}` cannot be granted here: the grantor does not hold it"),
            )
            .with_param(format!("permissions[{i}]")));
        }
        if !granted.contains(&p) {
            granted.push(p);
        }
    }
    Ok(NewKey {
        name,
        permissions: granted,
    })
}

fn key_event(scope: &Scope, kind: EventType, key: &ApiKey, now: Timestamp) -> Event {
    let data = serde_json::to_value(ApiKeyView::from(key)).unwrap_or_default();
    Event::new(&scope.tenant_id, scope.environment, kind, key.id.as_str(), data, now)
}

/// Issues a key in `scope`; `records` gives what is written with it (the idempotent answer,
/// the audit entry), from the key and its secret. The secret exists only in the return value.
pub async fn issue(
    state: &AppState,
    scope: &Scope,
    new: NewKey,
    records: impl FnOnce(&ApiKey, &ApiSecret) -> ApiResult<Option<EffectRecords>>,
) -> ApiResult<(ApiKey, ApiSecret)> {
    let now = Timestamp::now();
    let (key, secret) = ApiKey::issue(
        &scope.tenant_id,
        scope.environment,
        new.name,
        new.permissions,
        &state.pepper,
        now,
    );
    let records = records(&key, &secret)?;
    let events = [key_event(scope, EventType::ApiKeyCreated, &key, now)];
    state
        .api_keys
        .insert_api_key(scope, &key, &events, records.as_ref(), now)
        .await?;
    Ok((key, secret))
}

fn already_revoked() -> ApiError {
    ApiError::conflict("api_key_already_revoked", "This API key is already revoked")
}

/// Revokes an active key of `scope`: requests with it fail at once. Unknown → 404, already
/// revoked → 409.
pub async fn revoke(
    state: &AppState,
    scope: &Scope,
    id: &ApiKeyId,
    records: impl FnOnce(&ApiKey) -> ApiResult<Option<EffectRecords>>,
) -> ApiResult<ApiKey> {
    let key = state.api_keys.get_api_key(scope, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("api_key"),
        other => other.into(),
    })?;
    if !key.is_active() {
        return Err(already_revoked());
    }
    let now = Timestamp::now();
    let revoked = ApiKey {
        revoked_at: Some(now),
        ..key
    };
    let records = records(&revoked)?;
    let events = [key_event(scope, EventType::ApiKeyRevoked, &revoked, now)];
    match state
        .api_keys
        .revoke_api_key(scope, id, now, &events, records.as_ref())
        .await
    {
        Ok(()) => Ok(revoked),
        Err(StoreError::NotFound) => Err(already_revoked()),
        Err(e) => Err(e.into()),
    }
}
