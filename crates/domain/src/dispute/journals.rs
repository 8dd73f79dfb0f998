//! The money behind a case's outcome: balanced journals between the card and the program's
//! disputes, settlement and losses accounts.

use super::case::Dispute;
use crate::ids::AccountId;
use crate::ledger::{Direction, Journal, JournalKind, LedgerError};
use crate::money::Money;
use crate::time::Timestamp;

/// The program accounts disputes post against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeAccounts {
    pub disputes: AccountId,
    pub settlement: AccountId,
    pub losses: AccountId,
}

fn journal(
    d: &Dispute,
    kind: JournalKind,
    what: &str,
    entries: Vec<(AccountId, Direction, i64)>,
    now: Timestamp,
) -> Result<Journal, LedgerError> {
    let entries = entries
        .into_iter()
        .filter(|(_, _, amount)| *amount > 0)
        .map(|(account, direction, amount)| (account, direction, Money::new(amount, d.currency)))
        .collect();
    Journal::new(&d.tenant_id, d.environment, kind, what.to_owned(), entries, now)
}

/// Provisional credit for what is disputed and not credited yet: from the program's dispute
/// account to the card.
pub fn provisional_credit_journal(
    d: &Dispute,
    accounts: &DisputeAccounts,
    now: Timestamp,
) -> Result<Journal, LedgerError> {
    let due = d.amount - d.provisional_credit;
    journal(
        d,
        JournalKind::DisputeProvisionalCredit,
        "Dispute provisional credit",
        vec![
            (accounts.disputes.clone(), Direction::Debit, due),
            (d.account_id.clone(), Direction::Credit, due),
        ],
        now,
    )
}

/// Takes `amount` of granted credit back from the card: as much as the card can pay without
/// going below its floor, the rest from the program's losses account.
pub fn credit_reversal_journal(
    d: &Dispute,
    accounts: &DisputeAccounts,
    amount: i64,
    card_can_pay: i64,
    now: Timestamp,
) -> Result<Journal, LedgerError> {
    let card_part = amount.min(card_can_pay.max(0));
    journal(
        d,
        JournalKind::DisputeCreditReversal,
        "Dispute provisional credit reversed",
        vec![
            (accounts.disputes.clone(), Direction::Credit, amount),
            (d.account_id.clone(), Direction::Debit, card_part),
            (accounts.losses.clone(), Direction::Debit, amount - card_part),
        ],
        now,
    )
}

/// The network's chargeback credit for what was recovered: it makes the granted credit whole
/// (settling the dispute account), and credits the card with any recovery not granted yet.
pub fn chargeback_journal(
    d: &Dispute,
    accounts: &DisputeAccounts,
    recovered: i64,
    now: Timestamp,
) -> Result<Journal, LedgerError> {
    let to_disputes = recovered.min(d.provisional_credit);
    journal(
        d,
        JournalKind::DisputeChargeback,
        "Dispute chargeback credit",
        vec![
            (accounts.settlement.clone(), Direction::Debit, recovered),
            (accounts.disputes.clone(), Direction::Credit, to_disputes),
            (d.account_id.clone(), Direction::Credit, recovered - to_disputes),
        ],
        now,
    )
}

/// The whole disputed amount, credited, made final without a recovery (the resolution deadline
/// passed): the program bears it, from its losses account. Post it after the credit of whatever
/// was not granted yet.
pub fn credit_made_final_journal(
    d: &Dispute,
    accounts: &DisputeAccounts,
    now: Timestamp,
) -> Result<Journal, LedgerError> {
    journal(
        d,
        JournalKind::DisputeCreditFinal,
        "Dispute provisional credit made final",
        vec![
            (accounts.losses.clone(), Direction::Debit, d.amount),
            (accounts.disputes.clone(), Direction::Credit, d.amount),
        ],
        now,
    )
}
