//! Card programs: what a tenant's cards are (network, BIN, currency, lifetime, form factors,
//! designs), how they are funded, their default controls and issuing rules.

use crate::controls::SpendLimit;
use crate::environment::Environment;
use crate::error::FieldError;
use crate::ids::{ProgramId, TenantId};
use crate::money::Currency;
use crate::time::Timestamp;

crate::wire_enum!(Network {
    Visa => "VISA",
    Mastercard => "MASTERCARD",
});

crate::wire_enum!(FundingModel {
    StoredBalance => "stored_balance",
    CustodianAuthority => "custodian_authority",
});

crate::wire_enum!(FormFactor {
    Virtual => "virtual",
    Physical => "physical",
});

crate::wire_enum!(ProgramStatus {
    Active => "active",
    Suspended => "suspended",
});

pub const CARD_LIFETIME_YEARS_MAX: u8 = 10;
pub const CUSTODIAN_DEADLINE_MS_DEFAULT: u32 = 1500;
pub const CUSTODIAN_DEADLINE_MS_MAX: u32 = 2000;

/// What decides when the custodian does not answer usably by the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandInPolicy {
    Decline,
    /// Approve authorizations up to this amount (minor units), decline above.
    ApproveUpTo(i64),
}

/// The custodian's balance-authority endpoint (Apto's "External Auth").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodianConfig {
    pub url: String,
    /// The signing secret, sealed by the vault.
    pub secret_sealed: String,
    pub deadline_ms: u32,
    pub stand_in: StandInPolicy,
}
pub const DESIGNS_MAX: usize = 50;

/// Merchant allow/block lists of a program. Empty allow lists allow everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchantRules {
    pub allowed_mccs: Vec<String>,
    pub blocked_mccs: Vec<String>,
    /// ISO 3166-1 alpha-3.
    pub allowed_countries: Vec<String>,
    pub blocked_countries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub id: ProgramId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    /// The tenant's own identifier (`Apto_GPR`), unique per tenant and environment.
    pub program_id: String,
    pub name: String,
    pub network: Network,
    /// 6 or 8 digits; every PAN of the program starts with it.
    pub bin: String,
    pub currency: Currency,
    pub card_lifetime_years: u8,
    pub form_factors: Vec<FormFactor>,
    pub design_keys: Vec<String>,
    pub funding_model: FundingModel,
    pub spend_controls: Vec<SpendLimit>,
    pub minimum_cardholder_age: u8,
    pub kyc_required: bool,
    pub merchant_rules: MerchantRules,
    /// Custodian-authority programs: where and how to ask for funds.
    pub custodian: Option<CustodianConfig>,
    pub status: ProgramStatus,
    /// Authorizations scoring at least this raise a risk alert (`rules::risk`).
    pub risk_alert_threshold: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub fn parse_program_ref(raw: Option<&str>) -> Result<String, FieldError> {
    let value = raw.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(FieldError::missing("program_id"));
    }
    if value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(FieldError::invalid("program_id", "1 to 64 letters, digits, `_` or `-`"));
    }
    Ok(value.to_owned())
}

/// A BIN valid for its network: Visa starts with 4; Mastercard with 51-55 or 2221-2720.
pub fn parse_bin(raw: Option<&str>, network: Network) -> Result<String, FieldError> {
    let bin = raw.ok_or_else(|| FieldError::missing("bin"))?;
    if !(bin.len() == 6 || bin.len() == 8) || !bin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::invalid("bin", "a BIN is 6 or 8 digits"));
    }
    let prefix2: u32 = bin[..2].parse().unwrap_or(0);
    let prefix4: u32 = bin[..4].parse().unwrap_or(0);
    let ok = match network {
        Network::Visa => bin.starts_with('4'),
        Network::Mastercard => (51..=55).contains(&prefix2) || (2221..=2720).contains(&prefix4),
    };
    if !ok {
        return Err(FieldError::invalid("bin", format!("not a {} BIN", network.as_str())));
    }
    Ok(bin.to_owned())
}

/// Two BIN ranges overlap when one is a prefix of the other.
pub fn bins_overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

pub fn parse_design_keys(raw: &[String]) -> Result<Vec<String>, FieldError> {
    if raw.is_empty() {
        return Err(FieldError::missing("design_keys"));
    }
    if raw.len() > DESIGNS_MAX {
        return Err(FieldError::invalid(
            "design_keys",
            format!("at most {DESIGNS_MAX} designs"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, key) in raw.iter().enumerate() {
        let param = format!("design_keys[{i}]");
        if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FieldError::invalid(param, "1 to 64 letters, digits, `_` or `-`"));
        }
        if out.contains(key) {
            return Err(FieldError::invalid(param, "duplicate design key"));
        }
        out.push(key.clone());
    }
    Ok(out)
}

/// Why a program refuses to issue a card to a cardholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueRefusal {
    #[error("the program is suspended")]
    ProgramSuspended,
    #[error("the program does not issue this form factor")]
    FormFactorNotAllowed,
    #[error("this program has no such design_key")]
    DesignUnknown,
    #[error("the program requires KYC to have passed")]
    KycNotPassed,
    #[error("the cardholder is younger than the program allows")]
    TooYoung,
    #[error("the initial load must be in the program's currency")]
    CurrencyMismatch,
}

impl IssueRefusal {
    pub fn code(self) -> &'static str {
        match self {
            IssueRefusal::ProgramSuspended => "program_suspended",
            IssueRefusal::FormFactorNotAllowed => "form_factor_not_allowed",
            IssueRefusal::DesignUnknown => "design_key_unknown",
            IssueRefusal::KycNotPassed => "kyc_not_passed",
            IssueRefusal::TooYoung => "cardholder_too_young",
            IssueRefusal::CurrencyMismatch => "currency_mismatch",
        }
    }

    /// The request field at fault, if one is.
    pub fn param(self) -> Option<&'static str> {
        match self {
            IssueRefusal::FormFactorNotAllowed => Some("form_factor"),
            IssueRefusal::DesignUnknown => Some("design_key"),
            IssueRefusal::CurrencyMismatch => Some("initial_load.currency"),
            IssueRefusal::ProgramSuspended | IssueRefusal::KycNotPassed | IssueRefusal::TooYoung => None,
        }
    }

    /// Whether the request itself is wrong (400) rather than the state of things (409).
    pub fn is_request_error(self) -> bool {
        self.param().is_some()
    }
}

impl Program {
    /// Checks that this program may issue a card with these properties to this cardholder, and
    /// picks the design (the requested one, or the program's first).
    pub fn check_issue(
        &self,
        kyc_passed: bool,
        cardholder_age_years: i32,
        form_factor: FormFactor,
        design_key: Option<&str>,
        load_currency: Option<Currency>,
    ) -> Result<String, IssueRefusal> {
        if self.status != ProgramStatus::Active {
            return Err(IssueRefusal::ProgramSuspended);
        }
        if !self.form_factors.contains(&form_factor) {
            return Err(IssueRefusal::FormFactorNotAllowed);
        }
        let design = match design_key {
            None => self.design_keys[0].clone(),
            Some(key) if self.design_keys.iter().any(|d| d == key) => key.to_owned(),
            Some(_) => return Err(IssueRefusal::DesignUnknown),
        };
        if load_currency.is_some_and(|c| c != self.currency) {
            return Err(IssueRefusal::CurrencyMismatch);
        }
        if self.kyc_required && !kyc_passed {
            return Err(IssueRefusal::KycNotPassed);
        }
        if cardholder_age_years < i32::from(self.minimum_cardholder_age) {
            return Err(IssueRefusal::TooYoung);
        }
        Ok(design)
    }

    /// Expiry month and year of a card issued at `now`.
    pub fn expiry_for(&self, now: Timestamp) -> (u8, u16) {
        let date = now.date();
        let year = u16::try_from(date.year()).unwrap_or(2000) + u16::from(self.card_lifetime_years);
        (u8::from(date.month()), year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_their_network() {
        assert!(parse_bin(Some("411111"), Network::Visa).is_ok());
        assert!(parse_bin(Some("41111122"), Network::Visa).is_ok());
        assert!(parse_bin(Some("511111"), Network::Visa).is_err());
        assert!(parse_bin(Some("222100"), Network::Mastercard).is_ok());
        assert!(parse_bin(Some("272099"), Network::Mastercard).is_ok());
        assert!(parse_bin(Some("272100"), Network::Mastercard).is_err());
        assert!(parse_bin(Some("4111"), Network::Visa).is_err());
        assert!(parse_bin(Some("4111111"), Network::Visa).is_err());
    }

    #[test]
    fn overlapping_bins_are_prefixes() {
        assert!(bins_overlap("411111", "41111122"));
        assert!(bins_overlap("41111122", "411111"));
        assert!(!bins_overlap("411111", "411112"));
        assert!(!bins_overlap("41111122", "41111123"));
    }
}
