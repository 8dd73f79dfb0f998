//! Money is an integer number of minor units plus a currency. No floats anywhere; every
//! arithmetic operation is checked and returns a `Result`.

use std::fmt;

use crate::error::FieldError;

/// The largest amount one request may move, and the largest balance (in either direction) any
/// ledger account may hold, in minor units: 10^15, ten trillion dollars in cents. It sits far
/// below `i64::MAX` (about 9.2 × 10^18) so that a balance plus any accepted amount can never
/// overflow an `i64`, in Rust or in either database (SQLite would silently turn the sum into a
/// float; PostgreSQL would fail the statement). A request over it is refused when it is parsed
/// (`amount_too_large`); a posting that would take a balance past it is refused before it is
/// written (`balance_limit_exceeded`, see `ledger::balance_after`).
pub const BALANCE_MAX_MINOR: i64 = 1_000_000_000_000_000;

/// The largest amount a single request or ledger entry may carry: the balance maximum, since no
/// account could receive more.
pub const AMOUNT_MAX_MINOR: i64 = BALANCE_MAX_MINOR;

/// The error code of an amount over `AMOUNT_MAX_MINOR` (400, naming the field).
pub const AMOUNT_TOO_LARGE: &str = "amount_too_large";

/// Parses a request amount in minor units: present, positive, at most `AMOUNT_MAX_MINOR`. `param`
/// names the field in the error (`amount`, `initial_load.amount`).
pub fn parse_amount_minor(param: &str, raw: Option<i64>) -> Result<i64, FieldError> {
    match raw {
        None => Err(FieldError::missing(param)),
        Some(a) if a <= 0 => Err(FieldError::invalid(
            param,
            "must be a positive integer number of minor units",
        )),
        Some(a) if a > AMOUNT_MAX_MINOR => Err(too_large(param)),
        Some(a) => Ok(a),
    }
}

/// Checks an optional limit-like amount (a spend limit, a stand-in amount): positive and at most
/// `AMOUNT_MAX_MINOR` when present.
pub fn check_amount_limit(param: &str, raw: Option<i64>) -> Result<Option<i64>, FieldError> {
    raw.map(|a| parse_amount_minor(param, Some(a))).transpose()
}

fn too_large(param: &str) -> FieldError {
    FieldError::new(
        param,
        AMOUNT_TOO_LARGE,
        format!("must be at most {AMOUNT_MAX_MINOR} minor units"),
    )
}

/// ISO 4217 currencies Cardplane supports, with their minor-unit exponent.
const CURRENCIES: &[(&str, u8)] = &[
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("BHD", 3),
    ("MXN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TRY", 2),
    ("USD", 2),
    ("ZAR", 2),
];

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unsupported currency")]
    UnsupportedCurrency,
    #[error("currencies differ")]
    CurrencyMismatch,
    #[error("amount overflows")]
    Overflow,
    #[error("amount must be positive")]
    NotPositive,
    #[error("amount exceeds the maximum of {AMOUNT_MAX_MINOR} minor units")]
    TooLarge,
}

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, MoneyError> {
        let upper = raw.to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|(c, e)| {
                let b = c.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *e,
                }
            })
            .ok_or(MoneyError::UnsupportedCurrency)
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// A strictly positive amount no larger than `AMOUNT_MAX_MINOR`, as loads, fundings and
    /// adjustments require.
    pub fn positive(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        if minor > AMOUNT_MAX_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self { minor, currency })
    }

    /// Parses a request's amount and currency into money, naming `param` (`""` or a prefix such
    /// as `initial_load.`) plus the field in errors.
    pub fn parse(param: &str, currency: Option<&str>, amount: Option<i64>) -> Result<Money, FieldError> {
        let currency = currency.ok_or_else(|| FieldError::missing(format!("{param}currency")))?;
        let currency = Currency::parse(currency)
            .map_err(|_| FieldError::invalid(format!("{param}currency"), "must be a supported ISO 4217 currency"))?;
        let minor = parse_amount_minor(&format!("{param}amount"), amount)?;
        Ok(Money { minor, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked_and_currency_aware() {
        let usd = Currency::parse("usd").unwrap();
        let eur = Currency::parse("EUR").unwrap();
        let a = Money::new(i64::MAX, usd);
        assert_eq!(a.checked_add(Money::new(1, usd)), Err(MoneyError::Overflow));
        assert_eq!(
            Money::new(1, usd).checked_add(Money::new(1, eur)),
            Err(MoneyError::CurrencyMismatch)
        );
        assert_eq!(Money::new(5, usd).checked_sub(Money::new(7, usd)).unwrap().minor(), -2);
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert!(Currency::parse("XXX").is_err());
        assert!(Money::positive(0, usd).is_err());
    }

    #[test]
    fn amounts_are_capped_at_the_maximum_when_parsed() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(
            Money::positive(AMOUNT_MAX_MINOR, usd).unwrap().minor(),
            AMOUNT_MAX_MINOR
        );
        assert_eq!(Money::positive(AMOUNT_MAX_MINOR + 1, usd), Err(MoneyError::TooLarge));
        assert_eq!(Money::positive(i64::MAX, usd), Err(MoneyError::TooLarge));
        assert_eq!(
            parse_amount_minor("amount", Some(AMOUNT_MAX_MINOR)),
            Ok(AMOUNT_MAX_MINOR)
        );
        let err = parse_amount_minor("initial_load.amount", Some(i64::MAX)).unwrap_err();
        assert_eq!(
            (err.param.as_str(), err.code),
            ("initial_load.amount", AMOUNT_TOO_LARGE)
        );
        let err = parse_amount_minor("amount", Some(0)).unwrap_err();
        assert_eq!((err.param.as_str(), err.code), ("amount", "parameter_invalid"));
        assert_eq!(
            parse_amount_minor("amount", None).unwrap_err().code,
            "parameter_missing"
        );
        let err = Money::parse("", Some("USD"), Some(AMOUNT_MAX_MINOR + 1)).unwrap_err();
        assert_eq!((err.param.as_str(), err.code), ("amount", AMOUNT_TOO_LARGE));
        assert_eq!(
            Money::parse("x.", Some("XXX"), Some(1)).unwrap_err().param,
            "x.currency"
        );
        assert_eq!(check_amount_limit("limit", None), Ok(None));
        assert_eq!(
            check_amount_limit("limit", Some(-1)).unwrap_err().code,
            "parameter_invalid"
        );
        // The maximum leaves room: a balance at the maximum plus the largest amount still fits.
        assert!(BALANCE_MAX_MINOR.checked_add(AMOUNT_MAX_MINOR).is_some());
        assert!((-BALANCE_MAX_MINOR).checked_sub(AMOUNT_MAX_MINOR).is_some());
    }
}
