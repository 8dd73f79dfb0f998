//! The card network's interface: authorizations (incremental and stand-in advice too), reversals,
//! clearings (capture or force post) and refunds. Authenticated with a network credential, not a
//! tenant key; every message is idempotent by its `network_transaction_id`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cardplane_domain::api_key::ApiSecret;
use cardplane_domain::ids::NetworkCredentialId;
use cardplane_domain::pan::Pan;
use cardplane_domain::{Environment, FieldError};
use cardplane_store::StoreError;
use cardplane_store::network::NetworkCredential;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::JsonBody;
use crate::http::network::{
    MerchantRequest, answer_response, parse_amount, parse_currency, parse_entry_mode, parse_merchant,
};
use crate::state::AppState;
use crate::views::NetworkAnswerView;
use cardplane_domain::network::{AuthorizationMessage, NetworkMessage, PostingMessage, ReversalMessage};

/// The environment a network credential reaches.
#[derive(Debug, Clone, Copy)]
pub struct NetworkCtx {
    pub environment: Environment,
}

pub async fn authenticate_network(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let invalid = || ApiError::unauthenticated("credentials_invalid", "Invalid network credential").into_response();
    let Some((user, password)) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
    else {
        return ApiError::unauthenticated(
            "credentials_missing",
            "Authenticate with the network credential (basic auth)",
        )
        .into_response();
    };
    let Ok(id) = NetworkCredentialId::parse(&user) else {
        return invalid();
    };
    let credential = match cached_credential(&state, &id).await {
        Ok(c) => c,
        Err(StoreError::NotFound) => return invalid(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if credential.revoked_at.is_some()
        || !ApiSecret::from_presented(&password).verify(&state.pepper, &credential.secret_hash)
    {
        return invalid();
    }
    req.extensions_mut().insert(NetworkCtx {
        environment: credential.environment,
    });
    next.run(req).await
}

/// How long a network credential read from the database is trusted: the network sends thousands
/// of messages a second with the same credential, and the read is one of each message's round trips.
/// A revocation (when one exists) takes effect within this time in every process.
const CREDENTIAL_CACHE_SECS: u64 = 5;

async fn cached_credential(state: &AppState, id: &NetworkCredentialId) -> Result<NetworkCredential, StoreError> {
    let fresh = std::time::Duration::from_secs(CREDENTIAL_CACHE_SECS);
    if let Some((c, at)) = state.credentials.lock().expect("credential cache lock").get(id)
        && at.elapsed() < fresh
    {
        return Ok(c.clone());
    }
    let c = state.network.find_network_credential(id).await?;
    let mut cache = state.credentials.lock().expect("credential cache lock");
    // Unknown ids are never cached, so the map only holds real credentials (a handful).
    cache.insert(id.clone(), (c.clone(), std::time::Instant::now()));
    Ok(c)
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkAuthorizationRequest {
    pub network_transaction_id: Option<String>,
    #[schema(example = "4111111111111111")]
    pub pan: Option<String>,
    /// YYYY-MM.
    #[schema(example = "2029-11")]
    pub expiration: Option<String>,
    /// Minor units.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub merchant: Option<MerchantRequest>,
    /// chip, contactless, magstripe, manual, ecommerce, ...
    pub entry_mode: Option<String>,
    pub partial_approval_supported: Option<bool>,
    /// Incremental authorization: the network transaction id of the authorization to raise.
    pub original_network_transaction_id: Option<String>,
    /// The network approved this while Cardplane was unreachable: record it as approved.
    pub stand_in_advice: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkReversalRequest {
    pub network_transaction_id: Option<String>,
    pub original_network_transaction_id: Option<String>,
    /// Partial reversal amount; omit to reverse everything still held.
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPostingRequest {
    pub network_transaction_id: Option<String>,
    /// The authorization this clears or refunds; omit for a force post or an unlinked refund.
    pub original_network_transaction_id: Option<String>,
    /// Required without an original.
    pub pan: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub merchant: Option<MerchantRequest>,
}

pub fn parse_ntid(param: &str, raw: Option<&str>) -> Result<String, FieldError> {
    let v = raw.ok_or_else(|| FieldError::missing(param))?;
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(FieldError::invalid(param, "1 to 64 visible ASCII characters"));
    }
    Ok(v.to_owned())
}

fn parse_pan(raw: Option<&str>) -> Result<Pan, FieldError> {
    Pan::parse(raw.ok_or_else(|| FieldError::missing("pan"))?).map_err(|e| FieldError::invalid("pan", e.to_string()))
}

fn parse_expiration(raw: Option<&str>) -> Result<(u16, u8), FieldError> {
    let raw = raw.ok_or_else(|| FieldError::missing("expiration"))?;
    let bad = || FieldError::invalid("expiration", "YYYY-MM");
    let (y, m) = raw.split_once('-').ok_or_else(bad)?;
    let (year, month): (u16, u8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if y.len() != 4 || m.len() != 2 || !(1..=12).contains(&month) {
        return Err(bad());
    }
    Ok((year, month))
}

pub fn parse_authorization(req: &NetworkAuthorizationRequest) -> Result<AuthorizationMessage, FieldError> {
    let entry_mode = parse_entry_mode(req.entry_mode.as_deref(), "unknown")?;
    Ok(AuthorizationMessage {
        network_transaction_id: parse_ntid("network_transaction_id", req.network_transaction_id.as_deref())?,
        pan: parse_pan(req.pan.as_deref())?,
        expiration: parse_expiration(req.expiration.as_deref())?,
        amount: parse_amount(req.amount)?,
        currency: parse_currency(req.currency.as_deref())?,
        merchant: parse_merchant(req.merchant.as_ref())?,
        entry_mode,
        partial_approval_supported: req.partial_approval_supported.unwrap_or(false),
        original: req
            .original_network_transaction_id
            .as_deref()
            .map(|o| parse_ntid("original_network_transaction_id", Some(o)))
            .transpose()?,
        stand_in_advice: req.stand_in_advice.unwrap_or(false),
    })
}

pub fn parse_posting(req: &NetworkPostingRequest) -> Result<PostingMessage, FieldError> {
    let original = req
        .original_network_transaction_id
        .as_deref()
        .map(|o| parse_ntid("original_network_transaction_id", Some(o)))
        .transpose()?;
    let pan = match (&original, req.pan.as_deref()) {
        (_, Some(p)) => Some(parse_pan(Some(p))?),
        (Some(_), None) => None,
        (None, None) => return Err(FieldError::missing("pan")),
    };
    Ok(PostingMessage {
        network_transaction_id: parse_ntid("network_transaction_id", req.network_transaction_id.as_deref())?,
        original,
        pan,
        amount: parse_amount(req.amount)?,
        currency: parse_currency(req.currency.as_deref())?,
        merchant: req.merchant.as_ref().map(|m| parse_merchant(Some(m))).transpose()?,
    })
}

fn ctx(req_ctx: Option<axum::Extension<NetworkCtx>>) -> ApiResult<NetworkCtx> {
    req_ctx
        .map(|e| e.0)
        .ok_or_else(|| ApiError::internal("network route without network auth"))
}

#[utoipa::path(
    post, path = "/network/authorizations", tag = "Network",
    request_body = NetworkAuthorizationRequest,
    responses((status = 200, description = "approved or declined, with an ISO 8583-style response code", body = NetworkAnswerView),
              (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope)),
    security(("network_auth" = []))
)]
pub async fn network_authorization(
    State(state): State<AppState>,
    n: Option<axum::Extension<NetworkCtx>>,
    JsonBody(req): JsonBody<NetworkAuthorizationRequest>,
) -> ApiResult<Response> {
    let n = ctx(n)?;
    let msg = NetworkMessage::Authorization(parse_authorization(&req)?);
    Ok(answer_response(state.engine.handle(n.environment, msg).await?))
}

#[utoipa::path(
    post, path = "/network/reversals", tag = "Network",
    request_body = NetworkReversalRequest,
    responses((status = 200, body = NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("network_auth" = []))
)]
pub async fn network_reversal(
    State(state): State<AppState>,
    n: Option<axum::Extension<NetworkCtx>>,
    JsonBody(req): JsonBody<NetworkReversalRequest>,
) -> ApiResult<Response> {
    let n = ctx(n)?;
    let msg = ReversalMessage {
        network_transaction_id: parse_ntid("network_transaction_id", req.network_transaction_id.as_deref())?,
        original: parse_ntid(
            "original_network_transaction_id",
            req.original_network_transaction_id.as_deref(),
        )?,
        amount: req.amount.map(|a| parse_amount(Some(a))).transpose()?,
    };
    Ok(answer_response(
        state
            .engine
            .handle(n.environment, NetworkMessage::Reversal(msg))
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/network/clearings", tag = "Network",
    request_body = NetworkPostingRequest,
    responses((status = 200, description = "Always posted: a capture of the authorization, or a force post", body = NetworkAnswerView),
              (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("network_auth" = []))
)]
pub async fn network_clearing(
    State(state): State<AppState>,
    n: Option<axum::Extension<NetworkCtx>>,
    JsonBody(req): JsonBody<NetworkPostingRequest>,
) -> ApiResult<Response> {
    let n = ctx(n)?;
    let msg = NetworkMessage::Clearing(parse_posting(&req)?);
    Ok(answer_response(state.engine.handle(n.environment, msg).await?))
}

#[utoipa::path(
    post, path = "/network/refunds", tag = "Network",
    request_body = NetworkPostingRequest,
    responses((status = 200, body = NetworkAnswerView), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("network_auth" = []))
)]
pub async fn network_refund(
    State(state): State<AppState>,
    n: Option<axum::Extension<NetworkCtx>>,
    JsonBody(req): JsonBody<NetworkPostingRequest>,
) -> ApiResult<Response> {
    let n = ctx(n)?;
    let msg = NetworkMessage::Refund(parse_posting(&req)?);
    Ok(answer_response(state.engine.handle(n.environment, msg).await?))
}
