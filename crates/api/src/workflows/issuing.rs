//! Issuing a card: the one place that turns a program, a cardholder and a request into a new
//! card with its PAN sealed in the vault, its ledger account and its initial load. Used by
//! `POST /cardholders/{id}/cards`, by card orders placed with a cardholder, and by replacement.

use cardplane_domain::Timestamp;
use cardplane_domain::card::{Card, CardState, ReplacementReason, ShippingStatus};
use cardplane_domain::cardholder::{Cardholder, age_in_years};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::CardId;
use cardplane_domain::ledger::{Account, AccountKind, BalanceAdjustment, Direction};
use cardplane_domain::money::Money;
use cardplane_domain::pan::Pan;
use cardplane_domain::program::{FormFactor, IssueRefusal, Program};
use cardplane_store::Scope;
use cardplane_store::cards::CardIssue;
use cardplane_store::ledger::PostError;

use crate::http::error::{ApiError, ErrorType};
use crate::http::extract::Ctx;
use crate::state::AppState;
use crate::views::{BalanceAdjustmentView, BalanceView, CardView};

/// PAN generation retries on the (rare) collision with an existing card's PAN.
pub const PAN_ATTEMPTS_MAX: usize = 8;

pub fn refusal(r: IssueRefusal) -> ApiError {
    let err = if r.is_request_error() {
        ApiError::invalid(r.code(), r.to_string())
    } else {
        ApiError::conflict(r.code(), r.to_string())
    };
    match r.param() {
        Some(p) => err.with_param(p),
        None => err,
    }
}

pub fn insufficient_program_funds() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        ErrorType::ConflictError,
        "insufficient_program_funds",
        "The program's funding account cannot cover this load; fund the program first",
    )
}

/// Whether a failed write collided on a PAN (then: generate another and retry).
pub fn pan_collision(e: &PostError) -> bool {
    matches!(e, PostError::Store(s) if s.is_conflict_on("cards_pan_hash", "pan_hash"))
}

pub struct IssueSpec<'a> {
    pub program: &'a Program,
    pub form_factor: FormFactor,
    pub design_key: Option<&'a str>,
    pub initial_load: Option<Money>,
    /// For replacements: the card replaced, why, and the account it shares.
    pub replacing: Option<(&'a Card, ReplacementReason)>,
}

pub fn card_event(ctx: &Ctx, kind: EventType, card: &Card, now: Timestamp) -> Event {
    card_event_in(&ctx.scope, kind, card, now)
}

pub fn card_event_in(scope: &Scope, kind: EventType, card: &Card, now: Timestamp) -> Event {
    let data = serde_json::to_value(CardView::from(card)).unwrap_or_default();
    Event::new(&scope.tenant_id, scope.environment, kind, card.id.as_str(), data, now)
}

pub fn balance_view(card_id: &CardId, account: &Account) -> BalanceView {
    BalanceView {
        card_id: card_id.to_string(),
        currency: account.currency.code().to_owned(),
        balance: account.balance,
        spendable: account.available(),
        held: account.held,
    }
}

pub fn adjustment_view(a: &BalanceAdjustment, balance: BalanceView) -> BalanceAdjustmentView {
    BalanceAdjustmentView {
        id: a.id.to_string(),
        card_id: a.card_id.to_string(),
        kind: a.direction.as_str().to_owned(),
        amount: a.amount.minor(),
        currency: a.amount.currency().code().to_owned(),
        description: a.description.clone(),
        journal_id: a.journal_id.to_string(),
        balance,
        created_at: a.created_at.to_rfc3339(),
    }
}

/// Builds everything a new card writes, with a fresh PAN. Call again after a PAN collision.
// Long: every rule a new card must pass and everything it writes (card, PAN, account, initial
// load, events), in the order they apply.
pub async fn prepare_issue(
    state: &AppState,
    scope: &Scope,
    cardholder: &Cardholder,
    spec: &IssueSpec<'_>,
    now: Timestamp,
) -> Result<(CardIssue, Vec<Event>), ApiError> {
    let program = spec.program;
    let age = age_in_years(cardholder.identity.date_of_birth.date(), now.date());
    let design = program
        .check_issue(
            cardholder.kyc.passed(),
            age,
            spec.form_factor,
            spec.design_key,
            spec.initial_load.map(|m| m.currency()),
        )
        .map_err(refusal)?;
    let pan = Pan::generate(&program.bin, &mut rand::rng());
    let id = CardId::generate();
    let (exp_month, exp_year) = program.expiry_for(now);
    let new_account = match spec.replacing {
        Some(_) => None,
        None => {
            let mut account = Account::open(
                &scope.tenant_id,
                scope.environment,
                &program.id,
                AccountKind::CardBalance,
                program.currency,
                now,
            );
            // Under custodian authority the custodian holds the money: our card account records
            // postings but has no floor to enforce.
            if program.funding_model == cardplane_domain::program::FundingModel::CustodianAuthority {
                account.floor = None;
            }
            Some(account)
        }
    };
    let account_id = match (&new_account, spec.replacing) {
        (Some(a), _) => a.id.clone(),
        (None, Some((old, _))) => old.account_id.clone(),
        (None, None) => unreachable!("a card has a new account or replaces one"),
    };
    let card = Card {
        id: id.clone(),
        tenant_id: scope.tenant_id.clone(),
        environment: scope.environment,
        cardholder_id: cardholder.id.clone(),
        program: program.id.clone(),
        program_ref: program.program_id.clone(),
        network: program.network,
        currency: program.currency,
        account_id,
        form_factor: spec.form_factor,
        design_key: design,
        state: CardState::initial(spec.form_factor),
        shipping_status: (spec.form_factor == FormFactor::Physical).then_some(ShippingStatus::Ordered),
        bin: program.bin.clone(),
        last4: pan.last4().to_owned(),
        exp_month,
        exp_year,
        pan_sealed: state.vault.seal(pan.expose().as_bytes(), &Card::vault_context(&id)),
        pan_hash: pan.lookup_hash(&state.card_keys.pan_lookup),
        replaces: spec.replacing.map(|(old, _)| old.id.clone()),
        replacement_reason: spec.replacing.map(|(_, r)| r),
        replaced_by: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut events = vec![card_event_in(scope, EventType::CardCreated, &card, now)];
    let initial_load = match (spec.initial_load, &new_account) {
        (Some(amount), Some(account)) => {
            let funding = state
                .programs
                .program_account(scope, &program.id, AccountKind::ProgramFunding)
                .await?;
            let (adjustment, journal) = BalanceAdjustment::post(
                &id,
                account,
                &funding,
                Direction::Credit,
                amount,
                "Initial load".into(),
                now,
            )
            .map_err(ApiError::internal)?;
            journal.check_balance_limits([account, &funding])?;
            let after = Account {
                balance: amount.minor(),
                ..account.clone()
            };
            let view = adjustment_view(&adjustment, balance_view(&id, &after));
            let data = serde_json::to_value(&view).unwrap_or_default();
            events.push(Event::new(
                &scope.tenant_id,
                scope.environment,
                EventType::BalanceAdjustmentCreated,
                adjustment.id.as_str(),
                data,
                now,
            ));
            Some((adjustment, journal))
        }
        _ => None,
    };
    Ok((
        CardIssue {
            card,
            new_account,
            initial_load,
        },
        events,
    ))
}

/// Applies a lifecycle event to a card, with its `card.updated` event and the caller's effect
/// records (idempotent reply, audit entry) in the same transaction. Activating a replacement
/// closes the card it replaces if that one was kept working (damaged / expiring). `records` sees
/// the card as it will be stored and returns the records plus whatever the caller wants back.
pub async fn change_card_state<R>(
    state: &crate::state::AppState,
    scope: &Scope,
    card: Card,
    event: cardplane_domain::card::CardEvent,
    records: impl FnOnce(&Card) -> crate::http::error::ApiResult<(Option<cardplane_store::EffectRecords>, R)>,
) -> crate::http::error::ApiResult<(Card, R)> {
    use cardplane_domain::card::CardEvent;
    use cardplane_store::StoreError;
    use cardplane_store::cards::CardChange;

    use crate::http::error::ApiError;

    let now = Timestamp::now();
    let next = card
        .apply(event, now)
        .map_err(|x| ApiError::conflict(x.code(), x.to_string()))?;
    let mut changes = vec![CardChange {
        card: next.clone(),
        expected_version: card.version,
    }];
    let mut events = vec![card_event_in(scope, EventType::CardUpdated, &next, now)];
    if event == CardEvent::Activate
        && let Some(old_id) = &card.replaces
    {
        let old = state.cards.get_card(scope, old_id).await?;
        if let Ok(closed) = old.apply(CardEvent::Close, now) {
            events.push(card_event_in(scope, EventType::CardUpdated, &closed, now));
            changes.push(CardChange {
                card: closed,
                expected_version: old.version,
            });
        }
    }
    let (effects, out) = records(&next)?;
    match state
        .cards
        .write_cards(scope, &[], &changes, &events, effects.as_ref(), now)
        .await
    {
        Ok(()) => Ok((next, out)),
        Err(PostError::Store(StoreError::Conflict { .. })) => Err(ApiError::conflict(
            "concurrent_update",
            "The card was changed concurrently; retry",
        )),
        Err(PostError::InsufficientFunds(_)) => Err(insufficient_program_funds()),
        Err(PostError::Store(e)) => Err(e.into()),
    }
}
