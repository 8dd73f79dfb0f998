//! Sandbox-only simulator: the same pipeline and events as network traffic, driven by card and
//! transaction ids instead of PANs.

use axum::extract::State;
use axum::response::Response;
use cardplane_domain::FieldError;
use cardplane_domain::authorization::Merchant;
use cardplane_domain::card::Card;
use cardplane_domain::ids::TransactionId;
use cardplane_domain::pan::Pan;
use cardplane_store::StoreError;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody};
use crate::http::lookup::load_card;
use crate::http::network::{MerchantRequest, answer_response, parse_amount, parse_currency, parse_merchant};
use crate::state::AppState;
use cardplane_domain::network::{AuthorizationMessage, NetworkMessage, PostingMessage, ReversalMessage};

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

fn default_merchant() -> Merchant {
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

async fn load_authorization(
    state: &AppState,
    ctx: &Ctx,
    raw: Option<&str>,
) -> ApiResult<cardplane_domain::authorization::Transaction> {
    let raw = raw.ok_or_else(|| FieldError::missing("authorization_id"))?;
    let id = TransactionId::parse(raw).map_err(|_| FieldError::invalid("authorization_id", "no such transaction"))?;
    state
        .transactions
        .get_transaction(&ctx.scope, &id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => FieldError::invalid("authorization_id", "no such transaction").into(),
            other => other.into(),
        })
}

#[utoipa::path(
    post, path = "/simulate/authorizations", tag = "Sandbox", request_body = SimulateAuthorizationRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope),
              (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_authorization(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateAuthorizationRequest>,
) -> ApiResult<Response> {
    ctx.sandbox_only()?;
    let card = load_card(
        &state,
        &ctx,
        req.card_id.as_deref().ok_or_else(|| FieldError::missing("card_id"))?,
    )
    .await
    .map_err(|_| FieldError::invalid("card_id", "no such card"))?;
    let original = match req.incremental_of.as_deref() {
        Some(id) => Some(load_authorization(&state, &ctx, Some(id)).await?.network_transaction_id),
        None => None,
    };
    let msg = AuthorizationMessage {
        network_transaction_id: simulated_ntid(),
        pan: pan_of(&state, &card)?,
        expiration: (card.exp_year, card.exp_month),
        amount: parse_amount(req.amount)?,
        currency: match req.currency.as_deref() {
            None => card.currency,
            Some(c) => parse_currency(Some(c))?,
        },
        merchant: match &req.merchant {
            None => default_merchant(),
            Some(m) => parse_merchant(Some(m))?,
        },
        entry_mode: crate::routes::network::parse_entry_mode(req.entry_mode.as_deref(), "simulated")?,
        partial_approval_supported: req.partial_approval_supported.unwrap_or(false),
        original,
        stand_in_advice: false,
    };
    Ok(answer_response(
        state
            .engine
            .handle(ctx.scope.environment, NetworkMessage::Authorization(msg))
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/simulate/clearings", tag = "Sandbox", request_body = SimulateFollowUpRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_clearing(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateFollowUpRequest>,
) -> ApiResult<Response> {
    ctx.sandbox_only()?;
    let auth = load_authorization(&state, &ctx, req.authorization_id.as_deref()).await?;
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
    Ok(answer_response(
        state
            .engine
            .handle(ctx.scope.environment, NetworkMessage::Clearing(msg))
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/simulate/reversals", tag = "Sandbox", request_body = SimulateFollowUpRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_reversal(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateFollowUpRequest>,
) -> ApiResult<Response> {
    ctx.sandbox_only()?;
    let auth = load_authorization(&state, &ctx, req.authorization_id.as_deref()).await?;
    let msg = ReversalMessage {
        network_transaction_id: simulated_ntid(),
        original: auth.network_transaction_id.clone(),
        amount: req.amount.map(|a| parse_amount(Some(a))).transpose()?,
    };
    Ok(answer_response(
        state
            .engine
            .handle(ctx.scope.environment, NetworkMessage::Reversal(msg))
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/simulate/refunds", tag = "Sandbox", request_body = SimulateRefundRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_refund(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateRefundRequest>,
) -> ApiResult<Response> {
    ctx.sandbox_only()?;
    let amount = parse_amount(req.amount)?;
    let msg = match (&req.authorization_id, &req.card_id) {
        (Some(a), None) => {
            let auth = load_authorization(&state, &ctx, Some(a)).await?;
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
            let card = load_card(&state, &ctx, c)
                .await
                .map_err(|_| FieldError::invalid("card_id", "no such card"))?;
            PostingMessage {
                network_transaction_id: simulated_ntid(),
                original: None,
                pan: Some(pan_of(&state, &card)?),
                amount,
                currency: card.currency,
                merchant: Some(match &req.merchant {
                    None => default_merchant(),
                    Some(m) => parse_merchant(Some(m))?,
                }),
            }
        }
        _ => return Err(FieldError::invalid("authorization_id", "give authorization_id or card_id").into()),
    };
    Ok(answer_response(
        state
            .engine
            .handle(ctx.scope.environment, NetworkMessage::Refund(msg))
            .await?,
    ))
}
