//! Response shapes: Cards, balances, ledger entries and revealed card secrets.

use serde::Serialize;
use utoipa::ToSchema;

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
