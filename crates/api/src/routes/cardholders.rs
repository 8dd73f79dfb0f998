//! `/cardholders`: create (or update by `custodian_uid`), update by id, list, get, KYC history and
//! card orders. The workflows are in `onboarding`.

use axum::extract::{Path, State};
use cardplane_domain::cardholder::{
    Address, AddressInput, CardOrderRequest, Cardholder, DateOfBirth, Document, Email, Identity, PhoneNumber,
    parse_custodian_uid, parse_name,
};
use cardplane_domain::ids::{CardholderId, KycCheckId};
use cardplane_domain::{FieldError, Timestamp};
use cardplane_store::StoreError;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::lookup::parse_cardholder_id;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{
    CardOrderList, CardOrderView, CardholderEnvelope, CardholderList, KycCheckEnvelope, KycCheckList, page_items,
};
use crate::workflows::onboarding::{self, Merged, NewCardholder, Patch};

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(example = "1800 Gates Ave")]
    pub street_one: Option<String>,
    #[schema(example = "2L")]
    pub street_two: Option<String>,
    #[schema(example = "Ridgewood")]
    pub locality: Option<String>,
    #[schema(example = "NY")]
    pub region: Option<String>,
    #[schema(example = "11385")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-3 (alpha-2 accepted).
    #[schema(example = "USA")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequest {
    /// ssn, itin, passport, drivers_license or national_id.
    #[serde(rename = "type")]
    #[schema(example = "ssn")]
    pub kind: Option<String>,
    #[schema(example = "490940000")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialLoadRequest {
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Minor units.
    #[schema(example = 200)]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    #[schema(example = "blue")]
    pub design_key: Option<String>,
    #[schema(example = "Apto_GPR")]
    pub program_id: Option<String>,
    pub initial_load: Option<InitialLoadRequest>,
    /// Accepted for compatibility with the Apto API; must be an object.
    #[schema(value_type = Object)]
    pub additional_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Create body: every field but `custodian_uid` and `card` is required. As an update
/// (`POST /cardholders/{id}`) every field is optional and only given fields change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardholderRequest {
    #[schema(example = "Josh")]
    pub first_name: Option<String>,
    #[schema(example = "Wilson")]
    pub last_name: Option<String>,
    /// Your unique user id; unique per tenant and environment.
    #[schema(example = "your-external-user-id")]
    pub custodian_uid: Option<String>,
    #[schema(example = "pat@wilson.com")]
    pub email: Option<String>,
    /// E.123 international notation.
    #[schema(example = "+16508881111")]
    pub phone_number: Option<String>,
    /// YYYY-MM-DD.
    #[schema(example = "1982-06-20")]
    pub date_of_birth: Option<String>,
    pub address: Option<AddressRequest>,
    pub document: Option<DocumentRequest>,
    pub card: Option<CardRequest>,
}

fn address_input(a: &AddressRequest) -> AddressInput<'_> {
    AddressInput {
        street_one: a.street_one.as_deref(),
        street_two: a.street_two.as_deref(),
        locality: a.locality.as_deref(),
        region: a.region.as_deref(),
        postal_code: a.postal_code.as_deref(),
        country: a.country.as_deref(),
    }
}

fn parse_card(card: &CardRequest) -> Result<CardOrderRequest, FieldError> {
    CardOrderRequest::parse(
        card.program_id.as_deref(),
        card.design_key.as_deref(),
        card.initial_load.as_ref().map(|l| (l.currency.as_deref(), l.amount)),
    )
}

fn parse_new(req: &CardholderRequest, today: time::Date, minimum_age: u8) -> Result<NewCardholder, FieldError> {
    let first_name = parse_name("first_name", req.first_name.as_deref())?;
    let last_name = parse_name("last_name", req.last_name.as_deref())?;
    let custodian_uid = parse_custodian_uid(req.custodian_uid.as_deref())?;
    let email = Email::parse(req.email.as_deref())?;
    let phone = PhoneNumber::parse(req.phone_number.as_deref())?;
    let date_of_birth = DateOfBirth::parse(req.date_of_birth.as_deref(), today, minimum_age)?;
    let address = Address::parse(address_input(
        req.address.as_ref().ok_or_else(|| FieldError::missing("address"))?,
    ))?;
    let doc = req.document.as_ref().ok_or_else(|| FieldError::missing("document"))?;
    let document = Document::parse(doc.kind.as_deref(), doc.value.as_deref())?;
    let card = req.card.as_ref().map(parse_card).transpose()?;
    Ok(NewCardholder {
        custodian_uid,
        email,
        phone,
        identity: Identity {
            first_name,
            last_name,
            date_of_birth,
            address,
        },
        document,
        card,
    })
}

fn merge(
    current: &Cardholder,
    req: &CardholderRequest,
    today: time::Date,
    minimum_age: u8,
) -> Result<Merged, FieldError> {
    let mut next = current.clone();
    if req.first_name.is_some() {
        next.identity.first_name = parse_name("first_name", req.first_name.as_deref())?;
    }
    if req.last_name.is_some() {
        next.identity.last_name = parse_name("last_name", req.last_name.as_deref())?;
    }
    if req.custodian_uid.is_some() {
        next.custodian_uid = parse_custodian_uid(req.custodian_uid.as_deref())?;
    }
    if req.email.is_some() {
        next.email = Email::parse(req.email.as_deref())?;
    }
    if req.phone_number.is_some() {
        next.phone = PhoneNumber::parse(req.phone_number.as_deref())?;
    }
    if req.date_of_birth.is_some() {
        next.identity.date_of_birth = DateOfBirth::parse(req.date_of_birth.as_deref(), today, minimum_age)?;
    }
    if let Some(a) = &req.address {
        next.identity.address = Address::parse(address_input(a))?;
    }
    let new_document = req
        .document
        .as_ref()
        .map(|d| Document::parse(d.kind.as_deref(), d.value.as_deref()))
        .transpose()?;
    let card = req.card.as_ref().map(parse_card).transpose()?;
    Ok(Merged {
        cardholder: next,
        new_document,
        card,
    })
}

#[utoipa::path(
    post, path = "/cardholders", tag = "Cardholders",
    request_body = CardholderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")),
    responses(
        (status = 200, description = "Created, or updated when `custodian_uid` matched", body = CardholderEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 409, body = crate::http::error::ErrorEnvelope), (status = 422, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_cardholder(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CardholderRequest>,
) -> ApiResult<Reply> {
    let now = Timestamp::now();
    let input = parse_new(&req, now.date(), onboarding::min_age(&state))?;
    let patch = Patch {
        order: req.card.as_ref().map(parse_card).transpose()?,
        merge: &|current, today, minimum_age| merge(current, &req, today, minimum_age),
    };
    onboarding::create(&state, &ctx, input, &patch, now).await
}

#[utoipa::path(
    post, path = "/cardholders/{cardholder_id}", tag = "Cardholders",
    request_body = CardholderRequest,
    params(("cardholder_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CardholderEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn update_cardholder(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CardholderRequest>,
) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&id)?;
    let patch = Patch {
        order: req.card.as_ref().map(parse_card).transpose()?,
        merge: &|current, today, minimum_age| merge(current, &req, today, minimum_age),
    };
    onboarding::update(&state, &ctx, &id, &patch).await
}

#[utoipa::path(
    get, path = "/cardholders", tag = "Cardholders",
    params(ListParams),
    responses((status = 200, body = CardholderList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_cardholders(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| CardholderId::parse(id).is_ok())?;
    let page = state.cardholders.list_cardholders(&ctx.scope, &page).await?;
    let ids: Vec<CardholderId> = page.items.iter().map(|c| c.id.clone()).collect();
    let cards = state.cards.cards_of(&ctx.scope, &ids).await?;
    let (cardholders, has_more, total) = page_items(&page, |c| CardholderEnvelope::with_cards(c, &cards));
    Reply::ok(&CardholderList {
        cardholders,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}", tag = "Cardholders",
    params(("cardholder_id" = String, Path)),
    responses((status = 200, body = CardholderEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_cardholder(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&id)?;
    let cardholder = state
        .cardholders
        .get_cardholder(&ctx.scope, &id)
        .await
        .map_err(not_found)?;
    let cards = state.cards.cards_of(&ctx.scope, std::slice::from_ref(&id)).await?;
    Reply::ok(&CardholderEnvelope::with_cards(&cardholder, &cards))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("cardholder"),
        other => other.into(),
    }
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/kyc_checks", tag = "Cardholders",
    params(("cardholder_id" = String, Path), ListParams),
    responses((status = 200, body = KycCheckList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_kyc_checks(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&id)?;
    let page = params.page(|k| KycCheckId::parse(k).is_ok())?;
    state
        .cardholders
        .get_cardholder(&ctx.scope, &id)
        .await
        .map_err(not_found)?;
    let page = state.cardholders.list_kyc_checks(&ctx.scope, &id, &page).await?;
    let (kyc_checks, has_more, total) = page_items(&page, |k| KycCheckEnvelope { kyc_check: k.into() });
    Reply::ok(&KycCheckList {
        kyc_checks,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/card_orders", tag = "Cardholders",
    params(("cardholder_id" = String, Path)),
    responses((status = 200, body = CardOrderList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_card_orders(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&id)?;
    state
        .cardholders
        .get_cardholder(&ctx.scope, &id)
        .await
        .map_err(not_found)?;
    let orders = state.cardholders.list_card_orders(&ctx.scope, &id).await?;
    let mut card_orders: Vec<CardOrderView> = orders.iter().map(CardOrderView::from).collect();
    card_orders.reverse();
    Reply::ok(&CardOrderList { card_orders })
}
