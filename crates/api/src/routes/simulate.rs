//! Sandbox-only simulator: the same pipeline and events as network traffic, driven by card and
//! transaction ids instead of PANs.

use axum::extract::State;
use axum::response::Response;

use crate::http::error::ApiResult;
use crate::http::extract::{Ctx, JsonBody};
use crate::http::network::answer_response;
use crate::state::AppState;
use crate::workflows::simulator;
pub use crate::workflows::simulator::{SimulateAuthorizationRequest, SimulateFollowUpRequest, SimulateRefundRequest};

#[utoipa::path(
    post, path = "/simulate/authorizations", tag = "Sandbox", request_body = SimulateAuthorizationRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope),
              (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_authorization(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateAuthorizationRequest>,
) -> ApiResult<Response> {
    Ok(answer_response(simulator::authorize(&state, &ctx.scope, &req).await?))
}

#[utoipa::path(
    post, path = "/simulate/clearings", tag = "Sandbox", request_body = SimulateFollowUpRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_clearing(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateFollowUpRequest>,
) -> ApiResult<Response> {
    Ok(answer_response(simulator::clear(&state, &ctx.scope, &req).await?))
}

#[utoipa::path(
    post, path = "/simulate/reversals", tag = "Sandbox", request_body = SimulateFollowUpRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_reversal(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateFollowUpRequest>,
) -> ApiResult<Response> {
    Ok(answer_response(simulator::reverse(&state, &ctx.scope, &req).await?))
}

#[utoipa::path(
    post, path = "/simulate/refunds", tag = "Sandbox", request_body = SimulateRefundRequest,
    responses((status = 200, body = crate::views::NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn simulate_refund(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<SimulateRefundRequest>,
) -> ApiResult<Response> {
    Ok(answer_response(simulator::refund(&state, &ctx.scope, &req).await?))
}
