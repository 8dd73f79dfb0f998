//! Per-program approval chains: which operator roles decide a program's compliance cases, in
//! order, and within how many hours.

use axum::extract::{Path, State};
use cardplane_domain::Timestamp;
use cardplane_domain::compliance::{ApprovalChain, ChainTrigger};
use cardplane_domain::ids::ProgramId;
use cardplane_domain::people::{Action, OperatorRole};
use cardplane_store::StoreError;
use cardplane_store::compliance::ScopedObject;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{ChainList, ChainView};

fn bad(param: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message).with_param(param)
}

async fn program_scope(state: &AppState, raw: &str) -> ApiResult<ProgramId> {
    let id = ProgramId::parse(raw).map_err(|_| ApiError::not_found("program"))?;
    state
        .compliance
        .scope_of(ScopedObject::Program(&id))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("program"),
            other => other.into(),
        })?;
    Ok(id)
}

#[utoipa::path(
    get, path = "/ops/programs/{program_id}/approval_chains", tag = "Operations console",
    params(("program_id" = String, Path)),
    responses((status = 200, body = ChainList), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_chains(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> ApiResult<Reply> {
    staff.require(Action::ViewApprovalChains)?;
    let program = program_scope(&state, &id).await?;
    let mut approval_chains = Vec::new();
    for trigger in ChainTrigger::ALL {
        let configured = state.compliance.approval_chain(&program, *trigger).await?;
        let chain = configured
            .clone()
            .unwrap_or_else(|| ApprovalChain::platform_default(*trigger));
        approval_chains.push(ChainView {
            trigger: trigger.as_str(),
            steps: chain.steps.iter().map(|r| r.as_str()).collect(),
            sla_hours: chain.sla_hours,
            configured: configured.is_some(),
        });
    }
    Reply::ok(&ChainList {
        program_id: program.to_string(),
        approval_chains,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainRequest {
    /// Roles in order, each of which may decide cases (admin, compliance_officer).
    pub steps: Vec<String>,
    pub sla_hours: i64,
}

#[utoipa::path(
    put, path = "/ops/programs/{program_id}/approval_chains/{trigger}", tag = "Operations console",
    params(("program_id" = String, Path), ("trigger" = String, Path, description = "default or watchlist_match")),
    request_body = ChainRequest,
    responses(
        (status = 200, body = ChainView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn put_chain(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, trigger)): Path<(String, String)>,
    JsonBody(req): JsonBody<ChainRequest>,
) -> ApiResult<Reply> {
    staff.require(Action::ManageApprovalChains)?;
    let program = program_scope(&state, &id).await?;
    let trigger = ChainTrigger::parse(&trigger).ok_or_else(|| ApiError::not_found("approval chain"))?;
    let mut steps = Vec::new();
    for (i, raw) in req.steps.iter().enumerate() {
        steps.push(OperatorRole::parse(raw).ok_or_else(|| bad(&format!("steps[{i}]"), "an operator role"))?);
    }
    let chain = ApprovalChain::new(steps, req.sla_hours).map_err(|e| {
        let param = if matches!(e, cardplane_domain::compliance::ChainError::Sla) {
            "sla_hours"
        } else {
            "steps"
        };
        bad(param, &e.to_string())
    })?;
    let mut audit = staff.audit("approval_chain.updated", "program", program.as_str());
    audit.details = serde_json::json!({
        "trigger": trigger.as_str(),
        "steps": chain.steps.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "sla_hours": chain.sla_hours,
    });
    state
        .compliance
        .put_approval_chain(&program, trigger, &chain, &staff.person.id, Timestamp::now(), &audit)
        .await?;
    Reply::ok(&ChainView {
        trigger: trigger.as_str(),
        steps: chain.steps.iter().map(|r| r.as_str()).collect(),
        sla_hours: chain.sla_hours,
        configured: true,
    })
}
