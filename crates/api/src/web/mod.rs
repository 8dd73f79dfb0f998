//! What the two server-rendered sites share: the operations console (`/console`, for the
//! platform's staff) and the developer portal (`/portal`, for a tenant's users) are both a
//! [`Site`] over the same `/ops` sessions, roles, permission matrix, CSRF protection and audit
//! log. This module holds the session check for pages, the security headers, the page chrome,
//! error pages and display helpers; `auth` the sign-in and second-factor pages of either site.
//! Pages are askama templates (compile-checked, auto-escaping); forms are plain HTML forms, so
//! the CSRF token travels as a hidden field.

pub mod auth;
pub mod chart;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use cardplane_domain::people::Person;

use crate::http::error::ApiError;
use crate::http::people::{Origin, SessionRequest, Staff, cookie_token, record_failure, resolve};
use crate::state::AppState;

/// The hidden form field carrying the CSRF token on every POST of a site.
pub const CSRF_FIELD: &str = "csrf_token";
/// Forms are a few fields; anything bigger is refused before it is parsed.
const FORM_BYTES_MAX: usize = 64 * 1024;

const STYLESHEET: &str = include_str!("../../assets/site.css");
const SCRIPT: &str = include_str!("../../assets/site.js");

/// One navigation entry: (section key, label, link; `None` while the section does not exist).
pub type NavItem = (&'static str, &'static str, Option<&'static str>);

/// Who may use a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Operators, and tenant users (who see their own tenant only).
    Everyone,
    /// A tenant's users only; operators are sent to the console.
    TenantUsers,
}

/// A server-rendered site: where it lives, what it is called, who may use it, its sections.
#[derive(Debug)]
pub struct Site {
    pub base: &'static str,
    pub brand: &'static str,
    pub audience: Audience,
    pub nav: &'static [NavItem],
}

impl Site {
    pub fn path(&'static self, rest: &str) -> String {
        format!("{}{rest}", self.base)
    }

    /// Paths a person without a second factor may still use: to enrol one, or to leave.
    fn allowed_before_mfa(&self, path: &str) -> bool {
        matches!(
            path.strip_prefix(self.base),
            Some("/mfa" | "/mfa/begin" | "/mfa/confirm" | "/logout")
        )
    }
}

/// Wraps a site's pages: `signed_in` behind the session check, `public` (sign-in, sign-up,
/// invitations) without it; both with the site's headers, error pages and shared assets.
pub fn site_router(
    state: &AppState,
    site: &'static Site,
    signed_in: Router<AppState>,
    public: Router<AppState>,
) -> Router<AppState> {
    let base = site.base;
    signed_in
        .route(&format!("{base}/logout"), axum::routing::post(auth::logout))
        .route(&format!("{base}/mfa"), get(auth::mfa_page))
        .route(&format!("{base}/mfa/begin"), axum::routing::post(auth::mfa_begin))
        .route(&format!("{base}/mfa/confirm"), axum::routing::post(auth::mfa_confirm))
        .route_layer(from_fn_with_state((state.clone(), site), session))
        .merge(public)
        .route(&format!("{base}/login"), get(auth::login_page).post(auth::login))
        .route(&format!("{base}/static/site.css"), get(stylesheet))
        .route(&format!("{base}/static/site.js"), get(script))
        .layer(from_fn_with_state(site, page_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// Pages are not cached, are never framed and load nothing from anywhere but this server. The
/// site travels with the request, so handlers and error pages know whose links to draw.
async fn page_headers(State(site): State<&'static Site>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(SiteRef(site));
    let mut response = next.run(req).await;
    if let Some(error) = response.extensions_mut().remove::<ErrorPage>() {
        *response.body_mut() = Body::from(error.render_for(site));
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
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

/// The site a request is for (an extractor; present on every page of a site).
#[derive(Debug, Clone, Copy)]
pub struct SiteRef(pub &'static Site);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SiteRef {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SiteRef>()
            .copied()
            .ok_or_else(|| PageError(ApiError::internal("page outside a site")))
    }
}

/// The code a refused page request is audited with (pages carry no JSON envelope).
#[derive(Debug, Clone)]
pub struct RefusalCode(pub String);

/// The `/ops` session check for pages: the cookie, idle expiry, CSRF from the form's hidden
/// field (in constant time, as the header is for `/ops`), second-factor enrolment, the site's
/// audience. Refused state-changing requests are audited as `/ops` ones are. A page asked for
/// without a session goes to the sign-in page.
async fn session(State((state, site)): State<(AppState, &'static Site)>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let origin = Origin::of(&parts);
    let mutating = !matches!(parts.method, Method::GET | Method::HEAD);
    let path = parts.uri.path().to_owned();
    let action = format!("{} {}", parts.method, path_template(&parts));
    let object = path_object(&parts);
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
                return PageError::from(e).into_response();
            }
        }
    } else {
        (body, None)
    };
    let request = SessionRequest {
        token: cookie_token(&parts.headers),
        mutating,
        presented_csrf: presented.as_deref(),
        mfa_exempt: site.allowed_before_mfa(&path),
    };
    let staff = match resolve(&state, request, &origin).await {
        Ok(staff) if site.audience == Audience::TenantUsers && staff.person.tenant_id.is_none() => {
            return PageError(ApiError::forbidden(
                "tenant_users_only",
                "The developer portal is for a tenant's users; operators use the operations console at /console.",
            ))
            .into_response();
        }
        Ok(staff) => staff,
        Err(e) => {
            if mutating {
                record_failure(&state, &origin, None, &action, object, e.status, Some(&e.body.code)).await;
            }
            return match (e.status, e.body.code.as_str()) {
                (_, "mfa_enrolment_required") if !mutating => Redirect::to(&site.path("/mfa")).into_response(),
                (StatusCode::UNAUTHORIZED, "session_expired") if !mutating => {
                    Redirect::to(&site.path("/login?expired=1")).into_response()
                }
                (StatusCode::UNAUTHORIZED, _) if !mutating => Redirect::to(&site.path("/login")).into_response(),
                _ => PageError::from(e).into_response(),
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

fn path_template(parts: &axum::http::request::Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned())
}

/// The object of a request: the last `{…_id}` in its path (`/console/cards/{card_id}/{action}`).
fn path_object(parts: &axum::http::request::Parts) -> Option<(String, String)> {
    let template = path_template(parts);
    template
        .split('/')
        .zip(parts.uri.path().split('/'))
        .filter_map(|(t, p)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?.strip_suffix("_id")?;
            Some((name.to_owned(), p.to_owned()))
        })
        .last()
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// What every signed-in page shows around its content: the site, who is signed in, the CSRF
/// token for its forms, and which section is current.
pub struct Chrome {
    pub site: &'static Site,
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    pub section: &'static str,
    /// The environment a page is about, for sites whose links carry one (`{env}` in the nav).
    pub env: Option<&'static str>,
}

impl Chrome {
    pub fn of(site: &'static Site, staff: &Staff, section: &'static str) -> Self {
        Chrome {
            site,
            name: staff.person.name.clone(),
            role: staff.person.role.as_str(),
            csrf: staff.csrf_token.clone(),
            section,
            env: None,
        }
    }

    #[must_use]
    pub fn in_env(mut self, env: cardplane_domain::Environment) -> Self {
        self.env = Some(env.as_str());
        self
    }

    pub fn base(&self) -> &'static str {
        self.site.base
    }

    pub fn brand(&self) -> &'static str {
        self.site.brand
    }

    /// The same section in another environment (sections whose key is their path segment).
    pub fn env_href(&self, env: &str) -> String {
        format!("{}/{env}/{}", self.site.base, self.section)
    }

    /// The navigation: (label, href, current); sections that arrive later have no link yet.
    /// `{env}` in a link is the page's environment (sandbox when the page has none).
    pub fn nav(&self) -> Vec<(&'static str, Option<String>, bool)> {
        let env = self.env.unwrap_or("sandbox");
        self.site
            .nav
            .iter()
            .map(|(section, label, href)| (*label, href.map(|h| h.replace("{env}", env)), *section == self.section))
            .collect()
    }
}

/// Renders a template into a page.
pub fn page(t: &impl askama::Template) -> Result<Response, PageError> {
    let html = t.render().map_err(ApiError::internal)?;
    Ok(Html(html).into_response())
}

/// A failed page request as an HTML page with the same status the JSON API would give, the
/// message of the API error (never internal text on 5xx), and the code for the audit log.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<cardplane_store::StoreError> for PageError {
    fn from(e: cardplane_store::StoreError) -> Self {
        PageError(e.into())
    }
}

#[derive(askama::Template, Clone)]
#[template(path = "web/error.html")]
struct ErrorPage {
    base: &'static str,
    status: u16,
    title: String,
    message: String,
}

impl ErrorPage {
    fn render_for(mut self, site: &'static Site) -> String {
        self.base = site.base;
        askama::Template::render(&self).unwrap_or_else(|_| "Error".to_owned())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let message = if e.status.is_server_error() {
            "Something went wrong on our side; the request id in the response headers identifies it.".to_owned()
        } else {
            e.body.message.clone()
        };
        // The site's layer renders the body: only it knows whose links to draw.
        let page = ErrorPage {
            base: "",
            status: e.status.as_u16(),
            title: e.status.canonical_reason().unwrap_or("Error").to_owned(),
            message,
        };
        let mut response = (e.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")]).into_response();
        response.extensions_mut().insert(page);
        response.extensions_mut().insert(RefusalCode(e.body.code.clone()));
        if let Some(cause) = e.cause {
            response
                .extensions_mut()
                .insert(crate::http::error::InternalCause(cause));
        }
        response
    }
}

pub type PageResult = Result<Response, PageError>;

/// A refused form: its page re-rendered (with the message in it), the refusal's status, and
/// its code for the audit log.
pub fn refused(html: PageResult, e: &ApiError) -> PageResult {
    let mut r = html?;
    *r.status_mut() = e.status;
    r.extensions_mut().insert(RefusalCode(e.body.code.clone()));
    Ok(r)
}

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
    let unit = 10i64.pow(exponent).unsigned_abs();
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
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

/// `https://host/path?token=x` without `?token=x`: a query string may carry a token.
/// `path?name=value&...` with the pairs that have a value (trimmed; empty ones left out): a
/// list's next-page link that keeps the filters in use.
pub fn href(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(name, v)| v.map(str::trim).filter(|v| !v.is_empty()).map(|v| (*name, v)))
        .collect();
    format!("{path}?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
}

/// `?done=<action>` on the page a successful POST redirects to (post/redirect/get): which
/// action just succeeded, for the notice at the top of the page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

impl DoneQuery {
    /// The page's notice for the action done (`notices` maps actions to sentences); an action
    /// the page does not name says "Done.".
    pub fn notice(&self, notices: &[(&str, &'static str)]) -> Option<&'static str> {
        self.done.as_deref().map(|done| {
            notices
                .iter()
                .find(|(action, _)| *action == done)
                .map_or("Done.", |(_, n)| *n)
        })
    }
}

pub fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

/// One step of an authorization's decision trace, for display.
pub struct TraceLine {
    pub check: String,
    pub result: String,
    pub detail: String,
}

/// The decision trace as stored (`[{check, result, detail}]`), as lines to read.
pub fn trace_lines(trace: &serde_json::Value) -> Vec<TraceLine> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    trace
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| TraceLine {
                    check: text(&s["check"]),
                    result: text(&s["result"]),
                    detail: text(&s["detail"]),
                })
                .collect()
        })
        .unwrap_or_default()
}
