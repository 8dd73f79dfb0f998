//! Sign-in for people: `/ops/login`, `/ops/logout`, `/ops/session`, TOTP enrolment and password
//! change. Every attempt, good or bad, is in the audit log.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::Timestamp;
use cardplane_domain::audit::{ActorKind, Outcome};
use cardplane_domain::ids::{SessionId, UserId};
use cardplane_domain::people::{LOCKOUT_SECS, Person, check_password, normalize_email};
use cardplane_domain::totp::{TotpCheck, TotpSecret, generate_recovery_codes, recovery_code_hash};
use cardplane_store::people::{SessionRecord, SignIn, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult, ErrorType};
use crate::http::extract::JsonBody;
use crate::http::people::{
    Origin, Staff, clear_cookie, csrf_token, hash_password, password_error, random_token, session_cookie, token_hash,
    verify_password,
};
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::PersonView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub password: String,
    /// A 6-digit TOTP code, or one of the recovery codes, once a second factor is enrolled.
    pub code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub user: PersonView,
    /// Send as `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    /// True until a second factor is enrolled: only enrolment, password change and logout work.
    pub mfa_enrolment_required: bool,
    pub idle_timeout_secs: i64,
    pub recovery_codes_remaining: i64,
}

async fn session_view(state: &AppState, person: &Person, csrf: String) -> ApiResult<SessionView> {
    Ok(SessionView {
        user: person.into(),
        csrf_token: csrf,
        mfa_enrolment_required: state.config.mfa_required(person) && !person.mfa_enabled,
        idle_timeout_secs: state.config.operators.session_idle_secs,
        recovery_codes_remaining: state.people.count_unused_recovery_codes(&person.id).await?,
    })
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthenticated("credentials_invalid", "Wrong email or password")
}

fn locked(until: Timestamp) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::LOCKED,
        ErrorType::AuthenticationError,
        "account_locked",
        format!(
            "Too many failed sign-ins: this account is locked for {} minutes from the last failure",
            LOCKOUT_SECS / 60
        ),
    );
    e.retry_after_secs =
        Some(u64::try_from((until.as_micros() - Timestamp::now().as_micros()) / 1_000_000 + 1).unwrap_or(1));
    e
}

/// Records a failed attempt (counting it towards lockout when it names an account).
async fn refuse(state: &AppState, origin: &Origin, user: Option<&UserRecord>, e: ApiError) -> ApiError {
    let now = Timestamp::now();
    let mut audit = origin.record(
        if user.is_some() {
            ActorKind::User
        } else {
            ActorKind::System
        },
        user.map(|u| u.person.id.to_string()),
        "session.login",
        Outcome::Failure,
        e.status.as_u16(),
    );
    audit.object_type = Some("user".into());
    audit.object_id = user.map(|u| u.person.id.to_string());
    // The attempted email is not recorded (people type passwords into the wrong field); a known
    // account is the actor.
    audit.details = serde_json::json!({ "code": e.body.code });
    let guard = user.map(|u| u.person.guard.failed(now)).unwrap_or_default();
    if let Some(ip) = origin.ip {
        state.limits.auth_failed(ip);
    }
    match state
        .people
        .record_failed_sign_in(user.map(|u| &u.person.id), guard, &audit)
        .await
    {
        Ok(()) => e,
        Err(err) => err.into(),
    }
}

enum Factor {
    Totp(i64),
    Recovery(String),
}

fn check_factor(state: &AppState, user: &UserRecord, code: Option<&str>) -> Result<Option<Factor>, ApiError> {
    let Some(sealed) = &user.totp_sealed else {
        return Ok(None);
    };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(ApiError::unauthenticated(
            "mfa_code_required",
            "This account has a second factor: send `code` (TOTP or a recovery code)",
        ));
    };
    if code.len() != 6 {
        return Ok(Some(Factor::Recovery(recovery_code_hash(code))));
    }
    let secret = TotpSecret::from_bytes(
        state
            .vault
            .open(sealed, &totp_context(&user.person.id))
            .map_err(ApiError::internal)?,
    );
    match secret.verify(code, Timestamp::now().unix_seconds(), user.totp_last_step) {
        TotpCheck::Valid { step } => Ok(Some(Factor::Totp(step))),
        TotpCheck::Replayed => Err(ApiError::unauthenticated(
            "mfa_code_reused",
            "This code was already used; wait for the next one",
        )),
        TotpCheck::Wrong => Err(ApiError::unauthenticated(
            "mfa_code_invalid",
            "Wrong second-factor code",
        )),
    }
}

fn totp_context(user: &UserId) -> String {
    format!("totp:{user}")
}

/// Opens a sealed TOTP secret of this person (the console shows a pending one again).
pub fn open_totp(state: &AppState, user: &UserId, sealed: &str) -> ApiResult<TotpSecret> {
    Ok(TotpSecret::from_bytes(
        state
            .vault
            .open(sealed, &totp_context(user))
            .map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(
    post, path = "/ops/login", tag = "Operations console",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = SessionView),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 423, description = "Locked after 10 failures", body = crate::http::error::ErrorEnvelope),
        (status = 429, body = crate::http::error::ErrorEnvelope),
    )
)]
pub async fn login(State(state): State<AppState>, origin: Origin, JsonBody(req): JsonBody<LoginRequest>) -> Response {
    match try_login(&state, &origin, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn try_login(state: &AppState, origin: &Origin, req: LoginRequest) -> ApiResult<Response> {
    let signed_in = match sign_in(state, origin, &req.email, req.password, req.code.as_deref()).await? {
        SignInOutcome::SignedIn(s) => s,
        SignInOutcome::AddressBlocked(wait) => {
            return Ok(crate::http::limits::too_many(
                "too_many_failed_authentications",
                "Too many failed sign-ins from this address; retry after the delay in Retry-After",
                wait,
            ));
        }
    };
    let view = session_view(state, &signed_in.person, signed_in.csrf).await?;
    let mut response = Reply::ok(&view)?.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&signed_in.token, state.config.operators.cookie_secure),
    );
    no_store(response.headers_mut());
    Ok(response)
}

/// A new session: its token (for the cookie), its CSRF token and the person.
pub struct SignedIn {
    pub token: String,
    pub csrf: String,
    pub person: Person,
}

pub enum SignInOutcome {
    SignedIn(SignedIn),
    /// Too many failures from this address: retry after this delay.
    AddressBlocked(std::time::Duration),
}

/// Sign-in for `/ops/login` and the console's form, one ordered sequence (address brake, lookup,
/// lockout, password, second factor, session, audit), each refusal audited where it happens.
pub async fn sign_in(
    state: &AppState,
    origin: &Origin,
    email: &str,
    password: String,
    code: Option<&str>,
) -> ApiResult<SignInOutcome> {
    if let Some(wait) = origin.ip.and_then(|ip| state.limits.auth_blocked(ip)) {
        return Ok(SignInOutcome::AddressBlocked(wait));
    }
    let req = LoginRequest {
        email: email.to_owned(),
        password,
        code: code.map(str::to_owned),
    };
    let email = normalize_email(&req.email).unwrap_or_default();
    if req.password.chars().count() > cardplane_domain::people::PASSWORD_MAX_CHARS {
        return Err(invalid_credentials());
    }
    let user = if email.is_empty() {
        None
    } else {
        state.people.find_user_by_email(&email).await?
    };
    let now = Timestamp::now();
    if let Some(until) = user.as_ref().and_then(|u| u.person.guard.locked_at(now)) {
        return Err(refuse(state, origin, user.as_ref(), locked(until)).await);
    }
    let password_ok = verify_password(req.password.clone(), user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match user {
        Some(u) if password_ok && !u.person.disabled => u,
        other => return Err(refuse(state, origin, other.as_ref(), invalid_credentials()).await),
    };
    let factor = match check_factor(state, &user, req.code.as_deref()) {
        Ok(f) => f,
        Err(e) => return Err(refuse(state, origin, Some(&user), e).await),
    };
    let token = random_token();
    let csrf = csrf_token(&state.pepper, &token);
    let session = SessionRecord {
        id: SessionId::generate(),
        user_id: user.person.id.clone(),
        csrf_hash: token_hash(&csrf),
        created_at: now,
        last_seen_at: now,
    };
    let mut audit = origin.record(
        ActorKind::User,
        Some(user.person.id.to_string()),
        "session.login",
        Outcome::Success,
        200,
    );
    audit.object_type = Some("session".into());
    audit.object_id = Some(session.id.to_string());
    audit.tenant_id = user.person.tenant_id.as_ref().map(|t| t.to_string());
    audit.details = serde_json::json!({
        "second_factor": match factor { Some(Factor::Totp(_)) => "totp", Some(Factor::Recovery(_)) => "recovery_code", None => "none" }
    });
    let hash = token_hash(&token);
    let ip = origin.ip.map(|i| i.to_string());
    let sign_in = SignIn {
        user_id: &user.person.id,
        totp_step: match &factor {
            Some(Factor::Totp(s)) => Some(*s),
            _ => None,
        },
        recovery_code_hash: match &factor {
            Some(Factor::Recovery(h)) => Some(h.as_str()),
            _ => None,
        },
        token_hash: &hash,
        session: &session,
        origin_ip: ip.as_deref(),
        audit: &audit,
    };
    match state.people.record_sign_in(sign_in, now).await {
        Ok(()) => {}
        Err(e) if e.is_conflict_on("totp_replay", "totp_replay") => {
            let e = ApiError::unauthenticated("mfa_code_reused", "This code was already used; wait for the next one");
            return Err(refuse(state, origin, Some(&user), e).await);
        }
        Err(e) if e.is_conflict_on("recovery_code_used", "recovery_code_used") => {
            let e = ApiError::unauthenticated("mfa_code_invalid", "Wrong second-factor code");
            return Err(refuse(state, origin, Some(&user), e).await);
        }
        Err(e) => return Err(e.into()),
    }
    let mut person = user.person.clone();
    person.guard = Default::default();
    person.last_login_at = Some(now);
    Ok(SignInOutcome::SignedIn(SignedIn { token, csrf, person }))
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[utoipa::path(
    get, path = "/ops/session", tag = "Operations console",
    responses((status = 200, body = SessionView), (status = 401, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn get_session(State(state): State<AppState>, staff: Staff) -> ApiResult<Response> {
    let view = session_view(&state, &staff.person, staff.csrf_token.clone()).await?;
    let mut r = Reply::ok(&view)?.into_response();
    no_store(r.headers_mut());
    Ok(r)
}

#[utoipa::path(
    post, path = "/ops/logout", tag = "Operations console",
    responses((status = 204, description = "Signed out"), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn logout(State(state): State<AppState>, staff: Staff) -> ApiResult<Response> {
    let audit = staff.audit("session.logout", "session", staff.session_id.as_str());
    state.people.delete_session(&staff.token_hash, Some(&audit)).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(state.config.operators.cookie_secure));
    Ok(r)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32: type it into an authenticator app, or use the URI.
    pub secret: String,
    pub otpauth_uri: String,
}

#[utoipa::path(
    post, path = "/ops/mfa/totp", tag = "Operations console",
    responses(
        (status = 200, description = "Confirm with a code to finish", body = TotpEnrolment),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn begin_totp(State(state): State<AppState>, staff: Staff) -> ApiResult<Response> {
    let enrolment = start_totp(&state, &staff).await?;
    let mut r = Reply::ok(&enrolment)?.into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Starts TOTP enrolment: a new secret, sealed and kept pending until confirmed with a code.
pub async fn start_totp(state: &AppState, staff: &Staff) -> ApiResult<TotpEnrolment> {
    if staff.person.mfa_enabled {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "A second factor is already enrolled",
        ));
    }
    let secret = TotpSecret::generate();
    let sealed = state.vault.seal(secret.as_bytes(), &totp_context(&staff.person.id));
    state
        .people
        .set_pending_totp(&staff.person.id, &sealed, Timestamp::now())
        .await?;
    Ok(TotpEnrolment {
        secret: secret.base32(),
        otpauth_uri: secret.provisioning_uri("Cardplane", &staff.person.email),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmation {
    #[schema(example = "492039")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Each works once in place of a TOTP code. Shown this once.
    pub recovery_codes: Vec<String>,
}

#[utoipa::path(
    post, path = "/ops/mfa/totp/confirm", tag = "Operations console",
    request_body = TotpConfirmation,
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn confirm_totp(
    State(state): State<AppState>,
    staff: Staff,
    JsonBody(req): JsonBody<TotpConfirmation>,
) -> ApiResult<Response> {
    let codes = finish_totp(&state, &staff, &req.code).await?;
    let mut r = Reply::ok(&RecoveryCodes { recovery_codes: codes })?.into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Confirms the pending TOTP secret with a code; returns the recovery codes (shown this once).
pub async fn finish_totp(state: &AppState, staff: &Staff, code: &str) -> ApiResult<Vec<String>> {
    let user = state.people.get_user(&staff.person.id).await?;
    if user.totp_sealed.is_some() {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "A second factor is already enrolled",
        ));
    }
    let Some(pending) = user.totp_pending else {
        return Err(ApiError::conflict(
            "mfa_enrolment_not_started",
            "Start enrolment with POST /ops/mfa/totp first",
        ));
    };
    let context = totp_context(&staff.person.id);
    let secret = TotpSecret::from_bytes(state.vault.open(&pending, &context).map_err(ApiError::internal)?);
    let TotpCheck::Valid { step } = secret.verify(code, Timestamp::now().unix_seconds(), None) else {
        return Err(ApiError::invalid("mfa_code_invalid", "Wrong code; check the device's clock").with_param("code"));
    };
    let codes = generate_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_code_hash(c)).collect();
    let audit = staff.audit("mfa.enabled", "user", staff.person.id.as_str());
    state
        .people
        .enable_totp(&staff.person.id, &pending, step, &hashes, Timestamp::now(), &audit)
        .await?;
    Ok(codes)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

#[utoipa::path(
    post, path = "/ops/password", tag = "Operations console",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; other sessions ended"),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn change_password(
    State(state): State<AppState>,
    staff: Staff,
    JsonBody(req): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    check_password(&req.new_password).map_err(|e| password_error(e, "new_password"))?;
    let user = state.people.get_user(&staff.person.id).await?;
    if !verify_password(req.current_password, Some(user.password_hash.clone())).await {
        let e = ApiError::unauthenticated("credentials_invalid", "The current password is wrong")
            .with_param("current_password");
        return Err(refuse(&state, &staff.origin, Some(&user), e).await);
    }
    let hash = hash_password(req.new_password).await?;
    let audit = staff.audit("password.changed", "user", staff.person.id.as_str());
    state
        .people
        .set_password(
            &staff.person.id,
            &hash,
            Some(&staff.session_id),
            Timestamp::now(),
            &audit,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
