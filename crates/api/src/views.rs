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
    /// Issued cards (filled once the cardholder has cards).
    pub cards: Vec<serde_json::Value>,
    pub date_of_birth: String,
    pub address: AddressView,
    pub document: DocumentView,
    pub created_at: String,
    pub updated_at: String,
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

impl From<&Cardholder> for CardholderEnvelope {
    fn from(c: &Cardholder) -> Self {
        CardholderEnvelope {
            cardholder: c.into(),
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
            permissions: k
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
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
    (
        page.items.iter().map(f).collect(),
        page.has_more,
        page.total,
    )
}
