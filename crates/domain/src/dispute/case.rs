//! A dispute case: the program's policy, what may be filed and when, and Regulation E's deadlines.

use super::reason::{DisputeReason, ReasonFamily};
use super::state::{DisputeEvent, DisputeState, DisputeStatus, IllegalDisputeTransition};
use crate::authorization::{Transaction, TransactionKind, TransactionState};
use crate::business_days::{business_days_after, calendar_days_after};
use crate::environment::Environment;
use crate::ids::{AccountId, CardId, CardholderId, DisputeId, ProgramId, TenantId, TransactionId};
use crate::money::Currency;
use crate::program::Network;
use crate::time::Timestamp;

// automatic: granted when due, as Regulation E requires for debit and KYC-verified prepaid
// accounts; kyc_verified_only: only when the cardholder's KYC is complete (Regulation E exempts
// unverified prepaid accounts); manual: never by itself (operators may still grant it by hand).
crate::wire_enum!(ProvisionalCreditPolicy {
    Automatic => "automatic",
    KycVerifiedOnly => "kyc_verified_only",
    Manual => "manual",
});

/// A program's dispute rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisputePolicy {
    /// Filing is possible this long after settlement.
    pub filing_window_days: u32,
    /// Fraud disputes a card may have (network rules cap them).
    pub fraud_disputes_per_card_max: u32,
    pub provisional_credit_business_days: u32,
    pub resolution_days: u32,
    /// For point-of-sale, foreign and new-account cases.
    pub extended_resolution_days: u32,
    pub provisional_credit: ProvisionalCreditPolicy,
}

impl Default for DisputePolicy {
    fn default() -> Self {
        DisputePolicy {
            filing_window_days: 120,
            fraud_disputes_per_card_max: 15,
            provisional_credit_business_days: 10,
            resolution_days: 45,
            extended_resolution_days: 90,
            provisional_credit: ProvisionalCreditPolicy::Automatic,
        }
    }
}

/// A card account opened less than this long before the claim is a "new account" (Regulation E).
pub const NEW_ACCOUNT_DAYS: i64 = 30;

/// Why a dispute cannot be filed: each with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilingError {
    #[error("only cleared purchases can be disputed")]
    NotDisputable,
    #[error("the amount must be positive and at most what was cleared and not yet disputed ({0})")]
    AmountTooLarge(i64),
    #[error("the filing window closed {0}")]
    WindowClosed(Timestamp),
    #[error("the card already has {0} fraud disputes, the most allowed")]
    FraudLimit(u32),
    #[error("customer_filed_at cannot be in the future")]
    FiledInFuture,
}

impl FilingError {
    pub fn code(&self) -> &'static str {
        match self {
            FilingError::NotDisputable => "transaction_not_disputable",
            FilingError::AmountTooLarge(_) => "dispute_amount_exceeds_disputable",
            FilingError::WindowClosed(_) => "dispute_window_closed",
            FilingError::FraudLimit(_) => "fraud_dispute_limit_reached",
            FilingError::FiledInFuture => "customer_filed_at_in_future",
        }
    }
}

/// A dispute and everything that decides its course.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispute {
    pub id: DisputeId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub transaction_id: TransactionId,
    pub card_id: CardId,
    pub cardholder_id: CardholderId,
    pub program_id: ProgramId,
    pub account_id: AccountId,
    pub currency: Currency,
    pub amount: i64,
    pub reason: DisputeReason,
    pub network_reason_code: String,
    pub customer_note: Option<String>,
    pub customer_filed_at: Timestamp,
    pub state: DisputeState,
    pub resolution_reason: Option<String>,
    /// Provisional credit granted and not reversed (minor units).
    pub provisional_credit: i64,
    pub provisional_credit_due_at: Timestamp,
    pub resolution_due_at: Timestamp,
    /// When each status was first reached.
    pub submitted_at: Option<Timestamp>,
    pub representment_at: Option<Timestamp>,
    pub pre_arbitration_at: Option<Timestamp>,
    pub arbitration_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// What filing needs to know about the transaction's history.
#[derive(Debug, Clone, Copy)]
pub struct FilingContext<'a> {
    pub transaction: &'a Transaction,
    pub network: Network,
    /// Amounts of the transaction already disputed (open or won disputes).
    pub already_disputed: i64,
    /// Fraud disputes already filed on the card.
    pub fraud_disputes_on_card: u32,
    /// When the card's account was opened.
    pub account_opened_at: Timestamp,
    pub policy: DisputePolicy,
}

/// A claim as the custodian files it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub amount: i64,
    pub reason: DisputeReason,
    pub customer_note: Option<String>,
    pub customer_filed_at: Timestamp,
}

/// Whether a transaction is a cleared purchase (the only thing a cardholder can dispute).
pub fn is_disputable(t: &Transaction) -> bool {
    match (t.kind, t.state) {
        (TransactionKind::Authorization, TransactionState::Complete) | (TransactionKind::ForcePost, _) => {
            t.cleared_amount > 0
        }
        (TransactionKind::Authorization, _) | (TransactionKind::Refund, _) => false,
    }
}

/// Files a dispute, or says why it cannot be filed.
pub fn file(ctx: FilingContext<'_>, claim: Claim, now: Timestamp) -> Result<Dispute, FilingError> {
    let t = ctx.transaction;
    if !is_disputable(t) {
        return Err(FilingError::NotDisputable);
    }
    if claim.customer_filed_at > now {
        return Err(FilingError::FiledInFuture);
    }
    let disputable = t.cleared_amount - ctx.already_disputed;
    if claim.amount <= 0 || claim.amount > disputable {
        return Err(FilingError::AmountTooLarge(disputable.max(0)));
    }
    let settled_at = t.updated_at;
    let window_closes = settled_at.plus_secs(i64::from(ctx.policy.filing_window_days) * 86_400);
    if claim.customer_filed_at > window_closes {
        return Err(FilingError::WindowClosed(window_closes));
    }
    if claim.reason.family() == ReasonFamily::Fraud
        && ctx.fraud_disputes_on_card >= ctx.policy.fraud_disputes_per_card_max
    {
        return Err(FilingError::FraudLimit(ctx.policy.fraud_disputes_per_card_max));
    }
    let extended = is_extended_case(t, ctx.account_opened_at, claim.customer_filed_at);
    let resolution_days = if extended {
        ctx.policy.extended_resolution_days
    } else {
        ctx.policy.resolution_days
    };
    Ok(Dispute {
        id: DisputeId::generate(),
        tenant_id: t.tenant_id.clone(),
        environment: t.environment,
        transaction_id: t.id.clone(),
        card_id: t.card_id.clone(),
        cardholder_id: t.cardholder_id.clone(),
        program_id: t.program_id.clone(),
        account_id: t.account_id.clone(),
        currency: t.currency,
        amount: claim.amount,
        reason: claim.reason,
        network_reason_code: claim.reason.network_code(ctx.network).to_owned(),
        customer_note: claim.customer_note,
        customer_filed_at: claim.customer_filed_at,
        state: DisputeState::new(),
        resolution_reason: None,
        provisional_credit: 0,
        provisional_credit_due_at: business_days_after(
            claim.customer_filed_at,
            ctx.policy.provisional_credit_business_days,
        ),
        resolution_due_at: calendar_days_after(claim.customer_filed_at, resolution_days),
        submitted_at: None,
        representment_at: None,
        pre_arbitration_at: None,
        arbitration_at: None,
        closed_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    })
}

/// Regulation E gives 90 days instead of 45 for point-of-sale transactions, foreign ones, and
/// claims on an account opened in the last 30 days.
pub fn is_extended_case(t: &Transaction, account_opened_at: Timestamp, filed_at: Timestamp) -> bool {
    let point_of_sale = matches!(
        t.entry_mode.as_str(),
        "chip" | "contactless" | "magstripe" | "swipe" | "pin"
    );
    let foreign = t.merchant.country != "USA";
    let new_account = filed_at.as_micros() - account_opened_at.as_micros() < NEW_ACCOUNT_DAYS * 86_400_000_000;
    point_of_sale || foreign || new_account
}

impl Dispute {
    /// Moves the dispute along, stamping when each status was first reached.
    pub fn apply(
        &self,
        event: DisputeEvent,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Dispute, IllegalDisputeTransition> {
        let state = self.state.apply(event, self.amount)?;
        let mut next = self.clone();
        next.state = state;
        next.updated_at = now;
        next.version += 1;
        let stamp = |slot: &mut Option<Timestamp>| {
            if slot.is_none() {
                *slot = Some(now);
            }
        };
        match state.status {
            DisputeStatus::Submitted => stamp(&mut next.submitted_at),
            DisputeStatus::Representment => stamp(&mut next.representment_at),
            DisputeStatus::PreArbitration => stamp(&mut next.pre_arbitration_at),
            DisputeStatus::Arbitration => stamp(&mut next.arbitration_at),
            DisputeStatus::Closed => {
                stamp(&mut next.closed_at);
                next.resolution_reason = reason;
            }
            DisputeStatus::New | DisputeStatus::PendingCustomer => {}
        }
        Ok(next)
    }

    pub fn is_open(&self) -> bool {
        self.state.status != DisputeStatus::Closed
    }

    /// Whether provisional credit is due now and the policy grants it without a person.
    pub fn provisional_credit_due(&self, policy: ProvisionalCreditPolicy, kyc_verified: bool, now: Timestamp) -> bool {
        let granted_by_policy = match policy {
            ProvisionalCreditPolicy::Automatic => true,
            ProvisionalCreditPolicy::KycVerifiedOnly => kyc_verified,
            ProvisionalCreditPolicy::Manual => false,
        };
        granted_by_policy && self.is_open() && self.provisional_credit == 0 && now >= self.provisional_credit_due_at
    }

    /// Whether the resolution deadline passed with the case still open: the provisional credit
    /// then stays with the cardholder for good.
    pub fn resolution_overdue(&self, now: Timestamp) -> bool {
        self.is_open() && now > self.resolution_due_at
    }
}
