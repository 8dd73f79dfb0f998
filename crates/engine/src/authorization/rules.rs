//! Authorization rules as the engine holds them: compiled once per program and rules stamp, kept
//! in memory, and reloaded inside a batch's transaction when the stamp read with the card moved
//! (every rule change moves it, waiting for batches that decided with the old rules). Also what a
//! batch reads for screening: the velocity counters its authorizations are checked against (under
//! the lock of shared scopes) and the cards' risk profiles.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cardplane_domain::Timestamp;
use cardplane_domain::card::Card;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::ids::{CardId, ProgramId};
use cardplane_domain::network::CardRules;
use cardplane_domain::program::Program;
use cardplane_domain::rules::risk::RiskProfile;
use cardplane_domain::rules::velocity::{CounterSpec, VelocityBook, first_bucket};
use cardplane_domain::rules::{CompiledRule, RuleBody, RuleDefinition, ScopeIds, VersionState};
use cardplane_store::StoreError;
use cardplane_store::network_batch::NetworkBatch;

/// The rules that can apply to a program's cards: its own, and its tenant's cardholder and card
/// rules, each active or draft version compiled.
#[derive(Debug, Default)]
pub struct ProgramRules {
    stamp: i64,
    rules: Vec<(Arc<CompiledRule>, VersionState)>,
}

impl ProgramRules {
    fn compile(stamp: i64, stored: Vec<cardplane_store::network_batch::StoredRuleVersion>) -> ProgramRules {
        let rules = stored
            .into_iter()
            .filter_map(|v| {
                let raw: serde_json::Value = serde_json::from_str(&v.definition).ok()?;
                match RuleDefinition::parse(&raw, v.scope, &v.scope_id) {
                    Ok(definition) => Some((
                        Arc::new(CompiledRule {
                            rule_id: v.rule_id,
                            version: v.version,
                            scope: v.scope,
                            scope_id: v.scope_id,
                            definition,
                        }),
                        v.state,
                    )),
                    Err(e) => {
                        // Checked when written; a stored version that no longer parses is skipped loudly.
                        tracing::error!(rule = %v.rule_id, version = v.version, error = %e, "stored rule does not parse");
                        None
                    }
                }
            })
            .collect();
        ProgramRules { stamp, rules }
    }

    /// The card's active rules and drafts in shadow.
    pub fn for_card(&self, card: &Card) -> CardRules {
        let ids = ScopeIds {
            card: card.id.as_str(),
            cardholder: card.cardholder_id.as_str(),
            program: card.program.as_str(),
        };
        let mut out = CardRules::default();
        for (rule, state) in &self.rules {
            if !rule.applies_to(&ids) {
                continue;
            }
            match state {
                VersionState::Active => out.active.push(rule.clone()),
                VersionState::Draft => out.shadow.push(rule.clone()),
                VersionState::Superseded | VersionState::Discarded => {}
            }
        }
        out
    }
}

/// Every velocity counter a card's rules (active and shadow) keep: its transactions move them.
pub fn card_counters(rules: &CardRules) -> Vec<(String, Arc<CounterSpec>)> {
    let mut out: Vec<(String, Arc<CounterSpec>)> = Vec::new();
    for rule in rules.active.iter().chain(&rules.shadow) {
        if let Some((key, spec)) = rule.definition.counter()
            && !out.iter().any(|(k, _)| k == key)
        {
            out.push((key.to_owned(), spec.clone()));
        }
    }
    out
}

#[derive(Default)]
pub(crate) struct RuleSets {
    by_program: RwLock<HashMap<ProgramId, Arc<ProgramRules>>>,
}

impl RuleSets {
    /// The program's rules as of this batch: cached if the stamp is `stamp`, else read again.
    pub async fn current(
        &self,
        batch: &mut NetworkBatch,
        program: &Program,
        stamp: i64,
    ) -> Result<Arc<ProgramRules>, StoreError> {
        let cached = self
            .by_program
            .read()
            .expect("rules cache lock")
            .get(&program.id)
            .cloned();
        if let Some(rules) = cached.filter(|r| r.stamp == stamp) {
            return Ok(rules);
        }
        let stored = batch
            .program_rules(&program.tenant_id, program.environment, &program.id)
            .await?;
        let rules = Arc::new(ProgramRules::compile(stamp, stored));
        self.by_program
            .write()
            .expect("rules cache lock")
            .insert(program.id.clone(), rules.clone());
        Ok(rules)
    }
}

/// What screening reads for a batch.
pub(crate) struct ScreeningReads {
    pub velocity: VelocityBook,
    pub profiles: HashMap<CardId, RiskProfile>,
}

/// Locks the shared counters the batch's authorizations check (cardholder- and program-wide,
/// in key order, after the spend controls' locks), then reads every counter they check and the
/// cards' risk profiles.
pub(crate) async fn read_for_screening(
    batch: &mut NetworkBatch,
    authorizing: &[(&Card, &CardRules)],
    now: Timestamp,
) -> Result<ScreeningReads, StoreError> {
    // (counter, scope id, shared by more than one card)
    let mut keys: Vec<(String, String, bool)> = Vec::new();
    let mut oldest = i64::MAX;
    for (card, rules) in authorizing {
        for rule in rules.active.iter().chain(&rules.shadow) {
            let RuleBody::Velocity(v) = &rule.definition.body else {
                continue;
            };
            let scope_id = match v.spec.scope {
                ControlScopeKind::Card => card.id.as_str(),
                ControlScopeKind::Cardholder => card.cardholder_id.as_str(),
                ControlScopeKind::Program => card.program.as_str(),
            };
            oldest = oldest.min(first_bucket(&v.window, v.spec.bucket_secs, now));
            keys.push((
                v.counter.clone(),
                scope_id.to_owned(),
                v.spec.scope != ControlScopeKind::Card,
            ));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let shared: Vec<String> = keys
        .iter()
        .filter(|(_, _, shared)| *shared)
        .map(|(counter, scope, _)| format!("{counter}:{scope}"))
        .collect();
    batch.lock_control_scopes(&shared).await?;
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(c, s, _)| (c.as_str(), s.as_str())).collect();
    let rows = batch.velocity_counters(&pairs, oldest).await?;
    let mut cards: Vec<&str> = authorizing.iter().map(|(c, _)| c.id.as_str()).collect();
    cards.sort_unstable();
    cards.dedup();
    let profiles = batch.risk_profiles(&cards).await?.into_iter().collect();
    Ok(ScreeningReads {
        velocity: VelocityBook::new(rows),
        profiles,
    })
}
