//! The portal's overview: the tenant, the signed-in user's role, and the sandbox at a glance (its
//! programs with their funding, and the cards ready to simulate traffic with).

use askama::Template;
use axum::extract::State;
use axum::response::IntoResponse;
use cardplane_domain::Environment;
use cardplane_domain::ledger::AccountKind;
use cardplane_domain::page::PageRequest;
use cardplane_domain::people::Action;
use cardplane_store::Scope;
use cardplane_store::cards::CardSearch;

use super::{chrome, tenant_of};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageError, PageResult, money, page};

/// An overview, not a list: a few of each.
const SHOWN_MAX: u32 = 5;

pub struct ProgramRow {
    pub program_id: String,
    pub name: String,
    pub status: &'static str,
    pub funding: String,
}

pub struct CardRow {
    pub id: String,
    pub last4: String,
    pub state: &'static str,
    pub program: String,
}

#[derive(Template)]
#[template(path = "portal/home.html")]
struct Overview {
    chrome: Chrome,
    tenant_name: String,
    tenant_id: String,
    programs: Vec<ProgramRow>,
    cards: Vec<CardRow>,
    /// Active cards get a one-click simulated authorization.
    can_simulate: bool,
}

async fn sandbox_programs(state: &AppState, scope: &Scope) -> Result<Vec<ProgramRow>, PageError> {
    let programs = state
        .programs
        .list_programs(scope, &PageRequest::newest(SHOWN_MAX))
        .await?;
    let mut rows = Vec::with_capacity(programs.items.len());
    for p in &programs.items {
        let funding = state
            .programs
            .program_account(scope, &p.id, AccountKind::ProgramFunding)
            .await?;
        rows.push(ProgramRow {
            program_id: p.program_id.clone(),
            name: p.name.clone(),
            status: p.status.as_str(),
            funding: money(funding.balance, p.currency.code()),
        });
    }
    Ok(rows)
}

async fn sandbox_cards(state: &AppState, scope: &Scope) -> Result<Vec<CardRow>, PageError> {
    let search = CardSearch {
        tenant_id: Some(scope.tenant_id.to_string()),
        environment: Some(scope.environment.as_str().to_owned()),
        ..CardSearch::default()
    };
    let cards = state.cards.search_cards(&search, SHOWN_MAX).await?;
    Ok(cards
        .iter()
        .map(|c| CardRow {
            id: c.id.to_string(),
            last4: c.last4.clone(),
            state: c.state.as_str(),
            program: c.program_ref.clone(),
        })
        .collect())
}

pub async fn overview(State(state): State<AppState>, staff: Staff) -> PageResult {
    let tenant_id = tenant_of(&staff)?;
    let tenant = state.tenants.get_tenant(&tenant_id).await?;
    let scope = Scope {
        tenant_id: tenant_id.clone(),
        environment: Environment::Sandbox,
    };
    page(&Overview {
        chrome: chrome(&staff, "home", None),
        tenant_name: tenant.name,
        tenant_id: tenant_id.to_string(),
        programs: sandbox_programs(&state, &scope).await?,
        cards: sandbox_cards(&state, &scope).await?,
        can_simulate: staff.person.can(Action::UseSimulator),
    })
}

/// Makes the sample sandbox for a tenant that has none (one made by an operator, or whose sample
/// failed at sign-up), acting as one of its active sandbox keys.
pub async fn make_sample(State(state): State<AppState>, staff: Staff) -> PageResult {
    staff.require(Action::UseSimulator)?;
    let tenant_id = tenant_of(&staff)?;
    let tenant = state.tenants.get_tenant(&tenant_id).await?;
    let scope = Scope {
        tenant_id,
        environment: Environment::Sandbox,
    };
    let keys = state.api_keys.list_api_keys(&scope, &PageRequest::newest(100)).await?;
    let key = keys.items.into_iter().find(|k| k.is_active()).ok_or_else(|| {
        crate::http::error::ApiError::conflict(
            "sandbox_key_required",
            "Create a sandbox API key first: the sample is made with one.",
        )
    })?;
    super::sample::provision(&state, &tenant, &key).await?;
    Ok(axum::response::Redirect::to("/portal").into_response())
}
