//! Resources named in a request path, loaded in the caller's scope, or the API's 404: a
//! malformed ID cannot name an object in this scope, so it answers like a foreign one. Every
//! route that takes a card, cardholder or program in its path resolves it here.

use cardplane_domain::FieldError;
use cardplane_domain::card::Card;
use cardplane_domain::cardholder::Cardholder;
use cardplane_domain::ids::{CardId, CardholderId};
use cardplane_domain::money::Money;
use cardplane_domain::program::{Program, parse_program_ref};
use cardplane_store::{Scope, StoreError};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Ctx;
use crate::state::AppState;

pub fn parse_card_id(raw: &str) -> ApiResult<CardId> {
    CardId::parse(raw).map_err(|_| ApiError::not_found("card"))
}

pub async fn load_card(state: &AppState, ctx: &Ctx, raw: &str) -> ApiResult<Card> {
    load_card_in(state, &ctx.scope, raw).await
}

/// A card of `scope`, or 404.
pub async fn load_card_in(state: &AppState, scope: &Scope, raw: &str) -> ApiResult<Card> {
    let id = parse_card_id(raw)?;
    state.cards.get_card(scope, &id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("card"),
        other => other.into(),
    })
}

/// Loads a cardholder of this scope, or 404.
pub async fn load_cardholder(state: &AppState, ctx: &Ctx, id: &CardholderId) -> ApiResult<Cardholder> {
    state
        .cardholders
        .get_cardholder(&ctx.scope, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("cardholder"),
            other => other.into(),
        })
}

/// A malformed ID cannot name an object in this scope: 404, like a foreign one.
pub fn parse_cardholder_id(raw: &str) -> ApiResult<CardholderId> {
    CardholderId::parse(raw).map_err(|_| ApiError::not_found("cardholder"))
}

pub async fn load_program(state: &AppState, ctx: &Ctx, program_id: &str) -> ApiResult<Program> {
    let program_id = parse_program_ref(Some(program_id)).map_err(|_| ApiError::not_found("program"))?;
    state
        .programs
        .get_program_by_ref(&ctx.scope, &program_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("program"),
            other => other.into(),
        })
}

/// A request's `{currency, amount}`: positive and at most `AMOUNT_MAX_MINOR` (`amount_too_large`).
pub fn parse_money(param: &str, currency: Option<&str>, amount: Option<i64>) -> Result<Money, FieldError> {
    Money::parse(param, currency, amount)
}

/// The person a case or dispute is handed to (`assignee_id` in the body): an operator the
/// permission matrix lets do `work`, or a 400 naming the field. None unassigns.
pub async fn load_assignee(
    state: &AppState,
    raw: Option<&str>,
    may_work: impl Fn(&cardplane_domain::people::Person) -> bool,
) -> ApiResult<Option<cardplane_domain::ids::UserId>> {
    let bad = |m: &str| ApiError::invalid("parameter_invalid", m.to_owned()).with_param("assignee_id");
    let Some(raw) = raw else { return Ok(None) };
    let id = cardplane_domain::ids::UserId::parse(raw).map_err(|_| bad("not a user id"))?;
    let person = match state.people.get_user(&id).await {
        Ok(u) => u.person,
        Err(StoreError::NotFound) => return Err(bad("no such operator")),
        Err(e) => return Err(e.into()),
    };
    if !may_work(&person) {
        return Err(bad("this person may not do this work"));
    }
    Ok(Some(id))
}
