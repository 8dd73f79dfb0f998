//! The network's side of a dispute in the sandbox: the next step of the cycle by name, and the
//! merchant's representment with its document, so every state can be reached as in production.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use cardplane_domain::Timestamp;
use cardplane_domain::dispute::DisputeEvent;
use cardplane_engine::disputes::Step;
use cardplane_engine::disputes::view::{DisputeEnvelope, EvidenceEnvelope};
use cardplane_store::disputes::EvidenceSource;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::ApiResult;
use crate::http::extract::{Ctx, JsonBody};
use crate::http::reply::Reply;
use crate::routes::disputes::{
    ReasonRequest, attach_evidence, dispute_error, load, network_event, reason_of, recorder, required,
};
use crate::state::AppState;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateNetworkRequest {
    /// What happens next in the network's cycle: `submit` (the issuer sends the chargeback),
    /// `merchant_accept` (the merchant accepts the chargeback or the pre-arbitration),
    /// `representment` (the merchant answers; with a document use the multipart endpoint),
    /// `accept_representment`, `pre_arbitrate`, `arbitrate` (the issuer's answers), or `ruling`.
    #[schema(example = "submit")]
    pub action: Option<String>,
    /// For `ruling`: cardholder, merchant or partial.
    pub ruling: Option<String>,
    /// For a partial ruling: what the cardholder recovers (minor units).
    pub recovered_amount: Option<i64>,
    pub reason: Option<String>,
}

#[utoipa::path(
    post, path = "/simulate/disputes/{dispute_id}/network", tag = "Disputes",
    params(("dispute_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = SimulateNetworkRequest,
    responses(
        (status = 200, body = DisputeEnvelope), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "An illegal step for the case's status (its own code)", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn simulate_network(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<SimulateNetworkRequest>,
) -> ApiResult<Reply> {
    ctx.sandbox_only()?;
    let record = load(&state, &ctx.scope, &id).await?;
    let action = required(req.action, "action")?;
    let event = network_event(
        &action,
        req.ruling.as_deref(),
        req.recovered_amount,
        record.dispute.state.status,
    )?;
    let reason = reason_of(ReasonRequest { reason: req.reason })?.or_else(|| Some(action.clone()));
    let committed = state
        .disputes
        .step(
            &ctx.scope,
            &record.dispute.id,
            Step::Move(event, reason),
            &recorder(&ctx),
            Timestamp::now(),
        )
        .await
        .map_err(dispute_error)?;
    Ok(Reply::committed(StatusCode::OK, committed.body))
}

#[utoipa::path(
    post, path = "/simulate/disputes/{dispute_id}/representment", tag = "Disputes",
    params(("dispute_id" = String, Path)),
    request_body(content = crate::workflows::documents::DocumentUpload, content_type = "multipart/form-data", description = "The merchant's document: `file` and `kind` (`other`)"),
    responses(
        (status = 201, description = "The case is in representment with the merchant's document as evidence", body = EvidenceEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, body = crate::http::error::ErrorEnvelope), (status = 413, body = crate::http::error::ErrorEnvelope),
        (status = 415, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn simulate_representment(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Reply> {
    ctx.sandbox_only()?;
    attach_evidence(
        &state,
        &ctx,
        &id,
        multipart,
        EvidenceSource::Merchant,
        Some(DisputeEvent::Represented),
    )
    .await
}
