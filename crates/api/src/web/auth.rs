//! Sign-in, sign-out and TOTP enrolment pages of either site, over the same functions as
//! `/ops/login` and `/ops/mfa/totp`.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::{Chrome, PageError, PageResult, SiteRef, page};
use crate::http::error::ApiError;
use crate::http::people::{Origin, Staff, clear_cookie_at, session_cookie_at};
use crate::routes::ops_auth::{SignInOutcome, finish_totp, sign_in, start_totp};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "web/login.html")]
struct LoginPage {
    base: &'static str,
    brand: &'static str,
    email: String,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
    signed_out: Option<String>,
}

pub async fn login_page(SiteRef(site): SiteRef, Query(q): Query<LoginQuery>) -> PageResult {
    let notice = if q.expired.is_some() {
        Some("Your session ended after a period of inactivity. Sign in again.")
    } else if q.signed_out.is_some() {
        Some("You are signed out.")
    } else {
        None
    };
    page(&LoginPage {
        base: site.base,
        brand: site.brand,
        email: String::new(),
        error: None,
        notice,
    })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// One message for every refusal: which of email, password, code or lockout failed is not told
/// (the audit log has the exact reason).
const SIGN_IN_REFUSED: &str = "Sign-in failed. Check your email, password and code. After repeated failures an account \
     is locked for a while.";
const ADDRESS_BLOCKED: &str = "Too many failed sign-ins from this address. Wait a few minutes and try again.";

pub async fn login(
    State(state): State<AppState>,
    SiteRef(site): SiteRef,
    origin: Origin,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let code = Some(form.code.as_str()).filter(|c| !c.trim().is_empty());
    let refused = |status: StatusCode, error: &'static str, email: String| -> PageResult {
        let mut r = page(&LoginPage {
            base: site.base,
            brand: site.brand,
            email,
            error: Some(error),
            notice: None,
        })?;
        *r.status_mut() = status;
        Ok(r)
    };
    match sign_in(&state, &origin, &form.email, form.password, code).await {
        Ok(SignInOutcome::SignedIn(signed_in)) => {
            let mut r = Redirect::to(site.base).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie_at(site.base, &signed_in.token, state.config.operators.cookie_secure),
            );
            Ok(r)
        }
        Ok(SignInOutcome::AddressBlocked(_)) => refused(StatusCode::TOO_MANY_REQUESTS, ADDRESS_BLOCKED, form.email),
        Err(e) if e.status.is_server_error() => Err(e.into()),
        Err(_) => refused(StatusCode::UNAUTHORIZED, SIGN_IN_REFUSED, form.email),
    }
}

pub async fn logout(State(state): State<AppState>, SiteRef(site): SiteRef, staff: Staff) -> PageResult {
    let audit = staff.audit("session.logout", "session", staff.session_id.as_str());
    state.people.delete_session(&staff.token_hash, Some(&audit)).await?;
    let mut r = Redirect::to(&site.path("/login?signed_out=1")).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        clear_cookie_at(site.base, state.config.operators.cookie_secure),
    );
    Ok(r)
}

#[derive(Template)]
#[template(path = "web/mfa.html")]
struct MfaPage {
    chrome: Chrome,
    enabled: bool,
    recovery_codes_remaining: i64,
    /// While enrolling: the QR code (SVG from the `qrcode` crate) and the secret to type in.
    enrolment: Option<Enrolment>,
    /// After confirming: the recovery codes, shown this once.
    recovery_codes: Vec<String>,
    error: Option<String>,
}

struct Enrolment {
    qr_svg: String,
    secret: String,
}

async fn mfa_view(state: &AppState, site: &'static super::Site, staff: &Staff) -> Result<MfaPage, PageError> {
    let user = state.people.get_user(&staff.person.id).await?;
    Ok(MfaPage {
        chrome: Chrome::of(site, staff, "account"),
        enabled: user.totp_sealed.is_some(),
        recovery_codes_remaining: state.people.count_unused_recovery_codes(&staff.person.id).await?,
        enrolment: None,
        recovery_codes: Vec::new(),
        error: None,
    })
}

pub async fn mfa_page(State(state): State<AppState>, SiteRef(site): SiteRef, staff: Staff) -> PageResult {
    page(&mfa_view(&state, site, &staff).await?)
}

fn qr_svg(uri: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(ApiError::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

pub async fn mfa_begin(State(state): State<AppState>, SiteRef(site): SiteRef, staff: Staff) -> PageResult {
    let enrolment = start_totp(&state, &staff).await?;
    let mut view = mfa_view(&state, site, &staff).await?;
    view.enrolment = Some(Enrolment {
        qr_svg: qr_svg(&enrolment.otpauth_uri)?,
        secret: enrolment.secret,
    });
    page(&view)
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    code: String,
}

pub async fn mfa_confirm(
    State(state): State<AppState>,
    SiteRef(site): SiteRef,
    staff: Staff,
    Form(form): Form<ConfirmForm>,
) -> PageResult {
    match finish_totp(&state, &staff, form.code.trim()).await {
        Ok(codes) => {
            let mut view = mfa_view(&state, site, &staff).await?;
            view.recovery_codes = codes;
            page(&view)
        }
        Err(e) if e.body.code == "mfa_code_invalid" => {
            // The pending secret stays; show it again with the error in place.
            let user = state.people.get_user(&staff.person.id).await?;
            let mut view = mfa_view(&state, site, &staff).await?;
            view.error = Some(e.body.message.clone());
            if let Some(pending) = user.totp_pending {
                let secret = crate::routes::ops_auth::open_totp(&state, &staff.person.id, &pending)?;
                view.enrolment = Some(Enrolment {
                    qr_svg: qr_svg(&secret.provisioning_uri("Cardplane", &staff.person.email))?,
                    secret: secret.base32(),
                });
            }
            let mut r = page(&view)?;
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r.extensions_mut().insert(super::RefusalCode(e.body.code));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
