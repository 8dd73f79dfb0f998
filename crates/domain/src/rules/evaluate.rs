//! Evaluating a card's rules against one authorization (precedence in `rules`' module doc).

use std::sync::Arc;

use crate::authorization::{ResponseCode, TraceStep};
use crate::controls::ControlScopeKind;
use crate::ids::AuthorizationRuleId;
use crate::rules::facts::Facts;
use crate::rules::velocity::{Used, first_bucket};
use crate::rules::{RuleAction, RuleBody, RuleDefinition};

/// A rule version ready to run: its definition and whom it belongs to.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule_id: AuthorizationRuleId,
    pub version: i64,
    pub scope: ControlScopeKind,
    pub scope_id: String,
    pub definition: RuleDefinition,
}

impl CompiledRule {
    pub fn applies_to(&self, ids: &ScopeIds<'_>) -> bool {
        self.scope_id
            == match self.scope {
                ControlScopeKind::Card => ids.card,
                ControlScopeKind::Cardholder => ids.cardholder,
                ControlScopeKind::Program => ids.program,
            }
    }
}

/// The card, cardholder and program an authorization is for.
#[derive(Debug, Clone, Copy)]
pub struct ScopeIds<'a> {
    pub card: &'a str,
    pub cardholder: &'a str,
    pub program: &'a str,
}

/// Velocity counters as they stand for this authorization.
pub trait Counters {
    fn used(&self, counter: &str, scope_id: &str, first_bucket: i64) -> Used;
}

impl Counters for crate::rules::velocity::VelocityBook {
    fn used(&self, counter: &str, scope_id: &str, first_bucket: i64) -> Used {
        crate::rules::velocity::VelocityBook::used(self, counter, scope_id, first_bucket)
    }
}

/// A rule that matched and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    pub rule_id: AuthorizationRuleId,
    pub version: i64,
    pub action: RuleAction,
    pub response_code: ResponseCode,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The first declining rule, by precedence.
    pub decline: Option<RuleHit>,
    /// Review rules not suppressed by an earlier `approve`.
    pub reviews: Vec<RuleHit>,
    /// One per rule evaluated, in order.
    pub steps: Vec<TraceStep>,
}

fn counter_scope<'a>(scope: ControlScopeKind, ids: &ScopeIds<'a>) -> &'a str {
    match scope {
        ControlScopeKind::Card => ids.card,
        ControlScopeKind::Cardholder => ids.cardholder,
        ControlScopeKind::Program => ids.program,
    }
}

/// Whether the rule matches. Runs for every rule of every authorization, so it allocates
/// nothing; `explain` says why, for the rules that matched.
fn matches(rule: &CompiledRule, facts: &Facts<'_>, ids: &ScopeIds<'_>, counters: &dyn Counters) -> bool {
    match &rule.definition.body {
        RuleBody::Conditional(c) => {
            let facts = Facts {
                utc_offset_minutes: c.utc_offset_minutes,
                ..*facts
            };
            if c.all {
                c.conditions.iter().all(|cond| cond.holds(&facts))
            } else {
                c.conditions.iter().any(|cond| cond.holds(&facts))
            }
        }
        RuleBody::Velocity(v) => {
            let m = facts.merchant;
            if !v.spec.matches(&m.mcc, &m.country, facts.entry_mode) {
                return false;
            }
            let used = counters.used(
                &v.counter,
                counter_scope(v.spec.scope, ids),
                first_bucket(&v.window, v.spec.bucket_secs, facts.at),
            );
            v.count_limit.is_some_and(|l| used.count + 1 > l)
                || v.amount_limit
                    .is_some_and(|l| used.amount.saturating_add(facts.amount) > l)
        }
        RuleBody::MerchantLock(l) => {
            let m = facts.merchant;
            !(l.merchant_ids.contains(&m.id) || l.mccs.contains(&m.mcc))
        }
    }
}

/// What a matching rule saw (the trace's detail).
fn explain(rule: &CompiledRule, facts: &Facts<'_>, ids: &ScopeIds<'_>, counters: &dyn Counters) -> String {
    match &rule.definition.body {
        RuleBody::Conditional(c) => {
            let facts = Facts {
                utc_offset_minutes: c.utc_offset_minutes,
                ..*facts
            };
            let parts: Vec<String> = c
                .conditions
                .iter()
                .map(|cond| {
                    let held = if cond.holds(&facts) { "yes" } else { "no" };
                    format!("{}: {held}", cond.describe(&facts))
                })
                .collect();
            format!("{} of [{}]", if c.all { "all" } else { "any" }, parts.join("; "))
        }
        RuleBody::Velocity(v) => {
            let used = counters.used(
                &v.counter,
                counter_scope(v.spec.scope, ids),
                first_bucket(&v.window, v.spec.bucket_secs, facts.at),
            );
            format!(
                "{} per {}: used {} for {} (limits: count {}, amount {})",
                v.spec.scope.as_str(),
                match v.window.trailing_secs() {
                    Some(s) => format!("trailing {s}s"),
                    None => v.window.as_str().to_owned(),
                },
                used.count,
                used.amount,
                v.count_limit.map_or("-".into(), |l| l.to_string()),
                v.amount_limit.map_or("-".into(), |l| l.to_string()),
            )
        }
        RuleBody::MerchantLock(_) => {
            let m = facts.merchant;
            format!("merchant {} (MCC {}) not listed", m.id, m.mcc)
        }
    }
}

/// Runs `rules` (already those that apply to the card) in precedence order. `shadow` marks a
/// draft set: its steps say what it would do, and nothing it says is applied by the caller.
pub fn evaluate(
    rules: &[Arc<CompiledRule>],
    facts: &Facts<'_>,
    ids: &ScopeIds<'_>,
    counters: &dyn Counters,
    shadow: bool,
) -> Verdict {
    let mut ordered: Vec<&Arc<CompiledRule>> = rules.iter().collect();
    ordered.sort_by(|a, b| (a.definition.priority, &a.rule_id).cmp(&(b.definition.priority, &b.rule_id)));
    let mut verdict = Verdict::default();
    let mut approved_by: Option<&AuthorizationRuleId> = None;
    let check = if shadow { "shadow_rule" } else { "authorization_rule" };
    let mut unmatched: Vec<String> = Vec::new();
    for rule in ordered {
        if !matches(rule, facts, ids, counters) {
            unmatched.push(format!("{} v{}", rule.rule_id, rule.version));
            continue;
        }
        let why = explain(rule, facts, ids, counters);
        let outcome = rule.definition.body.outcome();
        let result = match outcome.action {
            RuleAction::Decline if shadow => "shadow",
            RuleAction::Decline => "fail",
            RuleAction::Review => "review",
            RuleAction::Approve => "approve",
        };
        let effect = match outcome.action {
            RuleAction::Decline => format!("decline {}", outcome.response_code.as_str()),
            RuleAction::Review if approved_by.is_some() => "review (suppressed by an earlier approve)".into(),
            action => action.as_str().to_owned(),
        };
        verdict.steps.push(TraceStep {
            check,
            result,
            detail: format!(
                "{} v{} {}: match, {effect}; {why}",
                rule.rule_id,
                rule.version,
                rule.definition.body.kind().as_str()
            ),
        });
        let hit = RuleHit {
            rule_id: rule.rule_id.clone(),
            version: rule.version,
            action: outcome.action,
            response_code: outcome.response_code,
            detail: why,
        };
        match outcome.action {
            RuleAction::Decline if verdict.decline.is_none() => verdict.decline = Some(hit),
            RuleAction::Decline => {}
            RuleAction::Review if approved_by.is_none() => verdict.reviews.push(hit),
            RuleAction::Review => {}
            RuleAction::Approve => approved_by = approved_by.or(Some(&rule.rule_id)),
        }
    }
    // Rules that did not match share one step, to keep a stored trace short.
    if !unmatched.is_empty() {
        verdict.steps.push(TraceStep {
            check,
            result: "pass",
            detail: format!("no match: {}", unmatched.join(", ")),
        });
    }
    verdict
}

/// Whether the built-in checks approved a stored authorization: no failing step other than a
/// rule's (what a backtest replays rules on top of).
pub fn base_approved(trace: &serde_json::Value) -> bool {
    trace.as_array().is_some_and(|steps| {
        !steps.iter().any(|s| {
            s.get("result").and_then(|r| r.as_str()) == Some("fail")
                && !matches!(
                    s.get("check").and_then(|c| c.as_str()),
                    Some("authorization_rule" | "shadow_rule" | "risk_score")
                )
        })
    })
}
