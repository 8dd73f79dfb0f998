//! Cardholders: search, and one cardholder with KYC history, documents (metadata), cards and
//! their balances. Identity documents show their type and last four characters only.

use askama::Template;
use axum::extract::{Path, Query, State};
use cardplane_domain::cardholder::Cardholder;
use cardplane_domain::ids::CardholderId;
use cardplane_domain::kyc::KycResult;
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Action;
use cardplane_store::Scope;
use cardplane_store::cardholders::CardholderSearch;
use serde::Deserialize;

use super::cards::CardRow;
use super::transactions::value;
use super::{Chrome, PageResult, money, page, when};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::href;

const PAGE_SIZE: u32 = 50;
const CARDS_SHOWN_MAX: usize = 20;

pub struct HolderRow {
    pub id: String,
    pub tenant_id: String,
    pub environment: &'static str,
    pub name: String,
    pub email: String,
    pub kyc_status: &'static str,
    pub created: String,
}

impl From<&Cardholder> for HolderRow {
    fn from(c: &Cardholder) -> Self {
        HolderRow {
            id: c.id.to_string(),
            tenant_id: c.tenant_id.to_string(),
            environment: c.environment.as_str(),
            name: format!("{} {}", c.identity.first_name, c.identity.last_name),
            email: c.email.as_str().to_owned(),
            kyc_status: c.kyc.result.status().as_str(),
            created: when(c.created_at),
        }
    }
}

#[derive(Debug, Deserialize, Default, Clone)]
pub struct HolderQuery {
    tenant: Option<String>,
    cardholder: Option<String>,
    custodian_uid: Option<String>,
    email: Option<String>,
    last_name: Option<String>,
    kyc_status: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "console/cardholders.html")]
struct SearchPage {
    chrome: Chrome,
    q: HolderQuery,
    rows: Vec<HolderRow>,
    next: Option<String>,
}

impl SearchPage {
    fn v<'a>(&self, raw: &'a Option<String>) -> &'a str {
        raw.as_deref().unwrap_or("")
    }

    fn next_href(&self, before: &str) -> String {
        let q = &self.q;
        href(
            "/console/cardholders",
            &[
                ("tenant", q.tenant.as_deref()),
                ("cardholder", q.cardholder.as_deref()),
                ("custodian_uid", q.custodian_uid.as_deref()),
                ("email", q.email.as_deref()),
                ("last_name", q.last_name.as_deref()),
                ("kyc_status", q.kyc_status.as_deref()),
                ("before", Some(before)),
            ],
        )
    }
}

pub async fn search(State(state): State<AppState>, staff: Staff, Query(q): Query<HolderQuery>) -> PageResult {
    staff.require(Action::ViewCards)?;
    let s = CardholderSearch {
        tenant_id: staff
            .person
            .tenant_id
            .as_ref()
            .map(|t| t.to_string())
            .or_else(|| value(&q.tenant)),
        cardholder_id: value(&q.cardholder),
        custodian_uid: value(&q.custodian_uid),
        email: value(&q.email).map(|e| e.to_lowercase()),
        last_name: value(&q.last_name),
        kyc_status: value(&q.kyc_status),
        before_id: value(&q.before),
    };
    let mut found = state.cardholders.search_cardholders(&s, PAGE_SIZE + 1).await?;
    let next = (found.len() > PAGE_SIZE as usize).then(|| {
        found.truncate(PAGE_SIZE as usize);
        found.last().map(|c| c.id.to_string()).unwrap_or_default()
    });
    page(&SearchPage {
        chrome: Chrome::new(&staff, "cardholders"),
        q,
        rows: found.iter().map(HolderRow::from).collect(),
        next,
    })
}

/// A KYC outcome in words: the status and whichever reasons it has.
fn kyc_text(r: &KycResult) -> (String, String) {
    let reasons: Vec<&str> = [
        r.identity_reason().map(|x| x.as_str()),
        r.address_reason().map(|x| x.as_str()),
        r.file_reason().map(|x| x.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    (r.status().as_str().to_owned(), reasons.join(", "))
}

pub struct CardWithBalance {
    pub card: CardRow,
    pub balance: String,
    pub available: String,
}

#[derive(Template)]
#[template(path = "console/cardholder.html")]
struct DetailPage {
    chrome: Chrome,
    holder: HolderRow,
    custodian_uid: String,
    document: String,
    kyc_status: String,
    kyc_reasons: String,
    kyc_passed: String,
    checks: Vec<(String, String, String, String)>,
    documents: Vec<(String, String, String, String, i64)>,
    cards: Vec<CardWithBalance>,
    more_cards: bool,
}

pub async fn detail(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> PageResult {
    let id = CardholderId::parse(&id).map_err(|_| ApiError::not_found("cardholder"))?;
    let holder = state.cardholders.find_cardholder(&id).await?;
    staff.require_in(Action::ViewCards, &holder.tenant_id, "cardholder")?;
    let scope = Scope {
        tenant_id: holder.tenant_id.clone(),
        environment: holder.environment,
    };
    let checks = state
        .cardholders
        .list_kyc_checks(
            &scope,
            &holder.id,
            &PageRequest {
                limit: 50,
                cursor: Cursor::Newest,
            },
        )
        .await?
        .items
        .iter()
        .map(|c| {
            let (status, reasons) = kyc_text(&c.result);
            (when(c.created_at), c.provider.clone(), status, reasons)
        })
        .collect();
    // Document metadata only; the content is for reviewers (`documents.read`) through /ops.
    let documents = state
        .compliance
        .list_documents(&holder.id)
        .await?
        .into_iter()
        .map(|d| (when(d.created_at), d.kind, d.file_name, d.content_type, d.size_bytes))
        .collect();
    let all_cards = state.cards.cards_of(&scope, std::slice::from_ref(&holder.id)).await?;
    let more_cards = all_cards.len() > CARDS_SHOWN_MAX;
    let mut cards = Vec::new();
    for card in all_cards.iter().rev().take(CARDS_SHOWN_MAX) {
        let account = state.ledger.get_account(&scope, &card.account_id).await?;
        let cur = card.currency.code();
        cards.push(CardWithBalance {
            card: CardRow::from(card),
            balance: money(account.balance, cur),
            available: money(account.balance - account.held, cur),
        });
    }
    let (kyc_status, kyc_reasons) = kyc_text(&holder.kyc.result);
    page(&DetailPage {
        chrome: Chrome::new(&staff, "cardholders"),
        custodian_uid: holder.custodian_uid.clone().unwrap_or_default(),
        document: format!("{} ending {}", holder.document_type.as_str(), holder.document_last4),
        kyc_status,
        kyc_reasons,
        kyc_passed: holder.kyc.passed_at.map(when).unwrap_or_default(),
        checks,
        documents,
        cards,
        more_cards,
        holder: HolderRow::from(&holder),
    })
}
