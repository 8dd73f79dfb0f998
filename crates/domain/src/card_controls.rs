//! Which spend controls apply to a card, and what counts toward them. A card answers to its
//! program's default controls (each counted per card) and to the tenant's controls on the card,
//! its cardholder or its program. An authorization counts toward a control while it is pending,
//! complete or reversed (expired and declined ones do not), by its authorized amount less what was
//! reversed, if it was created inside the control's window and matches the control's MCC filter.
//! The store's usage query spells the same rule in SQL (`store::network_batch`).

use crate::authorization::{ControlUsage, Transaction, TransactionKind, TransactionState};
use crate::card::Card;
use crate::controls::{ControlScope, ControlScopeKind, SpendControl, SpendLimit};
use crate::program::Program;
use crate::time::Timestamp;

/// A control as it applies to one card: which limit, and over whose transactions it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedControl {
    /// The tenant control's id, or `{program}:default:{i}` for a program default.
    pub id: String,
    pub limit: SpendLimit,
    pub scope: ControlScope,
}

impl AppliedControl {
    /// Controls of the same id and scope share one usage, whichever card brought them in.
    pub fn key(&self) -> (String, String) {
        (self.id.clone(), self.scope.id().to_owned())
    }

    /// Whether the control counts this transaction's card, cardholder or program.
    pub fn covers(&self, t: &Transaction) -> bool {
        match &self.scope {
            ControlScope::Card(id) => *id == t.card_id,
            ControlScope::Cardholder(id) => *id == t.cardholder_id,
            ControlScope::Program(id) => *id == t.program_id,
        }
    }
}

/// Every control that applies to a card: the program's defaults (per card) and the tenant's
/// active controls on the card, its cardholder or its program (others are ignored).
pub fn applicable(card: &Card, program: &Program, tenant_controls: &[SpendControl]) -> Vec<AppliedControl> {
    let mut applied: Vec<AppliedControl> = program
        .spend_controls
        .iter()
        .enumerate()
        .map(|(i, limit)| AppliedControl {
            id: format!("{}:default:{i}", program.program_id),
            limit: limit.clone(),
            scope: ControlScope::Card(card.id.clone()),
        })
        .collect();
    for c in tenant_controls {
        if !c.active || c.tenant_id != card.tenant_id || c.environment != card.environment {
            continue;
        }
        let scope = match c.scope_kind {
            ControlScopeKind::Card if c.scope_id == card.id.as_str() => ControlScope::Card(card.id.clone()),
            ControlScopeKind::Cardholder if c.scope_id == card.cardholder_id.as_str() => {
                ControlScope::Cardholder(card.cardholder_id.clone())
            }
            ControlScopeKind::Program if c.scope_id == program.id.as_str() => ControlScope::Program(program.id.clone()),
            _ => continue,
        };
        applied.push(AppliedControl {
            id: c.id.to_string(),
            limit: c.limit.clone(),
            scope,
        });
    }
    applied
}

/// What a transaction counts toward spend controls and velocity limits: an approved
/// authorization (pending, complete or reversed) by its authorized amount less what was
/// reversed; `None` for anything else (declined, expired, force posts, refunds).
pub fn limit_usage(t: &Transaction) -> Option<i64> {
    let counts = t.kind == TransactionKind::Authorization
        && matches!(
            t.state,
            TransactionState::Pending | TransactionState::Complete | TransactionState::Reversed
        );
    counts.then(|| t.authorized_amount - t.reversed_amount)
}

/// A control's usage in its current window, kept up to date as a batch changes transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedUsage {
    pub control: AppliedControl,
    /// `None` for per-transaction limits, which have no usage.
    pub window_start: Option<Timestamp>,
    pub used_amount: i64,
    pub used_count: i64,
}

impl TrackedUsage {
    pub fn new(control: AppliedControl, now: Timestamp) -> TrackedUsage {
        let window_start = control.limit.window.start(now);
        TrackedUsage {
            control,
            window_start,
            used_amount: 0,
            used_count: 0,
        }
    }

    /// What `t` adds to this usage: (amount, count).
    pub fn counted(&self, t: &Transaction) -> (i64, i64) {
        let counts = self.control.covers(t)
            && self.window_start.is_some_and(|start| t.created_at >= start)
            && (self.control.limit.mccs.is_empty() || self.control.limit.mccs.contains(&t.merchant.mcc));
        match limit_usage(t) {
            Some(amount) if counts => (amount, 1),
            _ => (0, 0),
        }
    }

    /// Moves the usage from what `before` counted to what `after` counts.
    pub fn record(&mut self, before: Option<&Transaction>, after: &Transaction) {
        let (was_amount, was_count) = before.map_or((0, 0), |b| self.counted(b));
        let (amount, count) = self.counted(after);
        self.used_amount = self.used_amount.saturating_add(amount - was_amount);
        self.used_count += count - was_count;
    }

    pub fn usage(&self) -> ControlUsage {
        ControlUsage {
            control_id: self.control.id.clone(),
            limit: self.control.limit.clone(),
            used_amount: self.used_amount,
            used_count: self.used_count,
        }
    }
}
