//! Where KYC meets people: which approval chain applies, and the case a KYC verdict opens.

use cardplane_domain::Timestamp;
use cardplane_domain::audit::{ActorKind, AuditRecord, Outcome};
use cardplane_domain::compliance::{ApprovalChain, Case, CaseReason, ChainTrigger};
use cardplane_domain::ids::{CardholderId, ProgramId};
use cardplane_domain::kyc::KycCheck;
use cardplane_store::{Scope, StoreError};

use crate::error::ApiResult;
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
