//! Disputes (chargebacks): a cardholder's claim against a cleared purchase, worked through the
//! network's cycle as one exhaustive state machine, with Regulation E's clock (provisional credit
//! within 10 business days; resolution within 45 days, or 90 for point-of-sale, foreign and
//! new-account cases) and the journals behind the money: provisional credit from the program's
//! dispute account, its reversal when the case is lost (never below the card's floor: the program's
//! losses account pays the shortfall), and the network's chargeback credit when it is won.

use crate::authorization::{Transaction, TransactionKind, TransactionState};
use crate::business_days::{business_days_after, calendar_days_after};
use crate::environment::Environment;
use crate::ids::{AccountId, CardId, CardholderId, DisputeId, ProgramId, TenantId, TransactionId};
use crate::ledger::{Direction, Journal, JournalKind, LedgerError};
use crate::money::{Currency, Money};
use crate::program::Network;
use crate::time::Timestamp;

crate::wire_enum!(DisputeReason {
    FraudCardPresent => "fraud_card_present",
    FraudCardNotPresent => "fraud_card_not_present",
    NoAuthorization => "no_authorization",
    DeclinedAuthorization => "declined_authorization",
    DuplicateProcessing => "duplicate_processing",
    IncorrectAmount => "incorrect_amount",
    LatePresentment => "late_presentment",
    NotReceived => "merchandise_not_received",
    NotAsDescribed => "not_as_described",
    CancelledRecurring => "cancelled_recurring",
    RefundNotProcessed => "refund_not_processed",
    Cancelled => "cancelled",
    AtmMisdispense => "atm_misdispense",
    Other => "other",
});

crate::wire_enum!(ReasonFamily {
    Fraud => "fraud",
    Authorization => "authorization",
    ProcessingError => "processing_error",
    ConsumerDispute => "consumer_dispute",
    Atm => "atm",
    Other => "other",
});

impl DisputeReason {
    pub fn family(self) -> ReasonFamily {
        use DisputeReason as R;
        match self {
            R::FraudCardPresent | R::FraudCardNotPresent => ReasonFamily::Fraud,
            R::NoAuthorization | R::DeclinedAuthorization => ReasonFamily::Authorization,
            R::DuplicateProcessing | R::IncorrectAmount | R::LatePresentment => ReasonFamily::ProcessingError,
            R::NotReceived | R::NotAsDescribed | R::CancelledRecurring | R::RefundNotProcessed | R::Cancelled => {
                ReasonFamily::ConsumerDispute
            }
            R::AtmMisdispense => ReasonFamily::Atm,
            R::Other => ReasonFamily::Other,
        }
    }

    /// The reason code the chargeback carries on the card's network (Visa dispute conditions,
    /// Mastercard message reason codes).
    pub fn network_code(self, network: Network) -> &'static str {
        use DisputeReason as R;
        match (network, self) {
            (Network::Visa, R::FraudCardPresent) => "10.1",
            (Network::Visa, R::FraudCardNotPresent) => "10.4",
            (Network::Visa, R::NoAuthorization) => "11.2",
            (Network::Visa, R::DeclinedAuthorization) => "11.3",
            (Network::Visa, R::LatePresentment) => "12.1",
            (Network::Visa, R::IncorrectAmount) => "12.5",
            (Network::Visa, R::DuplicateProcessing) => "12.6.1",
            (Network::Visa, R::NotReceived) => "13.1",
            (Network::Visa, R::CancelledRecurring) => "13.2",
            (Network::Visa, R::NotAsDescribed) => "13.3",
            (Network::Visa, R::RefundNotProcessed) => "13.6",
            (Network::Visa, R::Cancelled) => "13.7",
            (Network::Visa, R::AtmMisdispense) => "13.9",
            (Network::Visa, R::Other) => "13.9",
            (Network::Mastercard, R::FraudCardPresent | R::FraudCardNotPresent) => "4837",
            (Network::Mastercard, R::NoAuthorization | R::DeclinedAuthorization) => "4808",
            (Network::Mastercard, R::DuplicateProcessing | R::IncorrectAmount | R::LatePresentment) => "4834",
            (
                Network::Mastercard,
                R::NotReceived | R::NotAsDescribed | R::CancelledRecurring | R::RefundNotProcessed | R::Cancelled,
            ) => "4853",
            (Network::Mastercard, R::AtmMisdispense) => "4834",
            (Network::Mastercard, R::Other) => "4853",
        }
    }
}

crate::wire_enum!(DisputeStatus {
    New => "new",
    PendingCustomer => "pending_customer",
    Submitted => "submitted",
    Representment => "representment",
    PreArbitration => "pre_arbitration",
    Arbitration => "arbitration",
    Closed => "closed",
});

crate::wire_enum!(Disposition {
    Won => "won",
    Lost => "lost",
    PartiallyWon => "partially_won",
    Withdrawn => "withdrawn",
    Denied => "denied",
});

/// What moves a dispute along: the issuer's (operators') steps and the network's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeEvent {
    /// Ask the custodian (cardholder) for evidence.
    RequestEvidence,
    /// The evidence asked for came in.
    EvidenceReceived,
    /// Send the chargeback to the network.
    Submit,
    /// The merchant accepted the chargeback.
    MerchantAccepted,
    /// The merchant answered with a representment.
    Represented,
    /// The issuer accepts the representment: the cardholder loses.
    AcceptRepresentment,
    /// The issuer answers the representment with a pre-arbitration.
    PreArbitrate,
    /// The merchant accepted the pre-arbitration.
    PreArbitrationAccepted,
    /// The pre-arbitration was declined: the issuer takes it to arbitration.
    Arbitrate,
    /// The network ruled.
    Ruled(Ruling),
    /// The cardholder withdrew the claim.
    Withdraw,
    /// The issuer denies the claim before it reaches the network.
    Deny,
    /// Regulation E's resolution deadline passed with the case open: the cardholder keeps the
    /// credit for good (the program bears it).
    ResolutionDeadlinePassed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling {
    ForCardholder,
    ForMerchant,
    /// Part of the disputed amount (minor units) is recovered.
    Partly(i64),
}

/// Where a dispute is: its status, and once closed how it ended and for how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisputeState {
    pub status: DisputeStatus,
    pub disposition: Option<Disposition>,
    /// What the cardholder recovers (set when closed).
    pub recovered: Option<i64>,
}

/// An illegal step, each with its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalDisputeTransition {
    #[error("the dispute is closed")]
    Closed,
    #[error("the dispute is not waiting for evidence")]
    NotAwaitingEvidence,
    #[error("the dispute has already been submitted to the network")]
    AlreadySubmitted,
    #[error("the dispute is not with the network")]
    NotSubmitted,
    #[error("the merchant has not answered with a representment")]
    NoRepresentment,
    #[error("the dispute is not in pre-arbitration")]
    NotInPreArbitration,
    #[error("the dispute is not in arbitration")]
    NotInArbitration,
    #[error("a partial ruling recovers more than nothing and less than the disputed amount")]
    PartialRulingAmount,
}

impl IllegalDisputeTransition {
    pub fn code(self) -> &'static str {
        use IllegalDisputeTransition as X;
        match self {
            X::Closed => "dispute_closed",
            X::NotAwaitingEvidence => "dispute_not_awaiting_evidence",
            X::AlreadySubmitted => "dispute_already_submitted",
            X::NotSubmitted => "dispute_not_submitted",
            X::NoRepresentment => "dispute_not_in_representment",
            X::NotInPreArbitration => "dispute_not_in_pre_arbitration",
            X::NotInArbitration => "dispute_not_in_arbitration",
            X::PartialRulingAmount => "dispute_partial_amount_invalid",
        }
    }
}

impl DisputeState {
    pub fn new() -> Self {
        DisputeState {
            status: DisputeStatus::New,
            disposition: None,
            recovered: None,
        }
    }

    fn closed(disposition: Disposition, recovered: i64) -> Self {
        DisputeState {
            status: DisputeStatus::Closed,
            disposition: Some(disposition),
            recovered: Some(recovered),
        }
    }

    /// The one place that says which step may follow which: every (status, event) pair is
    /// decided here, none by default.
    pub fn apply(self, event: DisputeEvent, disputed: i64) -> Result<DisputeState, IllegalDisputeTransition> {
        use DisputeEvent as E;
        use DisputeStatus as S;
        use IllegalDisputeTransition as X;
        let to = |status| {
            Ok(DisputeState {
                status,
                disposition: None,
                recovered: None,
            })
        };
        match (self.status, event) {
            (S::Closed, _) => Err(X::Closed),
            (S::New, E::RequestEvidence) => to(S::PendingCustomer),
            (S::PendingCustomer, E::EvidenceReceived) => to(S::New),
            (S::New | S::PendingCustomer, E::Submit) => to(S::Submitted),
            (S::New | S::PendingCustomer, E::Deny) => Ok(Self::closed(Disposition::Denied, 0)),
            (_, E::Withdraw) => Ok(Self::closed(Disposition::Withdrawn, 0)),
            (_, E::ResolutionDeadlinePassed) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::Submitted, E::MerchantAccepted) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::Submitted, E::Represented) => to(S::Representment),
            (S::Representment, E::AcceptRepresentment) => Ok(Self::closed(Disposition::Lost, 0)),
            (S::Representment, E::PreArbitrate) => to(S::PreArbitration),
            (S::PreArbitration, E::PreArbitrationAccepted) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::PreArbitration, E::Arbitrate) => to(S::Arbitration),
            (S::Arbitration, E::Ruled(Ruling::ForCardholder)) => Ok(Self::closed(Disposition::Won, disputed)),
            (S::Arbitration, E::Ruled(Ruling::ForMerchant)) => Ok(Self::closed(Disposition::Lost, 0)),
            (S::Arbitration, E::Ruled(Ruling::Partly(amount))) if amount > 0 && amount < disputed => {
                Ok(Self::closed(Disposition::PartiallyWon, amount))
            }
            (S::Arbitration, E::Ruled(Ruling::Partly(_))) => Err(X::PartialRulingAmount),
            (S::New | S::Submitted | S::Representment | S::PreArbitration | S::Arbitration, E::EvidenceReceived) => {
                Err(X::NotAwaitingEvidence)
            }
            (
                S::PendingCustomer | S::Submitted | S::Representment | S::PreArbitration | S::Arbitration,
                E::RequestEvidence,
            ) => Err(X::AlreadySubmitted),
            (S::Submitted | S::Representment | S::PreArbitration | S::Arbitration, E::Submit | E::Deny) => {
                Err(X::AlreadySubmitted)
            }
            (S::New | S::PendingCustomer, E::MerchantAccepted | E::Represented) => Err(X::NotSubmitted),
            (S::Representment | S::PreArbitration | S::Arbitration, E::MerchantAccepted | E::Represented) => {
                Err(X::NotSubmitted)
            }
            (
                S::New | S::PendingCustomer | S::Submitted | S::PreArbitration | S::Arbitration,
                E::AcceptRepresentment | E::PreArbitrate,
            ) => Err(X::NoRepresentment),
            (
                S::New | S::PendingCustomer | S::Submitted | S::Representment | S::Arbitration,
                E::PreArbitrationAccepted | E::Arbitrate,
            ) => Err(X::NotInPreArbitration),
            (S::New | S::PendingCustomer | S::Submitted | S::Representment | S::PreArbitration, E::Ruled(_)) => {
                Err(X::NotInArbitration)
            }
        }
    }
}

impl Default for DisputeState {
    fn default() -> Self {
        DisputeState::new()
    }
}

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

/// Provisional credit: from the program's dispute account to the card.
pub fn provisional_credit_journal(
    d: &Dispute,
    accounts: &DisputeAccounts,
    now: Timestamp,
) -> Result<Journal, LedgerError> {
    journal(
        d,
        JournalKind::DisputeProvisionalCredit,
        "Dispute provisional credit",
        vec![
            (accounts.disputes.clone(), Direction::Debit, d.amount),
            (d.account_id.clone(), Direction::Credit, d.amount),
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

/// A provisional credit that became final without a recovery (the deadline passed): the program
/// bears it, from its losses account.
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
            (accounts.losses.clone(), Direction::Debit, d.provisional_credit),
            (accounts.disputes.clone(), Direction::Credit, d.provisional_credit),
        ],
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [DisputeEvent; 15] = [
        DisputeEvent::RequestEvidence,
        DisputeEvent::EvidenceReceived,
        DisputeEvent::Submit,
        DisputeEvent::MerchantAccepted,
        DisputeEvent::Represented,
        DisputeEvent::AcceptRepresentment,
        DisputeEvent::PreArbitrate,
        DisputeEvent::PreArbitrationAccepted,
        DisputeEvent::Arbitrate,
        DisputeEvent::Ruled(Ruling::ForCardholder),
        DisputeEvent::Ruled(Ruling::ForMerchant),
        DisputeEvent::Ruled(Ruling::Partly(40)),
        DisputeEvent::Withdraw,
        DisputeEvent::Deny,
        DisputeEvent::ResolutionDeadlinePassed,
    ];

    fn at(status: DisputeStatus) -> DisputeState {
        DisputeState {
            status,
            disposition: None,
            recovered: None,
        }
    }

    #[test]
    fn every_step_is_decided_and_the_legal_ones_are_these() {
        use DisputeEvent as E;
        use DisputeStatus as S;
        let legal: Vec<(S, E, S, Option<Disposition>)> = vec![
            (S::New, E::RequestEvidence, S::PendingCustomer, None),
            (S::PendingCustomer, E::EvidenceReceived, S::New, None),
            (S::New, E::Submit, S::Submitted, None),
            (S::PendingCustomer, E::Submit, S::Submitted, None),
            (S::New, E::Deny, S::Closed, Some(Disposition::Denied)),
            (S::PendingCustomer, E::Deny, S::Closed, Some(Disposition::Denied)),
            (S::Submitted, E::MerchantAccepted, S::Closed, Some(Disposition::Won)),
            (S::Submitted, E::Represented, S::Representment, None),
            (
                S::Representment,
                E::AcceptRepresentment,
                S::Closed,
                Some(Disposition::Lost),
            ),
            (S::Representment, E::PreArbitrate, S::PreArbitration, None),
            (
                S::PreArbitration,
                E::PreArbitrationAccepted,
                S::Closed,
                Some(Disposition::Won),
            ),
            (S::PreArbitration, E::Arbitrate, S::Arbitration, None),
            (
                S::Arbitration,
                E::Ruled(Ruling::ForCardholder),
                S::Closed,
                Some(Disposition::Won),
            ),
            (
                S::Arbitration,
                E::Ruled(Ruling::ForMerchant),
                S::Closed,
                Some(Disposition::Lost),
            ),
            (
                S::Arbitration,
                E::Ruled(Ruling::Partly(40)),
                S::Closed,
                Some(Disposition::PartiallyWon),
            ),
        ];
        let mut codes = std::collections::HashSet::new();
        for from in DisputeStatus::ALL {
            for event in EVENTS {
                let got = at(*from).apply(event, 100);
                let expected = legal.iter().find(|(f, e, _, _)| f == from && *e == event);
                match (got, expected, event) {
                    (Ok(to), Some((_, _, status, disposition)), _) => {
                        assert_eq!(
                            (to.status, to.disposition),
                            (*status, *disposition),
                            "{from:?} {event:?}"
                        )
                    }
                    (Ok(to), None, E::Withdraw) => {
                        assert_eq!(to.disposition, Some(Disposition::Withdrawn), "{from:?}");
                        assert_ne!(*from, S::Closed);
                    }
                    (Ok(to), None, E::ResolutionDeadlinePassed) => {
                        assert_eq!((to.disposition, to.recovered), (Some(Disposition::Won), Some(100)));
                        assert_ne!(*from, S::Closed);
                    }
                    (Err(x), None, _) => {
                        codes.insert(x.code());
                    }
                    (got, _, _) => panic!("{from:?} on {event:?}: got {got:?}"),
                }
            }
        }
        assert!(codes.len() >= 7, "each kind of illegal step has its code: {codes:?}");
    }

    #[test]
    fn a_partial_ruling_must_be_a_part() {
        let arbitration = at(DisputeStatus::Arbitration);
        assert_eq!(
            arbitration.apply(DisputeEvent::Ruled(Ruling::Partly(100)), 100),
            Err(IllegalDisputeTransition::PartialRulingAmount)
        );
        assert_eq!(
            arbitration.apply(DisputeEvent::Ruled(Ruling::Partly(0)), 100),
            Err(IllegalDisputeTransition::PartialRulingAmount)
        );
        let won = arbitration.apply(DisputeEvent::Ruled(Ruling::Partly(30)), 100).unwrap();
        assert_eq!(won.recovered, Some(30));
    }

    #[test]
    fn every_reason_maps_to_a_family_and_a_code_on_each_network() {
        for r in DisputeReason::ALL {
            let _ = r.family();
            assert!(!r.network_code(Network::Visa).is_empty());
            assert!(!r.network_code(Network::Mastercard).is_empty());
        }
        assert_eq!(DisputeReason::FraudCardNotPresent.network_code(Network::Visa), "10.4");
        assert_eq!(DisputeReason::NotReceived.network_code(Network::Mastercard), "4853");
    }

    fn cleared(entry_mode: &str, country: &str, cleared_at: Timestamp) -> Transaction {
        use crate::authorization::{Merchant, ResponseCode};
        use crate::ids::*;
        Transaction {
            id: TransactionId::generate(),
            tenant_id: TenantId::generate(),
            environment: Environment::Sandbox,
            card_id: CardId::generate(),
            cardholder_id: CardholderId::generate(),
            program_id: ProgramId::generate(),
            account_id: AccountId::generate(),
            kind: TransactionKind::Authorization,
            state: TransactionState::Complete,
            network_transaction_id: "n".into(),
            currency: Currency::parse("USD").unwrap(),
            requested_amount: 1_000,
            authorized_amount: 1_000,
            held_amount: 0,
            cleared_amount: 1_000,
            reversed_amount: 0,
            response_code: ResponseCode::Approved,
            decline_reason: None,
            authorization_code: Some("ABC123".into()),
            merchant: Merchant {
                id: "m".into(),
                name: "Shop".into(),
                mcc: "5411".into(),
                country: country.into(),
                city: "X".into(),
            },
            entry_mode: entry_mode.into(),
            stand_in: false,
            decision_trace: serde_json::json!([]),
            received_at: cleared_at,
            custodian_sent_at: None,
            custodian_answered_at: None,
            answered_at: cleared_at,
            expires_at: None,
            created_at: cleared_at,
            updated_at: cleared_at,
        }
    }

    fn day(raw: &str) -> Timestamp {
        let t = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).unwrap();
        Timestamp::from_micros(i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap())
    }

    fn claim(amount: i64, reason: DisputeReason, filed: Timestamp) -> Claim {
        Claim {
            amount,
            reason,
            customer_note: None,
            customer_filed_at: filed,
        }
    }

    fn context(t: &Transaction, already: i64, frauds: u32) -> FilingContext<'_> {
        FilingContext {
            transaction: t,
            network: Network::Visa,
            already_disputed: already,
            fraud_disputes_on_card: frauds,
            account_opened_at: day("2026-01-01T00:00:00Z"),
            policy: DisputePolicy::default(),
        }
    }

    #[test]
    fn filing_checks_what_can_be_disputed() {
        let settled = day("2026-11-02T12:00:00Z");
        let t = cleared("ecommerce", "USA", settled);
        let now = day("2026-11-20T12:00:00Z");
        let filed = day("2026-11-20T09:00:00Z");
        let d = file(context(&t, 0, 0), claim(600, DisputeReason::NotReceived, filed), now).unwrap();
        assert_eq!((d.amount, d.state.status), (600, DisputeStatus::New));
        assert_eq!(d.network_reason_code, "13.1");
        // Partial disputes add up to what was cleared, not more.
        assert_eq!(
            file(context(&t, 600, 0), claim(401, DisputeReason::NotReceived, filed), now),
            Err(FilingError::AmountTooLarge(400))
        );
        assert!(file(context(&t, 600, 0), claim(400, DisputeReason::NotReceived, filed), now).is_ok());
        let mut pending = t.clone();
        pending.state = TransactionState::Pending;
        assert_eq!(
            file(context(&pending, 0, 0), claim(100, DisputeReason::Other, filed), now)
                .unwrap_err()
                .code(),
            "transaction_not_disputable"
        );
        let late = day("2027-03-03T12:00:00Z");
        assert!(matches!(
            file(context(&t, 0, 0), claim(100, DisputeReason::Other, late), late),
            Err(FilingError::WindowClosed(_))
        ));
        assert_eq!(
            file(
                context(&t, 0, 15),
                claim(100, DisputeReason::FraudCardNotPresent, filed),
                now
            ),
            Err(FilingError::FraudLimit(15))
        );
        assert!(
            file(
                context(&t, 0, 15),
                claim(100, DisputeReason::NotAsDescribed, filed),
                now
            )
            .is_ok()
        );
        assert_eq!(
            file(
                context(&t, 0, 0),
                claim(100, DisputeReason::Other, now.plus_secs(60)),
                now
            ),
            Err(FilingError::FiledInFuture)
        );
    }

    #[test]
    fn regulation_e_deadlines_count_business_days_and_the_extended_cases() {
        let settled = day("2026-11-02T12:00:00Z");
        // Filed the day before Thanksgiving: 10 business days skip Thanksgiving and two weekends.
        let filed = day("2026-11-25T15:00:00Z");
        let online = cleared("ecommerce", "USA", settled);
        let d = file(context(&online, 0, 0), claim(100, DisputeReason::Other, filed), filed).unwrap();
        assert_eq!(d.provisional_credit_due_at.to_rfc3339(), "2026-12-10T23:59:59.999Z");
        // 45 calendar days: 2027-01-09 is a Saturday, so Monday the 11th.
        assert_eq!(d.resolution_due_at.to_rfc3339(), "2027-01-11T23:59:59.999Z");
        for t in [cleared("chip", "USA", settled), cleared("ecommerce", "GBR", settled)] {
            let d = file(context(&t, 0, 0), claim(100, DisputeReason::Other, filed), filed).unwrap();
            assert_eq!(d.resolution_due_at.to_rfc3339(), "2027-02-23T23:59:59.999Z", "90 days");
        }
        let mut young = context(&online, 0, 0);
        young.account_opened_at = day("2026-11-10T00:00:00Z");
        let d = file(young, claim(100, DisputeReason::Other, filed), filed).unwrap();
        assert_eq!(
            d.resolution_due_at.to_rfc3339(),
            "2027-02-23T23:59:59.999Z",
            "a new account"
        );
    }

    #[test]
    fn the_journals_balance_and_spare_the_card_its_floor() {
        let settled = day("2026-11-02T12:00:00Z");
        let t = cleared("ecommerce", "USA", settled);
        let now = day("2026-11-20T12:00:00Z");
        let mut d = file(context(&t, 0, 0), claim(800, DisputeReason::NotReceived, now), now).unwrap();
        let accounts = DisputeAccounts {
            disputes: AccountId::generate(),
            settlement: AccountId::generate(),
            losses: AccountId::generate(),
        };
        let credit = provisional_credit_journal(&d, &accounts, now).unwrap();
        credit.assert_balanced();
        d.provisional_credit = 800;
        // The card has spent all but 300: it pays 300 back, the losses account the rest.
        let reversal = credit_reversal_journal(&d, &accounts, 800, 300, now).unwrap();
        reversal.assert_balanced();
        let card_paid: i64 = reversal
            .entries
            .iter()
            .filter(|e| e.account_id == d.account_id)
            .map(|e| -e.delta())
            .sum();
        assert_eq!(card_paid, 300);
        // A partial win of 500 with 800 granted: 500 settles the dispute account.
        let chargeback = chargeback_journal(&d, &accounts, 500, now).unwrap();
        chargeback.assert_balanced();
        assert!(chargeback.entries.iter().all(|e| e.account_id != d.account_id));
        // Won with nothing granted: the card gets it all.
        d.provisional_credit = 0;
        let won = chargeback_journal(&d, &accounts, 800, now).unwrap();
        assert!(
            won.entries
                .iter()
                .any(|e| e.account_id == d.account_id && e.delta() == 800)
        );
    }
}
