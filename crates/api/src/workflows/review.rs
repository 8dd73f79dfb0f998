//! Where KYC meets people: which approval chain applies, and the case a KYC verdict opens.

use cardplane_domain::Timestamp;
use cardplane_domain::audit::{ActorKind, AuditRecord, Outcome};
use cardplane_domain::compliance::{ApprovalChain, Case, CaseReason, ChainTrigger};
use cardplane_domain::ids::{CardholderId, CaseNoteId, ProgramId};
use cardplane_domain::kyc::KycCheck;
use cardplane_store::compliance::{CaseChange, CaseNote};
use cardplane_store::{Scope, StoreError};

use crate::http::error::ApiResult;
use crate::state::AppState;

/// The program's chain for `trigger`, or the platform default.
pub async fn chain_for(
    state: &AppState,
    program: Option<&ProgramId>,
    trigger: ChainTrigger,
) -> ApiResult<ApprovalChain> {
    if let Some(p) = program
        && let Some(chain) = state.compliance.approval_chain(p, trigger).await?
    {
        return Ok(chain);
    }
    Ok(ApprovalChain::platform_default(trigger))
}

/// The case a KYC verdict opens when it needs a person, with its audit entry. `program_ref` is
/// the tenant's program reference from the card order, when there is one.
pub async fn case_for_kyc(
    state: &AppState,
    scope: &Scope,
    cardholder: &CardholderId,
    check: &KycCheck,
    program_ref: Option<&str>,
    now: Timestamp,
) -> ApiResult<Option<(Case, AuditRecord)>> {
    let Some(reason) = CaseReason::for_kyc(&check.result) else {
        return Ok(None);
    };
    let program = match program_ref {
        Some(r) => match state.programs.get_program_by_ref(scope, r).await {
            Ok(p) => Some(p.id),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let chain = chain_for(state, program.as_ref(), reason.trigger()).await?;
    let case = Case::open(
        &scope.tenant_id,
        scope.environment,
        cardholder,
        program,
        reason,
        chain,
        None,
        now,
    );
    let mut audit = AuditRecord::new(
        now,
        ActorKind::System,
        Some("kyc".into()),
        "case.opened",
        Outcome::Success,
    )
    .on("case", case.id.as_str())
    .with_details(serde_json::json!({
        "reason": reason.as_str(),
        "cardholder_id": cardholder.as_str(),
        "kyc_status": check.result.status().as_str(),
    }));
    audit.tenant_id = Some(scope.tenant_id.to_string());
    audit.environment = Some(scope.environment.as_str().to_owned());
    Ok(Some((case, audit)))
}

/// An open case that a KYC re-run resolved: the closed case, the version it was read at, the
/// system's note saying why, and the audit entry. Written with the cardholder's update.
pub struct KycResolution {
    pub case: Case,
    pub expected_version: i64,
    pub note: CaseNote,
    pub audit: AuditRecord,
}

impl KycResolution {
    pub fn change(&self) -> CaseChange<'_> {
        CaseChange {
            note: Some(&self.note),
            ..CaseChange::of(&self.case, self.expected_version, &self.audit)
        }
    }
}

/// The cardholder's open case, closed, if this KYC check leaves it nothing to decide
/// (`Case::resolved_by_kyc`): a case opened because KYC asked for details closes once a re-run
/// passes.
pub async fn case_resolved_by_kyc(
    state: &AppState,
    scope: &Scope,
    cardholder: &CardholderId,
    check: &KycCheck,
    now: Timestamp,
) -> ApiResult<Option<KycResolution>> {
    let Some(open) = state.compliance.open_case_of(cardholder).await? else {
        return Ok(None);
    };
    let Some(closed) = open.resolved_by_kyc(&check.result, now) else {
        return Ok(None);
    };
    let kyc_status = check.result.status().as_str();
    let note = CaseNote {
        id: CaseNoteId::generate(),
        case_id: open.id.clone(),
        author_id: None,
        body: format!(
            "Closed by the system: a KYC re-run ({}, check {}) returned {kyc_status}, so this {} case has nothing left to decide.",
            check.provider,
            check.id,
            open.reason.as_str(),
        ),
        created_at: now,
    };
    let mut audit = AuditRecord::new(
        now,
        ActorKind::System,
        Some("kyc".into()),
        "case.closed",
        Outcome::Success,
    )
    .on("case", open.id.as_str())
    .with_details(serde_json::json!({
        "reason": open.reason.as_str(),
        "status": closed.status.as_str(),
        "cardholder_id": cardholder.as_str(),
        "kyc_status": kyc_status,
        "kyc_check_id": check.id.as_str(),
        "note_id": note.id.as_str(),
    }));
    audit.tenant_id = Some(scope.tenant_id.to_string());
    audit.environment = Some(scope.environment.as_str().to_owned());
    Ok(Some(KycResolution {
        expected_version: open.version,
        case: closed,
        note,
        audit,
    }))
}
