//! The portal's public pages: sign-up (when the platform allows it) and accepting a sign-up or
//! teammate invitation link. Accepting signs the person in; a sign-up's tenant gets its sample
//! sandbox before the first page shows.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::api_key::ApiKey;
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::people::{Origin, session_cookie_at};
use crate::routes::ops_auth::{SignInOutcome, sign_in};
use crate::state::AppState;
use crate::web::{PageResult, RefusalCode, page};
use crate::workflows::invitations;

#[derive(Template)]
#[template(path = "portal/signup.html")]
struct SignupPage {
    enabled: bool,
    email: String,
    company_name: String,
    error: Option<String>,
    /// After a valid request: the same answer whether or not the address has an account.
    sent: bool,
}

pub async fn signup_page(State(state): State<AppState>) -> PageResult {
    page(&SignupPage {
        enabled: state.config.portal.self_signup,
        email: String::new(),
        company_name: String::new(),
        error: None,
        sent: false,
    })
}

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    company_name: String,
}

/// A page rendered again with the refusal in place, with the status and code the API would give.
fn refused(mut r: axum::response::Response, e: ApiError) -> PageResult {
    *r.status_mut() = e.status;
    r.extensions_mut().insert(RefusalCode(e.body.code));
    Ok(r)
}

pub async fn signup(State(state): State<AppState>, origin: Origin, Form(form): Form<SignupForm>) -> PageResult {
    match invitations::request_signup(&state, &origin, &form.email, &form.company_name).await {
        Ok(()) => page(&SignupPage {
            enabled: true,
            email: String::new(),
            company_name: String::new(),
            error: None,
            sent: true,
        }),
        Err(e) if e.status.is_client_error() => {
            let view = SignupPage {
                enabled: state.config.portal.self_signup,
                error: Some(e.body.message.clone()),
                email: form.email,
                company_name: form.company_name,
                sent: false,
            };
            refused(page(&view)?, e)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal/accept.html")]
struct AcceptPage {
    token: String,
    email: String,
    /// What the link leads to: "create Acme's sandbox" or "join Acme as developer".
    purpose: String,
    name: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn accept_view(state: &AppState, token: &str) -> Result<AcceptPage, ApiError> {
    let invitation = invitations::open(state, token).await?;
    let purpose = match (&invitation.company_name, &invitation.tenant_id) {
        (Some(company), None) => format!("create the sandbox of {company}"),
        (_, Some(tenant)) => {
            let name = state.tenants.get_tenant(tenant).await?.name;
            format!("join {name} as {}", invitation.role.as_str())
        }
        (None, None) => "join Cardplane".to_owned(),
    };
    Ok(AcceptPage {
        token: token.to_owned(),
        email: invitation.email,
        purpose,
        name: String::new(),
        error: None,
    })
}

pub async fn accept_page(State(state): State<AppState>, Query(q): Query<TokenQuery>) -> PageResult {
    page(&accept_view(&state, &q.token).await?)
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// The sandbox key a sign-up's sample is made with.
fn sandbox_key(accepted: &invitations::Accepted) -> Option<(&cardplane_domain::tenant::Tenant, &ApiKey)> {
    let draft = accepted.tenant.as_ref()?;
    let (key, _) = draft
        .keys
        .iter()
        .find(|(k, _)| k.environment == cardplane_domain::Environment::Sandbox)?;
    Some((&draft.tenant, key))
}

pub async fn accept(State(state): State<AppState>, origin: Origin, Form(form): Form<AcceptForm>) -> PageResult {
    let password = form.password.clone();
    let accepted = match invitations::accept(&state, &origin, &form.token, &form.name, form.password).await {
        Ok(accepted) => accepted,
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let mut view = accept_view(&state, &form.token).await?;
            view.error = Some(e.body.message.clone());
            view.name = form.name;
            return refused(page(&view)?, e);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((tenant, key)) = sandbox_key(&accepted) {
        // The account exists whatever happens here; a failed sample is offered again on the overview.
        if let Err(e) = super::sample::provision(&state, tenant, key).await {
            tracing::error!(error = %e.body.message, tenant.id = %tenant.id, "the sample sandbox could not be made");
        }
        // Nobody has seen this key's secret: it made the sample and goes. Developers make their own.
        let scope = cardplane_store::Scope {
            tenant_id: tenant.id.clone(),
            environment: key.environment,
        };
        let audit = origin
            .record(
                cardplane_domain::audit::ActorKind::System,
                Some("portal sign-up".into()),
                "api_key.revoke",
                cardplane_domain::audit::Outcome::Success,
                200,
            )
            .on("api_key", key.id.as_str());
        let revoked = crate::workflows::api_keys::revoke(&state, &scope, &key.id, |_| {
            Ok(Some(cardplane_store::EffectRecords {
                replay: None,
                audit: Some(audit),
            }))
        })
        .await;
        if let Err(e) = revoked {
            tracing::error!(error = %e.body.message, tenant.id = %tenant.id, "the sign-up's setup key could not be revoked");
        }
    }
    match sign_in(&state, &origin, &accepted.person.email, password, None).await {
        Ok(SignInOutcome::SignedIn(signed_in)) => {
            let mut r = Redirect::to(super::BASE).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie_at(super::BASE, &signed_in.token, state.config.operators.cookie_secure),
            );
            Ok(r)
        }
        _ => Ok(Redirect::to("/portal/login").into_response()),
    }
}
