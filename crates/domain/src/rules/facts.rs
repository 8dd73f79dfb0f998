//! What rules can ask about an authorization. Each attribute is derived here and nowhere else,
//! so the live engine and a backtest see the same value for the same stored authorization.

use crate::authorization::Merchant;
use crate::time::Timestamp;

crate::wire_enum!(Attribute {
    Mcc => "mcc",
    MerchantCountry => "merchant_country",
    MerchantId => "merchant_id",
    MerchantName => "merchant_name",
    Currency => "currency",
    Amount => "amount",
    EntryMode => "entry_mode",
    CardAgeDays => "card_age_days",
    CardState => "card_state",
    CardholderKycStatus => "cardholder_kyc_status",
    HourOfDay => "hour_of_day",
    RiskScore => "risk_score",
    IsRecurring => "is_recurring",
});

/// One attribute's value for an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact<'a> {
    Text(&'a str),
    Integer(i64),
    Boolean(bool),
}

/// Entry modes that mean the card was not present (everything else is treated as present).
pub const CARD_NOT_PRESENT_ENTRY_MODES: &[&str] = &[
    "ecommerce",
    "keyed",
    "manual",
    "moto",
    "recurring",
    "credential_on_file",
    "card_not_present",
];

pub fn is_card_not_present(entry_mode: &str) -> bool {
    CARD_NOT_PRESENT_ENTRY_MODES.contains(&entry_mode)
}

/// A merchant-initiated repeat payment: the network marks it with entry mode `recurring` or
/// `credential_on_file`.
pub fn is_recurring(entry_mode: &str) -> bool {
    matches!(entry_mode, "recurring" | "credential_on_file")
}

#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub merchant: &'a Merchant,
    pub entry_mode: &'a str,
    pub card_created_at: Timestamp,
    pub card_state: &'a str,
    pub cardholder_kyc_status: &'a str,
    pub at: Timestamp,
    /// Minutes east of UTC for `hour_of_day` (the rule's `utc_offset`).
    pub utc_offset_minutes: i32,
    pub risk_score: i64,
}

impl Facts<'_> {
    /// Whole days since the card was created.
    pub fn card_age_days(&self) -> i64 {
        (self.at.as_micros() - self.card_created_at.as_micros()).div_euclid(86_400_000_000)
    }

    pub fn hour_of_day(&self) -> i64 {
        let local = self.at.unix_seconds() + i64::from(self.utc_offset_minutes) * 60;
        local.rem_euclid(86_400) / 3600
    }

    pub fn get(&self, attribute: Attribute) -> Fact<'_> {
        match attribute {
            Attribute::Mcc => Fact::Text(&self.merchant.mcc),
            Attribute::MerchantCountry => Fact::Text(&self.merchant.country),
            Attribute::MerchantId => Fact::Text(&self.merchant.id),
            Attribute::MerchantName => Fact::Text(&self.merchant.name),
            Attribute::Currency => Fact::Text(self.currency),
            Attribute::Amount => Fact::Integer(self.amount),
            Attribute::EntryMode => Fact::Text(self.entry_mode),
            Attribute::CardAgeDays => Fact::Integer(self.card_age_days()),
            Attribute::CardState => Fact::Text(self.card_state),
            Attribute::CardholderKycStatus => Fact::Text(self.cardholder_kyc_status),
            Attribute::HourOfDay => Fact::Integer(self.hour_of_day()),
            Attribute::RiskScore => Fact::Integer(self.risk_score),
            Attribute::IsRecurring => Fact::Boolean(is_recurring(self.entry_mode)),
        }
    }
}
