//! Cards: the columns read and how a row becomes the domain type (shared by the aggregate
//! and the batch reads).

use crate::StoreError;
use crate::sql::ts;
use cardplane_domain::Environment;
use cardplane_domain::card::{Card, CardState, ReplacementReason, ShippingStatus};
use cardplane_domain::ids::{AccountId, CardId, CardholderId, ProgramId, TenantId};
use cardplane_domain::money::Currency;
use cardplane_domain::program::{FormFactor, Network};
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) const CARD_COLUMNS: &str = "id, tenant_id, environment, cardholder_id, program_id, program_ref, network, currency, account_id, form_factor, \
    design_key, state, shipping_status, bin, last4, exp_month, exp_year, pan_sealed, pan_hash, replaces, \
    replacement_reason, replaced_by, created_at, updated_at, version";

pub(crate) fn card_from_row(row: &AnyRow) -> Result<Card, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored card {what}"));
    let env: String = row.try_get("environment")?;
    let form: String = row.try_get("form_factor")?;
    let state: String = row.try_get("state")?;
    let shipping: Option<String> = row.try_get("shipping_status")?;
    let reason: Option<String> = row.try_get("replacement_reason")?;
    let replaces: Option<String> = row.try_get("replaces")?;
    let replaced_by: Option<String> = row.try_get("replaced_by")?;
    let exp_month: i64 = row.try_get("exp_month")?;
    let exp_year: i64 = row.try_get("exp_year")?;
    Ok(Card {
        id: CardId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| bad("environment"))?,
        cardholder_id: CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?).map_err(StoreError::other)?,
        program: ProgramId::parse(&row.try_get::<String, _>("program_id")?).map_err(StoreError::other)?,
        program_ref: row.try_get("program_ref")?,
        network: Network::parse(&row.try_get::<String, _>("network")?).ok_or_else(|| bad("network"))?,
        currency: Currency::parse(&row.try_get::<String, _>("currency")?).map_err(|_| bad("currency"))?,
        account_id: AccountId::parse(&row.try_get::<String, _>("account_id")?).map_err(StoreError::other)?,
        form_factor: FormFactor::parse(&form).ok_or_else(|| bad("form factor"))?,
        design_key: row.try_get("design_key")?,
        state: CardState::parse(&state).ok_or_else(|| bad("state"))?,
        shipping_status: shipping
            .map(|s| ShippingStatus::parse(&s).ok_or_else(|| bad("shipping")))
            .transpose()?,
        bin: row.try_get("bin")?,
        last4: row.try_get("last4")?,
        exp_month: u8::try_from(exp_month).map_err(|_| bad("exp_month"))?,
        exp_year: u16::try_from(exp_year).map_err(|_| bad("exp_year"))?,
        pan_sealed: row.try_get("pan_sealed")?,
        pan_hash: row.try_get("pan_hash")?,
        replaces: replaces
            .map(|r| CardId::parse(&r).map_err(StoreError::other))
            .transpose()?,
        replacement_reason: reason
            .map(|r| ReplacementReason::parse(&r).ok_or_else(|| bad("reason")))
            .transpose()?,
        replaced_by: replaced_by
            .map(|r| CardId::parse(&r).map_err(StoreError::other))
            .transpose()?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}
