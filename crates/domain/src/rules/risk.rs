//! The built-in risk score: 0–999 per authorization, the sum of named factors (capped), each
//! computed from the card's risk profile as it stood before the authorization. The profile is
//! one small record per card, updated by every authorization attempt in the same batch
//! transaction as the hold.
//!
//! Factors (points):
//! - `attempts_10m`: authorization attempts on the card in the last 10 minutes beyond 2: +60
//!   each, at most +240;
//! - `declines_1h`: declined attempts in the last hour: +70 each, at most +280;
//! - `new_merchant`: the card has 3 or more approvals and none of its last 16 merchants is this
//!   one: +100;
//! - `country_change`: the merchant's country differs from the card's last one: +150;
//! - `amount_vs_usual`: the amount is over 3x the card's mean approved amount (3 or more
//!   approvals): +100; over 10x: +200;
//! - `card_testing`: small attempts (at most 200 minor units), this one included, in the last
//!   10 minutes: 3 or 4 → +150; 5 or more → +300, and the card-testing pattern is flagged.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

pub const SCORE_MAX: i64 = 999;
pub const SMALL_AMOUNT_MAX: i64 = 200;
pub const CARD_TESTING_SMALL_ATTEMPTS: i64 = 5;
const MERCHANTS_KEPT: usize = 16;
const COUNTRIES_KEPT: usize = 4;
const MINUTES_KEPT: i64 = 60;
/// A card-testing alert at most this often per card.
const TESTING_ALERT_EVERY_SECS: i64 = 3_600;

/// One minute of a card's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    /// Unix seconds of the minute's start.
    pub at: i64,
    pub attempts: i64,
    pub declines: i64,
    pub small: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskProfile {
    /// The last hour's minutes with activity, oldest first.
    pub minutes: Vec<Minute>,
    pub approved_count: i64,
    pub approved_sum: i64,
    /// Most recent first.
    pub merchants: Vec<String>,
    /// Most recent first.
    pub countries: Vec<String>,
    pub testing_alerted_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskFactor {
    pub factor: &'static str,
    pub value: i64,
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskScore {
    pub score: i64,
    pub factors: Vec<RiskFactor>,
    /// Many small attempts in a few minutes: someone is testing the card.
    pub card_testing: bool,
}

impl RiskScore {
    /// `412: declines_1h=2 (+140), new_merchant=1 (+100)` for the decision trace.
    pub fn describe(&self) -> String {
        if self.factors.is_empty() {
            return format!("{}: no factors", self.score);
        }
        let parts: Vec<String> = self
            .factors
            .iter()
            .map(|f| format!("{}={} (+{})", f.factor, f.value, f.points))
            .collect();
        format!("{}: {}", self.score, parts.join(", "))
    }
}

/// The authorization being scored.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub amount: i64,
    pub merchant_id: &'a str,
    pub country: &'a str,
    pub at: Timestamp,
}

impl RiskProfile {
    fn sum_since(&self, since: i64, f: impl Fn(&Minute) -> i64) -> i64 {
        self.minutes.iter().filter(|m| m.at >= since).map(f).sum()
    }

    pub fn score(&self, a: &Attempt<'_>) -> RiskScore {
        let now = a.at.unix_seconds();
        let mut factors = Vec::new();
        let mut add = |factor: &'static str, value: i64, points: i64| {
            if points > 0 {
                factors.push(RiskFactor { factor, value, points });
            }
        };
        let attempts = self.sum_since(now - 600, |m| m.attempts);
        add("attempts_10m", attempts, ((attempts - 2).max(0) * 60).min(240));
        let declines = self.sum_since(now - 3_600, |m| m.declines);
        add("declines_1h", declines, (declines * 70).min(280));
        let seasoned = self.approved_count >= 3;
        let new_merchant = seasoned && !self.merchants.iter().any(|m| m == a.merchant_id);
        add(
            "new_merchant",
            i64::from(new_merchant),
            if new_merchant { 100 } else { 0 },
        );
        let changed = self.countries.first().is_some_and(|c| c != a.country);
        add("country_change", i64::from(changed), if changed { 150 } else { 0 });
        if seasoned {
            let mean = self.approved_sum / self.approved_count;
            let points = if a.amount > mean.saturating_mul(10) {
                200
            } else if a.amount > mean.saturating_mul(3) {
                100
            } else {
                0
            };
            add("amount_vs_usual", mean, points);
        }
        let small = self.sum_since(now - 600, |m| m.small) + i64::from(a.amount <= SMALL_AMOUNT_MAX);
        let testing_points = match small {
            s if s >= CARD_TESTING_SMALL_ATTEMPTS => 300,
            3 | 4 => 150,
            _ => 0,
        };
        add("card_testing", small, testing_points);
        let score = factors.iter().map(|f| f.points).sum::<i64>().min(SCORE_MAX);
        RiskScore {
            score,
            factors,
            card_testing: small >= CARD_TESTING_SMALL_ATTEMPTS,
        }
    }

    /// Records the attempt with its outcome.
    pub fn observe(&mut self, a: &Attempt<'_>, approved: bool, approved_amount: i64) {
        let now = a.at.unix_seconds();
        let minute = now.div_euclid(60) * 60;
        self.minutes.retain(|m| m.at > minute - MINUTES_KEPT * 60);
        let small = i64::from(a.amount <= SMALL_AMOUNT_MAX);
        let declined = i64::from(!approved);
        match self.minutes.iter_mut().find(|m| m.at == minute) {
            Some(m) => {
                m.attempts += 1;
                m.declines += declined;
                m.small += small;
            }
            None => {
                self.minutes.push(Minute {
                    at: minute,
                    attempts: 1,
                    declines: declined,
                    small,
                });
                self.minutes.sort_by_key(|m| m.at);
            }
        }
        if approved {
            self.approved_count += 1;
            self.approved_sum = self.approved_sum.saturating_add(approved_amount);
            remember(&mut self.merchants, a.merchant_id, MERCHANTS_KEPT);
            remember(&mut self.countries, a.country, COUNTRIES_KEPT);
        }
    }

    /// Whether a card-testing alert is due now (and notes that it was raised).
    pub fn take_testing_alert(&mut self, at: Timestamp) -> bool {
        let now = at.unix_seconds();
        if self
            .testing_alerted_at
            .is_some_and(|t| now - t < TESTING_ALERT_EVERY_SECS)
        {
            return false;
        }
        self.testing_alerted_at = Some(now);
        true
    }
}

fn remember(list: &mut Vec<String>, value: &str, keep: usize) {
    list.retain(|v| v != value);
    list.insert(0, value.to_owned());
    list.truncate(keep);
}
