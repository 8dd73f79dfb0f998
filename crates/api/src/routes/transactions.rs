//! Transactions: authorizations with their decision trace, force posts and refunds.

use axum::extract::{Path, State};
use cardplane_domain::ids::TransactionId;
use cardplane_store::StoreError;
use cardplane_store::transactions::TransactionFilter;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, ListParams, StrictQuery};
use crate::http::lookup::{load_card, load_cardholder, parse_cardholder_id};
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{TransactionEnvelope, TransactionList, page_items};

async fn list(state: &AppState, ctx: &Ctx, filter: TransactionFilter<'_>, params: &ListParams) -> ApiResult<Reply> {
    let page = params.page(|id| TransactionId::parse(id).is_ok())?;
    let page = state.transactions.list_transactions(&ctx.scope, filter, &page).await?;
    let (transactions, has_more, total) = page_items(&page, |t| TransactionEnvelope { transaction: t.into() });
    Reply::ok(&TransactionList {
        transactions,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/transactions", tag = "Transactions", params(ListParams),
    responses((status = 200, body = TransactionList)), security(("basic_auth" = []))
)]
pub async fn list_transactions(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    list(&state, &ctx, TransactionFilter::All, &params).await
}

#[utoipa::path(
    get, path = "/cards/{card_id}/transactions", tag = "Transactions", params(("card_id" = String, Path), ListParams),
    responses((status = 200, body = TransactionList), (status = 404, body = crate::http::error::ErrorEnvelope)), security(("basic_auth" = []))
)]
pub async fn list_card_transactions(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(card_id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let card = load_card(&state, &ctx, &card_id).await?;
    list(&state, &ctx, TransactionFilter::Card(&card.id), &params).await
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/transactions", tag = "Transactions", params(("cardholder_id" = String, Path), ListParams),
    responses((status = 200, body = TransactionList), (status = 404, body = crate::http::error::ErrorEnvelope)), security(("basic_auth" = []))
)]
pub async fn list_cardholder_transactions(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(cardholder_id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&cardholder_id)?;
    load_cardholder(&state, &ctx, &id).await?;
    list(&state, &ctx, TransactionFilter::Cardholder(&id), &params).await
}

#[utoipa::path(
    get, path = "/transactions/{transaction_id}", tag = "Transactions", params(("transaction_id" = String, Path)),
    responses((status = 200, body = TransactionEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)), security(("basic_auth" = []))
)]
pub async fn get_transaction(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = TransactionId::parse(&id).map_err(|_| ApiError::not_found("transaction"))?;
    let t = state
        .transactions
        .get_transaction(&ctx.scope, &id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("transaction"),
            other => other.into(),
        })?;
    Reply::ok(&TransactionEnvelope {
        transaction: (&t).into(),
    })
}
