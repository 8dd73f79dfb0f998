//! The authorization engine's application layer: resolves the card from the network message,
//! gathers program, controls and (for custodian programs) the custodian's verdict, then hands one
//! closure to the store that runs the pure decision under the store's locks and describes what to
//! write. Network endpoints and the sandbox simulator both come through here.

use std::time::Duration;

use cardplane_domain::authorization::{
    AuthorizationRequest, ControlUsage, CustodianVerdict, DecisionInput, DeclineReason, Funds, Merchant, ResponseCode,
    Transaction, TransactionKind, TransactionState, authorization_code, clearing_cap, decide, hold_ttl_secs,
};
use cardplane_domain::card::Card;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{AccountId, TransactionId};
use cardplane_domain::ledger::{AccountKind, Direction, Journal, JournalKind};
use cardplane_domain::money::{Currency, Money};
use cardplane_domain::pan::Pan;
use cardplane_domain::program::{FundingModel, Program};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::ledger::PostError;
use cardplane_store::network::ControlScopeKind;
use cardplane_store::transactions::{Answer, ControlScope, ControlSpec, Locked, Message, Outcome};
use cardplane_store::{Scope, StoreError};

use crate::custodian::{CustodianCall, ask};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{NetworkAnswerView, TransactionView};

/// An authorization request (or an incremental one, or the network's stand-in advice).
#[derive(Debug, Clone)]
pub struct AuthorizationMessage {
    pub network_transaction_id: String,
    pub pan: Pan,
    /// (year, month) as the network sent it.
    pub expiration: (u16, u8),
    pub amount: i64,
    pub currency: Currency,
    pub merchant: Merchant,
    pub entry_mode: String,
    pub partial_approval_supported: bool,
    /// Incremental authorization of this original.
    pub original: Option<String>,
    /// The network already approved it while we were unreachable: always posted.
    pub stand_in_advice: bool,
}

#[derive(Debug, Clone)]
pub struct ReversalMessage {
    pub network_transaction_id: String,
    pub original: String,
    /// Partial reversal; `None` reverses whatever is still held.
    pub amount: Option<i64>,
}

/// A clearing (capture) of an authorization, or with no (usable) authorization a force post; or a
/// refund (a credit).
#[derive(Debug, Clone)]
pub struct PostingMessage {
    pub network_transaction_id: String,
    pub original: Option<String>,
    pub pan: Option<Pan>,
    pub amount: i64,
    pub currency: Currency,
    pub merchant: Option<Merchant>,
}

fn answer_json(view: &NetworkAnswerView) -> String {
    serde_json::to_string(view).unwrap_or_default()
}

fn declined(
    reason: DeclineReason,
    currency: Option<Currency>,
    transaction: Option<&TransactionId>,
) -> NetworkAnswerView {
    NetworkAnswerView {
        decision: "declined".into(),
        authorization_id: transaction.map(ToString::to_string),
        approved_amount: 0,
        response_code: reason.response_code().as_str().into(),
        reason: Some(reason.as_str().into()),
        authorization_code: None,
        available_balance: None,
        currency: currency.map(|c| c.code().to_owned()),
        stand_in: false,
    }
}

fn event(t: &Transaction, kind: EventType, now: Timestamp) -> Event {
    let data = serde_json::to_value(TransactionView::from(t)).unwrap_or_default();
    Event::new(&t.tenant_id, t.environment, kind, t.id.as_str(), data, now)
}

fn card_scope(card: &Card) -> Scope {
    Scope {
        tenant_id: card.tenant_id.clone(),
        environment: card.environment,
    }
}

fn post_error(e: PostError) -> ApiError {
    match e {
        PostError::Store(s) => s.into(),
        PostError::InsufficientFunds(_) => ApiError::internal("a hold was refused under the account lock"),
    }
}

/// The card a PAN names in this environment (the network only reaches its own environment).
async fn card_for(state: &AppState, environment: Environment, pan: &Pan) -> Result<Option<Card>, ApiError> {
    let card = state
        .cards
        .find_card_by_pan_hash(&pan.lookup_hash(&state.card_keys.pan_lookup))
        .await?;
    Ok(card.filter(|c| c.environment == environment))
}

/// Every control that applies to a card: the program's defaults (per card) and the tenant's
/// controls on the card, its cardholder or its program.
pub async fn controls_for(state: &AppState, card: &Card, program: &Program) -> Result<Vec<ControlSpec>, ApiError> {
    let mut specs: Vec<ControlSpec> = program
        .spend_controls
        .iter()
        .enumerate()
        .map(|(i, limit)| ControlSpec {
            id: format!("{}:default:{i}", program.program_id),
            limit: limit.clone(),
            scope: ControlScope::Card(card.id.clone()),
        })
        .collect();
    let ids = [card.id.as_str(), card.cardholder_id.as_str(), program.id.as_str()];
    for c in state.network.active_spend_controls(&ids).await? {
        if c.tenant_id != card.tenant_id || c.environment != card.environment {
            continue;
        }
        let scope = match c.scope_kind {
            ControlScopeKind::Card => ControlScope::Card(card.id.clone()),
            ControlScopeKind::Cardholder => ControlScope::Cardholder(card.cardholder_id.clone()),
            ControlScopeKind::Program => ControlScope::Program(program.id.clone()),
        };
        specs.push(ControlSpec {
            id: c.id.to_string(),
            limit: c.limit,
            scope,
        });
    }
    Ok(specs)
}

async fn custodian_verdict(
    state: &AppState,
    card: &Card,
    program: &Program,
    msg: &AuthorizationMessage,
    received: Timestamp,
) -> Result<(CustodianVerdict, Option<Timestamp>, Option<Timestamp>), ApiError> {
    let Some(config) = &program.custodian else {
        return Ok((CustodianVerdict::Declined, None, None));
    };
    let secret = state
        .vault
        .open(
            &config.secret_sealed,
            &format!("program.custodian_secret:{}", program.id),
        )
        .map_err(ApiError::internal)?;
    let elapsed = Timestamp::now().as_micros() - received.as_micros();
    let left = i64::from(config.deadline_ms) * 1000 - elapsed;
    let deadline = Duration::from_micros(u64::try_from(left.max(0)).unwrap_or(0));
    let body = serde_json::json!({
        "type": "authorization.request",
        "card_id": card.id, "cardholder_id": card.cardholder_id, "program_id": program.program_id,
        "network_transaction_id": msg.network_transaction_id,
        "amount": msg.amount, "currency": msg.currency,
        "merchant": {"id": msg.merchant.id, "name": msg.merchant.name, "mcc": msg.merchant.mcc,
                     "country": msg.merchant.country, "city": msg.merchant.city},
    });
    let outcome = ask(
        &state.http,
        &state.breakers,
        CustodianCall {
            breaker_key: program.id.as_str(),
            url: &config.url,
            secret: &secret,
            deadline,
            stand_in: config.stand_in,
            amount: msg.amount,
            body,
        },
    )
    .await;
    Ok((outcome.verdict, outcome.sent_at, outcome.answered_at))
}

pub async fn authorize(
    state: &AppState,
    environment: Environment,
    msg: AuthorizationMessage,
) -> Result<Answer, ApiError> {
    let received = Timestamp::now();
    let card = card_for(state, environment, &msg.pan).await?;
    let Some(card) = card else {
        // No card: nothing to hold or record but the answer, so a retry gets the same one.
        let answer = answer_json(&declined(DeclineReason::CardNotFound, Some(msg.currency), None));
        let message = Message {
            environment,
            network_transaction_id: &msg.network_transaction_id,
            kind: "authorization",
            account: None,
            original: None,
            controls: &[],
            now: received,
        };
        let decide = |_: &Locked| Outcome {
            answer: answer.clone(),
            ..Outcome::default()
        };
        return state
            .transactions
            .handle_message(&message, &decide)
            .await
            .map_err(post_error);
    };
    let scope = card_scope(&card);
    let program = state.programs.get_program(&scope, &card.program).await?;
    let controls = controls_for(state, &card, &program).await?;
    let request = AuthorizationRequest {
        amount: msg.amount,
        currency: msg.currency,
        merchant: msg.merchant.clone(),
        partial_approval_supported: msg.partial_approval_supported,
    };
    let expiration_matches = msg.expiration == (card.exp_year, card.exp_month);

    // Custodian programs: ask the custodian only if nothing before the funds step declines.
    let mut custodian = None;
    if program.funding_model == FundingModel::CustodianAuthority && !msg.stand_in_advice && msg.original.is_none() {
        let usages: Vec<ControlUsage> = state
            .transactions
            .control_usage(&controls, received)
            .await?
            .into_iter()
            .map(|(u, _)| u)
            .collect();
        let pre = decide(&DecisionInput {
            card: Some(&card),
            expiration_matches,
            program: Some(&program),
            merchant_rules: &program.merchant_rules,
            controls: &usages,
            request: &request,
            funds: Funds::NotYetChecked,
            now: received,
        });
        if pre.approved {
            custodian = Some(custodian_verdict(state, &card, &program, &msg, received).await?);
        }
    }
    let message = Message {
        environment,
        network_transaction_id: &msg.network_transaction_id,
        kind: if msg.original.is_some() {
            "incremental_authorization"
        } else {
            "authorization"
        },
        account: Some(&card.account_id),
        original: msg.original.as_deref(),
        controls: &controls,
        now: received,
    };
    let decide_fn = |locked: &Locked| {
        let now = Timestamp::now();
        if msg.original.is_some() {
            return incremental(locked, &card, &program, &request, expiration_matches, now);
        }
        let funds = match &custodian {
            Some((verdict, _, _)) => Funds::Custodian(*verdict),
            None => Funds::Stored {
                spendable: locked.spendable(),
            },
        };
        let mut decision = decide(&DecisionInput {
            card: Some(&card),
            expiration_matches,
            program: Some(&program),
            merchant_rules: &program.merchant_rules,
            controls: &locked.usages,
            request: &request,
            funds,
            now,
        });
        let mut hold = decision.approved_amount;
        if msg.stand_in_advice {
            // The network approved while we were unreachable: it stands. The hold reserves what
            // the card has; a shortfall at clearing is the program's loss, never an overdraft.
            decision = cardplane_domain::authorization::Decision {
                approved: true,
                approved_amount: msg.amount,
                response_code: ResponseCode::Approved,
                reason: None,
                stand_in: true,
                trace: vec![cardplane_domain::authorization::TraceStep {
                    check: "stand_in_advice",
                    result: "pass",
                    detail: "approved by the network on our behalf; recorded as advised".into(),
                }],
            };
            hold = msg.amount.min(locked.spendable().max(0));
        }
        if !decision.approved {
            hold = 0;
        }
        let id = TransactionId::generate();
        let (sent_at, answered_at) = custodian.as_ref().map_or((None, None), |(_, s, a)| (*s, *a));
        let transaction = Transaction {
            id: id.clone(),
            tenant_id: card.tenant_id.clone(),
            environment: card.environment,
            card_id: card.id.clone(),
            cardholder_id: card.cardholder_id.clone(),
            program_id: program.id.clone(),
            account_id: card.account_id.clone(),
            kind: TransactionKind::Authorization,
            state: if decision.approved {
                TransactionState::Pending
            } else {
                TransactionState::Declined
            },
            network_transaction_id: msg.network_transaction_id.clone(),
            currency: msg.currency,
            requested_amount: msg.amount,
            authorized_amount: if decision.approved { decision.approved_amount } else { 0 },
            held_amount: hold,
            cleared_amount: 0,
            reversed_amount: 0,
            response_code: decision.response_code,
            decline_reason: decision.reason,
            authorization_code: decision.approved.then(|| authorization_code(&mut rand::rng())),
            merchant: msg.merchant.clone(),
            entry_mode: msg.entry_mode.clone(),
            stand_in: decision.stand_in,
            decision_trace: serde_json::to_value(&decision.trace).unwrap_or_default(),
            received_at: received,
            custodian_sent_at: sent_at,
            custodian_answered_at: answered_at,
            answered_at: now,
            expires_at: decision
                .approved
                .then(|| now.plus_secs(hold_ttl_secs(&msg.merchant.mcc))),
            created_at: now,
            updated_at: now,
        };
        let available = (program.funding_model == FundingModel::StoredBalance).then(|| locked.spendable() - hold);
        let view = NetworkAnswerView {
            decision: if decision.approved { "approved" } else { "declined" }.into(),
            authorization_id: Some(id.to_string()),
            approved_amount: transaction.authorized_amount,
            response_code: decision.response_code.as_str().into(),
            reason: decision.reason.map(|r| r.as_str().to_owned()),
            authorization_code: transaction.authorization_code.clone(),
            available_balance: available,
            currency: Some(msg.currency.code().to_owned()),
            stand_in: decision.stand_in,
        };
        Outcome {
            events: vec![event(&transaction, EventType::TransactionCreated, now)],
            new_transactions: vec![transaction],
            held_delta: hold,
            answer: answer_json(&view),
            transaction_id: Some(id),
            ..Outcome::default()
        }
    };
    state
        .transactions
        .handle_message(&message, &decide_fn)
        .await
        .map_err(post_error)
}

/// An incremental authorization raises a pending hold, through the same checks for the increment.
fn incremental(
    locked: &Locked,
    card: &Card,
    program: &Program,
    request: &AuthorizationRequest,
    expiration_matches: bool,
    now: Timestamp,
) -> Outcome {
    let currency = Some(request.currency);
    let Some(original) = locked.original.as_ref().filter(|o| o.card_id == card.id) else {
        return Outcome {
            answer: answer_json(&declined(DeclineReason::OriginalNotFound, currency, None)),
            ..Outcome::default()
        };
    };
    if original.state != TransactionState::Pending {
        let view = declined(DeclineReason::OriginalNotPending, currency, Some(&original.id));
        return Outcome {
            answer: answer_json(&view),
            transaction_id: Some(original.id.clone()),
            ..Outcome::default()
        };
    }
    let funds = match program.funding_model {
        FundingModel::StoredBalance => Funds::Stored {
            spendable: locked.spendable(),
        },
        // The custodian approved the original; increments stay within the program's own checks.
        FundingModel::CustodianAuthority => Funds::Custodian(CustodianVerdict::Approved { amount: request.amount }),
    };
    let decision = decide(&DecisionInput {
        card: Some(card),
        expiration_matches,
        program: Some(program),
        merchant_rules: &program.merchant_rules,
        controls: &locked.usages,
        request: &AuthorizationRequest {
            partial_approval_supported: false,
            ..request.clone()
        },
        funds,
        now,
    });
    if !decision.approved {
        let mut view = declined(
            decision.reason.unwrap_or(DeclineReason::InsufficientFunds),
            currency,
            Some(&original.id),
        );
        view.available_balance = Some(locked.spendable());
        return Outcome {
            answer: answer_json(&view),
            transaction_id: Some(original.id.clone()),
            ..Outcome::default()
        };
    }
    let mut updated = original.clone();
    updated.authorized_amount += request.amount;
    updated.requested_amount += request.amount;
    updated.held_amount += request.amount;
    updated.updated_at = now;
    let view = NetworkAnswerView {
        decision: "approved".into(),
        authorization_id: Some(original.id.to_string()),
        approved_amount: request.amount,
        response_code: ResponseCode::Approved.as_str().into(),
        reason: None,
        authorization_code: original.authorization_code.clone(),
        available_balance: Some(locked.spendable() - request.amount),
        currency: Some(request.currency.code().to_owned()),
        stand_in: false,
    };
    Outcome {
        events: vec![event(&updated, EventType::TransactionUpdated, now)],
        updated_transactions: vec![updated],
        held_delta: request.amount,
        answer: answer_json(&view),
        transaction_id: Some(original.id.clone()),
        ..Outcome::default()
    }
}

pub async fn reverse(state: &AppState, environment: Environment, msg: ReversalMessage) -> Result<Answer, ApiError> {
    let now = Timestamp::now();
    let original = state
        .transactions
        .find_authorization_by_ntid(environment, &msg.original)
        .await?;
    let message = Message {
        environment,
        network_transaction_id: &msg.network_transaction_id,
        kind: "reversal",
        account: original.as_ref().map(|o| &o.account_id),
        original: Some(&msg.original),
        controls: &[],
        now,
    };
    let decide_fn = |locked: &Locked| {
        let Some(original) = &locked.original else {
            return Outcome {
                answer: answer_json(&declined(DeclineReason::OriginalNotFound, None, None)),
                ..Outcome::default()
            };
        };
        if original.state != TransactionState::Pending {
            let view = declined(
                DeclineReason::OriginalNotPending,
                Some(original.currency),
                Some(&original.id),
            );
            return Outcome {
                answer: answer_json(&view),
                transaction_id: Some(original.id.clone()),
                ..Outcome::default()
            };
        }
        let amount = msg
            .amount
            .unwrap_or(original.held_amount)
            .clamp(0, original.held_amount);
        let mut updated = original.clone();
        updated.held_amount -= amount;
        updated.reversed_amount += amount;
        updated.updated_at = now;
        if updated.held_amount == 0 {
            updated.state = TransactionState::Reversed;
        }
        let view = NetworkAnswerView {
            decision: "approved".into(),
            authorization_id: Some(original.id.to_string()),
            approved_amount: amount,
            response_code: ResponseCode::Approved.as_str().into(),
            reason: None,
            authorization_code: original.authorization_code.clone(),
            available_balance: Some(locked.spendable().saturating_add(amount)),
            currency: Some(original.currency.code().to_owned()),
            stand_in: false,
        };
        Outcome {
            events: vec![event(&updated, EventType::TransactionUpdated, now)],
            updated_transactions: vec![updated],
            held_delta: -amount,
            answer: answer_json(&view),
            transaction_id: Some(original.id.clone()),
            ..Outcome::default()
        }
    };
    state
        .transactions
        .handle_message(&message, &decide_fn)
        .await
        .map_err(post_error)
}

/// The program accounts a posting touches.
struct PostingAccounts {
    settlement: AccountId,
    losses: AccountId,
}

async fn posting_accounts(state: &AppState, card: &Card) -> Result<PostingAccounts, ApiError> {
    let scope = card_scope(card);
    Ok(PostingAccounts {
        settlement: state
            .programs
            .program_account(&scope, &card.program, AccountKind::ProgramSettlement)
            .await?
            .id,
        losses: state
            .programs
            .program_account(&scope, &card.program, AccountKind::ProgramLosses)
            .await?
            .id,
    })
}

/// Debits the card for a purchase: as much as it can pay without going below its floor, the rest
/// from the program's losses account (the network's clearing is final; the card never overdraws).
fn purchase_journal(
    card: &Card,
    accounts: &PostingAccounts,
    amount: i64,
    card_can_pay: i64,
    kind: JournalKind,
    what: &str,
    now: Timestamp,
) -> Result<Journal, String> {
    let card_part = amount.min(card_can_pay.max(0));
    let currency = card.currency;
    let mut entries = vec![(
        accounts.settlement.clone(),
        Direction::Credit,
        Money::new(amount, currency),
    )];
    if card_part > 0 {
        entries.push((
            card.account_id.clone(),
            Direction::Debit,
            Money::new(card_part, currency),
        ));
    }
    if amount > card_part {
        entries.push((
            accounts.losses.clone(),
            Direction::Debit,
            Money::new(amount - card_part, currency),
        ));
    }
    Journal::new(&card.tenant_id, card.environment, kind, what.to_owned(), entries, now).map_err(|e| e.to_string())
}

fn posted_transaction(
    card: &Card,
    kind: TransactionKind,
    msg: &PostingMessage,
    merchant: Merchant,
    now: Timestamp,
) -> Transaction {
    Transaction {
        id: TransactionId::generate(),
        tenant_id: card.tenant_id.clone(),
        environment: card.environment,
        card_id: card.id.clone(),
        cardholder_id: card.cardholder_id.clone(),
        program_id: card.program.clone(),
        account_id: card.account_id.clone(),
        kind,
        state: TransactionState::Complete,
        network_transaction_id: msg.network_transaction_id.clone(),
        currency: msg.currency,
        requested_amount: msg.amount,
        authorized_amount: 0,
        held_amount: 0,
        cleared_amount: msg.amount,
        reversed_amount: 0,
        response_code: ResponseCode::Approved,
        decline_reason: None,
        authorization_code: None,
        merchant,
        entry_mode: "network".into(),
        stand_in: false,
        decision_trace: serde_json::json!([]),
        received_at: now,
        custodian_sent_at: None,
        custodian_answered_at: None,
        answered_at: now,
        expires_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn unknown_merchant() -> Merchant {
    Merchant {
        id: "unknown".into(),
        name: "unknown".into(),
        mcc: "0000".into(),
        country: "USA".into(),
        city: "".into(),
    }
}

fn posted_answer(t: &Transaction, available: Option<i64>) -> String {
    answer_json(&NetworkAnswerView {
        decision: "approved".into(),
        authorization_id: Some(t.id.to_string()),
        approved_amount: t.cleared_amount,
        response_code: ResponseCode::Approved.as_str().into(),
        reason: None,
        authorization_code: t.authorization_code.clone(),
        available_balance: available,
        currency: Some(t.currency.code().to_owned()),
        stand_in: false,
    })
}

/// The authorization a posting names (if any) and the card it is for: the original's card, or
/// the card its PAN names.
async fn posting_target(
    state: &AppState,
    environment: Environment,
    msg: &PostingMessage,
) -> Result<(Option<Transaction>, Option<Card>), ApiError> {
    let original = match &msg.original {
        Some(ntid) => state.transactions.find_authorization_by_ntid(environment, ntid).await?,
        None => None,
    };
    let card = match (&original, &msg.pan) {
        (Some(o), _) => Some(
            state
                .cards
                .get_card(
                    &Scope {
                        tenant_id: o.tenant_id.clone(),
                        environment,
                    },
                    &o.card_id,
                )
                .await?,
        ),
        (None, Some(pan)) => card_for(state, environment, pan).await?,
        (None, None) => None,
    };
    Ok((original, card))
}

/// Clearing: captures a pending authorization (all, part, or more within the MCC's tolerance) and
/// releases the rest of its hold. Without a pending authorization it is a force post. Always
/// posted, even if the card was frozen or closed since.
pub async fn clear(state: &AppState, environment: Environment, msg: PostingMessage) -> Result<Answer, ApiError> {
    let now = Timestamp::now();
    let (_, card) = posting_target(state, environment, &msg).await?;
    let Some(card) = card else {
        return answer_without_card(state, environment, &msg, "clearing").await;
    };
    let accounts = posting_accounts(state, &card).await?;
    let message = Message {
        environment,
        network_transaction_id: &msg.network_transaction_id,
        kind: "clearing",
        account: Some(&card.account_id),
        original: msg.original.as_deref(),
        controls: &[],
        now,
    };
    let decide_fn = |locked: &Locked| {
        let pending = locked
            .original
            .as_ref()
            .filter(|o| o.state == TransactionState::Pending && o.card_id == card.id);
        match pending {
            Some(original) => {
                let release = original.held_amount;
                let can_pay = locked.spendable().saturating_add(release);
                let journal = match purchase_journal(
                    &card,
                    &accounts,
                    msg.amount,
                    can_pay,
                    JournalKind::Clearing,
                    "Clearing",
                    now,
                ) {
                    Ok(j) => j,
                    Err(e) => return failure(&e),
                };
                let mut updated = original.clone();
                updated.held_amount = 0;
                updated.cleared_amount = msg.amount;
                updated.state = TransactionState::Complete;
                updated.updated_at = now;
                let cap = clearing_cap(original.authorized_amount, &original.merchant.mcc);
                if msg.amount > cap {
                    tracing::warn!(transaction.id = %original.id, amount = msg.amount, cap, "clearing exceeds the over-capture tolerance");
                }
                let available = can_pay - msg.amount.min(can_pay.max(0));
                Outcome {
                    answer: posted_answer(&updated, Some(available)),
                    events: vec![event(&updated, EventType::TransactionUpdated, now)],
                    transaction_id: Some(updated.id.clone()),
                    updated_transactions: vec![updated],
                    held_delta: -release,
                    journal: Some(journal),
                    ..Outcome::default()
                }
            }
            None => {
                let merchant = locked
                    .original
                    .as_ref()
                    .map(|o| o.merchant.clone())
                    .or(msg.merchant.clone())
                    .unwrap_or_else(unknown_merchant);
                let t = posted_transaction(&card, TransactionKind::ForcePost, &msg, merchant, now);
                let journal = match purchase_journal(
                    &card,
                    &accounts,
                    msg.amount,
                    locked.spendable(),
                    JournalKind::ForcePost,
                    "Force post",
                    now,
                ) {
                    Ok(j) => j,
                    Err(e) => return failure(&e),
                };
                let available = locked.spendable() - msg.amount.min(locked.spendable().max(0));
                Outcome {
                    answer: posted_answer(&t, Some(available)),
                    events: vec![event(&t, EventType::TransactionCreated, now)],
                    transaction_id: Some(t.id.clone()),
                    new_transactions: vec![t],
                    journal: Some(journal),
                    ..Outcome::default()
                }
            }
        }
    };
    state
        .transactions
        .handle_message(&message, &decide_fn)
        .await
        .map_err(post_error)
}

fn failure(reason: &str) -> Outcome {
    tracing::error!(reason, "could not build a posting");
    Outcome {
        answer: answer_json(&declined(DeclineReason::OriginalNotPending, None, None)),
        ..Outcome::default()
    }
}

async fn answer_without_card(
    state: &AppState,
    environment: Environment,
    msg: &PostingMessage,
    kind: &str,
) -> Result<Answer, ApiError> {
    let reason = if msg.original.is_some() {
        DeclineReason::OriginalNotFound
    } else {
        DeclineReason::CardNotFound
    };
    let answer = answer_json(&declined(reason, Some(msg.currency), None));
    let message = Message {
        environment,
        network_transaction_id: &msg.network_transaction_id,
        kind,
        account: None,
        original: None,
        controls: &[],
        now: Timestamp::now(),
    };
    let decide = |_: &Locked| Outcome {
        answer: answer.clone(),
        ..Outcome::default()
    };
    state
        .transactions
        .handle_message(&message, &decide)
        .await
        .map_err(post_error)
}

/// A refund: a credit to the card from the settlement side, linked to an authorization or not.
pub async fn refund(state: &AppState, environment: Environment, msg: PostingMessage) -> Result<Answer, ApiError> {
    let now = Timestamp::now();
    let (original, card) = posting_target(state, environment, &msg).await?;
    let Some(card) = card else {
        return answer_without_card(state, environment, &msg, "refund").await;
    };
    let accounts = posting_accounts(state, &card).await?;
    let message = Message {
        environment,
        network_transaction_id: &msg.network_transaction_id,
        kind: "refund",
        account: Some(&card.account_id),
        original: None,
        controls: &[],
        now,
    };
    let merchant = original
        .as_ref()
        .map(|o| o.merchant.clone())
        .or(msg.merchant.clone())
        .unwrap_or_else(unknown_merchant);
    let decide_fn = |locked: &Locked| {
        let t = posted_transaction(&card, TransactionKind::Refund, &msg, merchant.clone(), now);
        let journal = match Journal::transfer(
            &card.tenant_id,
            card.environment,
            JournalKind::Refund,
            "Refund".into(),
            &accounts.settlement,
            &card.account_id,
            Money::new(msg.amount, card.currency),
            now,
        ) {
            Ok(j) => j,
            Err(e) => return failure(&e.to_string()),
        };
        Outcome {
            answer: posted_answer(&t, Some(locked.spendable().saturating_add(msg.amount))),
            events: vec![event(&t, EventType::TransactionCreated, now)],
            transaction_id: Some(t.id.clone()),
            new_transactions: vec![t],
            journal: Some(journal),
            ..Outcome::default()
        }
    };
    state
        .transactions
        .handle_message(&message, &decide_fn)
        .await
        .map_err(post_error)
}

/// Releases holds that were never cleared (7 days; 31 for lodging and car rental). Returns how
/// many expired. `now` is injected so tests can move time.
pub async fn expire_holds(state: &AppState, now: Timestamp) -> Result<usize, StoreError> {
    let mut expired = 0;
    loop {
        let due = state.transactions.expired_holds(now, 500).await?;
        if due.is_empty() {
            return Ok(expired);
        }
        let batch = due.len();
        for t in due {
            let mut next = t.clone();
            next.state = TransactionState::Expired;
            next.held_amount = 0;
            next.updated_at = now;
            if state
                .transactions
                .expire(&t, &[event(&next, EventType::TransactionUpdated, now)], now)
                .await?
            {
                expired += 1;
            }
        }
        if batch < 500 {
            return Ok(expired);
        }
    }
}
