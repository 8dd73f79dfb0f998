//! Cardholders as the Apto Core API describes them, parsed once at the edge into types that can
//! only hold valid values.

use crate::environment::Environment;
use crate::error::FieldError;
use crate::identity::{optional_text, required_text};
use crate::ids::{CardholderId, TenantId};
use crate::kyc::KycState;
use crate::money::{Currency, Money};
use crate::time::Timestamp;

// The identity types live in `identity` (KYC checks them too); cardholders are made of them.
pub use crate::identity::{
    Address, AddressInput, DateOfBirth, Document, DocumentNumber, DocumentType, Email, Identity, PhoneNumber,
    age_in_years, is_po_box, parse_custodian_uid, parse_name,
};

/// A card ordered with the cardholder (`card` in the create request), fulfilled by the cards
/// capability once KYC passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOrderRequest {
    pub program_id: String,
    pub design_key: Option<String>,
    pub initial_load: Option<Money>,
}

impl CardOrderRequest {
    pub fn parse(
        program_id: Option<&str>,
        design_key: Option<&str>,
        initial_load: Option<(Option<&str>, Option<i64>)>,
    ) -> Result<Self, FieldError> {
        let program_id = required_text("card.program_id", program_id, 64)?;
        let design_key = optional_text("card.design_key", design_key, 64)?;
        let initial_load = match initial_load {
            None => None,
            Some((currency, amount)) => {
                let currency_raw = required_text("card.initial_load.currency", currency, 3)?;
                let currency = Currency::parse(&currency_raw).map_err(|_| {
                    FieldError::invalid("card.initial_load.currency", "must be a supported ISO 4217 currency")
                })?;
                let amount = crate::money::parse_amount_minor("card.initial_load.amount", amount)?;
                Some(Money::new(amount, currency))
            }
        };
        Ok(CardOrderRequest {
            program_id,
            design_key,
            initial_load,
        })
    }
}

/// A stored cardholder. The document number is held only sealed (`document_sealed`) plus its
/// last four digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cardholder {
    pub id: CardholderId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub custodian_uid: Option<String>,
    pub email: Email,
    pub phone: PhoneNumber,
    pub identity: Identity,
    pub document_type: DocumentType,
    pub document_last4: String,
    pub document_sealed: String,
    pub kyc: KycState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Optimistic-concurrency version, bumped on every update.
    pub version: i64,
}
