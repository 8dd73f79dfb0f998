//! Response shapes: Cardholders, their KYC checks and card orders.

use cardplane_domain::card_order::CardOrder;
use cardplane_domain::cardholder::Cardholder;
use cardplane_domain::kyc::KycCheck;
use serde::Serialize;
use utoipa::ToSchema;

use super::cards::CardView;
use super::common::MoneyView;

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
