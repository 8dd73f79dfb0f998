//! The double-entry ledger. Every account's balance is credits minus debits; every journal's
//! debits equal its credits per currency (checked when it is built and asserted again before it is
//! written); posted entries are never updated; corrections are new journals. So the sum of all
//! balances per currency is always zero, and `available = balance - held` never goes below an
//! account's floor (the database arbitrates that under concurrency).

use std::collections::BTreeMap;

use crate::environment::Environment;
use crate::ids::{AccountId, JournalId, LedgerEntryId, ProgramId, TenantId};
use crate::money::{AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR, Currency, Money};
use crate::time::Timestamp;

crate::wire_enum!(AccountKind {
    ProgramFunding => "program_funding",
    ProgramSettlement => "program_settlement",
    ProgramFees => "program_fees",
    ProgramExternal => "program_external",
    ProgramLosses => "program_losses",
    ProgramDisputes => "program_disputes",
    CardBalance => "card_balance",
});

crate::wire_enum!(Direction {
    Debit => "debit",
    Credit => "credit",
});

crate::wire_enum!(JournalKind {
    ProgramFunding => "program_funding",
    BalanceAdjustment => "balance_adjustment",
    Clearing => "clearing",
    ForcePost => "force_post",
    Refund => "refund",
    DisputeProvisionalCredit => "dispute_provisional_credit",
    DisputeCreditReversal => "dispute_credit_reversal",
    DisputeChargeback => "dispute_chargeback",
    DisputeCreditFinal => "dispute_credit_final",
});

impl AccountKind {
    /// The lowest balance an account of this kind may reach; `None` is unbounded.
    pub fn floor(self) -> Option<i64> {
        match self {
            AccountKind::ProgramFunding | AccountKind::CardBalance => Some(0),
            AccountKind::ProgramSettlement
            | AccountKind::ProgramFees
            | AccountKind::ProgramExternal
            | AccountKind::ProgramLosses
            | AccountKind::ProgramDisputes => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub program: ProgramId,
    pub kind: AccountKind,
    pub currency: Currency,
    pub floor: Option<i64>,
    /// Posted: credits minus debits, in minor units.
    pub balance: i64,
    /// Pending holds (authorizations not yet cleared).
    pub held: i64,
    pub created_at: Timestamp,
}

impl Account {
    pub fn open(
        tenant_id: &TenantId,
        environment: Environment,
        program: &ProgramId,
        kind: AccountKind,
        currency: Currency,
        now: Timestamp,
    ) -> Account {
        Account {
            id: AccountId::generate(),
            tenant_id: tenant_id.clone(),
            environment,
            program: program.clone(),
            kind,
            currency,
            floor: kind.floor(),
            balance: 0,
            held: 0,
            created_at: now,
        }
    }

    /// Posted balance less open holds: what the card shows as available.
    pub fn available(&self) -> i64 {
        self.balance - self.held
    }

    /// What may still be held or debited without going below the floor; an account with no floor
    /// (a custodian-authority card's) may hold up to the balance limit.
    pub fn spendable(&self) -> i64 {
        match self.floor {
            Some(floor) => self.balance - self.held - floor,
            None => BALANCE_MAX_MINOR.saturating_sub(self.held),
        }
    }

    /// This account's balance after a change of `delta`, or the refusal when it would leave
    /// ±`BALANCE_MAX_MINOR`.
    pub fn balance_after(&self, delta: i64) -> Result<i64, BalanceLimitExceeded> {
        balance_after(self.balance, delta).ok_or_else(|| BalanceLimitExceeded {
            account_id: self.id.clone(),
            balance: self.balance,
            delta,
        })
    }
}

/// The error code of a posting refused by the balance limit (409).
pub const BALANCE_LIMIT_EXCEEDED: &str = "balance_limit_exceeded";

/// `balance + delta` if the sum stays within ±`BALANCE_MAX_MINOR`; `None` if it would leave that
/// range (or overflow an `i64`, for inputs far outside it). The one rule for every posting: each
/// path that moves money checks each account it credits or debits with this before it writes.
pub fn balance_after(balance: i64, delta: i64) -> Option<i64> {
    balance
        .checked_add(delta)
        .filter(|b| (-BALANCE_MAX_MINOR..=BALANCE_MAX_MINOR).contains(b))
}

/// A posting that would take an account's balance beyond ±`BALANCE_MAX_MINOR`. An expected
/// business answer (`409 balance_limit_exceeded`), never a storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account {account_id} holds {balance}; a change of {delta} would take it beyond ±{max} minor units", max = BALANCE_MAX_MINOR)]
pub struct BalanceLimitExceeded {
    pub account_id: AccountId,
    pub balance: i64,
    pub delta: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a journal needs at least two entries")]
    TooFewEntries,
    #[error("entry amounts must be positive")]
    NonPositiveAmount,
    #[error("debits and credits differ in {0}")]
    Unbalanced(String),
    #[error("an entry exceeds the maximum amount of {AMOUNT_MAX_MINOR} minor units")]
    AmountTooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: LedgerEntryId,
    pub account_id: AccountId,
    pub direction: Direction,
    pub amount: Money,
}

impl Entry {
    /// The change this entry makes to its account's balance.
    pub fn delta(&self) -> i64 {
        match self.direction {
            Direction::Credit => self.amount.minor(),
            Direction::Debit => -self.amount.minor(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub id: JournalId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub kind: JournalKind,
    pub description: String,
    pub entries: Vec<Entry>,
    pub created_at: Timestamp,
}

fn balanced(entries: &[Entry]) -> Result<(), LedgerError> {
    let mut per_currency: BTreeMap<String, i128> = BTreeMap::new();
    for e in entries {
        *per_currency.entry(e.amount.currency().code().to_owned()).or_default() += i128::from(e.delta());
    }
    match per_currency.into_iter().find(|(_, sum)| *sum != 0) {
        Some((currency, _)) => Err(LedgerError::Unbalanced(currency)),
        None => Ok(()),
    }
}

impl Journal {
    pub fn new(
        tenant_id: &TenantId,
        environment: Environment,
        kind: JournalKind,
        description: String,
        entries: Vec<(AccountId, Direction, Money)>,
        now: Timestamp,
    ) -> Result<Journal, LedgerError> {
        if entries.len() < 2 {
            return Err(LedgerError::TooFewEntries);
        }
        if entries.iter().any(|(_, _, m)| m.minor() <= 0) {
            return Err(LedgerError::NonPositiveAmount);
        }
        // Bounded entries keep every balance update free of overflow, in Rust and in SQL.
        if entries.iter().any(|(_, _, m)| m.minor() > AMOUNT_MAX_MINOR) {
            return Err(LedgerError::AmountTooLarge);
        }
        let entries: Vec<Entry> = entries
            .into_iter()
            .map(|(account_id, direction, amount)| Entry {
                id: LedgerEntryId::generate(),
                account_id,
                direction,
                amount,
            })
            .collect();
        balanced(&entries)?;
        Ok(Journal {
            id: JournalId::generate(),
            tenant_id: tenant_id.clone(),
            environment,
            kind,
            description,
            entries,
            created_at: now,
        })
    }

    /// Moves `amount` from `from` (debited) to `to` (credited).
    #[allow(
        clippy::too_many_arguments,
        reason = "a journal header and one transfer; a builder would hide nothing"
    )]
    pub fn transfer(
        tenant_id: &TenantId,
        environment: Environment,
        kind: JournalKind,
        description: String,
        from: &AccountId,
        to: &AccountId,
        amount: Money,
        now: Timestamp,
    ) -> Result<Journal, LedgerError> {
        Journal::new(
            tenant_id,
            environment,
            kind,
            description,
            vec![
                (from.clone(), Direction::Debit, amount),
                (to.clone(), Direction::Credit, amount),
            ],
            now,
        )
    }

    /// Always on: an unbalanced journal must never reach storage, whatever built it.
    pub fn assert_balanced(&self) {
        assert!(balanced(&self.entries).is_ok(), "journal {} is unbalanced", self.id);
        assert!(
            self.entries
                .iter()
                .all(|e| (1..=AMOUNT_MAX_MINOR).contains(&e.amount.minor())),
            "journal {} has an entry that is not positive or over the maximum amount",
            self.id
        );
    }

    /// The net change this journal makes to `account` (zero if it does not touch it). Entries
    /// are bounded by `AMOUNT_MAX_MINOR`, so the sum cannot overflow for any real journal; a
    /// saturated sum is still refused by `balance_after`.
    pub fn delta_for(&self, account: &AccountId) -> i64 {
        self.entries
            .iter()
            .filter(|e| e.account_id == *account)
            .fold(0i64, |sum, e| sum.saturating_add(e.delta()))
    }

    /// Checks that posting this journal keeps each of `accounts` (as last read) within
    /// ±`BALANCE_MAX_MINOR`. Call it before writing; accounts the journal does not touch are
    /// ignored, and the store checks every touched account again under its write lock.
    pub fn check_balance_limits<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a Account>,
    ) -> Result<(), BalanceLimitExceeded> {
        for account in accounts {
            if self.entries.iter().any(|e| e.account_id == account.id) {
                account.balance_after(self.delta_for(&account.id))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(n: i64) -> Money {
        Money::new(n, Currency::parse("USD").unwrap())
    }

    #[test]
    fn journals_must_balance_per_currency() {
        let t = TenantId::generate();
        let (a, b) = (AccountId::generate(), AccountId::generate());
        let env = Environment::Sandbox;
        let now = Timestamp::now();
        let ok = Journal::transfer(&t, env, JournalKind::BalanceAdjustment, "x".into(), &a, &b, usd(5), now).unwrap();
        assert_eq!(ok.entries.iter().map(Entry::delta).sum::<i64>(), 0);
        ok.assert_balanced();
        let eur = Money::new(5, Currency::parse("EUR").unwrap());
        let mixed = vec![
            (a.clone(), Direction::Debit, usd(5)),
            (b.clone(), Direction::Credit, eur),
        ];
        assert_eq!(
            Journal::new(&t, env, JournalKind::BalanceAdjustment, "x".into(), mixed, now),
            Err(LedgerError::Unbalanced("EUR".into()))
        );
        let short = vec![(a.clone(), Direction::Debit, usd(5))];
        assert_eq!(
            Journal::new(&t, env, JournalKind::BalanceAdjustment, "x".into(), short, now),
            Err(LedgerError::TooFewEntries)
        );
        let zero = vec![
            (a.clone(), Direction::Debit, usd(0)),
            (b.clone(), Direction::Credit, usd(0)),
        ];
        assert_eq!(
            Journal::new(&t, env, JournalKind::BalanceAdjustment, "x".into(), zero, now),
            Err(LedgerError::NonPositiveAmount)
        );
        let huge = vec![
            (a, Direction::Debit, usd(AMOUNT_MAX_MINOR + 1)),
            (b, Direction::Credit, usd(AMOUNT_MAX_MINOR + 1)),
        ];
        assert_eq!(
            Journal::new(&t, env, JournalKind::BalanceAdjustment, "x".into(), huge, now),
            Err(LedgerError::AmountTooLarge)
        );
    }

    #[test]
    fn balances_stay_within_the_maximum_in_both_directions() {
        assert_eq!(balance_after(0, BALANCE_MAX_MINOR), Some(BALANCE_MAX_MINOR));
        assert_eq!(balance_after(BALANCE_MAX_MINOR, 1), None);
        assert_eq!(balance_after(-BALANCE_MAX_MINOR, -1), None);
        assert_eq!(balance_after(-BALANCE_MAX_MINOR, 1), Some(1 - BALANCE_MAX_MINOR));
        // Inputs far outside the range (a balance stored before the limit existed) are refused,
        // never overflowed.
        assert_eq!(balance_after(i64::MAX, 1), None);
        assert_eq!(balance_after(i64::MAX, -1), None);
        assert_eq!(balance_after(i64::MIN, -1), None);
        assert_eq!(balance_after(i64::MAX, -i64::MAX), Some(0));
    }

    #[test]
    fn a_journal_is_checked_against_the_balances_it_would_produce() {
        let t = TenantId::generate();
        let env = Environment::Sandbox;
        let now = Timestamp::now();
        let usd_currency = Currency::parse("USD").unwrap();
        let program = ProgramId::generate();
        let open = |kind, balance| Account {
            balance,
            ..Account::open(&t, env, &program, kind, usd_currency, now)
        };
        let external = open(AccountKind::ProgramExternal, -(BALANCE_MAX_MINOR - 10));
        let funding = open(AccountKind::ProgramFunding, BALANCE_MAX_MINOR - 10);
        let other = open(AccountKind::ProgramFees, BALANCE_MAX_MINOR);
        let fund = |n| {
            Journal::transfer(
                &t,
                env,
                JournalKind::ProgramFunding,
                "f".into(),
                &external.id,
                &funding.id,
                usd(n),
                now,
            )
            .unwrap()
        };
        assert_eq!(fund(10).check_balance_limits([&external, &funding, &other]), Ok(()));
        let refused = fund(11).check_balance_limits([&funding, &external]).unwrap_err();
        assert_eq!(
            refused,
            BalanceLimitExceeded {
                account_id: funding.id.clone(),
                balance: BALANCE_MAX_MINOR - 10,
                delta: 11
            }
        );
        // Either side is enough to refuse: the external account would pass -max too.
        assert_eq!(
            fund(11).check_balance_limits([&external]).unwrap_err().account_id,
            external.id
        );
        assert_eq!(fund(11).delta_for(&external.id), -11);
        assert_eq!(fund(11).delta_for(&other.id), 0);
        assert!(funding.balance_after(10).is_ok());
    }
}

/// A custodian's credit or debit of a card balance (`initial_load` is one too), posted as one
/// journal against the program's funding account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceAdjustment {
    pub id: crate::ids::BalanceAdjustmentId,
    pub card_id: crate::ids::CardId,
    pub direction: Direction,
    pub amount: Money,
    pub description: String,
    pub journal_id: JournalId,
    pub created_at: Timestamp,
}

impl BalanceAdjustment {
    /// The adjustment and its journal: a credit moves money from the program's funding account to
    /// the card account; a debit moves it back.
    pub fn post(
        card_id: &crate::ids::CardId,
        card_account: &Account,
        funding_account: &Account,
        direction: Direction,
        amount: Money,
        description: String,
        now: Timestamp,
    ) -> Result<(BalanceAdjustment, Journal), LedgerError> {
        let (from, to) = match direction {
            Direction::Credit => (&funding_account.id, &card_account.id),
            Direction::Debit => (&card_account.id, &funding_account.id),
        };
        let journal = Journal::transfer(
            &card_account.tenant_id,
            card_account.environment,
            JournalKind::BalanceAdjustment,
            description.clone(),
            from,
            to,
            amount,
            now,
        )?;
        let adjustment = BalanceAdjustment {
            id: crate::ids::BalanceAdjustmentId::generate(),
            card_id: card_id.clone(),
            direction,
            amount,
            description,
            journal_id: journal.id.clone(),
            created_at: now,
        };
        Ok((adjustment, journal))
    }
}
