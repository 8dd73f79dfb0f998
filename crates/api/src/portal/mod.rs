//! The developer portal: server-rendered pages at `/portal` for a tenant's users (owner,
//! developer, viewer), a [`Site`] over the same sessions, permission matrix, CSRF protection and
//! audit log as the console. A developer signs up or accepts an invitation, gets a working
//! sandbox at once, manages API keys, reads the request log and usage, manages webhooks, browses
//! events, simulates card traffic and copies a quickstart filled in with their own key.

mod events;
mod home;
mod join;
mod keys;
mod quickstart;
mod requests;
pub mod sample;
mod simulator;
mod team;
mod usage;
mod webhooks;

use axum::Router;
use axum::routing::{get, post};
use cardplane_domain::Environment;
use cardplane_domain::ids::TenantId;
use cardplane_store::Scope;

use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Audience, Chrome, NavItem, PageError, Site, site_router};

pub const BASE: &str = "/portal";

const NAV: &[NavItem] = &[
    ("home", "Overview", Some("/portal")),
    ("api_keys", "API keys", Some("/portal/{env}/api_keys")),
    ("quickstart", "Quickstart", Some("/portal/{env}/quickstart")),
    ("requests", "Request log", Some("/portal/{env}/requests")),
    ("usage", "Usage", Some("/portal/{env}/usage")),
    ("webhooks", "Webhooks", Some("/portal/{env}/webhooks")),
    ("events", "Events", Some("/portal/{env}/events")),
    ("simulator", "Simulator", Some("/portal/sandbox/simulator")),
    ("team", "Team", Some("/portal/team")),
    ("docs", "API reference", Some("/docs")),
    ("account", "Second factor", Some("/portal/mfa")),
];

pub static SITE: Site = Site {
    base: BASE,
    brand: "Cardplane developer portal",
    audience: Audience::TenantUsers,
    nav: NAV,
};

pub fn router(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/portal", get(home::overview))
        .route("/portal/{environment}/api_keys", get(keys::list).post(keys::create))
        .route("/portal/{environment}/api_keys/{api_key_id}/revoke", post(keys::revoke))
        .route("/portal/{environment}/quickstart", get(quickstart::show))
        .route("/portal/team", get(team::show))
        .route("/portal/team/invitations", post(team::invite))
        .route("/portal/team/invitations/{invitation_id}/revoke", post(team::revoke))
        .route("/portal/sandbox/sample", post(home::make_sample))
        .merge(tools());
    let public = Router::new()
        .route("/portal/signup", get(join::signup_page).post(join::signup))
        .route("/portal/accept", get(join::accept_page).post(join::accept));
    site_router(state, &SITE, pages, public)
}

/// The developer's tools: request log, usage, webhooks, events, the sandbox simulator.
fn tools() -> Router<AppState> {
    let endpoint = "/portal/{environment}/webhooks/{endpoint_id}";
    Router::new()
        .route(
            "/portal/{environment}/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route(endpoint, get(webhooks::log))
        .route(&format!("{endpoint}/enable"), post(webhooks::enable))
        .route(&format!("{endpoint}/disable"), post(webhooks::disable))
        .route(&format!("{endpoint}/delete"), post(webhooks::delete))
        .route(&format!("{endpoint}/rotate_secret"), post(webhooks::rotate_secret))
        .route(&format!("{endpoint}/replay"), post(webhooks::replay))
        .route(&format!("{endpoint}/events/{{event_id}}"), get(webhooks::delivery))
        .route(
            &format!("{endpoint}/events/{{event_id}}/redeliver"),
            post(webhooks::redeliver),
        )
        .route("/portal/{environment}/requests", get(requests::list))
        .route("/portal/{environment}/requests/{request_log_id}", get(requests::show))
        .route("/portal/{environment}/usage", get(usage::show))
        .route("/portal/{environment}/events", get(events::list))
        .route("/portal/{environment}/events/{event_id}", get(events::show))
        .route("/portal/sandbox/simulator", get(simulator::show))
        .route("/portal/sandbox/simulator/{operation}", post(simulator::simulate))
}

/// Where a portal page acts: the signed-in user's tenant, in one environment.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub tenant_id: TenantId,
    pub environment: Environment,
}

impl Workspace {
    /// The environment named in the path (`sandbox` or `live`; anything else is 404) of the
    /// signed-in user's tenant (the site admits tenant users only).
    pub fn of(staff: &Staff, environment: &str) -> Result<Self, PageError> {
        let environment = Environment::parse(environment).ok_or_else(|| ApiError::not_found("page"))?;
        Ok(Workspace {
            tenant_id: tenant_of(staff)?,
            environment,
        })
    }

    pub fn scope(&self) -> Scope {
        Scope {
            tenant_id: self.tenant_id.clone(),
            environment: self.environment,
        }
    }

    pub fn env(&self) -> &'static str {
        self.environment.as_str()
    }
}

pub fn tenant_of(staff: &Staff) -> Result<TenantId, PageError> {
    staff.person.tenant_id.clone().ok_or_else(|| {
        PageError(ApiError::forbidden(
            "tenant_users_only",
            "The developer portal is for a tenant's users",
        ))
    })
}

/// The chrome of a portal page.
pub fn chrome(staff: &Staff, section: &'static str, ws: Option<&Workspace>) -> Chrome {
    let chrome = Chrome::of(&SITE, staff, section);
    match ws {
        Some(ws) => chrome.in_env(ws.environment),
        None => chrome,
    }
}
