//! The sandbox simulator in the portal: forms to authorize on one of the tenant's sandbox cards,
//! and to clear, reverse or refund an authorization; the answer is shown in place with the
//! transaction's decision trace. The messages are the API's (`workflows::simulator`), so the
//! page and `/simulate/*` cannot disagree.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use cardplane_domain::card::CardState;
use cardplane_domain::ids::TransactionId;
use cardplane_domain::people::Action;
use cardplane_domain::{Environment, FieldError};
use cardplane_engine::authorization::Answer;
use cardplane_store::Scope;
use cardplane_store::cards::CardSearch;
use serde::Deserialize;

use super::{chrome, tenant_of};
use crate::http::error::{ApiError, ApiResult};
use crate::http::network::MerchantRequest;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageError, PageResult, TraceLine, money, page, refused, trace_lines};
use crate::workflows::simulator::{self, SimulateAuthorizationRequest, SimulateFollowUpRequest, SimulateRefundRequest};

/// The select shows this many of the tenant's sandbox cards, newest first.
const CARDS_SHOWN_MAX: u32 = 100;
/// What the entry-mode select offers (the API takes any short word).
const ENTRY_MODES: &[&str] = &[
    "simulated",
    "ecommerce",
    "chip",
    "contactless",
    "magstripe",
    "recurring",
];

pub struct CardOption {
    pub id: String,
    pub label: String,
}

/// An answer of the simulated network, as the page shows it.
pub struct Outcome {
    pub operation: String,
    pub decision: String,
    pub approved: bool,
    pub response_code: String,
    pub reason: String,
    pub approved_amount: String,
    pub transaction_id: Option<String>,
    pub trace: Vec<TraceLine>,
}

#[derive(Template)]
#[template(path = "portal/simulator.html")]
struct SimulatorPage {
    chrome: Chrome,
    cards: Vec<CardOption>,
    entry_modes: &'static [&'static str],
    can_simulate: bool,
    /// The card last used, selected again.
    card_id: String,
    /// The authorization last made, offered to the follow-up forms.
    authorization_id: String,
    outcome: Option<Outcome>,
    error: Option<String>,
}

fn sandbox(staff: &Staff) -> Result<Scope, PageError> {
    Ok(Scope {
        tenant_id: tenant_of(staff)?,
        environment: Environment::Sandbox,
    })
}

async fn simulator_page(state: &AppState, staff: &Staff, scope: &Scope) -> Result<SimulatorPage, PageError> {
    let search = CardSearch {
        tenant_id: Some(scope.tenant_id.to_string()),
        environment: Some(scope.environment.as_str().to_owned()),
        ..CardSearch::default()
    };
    let cards = state.cards.search_cards(&search, CARDS_SHOWN_MAX).await?;
    Ok(SimulatorPage {
        chrome: chrome(staff, "simulator", None),
        cards: cards
            .iter()
            .map(|c| CardOption {
                id: c.id.to_string(),
                label: format!("•••• {} · {} · {}", c.last4, c.state.as_str(), c.currency.code()),
            })
            .collect(),
        entry_modes: ENTRY_MODES,
        can_simulate: staff.person.can(Action::UseSimulator),
        card_id: cards
            .iter()
            .find(|c| c.state == CardState::Active)
            .map(|c| c.id.to_string())
            .unwrap_or_default(),
        authorization_id: String::new(),
        outcome: None,
        error: None,
    })
}

pub async fn show(State(state): State<AppState>, staff: Staff) -> PageResult {
    staff.require(Action::ViewIntegration)?;
    let scope = sandbox(&staff)?;
    page(&simulator_page(&state, &staff, &scope).await?)
}

/// Every field of the four forms; blank is absent.
#[derive(Debug, Default, Deserialize)]
pub struct SimulateForm {
    card_id: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    merchant_name: Option<String>,
    merchant_mcc: Option<String>,
    merchant_country: Option<String>,
    entry_mode: Option<String>,
    authorization_id: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl SimulateForm {
    fn amount(&self) -> ApiResult<Option<i64>> {
        given(&self.amount)
            .map(|a| {
                a.parse::<i64>()
                    .map_err(|_| FieldError::invalid("amount", "a whole number of minor units (1000 is 10.00)").into())
            })
            .transpose()
    }

    /// The merchant typed in, completed from the simulator's default one; none typed: default.
    fn merchant(&self) -> Option<MerchantRequest> {
        let (name, mcc, country) = (
            given(&self.merchant_name),
            given(&self.merchant_mcc),
            given(&self.merchant_country),
        );
        if name.is_none() && mcc.is_none() && country.is_none() {
            return None;
        }
        let d = simulator::default_merchant();
        Some(MerchantRequest {
            id: Some(d.id),
            name: name.or(Some(d.name)),
            mcc: mcc.or(Some(d.mcc)),
            country: country.or(Some(d.country)),
            city: None,
        })
    }
}

/// Runs one operation of the simulator; the page names them as the API's `/simulate/*` does.
async fn run(state: &AppState, scope: &Scope, operation: &str, form: &SimulateForm) -> ApiResult<Answer> {
    let follow_up = || -> ApiResult<SimulateFollowUpRequest> {
        Ok(SimulateFollowUpRequest {
            authorization_id: given(&form.authorization_id),
            amount: form.amount()?,
        })
    };
    match operation {
        "authorize" => {
            let req = SimulateAuthorizationRequest {
                card_id: given(&form.card_id),
                amount: form.amount()?,
                currency: given(&form.currency),
                merchant: form.merchant(),
                entry_mode: given(&form.entry_mode),
                ..SimulateAuthorizationRequest::default()
            };
            simulator::authorize(state, scope, &req).await
        }
        "clear" => simulator::clear(state, scope, &follow_up()?).await,
        "reverse" => simulator::reverse(state, scope, &follow_up()?).await,
        "refund" => {
            let req = SimulateRefundRequest {
                authorization_id: given(&form.authorization_id),
                amount: form.amount()?,
                ..SimulateRefundRequest::default()
            };
            simulator::refund(state, scope, &req).await
        }
        _ => Err(ApiError::not_found("page")),
    }
}

/// The answer's fields and, when it names a transaction, that transaction's decision trace.
async fn outcome(state: &AppState, scope: &Scope, operation: &str, answer: &Answer) -> Result<Outcome, PageError> {
    let body: serde_json::Value = serde_json::from_str(&answer.body).map_err(ApiError::internal)?;
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let transaction_id = body["authorization_id"].as_str().map(str::to_owned);
    let trace = match transaction_id.as_deref().map(TransactionId::parse) {
        Some(Ok(id)) => trace_lines(&state.transactions.get_transaction(scope, &id).await?.decision_trace),
        _ => Vec::new(),
    };
    let currency = body["currency"].as_str().unwrap_or("USD");
    Ok(Outcome {
        operation: operation.to_owned(),
        approved: text("decision") == "approved",
        decision: text("decision"),
        response_code: text("response_code"),
        reason: text("reason"),
        approved_amount: money(body["approved_amount"].as_i64().unwrap_or_default(), currency),
        transaction_id,
        trace,
    })
}

pub async fn simulate(
    State(state): State<AppState>,
    staff: Staff,
    Path(operation): Path<String>,
    Form(form): Form<SimulateForm>,
) -> PageResult {
    staff.require(Action::UseSimulator)?;
    let scope = sandbox(&staff)?;
    let answered = run(&state, &scope, &operation, &form).await;
    let mut view = simulator_page(&state, &staff, &scope).await?;
    if let Some(card) = given(&form.card_id) {
        view.card_id = card;
    }
    view.authorization_id = given(&form.authorization_id).unwrap_or_default();
    match answered {
        Ok(answer) => {
            let shown = outcome(&state, &scope, &operation, &answer).await?;
            if operation == "authorize" {
                view.authorization_id = shown.transaction_id.clone().unwrap_or_default();
            }
            view.outcome = Some(shown);
            page(&view)
        }
        Err(e) if e.status.is_client_error() && e.status != axum::http::StatusCode::NOT_FOUND => {
            view.error = Some(e.body.message.clone());
            refused(page(&view), &e)
        }
        Err(e) => Err(e.into()),
    }
}
