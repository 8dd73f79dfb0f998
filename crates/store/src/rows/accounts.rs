//! Ledger accounts: the columns read and how a row becomes the domain type (shared by the aggregate
//! and the batch reads).

use crate::StoreError;
use crate::sql::ts;
use cardplane_domain::Environment;
use cardplane_domain::ids::{AccountId, ProgramId, TenantId};
use cardplane_domain::ledger::{Account, AccountKind};
use cardplane_domain::money::Currency;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at";

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let env: String = row.try_get("environment")?;
    let kind: String = row.try_get("kind")?;
    let currency: String = row.try_get("currency")?;
    Ok(Account {
        id: AccountId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| StoreError::corrupt("account environment"))?,
        program: ProgramId::parse(&row.try_get::<String, _>("program_id")?).map_err(StoreError::other)?,
        kind: AccountKind::parse(&kind).ok_or_else(|| StoreError::corrupt("account kind"))?,
        currency: Currency::parse(&currency).map_err(|_| StoreError::corrupt("account currency"))?,
        floor: row.try_get("floor")?,
        balance: row.try_get("balance")?,
        held: row.try_get("held")?,
        created_at: ts(row, "created_at")?,
    })
}
