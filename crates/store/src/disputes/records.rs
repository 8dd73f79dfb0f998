//! A dispute as the store keeps it, and what is written or read with it.

use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{Disposition, Dispute, DisputePolicy, DisputeReason, DisputeStatus};
use cardplane_domain::event::Event;
use cardplane_domain::ids::{CardId, CardholderId, DisputeId, DisputeNoteId, DocumentId, ProgramId, UserId};
use cardplane_domain::ledger::Journal;
use cardplane_domain::money::Currency;

use crate::compliance::DocumentRecord;
use crate::{EffectRecords, Scope, StoreError};

/// What filing must know, read in one go (outside the write; re-checked inside it).
#[derive(Debug, Clone)]
pub struct FilingFacts {
    /// Amounts of the transaction in open or won disputes.
    pub already_disputed: i64,
    /// Fraud disputes ever filed on the card (withdrawn ones excepted).
    pub fraud_disputes_on_card: u32,
    pub account_opened_at: Timestamp,
    pub policy: DisputePolicy,
}

// Who brought a piece of evidence.
crate::store_enum!(EvidenceSource {
    Custodian => "custodian",
    Merchant => "merchant",
    Operator => "operator",
});

#[derive(Debug, Clone)]
pub struct Evidence {
    pub id: DocumentId,
    pub dispute_id: DisputeId,
    pub source: EvidenceSource,
    pub document: DocumentRecord,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct DisputeNote {
    pub id: DisputeNoteId,
    pub dispute_id: DisputeId,
    pub author_id: Option<UserId>,
    pub body: String,
    pub created_at: Timestamp,
}

/// A dispute as stored: the domain case plus who works it and whether the deadline job flagged it.
#[derive(Debug, Clone)]
pub struct DisputeRecord {
    pub dispute: Dispute,
    pub assignee_id: Option<UserId>,
    pub deadline_flagged_at: Option<Timestamp>,
}

/// One change to a case and everything written with it, in one transaction.
pub struct DisputeChange<'a> {
    pub next: &'a DisputeRecord,
    pub expected_version: i64,
    pub journals: &'a [Journal],
    pub events: &'a [Event],
    pub note: Option<&'a DisputeNote>,
    pub evidence: Option<&'a Evidence>,
    pub records: Option<&'a EffectRecords>,
}

/// The custodian's and the queue's filters.
#[derive(Debug, Clone, Default)]
pub struct DisputeFilter {
    /// None: every tenant (operators).
    pub scope: Option<Scope>,
    /// One tenant, both environments (operators).
    pub tenant_id: Option<cardplane_domain::ids::TenantId>,
    pub statuses: Vec<DisputeStatus>,
    pub card_id: Option<CardId>,
    pub cardholder_id: Option<CardholderId>,
    pub program_id: Option<ProgramId>,
    pub assignee_id: Option<UserId>,
    pub created_gte: Option<Timestamp>,
    pub created_lt: Option<Timestamp>,
}

/// Open cases the deadline job must look at.
#[derive(Debug, Clone)]
pub struct DueDispute {
    pub record: DisputeRecord,
    pub policy: DisputePolicy,
    pub kyc_verified: bool,
}

/// A group of cases for the report: by reason, status and disposition.
#[derive(Debug, Clone)]
pub struct DisputeTally {
    pub reason: DisputeReason,
    pub status: DisputeStatus,
    pub disposition: Option<Disposition>,
    pub currency: Currency,
    pub count: i64,
    pub amount: i64,
    pub recovered: i64,
    pub provisional_credit: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// What was disputed or the fraud count moved since the facts were read: read again.
    #[error("the transaction's disputes changed concurrently")]
    Raced,
    #[error(transparent)]
    Store(#[from] StoreError),
}
