//! The operations console: server-rendered pages at `/console` for the platform's staff (and a
//! tenant's users, who see their own tenant), a [`Site`](crate::web::Site) over the `/ops`
//! sessions. The shell every page shares (session check, chrome, errors) is in `crate::web`.

mod alerts;
mod audit;
mod cardholders;
mod cards;
mod cases;
mod disputes;
mod health;
mod people;
mod program_form;
mod programs;
mod rules;
mod transactions;
mod webhooks;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;
use crate::web::{Audience, NavItem, Site, site_router};
pub use crate::web::{Chrome, PageError as ConsoleError, PageResult, RefusalCode, can, money, page, when};

/// Where the console lives; its session cookie is scoped here.
pub const BASE: &str = "/console";

const NAV: &[NavItem] = &[
    ("health", "Health", Some("/console")),
    ("transactions", "Transactions", Some("/console/transactions")),
    ("cardholders", "Cardholders", Some("/console/cardholders")),
    ("cards", "Cards", Some("/console/cards")),
    ("cases", "Compliance", Some("/console/cases")),
    ("disputes", "Disputes", Some("/console/disputes")),
    ("alerts", "Alerts", Some("/console/alerts")),
    ("rules", "Rules", Some("/console/rules")),
    ("webhooks", "Webhooks", Some("/console/webhooks")),
    ("programs", "Programs", Some("/console/programs")),
    ("audit", "Audit log", Some("/console/audit")),
    ("people", "Operators", Some("/console/operators")),
    ("account", "Second factor", Some("/console/mfa")),
];

pub static SITE: Site = Site {
    base: BASE,
    brand: "Cardplane console",
    audience: Audience::Everyone,
    nav: NAV,
};

impl Chrome {
    /// The chrome of a console page.
    pub fn new(staff: &crate::http::people::Staff, section: &'static str) -> Self {
        Chrome::of(&SITE, staff, section)
    }
}

pub fn router(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
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
        .route("/console/alerts", get(alerts::queue))
        .route("/console/alerts/{alert_id}", get(alerts::detail))
        .route("/console/alerts/{alert_id}/{action}", post(alerts::act))
        .route("/console/rules", get(rules::list))
        .route("/console/rules/{rule_id}", get(rules::detail))
        .route("/console/rules/{rule_id}/{action}", post(rules::act))
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
        );
    site_router(state, &SITE, pages, Router::new())
}
