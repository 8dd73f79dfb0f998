//! Response shapes: the compliance queue's cases, notes, the cardholder as a reviewer sees them,
//! and per-program approval chains.

use cardplane_domain::Timestamp;
use cardplane_domain::compliance::Case;
use serde::Serialize;
use utoipa::ToSchema;

use crate::workflows::documents::UploadedDocumentView;

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    pub step: usize,
    pub role: &'static str,
    pub user_id: String,
    pub decision: &'static str,
    pub comment: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    pub id: String,
    pub tenant_id: String,
    pub livemode: bool,
    pub cardholder_id: String,
    pub program_id: Option<String>,
    /// kyc_under_review, kyc_upload_file, kyc_resubmit_details, watchlist_match or manual.
    pub reason: &'static str,
    /// open, awaiting_documents, pending_approval, approved or rejected.
    pub status: &'static str,
    pub assignee_id: Option<String>,
    pub opened_by: Option<String>,
    /// The roles that must approve, in order.
    pub approval_chain: Vec<&'static str>,
    pub approvals: Vec<ApprovalView>,
    /// The role the next decision needs, while the case is open.
    pub next_step_role: Option<&'static str>,
    pub due_at: String,
    pub overdue: bool,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub version: i64,
}

impl CaseView {
    pub fn of(c: &Case, now: Timestamp) -> Self {
        CaseView {
            id: c.id.to_string(),
            tenant_id: c.tenant_id.to_string(),
            livemode: c.environment.livemode(),
            cardholder_id: c.cardholder_id.to_string(),
            program_id: c.program_id.as_ref().map(|p| p.to_string()),
            reason: c.reason.as_str(),
            status: c.status.as_str(),
            assignee_id: c.assignee_id.as_ref().map(|u| u.to_string()),
            opened_by: c.opened_by.as_ref().map(|u| u.to_string()),
            approval_chain: c.chain.steps.iter().map(|r| r.as_str()).collect(),
            approvals: c
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    step: a.step,
                    role: a.role.as_str(),
                    user_id: a.user_id.to_string(),
                    decision: a.decision.as_str(),
                    comment: a.comment.clone(),
                    created_at: a.created_at.to_rfc3339(),
                })
                .collect(),
            next_step_role: c.next_step().map(|(_, r)| r.as_str()),
            due_at: c.due_at.to_rfc3339(),
            overdue: c.overdue(now),
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
            closed_at: c.closed_at.map(|t| t.to_rfc3339()),
            version: c.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseList {
    pub cases: Vec<CaseView>,
    pub has_more: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteView {
    pub id: String,
    /// Null for a note the system wrote (a case closed because a KYC re-run resolved it).
    pub author_id: Option<String>,
    pub body: String,
    pub created_at: String,
}

/// What a reviewer sees of the cardholder: enough to decide, never the document number.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardholderSummary {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub country: String,
    pub date_of_birth: String,
    pub document_type: String,
    pub document_last4: String,
    pub kyc_status: &'static str,
    pub kyc_identity_reason: Option<&'static str>,
    pub kyc_address_reason: Option<&'static str>,
    pub kyc_file_reason: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaseDetail {
    pub case: CaseView,
    pub cardholder: CardholderSummary,
    pub notes: Vec<NoteView>,
    pub documents: Vec<UploadedDocumentView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainView {
    /// default or watchlist_match.
    pub trigger: &'static str,
    pub steps: Vec<&'static str>,
    pub sla_hours: i64,
    /// False when the platform default applies.
    pub configured: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChainList {
    pub program_id: String,
    pub approval_chains: Vec<ChainView>,
}
