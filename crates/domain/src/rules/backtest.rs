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

/// The active and the draft set's rules that apply to one card.
type RuleSets = (Vec<Arc<CompiledRule>>, Vec<Arc<CompiledRule>>);

/// A replay in progress: feed it the history in time order.
pub struct Replay {
    active: Vec<Arc<CompiledRule>>,
    draft: Vec<Arc<CompiledRule>>,
    specs: Vec<(String, Arc<CounterSpec>)>,
    book: VelocityBook,
    /// The rules of each set that apply to a card, by card (worked out once per card).
    applying: HashMap<String, RuleSets>,
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
            applying: HashMap::new(),
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
        let (active, draft) = (&self.active, &self.draft);
        let (active, draft) = self.applying.entry(t.card_id.to_string()).or_insert_with(|| {
            let applying = |rules: &[Arc<CompiledRule>]| -> Vec<Arc<CompiledRule>> {
                rules.iter().filter(|r| r.applies_to(&ids)).cloned().collect()
            };
            (applying(active), applying(draft))
        });
        let base = base_approved(&t.decision_trace);
        let before_verdict = evaluate(active, &facts, &ids, &self.book, false);
        let after_verdict = evaluate(draft, &facts, &ids, &self.book, false);
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
    use crate::authorization::{Merchant, ResponseCode, TransactionKind, TransactionState};
    use crate::controls::ControlScopeKind;
    use crate::ids::{AccountId, CardId, CardholderId, ProgramId, TenantId, TransactionId};
    use crate::rules::RuleDefinition;
    use serde_json::json;

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const CARD: &str = "card_00000000000000000000000000000001";

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_micros((T0 + secs) * 1_000_000)
    }

    fn auth(n: u32, secs: i64, amount: i64, trace: serde_json::Value) -> Transaction {
        let ts = at(secs);
        Transaction {
            id: TransactionId::parse(&format!("txn_{n:032}")).unwrap(),
            tenant_id: TenantId::generate(),
            environment: crate::Environment::Sandbox,
            card_id: CardId::parse(CARD).unwrap(),
            cardholder_id: CardholderId::parse(&format!("crdhldr_{:032}", 1)).unwrap(),
            program_id: ProgramId::parse(&format!("prog_{:032}", 1)).unwrap(),
            account_id: AccountId::parse(&format!("acct_{:032}", 1)).unwrap(),
            kind: TransactionKind::Authorization,
            state: TransactionState::Pending,
            network_transaction_id: format!("n{n}"),
            currency: crate::money::Currency::parse("USD").unwrap(),
            requested_amount: amount,
            authorized_amount: amount,
            held_amount: amount,
            cleared_amount: 0,
            reversed_amount: 0,
            response_code: ResponseCode::Approved,
            decline_reason: None,
            authorization_code: None,
            merchant: Merchant {
                id: "m_1".into(),
                name: "Shop".into(),
                mcc: "5411".into(),
                country: "USA".into(),
                city: "Austin".into(),
            },
            entry_mode: "chip".into(),
            stand_in: false,
            decision_trace: trace,
            received_at: ts,
            custodian_sent_at: None,
            custodian_answered_at: None,
            answered_at: ts,
            expires_at: None,
            created_at: ts,
            updated_at: ts,
        }
    }

    fn velocity_draft() -> Arc<CompiledRule> {
        let raw = json!({"type": "velocity_limit", "parameters": {"window": "day", "limit_count": 3}});
        Arc::new(CompiledRule {
            rule_id: AuthorizationRuleId::parse(&format!("arule_{:032}", 1)).unwrap(),
            version: 2,
            scope: ControlScopeKind::Card,
            scope_id: CARD.into(),
            definition: RuleDefinition::parse(&raw, ControlScopeKind::Card, CARD).unwrap(),
        })
    }

    /// Two approvals before the window warm the counter up: a draft allowing 3 a day lets the
    /// first one in the window through and declines the next two; a base decline stays one.
    #[test]
    fn a_velocity_draft_counts_the_warm_up_and_declines_past_its_limit() {
        let ok = json!([{"check": "funds", "result": "pass", "detail": ""}]);
        let failed = json!([{"check": "funds", "result": "fail", "detail": ""}]);
        let history = [
            auth(1, 60, 100, ok.clone()),
            auth(2, 120, 200, ok.clone()),
            auth(3, 3_600, 300, ok.clone()),
            auth(4, 3_660, 400, ok.clone()),
            auth(5, 3_720, 900, failed),
            auth(6, 3_780, 500, ok),
        ];
        let mut replay = Replay::new(Vec::new(), vec![velocity_draft()], at(3_000), at(7_200));
        for t in &history {
            replay.observe(t, &HashMap::new());
        }
        let r = replay.into_report();
        assert_eq!(r.authorizations, 4);
        assert_eq!(
            r.active.approved,
            Tally {
                count: 3,
                amount: 1_200
            }
        );
        assert_eq!(r.active.declined, Tally { count: 1, amount: 900 });
        assert_eq!(r.draft.approved, Tally { count: 1, amount: 300 });
        assert_eq!(
            r.draft.declined,
            Tally {
                count: 3,
                amount: 1_800
            }
        );
        assert_eq!(r.changed, 2);
        let changed: Vec<&str> = r.examples.iter().map(|e| e.transaction_id.as_str()).collect();
        assert_eq!(changed, [format!("txn_{:032}", 4), format!("txn_{:032}", 6)]);
        assert_eq!(r.examples[0].response_code.as_deref(), Some("65"));
    }

    #[test]
    fn the_stored_risk_score_is_read_from_its_trace_step() {
        let trace = json!([{"check": "card", "result": "pass", "detail": ""},
                           {"check": "risk_score", "result": "pass", "detail": "412: declines_1h=2 (+140)"}]);
        assert_eq!(stored_risk_score(&trace), 412);
        assert_eq!(stored_risk_score(&json!([{"check": "card", "result": "pass"}])), 0);
        assert_eq!(stored_risk_score(&json!("not a trace")), 0);
    }
}
