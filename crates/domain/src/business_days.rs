//! The US business-day calendar Regulation E deadlines count in: Monday to Friday, except the
//! federal holidays the Federal Reserve Banks close for. A holiday on a Sunday is observed the
//! next Monday; one on a Saturday is not moved (the Reserve Banks open the Friday before), as the
//! Federal Reserve's holiday schedule says. Deadlines fall at the end (23:59:59.999999 UTC) of the
//! business day they land on.

use time::{Date, Month, Weekday};

use crate::time::Timestamp;

/// The n-th `weekday` of a month (n from 1).
fn nth_weekday(year: i32, month: Month, weekday: Weekday, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let offset = (7 + weekday.number_days_from_monday() - first.weekday().number_days_from_monday()) % 7;
    first.checked_add(time::Duration::days(i64::from(offset) + 7 * i64::from(n - 1)))
}

fn last_weekday(year: i32, month: Month, weekday: Weekday) -> Option<Date> {
    let next_month_first = match month {
        Month::December => Date::from_calendar_date(year + 1, Month::January, 1),
        m => Date::from_calendar_date(year, m.next(), 1),
    }
    .ok()?;
    let mut day = next_month_first.previous_day()?;
    while day.weekday() != weekday {
        day = day.previous_day()?;
    }
    Some(day)
}

/// The federal holidays of a year as observed (Sunday ones on the Monday after).
pub fn federal_holidays(year: i32) -> Vec<Date> {
    let fixed = |month: Month, day: u8| {
        Date::from_calendar_date(year, month, day).ok().map(|d| {
            if d.weekday() == Weekday::Sunday {
                d.next_day().unwrap_or(d)
            } else {
                d
            }
        })
    };
    [
        fixed(Month::January, 1),                                 // New Year's Day
        nth_weekday(year, Month::January, Weekday::Monday, 3),    // Birthday of Martin Luther King, Jr.
        nth_weekday(year, Month::February, Weekday::Monday, 3),   // Washington's Birthday
        last_weekday(year, Month::May, Weekday::Monday),          // Memorial Day
        fixed(Month::June, 19),                                   // Juneteenth National Independence Day
        fixed(Month::July, 4),                                    // Independence Day
        nth_weekday(year, Month::September, Weekday::Monday, 1),  // Labor Day
        nth_weekday(year, Month::October, Weekday::Monday, 2),    // Columbus Day
        fixed(Month::November, 11),                               // Veterans Day
        nth_weekday(year, Month::November, Weekday::Thursday, 4), // Thanksgiving Day
        fixed(Month::December, 25),                               // Christmas Day
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn is_business_day(day: Date) -> bool {
    !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) && !federal_holidays(day.year()).contains(&day)
}

/// The day `n` business days after `day` (the day itself does not count, as Regulation E counts
/// "within 10 business days of receiving notice").
pub fn add_business_days(day: Date, n: u32) -> Date {
    let mut current = day;
    let mut left = n;
    while left > 0 {
        match current.next_day() {
            Some(next) => current = next,
            None => return current,
        }
        if is_business_day(current) {
            left -= 1;
        }
    }
    current
}

/// The last instant of a day (UTC).
pub fn end_of_day(day: Date) -> Timestamp {
    let next = day.next_day().unwrap_or(day);
    let midnight = next.midnight().assume_utc().unix_timestamp();
    Timestamp::from_micros(midnight.saturating_mul(1_000_000) - 1)
}

/// The end of the business day `n` business days after `at`.
pub fn business_days_after(at: Timestamp, n: u32) -> Timestamp {
    end_of_day(add_business_days(at.date(), n))
}

/// The end of the calendar day `n` days after `at`, moved forward to a business day if it is not
/// one (a deadline never falls on a day the institution is closed).
pub fn calendar_days_after(at: Timestamp, n: u32) -> Timestamp {
    let mut day = at
        .date()
        .checked_add(time::Duration::days(i64::from(n)))
        .unwrap_or(at.date());
    while !is_business_day(day) {
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    end_of_day(day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_federal_holidays_of_2026_and_2027_as_observed() {
        assert_eq!(
            federal_holidays(2026),
            vec![
                date!(2026 - 01 - 01),
                date!(2026 - 01 - 19),
                date!(2026 - 02 - 16),
                date!(2026 - 05 - 25),
                date!(2026 - 06 - 19),
                date!(2026 - 07 - 04), // a Saturday: not moved
                date!(2026 - 09 - 07),
                date!(2026 - 10 - 12),
                date!(2026 - 11 - 11),
                date!(2026 - 11 - 26),
                date!(2026 - 12 - 25),
            ]
        );
        let h2027 = federal_holidays(2027);
        assert!(
            h2027.contains(&date!(2027 - 07 - 05)),
            "July 4, 2027 is a Sunday: observed Monday"
        );
        assert!(!h2027.contains(&date!(2027 - 07 - 04)));
        assert!(h2027.contains(&date!(2027 - 06 - 19)), "a Saturday: not moved");
        assert!(h2027.contains(&date!(2027 - 12 - 25)), "a Saturday: not moved");
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        // Wednesday 2026-11-25, the day before Thanksgiving: +1 business day is Friday the 27th.
        assert_eq!(add_business_days(date!(2026 - 11 - 25), 1), date!(2026 - 11 - 27));
        // Friday + 1 is Monday.
        assert_eq!(add_business_days(date!(2026 - 11 - 27), 1), date!(2026 - 11 - 30));
        // Filed Saturday 2026-12-19: 10 business days skip two weekends and Christmas.
        assert_eq!(add_business_days(date!(2026 - 12 - 19), 10), date!(2027 - 01 - 05));
        assert!(
            !is_business_day(date!(2026 - 07 - 04)),
            "a Saturday holiday is still a Saturday"
        );
        assert!(is_business_day(date!(2026 - 07 - 03)), "the Friday before stays open");
        assert_eq!(add_business_days(date!(2026 - 12 - 02), 0), date!(2026 - 12 - 02));
    }

    #[test]
    fn calendar_deadlines_land_on_a_business_day_at_its_end() {
        let filed = end_of_day(date!(2026 - 10 - 27)).plus_secs(-3600);
        // 45 days after 2026-10-27 is 2026-12-11 (a Friday).
        assert_eq!(calendar_days_after(filed, 45), end_of_day(date!(2026 - 12 - 11)));
        // 40 days after 2026-10-27 is Sunday 2026-12-06: moved to Monday the 7th.
        assert_eq!(calendar_days_after(filed, 40), end_of_day(date!(2026 - 12 - 07)));
        assert_eq!(
            end_of_day(date!(2026 - 12 - 07)).to_rfc3339(),
            "2026-12-07T23:59:59.999Z"
        );
    }
}
