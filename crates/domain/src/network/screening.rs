//! Fraud screening of an authorization, after the built-in checks: the card's risk score, its
//! active rules (applied: a matching decline declines an approval) and its draft rules (in
//! shadow: traced, never applied), then the alerts the outcome raises. Rules and precedence are
//! in `rules`; the score's factors in `rules::risk`.

use std::sync::Arc;

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::authorization::{Decision, DeclineReason, TraceStep, Transaction};
use crate::card::Card;
use crate::ids::AlertId;
use crate::network::AuthorizationMessage;
use crate::network::books::Books;
use crate::program::Program;
use crate::rules::risk::{Attempt, RiskScore};
use crate::rules::{CompiledRule, Facts, RuleHit, ScopeIds, evaluate};
use crate::time::Timestamp;

/// The rules that apply to one card: active versions and drafts in shadow.
#[derive(Debug, Clone, Default)]
pub struct CardRules {
    pub active: Vec<Arc<CompiledRule>>,
    pub shadow: Vec<Arc<CompiledRule>>,
}

/// What screening found for one authorization.
#[derive(Debug, Clone)]
pub struct Screening {
    pub risk: RiskScore,
    pub decline: Option<RuleHit>,
    pub reviews: Vec<RuleHit>,
    /// The risk step, then one step per active rule, then one per shadow rule.
    pub steps: Vec<TraceStep>,
}

pub(crate) fn attempt<'a>(msg: &'a AuthorizationMessage, at: Timestamp) -> Attempt<'a> {
    Attempt {
        amount: msg.amount,
        merchant_id: &msg.merchant.id,
        country: &msg.merchant.country,
        at,
    }
}

pub(crate) fn screen(
    msg: &AuthorizationMessage,
    card: &Card,
    program: &Program,
    kyc_status: &str,
    rules: &CardRules,
    books: &Books,
    now: Timestamp,
) -> Screening {
    let risk = books.risk_profile(&card.id).score(&attempt(msg, now));
    let facts = Facts {
        amount: msg.amount,
        currency: msg.currency.code(),
        merchant: &msg.merchant,
        entry_mode: &msg.entry_mode,
        card_created_at: card.created_at,
        card_state: card.state.as_str(),
        cardholder_kyc_status: kyc_status,
        at: now,
        utc_offset_minutes: 0,
        risk_score: risk.score,
    };
    let ids = ScopeIds {
        card: card.id.as_str(),
        cardholder: card.cardholder_id.as_str(),
        program: program.id.as_str(),
    };
    let mut steps = vec![TraceStep {
        check: "risk_score",
        result: if risk.score >= program.risk_alert_threshold {
            "review"
        } else {
            "pass"
        },
        detail: risk.describe(),
    }];
    let verdict = evaluate(&rules.active, &facts, &ids, books.velocity(), false);
    steps.extend(verdict.steps);
    if !rules.shadow.is_empty() {
        steps.extend(evaluate(&rules.shadow, &facts, &ids, books.velocity(), true).steps);
    }
    Screening {
        risk,
        decline: verdict.decline,
        reviews: verdict.reviews,
        steps,
    }
}

/// The decision after screening: its steps traced, and an approval declined by a rule.
pub(crate) fn apply(mut decision: Decision, screening: &Screening, applies: bool) -> Decision {
    decision.trace.extend(screening.steps.iter().cloned());
    if let (true, true, Some(hit)) = (applies, decision.approved, &screening.decline) {
        decision.approved = false;
        decision.approved_amount = 0;
        decision.response_code = hit.response_code;
        decision.reason = Some(DeclineReason::AuthorizationRule);
    }
    decision
}

/// The alerts an authorization raises: each review rule that matched an approval, a risk score
/// at or above the program's threshold, and a card-testing pattern (at most one an hour per
/// card, `testing_due`).
pub(crate) fn alerts(t: &Transaction, program: &Program, screening: &Screening, testing_due: bool) -> Vec<Alert> {
    let approved = t.authorized_amount > 0;
    let alert = |kind: AlertKind, hit: Option<&RuleHit>, detail: String| Alert {
        id: AlertId::generate(),
        tenant_id: t.tenant_id.clone(),
        environment: t.environment,
        kind,
        status: AlertStatus::Open,
        card_id: t.card_id.clone(),
        cardholder_id: t.cardholder_id.clone(),
        program_id: t.program_id.clone(),
        transaction_id: t.id.clone(),
        rule_id: hit.map(|h| h.rule_id.clone()),
        rule_version: hit.map(|h| h.version),
        risk_score: screening.risk.score,
        detail,
        assignee: None,
        resolution: None,
        resolution_note: None,
        card_frozen: false,
        resolved_by: None,
        resolved_at: None,
        created_at: t.created_at,
        updated_at: t.created_at,
        version: 1,
    };
    let mut raised = Vec::new();
    if approved {
        for hit in &screening.reviews {
            raised.push(alert(AlertKind::RuleReview, Some(hit), hit.detail.clone()));
        }
    }
    if screening.risk.score >= program.risk_alert_threshold {
        raised.push(alert(AlertKind::RiskScore, None, screening.risk.describe()));
    }
    if screening.risk.card_testing && testing_due {
        raised.push(alert(AlertKind::CardTesting, None, screening.risk.describe()));
    }
    raised
}
