//! Disputes (chargebacks): a cardholder's claim against a cleared purchase, worked through the
//! network's cycle as one exhaustive state machine, with Regulation E's clock (provisional credit
//! within 10 business days; resolution within 45 days, or 90 for point-of-sale, foreign and
//! new-account cases) and the journals behind the money: provisional credit from the program's
//! dispute account, its reversal when the case is lost (never below the card's floor: the program's
//! losses account pays the shortfall), and the network's chargeback credit when it is won.

mod case;
mod journals;
mod reason;
mod state;
#[cfg(test)]
mod tests;

pub use case::{
    Claim, Dispute, DisputePolicy, FilingContext, FilingError, NEW_ACCOUNT_DAYS, ProvisionalCreditPolicy, file,
    is_disputable, is_extended_case,
};
pub use journals::{
    DisputeAccounts, chargeback_journal, credit_made_final_journal, credit_reversal_journal, provisional_credit_journal,
};
pub use reason::{DisputeReason, ReasonFamily};
pub use state::{Disposition, DisputeEvent, DisputeState, DisputeStatus, IllegalDisputeTransition, Ruling};
