//! Sandbox-only helpers: advance a physical card's shipping, fund a program. Live keys get 403.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::AccountId;
use cardplane_domain::ledger::{AccountKind, Journal, JournalKind};
use cardplane_domain::{FieldError, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::cards::{CardChange, Posted};
use cardplane_store::ledger::{BalanceAfter, PostError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody};
use crate::http::lookup::{load_card, load_program, parse_money};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{CardEnvelope, ProgramFundingEnvelope, ProgramFundingView};
use crate::workflows::issuing::card_event;

#[utoipa::path(
    post, path = "/sandbox/cards/{card_id}/advance_shipping", tag = "Sandbox",
    params(("card_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "ordered -> shipped -> delivered", body = CardEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn advance_shipping(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(card_id): Path<String>,
) -> ApiResult<Reply> {
    ctx.sandbox_only()?;
    let card = load_card(&state, &ctx, &card_id).await?;
    let next_status = match card.shipping_status {
        None => {
            return Err(ApiError::conflict(
                "card_not_physical",
                "Only physical cards are shipped",
            ));
        }
        Some(s) => s
            .next()
            .ok_or_else(|| ApiError::conflict("card_already_delivered", "The card is already delivered"))?,
    };
    let now = Timestamp::now();
    let next = cardplane_domain::card::Card {
        shipping_status: Some(next_status),
        updated_at: now,
        version: card.version + 1,
        ..card.clone()
    };
    let body = render(&CardEnvelope { card: (&next).into() })?;
    let response = ctx.records(StatusCode::OK, &body);
    let events = [card_event(&ctx, EventType::CardUpdated, &next, now)];
    let change = CardChange {
        card: next,
        expected_version: card.version,
    };
    match state
        .cards
        .write_cards(&ctx.scope, &[], &[change], &events, response.as_ref(), now)
        .await
    {
        Ok(()) => Ok(Reply::committed(StatusCode::OK, body)),
        Err(PostError::Store(StoreError::Conflict { .. })) => Err(ApiError::conflict(
            "concurrent_update",
            "The card was changed concurrently; retry",
        )),
        Err(PostError::Store(e)) => Err(e.into()),
        Err(PostError::InsufficientFunds(_)) => Err(ApiError::internal("shipping moved money")),
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FundProgramRequest {
    #[schema(example = 1000000)]
    pub amount: Option<i64>,
    #[schema(example = "USD")]
    pub currency: Option<String>,
}

#[utoipa::path(
    post, path = "/sandbox/programs/{program_id}/fund", tag = "Sandbox",
    request_body = FundProgramRequest,
    params(("program_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "Money arrives in the program's funding account, ready to load onto cards", body = ProgramFundingEnvelope),
        (status = 400, description = "amount_too_large (over 10^15 minor units), currency_mismatch, or another invalid field", body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "balance_limit_exceeded: the funding account would hold more than 10^15 minor units", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn fund_program(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(program_id): Path<String>,
    JsonBody(req): JsonBody<FundProgramRequest>,
) -> ApiResult<Reply> {
    ctx.sandbox_only()?;
    let program = load_program(&state, &ctx, &program_id).await?;
    let amount = parse_money("", req.currency.as_deref(), req.amount)?;
    if amount.currency() != program.currency {
        return Err(FieldError::new(
            "currency",
            "currency_mismatch",
            format!("the program is in {}", program.currency),
        )
        .into());
    }
    let funding = state
        .programs
        .program_account(&ctx.scope, &program.id, AccountKind::ProgramFunding)
        .await?;
    let external = state
        .programs
        .program_account(&ctx.scope, &program.id, AccountKind::ProgramExternal)
        .await?;
    let now = Timestamp::now();
    let journal = Journal::transfer(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        JournalKind::ProgramFunding,
        "Sandbox program funding".into(),
        &external.id,
        &funding.id,
        amount,
        now,
    )
    .map_err(ApiError::internal)?;
    // Refused before anything is written; the store checks again under its row locks.
    journal.check_balance_limits([&funding, &external])?;
    let finish = |balances: &[(AccountId, BalanceAfter)]| {
        let balance = balances
            .iter()
            .find(|(a, _)| *a == funding.id)
            .map_or(funding.balance, |(_, b)| b.balance);
        let envelope = ProgramFundingEnvelope {
            funding: ProgramFundingView {
                program_id: program.program_id.clone(),
                currency: program.currency.code().to_owned(),
                balance,
            },
        };
        let body = serde_json::to_string(&envelope).unwrap_or_default();
        let data = serde_json::json!({"program_id": program.program_id, "amount": amount.minor(), "currency": amount.currency(), "balance": balance});
        let event = Event::new(
            &ctx.scope.tenant_id,
            ctx.scope.environment,
            EventType::ProgramFunded,
            program.id.as_str(),
            data,
            now,
        );
        Posted {
            events: vec![event],
            response: ctx.records(StatusCode::OK, &body),
            body,
        }
    };
    match state
        .cards
        .post_adjustment(&ctx.scope, &journal, None, &finish, now)
        .await
    {
        Ok(posted) => Ok(Reply::committed(StatusCode::OK, posted.body)),
        Err(PostError::Store(e)) => Err(e.into()),
        Err(PostError::InsufficientFunds(_)) => Err(ApiError::internal("the external account has no floor")),
    }
}
