//! Backtests: what a rule's draft would have changed over stored authorizations. Each stored
//! authorization is decided twice on top of what the built-in checks decided then
//! (`base_approved` of its trace): with the tenant's current active rules, and with the same set
//! where the tested rule's draft takes the place of its active version. A base decline stays a
//! decline; otherwise the first declining rule declines, else a matching review rule makes it
//! `reviewed` (approved with an alert), else it is approved.
//!
//! Velocity limits read an in-memory book fed with the history in time order, each earlier
//! authorization counted at its stored final state (as the live counters hold it now); the risk
//! score is the one stored in the trace. The facts a stored authorization cannot tell are taken
//! as they must have been for the built-in checks to pass (the card `ACTIVE`) or as they are now
//! (the cardholder's KYC status).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::authorization::Transaction;
use crate::ids::AuthorizationRuleId;
use crate::rules::evaluate::{CompiledRule, ScopeIds, Verdict, base_approved, evaluate};
use crate::rules::facts::Facts;
use crate::rules::velocity::{CounterSpec, VelocityBook};
use crate::time::Timestamp;

/// How many changed decisions a report shows.
pub const EXAMPLES_MAX: usize = 20;
/// History read before the window so velocity limits start warm (the longest window).
pub const WARM_UP_SECS: i64 = 31 * 86_400;
/// The longest window a backtest may replay.
pub const WINDOW_MAX_SECS: i64 = 93 * 86_400;

/// What the replay cannot read from a stored authorization: its card's creation and its
/// cardholder's KYC status.
#[derive(Debug, Clone)]
pub struct CardFacts {
    pub created_at: Timestamp,
    pub kyc_status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    Reviewed,
    Declined,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: i64,
    /// Requested amounts, minor units.
    pub amount: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub approved: Tally,
    pub reviewed: Tally,
    pub declined: Tally,
}

impl Totals {
    fn add(&mut self, outcome: Outcome, amount: i64) {
        let t = match outcome {
            Outcome::Approved => &mut self.approved,
            Outcome::Reviewed => &mut self.reviewed,
            Outcome::Declined => &mut self.declined,
        };
        t.count += 1;
        t.amount = t.amount.saturating_add(amount);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExampleMerchant {
    pub id: String,
    pub name: String,
    pub mcc: String,
    pub country: String,
}

/// One authorization the draft would have decided otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub transaction_id: String,
    pub created_at: String,
    pub amount: i64,
    pub currency: String,
    pub merchant: ExampleMerchant,
    pub before: Outcome,
    pub after: Outcome,
    /// The rule whose decline or review made the difference (the draft's side, or the active
    /// side when the draft lifts it).
    pub rule_id: Option<String>,
    pub response_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Authorizations replayed (inside the window).
    pub authorizations: i64,
    pub active: Totals,
    pub draft: Totals,
    pub changed: i64,
    pub examples: Vec<Example>,
}

/// The risk score stored in a trace (`"412: declines_1h=2 (+140)"`), 0 when there is none.
pub fn stored_risk_score(trace: &serde_json::Value) -> i64 {
    trace
        .as_array()
        .and_then(|steps| {
            steps
                .iter()
                .find(|s| s.get("check").and_then(|c| c.as_str()) == Some("risk_score"))
        })
        .and_then(|s| s.get("detail").and_then(|d| d.as_str()))
        .and_then(|d| d.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A replay in progress: feed it the history in time order.
pub struct Replay {
    active: Vec<Arc<CompiledRule>>,
    draft: Vec<Arc<CompiledRule>>,
    specs: Vec<(String, Arc<CounterSpec>)>,
    book: VelocityBook,
    window_start: Timestamp,
    window_end: Timestamp,
    report: Report,
}

fn decide(base: bool, verdict: &Verdict) -> (Outcome, Option<&crate::rules::RuleHit>) {
    if !base {
        return (Outcome::Declined, None);
    }
    match (&verdict.decline, verdict.reviews.first()) {
        (Some(hit), _) => (Outcome::Declined, Some(hit)),
        (None, Some(hit)) => (Outcome::Reviewed, Some(hit)),
        (None, None) => (Outcome::Approved, None),
    }
}

impl Replay {
    /// `active`: the tenant's active rules; `draft`: the same set with the tested rule's draft
    /// in place of its active version.
    pub fn new(
        active: Vec<Arc<CompiledRule>>,
        draft: Vec<Arc<CompiledRule>>,
        window_start: Timestamp,
        window_end: Timestamp,
    ) -> Replay {
        let mut specs: Vec<(String, Arc<CounterSpec>)> = Vec::new();
        for rule in active.iter().chain(draft.iter()) {
            if let Some((key, spec)) = rule.definition.counter()
                && !specs.iter().any(|(k, _)| k == key)
            {
                specs.push((key.to_owned(), spec.clone()));
            }
        }
        Replay {
            active,
            draft,
            specs,
            book: VelocityBook::default(),
            window_start,
            window_end,
            report: Report::default(),
        }
    }

    /// One stored authorization, in time order (those before the window only warm the
    /// counters up).
    pub fn observe(&mut self, t: &Transaction, cards: &HashMap<String, CardFacts>) {
        if t.created_at >= self.window_start && t.created_at < self.window_end {
            self.decide_both(t, cards.get(t.card_id.as_str()));
        }
        self.book.record(&self.specs, None, t);
    }

    fn decide_both(&mut self, t: &Transaction, card: Option<&CardFacts>) {
        let ids = ScopeIds {
            card: t.card_id.as_str(),
            cardholder: t.cardholder_id.as_str(),
            program: t.program_id.as_str(),
        };
        let facts = Facts {
            amount: t.requested_amount,
            currency: t.currency.code(),
            merchant: &t.merchant,
            entry_mode: &t.entry_mode,
            card_created_at: card.map_or(t.created_at, |c| c.created_at),
            card_state: "ACTIVE",
            cardholder_kyc_status: card.map_or("", |c| c.kyc_status.as_str()),
            at: t.created_at,
            utc_offset_minutes: 0,
            risk_score: stored_risk_score(&t.decision_trace),
        };
        let applying = |rules: &[Arc<CompiledRule>]| -> Vec<Arc<CompiledRule>> {
            rules.iter().filter(|r| r.applies_to(&ids)).cloned().collect()
        };
        let base = base_approved(&t.decision_trace);
        let before_verdict = evaluate(&applying(&self.active), &facts, &ids, &self.book, false);
        let after_verdict = evaluate(&applying(&self.draft), &facts, &ids, &self.book, false);
        let (before, before_hit) = decide(base, &before_verdict);
        let (after, after_hit) = decide(base, &after_verdict);
        let r = &mut self.report;
        r.authorizations += 1;
        r.active.add(before, t.requested_amount);
        r.draft.add(after, t.requested_amount);
        if before == after {
            return;
        }
        r.changed += 1;
        if r.examples.len() < EXAMPLES_MAX {
            let hit = after_hit.or(before_hit);
            r.examples.push(Example {
                transaction_id: t.id.to_string(),
                created_at: t.created_at.to_rfc3339(),
                amount: t.requested_amount,
                currency: t.currency.code().to_owned(),
                merchant: ExampleMerchant {
                    id: t.merchant.id.clone(),
                    name: t.merchant.name.clone(),
                    mcc: t.merchant.mcc.clone(),
                    country: t.merchant.country.clone(),
                },
                before,
                after,
                rule_id: hit.map(|h| h.rule_id.to_string()),
                response_code: hit
                    .filter(|h| h.action == crate::rules::RuleAction::Decline)
                    .map(|h| h.response_code.as_str().to_owned()),
            });
        }
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    pub fn into_report(self) -> Report {
        self.report
    }
}

/// A rule's compiled active and draft versions.
pub type VersionPair = (Option<Arc<CompiledRule>>, Option<Arc<CompiledRule>>);

/// The two rule sets from each rule's (active, draft) versions: the active set, and the same
/// set with `tested`'s draft in place of its active version.
pub fn swap_in_draft(
    rules: &[VersionPair],
    tested: &AuthorizationRuleId,
) -> (Vec<Arc<CompiledRule>>, Vec<Arc<CompiledRule>>) {
    let mut active = Vec::new();
    let mut draft = Vec::new();
    for (a, d) in rules {
        let is_tested = a.as_ref().or(d.as_ref()).is_some_and(|r| &r.rule_id == tested);
        if let Some(a) = a {
            active.push(a.clone());
            if !is_tested {
                draft.push(a.clone());
            }
        }
        if is_tested && let Some(d) = d {
            draft.push(d.clone());
        }
    }
    (active, draft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_stored_risk_score_is_read_from_its_trace_step() {
        let trace = json!([{"check": "card", "result": "pass", "detail": ""},
                           {"check": "risk_score", "result": "pass", "detail": "412: declines_1h=2 (+140)"}]);
        assert_eq!(stored_risk_score(&trace), 412);
        assert_eq!(stored_risk_score(&json!([{"check": "card", "result": "pass"}])), 0);
        assert_eq!(stored_risk_score(&json!("not a trace")), 0);
    }
}
