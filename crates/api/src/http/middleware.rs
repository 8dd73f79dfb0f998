//! Request plumbing around every handler, outermost first: request id, access log + metrics,
//! API version, authentication, idempotency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::ApiSecret;
use cardplane_domain::audit::{ActorKind, Outcome};
use cardplane_domain::idempotency::{self, Claim};
use cardplane_domain::ids::ApiKeyId;
use cardplane_domain::version::ApiVersion;
use cardplane_store::{IdempotentResponse, Scope, StoreError};

use crate::http::error::{ApiError, ErrorType, InternalCause};
use crate::http::extract::{AuditDraft, Ctx, IdempotencyClaim, object_in_path, too_large};
use crate::http::reply::{Committed, Sensitive, peek_json};
use crate::state::AppState;

pub const VERSION_HEADER: &str = "cardplane-version";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// `last_used_at` is written at most this often per key, off the request path.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// The version a request asked for, or the error if it named an unknown one.
#[derive(Clone, Copy)]
struct RequestedVersion(Option<ApiVersion>);

/// One structured log line and the metrics for every request; echoes the API version.
pub async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let request_id = req
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    let cause = response.extensions().get::<InternalCause>().map(|c| c.0.as_str());
    let ctx = response.extensions().get::<LogTenant>();
    let tenant = ctx.map(|t| t.0.as_str()).unwrap_or("");
    let latency_ms = latency.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(http.method = %method, http.route = %route, http.status = status, latency_ms, request_id, tenant.id = tenant, error = cause, "request failed");
    } else {
        tracing::info!(http.method = %method, http.route = %route, http.status = status, latency_ms, request_id, tenant.id = tenant, "request");
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2]).record(latency.as_secs_f64());
    response
}

#[derive(Clone)]
struct LogTenant(String);

/// Bounds every request, including reading a slowly sent body: past the limit the client gets
/// `408 request_timeout` in the envelope and the connection's work is dropped.
pub async fn request_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = std::time::Duration::from_millis(state.config.request_timeout_ms.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorType::InvalidRequestError,
            "request_timeout",
            "The request took too long to arrive or to complete",
        )
        .into_response(),
    }
}

/// Refuses a request whose request line and headers together exceed `request_header_limit_bytes`
/// (`431 headers_too_large` in the envelope), before any authentication work. Far larger heads
/// (over ~400 KiB, or more than 100 headers) never get here: the HTTP layer refuses them with a
/// bare 431 and closes the connection.
pub async fn header_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let size = req.method().as_str().len()
        + req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > state.config.request_header_limit_bytes {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorType::InvalidRequestError,
            "headers_too_large",
            format!(
                "The request line and headers exceed the size limit of {} bytes",
                state.config.request_header_limit_bytes
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Refuses unknown `Cardplane-Version` values (400) and echoes the version used on every response.
pub async fn api_version(mut req: Request, next: Next) -> Response {
    let requested = match req.headers().get(VERSION_HEADER) {
        None => None,
        Some(raw) => match raw.to_str().ok().and_then(ApiVersion::parse) {
            Some(v) => Some(v),
            None => {
                let mut r = ApiError::invalid(
                    "api_version_invalid",
                    format!(
                        "Unknown Cardplane-Version. Supported: {}",
                        cardplane_domain::version::SUPPORTED_VERSIONS.join(", ")
                    ),
                )
                .with_param("Cardplane-Version")
                .into_response();
                set_version(r.headers_mut(), ApiVersion::current());
                return r;
            }
        },
    };
    req.extensions_mut().insert(RequestedVersion(requested));
    let mut response = next.run(req).await;
    if !response.headers().contains_key(VERSION_HEADER) {
        set_version(response.headers_mut(), requested.unwrap_or_else(ApiVersion::current));
    }
    response
}

fn set_version(headers: &mut HeaderMap, version: ApiVersion) {
    headers.insert(VERSION_HEADER, HeaderValue::from_static(version.as_str()));
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = raw.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn unauthenticated(code: &str, message: &str) -> Response {
    let mut r = ApiError::unauthenticated(code, message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"cardplane\""),
    );
    r
}

/// HTTP basic auth: username = key id, password = secret. The key decides tenant and environment.
/// The active API key these basic-auth credentials name, or the 401 to answer.
async fn check_credentials(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<cardplane_domain::api_key::ApiKey, Response> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(unauthenticated(
            "credentials_missing",
            "Authenticate with HTTP basic auth: your key id as username and secret as password",
        ));
    };
    let invalid = || unauthenticated("credentials_invalid", "Invalid API key id or secret");
    let Ok(key_id) = ApiKeyId::parse(&user) else {
        return Err(invalid());
    };
    let key = match state.api_keys.find_api_key(&key_id).await {
        Ok(k) => k,
        Err(StoreError::NotFound) => {
            // Same work as a real check so timing does not reveal which key ids exist.
            let _ = ApiSecret::from_presented(&password).verify(&state.pepper, "");
            return Err(invalid());
        }
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    if !ApiSecret::from_presented(&password).verify(&state.pepper, &key.secret_hash) {
        return Err(invalid());
    }
    if !key.is_active() {
        return Err(unauthenticated("api_key_revoked", "This API key has been revoked"));
    }
    Ok(key)
}

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(wait) = source.and_then(|ip| state.limits.auth_blocked(ip)) {
        return crate::http::limits::too_many(
            "too_many_failed_authentications",
            "Too many failed authentications from this address; retry after the delay in Retry-After",
            wait,
        );
    }
    let key = match check_credentials(&state, req.headers()).await {
        Ok(key) => key,
        Err(response) => {
            if response.status() == StatusCode::UNAUTHORIZED
                && let Some(ip) = source
            {
                state.limits.auth_failed(ip);
            }
            return response;
        }
    };
    let tenant = match state.tenants.get_tenant(&key.tenant_id).await {
        Ok(t) => t,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Err(wait) = state.limits.check_key(&key.id, tenant.rate_limit_per_second) {
        return crate::http::limits::too_many(
            "rate_limited",
            "Too many requests for this API key; retry after the delay in Retry-After",
            wait,
        );
    }
    touch_last_used(&state, &key.id);
    let requested = req.extensions().get::<RequestedVersion>().and_then(|r| r.0);
    let version = requested.unwrap_or(tenant.api_version);
    let scope = Scope {
        tenant_id: key.tenant_id.clone(),
        environment: key.environment,
    };
    let tenant_id = tenant.id.to_string();
    req.extensions_mut().insert(Ctx {
        scope,
        key,
        tenant,
        version,
        idempotency: None,
        audit: None,
    });
    let mut response = next.run(req).await;
    set_version(response.headers_mut(), version);
    response.extensions_mut().insert(LogTenant(tenant_id));
    response
}

fn touch_last_used(state: &AppState, id: &ApiKeyId) {
    let now = Timestamp::now();
    {
        let mut seen = state.last_used.lock().expect("last_used lock poisoned");
        if seen
            .get(id)
            .is_some_and(|t| now.as_micros() - t.as_micros() < LAST_USED_RESOLUTION_SECS * 1_000_000)
        {
            return;
        }
        seen.insert(id.clone(), now);
    }
    let store = state.api_keys.clone();
    let id = id.clone();
    tokio::spawn(async move {
        if let Err(e) = store.touch_api_key(&id, now).await {
            tracing::warn!(api_key.id = %id, error = %e, "could not record last_used_at");
        }
    });
}

/// Idempotency for POST and PUT: `Idempotency-Key` header or `idempotency_key` body field.
// Long: one state machine around the handler (claim, replay, fingerprint mismatch, in flight,
// then complete or release), and every state needs the same request, key and claim.
pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST && req.method() != Method::PUT {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Some(mut ctx) = parts.extensions.get::<Ctx>().cloned() else {
        return ApiError::internal("idempotency layer without auth").into_response();
    };
    // Document uploads are the one kind of body allowed past the JSON limit.
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let limit = if multipart {
        state.document_body_limit()
    } else {
        state.config.request_body_limit_bytes
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large().into_response(),
    };
    let mut json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let body_key = json
        .as_mut()
        .and_then(|v| v.as_object_mut())
        .and_then(|o| o.remove("idempotency_key"));
    let header_key = parts
        .headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| v.to_str().map(str::to_owned));
    let key = match (header_key, body_key) {
        (None, None) => {
            return next.run(Request::from_parts(parts, Body::from(bytes))).await;
        }
        (Some(Err(_)), _) => {
            return ApiError::from(idempotency::parse_key("").unwrap_err()).into_response();
        }
        (Some(Ok(h)), Some(serde_json::Value::String(b))) if h != b => {
            return ApiError::invalid(
                "idempotency_key_mismatch",
                "The Idempotency-Key header and idempotency_key field differ",
            )
            .with_param("idempotency_key")
            .into_response();
        }
        (Some(Ok(h)), _) => h,
        (None, Some(serde_json::Value::String(b))) => b,
        (None, Some(_)) => {
            return ApiError::invalid("parameter_invalid", "idempotency_key must be a string")
                .with_param("idempotency_key")
                .into_response();
        }
    };
    let key = match idempotency::parse_key(&key) {
        Ok(k) => k,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // The handler sees the body without the idempotency field; the fingerprint uses canonical JSON.
    let (forwarded, canonical) = match &json {
        Some(v) => (
            serde_json::to_vec(v).unwrap_or_default(),
            idempotency::canonical_json(v),
        ),
        None if multipart => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            (bytes.to_vec(), idempotency::canonical_multipart(&bytes, content_type))
        }
        None => (bytes.to_vec(), bytes.to_vec()),
    };
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let fingerprint = idempotency::fingerprint(parts.method.as_str(), target, &canonical);
    let scope = ctx.scope.clone();
    let now = Timestamp::now();
    let claim = match state.idempotency.claim(&scope, &key, &fingerprint, now).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let token = match claim {
        Claim::Acquired { token } => token,
        Claim::Completed { fingerprint: f, .. } | Claim::InFlight { fingerprint: f } if f != fingerprint => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorType::IdempotencyError,
                "idempotency_key_reused",
                "This idempotency key was already used with a different request",
            )
            .with_param("idempotency_key")
            .into_response();
        }
        Claim::InFlight { .. } => {
            return ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::IdempotencyError,
                "idempotency_request_in_progress",
                "A request with this idempotency key is still being processed; retry later",
            )
            .into_response();
        }
        Claim::Completed { status, body, .. } => {
            let sealed = String::from_utf8_lossy(&body).into_owned();
            let body = match state
                .vault
                .open(&sealed, &crate::http::extract::idempotency_context(&scope, &key))
            {
                Ok(clear) => clear,
                Err(e) => {
                    return ApiError::internal(format!("stored idempotent response unreadable: {e}")).into_response();
                }
            };
            let mut r = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return r;
        }
    };
    ctx.idempotency = Some(IdempotencyClaim {
        key: key.clone(),
        token: token.clone(),
        vault: state.vault.clone(),
    });
    parts.extensions.insert(ctx);
    parts.headers.remove(header::CONTENT_LENGTH);
    let response = next.run(Request::from_parts(parts, Body::from(forwarded))).await;
    if response.extensions().get::<Committed>().is_some() {
        return response;
    }
    // A 503 says "retry later": storing it would replay the refusal to that very retry. Nothing
    // was committed, so the key is released instead.
    if response.extensions().get::<Sensitive>().is_some() || response.status() == StatusCode::SERVICE_UNAVAILABLE {
        let _ = state.idempotency.release(&scope, &key, &token).await;
        return response;
    }
    // No effect was committed (an error answer): store the answer on its own.
    let (resp_parts, resp_body) = response.into_parts();
    let Ok(resp_bytes) = axum::body::to_bytes(resp_body, usize::MAX).await else {
        let _ = state.idempotency.release(&scope, &key, &token).await;
        return ApiError::internal("response body unreadable").into_response();
    };
    let stored = IdempotentResponse {
        key: key.clone(),
        claim_token: token.clone(),
        status: resp_parts.status.as_u16(),
        body: state
            .vault
            .seal(&resp_bytes, &crate::http::extract::idempotency_context(&scope, &key)),
    };
    if let Err(e) = state.idempotency.complete(&scope, &stored, Timestamp::now()).await {
        tracing::warn!(error = %e, "could not store idempotent error response; releasing key");
        let _ = state.idempotency.release(&scope, &key, &token).await;
    }
    Response::from_parts(resp_parts, Body::from(resp_bytes))
}

/// The audit draft of an API request, before its handler runs.
fn audit_draft(ctx: &Ctx, parts: &axum::http::request::Parts) -> AuditDraft {
    let template = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let mut record = crate::http::people::Origin::of(parts).record(
        ActorKind::ApiKey,
        Some(ctx.key.id.to_string()),
        &format!("{} {template}", parts.method),
        Outcome::Success,
        0,
    );
    record.status = None;
    record.tenant_id = Some(ctx.scope.tenant_id.to_string());
    record.environment = Some(ctx.scope.environment.as_str().to_owned());
    if let Some((kind, id)) = object_in_path(&template, parts.uri.path()) {
        record.object_type = Some(kind);
        record.object_id = Some(id);
    }
    let created_kind = template
        .trim_start_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches('s')
        .to_owned();
    AuditDraft {
        record,
        created_kind,
        written_with_effect: Arc::new(AtomicBool::new(false)),
    }
}

/// One audit entry per state-changing API request, success or failure: which key, what, on which
/// object, from where. Committed effects carry theirs; the rest is written before the response
/// is returned.
pub async fn audit_mutation(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Some(mut ctx) = parts.extensions.remove::<Ctx>() else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let draft = audit_draft(&ctx, &parts);
    ctx.audit = Some(draft.clone());
    parts.extensions.insert(ctx);
    req = Request::from_parts(parts, body);
    let response = next.run(req).await;
    if response.status().is_success() && draft.written_with_effect.load(Ordering::Relaxed) {
        return response;
    }
    // The body is read only for what the entry takes from it: an error code, or a created id.
    let (response, body) = if response.status().is_success() && draft.record.object_id.is_some() {
        (response, None)
    } else {
        peek_json(response).await
    };
    let record = draft.finish(response.status(), body.as_ref());
    if let Err(e) = state.audit.append_audit(&record).await {
        tracing::error!(error = %e, action = %record.action, "could not write the audit entry of an answered request");
    }
    response
}
