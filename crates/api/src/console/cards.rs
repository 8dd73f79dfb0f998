//! Cards: search, one card with its balance, transactions and ledger entries, and freeze /
//! unfreeze / close with a mandatory reason (role-permitted, audited, through the same card
//! workflow as the API). A PAN is never shown: last four digits only.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::card::{Card, CardEvent};
use cardplane_domain::ids::CardId;
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Action;
use cardplane_store::cards::CardSearch;
use cardplane_store::transactions::TransactionSearch;
use cardplane_store::{EffectRecords, Scope};
use serde::Deserialize;

use super::transactions::{TransactionRow, value};
use super::{Chrome, ConsoleError, PageResult, RefusalCode, money, page, when};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{DoneQuery, href};
use crate::workflows::issuing::change_card_state;

const PAGE_SIZE: u32 = 50;
/// A reason is a sentence for the audit log, not an essay.
const REASON_CHARS_MAX: usize = 500;

pub struct CardRow {
    pub id: String,
    pub tenant_id: String,
    pub environment: &'static str,
    pub cardholder_id: String,
    pub program: String,
    pub last4: String,
    pub expiry: String,
    pub state: &'static str,
    pub form_factor: &'static str,
    pub created: String,
}

impl From<&Card> for CardRow {
    fn from(c: &Card) -> Self {
        CardRow {
            id: c.id.to_string(),
            tenant_id: c.tenant_id.to_string(),
            environment: c.environment.as_str(),
            cardholder_id: c.cardholder_id.to_string(),
            program: c.program_ref.clone(),
            last4: c.last4.clone(),
            expiry: format!("{:02}/{}", c.exp_month, c.exp_year),
            state: c.state.as_str(),
            form_factor: c.form_factor.as_str(),
            created: when(c.created_at),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct CardQuery {
    tenant: Option<String>,
    /// A card id or the last four digits.
    card: Option<String>,
    cardholder: Option<String>,
    program: Option<String>,
    state: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "console/cards.html")]
struct SearchPage {
    chrome: Chrome,
    q: CardQuery,
    problem: Option<&'static str>,
    rows: Vec<CardRow>,
    next: Option<String>,
}

impl SearchPage {
    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    fn next_href(&self, before: &str) -> String {
        let q = &self.q;
        href(
            "/console/cards",
            &[
                ("tenant", q.tenant.as_deref()),
                ("card", q.card.as_deref()),
                ("cardholder", q.cardholder.as_deref()),
                ("program", q.program.as_deref()),
                ("state", q.state.as_deref()),
                ("before", Some(before)),
            ],
        )
    }
}

pub async fn search(State(state): State<AppState>, staff: Staff, Query(q): Query<CardQuery>) -> PageResult {
    staff.require(Action::ViewCards)?;
    let mut s = CardSearch {
        tenant_id: staff
            .person
            .tenant_id
            .as_ref()
            .map(|t| t.to_string())
            .or_else(|| value(&q.tenant)),
        cardholder_id: value(&q.cardholder),
        program_id: value(&q.program),
        state: value(&q.state),
        before_id: value(&q.before),
        ..CardSearch::default()
    };
    let mut problem = None;
    if let Some(card) = value(&q.card) {
        if card.len() == 4 && card.chars().all(|c| c.is_ascii_digit()) {
            s.last4 = Some(card);
        } else if card.starts_with("card_") {
            s.card_id = Some(card);
        } else {
            problem = Some("Enter a card id (card_…) or the last four digits");
        }
    }
    let (rows, next) = if problem.is_some() {
        (Vec::new(), None)
    } else {
        let mut found = state.cards.search_cards(&s, PAGE_SIZE + 1).await?;
        let next = (found.len() > PAGE_SIZE as usize).then(|| {
            found.truncate(PAGE_SIZE as usize);
            found.last().map(|c| c.id.to_string()).unwrap_or_default()
        });
        (found.iter().map(CardRow::from).collect(), next)
    };
    let mut r = page(&SearchPage {
        chrome: Chrome::new(&staff, "cards"),
        q,
        problem,
        rows,
        next,
    })?;
    if problem.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

pub struct EntryLine {
    pub created: String,
    pub description: String,
    pub direction: &'static str,
    pub amount: String,
    pub balance_after: String,
}

#[derive(Template)]
#[template(path = "console/card.html")]
struct DetailPage {
    chrome: Chrome,
    card: CardRow,
    balance: String,
    held: String,
    available: String,
    transactions: Vec<TransactionRow>,
    entries: Vec<EntryLine>,
    can_manage: bool,
    /// The actions the card's state allows: (path segment, label, danger).
    actions: Vec<(&'static str, &'static str, bool)>,
    error: Option<String>,
    notice: Option<String>,
}

async fn load(state: &AppState, staff: &Staff, raw: &str) -> Result<Card, ConsoleError> {
    let id = CardId::parse(raw).map_err(|_| ApiError::not_found("card"))?;
    let card = state.cards.find_card(&id).await?;
    staff.require_in(Action::ViewCards, &card.tenant_id, "card")?;
    Ok(card)
}

fn scope_of(card: &Card) -> Scope {
    Scope {
        tenant_id: card.tenant_id.clone(),
        environment: card.environment,
    }
}

/// The lifecycle actions the console offers, by what the card's state machine allows.
fn offered(card: &Card) -> Vec<(&'static str, &'static str, bool)> {
    let now = cardplane_domain::Timestamp::now();
    [
        ("freeze", "Freeze", CardEvent::Freeze, false),
        ("unfreeze", "Unfreeze", CardEvent::Unfreeze, false),
        ("close", "Close permanently", CardEvent::Close, true),
    ]
    .into_iter()
    .filter(|(_, _, event, _)| card.clone().apply(*event, now).is_ok())
    .map(|(path, label, _, danger)| (path, label, danger))
    .collect()
}

async fn detail_page(
    state: &AppState,
    staff: &Staff,
    card: Card,
    error: Option<String>,
    notice: Option<String>,
) -> Result<DetailPage, ConsoleError> {
    let scope = scope_of(&card);
    let account = state.ledger.get_account(&scope, &card.account_id).await?;
    let cur = card.currency.code().to_owned();
    let transactions = state
        .transactions
        .search_transactions(
            &TransactionSearch {
                tenant_id: Some(card.tenant_id.to_string()),
                card_id: Some(card.id.to_string()),
                ..TransactionSearch::default()
            },
            20,
        )
        .await?
        .iter()
        .map(TransactionRow::from)
        .collect();
    let entries = state
        .ledger
        .list_entries(
            &scope,
            &card.account_id,
            &PageRequest {
                limit: 20,
                cursor: Cursor::Newest,
            },
        )
        .await?
        .items
        .into_iter()
        .map(|e| EntryLine {
            created: when(e.created_at),
            description: e.description.clone(),
            direction: e.direction.as_str(),
            amount: money(e.amount.minor(), e.amount.currency().code()),
            balance_after: money(e.balance_after, e.amount.currency().code()),
        })
        .collect();
    Ok(DetailPage {
        chrome: Chrome::new(staff, "cards"),
        balance: money(account.balance, &cur),
        held: money(account.held, &cur),
        available: money(account.balance - account.held, &cur),
        transactions,
        entries,
        can_manage: staff.person.can(Action::ManageCards),
        actions: offered(&card),
        card: CardRow::from(&card),
        error,
        notice,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let card = load(&state, &staff, &id).await?;
    let notice = q
        .notice(&[
            ("freeze", "The card is frozen."),
            ("unfreeze", "The card is active again."),
            ("close", "The card is closed."),
        ])
        .map(str::to_owned);
    page(&detail_page(&state, &staff, card, None, notice).await?)
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    reason: String,
}

/// `POST /console/cards/{id}/{freeze|unfreeze|close}` with a reason: the card workflow, audited
/// with the reason in the same transaction as the change.
pub async fn act(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    let event = match action.as_str() {
        "freeze" => CardEvent::Freeze,
        "unfreeze" => CardEvent::Unfreeze,
        "close" => CardEvent::Close,
        _ => return Err(ApiError::not_found("card action").into()),
    };
    let card = load(&state, &staff, &id).await?;
    staff.require(Action::ManageCards)?;
    let reason = form.reason.trim().to_owned();
    let refused = |message: String, code: &'static str| (message, code);
    let problem = if reason.is_empty() {
        Some(refused(
            "Give a reason: it goes into the audit log.".into(),
            "reason_required",
        ))
    } else if reason.chars().count() > REASON_CHARS_MAX {
        Some(refused(
            format!("Keep the reason under {REASON_CHARS_MAX} characters."),
            "reason_too_long",
        ))
    } else {
        None
    };
    if let Some((message, code)) = problem {
        let mut r = page(&detail_page(&state, &staff, card, Some(message), None).await?)?;
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r.extensions_mut().insert(RefusalCode(code.to_owned()));
        return Ok(r);
    }
    let scope = scope_of(&card);
    let mut audit = staff.audit(&format!("card.{action}"), "card", card.id.as_str());
    audit.tenant_id = Some(card.tenant_id.to_string());
    audit.environment = Some(card.environment.as_str().to_owned());
    audit.details = serde_json::json!({ "reason": reason, "via": "console" });
    let outcome = change_card_state(&state, &scope, card.clone(), event, |_| {
        Ok((
            Some(EffectRecords {
                replay: None,
                audit: Some(audit),
            }),
            (),
        ))
    })
    .await;
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/console/cards/{}?done={action}", card.id)).into_response()),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let code = e.body.code.clone();
            let mut r = page(&detail_page(&state, &staff, card, Some(e.body.message), None).await?)?;
            *r.status_mut() = StatusCode::CONFLICT;
            r.extensions_mut().insert(RefusalCode(code));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
