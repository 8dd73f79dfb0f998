//! Spend controls: the columns read and how a row becomes the domain type (shared by the aggregate
//! and the batch reads).

use crate::StoreError;
use crate::sql::ts;
use cardplane_domain::Environment;
use cardplane_domain::controls::{ControlScopeKind, SpendControl, SpendLimit, Window};
use cardplane_domain::ids::{SpendControlId, TenantId};
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) const CONTROL_COLUMNS: &str = "id, tenant_id, environment, scope_kind, scope_id, amount_limit, count_limit, window_kind, \
    window_secs, mccs, active, created_at, updated_at";

pub(crate) fn control_from_row(row: &AnyRow) -> Result<SpendControl, StoreError> {
    let bad = || StoreError::corrupt("stored spend control");
    let env: String = row.try_get("environment")?;
    let kind: String = row.try_get("scope_kind")?;
    let mccs: String = row.try_get("mccs")?;
    let mccs: Vec<String> = serde_json::from_str(&mccs).map_err(|_| bad())?;
    let window = Window::parse(
        "c",
        row.try_get::<String, _>("window_kind")?.as_str().into(),
        row.try_get("window_secs")?,
    )
    .map_err(|_| bad())?;
    Ok(SpendControl {
        id: SpendControlId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(bad)?,
        scope_kind: ControlScopeKind::parse(&kind).ok_or_else(bad)?,
        scope_id: row.try_get("scope_id")?,
        limit: SpendLimit::parse(
            "c",
            row.try_get("amount_limit")?,
            row.try_get("count_limit")?,
            window,
            &mccs,
        )
        .map_err(|_| bad())?,
        active: row.try_get::<i16, _>("active")? == 1,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}
