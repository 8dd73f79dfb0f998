//! How a dispute looks on the wire: in API answers and in event payloads alike.

use cardplane_domain::Timestamp;
use cardplane_domain::dispute::DisputeStatus;
use cardplane_store::disputes::{DisputeNote, DisputeRecord, Evidence};
use serde::Serialize;
use utoipa::ToSchema;

/// Regulation E's clock for the case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisionalCreditView {
    /// Credit granted and not reversed, in minor units.
    pub amount: i64,
    /// 10 business days after filing by default (US federal calendar).
    pub due_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DisputeTimestamps {
    pub customer_filed_at: String,
    pub created_at: String,
    pub submitted_at: Option<String>,
    pub representment_at: Option<String>,
    pub pre_arbitration_at: Option<String>,
    pub arbitration_at: Option<String>,
    pub closed_at: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DisputeView {
    #[schema(example = "dsp_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    pub transaction_id: String,
    pub card_id: String,
    pub cardholder_id: String,
    pub program_id: String,
    /// Disputed amount in minor units (part of the cleared amount, or all of it).
    pub amount: i64,
    #[schema(example = "USD")]
    pub currency: String,
    /// One of the enumerated reasons (see docs/API.md), e.g. `fraud_card_not_present`.
    pub reason: String,
    /// fraud, authorization, processing_error, consumer_dispute, atm or other.
    pub reason_family: String,
    /// The reason code the chargeback carries on the card's network (e.g. Visa `10.4`).
    pub network_reason_code: String,
    pub customer_note: Option<String>,
    /// new, pending_customer, submitted, representment, pre_arbitration, arbitration or closed.
    pub status: String,
    /// won, lost, partially_won, withdrawn or denied, once closed.
    pub disposition: Option<String>,
    /// What the cardholder recovered, once closed (minor units).
    pub recovered_amount: Option<i64>,
    pub resolution_reason: Option<String>,
    pub provisional_credit: ProvisionalCreditView,
    /// 45 days after filing; 90 for point-of-sale, foreign and new-account cases.
    pub resolution_due_at: String,
    /// Open and within the warning window of `resolution_due_at`, or past it.
    pub deadline_at_risk: bool,
    pub timestamps: DisputeTimestamps,
}

fn opt(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

/// Cases this close to their resolution deadline are flagged as at risk.
pub const DEADLINE_WARNING_SECS: i64 = 5 * 86_400;

impl DisputeView {
    pub fn of(r: &DisputeRecord, now: Timestamp) -> Self {
        let d = &r.dispute;
        let open = d.state.status != DisputeStatus::Closed;
        DisputeView {
            id: d.id.to_string(),
            livemode: d.environment.livemode(),
            transaction_id: d.transaction_id.to_string(),
            card_id: d.card_id.to_string(),
            cardholder_id: d.cardholder_id.to_string(),
            program_id: d.program_id.to_string(),
            amount: d.amount,
            currency: d.currency.code().to_owned(),
            reason: d.reason.as_str().to_owned(),
            reason_family: d.reason.family().as_str().to_owned(),
            network_reason_code: d.network_reason_code.clone(),
            customer_note: d.customer_note.clone(),
            status: d.state.status.as_str().to_owned(),
            disposition: d.state.disposition.map(|x| x.as_str().to_owned()),
            recovered_amount: d.state.recovered,
            resolution_reason: d.resolution_reason.clone(),
            provisional_credit: ProvisionalCreditView {
                amount: d.provisional_credit,
                due_at: d.provisional_credit_due_at.to_rfc3339(),
            },
            resolution_due_at: d.resolution_due_at.to_rfc3339(),
            deadline_at_risk: open && now.plus_secs(DEADLINE_WARNING_SECS) >= d.resolution_due_at,
            timestamps: DisputeTimestamps {
                customer_filed_at: d.customer_filed_at.to_rfc3339(),
                created_at: d.created_at.to_rfc3339(),
                submitted_at: opt(d.submitted_at),
                representment_at: opt(d.representment_at),
                pre_arbitration_at: opt(d.pre_arbitration_at),
                arbitration_at: opt(d.arbitration_at),
                closed_at: opt(d.closed_at),
                updated_at: d.updated_at.to_rfc3339(),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeEnvelope {
    pub dispute: DisputeView,
}

/// A piece of evidence: a sealed document, never its bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceView {
    pub id: String,
    pub dispute_id: String,
    /// custodian, merchant or operator.
    pub submitted_by: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    pub created_at: String,
}

impl From<&Evidence> for EvidenceView {
    fn from(e: &Evidence) -> Self {
        EvidenceView {
            id: e.id.to_string(),
            dispute_id: e.dispute_id.to_string(),
            submitted_by: e.source.as_str().to_owned(),
            file_name: e.document.file_name.clone(),
            content_type: e.document.content_type.clone(),
            size_bytes: e.document.size_bytes,
            sha256: e.document.sha256.clone(),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceEnvelope {
    pub evidence: EvidenceView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceList {
    pub data: Vec<EvidenceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeNoteView {
    pub id: String,
    pub author_id: Option<String>,
    pub body: String,
    pub created_at: String,
}

impl From<&DisputeNote> for DisputeNoteView {
    fn from(n: &DisputeNote) -> Self {
        DisputeNoteView {
            id: n.id.to_string(),
            author_id: n.author_id.as_ref().map(ToString::to_string),
            body: n.body.clone(),
            created_at: n.created_at.to_rfc3339(),
        }
    }
}

/// A case as operators see it: the dispute, who works it, its evidence and notes.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpsDisputeView {
    pub tenant_id: String,
    pub dispute: DisputeView,
    pub assignee_id: Option<String>,
    pub evidence: Vec<EvidenceView>,
    pub notes: Vec<DisputeNoteView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpsDisputeList {
    pub data: Vec<OpsDisputeRow>,
}

/// One line of the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpsDisputeRow {
    pub tenant_id: String,
    pub assignee_id: Option<String>,
    /// The nearest deadline still ahead of the case: provisional credit, then resolution.
    pub next_due_at: String,
    pub dispute: DisputeView,
}

impl OpsDisputeRow {
    pub fn of(r: &DisputeRecord, now: Timestamp) -> Self {
        let d = &r.dispute;
        let next_due = if d.provisional_credit == 0 && d.provisional_credit_due_at < d.resolution_due_at {
            d.provisional_credit_due_at
        } else {
            d.resolution_due_at
        };
        OpsDisputeRow {
            tenant_id: d.tenant_id.to_string(),
            assignee_id: r.assignee_id.as_ref().map(ToString::to_string),
            next_due_at: next_due.to_rfc3339(),
            dispute: DisputeView::of(r, now),
        }
    }
}
