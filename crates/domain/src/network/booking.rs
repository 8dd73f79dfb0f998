//! What each network message does to the books: the decision (`authorization::decide`) for an
//! authorization, then the hold it places; a reversal releases a hold once; a clearing posts the
//! captured amount and releases the rest (or, with no pending authorization, is a force post); a
//! refund credits the card; an expired hold is released. The card never overdraws: what it cannot
//! pay of a final posting comes from the program's losses account.

use crate::alert::Alert;
use crate::authorization::{
    AuthorizationRequest, CustodianVerdict, Decision, DecisionInput, DeclineReason, Funds, Merchant, ResponseCode,
    TraceStep, Transaction, TransactionKind, TransactionState, authorization_code, clearing_cap, decide, hold_ttl_secs,
};
use crate::card::Card;
use crate::card_controls::AppliedControl;
use crate::environment::Environment;
use crate::ids::TransactionId;
use crate::ledger::{Direction, Journal, JournalKind};
use crate::money::Money;
use crate::network::books::{Books, PostingRefused, ProgramAccounts};
use crate::network::screening::{self, CardRules};
use crate::network::{
    AuthorizationMessage, CustodianOutcome, NetworkAnswer, NetworkDecision, PostingMessage, ReversalMessage,
};
use crate::program::{FundingModel, Program};
use crate::time::Timestamp;

/// The card a message is for, with what deciding and posting need to know about it.
#[derive(Debug, Clone, Copy)]
pub struct CardContext<'a> {
    pub card: &'a Card,
    pub program: &'a Program,
    pub accounts: &'a ProgramAccounts,
    /// Every control that applies to the card (see `card_controls::applicable`).
    pub controls: &'a [AppliedControl],
    /// The card's authorization rules (active and in shadow).
    pub rules: &'a CardRules,
    /// The cardholder's KYC status, for rules.
    pub kyc_status: &'a str,
}

/// What booking one message produced: its answer, and the transaction it created or changed
/// (each becomes an event).
#[derive(Debug, Clone)]
pub struct Booked {
    pub answer: NetworkAnswer,
    pub created: Option<Transaction>,
    pub updated: Option<Transaction>,
    /// A clearing above the over-capture tolerance: (amount, cap). Posted anyway (clearing is
    /// final); worth a warning.
    pub over_capture: Option<(i64, i64)>,
    /// Fraud alerts the authorization raised.
    pub alerts: Vec<Alert>,
}

impl Booked {
    fn answer(answer: NetworkAnswer) -> Booked {
        Booked {
            answer,
            created: None,
            updated: None,
            over_capture: None,
            alerts: Vec::new(),
        }
    }
}

/// How much an authorization holds: what was approved; for the network's stand-in advice, what
/// the card can cover of it (the network's approval stands; a shortfall at clearing is the
/// program's loss, never an overdraft); nothing when declined.
pub fn hold_for(decision: &Decision, advice: bool, requested: i64, spendable: i64) -> i64 {
    match (decision.approved, advice) {
        (false, _) => 0,
        (true, true) => requested.min(spendable.max(0)),
        (true, false) => decision.approved_amount,
    }
}

/// The decision recorded for the network's stand-in advice: it approved while we were
/// unreachable, so it stands whatever our checks would say now.
pub fn stand_in_advice(amount: i64) -> Decision {
    Decision {
        approved: true,
        approved_amount: amount,
        response_code: ResponseCode::Approved,
        reason: None,
        stand_in: true,
        trace: vec![TraceStep {
            check: "stand_in_advice",
            result: "pass",
            detail: "approved by the network on our behalf; recorded as advised".into(),
        }],
    }
}

fn over_the_balance_limit(decision: Decision) -> Decision {
    let reason = DeclineReason::BalanceLimit;
    let mut trace = decision.trace;
    trace.push(TraceStep {
        check: "balance_limit",
        result: "fail",
        detail: "the hold would take the account beyond the balance limit".into(),
    });
    Decision {
        approved: false,
        approved_amount: 0,
        response_code: reason.response_code(),
        reason: Some(reason),
        stand_in: decision.stand_in,
        trace,
    }
}

fn funds_for(program: &Program, spendable: i64, custodian: Option<&CustodianOutcome>) -> Funds {
    match (program.funding_model, custodian) {
        (FundingModel::StoredBalance, _) => Funds::Stored { spendable },
        (FundingModel::CustodianAuthority, Some(c)) => Funds::Custodian(c.verdict),
        // Not asked: the checks before funds declined when the message arrived.
        (FundingModel::CustodianAuthority, None) => Funds::NotYetChecked,
    }
}

fn decide_authorization(
    msg: &AuthorizationMessage,
    ctx: CardContext<'_>,
    custodian: Option<&CustodianOutcome>,
    books: &Books,
    spendable: i64,
    now: Timestamp,
) -> Decision {
    if msg.stand_in_advice {
        return stand_in_advice(msg.amount);
    }
    let funds = funds_for(ctx.program, spendable, custodian);
    let controls = books.usages(ctx.controls);
    let mut decision = decide(&DecisionInput {
        card: Some(ctx.card),
        expiration_matches: msg.expiration == (ctx.card.exp_year, ctx.card.exp_month),
        program: Some(ctx.program),
        merchant_rules: &ctx.program.merchant_rules,
        controls: &controls,
        request: &AuthorizationRequest {
            amount: msg.amount,
            currency: msg.currency,
            merchant: msg.merchant.clone(),
            partial_approval_supported: msg.partial_approval_supported,
        },
        funds,
        now,
    });
    if decision.approved && funds == Funds::NotYetChecked {
        // The card changed since the custodian was not asked; without its answer there is none.
        decision = Decision {
            approved: false,
            approved_amount: 0,
            response_code: DeclineReason::CustodianUnavailable.response_code(),
            reason: Some(DeclineReason::CustodianUnavailable),
            stand_in: false,
            trace: decision.trace,
        };
    }
    decision
}

/// An authorization (or an incremental one, or stand-in advice) for the card `target`, if the
/// PAN named one in this environment.
// Long: an authorization's booking in order (card, decision, custodian outcome, hold, journal,
// answer); each step uses what the one before decided.
pub fn authorize(
    msg: &AuthorizationMessage,
    target: Option<CardContext<'_>>,
    custodian: Option<&CustodianOutcome>,
    received_at: Timestamp,
    now: Timestamp,
    books: &mut Books,
) -> Booked {
    let Some(ctx) = target else {
        return Booked::answer(NetworkAnswer::declined(
            DeclineReason::CardNotFound,
            Some(msg.currency),
            None,
        ));
    };
    if msg.original.is_some() {
        return incremental(msg, ctx, now, books);
    }
    let card = ctx.card;
    let spendable = books.account(&card.account_id).map_or(0, |a| a.spendable());
    let mut decision = decide_authorization(msg, ctx, custodian, books, spendable, now);
    if hold_for(&decision, msg.stand_in_advice, msg.amount, spendable) > spendable {
        // Only a custodian's approval can ask for more than the account may hold.
        decision = over_the_balance_limit(decision);
    }
    let screening = screening::screen(msg, card, ctx.program, ctx.kyc_status, ctx.rules, books, now);
    // The network's stand-in advice was approved already: screened and traced, never declined.
    let decision = screening::apply(decision, &screening, !msg.stand_in_advice);
    let hold = hold_for(&decision, msg.stand_in_advice, msg.amount, spendable);
    let (sent_at, answered_at) = custodian.map_or((None, None), |c| (c.sent_at, c.answered_at));
    let t = Transaction {
        id: TransactionId::generate(),
        tenant_id: card.tenant_id.clone(),
        environment: card.environment,
        card_id: card.id.clone(),
        cardholder_id: card.cardholder_id.clone(),
        program_id: ctx.program.id.clone(),
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
        received_at,
        custodian_sent_at: sent_at,
        custodian_answered_at: answered_at,
        answered_at: now,
        expires_at: decision
            .approved
            .then(|| now.plus_secs(hold_ttl_secs(&msg.merchant.mcc))),
        created_at: now,
        updated_at: now,
    };
    if hold > 0 {
        books.hold(&card.account_id, hold);
    }
    let answer = NetworkAnswer {
        decision: if decision.approved {
            NetworkDecision::Approved
        } else {
            NetworkDecision::Declined
        },
        authorization_id: Some(t.id.clone()),
        approved_amount: t.authorized_amount,
        response_code: decision.response_code,
        reason: decision.reason,
        authorization_code: t.authorization_code.clone(),
        available_balance: stored_balance(ctx.program).then(|| spendable - hold),
        currency: Some(msg.currency),
        stand_in: decision.stand_in,
    };
    books.record(t.clone());
    books.observe_risk(&card.id, &screening::attempt(msg, now), t.authorized_amount);
    let testing_due = screening.risk.card_testing && books.take_testing_alert(&card.id, now);
    Booked {
        alerts: screening::alerts(&t, ctx.program, &screening, testing_due),
        created: Some(t),
        ..Booked::answer(answer)
    }
}

fn stored_balance(program: &Program) -> bool {
    program.funding_model == FundingModel::StoredBalance
}

/// An incremental authorization raises a pending hold, through the same checks for the increment.
fn incremental(msg: &AuthorizationMessage, ctx: CardContext<'_>, now: Timestamp, books: &mut Books) -> Booked {
    let currency = Some(msg.currency);
    let card = ctx.card;
    let original = msg
        .original
        .as_deref()
        .and_then(|o| books.authorization(card.environment, o))
        .filter(|o| o.card_id == card.id)
        .cloned();
    let Some(original) = original else {
        return Booked::answer(NetworkAnswer::declined(DeclineReason::OriginalNotFound, currency, None));
    };
    if original.state != TransactionState::Pending {
        return Booked::answer(NetworkAnswer::declined(
            DeclineReason::OriginalNotPending,
            currency,
            Some(&original.id),
        ));
    }
    let spendable = books.account(&card.account_id).map_or(0, |a| a.spendable());
    let funds = match ctx.program.funding_model {
        FundingModel::StoredBalance => Funds::Stored { spendable },
        // The custodian approved the original; increments stay within the program's own checks.
        FundingModel::CustodianAuthority => Funds::Custodian(CustodianVerdict::Approved { amount: msg.amount }),
    };
    let controls = books.usages(ctx.controls);
    let decision = decide(&DecisionInput {
        card: Some(card),
        expiration_matches: msg.expiration == (card.exp_year, card.exp_month),
        program: Some(ctx.program),
        merchant_rules: &ctx.program.merchant_rules,
        controls: &controls,
        request: &AuthorizationRequest {
            amount: msg.amount,
            currency: msg.currency,
            merchant: msg.merchant.clone(),
            partial_approval_supported: false,
        },
        funds,
        now,
    });
    let mut decision = decision;
    if decision.approved && msg.amount > spendable {
        decision = over_the_balance_limit(decision);
    }
    let available = stored_balance(ctx.program).then_some(spendable);
    if !decision.approved {
        let mut answer = NetworkAnswer::declined(
            decision.reason.unwrap_or(DeclineReason::InsufficientFunds),
            currency,
            Some(&original.id),
        );
        answer.available_balance = available;
        return Booked::answer(answer);
    }
    let mut updated = original.clone();
    updated.authorized_amount += msg.amount;
    updated.requested_amount += msg.amount;
    updated.held_amount += msg.amount;
    updated.updated_at = now;
    books.hold(&card.account_id, msg.amount);
    let answer = NetworkAnswer {
        decision: NetworkDecision::Approved,
        authorization_id: Some(original.id.clone()),
        approved_amount: msg.amount,
        response_code: ResponseCode::Approved,
        reason: None,
        authorization_code: original.authorization_code.clone(),
        available_balance: available.map(|a| a - msg.amount),
        currency,
        stand_in: false,
    };
    books.record(updated.clone());
    Booked {
        updated: Some(updated),
        ..Booked::answer(answer)
    }
}

/// Releases all (or part) of a pending authorization's hold, once.
pub fn reverse(environment: Environment, msg: &ReversalMessage, now: Timestamp, books: &mut Books) -> Booked {
    let Some(original) = books.authorization(environment, &msg.original).cloned() else {
        return Booked::answer(NetworkAnswer::declined(DeclineReason::OriginalNotFound, None, None));
    };
    if original.state != TransactionState::Pending {
        return Booked::answer(NetworkAnswer::declined(
            DeclineReason::OriginalNotPending,
            Some(original.currency),
            Some(&original.id),
        ));
    }
    let amount = msg
        .amount
        .unwrap_or(original.held_amount)
        .clamp(0, original.held_amount);
    let spendable = books.account(&original.account_id).map_or(0, |a| a.spendable());
    let mut updated = original.clone();
    updated.held_amount -= amount;
    updated.reversed_amount += amount;
    updated.updated_at = now;
    if updated.held_amount == 0 {
        updated.state = TransactionState::Reversed;
    }
    books.hold(&original.account_id, -amount);
    let answer = NetworkAnswer {
        decision: NetworkDecision::Approved,
        authorization_id: Some(original.id.clone()),
        approved_amount: amount,
        response_code: ResponseCode::Approved,
        reason: None,
        authorization_code: original.authorization_code.clone(),
        available_balance: Some(spendable.saturating_add(amount)),
        currency: Some(original.currency),
        stand_in: false,
    };
    books.record(updated.clone());
    Booked {
        updated: Some(updated),
        ..Booked::answer(answer)
    }
}

fn no_card(msg: &PostingMessage) -> Booked {
    let reason = if msg.original.is_some() {
        DeclineReason::OriginalNotFound
    } else {
        DeclineReason::CardNotFound
    };
    Booked::answer(NetworkAnswer::declined(reason, Some(msg.currency), None))
}

/// Debits the card for a purchase: as much as it can pay without going below its floor, the rest
/// from the program's losses account (the network's clearing is final; the card never overdraws).
fn purchase_journal(
    card: &Card,
    accounts: &ProgramAccounts,
    amount: i64,
    card_can_pay: i64,
    kind: JournalKind,
    now: Timestamp,
) -> Result<Journal, PostingRefused> {
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
    let what = match kind {
        JournalKind::ForcePost => "Force post",
        _ => "Clearing",
    };
    Ok(Journal::new(
        &card.tenant_id,
        card.environment,
        kind,
        what.to_owned(),
        entries,
        now,
    )?)
}

fn posted_transaction(
    card: &Card,
    kind: TransactionKind,
    msg: &PostingMessage,
    merchant: Merchant,
    received_at: Timestamp,
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
        received_at,
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

fn posted_answer(t: &Transaction, available: Option<i64>) -> NetworkAnswer {
    NetworkAnswer {
        decision: NetworkDecision::Approved,
        authorization_id: Some(t.id.clone()),
        approved_amount: t.cleared_amount,
        response_code: ResponseCode::Approved,
        reason: None,
        authorization_code: t.authorization_code.clone(),
        available_balance: available,
        currency: Some(t.currency),
        stand_in: false,
    }
}

/// A posting the books refuse. The card pays only what it can and amounts are within the maximum
/// when parsed, so what is left to refuse is an account leaving the balance limit.
fn refused(msg: &PostingMessage, transaction: Option<&TransactionId>) -> Booked {
    Booked::answer(NetworkAnswer::declined(
        DeclineReason::BalanceLimit,
        Some(msg.currency),
        transaction,
    ))
}

/// Clearing: captures a pending authorization (all, part, or more within the MCC's tolerance) and
/// releases the rest of its hold; without a pending authorization it is a force post. Always
/// posted, even if the card was frozen or closed since.
pub fn clear(
    msg: &PostingMessage,
    target: Option<CardContext<'_>>,
    received_at: Timestamp,
    now: Timestamp,
    books: &mut Books,
) -> Booked {
    let Some(ctx) = target else {
        return no_card(msg);
    };
    let card = ctx.card;
    let original = msg
        .original
        .as_deref()
        .and_then(|o| books.authorization(card.environment, o))
        .cloned();
    let pending = original
        .as_ref()
        .filter(|o| o.state == TransactionState::Pending && o.card_id == card.id);
    let Some(pending) = pending else {
        let merchant = original
            .map(|o| o.merchant)
            .or(msg.merchant.clone())
            .unwrap_or_else(unknown_merchant);
        return force_post(msg, ctx, merchant, received_at, now, books);
    };
    let release = pending.held_amount;
    let can_pay = books
        .account(&card.account_id)
        .map_or(0, |a| a.spendable())
        .saturating_add(release);
    let journal = match purchase_journal(card, ctx.accounts, msg.amount, can_pay, JournalKind::Clearing, now) {
        Ok(j) => j,
        Err(_) => return refused(msg, Some(&pending.id)),
    };
    books.hold(&card.account_id, -release);
    if books.post(journal).is_err() {
        books.hold(&card.account_id, release);
        return refused(msg, Some(&pending.id));
    }
    let mut updated = pending.clone();
    updated.held_amount = 0;
    updated.cleared_amount = msg.amount;
    updated.state = TransactionState::Complete;
    updated.updated_at = now;
    let cap = clearing_cap(pending.authorized_amount, &pending.merchant.mcc);
    let available = stored_balance(ctx.program).then(|| can_pay - msg.amount.min(can_pay.max(0)));
    let answer = posted_answer(&updated, available);
    books.record(updated.clone());
    Booked {
        updated: Some(updated),
        over_capture: (msg.amount > cap).then_some((msg.amount, cap)),
        ..Booked::answer(answer)
    }
}

fn force_post(
    msg: &PostingMessage,
    ctx: CardContext<'_>,
    merchant: Merchant,
    received_at: Timestamp,
    now: Timestamp,
    books: &mut Books,
) -> Booked {
    let card = ctx.card;
    let spendable = books.account(&card.account_id).map_or(0, |a| a.spendable());
    let t = posted_transaction(card, TransactionKind::ForcePost, msg, merchant, received_at, now);
    let posted = purchase_journal(card, ctx.accounts, msg.amount, spendable, JournalKind::ForcePost, now)
        .and_then(|journal| books.post(journal));
    if posted.is_err() {
        return refused(msg, None);
    }
    let available = stored_balance(ctx.program).then(|| spendable - msg.amount.min(spendable.max(0)));
    let answer = posted_answer(&t, available);
    books.record(t.clone());
    Booked {
        created: Some(t),
        ..Booked::answer(answer)
    }
}

/// A refund: a credit to the card from the settlement side, linked to an authorization or not.
pub fn refund(
    msg: &PostingMessage,
    target: Option<CardContext<'_>>,
    received_at: Timestamp,
    now: Timestamp,
    books: &mut Books,
) -> Booked {
    let Some(ctx) = target else {
        return no_card(msg);
    };
    let card = ctx.card;
    let merchant = msg
        .original
        .as_deref()
        .and_then(|o| books.authorization(card.environment, o))
        .map(|o| o.merchant.clone())
        .or(msg.merchant.clone())
        .unwrap_or_else(unknown_merchant);
    let spendable = books.account(&card.account_id).map_or(0, |a| a.spendable());
    let t = posted_transaction(card, TransactionKind::Refund, msg, merchant, received_at, now);
    let posted = Journal::transfer(
        &card.tenant_id,
        card.environment,
        JournalKind::Refund,
        "Refund".into(),
        &ctx.accounts.settlement,
        &card.account_id,
        Money::new(msg.amount, card.currency),
        now,
    )
    .map_err(PostingRefused::from)
    .and_then(|journal| books.post(journal));
    if posted.is_err() {
        return refused(msg, None);
    }
    let available = stored_balance(ctx.program).then(|| spendable.saturating_add(msg.amount));
    let answer = posted_answer(&t, available);
    books.record(t.clone());
    Booked {
        created: Some(t),
        ..Booked::answer(answer)
    }
}

/// Releases a hold whose time is up (7 days; 31 for lodging and car rental), if it is still
/// pending: the transaction as it is now, or `None` when there is nothing to release.
pub fn expire(id: &TransactionId, now: Timestamp, books: &mut Books) -> Option<Transaction> {
    let t = books.transaction(id)?;
    if t.state != TransactionState::Pending || t.expires_at.is_none_or(|at| at > now) {
        return None;
    }
    let (account, held) = (t.account_id.clone(), t.held_amount);
    let mut next = t.clone();
    next.state = TransactionState::Expired;
    next.held_amount = 0;
    next.updated_at = now;
    books.hold(&account, -held);
    books.record(next.clone());
    Some(next)
}
