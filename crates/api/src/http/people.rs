//! Sign-in for people: Argon2id passwords, TOTP, session cookies with CSRF tokens, and the
//! `staff_session` middleware every `/ops` route but sign-in sits behind.

use std::net::IpAddr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::hex;
use cardplane_domain::audit::{ActorKind, AuditRecord, Outcome};
use cardplane_domain::ids::{SessionId, TenantId};
use cardplane_domain::people::{Action, Person, SessionClock};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "cardplane_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// OWASP's Argon2id recommendation (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("static Argon2 parameters are valid"),
    )
}

/// Hashes off the async runtime: a hash costs tens of milliseconds of CPU.
pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// A hash of a random password: verified against when an email has no account, so a wrong email
/// costs the same time as a wrong password.
static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| {
            DECOY_HASH
                .get_or_init(|| {
                    let salt = SaltString::encode_b64(b"cardplane-decoy!").expect("16 bytes encode");
                    argon2()
                        .hash_password(b"decoy password never used", &salt)
                        .expect("decoy hashes")
                        .to_string()
                })
                .clone()
        });
        PasswordHash::new(&stored)
            .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// 32 random bytes, URL-safe: session tokens and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The CSRF token is derived from the session token with the server pepper, so it can be handed
/// out again (`GET /ops/session`) without being stored, and is useless without the cookie.
pub fn csrf_token(pepper: &[u8], session_token: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("HMAC takes any key length");
    mac.update(b"csrf:");
    mac.update(session_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    session_cookie_at("/ops", token, secure)
}

/// The same session cookie scoped to another path: the console (`/console`) signs in to the same
/// sessions as `/ops`, and its cookie is sent only to its own pages.
pub fn session_cookie_at(path: &'static str, token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("tokens are URL-safe")
}

pub fn clear_cookie(secure: bool) -> HeaderValue {
    clear_cookie_at("/ops", secure)
}

pub fn clear_cookie_at(path: &'static str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .expect("static cookie")
}

pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Where a request came from and which request it was: carried into audit entries.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl Origin {
    pub fn of(parts: &Parts) -> Self {
        Self {
            ip: parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
            request_id: parts
                .headers
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    /// An audit record with the origin filled in.
    pub fn record(
        &self,
        actor_kind: ActorKind,
        actor_id: Option<String>,
        action: &str,
        outcome: Outcome,
        status: u16,
    ) -> AuditRecord {
        let mut r = AuditRecord::new(Timestamp::now(), actor_kind, actor_id, action, outcome);
        r.status = Some(status);
        r.origin_ip = self.ip.map(|ip| ip.to_string());
        r.request_id = self.request_id.clone();
        r
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin::of(parts))
    }
}

/// The signed-in person behind a `/ops` request.
#[derive(Debug, Clone)]
pub struct Staff {
    pub person: Person,
    pub session_id: SessionId,
    pub token_hash: String,
    pub csrf_token: String,
    pub origin: Origin,
}

impl Staff {
    pub fn require(&self, action: Action) -> ApiResult<()> {
        if self.person.can(action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "permission_denied",
                format!(
                    "Your role ({}) does not allow {}",
                    self.person.role.as_str(),
                    action.as_str()
                ),
            ))
        }
    }

    /// For tenant-scoped objects: a tenant user reaching into another tenant sees nothing (404).
    pub fn require_in(&self, action: Action, tenant: &TenantId, what: &str) -> ApiResult<()> {
        if !self.person.reaches(tenant) {
            return Err(ApiError::not_found(what));
        }
        self.require(action)
    }

    /// A success entry by this person.
    pub fn audit(&self, action: &str, object_type: &str, object_id: &str) -> AuditRecord {
        let mut r = self.origin.record(
            ActorKind::User,
            Some(self.person.id.to_string()),
            action,
            Outcome::Success,
            200,
        );
        r.object_type = Some(object_type.to_owned());
        r.object_id = Some(object_id.to_owned());
        r.tenant_id = self.person.tenant_id.as_ref().map(|t| t.to_string());
        r
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Staff>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route is missing the staff session middleware"))
    }
}

/// Paths a person without a second factor may still use: to enrol one, or to leave.
fn allowed_before_mfa(path: &str) -> bool {
    matches!(
        path,
        "/ops/session" | "/ops/logout" | "/ops/mfa/totp" | "/ops/mfa/totp/confirm" | "/ops/password"
    )
}

fn safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Resolves the session cookie, enforces idle expiry, CSRF on state changes and enrolment of a
/// second factor, and audits every refused or failed state-changing request.
pub async fn staff_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let origin = Origin::of(&parts);
    let mutating = !safe_method(&parts.method);
    let template = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let object = crate::http::extract::object_in_path(&template, parts.uri.path());
    let action = format!("{} {template}", parts.method);
    let presented_csrf = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let request = SessionRequest {
        token: cookie_token(&parts.headers),
        mutating,
        presented_csrf,
        mfa_exempt: allowed_before_mfa(parts.uri.path()),
    };
    let staff = match resolve(&state, request, &origin).await {
        Ok(s) => s,
        Err(e) => {
            if mutating {
                record_failure(&state, &origin, None, &action, object, e.status, Some(&e.body.code)).await;
            }
            return e.into_response();
        }
    };
    let actor = staff.person.id.to_string();
    parts.extensions.insert(staff);
    let response = next.run(Request::from_parts(parts, body)).await;
    if mutating && !response.status().is_success() {
        let status = response.status();
        let (response, body) = crate::http::reply::peek_json(response).await;
        let code = body
            .as_ref()
            .and_then(|b| b.pointer("/error/code"))
            .and_then(|c| c.as_str());
        record_failure(&state, &origin, Some(actor), &action, object, status, code).await;
        return response;
    }
    response
}

pub async fn record_failure(
    state: &AppState,
    origin: &Origin,
    actor: Option<String>,
    action: &str,
    object: Option<(String, String)>,
    status: axum::http::StatusCode,
    code: Option<&str>,
) {
    let kind = if actor.is_some() {
        ActorKind::User
    } else {
        ActorKind::System
    };
    let mut r = origin.record(kind, actor, action, Outcome::Failure, status.as_u16());
    if let Some((kind, id)) = object {
        r.object_type = Some(kind);
        r.object_id = Some(id);
    }
    if let Some(code) = code {
        r.details = serde_json::json!({ "code": code });
    }
    if let Err(err) = state.audit.append_audit(&r).await {
        tracing::error!(error = %err, "could not write an audit entry");
    }
}

/// What a request presents to be resolved to a signed-in person.
pub struct SessionRequest<'a> {
    pub token: Option<String>,
    /// A state-changing request, which must carry the CSRF token.
    pub mutating: bool,
    /// The CSRF token as presented (the `X-CSRF-Token` header, or the console's form field).
    pub presented_csrf: Option<&'a str>,
    /// A path a person without a second factor may still use.
    pub mfa_exempt: bool,
}

/// The one session check behind `/ops` and `/console`: cookie, idle expiry, disabled account,
/// CSRF in constant time, second-factor enrolment; touches the session when it passes.
pub async fn resolve(state: &AppState, req: SessionRequest<'_>, origin: &Origin) -> ApiResult<Staff> {
    let token = req
        .token
        .ok_or_else(|| ApiError::unauthenticated("session_required", "Sign in at POST /ops/login first"))?;
    let hash = token_hash(&token);
    let session = state
        .people
        .find_session(&hash)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("session_invalid", "This session is not valid; sign in again"))?;
    let now = Timestamp::now();
    let clock = SessionClock {
        created_at: session.created_at,
        last_seen_at: session.last_seen_at,
    };
    if clock.expired(now, state.config.operators.session_idle_secs) {
        state.people.delete_session(&hash, None).await?;
        return Err(ApiError::unauthenticated(
            "session_expired",
            "This session expired after inactivity; sign in again",
        ));
    }
    let user = state.people.get_user(&session.user_id).await?;
    if user.person.disabled {
        return Err(ApiError::unauthenticated(
            "account_disabled",
            "This account is disabled",
        ));
    }
    if req.mutating {
        let presented = req.presented_csrf.map(token_hash).unwrap_or_default();
        if !bool::from(presented.as_bytes().ct_eq(session.csrf_hash.as_bytes())) {
            return Err(ApiError::forbidden(
                "csrf_token_invalid",
                "State-changing requests need the X-CSRF-Token header from sign-in",
            ));
        }
    }
    if state.config.mfa_required(&user.person) && !user.person.mfa_enabled && !req.mfa_exempt {
        return Err(ApiError::forbidden(
            "mfa_enrolment_required",
            "Enrol a second factor (POST /ops/mfa/totp) before anything else",
        ));
    }
    state.people.touch_session(&hash, now).await?;
    Ok(Staff {
        person: user.person,
        session_id: session.id,
        token_hash: hash,
        csrf_token: csrf_token(&state.pepper, &token),
        origin: origin.clone(),
    })
}

pub fn password_error(e: cardplane_domain::people::PasswordError, param: &str) -> ApiError {
    use cardplane_domain::people::PasswordError;
    let code = match e {
        PasswordError::TooShort => "password_too_short",
        PasswordError::TooLong => "password_too_long",
    };
    ApiError::invalid(code, e.to_string()).with_param(param)
}
