//! The books a batch of network messages is decided against: the locked accounts, the
//! authorizations the messages refer to, and the usage of every control that applies, all kept
//! current in memory as each message is booked in arrival order, so two messages for one card in
//! one batch see each other exactly as they would one after the other. What changed is read back
//! at the end to be written in one go.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::authorization::{ControlUsage, Transaction};
use crate::card_controls::{AppliedControl, TrackedUsage};
use crate::environment::Environment;
use crate::ids::{AccountId, CardId, TransactionId};
use crate::ledger::{Account, Journal, LedgerError, balance_after};
use crate::rules::risk::{Attempt, RiskProfile};
use crate::rules::velocity::{CounterSpec, VelocityBook};
use crate::time::Timestamp;

/// The program accounts a posting touches besides the card's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramAccounts {
    pub settlement: AccountId,
    pub losses: AccountId,
}

/// A journal as posted, with each entry's account balance right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub journal: Journal,
    pub balances_after: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostingRefused {
    #[error("an account would go beyond the balance limit")]
    BalanceLimit,
    #[error("an account would go below its floor")]
    BelowFloor,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

#[derive(Debug, Default)]
pub struct Books {
    accounts: HashMap<AccountId, Account>,
    initial: HashMap<AccountId, (i64, i64)>,
    transactions: HashMap<TransactionId, Transaction>,
    authorizations: HashMap<(Environment, String), TransactionId>,
    created: Vec<TransactionId>,
    updated: Vec<TransactionId>,
    postings: Vec<Posting>,
    usages: Vec<TrackedUsage>,
    velocity: VelocityBook,
    /// The velocity counters each card's transactions move (its active and draft rules').
    counters: HashMap<CardId, Vec<(String, Arc<CounterSpec>)>>,
    risk: HashMap<CardId, RiskProfile>,
    risk_changed: Vec<CardId>,
}

impl Books {
    pub fn new(
        accounts: impl IntoIterator<Item = Account>,
        transactions: impl IntoIterator<Item = Transaction>,
        usages: Vec<TrackedUsage>,
    ) -> Books {
        let mut books = Books {
            usages,
            ..Books::default()
        };
        for a in accounts {
            books.initial.insert(a.id.clone(), (a.balance, a.held));
            books.accounts.insert(a.id.clone(), a);
        }
        for t in transactions {
            books.index(&t);
            books.transactions.insert(t.id.clone(), t);
        }
        books
    }

    fn index(&mut self, t: &Transaction) {
        if t.kind == crate::authorization::TransactionKind::Authorization {
            self.authorizations
                .insert((t.environment, t.network_transaction_id.clone()), t.id.clone());
        }
    }

    /// Adds what fraud screening reads and keeps: velocity counters as loaded, which counters
    /// each card moves, and the cards' risk profiles.
    #[must_use]
    pub fn with_screening(
        mut self,
        velocity: VelocityBook,
        counters: HashMap<CardId, Vec<(String, Arc<CounterSpec>)>>,
        risk: HashMap<CardId, RiskProfile>,
    ) -> Books {
        self.velocity = velocity;
        self.counters = counters;
        self.risk = risk;
        self
    }

    pub fn velocity(&self) -> &VelocityBook {
        &self.velocity
    }

    /// The card's risk profile as it stands in this batch (empty for a card never seen).
    pub fn risk_profile(&self, card: &CardId) -> RiskProfile {
        self.risk.get(card).cloned().unwrap_or_default()
    }

    fn risk_mut(&mut self, card: &CardId) -> &mut RiskProfile {
        if !self.risk_changed.contains(card) {
            self.risk_changed.push(card.clone());
        }
        self.risk.entry(card.clone()).or_default()
    }

    pub(crate) fn observe_risk(&mut self, card: &CardId, attempt: &Attempt<'_>, approved_amount: i64) {
        self.risk_mut(card)
            .observe(attempt, approved_amount > 0, approved_amount);
    }

    pub(crate) fn take_testing_alert(&mut self, card: &CardId, at: Timestamp) -> bool {
        self.risk_mut(card).take_testing_alert(at)
    }

    /// Profiles this batch changed, to write back.
    pub fn risk_changes(&self) -> Vec<(&CardId, &RiskProfile)> {
        self.risk_changed
            .iter()
            .filter_map(|id| self.risk.get(id).map(|p| (id, p)))
            .collect()
    }

    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// The authorization a network transaction id started, as it stands now in this batch.
    pub fn authorization(&self, environment: Environment, ntid: &str) -> Option<&Transaction> {
        self.authorizations
            .get(&(environment, ntid.to_owned()))
            .and_then(|id| self.transactions.get(id))
    }

    pub fn transaction(&self, id: &TransactionId) -> Option<&Transaction> {
        self.transactions.get(id)
    }

    /// What each control has used in its window so far. Every control passed must be tracked:
    /// a control missing here would count nothing and could approve past its limit.
    pub fn usages(&self, controls: &[AppliedControl]) -> Vec<ControlUsage> {
        controls
            .iter()
            .map(|c| {
                let tracked = self
                    .usages
                    .iter()
                    .find(|u| u.control.id == c.id && u.control.scope == c.scope)
                    .unwrap_or_else(|| panic!("control {} is not tracked in this batch", c.id));
                ControlUsage {
                    limit: c.limit.clone(),
                    ..tracked.usage()
                }
            })
            .collect()
    }

    fn account_mut(&mut self, id: &AccountId) -> &mut Account {
        self.accounts
            .get_mut(id)
            .unwrap_or_else(|| panic!("account {id} is not locked in this batch"))
    }

    /// Places (positive) or releases (negative) part of a hold. Placing one never takes the
    /// account below its floor: the caller sized it from `spendable`.
    pub(crate) fn hold(&mut self, id: &AccountId, delta: i64) {
        let account = self.account_mut(id);
        account.held += delta;
        assert!(account.held >= 0, "account {id} would hold a negative amount");
        assert!(
            delta <= 0 || account.floor.is_none_or(|f| account.balance - account.held >= f),
            "a hold on {id} would go below its floor"
        );
    }

    /// Posts a journal, or refuses it (changing nothing) when an account would leave its bounds.
    pub(crate) fn post(&mut self, journal: Journal) -> Result<(), PostingRefused> {
        journal.assert_balanced();
        let mut next: HashMap<&AccountId, i64> = HashMap::new();
        let mut balances_after = Vec::with_capacity(journal.entries.len());
        for e in &journal.entries {
            let account = self
                .accounts
                .get(&e.account_id)
                .unwrap_or_else(|| panic!("account {} is not locked in this batch", e.account_id));
            let current = next.get(&e.account_id).copied().unwrap_or(account.balance);
            let after = balance_after(current, e.delta()).ok_or(PostingRefused::BalanceLimit)?;
            if account.floor.is_some_and(|f| after - account.held < f) {
                return Err(PostingRefused::BelowFloor);
            }
            next.insert(&e.account_id, after);
            balances_after.push(after);
        }
        let changes: Vec<(AccountId, i64)> = next.into_iter().map(|(id, b)| (id.clone(), b)).collect();
        for (id, balance) in changes {
            self.account_mut(&id).balance = balance;
        }
        self.postings.push(Posting {
            journal,
            balances_after,
        });
        Ok(())
    }

    /// Records a new or changed transaction, moving every tracked control's usage with it.
    pub(crate) fn record(&mut self, t: Transaction) {
        let before = self.transactions.get(&t.id);
        for usage in &mut self.usages {
            usage.record(before, &t);
        }
        if let Some(specs) = self.counters.get(&t.card_id) {
            self.velocity.record(specs, before, &t);
        }
        match before {
            None => self.created.push(t.id.clone()),
            Some(_) if !self.created.contains(&t.id) && !self.updated.contains(&t.id) => {
                self.updated.push(t.id.clone())
            }
            Some(_) => {}
        }
        self.index(&t);
        self.transactions.insert(t.id.clone(), t);
    }

    /// Transactions this batch created, in their final state, in creation order.
    pub fn created(&self) -> Vec<&Transaction> {
        self.created.iter().filter_map(|id| self.transactions.get(id)).collect()
    }

    /// Transactions that existed before this batch and changed in it, in their final state.
    pub fn updated(&self) -> Vec<&Transaction> {
        self.updated.iter().filter_map(|id| self.transactions.get(id)).collect()
    }

    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Every account whose balance or held amount changed: (account, balance delta, held delta).
    pub fn account_changes(&self) -> Vec<(AccountId, i64, i64)> {
        let mut changes: Vec<(AccountId, i64, i64)> = self
            .accounts
            .values()
            .filter_map(|a| {
                let (balance, held) = self.initial.get(&a.id).copied().unwrap_or((0, 0));
                let change = (a.id.clone(), a.balance - balance, a.held - held);
                (change.1 != 0 || change.2 != 0).then_some(change)
            })
            .collect();
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        changes
    }

    /// The ids of transactions loaded or created in this batch.
    pub fn known(&self) -> HashSet<&TransactionId> {
        self.transactions.keys().collect()
    }
}
