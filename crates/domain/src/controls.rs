//! Spend and velocity control definitions: an amount limit and/or a count limit per window,
//! optionally only for some MCCs. Stored with programs now; enforced by the authorization engine.

use crate::environment::Environment;
use crate::error::FieldError;
use crate::ids::{CardId, CardholderId, ProgramId, SpendControlId, TenantId};
use crate::time::Timestamp;

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

fn at_midnight(date: time::Date) -> Timestamp {
    let secs = date.midnight().assume_utc().unix_timestamp();
    Timestamp::from_micros(secs.saturating_mul(1_000_000))
}

impl Window {
    /// Where the current window began (UTC calendar windows), `None` for per-transaction limits.
    pub fn start(&self, now: Timestamp) -> Option<Timestamp> {
        let today = now.date();
        match self {
            Window::PerTransaction => None,
            Window::Day => Some(at_midnight(today)),
            Window::Week => Some(at_midnight(
                today - time::Duration::days(i64::from(today.weekday().number_days_from_monday())),
            )),
            Window::Month => Some(at_midnight(today.replace_day(1).unwrap_or(today))),
            Window::Year => Some(at_midnight(
                time::Date::from_calendar_date(today.year(), time::Month::January, 1).unwrap_or(today),
            )),
            Window::Lifetime => Some(Timestamp::from_micros(0)),
            Window::Trailing { secs } => Some(now.plus_secs(-secs)),
        }
    }

    /// When the used amount next drops: the next calendar boundary, or for a trailing window
    /// when its oldest counted authorization falls out. `None`: never (lifetime, per-transaction).
    pub fn renews_at(&self, now: Timestamp, oldest_counted: Option<Timestamp>) -> Option<Timestamp> {
        let today = now.date();
        match self {
            Window::PerTransaction | Window::Lifetime => None,
            Window::Day => today.next_day().map(at_midnight),
            Window::Week => {
                let days = 7 - i64::from(today.weekday().number_days_from_monday());
                Some(at_midnight(today + time::Duration::days(days)))
            }
            Window::Month => {
                let first = today.replace_day(1).unwrap_or(today);
                let next = if first.month() == time::Month::December {
                    time::Date::from_calendar_date(first.year() + 1, time::Month::January, 1)
                } else {
                    time::Date::from_calendar_date(first.year(), first.month().next(), 1)
                };
                next.ok().map(at_midnight)
            }
            Window::Year => time::Date::from_calendar_date(today.year() + 1, time::Month::January, 1)
                .ok()
                .map(at_midnight),
            Window::Trailing { secs } => oldest_counted.map(|t| t.plus_secs(*secs)),
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

crate::wire_enum!(ControlScopeKind {
    Card => "card",
    Cardholder => "cardholder",
    Program => "program",
});

/// Where a spend control counts usage: one card, all of a cardholder's cards, all of a program's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ControlScope {
    Card(CardId),
    Cardholder(CardholderId),
    Program(ProgramId),
}

impl ControlScope {
    pub fn id(&self) -> &str {
        match self {
            ControlScope::Card(id) => id.as_str(),
            ControlScope::Cardholder(id) => id.as_str(),
            ControlScope::Program(id) => id.as_str(),
        }
    }

    pub fn kind(&self) -> ControlScopeKind {
        match self {
            ControlScope::Card(_) => ControlScopeKind::Card,
            ControlScope::Cardholder(_) => ControlScopeKind::Cardholder,
            ControlScope::Program(_) => ControlScopeKind::Program,
        }
    }
}

/// A tenant's spend control on one card, cardholder or program (beside the program's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendControl {
    pub id: SpendControlId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub scope_kind: ControlScopeKind,
    /// The card, cardholder or (internal) program id.
    pub scope_id: String,
    pub limit: SpendLimit,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
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
        let amount_limit = crate::money::check_amount_limit(&format!("{param}.amount_limit"), amount_limit)?;
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

    fn at(rfc3339: &str) -> Timestamp {
        let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
        Timestamp::from_micros(i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap())
    }

    #[test]
    fn calendar_windows_start_and_renew_at_utc_boundaries() {
        let now = at("2026-11-21T15:30:00Z"); // a Saturday
        assert_eq!(Window::Day.start(now), Some(at("2026-11-21T00:00:00Z")));
        assert_eq!(Window::Day.renews_at(now, None), Some(at("2026-11-22T00:00:00Z")));
        assert_eq!(Window::Week.start(now), Some(at("2026-11-16T00:00:00Z")));
        assert_eq!(Window::Week.renews_at(now, None), Some(at("2026-11-23T00:00:00Z")));
        assert_eq!(Window::Month.start(now), Some(at("2026-11-01T00:00:00Z")));
        assert_eq!(Window::Month.renews_at(now, None), Some(at("2026-12-01T00:00:00Z")));
        assert_eq!(
            Window::Month.renews_at(at("2026-12-31T23:59:59Z"), None),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(Window::Year.start(now), Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(Window::Year.renews_at(now, None), Some(at("2027-01-01T00:00:00Z")));
        assert_eq!(Window::Lifetime.renews_at(now, None), None);
        assert_eq!(Window::PerTransaction.start(now), None);
        // The last microsecond of a day is still that day; the next one starts the next window.
        let last = at("2026-11-21T23:59:59Z").plus_secs(0);
        assert_eq!(Window::Day.start(last), Some(at("2026-11-21T00:00:00Z")));
        assert_eq!(Window::Day.start(last.plus_secs(1)), Some(at("2026-11-22T00:00:00Z")));
    }

    #[test]
    fn trailing_windows_slide() {
        let now = at("2026-11-21T15:30:00Z");
        let w = Window::Trailing { secs: 3600 };
        assert_eq!(w.start(now), Some(at("2026-11-21T14:30:00Z")));
        assert_eq!(
            w.renews_at(now, Some(at("2026-11-21T15:00:00Z"))),
            Some(at("2026-11-21T16:00:00Z"))
        );
        assert_eq!(w.renews_at(now, None), None);
    }

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
