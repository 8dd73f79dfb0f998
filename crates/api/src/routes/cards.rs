//! Cards: ordering, lifecycle, reveal, balances, adjustments and ledger entries.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::Timestamp;
use cardplane_domain::card::{Card, CardEvent, ReplacementReason};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::AccountId;
use cardplane_domain::ids::{CardId, CardRevealId, CardholderId, LedgerEntryId};
use cardplane_domain::ledger::{Account, AccountKind, BalanceAdjustment, Direction};
use cardplane_domain::pan::Pan;
use cardplane_domain::program::FormFactor;
use cardplane_domain::{FieldError, api_key::Permission};
use cardplane_store::StoreError;
use cardplane_store::cards::{CardChange, CardReveal, Posted};
use cardplane_store::ledger::{BalanceAfter, PostError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::lookup::{load_card, load_cardholder, load_program, parse_cardholder_id, parse_money};
use crate::http::reply::{Reply, Sensitive, render};
use crate::state::AppState;
use crate::views::{
    BalanceAdjustmentEnvelope, BalanceEnvelope, CardEnvelope, CardList, CardSecretsView, LedgerEntryEnvelope,
    LedgerEntryList, page_items,
};
use crate::workflows::issuing::change_card_state;
use crate::workflows::issuing::{
    IssueSpec, PAN_ATTEMPTS_MAX, adjustment_view, balance_view, card_event, insufficient_program_funds, pan_collision,
    prepare_issue,
};

const DESCRIPTION_LEN_MAX: usize = 255;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyRequest {
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Minor units.
    #[schema(example = 200)]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCardRequest {
    #[schema(example = "Apto_GPR")]
    pub program_id: Option<String>,
    /// virtual (default) or physical.
    pub form_factor: Option<String>,
    /// One of the program's designs; default its first.
    pub design_key: Option<String>,
    pub initial_load: Option<MoneyRequest>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceCardRequest {
    /// lost, stolen, damaged or expiring.
    pub reason: Option<String>,
    /// Default: the old card's.
    pub form_factor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceAdjustmentRequest {
    /// credit (add money) or debit (take it back to the program's funding account).
    #[serde(rename = "type")]
    #[schema(example = "credit")]
    pub kind: Option<String>,
    #[schema(example = 1500)]
    pub amount: Option<i64>,
    #[schema(example = "USD")]
    pub currency: Option<String>,
    #[schema(example = "Payroll deposit")]
    pub description: Option<String>,
}

fn parse_form_factor(raw: Option<&str>, default: FormFactor) -> Result<FormFactor, FieldError> {
    match raw {
        None => Ok(default),
        Some(f) => FormFactor::parse(f).ok_or_else(|| FieldError::invalid("form_factor", "virtual or physical")),
    }
}

fn post_error(e: PostError) -> ApiError {
    match e {
        PostError::InsufficientFunds(_) => insufficient_program_funds(),
        PostError::Store(s) => s.into(),
    }
}

#[utoipa::path(
    post, path = "/cardholders/{cardholder_id}/cards", tag = "Cards",
    request_body = CreateCardRequest,
    params(("cardholder_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CardEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "kyc_not_passed, program_suspended, cardholder_too_young, insufficient_program_funds", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_card(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(cardholder_id): Path<String>,
    JsonBody(req): JsonBody<CreateCardRequest>,
) -> ApiResult<Reply> {
    let cardholder = load_cardholder(&state, &ctx, &parse_cardholder_id(&cardholder_id)?).await?;
    let program_ref = req
        .program_id
        .as_deref()
        .ok_or_else(|| FieldError::missing("program_id"))?;
    let program = load_program(&state, &ctx, program_ref)
        .await
        .map_err(|_| ApiError::invalid("program_not_found", "No such program").with_param("program_id"))?;
    let form_factor = parse_form_factor(req.form_factor.as_deref(), FormFactor::Virtual)?;
    let initial_load = req
        .initial_load
        .as_ref()
        .map(|l| parse_money("initial_load.", l.currency.as_deref(), l.amount))
        .transpose()?;
    let spec = IssueSpec {
        program: &program,
        form_factor,
        design_key: req.design_key.as_deref(),
        initial_load,
        replacing: None,
    };
    for _ in 0..PAN_ATTEMPTS_MAX {
        let now = Timestamp::now();
        let (issue, events) = prepare_issue(&state, &ctx.scope, &cardholder, &spec, now).await?;
        let body = render(&CardEnvelope {
            card: (&issue.card).into(),
        })?;
        let response = ctx.records(StatusCode::OK, &body);
        match state
            .cards
            .write_cards(&ctx.scope, &[issue], &[], &events, response.as_ref(), now)
            .await
        {
            Ok(()) => return Ok(Reply::committed(StatusCode::OK, body)),
            Err(e) if pan_collision(&e) => continue,
            Err(e) => return Err(post_error(e)),
        }
    }
    Err(ApiError::internal("could not allocate a unique PAN"))
}

#[utoipa::path(
    get, path = "/cards", tag = "Cards",
    params(ListParams),
    responses((status = 200, body = CardList)),
    security(("basic_auth" = []))
)]
pub async fn list_cards(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| CardId::parse(id).is_ok())?;
    let page = state.cards.list_cards(&ctx.scope, None, &page).await?;
    let (cards, has_more, total) = page_items(&page, |c| CardEnvelope { card: c.into() });
    Reply::ok(&CardList { cards, has_more, total })
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/cards", tag = "Cards",
    params(("cardholder_id" = String, Path), ListParams),
    responses((status = 200, body = CardList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_cardholder_cards(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(cardholder_id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let id: CardholderId = parse_cardholder_id(&cardholder_id)?;
    load_cardholder(&state, &ctx, &id).await?;
    let page = params.page(|c| CardId::parse(c).is_ok())?;
    let page = state.cards.list_cards(&ctx.scope, Some(&id), &page).await?;
    let (cards, has_more, total) = page_items(&page, |c| CardEnvelope { card: c.into() });
    Reply::ok(&CardList { cards, has_more, total })
}

#[utoipa::path(
    get, path = "/cards/{card_id}", tag = "Cards",
    params(("card_id" = String, Path)),
    responses((status = 200, body = CardEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_card(State(state): State<AppState>, ctx: Ctx, Path(card_id): Path<String>) -> ApiResult<Reply> {
    let card = load_card(&state, &ctx, &card_id).await?;
    Reply::ok(&CardEnvelope { card: (&card).into() })
}

/// Applies a lifecycle event through the one card workflow (shared with the console).
async fn transition(state: &AppState, ctx: &Ctx, raw_id: &str, event: CardEvent) -> ApiResult<Reply> {
    let card = load_card(state, ctx, raw_id).await?;
    let (_, body) = change_card_state(state, &ctx.scope, card, event, |next| {
        let body = render(&CardEnvelope { card: next.into() })?;
        Ok((ctx.records(StatusCode::OK, &body), body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

macro_rules! lifecycle_endpoint {
    ($name:ident, $path:literal, $event:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post, path = $path, tag = "Cards",
            params(("card_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
            responses(
                (status = 200, body = CardEnvelope),
                (status = 404, body = crate::http::error::ErrorEnvelope),
                (status = 409, description = "Illegal transition: card_already_active, card_frozen, card_not_activated, card_already_frozen, card_not_frozen, card_cancelled", body = crate::http::error::ErrorEnvelope),
            ),
            security(("basic_auth" = []))
        )]
        pub async fn $name(State(state): State<AppState>, ctx: Ctx, Path(card_id): Path<String>) -> ApiResult<Reply> {
            transition(&state, &ctx, &card_id, $event).await
        }
    };
}

lifecycle_endpoint!(
    activate_card,
    "/cards/{card_id}/activate",
    CardEvent::Activate,
    "CREATED -> ACTIVE."
);
lifecycle_endpoint!(
    freeze_card,
    "/cards/{card_id}/freeze",
    CardEvent::Freeze,
    "ACTIVE -> INACTIVE."
);
lifecycle_endpoint!(
    unfreeze_card,
    "/cards/{card_id}/unfreeze",
    CardEvent::Unfreeze,
    "INACTIVE -> ACTIVE."
);
lifecycle_endpoint!(
    close_card,
    "/cards/{card_id}/close",
    CardEvent::Close,
    "Any live state -> CANCELLED (terminal)."
);

#[utoipa::path(
    post, path = "/cards/{card_id}/replace", tag = "Cards",
    request_body = ReplaceCardRequest,
    params(("card_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "The new card, on the same balance", body = CardEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn replace_card(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(card_id): Path<String>,
    JsonBody(req): JsonBody<ReplaceCardRequest>,
) -> ApiResult<Reply> {
    let old = load_card(&state, &ctx, &card_id).await?;
    let reason = match req.reason.as_deref() {
        None => return Err(FieldError::missing("reason").into()),
        Some(r) => ReplacementReason::parse(r)
            .ok_or_else(|| FieldError::invalid("reason", "lost, stolen, damaged or expiring"))?,
    };
    let form_factor = parse_form_factor(req.form_factor.as_deref(), old.form_factor)?;
    old.state
        .apply(CardEvent::Replace)
        .map_err(|x| ApiError::conflict(x.code(), x.to_string()))?;
    if old.replaced_by.is_some() {
        return Err(ApiError::conflict(
            "card_already_replaced",
            "This card already has a replacement",
        ));
    }
    let cardholder = load_cardholder(&state, &ctx, &old.cardholder_id).await?;
    let program = state.programs.get_program(&ctx.scope, &old.program).await?;
    for _ in 0..PAN_ATTEMPTS_MAX {
        let now = Timestamp::now();
        let spec = IssueSpec {
            program: &program,
            form_factor,
            design_key: Some(&old.design_key),
            initial_load: None,
            replacing: Some((&old, reason)),
        };
        let (issue, mut events) = prepare_issue(&state, &ctx.scope, &cardholder, &spec, now).await?;
        let mut replaced = Card {
            replaced_by: Some(issue.card.id.clone()),
            updated_at: now,
            version: old.version + 1,
            ..old.clone()
        };
        // Lost or stolen: the old card stops at once. Otherwise it works until the new one is
        // activated, unless the new one is virtual and so active already.
        let new_is_live = issue.card.state == cardplane_domain::card::CardState::Active;
        if reason.closes_old_card_at_once() || new_is_live {
            replaced = replaced
                .apply(CardEvent::Close, now)
                .map_err(|x| ApiError::conflict(x.code(), x.to_string()))?;
            replaced.version = old.version + 1;
        }
        events.push(card_event(&ctx, EventType::CardUpdated, &replaced, now));
        let body = render(&CardEnvelope {
            card: (&issue.card).into(),
        })?;
        let response = ctx.records(StatusCode::OK, &body);
        let change = CardChange {
            card: replaced,
            expected_version: old.version,
        };
        match state
            .cards
            .write_cards(&ctx.scope, &[issue], &[change], &events, response.as_ref(), now)
            .await
        {
            Ok(()) => return Ok(Reply::committed(StatusCode::OK, body)),
            Err(e) if pan_collision(&e) => continue,
            Err(PostError::Store(StoreError::Conflict { .. })) => {
                return Err(ApiError::conflict(
                    "concurrent_update",
                    "The card was changed concurrently; retry",
                ));
            }
            Err(e) => return Err(post_error(e)),
        }
    }
    Err(ApiError::internal("could not allocate a unique PAN"))
}

#[utoipa::path(
    post, path = "/cards/{card_id}/reveal", tag = "Cards",
    params(("card_id" = String, Path)),
    responses(
        (status = 200, description = "PAN, CVV and expiry. Needs the `reveal` permission; every reveal is recorded. Never stored for idempotent replay.", body = CardSecretsView),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn reveal_card(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(card_id): Path<String>,
) -> ApiResult<Response> {
    if !ctx.key.has(Permission::Reveal) {
        return Err(ApiError::forbidden(
            "reveal_not_permitted",
            "This API key may not reveal card numbers",
        ));
    }
    let card = load_card(&state, &ctx, &card_id).await?;
    let raw = state
        .vault
        .open(&card.pan_sealed, &Card::vault_context(&card.id))
        .map_err(ApiError::internal)?;
    let pan = Pan::parse(std::str::from_utf8(&raw).map_err(ApiError::internal)?).map_err(ApiError::internal)?;
    let now = Timestamp::now();
    let reveal = CardReveal {
        id: CardRevealId::generate(),
        card_id: card.id.clone(),
        api_key_id: ctx.key.id.to_string(),
        request_id: headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        created_at: now,
    };
    let data = serde_json::json!({"card_id": card.id, "api_key_id": ctx.key.id, "reveal_id": reveal.id});
    let event = Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        EventType::CardRevealed,
        card.id.as_str(),
        data,
        now,
    );
    // Recorded, with its audit entry, before anything is shown; the body (the PAN) is never
    // handed to the audit draft.
    let audit = ctx.audit.as_ref().map(|d| d.with_effect(StatusCode::OK, "{}"));
    state
        .cards
        .record_reveal(&ctx.scope, &reveal, &[event], audit.as_ref())
        .await?;
    let secrets = CardSecretsView {
        card_id: card.id.to_string(),
        pan: pan.expose().to_owned(),
        cvv: pan.cvv(&state.card_keys.cvv, card.exp_month, card.exp_year),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        expiration: card.expiration(),
    };
    let mut response = Reply::ok(&secrets)?.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(Sensitive);
    Ok(response)
}

#[utoipa::path(
    get, path = "/cards/{card_id}/balance", tag = "Cards",
    params(("card_id" = String, Path)),
    responses((status = 200, body = BalanceEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_balance(State(state): State<AppState>, ctx: Ctx, Path(card_id): Path<String>) -> ApiResult<Reply> {
    let card = load_card(&state, &ctx, &card_id).await?;
    let account = state.ledger.get_account(&ctx.scope, &card.account_id).await?;
    Reply::ok(&BalanceEnvelope {
        balance: balance_view(&card.id, &account),
    })
}

#[utoipa::path(
    post, path = "/cards/{card_id}/balance_adjustments", tag = "Cards",
    request_body = BalanceAdjustmentRequest,
    params(("card_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = BalanceAdjustmentEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "insufficient_funds (debit), insufficient_program_funds (credit), card_cancelled (credit), balance_limit_exceeded", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
// Long: parsing, the journal, its events and the write of one adjustment (credit or debit) in
// order, with each refusal where it happens.
pub async fn create_balance_adjustment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(card_id): Path<String>,
    JsonBody(req): JsonBody<BalanceAdjustmentRequest>,
) -> ApiResult<Reply> {
    let card = load_card(&state, &ctx, &card_id).await?;
    let direction = match req.kind.as_deref() {
        None => return Err(FieldError::missing("type").into()),
        Some(k) => Direction::parse(k).ok_or_else(|| FieldError::invalid("type", "credit or debit"))?,
    };
    let amount = parse_money("", req.currency.as_deref(), req.amount)?;
    if amount.currency() != card.currency {
        return Err(
            ApiError::invalid("currency_mismatch", format!("this card holds {}", card.currency)).with_param("currency"),
        );
    }
    let description = match req.description.as_deref().map(str::trim) {
        None | Some("") => match direction {
            Direction::Credit => "Credit".to_owned(),
            Direction::Debit => "Debit".to_owned(),
        },
        Some(d) if d.chars().count() > DESCRIPTION_LEN_MAX || d.chars().any(char::is_control) => {
            return Err(FieldError::invalid(
                "description",
                format!("at most {DESCRIPTION_LEN_MAX} printable characters"),
            )
            .into());
        }
        Some(d) => d.to_owned(),
    };
    // Money can always be taken back from a closed card, never added to one.
    if direction == Direction::Credit && card.state == cardplane_domain::card::CardState::Cancelled {
        return Err(ApiError::conflict("card_cancelled", "the card is cancelled"));
    }
    let account = state.ledger.get_account(&ctx.scope, &card.account_id).await?;
    let funding = state
        .programs
        .program_account(&ctx.scope, &card.program, AccountKind::ProgramFunding)
        .await?;
    let now = Timestamp::now();
    let (adjustment, journal) =
        BalanceAdjustment::post(&card.id, &account, &funding, direction, amount, description, now)
            .map_err(ApiError::internal)?;
    journal.check_balance_limits([&account, &funding])?;
    let finish = |balances: &[(AccountId, BalanceAfter)]| {
        let after = match balances.iter().find(|(a, _)| *a == card.account_id) {
            Some((_, b)) => Account {
                balance: b.balance,
                held: b.held,
                ..account.clone()
            },
            None => account.clone(),
        };
        let view = adjustment_view(&adjustment, balance_view(&card.id, &after));
        let data = serde_json::to_value(&view).unwrap_or_default();
        let event = Event::new(
            &ctx.scope.tenant_id,
            ctx.scope.environment,
            EventType::BalanceAdjustmentCreated,
            adjustment.id.as_str(),
            data,
            now,
        );
        let body = serde_json::to_string(&BalanceAdjustmentEnvelope {
            balance_adjustment: view,
        })
        .unwrap_or_default();
        Posted {
            events: vec![event],
            response: ctx.records(StatusCode::OK, &body),
            body,
        }
    };
    match state
        .cards
        .post_adjustment(&ctx.scope, &journal, Some(&adjustment), &finish, now)
        .await
    {
        Ok(posted) => Ok(Reply::committed(StatusCode::OK, posted.body)),
        Err(PostError::InsufficientFunds(acct)) if acct == card.account_id => Err(ApiError::conflict(
            "insufficient_funds",
            "The card's spendable balance cannot cover this debit",
        )),
        Err(e) => Err(post_error(e)),
    }
}

#[utoipa::path(
    get, path = "/cards/{card_id}/ledger_entries", tag = "Cards",
    params(("card_id" = String, Path), ListParams),
    responses((status = 200, body = LedgerEntryList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_ledger_entries(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(card_id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let card = load_card(&state, &ctx, &card_id).await?;
    let page = params.page(|id| LedgerEntryId::parse(id).is_ok())?;
    let page = state.ledger.list_entries(&ctx.scope, &card.account_id, &page).await?;
    let (ledger_entries, has_more, total) = page_items(&page, |e| LedgerEntryEnvelope { ledger_entry: e.into() });
    Reply::ok(&LedgerEntryList {
        ledger_entries,
        has_more,
        total,
    })
}
