//! The sandbox simulator: authorizations, clearings, reversals and refunds built from card and
//! transaction ids instead of PANs, through the same pipeline and events as network traffic.
//! Shared by `/simulate/*` (a sandbox key) and the developer portal's simulator page.

use cardplane_domain::FieldError;
use cardplane_domain::authorization::{Merchant, Transaction};
use cardplane_domain::card::Card;
use cardplane_domain::ids::TransactionId;
use cardplane_domain::network::{AuthorizationMessage, NetworkMessage, PostingMessage, ReversalMessage};
use cardplane_domain::pan::Pan;
use cardplane_engine::authorization::Answer;
use cardplane_store::{Scope, StoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::sandbox_only;
use crate::http::lookup::load_card_in;
use crate::http::network::{MerchantRequest, parse_amount, parse_currency, parse_entry_mode, parse_merchant};
use crate::state::AppState;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateAuthorizationRequest {
    #[schema(example = "card_0190f3b2a4c87d1e9b5a6c7d8e9f0a1b")]
    pub card_id: Option<String>,
    /// Minor units of the currency (1000 = $10.00).
    #[schema(example = 1000)]
    pub amount: Option<i64>,
    /// Default: the card's currency.
    pub currency: Option<String>,
    /// Default: a grocery store in New York.
    pub merchant: Option<MerchantRequest>,
    pub partial_approval_supported: Option<bool>,
    /// Raise this pending authorization (incremental authorization).
    pub incremental_of: Option<String>,
    /// How the card was read: chip, contactless, ecommerce, recurring, ... Default `simulated`.
    #[schema(example = "ecommerce")]
    pub entry_mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateFollowUpRequest {
    /// The transaction (authorization) to clear, reverse or refund.
    pub authorization_id: Option<String>,
    /// Default: clearings capture the authorized amount; reversals release all that is held.
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRefundRequest {
    /// Refund against this authorization, or
    pub authorization_id: Option<String>,
    /// an unlinked refund to this card.
    pub card_id: Option<String>,
    pub amount: Option<i64>,
    pub merchant: Option<MerchantRequest>,
}

fn simulated_ntid() -> String {
    format!("sim_{}", uuid::Uuid::now_v7().simple())
}

/// Where simulated card traffic happens unless a merchant is given: a grocery in New York.
pub fn default_merchant() -> Merchant {
    Merchant {
        id: "sim_merchant_1".into(),
        name: "Corner Grocery".into(),
        mcc: "5411".into(),
        country: "USA".into(),
        city: "New York".into(),
    }
}

fn pan_of(state: &AppState, card: &Card) -> ApiResult<Pan> {
    let raw = state
        .vault
        .open(&card.pan_sealed, &Card::vault_context(&card.id))
        .map_err(ApiError::internal)?;
    Pan::parse(std::str::from_utf8(&raw).map_err(ApiError::internal)?).map_err(ApiError::internal)
}

async fn load_authorization(state: &AppState, scope: &Scope, raw: Option<&str>) -> ApiResult<Transaction> {
    let raw = raw.ok_or_else(|| FieldError::missing("authorization_id"))?;
    let id = TransactionId::parse(raw).map_err(|_| FieldError::invalid("authorization_id", "no such transaction"))?;
    state
        .transactions
        .get_transaction(scope, &id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => FieldError::invalid("authorization_id", "no such transaction").into(),
            other => other.into(),
        })
}

async fn load_card(state: &AppState, scope: &Scope, raw: Option<&str>) -> ApiResult<Card> {
    let raw = raw.ok_or_else(|| FieldError::missing("card_id"))?;
    load_card_in(state, scope, raw)
        .await
        .map_err(|_| FieldError::invalid("card_id", "no such card").into())
}

fn merchant_or_default(req: Option<&MerchantRequest>) -> ApiResult<Merchant> {
    match req {
        None => Ok(default_merchant()),
        Some(m) => Ok(parse_merchant(Some(m))?),
    }
}

async fn submit(state: &AppState, scope: &Scope, message: NetworkMessage) -> ApiResult<Answer> {
    Ok(state.engine.handle(scope.environment, message).await?)
}

/// An authorization on a card of `scope` (sandbox only), as the network would send it.
pub async fn authorize(state: &AppState, scope: &Scope, req: &SimulateAuthorizationRequest) -> ApiResult<Answer> {
    sandbox_only(scope.environment)?;
    let card = load_card(state, scope, req.card_id.as_deref()).await?;
    let original = match req.incremental_of.as_deref() {
        Some(id) => Some(load_authorization(state, scope, Some(id)).await?.network_transaction_id),
        None => None,
    };
    let msg = AuthorizationMessage {
        network_transaction_id: simulated_ntid(),
        pan: pan_of(state, &card)?,
        expiration: (card.exp_year, card.exp_month),
        amount: parse_amount(req.amount)?,
        currency: match req.currency.as_deref() {
            None => card.currency,
            Some(c) => parse_currency(Some(c))?,
        },
        merchant: merchant_or_default(req.merchant.as_ref())?,
        entry_mode: parse_entry_mode(req.entry_mode.as_deref(), "simulated")?,
        partial_approval_supported: req.partial_approval_supported.unwrap_or(false),
        original,
        stand_in_advice: false,
    };
    submit(state, scope, NetworkMessage::Authorization(msg)).await
}

/// Captures an authorization (by default its whole authorized amount).
pub async fn clear(state: &AppState, scope: &Scope, req: &SimulateFollowUpRequest) -> ApiResult<Answer> {
    sandbox_only(scope.environment)?;
    let auth = load_authorization(state, scope, req.authorization_id.as_deref()).await?;
    let amount = match req.amount {
        None => auth.authorized_amount.max(1),
        Some(a) => parse_amount(Some(a))?,
    };
    let msg = PostingMessage {
        network_transaction_id: simulated_ntid(),
        original: Some(auth.network_transaction_id.clone()),
        pan: None,
        amount,
        currency: auth.currency,
        merchant: Some(auth.merchant.clone()),
    };
    submit(state, scope, NetworkMessage::Clearing(msg)).await
}

/// Releases an authorization's hold (by default all of it).
pub async fn reverse(state: &AppState, scope: &Scope, req: &SimulateFollowUpRequest) -> ApiResult<Answer> {
    sandbox_only(scope.environment)?;
    let auth = load_authorization(state, scope, req.authorization_id.as_deref()).await?;
    let msg = ReversalMessage {
        network_transaction_id: simulated_ntid(),
        original: auth.network_transaction_id.clone(),
        amount: req.amount.map(|a| parse_amount(Some(a))).transpose()?,
    };
    submit(state, scope, NetworkMessage::Reversal(msg)).await
}

/// A refund against an authorization, or an unlinked one to a card.
pub async fn refund(state: &AppState, scope: &Scope, req: &SimulateRefundRequest) -> ApiResult<Answer> {
    sandbox_only(scope.environment)?;
    let amount = parse_amount(req.amount)?;
    let msg = match (&req.authorization_id, &req.card_id) {
        (Some(a), None) => {
            let auth = load_authorization(state, scope, Some(a)).await?;
            PostingMessage {
                network_transaction_id: simulated_ntid(),
                original: Some(auth.network_transaction_id.clone()),
                pan: None,
                amount,
                currency: auth.currency,
                merchant: Some(auth.merchant.clone()),
            }
        }
        (None, Some(c)) => {
            let card = load_card(state, scope, Some(c)).await?;
            PostingMessage {
                network_transaction_id: simulated_ntid(),
                original: None,
                pan: Some(pan_of(state, &card)?),
                amount,
                currency: card.currency,
                merchant: Some(merchant_or_default(req.merchant.as_ref())?),
            }
        }
        _ => return Err(FieldError::invalid("authorization_id", "give authorization_id or card_id").into()),
    };
    submit(state, scope, NetworkMessage::Refund(msg)).await
}
