//! A person's identity as a cardholder presents it (name, email, phone, date of birth, address,
//! identity document), parsed once at the edge into types that can only hold valid values. Both
//! `cardholder` and `kyc` build on it, so neither needs the other.

use std::fmt;

use crate::error::FieldError;

const NAME_LEN_MAX: usize = 100;
const EMAIL_LEN_MAX: usize = 254;
const STREET_LEN_MAX: usize = 200;
const CUSTODIAN_UID_LEN_MAX: usize = 255;
const AGE_YEARS_MAX: i32 = 130;

pub(crate) fn required_text(param: &str, raw: Option<&str>, len_max: usize) -> Result<String, FieldError> {
    let value = raw.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(FieldError::missing(param));
    }
    if value.chars().count() > len_max {
        return Err(FieldError::invalid(
            param,
            format!("must be at most {len_max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::invalid(param, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

pub(crate) fn optional_text(param: &str, raw: Option<&str>, len_max: usize) -> Result<Option<String>, FieldError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => required_text(param, Some(v), len_max).map(Some),
    }
}

pub fn parse_name(param: &str, raw: Option<&str>) -> Result<String, FieldError> {
    required_text(param, raw, NAME_LEN_MAX)
}

pub fn parse_custodian_uid(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    optional_text("custodian_uid", raw, CUSTODIAN_UID_LEN_MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: Option<&str>) -> Result<Self, FieldError> {
        let value = required_text("email", raw, EMAIL_LEN_MAX)?;
        let invalid = || FieldError::invalid("email", "must be an email address like pat@example.com");
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if local.is_empty() || value.contains(char::is_whitespace) || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Email(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.123 international notation (`+1 650 888 1111`), kept as E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    country_code_len: usize,
}

/// ITU calling codes are prefix-free: these are the one- and two-digit ones; all others have three.
const SHORT_CALLING_CODES: &[&str] = &[
    "1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
    "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
    "86", "90", "91", "92", "93", "94", "95", "98",
];

impl PhoneNumber {
    pub fn parse(raw: Option<&str>) -> Result<Self, FieldError> {
        let value = required_text("phone_number", raw, 32)?;
        let invalid = || {
            FieldError::invalid(
                "phone_number",
                "must be in E.123 international notation, like +16508881111",
            )
        };
        let rest = value.strip_prefix('+').ok_or_else(invalid)?;
        let digits: String = rest.chars().filter(|c| *c != ' ').collect();
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return Err(invalid());
        }
        let country_code_len = (1..=2)
            .find(|n| SHORT_CALLING_CODES.contains(&&digits[..*n]))
            .unwrap_or(3);
        Ok(PhoneNumber {
            e164: format!("+{digits}"),
            country_code_len,
        })
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The national significant number as an integer, the seed's `phone` field.
    pub fn national_number(&self) -> i64 {
        self.e164[1 + self.country_code_len..].parse().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateOfBirth(time::Date);

impl DateOfBirth {
    pub fn parse(raw: Option<&str>, today: time::Date, minimum_age_years: u8) -> Result<Self, FieldError> {
        let value = required_text("date_of_birth", raw, 10)?;
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(&value, &fmt)
            .map_err(|_| FieldError::invalid("date_of_birth", "must be a date formatted YYYY-MM-DD"))?;
        if date >= today {
            return Err(FieldError::invalid("date_of_birth", "must be in the past"));
        }
        let age = age_in_years(date, today);
        if age < i32::from(minimum_age_years) {
            return Err(FieldError::new(
                "date_of_birth",
                "cardholder_too_young",
                format!("cardholder must be at least {minimum_age_years} years old"),
            ));
        }
        if age > AGE_YEARS_MAX {
            return Err(FieldError::invalid("date_of_birth", "is implausibly far in the past"));
        }
        Ok(DateOfBirth(date))
    }

    pub fn from_date(date: time::Date) -> Self {
        DateOfBirth(date)
    }

    pub fn date(&self) -> time::Date {
        self.0
    }

    pub fn to_iso(&self) -> String {
        let d = self.0;
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    }
}

pub fn age_in_years(born: time::Date, today: time::Date) -> i32 {
    let had_birthday = (u8::from(today.month()), today.day()) >= (u8::from(born.month()), born.day());
    today.year() - born.year() - i32::from(!had_birthday)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub street_one: String,
    pub street_two: Option<String>,
    pub locality: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-3.
    pub country: String,
}

/// Raw address fields as they arrive; `Address::parse` validates them together.
#[derive(Debug, Clone, Default)]
pub struct AddressInput<'a> {
    pub street_one: Option<&'a str>,
    pub street_two: Option<&'a str>,
    pub locality: Option<&'a str>,
    pub region: Option<&'a str>,
    pub postal_code: Option<&'a str>,
    pub country: Option<&'a str>,
}

impl Address {
    pub fn parse(input: AddressInput<'_>) -> Result<Self, FieldError> {
        let street_one = required_text("address.street_one", input.street_one, STREET_LEN_MAX)?;
        let street_two = optional_text("address.street_two", input.street_two, STREET_LEN_MAX)?;
        for (param, line) in [
            ("address.street_one", Some(&street_one)),
            ("address.street_two", street_two.as_ref()),
        ] {
            if line.is_some_and(|l| is_po_box(l)) {
                return Err(FieldError::new(
                    param,
                    "address_po_box",
                    "P.O. boxes are not accepted: cards must be delivered to a street address",
                ));
            }
        }
        let locality = required_text("address.locality", input.locality, 100)?;
        let region = required_text("address.region", input.region, 100)?;
        let postal_code = required_text("address.postal_code", input.postal_code, 16)?;
        if !postal_code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        {
            return Err(FieldError::invalid(
                "address.postal_code",
                "may contain only letters, digits, spaces and dashes",
            ));
        }
        let country_raw = required_text("address.country", input.country, 3)?;
        let country = crate::country::normalize_country(&country_raw)
            .ok_or_else(|| FieldError::invalid("address.country", "must be an ISO 3166-1 country code, like USA"))?;
        if country == "USA" && !is_us_zip(&postal_code) {
            return Err(FieldError::invalid(
                "address.postal_code",
                "must be a US ZIP code (12345 or 12345-6789)",
            ));
        }
        Ok(Address {
            street_one,
            street_two,
            locality,
            region,
            postal_code,
            country: country.to_owned(),
        })
    }
}

fn is_us_zip(code: &str) -> bool {
    let b = code.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => digits(b),
        10 => digits(&b[..5]) && b[5] == b'-' && digits(&b[6..]),
        _ => false,
    }
}

/// Recognises "P.O. Box 12", "PO Box", "Post Office Box", "POB 12" in any case and punctuation.
pub fn is_po_box(line: &str) -> bool {
    let squashed: String = line
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let words: Vec<String> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .map(|w| {
            w.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    squashed.contains("pobox")
        || squashed.contains("postofficebox")
        || words.first().is_some_and(|w| w == "pob" || w == "box")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentType {
    Ssn,
    Itin,
    Passport,
    DriversLicense,
    NationalId,
}

impl DocumentType {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::Ssn => "ssn",
            DocumentType::Itin => "itin",
            DocumentType::Passport => "passport",
            DocumentType::DriversLicense => "drivers_license",
            DocumentType::NationalId => "national_id",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Ssn,
            Self::Itin,
            Self::Passport,
            Self::DriversLicense,
            Self::NationalId,
        ]
        .into_iter()
        .find(|t| t.as_str() == raw)
    }
}

/// A document number in clear. Masks itself in `Debug`/`Display` and is not `Serialize`: it only
/// leaves the process encrypted (at rest) or to the KYC provider.
#[derive(Clone, PartialEq, Eq)]
pub struct DocumentNumber(String);

impl DocumentNumber {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> String {
        let n = self.0.chars().count();
        self.0.chars().skip(n.saturating_sub(4)).collect()
    }
}

impl fmt::Debug for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentNumber(****{})", self.last4())
    }
}

impl fmt::Display for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "****{}", self.last4())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: DocumentType,
    pub number: DocumentNumber,
}

impl Document {
    pub fn parse(kind: Option<&str>, value: Option<&str>) -> Result<Self, FieldError> {
        let kind_raw = required_text("document.type", kind, 32)?;
        let kind = DocumentType::parse(&kind_raw).ok_or_else(|| {
            FieldError::invalid(
                "document.type",
                "must be one of ssn, itin, passport, drivers_license, national_id",
            )
        })?;
        let raw = required_text("document.value", value, 64)?;
        let number = match kind {
            DocumentType::Ssn | DocumentType::Itin => {
                let digits: String = raw.chars().filter(|c| *c != '-' && *c != ' ').collect();
                if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FieldError::invalid(
                        "document.value",
                        format!("an {} must be 9 digits", kind.as_str()),
                    ));
                }
                if kind == DocumentType::Itin && !digits.starts_with('9') {
                    return Err(FieldError::invalid("document.value", "an itin starts with 9"));
                }
                if kind == DocumentType::Ssn
                    && (digits.starts_with("000") || digits.starts_with("666") || digits.starts_with('9'))
                {
                    return Err(FieldError::invalid("document.value", "is not a valid ssn area number"));
                }
                digits
            }
            DocumentType::Passport | DocumentType::DriversLicense | DocumentType::NationalId => {
                let cleaned: String = raw
                    .chars()
                    .filter(|c| *c != ' ' && *c != '-')
                    .collect::<String>()
                    .to_ascii_uppercase();
                if !(5..=20).contains(&cleaned.len()) || !cleaned.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(FieldError::invalid(
                        "document.value",
                        "must be 5 to 20 letters and digits",
                    ));
                }
                cleaned
            }
        };
        Ok(Document {
            kind,
            number: DocumentNumber(number),
        })
    }
}

/// The identity a cardholder presents; everything KYC checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: DateOfBirth,
    pub address: Address,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> time::Date {
        time::macros::date!(2026 - 11 - 21)
    }

    #[test]
    fn phone_numbers_follow_e123() {
        let p = PhoneNumber::parse(Some("+1 650 888 1111")).unwrap();
        assert_eq!(p.e164(), "+16508881111");
        assert_eq!(p.national_number(), 6508881111);
        assert_eq!(
            PhoneNumber::parse(Some("+442071838750")).unwrap().national_number(),
            2071838750
        );
        assert_eq!(
            PhoneNumber::parse(Some("+35312345678")).unwrap().national_number(),
            12345678
        );
        for bad in ["6508881111", "+0650888", "+1650abc1111", "+1234", "+1234567890123456"] {
            assert_eq!(
                PhoneNumber::parse(Some(bad)).unwrap_err().param,
                "phone_number",
                "{bad}"
            );
        }
    }

    #[test]
    fn date_of_birth_must_be_past_and_old_enough() {
        assert!(DateOfBirth::parse(Some("1982-06-20"), today(), 18).is_ok());
        assert!(DateOfBirth::parse(Some("2008-11-21"), today(), 18).is_ok());
        assert_eq!(
            DateOfBirth::parse(Some("2008-11-22"), today(), 18).unwrap_err().code,
            "cardholder_too_young"
        );
        assert!(DateOfBirth::parse(Some("2030-01-01"), today(), 0).is_err());
        assert!(DateOfBirth::parse(Some("1982-02-30"), today(), 18).is_err());
        assert!(DateOfBirth::parse(Some("20-06-1982"), today(), 18).is_err());
        assert!(DateOfBirth::parse(Some("1850-01-01"), today(), 18).is_err());
    }

    #[test]
    fn po_boxes_are_recognised() {
        for po in [
            "P.O. Box 123",
            "PO BOX 9",
            "Post Office Box 1",
            "pob 77",
            "Box 12",
            "p o box 3",
        ] {
            assert!(is_po_box(po), "{po}");
        }
        for street in ["1800 Gates Ave", "12 Boxwood Lane", "5 Poboy Street"] {
            assert!(!is_po_box(street), "{street}");
        }
    }

    #[test]
    fn documents_are_validated_and_masked() {
        let d = Document::parse(Some("ssn"), Some("490-94-0000")).unwrap();
        assert_eq!(d.number.expose(), "490940000");
        assert_eq!(format!("{:?}", d.number), "DocumentNumber(****0000)");
        assert!(!format!("{d:?}").contains("490940000"));
        assert!(Document::parse(Some("ssn"), Some("12345678")).is_err());
        assert!(Document::parse(Some("ssn"), Some("666123456")).is_err());
        assert!(Document::parse(Some("itin"), Some("123456789")).is_err());
        assert!(Document::parse(Some("passport"), Some("X1234567")).is_ok());
        assert_eq!(
            Document::parse(Some("visa"), Some("1")).unwrap_err().param,
            "document.type"
        );
    }

    #[test]
    fn addresses_require_iso_country_and_reject_po_boxes() {
        let ok = AddressInput {
            street_one: Some("1800 Gates Ave"),
            street_two: Some("2L"),
            locality: Some("Ridgewood"),
            region: Some("NY"),
            postal_code: Some("11385"),
            country: Some("USA"),
        };
        assert_eq!(Address::parse(ok.clone()).unwrap().country, "USA");
        let po = AddressInput {
            street_one: Some("PO Box 5"),
            ..ok.clone()
        };
        assert_eq!(Address::parse(po).unwrap_err().param, "address.street_one");
        let bad_country = AddressInput {
            country: Some("ZZZ"),
            ..ok.clone()
        };
        assert_eq!(Address::parse(bad_country).unwrap_err().param, "address.country");
        let bad_zip = AddressInput {
            postal_code: Some("1138"),
            ..ok
        };
        assert_eq!(Address::parse(bad_zip).unwrap_err().param, "address.postal_code");
    }

    #[test]
    fn emails_are_checked() {
        assert!(Email::parse(Some("pat@wilson.com")).is_ok());
        for bad in [
            "pat",
            "pat@",
            "@wilson.com",
            "pat@wilson",
            "pat @wilson.com",
            "pat@wil..son.com",
        ] {
            assert!(Email::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
