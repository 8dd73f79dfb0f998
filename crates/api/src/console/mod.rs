//! The operations console: server-rendered pages at `/console` over the same sessions, roles,
//! permission matrix, CSRF protection and audit log as `/ops`. Pages are askama templates
//! (compile-checked, auto-escaping) under `templates/console/`; one stylesheet is compiled into
//! the binary. Forms are plain HTML forms, so the CSRF token travels as a hidden field.

mod audit;
mod auth;
mod cardholders;
mod cards;
mod cases;
mod chart;
mod disputes;
mod health;
mod people;
mod program_form;
mod programs;
mod transactions;
mod webhooks;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cardplane_domain::people::Person;

use crate::http::error::ApiError;
use crate::http::people::{Origin, SessionRequest, Staff, cookie_token, record_failure, resolve};
use crate::state::AppState;

/// Where the console lives; its session cookie is scoped here.
pub const BASE: &str = "/console";
/// The hidden form field carrying the CSRF token on every console POST.
pub const CSRF_FIELD: &str = "csrf_token";
/// Console forms are a few fields; anything bigger is refused before it is parsed.
const FORM_BYTES_MAX: usize = 64 * 1024;

const STYLESHEET: &str = include_str!("../../assets/console.css");

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(health::home))
        .route("/console/transactions", get(transactions::search))
        .route("/console/transactions/{transaction_id}", get(transactions::detail))
        .route("/console/cardholders", get(cardholders::search))
        .route("/console/cardholders/{cardholder_id}", get(cardholders::detail))
        .route("/console/cards", get(cards::search))
        .route("/console/cards/{card_id}", get(cards::detail))
        .route("/console/cards/{card_id}/{action}", post(cards::act))
        .route("/console/cases", get(cases::queue))
        .route("/console/cases/{case_id}", get(cases::detail))
        .route("/console/cases/{case_id}/{action}", post(cases::act))
        .route("/console/audit", get(audit::log))
        .route("/console/audit/verify", get(audit::verify))
        .route("/console/audit/export", get(audit::export))
        .route("/console/disputes", get(disputes::list))
        .route("/console/disputes/{dispute_id}", get(disputes::show))
        .route("/console/disputes/{dispute_id}/{action}", post(disputes::act))
        .route("/console/webhooks", get(webhooks::health))
        .route("/console/programs", get(programs::list))
        .route("/console/programs/{program_id}", get(programs::detail))
        .route("/console/programs/{program_id}/{action}", post(programs::act))
        .route(
            "/console/operators",
            get(people::operators).post(people::create_operator),
        )
        .route("/console/operators/{user_id}/{action}", post(people::change_operator))
        .route("/console/tenants", get(people::tenants))
        .route("/console/tenants/{tenant_id}", get(people::tenant))
        .route("/console/tenants/{tenant_id}/users", post(people::create_tenant_user))
        .route(
            "/console/tenants/{tenant_id}/users/{user_id}/{action}",
            post(people::change_tenant_user),
        )
        .route(
            "/console/tenants/{tenant_id}/api_keys/{api_key_id}/revoke",
            post(people::revoke_key),
        )
        .route("/console/logout", post(auth::logout))
        .route("/console/mfa", get(auth::mfa_page))
        .route("/console/mfa/begin", post(auth::mfa_begin))
        .route("/console/mfa/confirm", post(auth::mfa_confirm))
        .route_layer(from_fn_with_state(state.clone(), console_session))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/static/console.css", get(stylesheet))
        .layer(from_fn(page_headers))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Pages are not cached, are never framed and load nothing from anywhere but this server.
async fn page_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Paths a person without a second factor may still use: to enrol one, or to leave.
fn allowed_before_mfa(path: &str) -> bool {
    matches!(
        path,
        "/console/mfa" | "/console/mfa/begin" | "/console/mfa/confirm" | "/console/logout"
    )
}

/// The code a refused console request is audited with (pages carry no JSON envelope).
#[derive(Debug, Clone)]
struct RefusalCode(String);

/// The `/ops` session check for pages: the cookie, idle expiry, CSRF from the form's hidden
/// field (in constant time, as the header is for `/ops`), second-factor enrolment. Refused
/// state-changing requests are audited as `/ops` ones are. A page asked for without a session
/// goes to the sign-in page.
async fn console_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let origin = Origin::of(&parts);
    let mutating = !matches!(parts.method, Method::GET | Method::HEAD);
    let path = parts.uri.path().to_owned();
    let template = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let action = format!("{} {template}", parts.method);
    // The object is the last `{…_id}` in the path (`/console/cards/{card_id}/{action}`).
    let object = template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, p)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?.strip_suffix("_id")?;
            Some((name.to_owned(), p.to_owned()))
        })
        .last();
    let (body, presented) = if mutating {
        match axum::body::to_bytes(body, FORM_BYTES_MAX).await {
            Ok(bytes) => {
                let csrf = form_field(&bytes, CSRF_FIELD);
                (Body::from(bytes), csrf)
            }
            Err(_) => {
                let e = ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    crate::http::error::ErrorType::InvalidRequestError,
                    "body_too_large",
                    "This form is too large",
                );
                return ConsoleError::from(e).into_response();
            }
        }
    } else {
        (body, None)
    };
    let request = SessionRequest {
        token: cookie_token(&parts.headers),
        mutating,
        presented_csrf: presented.as_deref(),
        mfa_exempt: allowed_before_mfa(&path),
    };
    let staff = match resolve(&state, request, &origin).await {
        Ok(staff) => staff,
        Err(e) => {
            if mutating {
                record_failure(&state, &origin, None, &action, object, e.status, Some(&e.body.code)).await;
            }
            return match (e.status, e.body.code.as_str()) {
                (_, "mfa_enrolment_required") if !mutating => Redirect::to("/console/mfa").into_response(),
                (StatusCode::UNAUTHORIZED, "session_expired") if !mutating => {
                    Redirect::to("/console/login?expired=1").into_response()
                }
                (StatusCode::UNAUTHORIZED, _) if !mutating => Redirect::to("/console/login").into_response(),
                _ => ConsoleError::from(e).into_response(),
            };
        }
    };
    let actor = staff.person.id.to_string();
    parts.extensions.insert(staff);
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if mutating && !(status.is_success() || status.is_redirection()) {
        let code = response.extensions().get::<RefusalCode>().map(|c| c.0.clone());
        record_failure(&state, &origin, Some(actor), &action, object, status, code.as_deref()).await;
    }
    response
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// What every signed-in page shows around its content: who is signed in, the CSRF token for its
/// forms, and which section is current.
pub struct Chrome {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    pub section: &'static str,
}

impl Chrome {
    pub fn new(staff: &Staff, section: &'static str) -> Self {
        Chrome {
            name: staff.person.name.clone(),
            role: staff.person.role.as_str(),
            csrf: staff.csrf_token.clone(),
            section,
        }
    }

    /// The navigation: (label, href, current); sections that arrive later have no link yet.
    pub fn nav(&self) -> Vec<(&'static str, Option<&'static str>, bool)> {
        let sections = [
            ("health", "Health", Some("/console")),
            ("transactions", "Transactions", Some("/console/transactions")),
            ("cardholders", "Cardholders", Some("/console/cardholders")),
            ("cards", "Cards", Some("/console/cards")),
            ("cases", "Compliance", Some("/console/cases")),
            ("disputes", "Disputes", Some("/console/disputes")),
            ("alerts", "Alerts", None),
            ("rules", "Rules", None),
            ("webhooks", "Webhooks", Some("/console/webhooks")),
            ("programs", "Programs", Some("/console/programs")),
            ("audit", "Audit log", Some("/console/audit")),
            ("people", "Operators", Some("/console/operators")),
            ("account", "Second factor", Some("/console/mfa")),
        ];
        sections
            .into_iter()
            .map(|(section, label, href)| (label, href, section == self.section))
            .collect()
    }
}

/// Renders a template into a page.
pub fn page(t: &impl askama::Template) -> Result<Response, ConsoleError> {
    let html = t.render().map_err(ApiError::internal)?;
    Ok(Html(html).into_response())
}

/// A failed console request as an HTML page with the same status the JSON API would give, the
/// message of the API error (never internal text on 5xx), and the code for the audit log.
#[derive(Debug)]
pub struct ConsoleError(pub ApiError);

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError(e)
    }
}

impl From<cardplane_store::StoreError> for ConsoleError {
    fn from(e: cardplane_store::StoreError) -> Self {
        ConsoleError(e.into())
    }
}

#[derive(askama::Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    status: u16,
    title: String,
    message: String,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = self.0;
        let code = e.body.code.clone();
        let message = if e.status.is_server_error() {
            "Something went wrong on our side; the request id in the response headers identifies it.".to_owned()
        } else {
            e.body.message.clone()
        };
        let page = ErrorPage {
            status: e.status.as_u16(),
            title: e.status.canonical_reason().unwrap_or("Error").to_owned(),
            message,
        };
        let cause = e.cause.clone();
        let body = askama::Template::render(&page).unwrap_or_else(|_| "Error".to_owned());
        let mut response = (e.status, Html(body)).into_response();
        response.extensions_mut().insert(RefusalCode(code));
        if let Some(cause) = cause {
            response
                .extensions_mut()
                .insert(crate::http::error::InternalCause(cause));
        }
        response
    }
}

pub type PageResult = Result<Response, ConsoleError>;

/// Whether this person may see an action's buttons (the handler checks again on POST).
pub fn can(person: &Person, action: cardplane_domain::people::Action) -> bool {
    person.can(action)
}

/// An amount for display: minor units in the currency's exponent, integer arithmetic only.
pub fn money(minor: i64, currency: &str) -> String {
    let exponent = cardplane_domain::money::Currency::parse(currency)
        .map(|c| u32::from(c.exponent()))
        .unwrap_or(2);
    if exponent == 0 {
        return format!("{currency} {minor}");
    }
    let unit = 10i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let unit = unit.unsigned_abs();
    format!(
        "{currency} {sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = usize::try_from(exponent).unwrap_or(2)
    )
}

/// A moment for display, UTC to the second.
pub fn when(t: cardplane_domain::Timestamp) -> String {
    let d = t.to_offset_date_time();
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}
