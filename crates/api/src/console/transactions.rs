//! Transactions: search across tenants (tenant users: their own) with keyset pagination, and one
//! transaction with its decision trace, timeline, ledger entries and webhook deliveries.

use askama::Template;
use axum::extract::{Path, Query, State};
use cardplane_domain::Timestamp;
use cardplane_domain::authorization::Transaction;
use cardplane_domain::ids::TransactionId;
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Action;
use cardplane_store::Scope;
use cardplane_store::transactions::TransactionSearch;
use cardplane_store::webhooks::ObjectDelivery;
use serde::Deserialize;

use super::{Chrome, ConsoleError, PageResult, money, page, when};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{TraceLine, trace_lines};

pub const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize, Default, Clone)]
pub struct SearchQuery {
    pub tenant: Option<String>,
    pub environment: Option<String>,
    /// A card id, or a card's last four digits.
    pub card: Option<String>,
    pub cardholder: Option<String>,
    pub program: Option<String>,
    pub state: Option<String>,
    pub decline_reason: Option<String>,
    pub mcc: Option<String>,
    pub amount_min: Option<String>,
    pub amount_max: Option<String>,
    /// YYYY-MM-DD, UTC, inclusive.
    pub from: Option<String>,
    /// YYYY-MM-DD, UTC, inclusive.
    pub to: Option<String>,
    pub before: Option<String>,
}

/// A query value, trimmed, empty as absent.
pub fn value(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The tenant a search is limited to: a tenant user's own, else the one asked for, if any.
pub fn tenant_filter(staff: &Staff, asked: &Option<String>) -> Option<String> {
    staff
        .person
        .tenant_id
        .as_ref()
        .map(|t| t.to_string())
        .or_else(|| value(asked))
}

/// A form field's problem, shown next to it.
pub struct FieldProblem {
    pub field: &'static str,
    pub message: String,
}

fn parse_day(raw: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(raw, &format).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1_000_000)
}

const STATES: [&str; 5] = ["PENDING", "DECLINED", "COMPLETE", "REVERSED", "EXPIRED"];

/// Turns the form into a store search, or the problems to show in place.
pub fn search_of(q: &SearchQuery, staff: &Staff) -> Result<TransactionSearch, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut s = TransactionSearch {
        tenant_id: staff
            .person
            .tenant_id
            .as_ref()
            .map(|t| t.to_string())
            .or_else(|| value(&q.tenant)),
        environment: value(&q.environment),
        cardholder_id: value(&q.cardholder),
        program_id: value(&q.program),
        decline_reason: value(&q.decline_reason),
        mcc: value(&q.mcc),
        before_id: value(&q.before),
        ..TransactionSearch::default()
    };
    if let Some(e) = &s.environment
        && e != "sandbox"
        && e != "live"
    {
        problems.push(FieldProblem {
            field: "environment",
            message: "Choose sandbox or live".into(),
        });
    }
    if let Some(card) = value(&q.card) {
        if card.len() == 4 && card.chars().all(|c| c.is_ascii_digit()) {
            s.last4 = Some(card);
        } else if card.starts_with("card_") {
            s.card_id = Some(card);
        } else {
            problems.push(FieldProblem {
                field: "card",
                message: "Enter a card id (card_…) or the last four digits".into(),
            });
        }
    }
    if let Some(state) = value(&q.state) {
        if STATES.contains(&state.as_str()) {
            s.state = Some(state);
        } else {
            problems.push(FieldProblem {
                field: "state",
                message: "Unknown state".into(),
            });
        }
    }
    for (field, raw, slot) in [
        ("amount_min", &q.amount_min, &mut s.amount_min),
        ("amount_max", &q.amount_max, &mut s.amount_max),
    ] {
        if let Some(raw) = value(raw) {
            match raw.parse::<i64>() {
                Ok(v) if v >= 0 => *slot = Some(v),
                _ => problems.push(FieldProblem {
                    field,
                    message: "Enter a whole number of minor units (cents)".into(),
                }),
            }
        }
    }
    for (field, raw, slot, end_of_day) in [
        ("from", &q.from, &mut s.since, false),
        ("to", &q.to, &mut s.until, true),
    ] {
        if let Some(raw) = value(raw) {
            match parse_day(&raw) {
                Some(t) => *slot = Some(if end_of_day { t + 86_400_000_000 } else { t }),
                None => problems.push(FieldProblem {
                    field,
                    message: "Enter a date as YYYY-MM-DD".into(),
                }),
            }
        }
    }
    if problems.is_empty() { Ok(s) } else { Err(problems) }
}

/// One row of the results table.
pub struct TransactionRow {
    pub id: String,
    pub created: String,
    pub tenant_id: String,
    pub environment: &'static str,
    pub program_id: String,
    pub card_id: String,
    pub merchant: String,
    pub mcc: String,
    pub amount: String,
    pub state: &'static str,
    pub decline_reason: String,
}

impl From<&Transaction> for TransactionRow {
    fn from(t: &Transaction) -> Self {
        TransactionRow {
            id: t.id.to_string(),
            created: when(t.created_at),
            tenant_id: t.tenant_id.to_string(),
            environment: t.environment.as_str(),
            program_id: t.program_id.to_string(),
            card_id: t.card_id.to_string(),
            merchant: t.merchant.name.clone(),
            mcc: t.merchant.mcc.clone(),
            amount: money(t.requested_amount, t.currency.code()),
            state: t.state.as_str(),
            decline_reason: t.decline_reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/transactions.html")]
struct SearchPage {
    chrome: Chrome,
    q: SearchQuery,
    problems: Vec<FieldProblem>,
    rows: Vec<TransactionRow>,
    next: Option<String>,
    states: [&'static str; 5],
}

impl SearchPage {
    fn problem(&self, field: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.as_str())
    }

    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    /// The query string of the next page: the same filters, older than the last row.
    fn next_href(&self, before: &str) -> String {
        let mut q = self.q.clone();
        q.before = Some(before.to_owned());
        format!(
            "/console/transactions?{}",
            serde_urlencoded::to_string(SearchPairs(&q)).unwrap_or_default()
        )
    }
}

/// The query as form pairs (empty fields left out).
struct SearchPairs<'a>(&'a SearchQuery);

impl serde::Serialize for SearchPairs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let q = self.0;
        let pairs = [
            ("tenant", &q.tenant),
            ("environment", &q.environment),
            ("card", &q.card),
            ("cardholder", &q.cardholder),
            ("program", &q.program),
            ("state", &q.state),
            ("decline_reason", &q.decline_reason),
            ("mcc", &q.mcc),
            ("amount_min", &q.amount_min),
            ("amount_max", &q.amount_max),
            ("from", &q.from),
            ("to", &q.to),
            ("before", &q.before),
        ];
        let mut seq = s.serialize_seq(None)?;
        for (k, v) in pairs {
            if let Some(v) = value(v) {
                seq.serialize_element(&(k, v))?;
            }
        }
        seq.end()
    }
}

pub async fn search(State(state): State<AppState>, staff: Staff, Query(q): Query<SearchQuery>) -> PageResult {
    staff.require(Action::ViewTransactions)?;
    let (rows, next, problems) = match search_of(&q, &staff) {
        Ok(search) => {
            let mut found = state.transactions.search_transactions(&search, PAGE_SIZE + 1).await?;
            let next = (found.len() > PAGE_SIZE as usize).then(|| {
                found.truncate(PAGE_SIZE as usize);
                found.last().map(|t| t.id.to_string()).unwrap_or_default()
            });
            (found.iter().map(TransactionRow::from).collect(), next, Vec::new())
        }
        Err(problems) => (Vec::new(), None, problems),
    };
    let invalid = !problems.is_empty();
    let mut r = page(&SearchPage {
        chrome: Chrome::new(&staff, "transactions"),
        q,
        problems,
        rows,
        next,
        states: STATES,
    })?;
    if invalid {
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

pub struct EntryLine {
    pub created: String,
    pub journal_kind: String,
    pub description: String,
    pub direction: &'static str,
    pub amount: String,
    pub balance_after: String,
}

#[derive(Template)]
#[template(path = "console/transaction.html")]
struct DetailPage {
    chrome: Chrome,
    t: TransactionRow,
    last4: String,
    authorized: String,
    held: String,
    cleared: String,
    reversed: String,
    response_code: String,
    authorization_code: String,
    merchant_country: String,
    merchant_city: String,
    entry_mode: String,
    stand_in: bool,
    trace: Vec<TraceLine>,
    timeline: Vec<(String, String)>,
    entries: Vec<EntryLine>,
    deliveries: Vec<ObjectDelivery>,
}

impl DetailPage {
    fn at(&self, t: &Timestamp) -> String {
        when(*t)
    }
}

/// Loads a transaction the person may see: another tenant's is "not found".
async fn load(state: &AppState, staff: &Staff, raw: &str) -> Result<Transaction, ConsoleError> {
    let id = TransactionId::parse(raw).map_err(|_| ApiError::not_found("transaction"))?;
    let t = state.transactions.find_transaction(&id).await?;
    staff.require_in(Action::ViewTransactions, &t.tenant_id, "transaction")?;
    Ok(t)
}

pub async fn detail(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> PageResult {
    let t = load(&state, &staff, &id).await?;
    let scope = Scope {
        tenant_id: t.tenant_id.clone(),
        environment: t.environment,
    };
    let card = state.cards.get_card(&scope, &t.card_id).await?;
    let events = state.events.events_for_object(&scope, t.id.as_str(), 50).await?;
    let deliveries = state.webhooks.deliveries_for_object(&scope, t.id.as_str(), 50).await?;
    // Journals carry no transaction id: the card account's entries from this transaction's
    // receipt to its last change are the ones it can have caused (others may interleave).
    let entries = state
        .ledger
        .list_entries(
            &scope,
            &t.account_id,
            &PageRequest {
                limit: 100,
                cursor: Cursor::Newest,
            },
        )
        .await?
        .items
        .into_iter()
        .filter(|e| e.created_at >= t.created_at && e.created_at <= t.updated_at)
        .map(|e| EntryLine {
            created: when(e.created_at),
            journal_kind: e.journal_kind.clone(),
            description: e.description.clone(),
            direction: e.direction.as_str(),
            amount: money(e.amount.minor(), e.amount.currency().code()),
            balance_after: money(e.balance_after, e.amount.currency().code()),
        })
        .collect();
    let mut timeline = vec![("Received from the network".to_owned(), when(t.received_at))];
    if let Some(s) = t.custodian_sent_at {
        timeline.push(("Asked the custodian".into(), when(s)));
    }
    if let Some(a) = t.custodian_answered_at {
        timeline.push(("Custodian answered".into(), when(a)));
    }
    timeline.push((format!("Answered ({})", t.response_code.as_str()), when(t.answered_at)));
    for e in &events {
        timeline.push((format!("Event {}", e.event_type.as_str()), when(e.created_at)));
    }
    if let Some(x) = t.expires_at {
        timeline.push(("Hold expires".into(), when(x)));
    }
    timeline.push(("Last change".into(), when(t.updated_at)));
    let cur = t.currency.code().to_owned();
    page(&DetailPage {
        chrome: Chrome::new(&staff, "transactions"),
        last4: card.last4.clone(),
        authorized: money(t.authorized_amount, &cur),
        held: money(t.held_amount, &cur),
        cleared: money(t.cleared_amount, &cur),
        reversed: money(t.reversed_amount, &cur),
        response_code: t.response_code.as_str().to_owned(),
        authorization_code: t.authorization_code.clone().unwrap_or_default(),
        merchant_country: t.merchant.country.clone(),
        merchant_city: t.merchant.city.clone(),
        entry_mode: t.entry_mode.clone(),
        stand_in: t.stand_in,
        trace: trace_lines(&t.decision_trace),
        timeline,
        entries,
        deliveries,
        t: TransactionRow::from(&t),
    })
}
