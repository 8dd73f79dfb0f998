//! Spend and velocity control definitions: an amount limit and/or a count limit per window,
//! optionally only for some MCCs. Stored with programs now; enforced by the authorization engine.

use crate::error::FieldError;

pub const TRAILING_WINDOW_SECS_MIN: i64 = 10;
pub const TRAILING_WINDOW_SECS_MAX: i64 = 31 * 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    PerTransaction,
    Day,
    Week,
    Month,
    Year,
    Lifetime,
    /// The last N seconds.
    Trailing {
        secs: i64,
    },
}

impl Window {
    pub fn parse(param: &str, kind: Option<&str>, trailing_secs: Option<i64>) -> Result<Window, FieldError> {
        let kind = kind.ok_or_else(|| FieldError::missing(format!("{param}.window")))?;
        let window = match kind {
            "per_transaction" => Window::PerTransaction,
            "day" => Window::Day,
            "week" => Window::Week,
            "month" => Window::Month,
            "year" => Window::Year,
            "lifetime" => Window::Lifetime,
            "trailing" => {
                let secs = trailing_secs.ok_or_else(|| FieldError::missing(format!("{param}.window_secs")))?;
                if !(TRAILING_WINDOW_SECS_MIN..=TRAILING_WINDOW_SECS_MAX).contains(&secs) {
                    return Err(FieldError::invalid(
                        format!("{param}.window_secs"),
                        format!("must be from {TRAILING_WINDOW_SECS_MIN} s to 31 days"),
                    ));
                }
                Window::Trailing { secs }
            }
            _ => {
                return Err(FieldError::invalid(
                    format!("{param}.window"),
                    "must be per_transaction, day, week, month, year, lifetime or trailing",
                ));
            }
        };
        if trailing_secs.is_some() && !matches!(window, Window::Trailing { .. }) {
            return Err(FieldError::invalid(
                format!("{param}.window_secs"),
                "only applies to a trailing window",
            ));
        }
        Ok(window)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Window::PerTransaction => "per_transaction",
            Window::Day => "day",
            Window::Week => "week",
            Window::Month => "month",
            Window::Year => "year",
            Window::Lifetime => "lifetime",
            Window::Trailing { .. } => "trailing",
        }
    }

    pub fn trailing_secs(&self) -> Option<i64> {
        match self {
            Window::Trailing { secs } => Some(*secs),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendLimit {
    /// Minor units of the program currency.
    pub amount_limit: Option<i64>,
    pub count_limit: Option<i64>,
    pub window: Window,
    /// Only authorizations with these merchant category codes count; empty = all.
    pub mccs: Vec<String>,
}

pub fn parse_mcc(param: &str, raw: &str) -> Result<String, FieldError> {
    if raw.len() != 4 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::invalid(param, "an MCC is 4 digits"));
    }
    Ok(raw.to_owned())
}

impl SpendLimit {
    pub fn parse(
        param: &str,
        amount_limit: Option<i64>,
        count_limit: Option<i64>,
        window: Window,
        mccs: &[String],
    ) -> Result<SpendLimit, FieldError> {
        if amount_limit.is_none() && count_limit.is_none() {
            return Err(FieldError::missing(format!("{param}.amount_limit")));
        }
        if amount_limit.is_some_and(|a| a <= 0) {
            return Err(FieldError::invalid(
                format!("{param}.amount_limit"),
                "must be a positive number of minor units",
            ));
        }
        if count_limit.is_some_and(|c| c <= 0) {
            return Err(FieldError::invalid(format!("{param}.count_limit"), "must be positive"));
        }
        if window == Window::PerTransaction && count_limit.is_some() {
            return Err(FieldError::invalid(
                format!("{param}.count_limit"),
                "a per-transaction window has no count",
            ));
        }
        let mccs = mccs
            .iter()
            .enumerate()
            .map(|(i, m)| parse_mcc(&format!("{param}.mccs[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SpendLimit {
            amount_limit,
            count_limit,
            window,
            mccs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_limits_are_refused() {
        let day = Window::Day;
        assert!(SpendLimit::parse("c", None, None, day, &[]).is_err());
        assert_eq!(
            SpendLimit::parse("c", Some(0), None, day, &[]).unwrap_err().param,
            "c.amount_limit"
        );
        assert_eq!(
            SpendLimit::parse("c", None, Some(-1), day, &[]).unwrap_err().param,
            "c.count_limit"
        );
        assert!(SpendLimit::parse("c", Some(10), Some(1), Window::PerTransaction, &[]).is_err());
        assert_eq!(
            SpendLimit::parse("c", Some(10), None, day, &["54".into()])
                .unwrap_err()
                .param,
            "c.mccs[0]"
        );
        assert!(Window::parse("c", Some("trailing"), Some(5)).is_err());
        assert!(Window::parse("c", Some("trailing"), Some(3600)).is_ok());
        assert!(Window::parse("c", Some("day"), Some(3600)).is_err());
    }
}
