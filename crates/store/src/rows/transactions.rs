//! Transactions: the columns read and how a row becomes the domain type (shared by the aggregate
//! and the batch reads).

use crate::StoreError;
use crate::sql::{opt_ts, ts};
use cardplane_domain::Environment;
use cardplane_domain::authorization::{
    DeclineReason, Merchant, ResponseCode, Transaction, TransactionKind, TransactionState,
};
use cardplane_domain::ids::{AccountId, CardId, CardholderId, ProgramId, TenantId, TransactionId};
use cardplane_domain::money::Currency;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) const COLUMNS: &str = "id, tenant_id, environment, card_id, cardholder_id, program_id, account_id, kind, state, \
    network_transaction_id, currency, requested_amount, authorized_amount, held_amount, cleared_amount, reversed_amount, \
    response_code, decline_reason, authorization_code, merchant_id, merchant_name, mcc, merchant_country, merchant_city, \
    entry_mode, stand_in, decision_trace, received_at, custodian_sent_at, custodian_answered_at, answered_at, expires_at, \
    created_at, updated_at";

pub(crate) fn transaction_from_row(row: &AnyRow) -> Result<Transaction, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored transaction {what}"));
    let env: String = row.try_get("environment")?;
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let code: String = row.try_get("response_code")?;
    let reason: Option<String> = row.try_get("decline_reason")?;
    let trace: String = row.try_get("decision_trace")?;
    Ok(Transaction {
        id: TransactionId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| bad("environment"))?,
        card_id: CardId::parse(&row.try_get::<String, _>("card_id")?).map_err(StoreError::other)?,
        cardholder_id: CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?).map_err(StoreError::other)?,
        program_id: ProgramId::parse(&row.try_get::<String, _>("program_id")?).map_err(StoreError::other)?,
        account_id: AccountId::parse(&row.try_get::<String, _>("account_id")?).map_err(StoreError::other)?,
        kind: TransactionKind::parse(&kind).ok_or_else(|| bad("kind"))?,
        state: TransactionState::parse(&state).ok_or_else(|| bad("state"))?,
        network_transaction_id: row.try_get("network_transaction_id")?,
        currency: Currency::parse(&row.try_get::<String, _>("currency")?).map_err(|_| bad("currency"))?,
        requested_amount: row.try_get("requested_amount")?,
        authorized_amount: row.try_get("authorized_amount")?,
        held_amount: row.try_get("held_amount")?,
        cleared_amount: row.try_get("cleared_amount")?,
        reversed_amount: row.try_get("reversed_amount")?,
        response_code: ResponseCode::parse(&code).ok_or_else(|| bad("response code"))?,
        decline_reason: reason
            .map(|r| DeclineReason::parse(&r).ok_or_else(|| bad("reason")))
            .transpose()?,
        authorization_code: row.try_get("authorization_code")?,
        merchant: Merchant {
            id: row.try_get("merchant_id")?,
            name: row.try_get("merchant_name")?,
            mcc: row.try_get("mcc")?,
            country: row.try_get("merchant_country")?,
            city: row.try_get("merchant_city")?,
        },
        entry_mode: row.try_get("entry_mode")?,
        stand_in: row.try_get::<i16, _>("stand_in")? == 1,
        decision_trace: serde_json::from_str(&trace).map_err(|_| bad("trace"))?,
        received_at: ts(row, "received_at")?,
        custodian_sent_at: opt_ts(row, "custodian_sent_at")?,
        custodian_answered_at: opt_ts(row, "custodian_answered_at")?,
        answered_at: ts(row, "answered_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}
