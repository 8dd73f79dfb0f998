//! Response shapes. Field names and order follow the Apto Core API samples; objects are wrapped
//! in a singular envelope (`{"cardholder": {...}}`) and lists in a plural one with `has_more` and
//! `total`, as the seed does.

use cardplane_domain::api_key::ApiKey;
use cardplane_domain::card_order::CardOrder;
use cardplane_domain::cardholder::Cardholder;
use cardplane_domain::event::Event;
use cardplane_domain::kyc::KycCheck;
use cardplane_domain::page::Page;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddressView {
    pub street_one: String,
    pub street_two: Option<String>,
    pub locality: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-3.
    #[schema(example = "USA")]
    pub country: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentView {
    #[serde(rename = "type")]
    #[schema(example = "ssn")]
    pub kind: String,
    /// The last four characters; the full value is never returned.
    #[schema(example = "0000")]
    pub last4: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardholderView {
    pub livemode: bool,
    #[schema(example = "crdhldr_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    /// The tenant (custodian) that owns the cardholder.
    pub corporation_id: String,
    pub email: String,
    pub kyc_passed_at: Option<String>,
    /// RESUBMIT_DETAILS, UPLOAD_FILE, UNDER_REVIEW, PASSED, REJECTED, TEMPORARY_ERROR or NOT_CHECKED.
    #[schema(example = "PASSED")]
    pub kyc_status: String,
    /// null, WATCHLIST_MATCH, SSN_MISMATCH or SSN_INVALID.
    pub kyc_identity_reason: Option<String>,
    /// null, ADDRESS_COMMERCIAL, ADDRESS_PO_BOX or ADDRESS_RISKY.
    pub kyc_address_reason: Option<String>,
    /// null, UNRELATED_FILE, WRONG_FILE or BLURRY.
    pub kyc_file_reason: Option<String>,
    pub first_name: String,
    pub last_name: String,
    /// The national significant number, as in the seed's samples.
    #[schema(example = 6508881111_i64)]
    pub phone: i64,
    /// E.164 form of the number the cardholder gave.
    #[schema(example = "+16508881111")]
    pub phone_number: String,
    pub custodian_uid: Option<String>,
    /// The cardholder's cards, oldest first.
    pub cards: Vec<CardView>,
    pub date_of_birth: String,
    pub address: AddressView,
    pub document: DocumentView,
    pub created_at: String,
    pub updated_at: String,
}

impl CardholderView {
    /// The cardholder with its cards (`cards` may hold other cardholders' cards: they are skipped).
    pub fn with_cards(c: &Cardholder, cards: &[cardplane_domain::card::Card]) -> Self {
        let mut view = CardholderView::from(c);
        view.cards = cards
            .iter()
            .filter(|card| card.cardholder_id == c.id)
            .map(CardView::from)
            .collect();
        view
    }
}

impl From<&Cardholder> for CardholderView {
    fn from(c: &Cardholder) -> Self {
        let r = &c.kyc.result;
        let a = &c.identity.address;
        CardholderView {
            livemode: c.environment.livemode(),
            id: c.id.to_string(),
            corporation_id: c.tenant_id.to_string(),
            email: c.email.as_str().to_owned(),
            kyc_passed_at: c.kyc.passed_at.map(|t| t.to_rfc3339()),
            kyc_status: r.status().as_str().to_owned(),
            kyc_identity_reason: r.identity_reason().map(|x| x.as_str().to_owned()),
            kyc_address_reason: r.address_reason().map(|x| x.as_str().to_owned()),
            kyc_file_reason: r.file_reason().map(|x| x.as_str().to_owned()),
            first_name: c.identity.first_name.clone(),
            last_name: c.identity.last_name.clone(),
            phone: c.phone.national_number(),
            phone_number: c.phone.e164().to_owned(),
            custodian_uid: c.custodian_uid.clone(),
            cards: Vec::new(),
            date_of_birth: c.identity.date_of_birth.to_iso(),
            address: AddressView {
                street_one: a.street_one.clone(),
                street_two: a.street_two.clone(),
                locality: a.locality.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
            },
            document: DocumentView {
                kind: c.document_type.as_str().to_owned(),
                last4: c.document_last4.clone(),
            },
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardholderEnvelope {
    pub cardholder: CardholderView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardholderList {
    pub cardholders: Vec<CardholderEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

impl CardholderEnvelope {
    pub fn with_cards(c: &Cardholder, cards: &[cardplane_domain::card::Card]) -> Self {
        CardholderEnvelope {
            cardholder: CardholderView::with_cards(c, cards),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub livemode: bool,
    pub name: String,
    /// Extra rights beyond the default API: `reveal` (card numbers).
    pub permissions: Vec<String>,
    pub secret_last4: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.to_string(),
            livemode: k.environment.livemode(),
            name: k.name.clone(),
            permissions: k.permissions.iter().map(|p| p.as_str().to_owned()).collect(),
            secret_last4: k.secret_last4.clone(),
            created_at: k.created_at.to_rfc3339(),
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
            last_used_at: k.last_used_at.map(|t| t.to_rfc3339()),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyEnvelope {
    pub api_key: ApiKeyView,
}

/// Returned once, at creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub api_key: ApiKeyView,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "cardholder.created")]
    pub kind: String,
    pub livemode: bool,
    pub object_id: String,
    /// A snapshot of the object after the change.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id.to_string(),
            kind: e.event_type.as_str().to_owned(),
            livemode: e.environment.livemode(),
            object_id: e.object_id.clone(),
            data: e.data.clone(),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventEnvelope {
    pub event: EventView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KycCheckView {
    pub id: String,
    pub cardholder_id: String,
    /// `sandbox`, `http` or `none`.
    pub provider: String,
    pub kyc_status: String,
    pub kyc_identity_reason: Option<String>,
    pub kyc_address_reason: Option<String>,
    pub kyc_file_reason: Option<String>,
    pub created_at: String,
}

impl From<&KycCheck> for KycCheckView {
    fn from(k: &KycCheck) -> Self {
        let r = &k.result;
        KycCheckView {
            id: k.id.to_string(),
            cardholder_id: k.cardholder_id.to_string(),
            provider: k.provider.clone(),
            kyc_status: r.status().as_str().to_owned(),
            kyc_identity_reason: r.identity_reason().map(|x| x.as_str().to_owned()),
            kyc_address_reason: r.address_reason().map(|x| x.as_str().to_owned()),
            kyc_file_reason: r.file_reason().map(|x| x.as_str().to_owned()),
            created_at: k.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KycCheckEnvelope {
    pub kyc_check: KycCheckView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KycCheckList {
    pub kyc_checks: Vec<KycCheckEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoneyView {
    #[schema(example = "USD")]
    pub currency: String,
    /// Minor units (cents for USD).
    #[schema(example = 200)]
    pub amount: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardOrderView {
    pub id: String,
    pub cardholder_id: String,
    pub program_id: String,
    pub design_key: Option<String>,
    pub initial_load: Option<MoneyView>,
    /// awaiting_kyc, pending, fulfilled or failed.
    pub status: String,
    /// The card that fulfilled the order.
    pub card_id: Option<String>,
    /// Why the order failed (an error code).
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&CardOrder> for CardOrderView {
    fn from(o: &CardOrder) -> Self {
        CardOrderView {
            id: o.id.to_string(),
            cardholder_id: o.cardholder_id.to_string(),
            program_id: o.request.program_id.clone(),
            design_key: o.request.design_key.clone(),
            initial_load: o.request.initial_load.map(|m| MoneyView {
                currency: m.currency().code().to_owned(),
                amount: m.minor(),
            }),
            status: o.status.as_str().to_owned(),
            card_id: o.card_id.as_ref().map(ToString::to_string),
            failure_reason: o.failure_reason.clone(),
            created_at: o.created_at.to_rfc3339(),
            updated_at: o.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardOrderList {
    pub card_orders: Vec<CardOrderView>,
}

/// Maps a page of domain objects to a list body.
pub fn page_items<T, V>(page: &Page<T>, f: impl Fn(&T) -> V) -> (Vec<V>, bool, i64) {
    (page.items.iter().map(f).collect(), page.has_more, page.total)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendLimitView {
    /// Minor units of the program currency.
    pub amount_limit: Option<i64>,
    pub count_limit: Option<i64>,
    /// per_transaction, day, week, month, year, lifetime or trailing.
    #[schema(example = "day")]
    pub window: String,
    /// For trailing windows: their length in seconds.
    pub window_secs: Option<i64>,
    /// Only these merchant category codes count; empty = all.
    pub mccs: Vec<String>,
}

impl From<&cardplane_domain::controls::SpendLimit> for SpendLimitView {
    fn from(c: &cardplane_domain::controls::SpendLimit) -> Self {
        SpendLimitView {
            amount_limit: c.amount_limit,
            count_limit: c.count_limit,
            window: c.window.as_str().to_owned(),
            window_secs: c.window.trailing_secs(),
            mccs: c.mccs.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramView {
    /// Cardplane's id for the program (`prog_...`); operators' approval chains use it.
    pub id: String,
    /// Your identifier for the program.
    #[schema(example = "Apto_GPR")]
    pub program_id: String,
    pub livemode: bool,
    pub name: String,
    #[schema(example = "VISA")]
    pub network: String,
    #[schema(example = "411111")]
    pub bin: String,
    #[schema(example = "USD")]
    pub currency: String,
    pub card_lifetime_years: u8,
    pub form_factors: Vec<String>,
    pub design_keys: Vec<String>,
    /// stored_balance or custodian_authority.
    pub funding_model: String,
    pub spend_controls: Vec<SpendLimitView>,
    pub minimum_cardholder_age: u8,
    pub kyc_required: bool,
    #[schema(value_type = Object)]
    pub merchant_rules: serde_json::Value,
    /// Custodian-authority programs: the endpoint, deadline and stand-in policy (never the secret).
    #[schema(value_type = Option<Object>)]
    pub custodian: Option<serde_json::Value>,
    /// active or suspended.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&cardplane_domain::program::Program> for ProgramView {
    fn from(p: &cardplane_domain::program::Program) -> Self {
        ProgramView {
            id: p.id.to_string(),
            program_id: p.program_id.clone(),
            livemode: p.environment.livemode(),
            name: p.name.clone(),
            network: p.network.as_str().to_owned(),
            bin: p.bin.clone(),
            currency: p.currency.code().to_owned(),
            card_lifetime_years: p.card_lifetime_years,
            form_factors: p.form_factors.iter().map(|f| f.as_str().to_owned()).collect(),
            design_keys: p.design_keys.clone(),
            funding_model: p.funding_model.as_str().to_owned(),
            spend_controls: p.spend_controls.iter().map(SpendLimitView::from).collect(),
            minimum_cardholder_age: p.minimum_cardholder_age,
            kyc_required: p.kyc_required,
            merchant_rules: serde_json::json!({
                "allowed_mccs": p.merchant_rules.allowed_mccs, "blocked_mccs": p.merchant_rules.blocked_mccs,
                "allowed_countries": p.merchant_rules.allowed_countries, "blocked_countries": p.merchant_rules.blocked_countries,
            }),
            custodian: p.custodian.as_ref().map(|c| {
                let stand_in = match c.stand_in {
                    cardplane_domain::program::StandInPolicy::Decline => serde_json::json!({"policy": "decline"}),
                    cardplane_domain::program::StandInPolicy::ApproveUpTo(n) => {
                        serde_json::json!({"policy": "approve_up_to", "amount": n})
                    }
                };
                serde_json::json!({"url": c.url, "deadline_ms": c.deadline_ms, "stand_in": stand_in})
            }),
            status: p.status.as_str().to_owned(),
            created_at: p.created_at.to_rfc3339(),
            updated_at: p.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramEnvelope {
    pub program: ProgramView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramList {
    pub programs: Vec<ProgramEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardView {
    #[schema(example = "card_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    pub cardholder_id: String,
    pub program_id: String,
    #[schema(example = "VISA")]
    pub network: String,
    /// virtual or physical.
    pub form_factor: String,
    pub design_key: String,
    /// CREATED, ACTIVE, INACTIVE (frozen) or CANCELLED.
    #[schema(example = "ACTIVE")]
    pub state: String,
    /// Physical cards: ordered, shipped or delivered.
    pub shipping_status: Option<String>,
    #[schema(example = "411111")]
    pub bin: String,
    #[schema(example = "4242")]
    pub last4: String,
    /// YYYY-MM.
    #[schema(example = "2029-11")]
    pub expiration: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub currency: String,
    pub replaces: Option<String>,
    /// lost, stolen, damaged or expiring.
    pub replacement_reason: Option<String>,
    pub replaced_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&cardplane_domain::card::Card> for CardView {
    fn from(c: &cardplane_domain::card::Card) -> Self {
        CardView {
            id: c.id.to_string(),
            livemode: c.environment.livemode(),
            cardholder_id: c.cardholder_id.to_string(),
            program_id: c.program_ref.clone(),
            network: c.network.as_str().to_owned(),
            form_factor: c.form_factor.as_str().to_owned(),
            design_key: c.design_key.clone(),
            state: c.state.as_str().to_owned(),
            shipping_status: c.shipping_status.map(|s| s.as_str().to_owned()),
            bin: c.bin.clone(),
            last4: c.last4.clone(),
            expiration: c.expiration(),
            exp_month: c.exp_month,
            exp_year: c.exp_year,
            currency: c.currency.code().to_owned(),
            replaces: c.replaces.as_ref().map(ToString::to_string),
            replacement_reason: c.replacement_reason.map(|r| r.as_str().to_owned()),
            replaced_by: c.replaced_by.as_ref().map(ToString::to_string),
            created_at: c.created_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardEnvelope {
    pub card: CardView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardList {
    pub cards: Vec<CardEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

/// Apto's balance bucket: `spendable = balance - held`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceView {
    pub card_id: String,
    #[schema(example = "USD")]
    pub currency: String,
    /// Posted balance, minor units.
    pub balance: i64,
    /// What can be spent now: balance minus holds.
    pub spendable: i64,
    /// Pending authorization holds.
    pub held: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceEnvelope {
    pub balance: BalanceView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceAdjustmentView {
    pub id: String,
    pub card_id: String,
    /// credit or debit.
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub journal_id: String,
    /// The card balance right after this adjustment.
    pub balance: BalanceView,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceAdjustmentEnvelope {
    pub balance_adjustment: BalanceAdjustmentView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: String,
    pub journal_id: String,
    /// debit or credit (a credit raises the card balance).
    pub direction: String,
    pub amount: i64,
    pub currency: String,
    /// The account balance right after this entry.
    pub balance_after: i64,
    pub description: String,
    /// What posted the journal: balance_adjustment, program_funding, ...
    pub journal_kind: String,
    pub created_at: String,
}

impl From<&cardplane_store::ledger::PostedEntry> for LedgerEntryView {
    fn from(e: &cardplane_store::ledger::PostedEntry) -> Self {
        LedgerEntryView {
            id: e.id.to_string(),
            journal_id: e.journal_id.to_string(),
            direction: e.direction.as_str().to_owned(),
            amount: e.amount.minor(),
            currency: e.amount.currency().code().to_owned(),
            balance_after: e.balance_after,
            description: e.description.clone(),
            journal_kind: e.journal_kind.clone(),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntryEnvelope {
    pub ledger_entry: LedgerEntryView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntryList {
    pub ledger_entries: Vec<LedgerEntryEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

/// Returned by `POST /cards/{id}/reveal` only; never stored, logged or replayed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardSecretsView {
    pub card_id: String,
    #[schema(example = "4111111111111111")]
    pub pan: String,
    #[schema(example = "123")]
    pub cvv: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub expiration: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramFundingView {
    pub program_id: String,
    pub currency: String,
    /// Money available to load onto cards, minor units.
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramFundingEnvelope {
    pub funding: ProgramFundingView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionEnvelope {
    pub transaction: TransactionView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionList {
    pub transactions: Vec<TransactionEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

pub use cardplane_engine::views::{
    DecisionTraceStep, MerchantView, NetworkAnswerView, TransactionTimestamps, TransactionView,
};
