//! The authorization decision: a pure function from what is known about the card, its program,
//! its spend controls and its funds to approve/decline, the ISO 8583-style response code, the
//! reason and a trace of every check. No I/O: the store gathers the inputs under the right locks
//! and writes the outcome.

use serde::Serialize;

use crate::card::{Card, CardState};
use crate::controls::{SpendLimit, Window};
use crate::money::Currency;
use crate::program::{MerchantRules, Program, ProgramStatus};
use crate::time::Timestamp;

crate::wire_enum!(ResponseCode {
    Approved => "00",
    DoNotHonor => "05",
    PartialApproval => "10",
    InvalidTransaction => "12",
    InvalidAmount => "13",
    InvalidCard => "14",
    UnableToLocate => "25",
    InsufficientFunds => "51",
    ExpiredCard => "54",
    NotPermitted => "57",
    SuspectedFraud => "59",
    AmountLimit => "61",
    RestrictedCard => "62",
    CountLimit => "65",
    IssuerUnavailable => "91",
});

crate::wire_enum!(DeclineReason {
    CardNotFound => "card_not_found",
    ExpirationMismatch => "expiration_mismatch",
    CardExpired => "card_expired",
    CardNotActivated => "card_not_activated",
    CardFrozen => "card_frozen",
    CardCancelled => "card_cancelled",
    ProgramSuspended => "program_suspended",
    CurrencyMismatch => "currency_mismatch",
    SpendLimit => "spend_limit_exceeded",
    VelocityLimit => "velocity_limit_exceeded",
    MccBlocked => "mcc_blocked",
    CountryBlocked => "country_blocked",
    InsufficientFunds => "insufficient_funds",
    CustodianDeclined => "custodian_declined",
    CustodianUnavailable => "custodian_unavailable",
    OriginalNotFound => "original_not_found",
    OriginalNotPending => "original_not_pending",
    BalanceLimit => "balance_limit_exceeded",
    AuthorizationRule => "authorization_rule",
});

impl DeclineReason {
    pub fn response_code(self) -> ResponseCode {
        match self {
            DeclineReason::CardNotFound | DeclineReason::ExpirationMismatch | DeclineReason::CardCancelled => {
                ResponseCode::InvalidCard
            }
            DeclineReason::CardExpired => ResponseCode::ExpiredCard,
            DeclineReason::CardNotActivated | DeclineReason::MccBlocked | DeclineReason::CountryBlocked => {
                ResponseCode::NotPermitted
            }
            DeclineReason::CardFrozen => ResponseCode::RestrictedCard,
            DeclineReason::ProgramSuspended | DeclineReason::CurrencyMismatch | DeclineReason::CustodianDeclined => {
                ResponseCode::DoNotHonor
            }
            DeclineReason::SpendLimit => ResponseCode::AmountLimit,
            DeclineReason::VelocityLimit => ResponseCode::CountLimit,
            DeclineReason::InsufficientFunds => ResponseCode::InsufficientFunds,
            DeclineReason::CustodianUnavailable => ResponseCode::IssuerUnavailable,
            DeclineReason::OriginalNotFound => ResponseCode::UnableToLocate,
            DeclineReason::OriginalNotPending => ResponseCode::InvalidTransaction,
            DeclineReason::BalanceLimit => ResponseCode::InvalidAmount,
            // The rule's own code is answered; this is its default.
            DeclineReason::AuthorizationRule => ResponseCode::SuspectedFraud,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub mcc: String,
    /// ISO 3166-1 alpha-3.
    pub country: String,
    pub city: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub amount: i64,
    pub currency: Currency,
    pub merchant: Merchant,
    pub partial_approval_supported: bool,
}

/// A spend control as it applies to one authorization, with what it has used in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUsage {
    pub control_id: String,
    pub limit: SpendLimit,
    pub used_amount: i64,
    pub used_count: i64,
}

impl ControlUsage {
    pub fn applies_to(&self, mcc: &str) -> bool {
        self.limit.mccs.is_empty() || self.limit.mccs.iter().any(|m| m == mcc)
    }
}

/// What the funds step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Funds {
    /// Stored-balance programs: what the card may spend now.
    Stored { spendable: i64 },
    /// Custodian-authority programs: the custodian's answer, or the stand-in policy's.
    Custodian(CustodianVerdict),
    /// Checks before the funds step only (used before asking a custodian).
    NotYetChecked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustodianVerdict {
    Approved {
        amount: i64,
    },
    Declined,
    /// The custodian did not answer usably in time: the program's stand-in policy decided.
    StandIn {
        approve_up_to: Option<i64>,
    },
}

pub struct DecisionInput<'a> {
    pub card: Option<&'a Card>,
    pub expiration_matches: bool,
    pub program: Option<&'a Program>,
    pub merchant_rules: &'a MerchantRules,
    pub controls: &'a [ControlUsage],
    pub request: &'a AuthorizationRequest,
    pub funds: Funds,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    pub check: &'static str,
    /// pass, fail or skipped.
    pub result: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub approved: bool,
    pub approved_amount: i64,
    pub response_code: ResponseCode,
    pub reason: Option<DeclineReason>,
    pub stand_in: bool,
    pub trace: Vec<TraceStep>,
}

/// The last day of the expiry month has passed.
pub fn is_expired(exp_month: u8, exp_year: u16, now: Timestamp) -> bool {
    let today = now.date();
    let (y, m) = (i32::from(exp_year), u8::from(today.month()));
    today.year() > y || (today.year() == y && m > exp_month)
}

struct Trace(Vec<TraceStep>);

impl Trace {
    fn pass(&mut self, check: &'static str, detail: String) {
        self.0.push(TraceStep {
            check,
            result: "pass",
            detail,
        });
    }

    fn decline(mut self, check: &'static str, detail: String, reason: DeclineReason) -> Decision {
        self.0.push(TraceStep {
            check,
            result: "fail",
            detail,
        });
        for rest in CHECKS.iter().skip_while(|c| **c != check).skip(1) {
            self.0.push(TraceStep {
                check: rest,
                result: "skipped",
                detail: String::new(),
            });
        }
        Decision {
            approved: false,
            approved_amount: 0,
            response_code: reason.response_code(),
            reason: Some(reason),
            stand_in: false,
            trace: self.0,
        }
    }
}

const CHECKS: [&str; 6] = [
    "card",
    "card_state",
    "program",
    "spend_controls",
    "merchant_rules",
    "funds",
];

fn window_label(limit: &SpendLimit) -> String {
    match limit.window {
        Window::Trailing { secs } => format!("trailing {secs}s"),
        w => w.as_str().to_owned(),
    }
}

/// The decision pipeline, in order: card, card state, program, spend controls, merchant rules,
/// funds. The first failing check declines; every check is traced.
// Long on purpose: the order of the checks is the rule, so they read top to bottom in one
// place, each a few lines with its trace step.
pub fn decide(input: &DecisionInput<'_>) -> Decision {
    let mut trace = Trace(Vec::new());
    let req = input.request;
    let Some(card) = input.card else {
        return trace.decline("card", "no card has this PAN".into(), DeclineReason::CardNotFound);
    };
    if !input.expiration_matches {
        return trace.decline(
            "card",
            "expiration does not match the card".into(),
            DeclineReason::ExpirationMismatch,
        );
    }
    if is_expired(card.exp_month, card.exp_year, input.now) {
        return trace.decline(
            "card",
            format!("expired {}", card.expiration()),
            DeclineReason::CardExpired,
        );
    }
    trace.pass("card", format!("card {} expires {}", card.id, card.expiration()));
    match card.state {
        CardState::Active => trace.pass("card_state", "ACTIVE".into()),
        CardState::Created => return trace.decline("card_state", "CREATED".into(), DeclineReason::CardNotActivated),
        CardState::Inactive => return trace.decline("card_state", "INACTIVE".into(), DeclineReason::CardFrozen),
        CardState::Cancelled => return trace.decline("card_state", "CANCELLED".into(), DeclineReason::CardCancelled),
    }
    let Some(program) = input.program else {
        return trace.decline("program", "program missing".into(), DeclineReason::ProgramSuspended);
    };
    if program.status != ProgramStatus::Active {
        return trace.decline(
            "program",
            format!("{} is suspended", program.program_id),
            DeclineReason::ProgramSuspended,
        );
    }
    if req.currency != program.currency {
        return trace.decline(
            "program",
            format!("{} requested, program is in {}", req.currency, program.currency),
            DeclineReason::CurrencyMismatch,
        );
    }
    trace.pass("program", format!("{} active", program.program_id));

    let mut checked = Vec::new();
    for c in input.controls.iter().filter(|c| c.applies_to(&req.merchant.mcc)) {
        let label = window_label(&c.limit);
        if let Some(limit) = c.limit.amount_limit {
            let would_be = if c.limit.window == Window::PerTransaction {
                req.amount
            } else {
                c.used_amount.saturating_add(req.amount)
            };
            if would_be > limit {
                return trace.decline(
                    "spend_controls",
                    format!(
                        "{}: amount {would_be} would exceed {limit} per {label} (used {})",
                        c.control_id, c.used_amount
                    ),
                    DeclineReason::SpendLimit,
                );
            }
        }
        if let Some(limit) = c.limit.count_limit
            && c.used_count + 1 > limit
        {
            return trace.decline(
                "spend_controls",
                format!(
                    "{}: {} authorizations would exceed {limit} per {label}",
                    c.control_id,
                    c.used_count + 1
                ),
                DeclineReason::VelocityLimit,
            );
        }
        checked.push(format!("{} ok ({label})", c.control_id));
    }
    trace.pass(
        "spend_controls",
        if checked.is_empty() {
            "none apply".into()
        } else {
            checked.join("; ")
        },
    );

    let rules = input.merchant_rules;
    let mcc = &req.merchant.mcc;
    if rules.blocked_mccs.contains(mcc) || (!rules.allowed_mccs.is_empty() && !rules.allowed_mccs.contains(mcc)) {
        return trace.decline(
            "merchant_rules",
            format!("MCC {mcc} is not allowed"),
            DeclineReason::MccBlocked,
        );
    }
    let country = &req.merchant.country;
    if rules.blocked_countries.contains(country)
        || (!rules.allowed_countries.is_empty() && !rules.allowed_countries.contains(country))
    {
        return trace.decline(
            "merchant_rules",
            format!("country {country} is not allowed"),
            DeclineReason::CountryBlocked,
        );
    }
    trace.pass("merchant_rules", format!("MCC {mcc}, country {country}"));

    let (available, stand_in) = match input.funds {
        Funds::NotYetChecked => {
            trace.0.push(TraceStep {
                check: "funds",
                result: "skipped",
                detail: "not checked yet".into(),
            });
            return Decision {
                approved: true,
                approved_amount: req.amount,
                response_code: ResponseCode::Approved,
                reason: None,
                stand_in: false,
                trace: trace.0,
            };
        }
        Funds::Stored { spendable } => (spendable, false),
        Funds::Custodian(CustodianVerdict::Approved { amount }) => (amount, false),
        Funds::Custodian(CustodianVerdict::Declined) => {
            return trace.decline(
                "funds",
                "the custodian declined".into(),
                DeclineReason::CustodianDeclined,
            );
        }
        Funds::Custodian(CustodianVerdict::StandIn { approve_up_to: None }) => {
            let mut d = trace.decline(
                "funds",
                "custodian unavailable; stand-in policy declines".into(),
                DeclineReason::CustodianUnavailable,
            );
            d.stand_in = true;
            return d;
        }
        Funds::Custodian(CustodianVerdict::StandIn {
            approve_up_to: Some(cap),
        }) => (cap, true),
    };
    let source = if stand_in {
        "stand-in limit"
    } else if matches!(input.funds, Funds::Stored { .. }) {
        "spendable"
    } else {
        "custodian approved"
    };
    if available >= req.amount {
        trace.pass("funds", format!("{source} {available} covers {}", req.amount));
        return Decision {
            approved: true,
            approved_amount: req.amount,
            response_code: ResponseCode::Approved,
            reason: None,
            stand_in,
            trace: trace.0,
        };
    }
    if req.partial_approval_supported && available > 0 {
        trace.pass(
            "funds",
            format!("{source} {available} < {}: partial approval", req.amount),
        );
        return Decision {
            approved: true,
            approved_amount: available,
            response_code: ResponseCode::PartialApproval,
            reason: None,
            stand_in,
            trace: trace.0,
        };
    }
    let mut d = trace.decline(
        "funds",
        format!("{source} {available} < {}", req.amount),
        DeclineReason::InsufficientFunds,
    );
    d.stand_in = stand_in;
    d
}

/// How long a hold lives before it expires: 7 days, 31 for lodging and car rental.
pub fn hold_ttl_secs(mcc: &str) -> i64 {
    const DAY: i64 = 86_400;
    if is_lodging_or_car_rental(mcc) {
        31 * DAY
    } else {
        7 * DAY
    }
}

fn is_lodging_or_car_rental(mcc: &str) -> bool {
    let n: u16 = mcc.parse().unwrap_or(0);
    matches!(n, 3351..=3441 | 3501..=3999 | 7011 | 7512 | 7513 | 7519)
}

/// Over-capture tolerance in percent: restaurants 20%, lodging and car rental 15%, else none.
pub fn over_capture_tolerance_pct(mcc: &str) -> i64 {
    match mcc {
        "5812" | "5813" | "5814" => 20,
        _ if is_lodging_or_car_rental(mcc) => 15,
        _ => 0,
    }
}

/// The most a hold of `authorized` may be cleared for at this MCC.
pub fn clearing_cap(authorized: i64, mcc: &str) -> i64 {
    authorized.saturating_add(authorized.saturating_mul(over_capture_tolerance_pct(mcc)) / 100)
}

crate::wire_enum!(TransactionState {
    Pending => "PENDING",
    Declined => "DECLINED",
    Complete => "COMPLETE",
    Reversed => "REVERSED",
    Expired => "EXPIRED",
});

crate::wire_enum!(TransactionKind {
    Authorization => "authorization",
    ForcePost => "force_post",
    Refund => "refund",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decline_reason_has_its_response_code() {
        let expected = [
            ("card_not_found", "14"),
            ("expiration_mismatch", "14"),
            ("card_expired", "54"),
            ("card_not_activated", "57"),
            ("card_frozen", "62"),
            ("card_cancelled", "14"),
            ("program_suspended", "05"),
            ("currency_mismatch", "05"),
            ("spend_limit_exceeded", "61"),
            ("velocity_limit_exceeded", "65"),
            ("mcc_blocked", "57"),
            ("country_blocked", "57"),
            ("insufficient_funds", "51"),
            ("custodian_declined", "05"),
            ("custodian_unavailable", "91"),
            ("original_not_found", "25"),
            ("original_not_pending", "12"),
            ("balance_limit_exceeded", "13"),
            ("authorization_rule", "59"),
        ];
        for reason in DeclineReason::ALL {
            let code = expected
                .iter()
                .find(|(r, _)| *r == reason.as_str())
                .expect("every reason listed")
                .1;
            assert_eq!(reason.response_code().as_str(), code, "{reason:?}");
        }
    }

    #[test]
    fn expiry_is_the_end_of_the_month() {
        let nov_30 = Timestamp::from_micros(1_796_083_199_000_000); // 2026-11-30T23:59:59Z
        let dec_1 = Timestamp::from_micros(1_796_083_200_000_000);
        assert!(!is_expired(11, 2026, nov_30));
        assert!(is_expired(11, 2026, dec_1));
        assert!(!is_expired(1, 2027, dec_1));
    }

    #[test]
    fn holds_and_tolerances_follow_the_mcc() {
        assert_eq!(hold_ttl_secs("5411"), 7 * 86_400);
        assert_eq!(hold_ttl_secs("7011"), 31 * 86_400);
        assert_eq!(hold_ttl_secs("3400"), 31 * 86_400);
        assert_eq!(clearing_cap(1000, "5812"), 1200);
        assert_eq!(clearing_cap(1000, "7011"), 1150);
        assert_eq!(clearing_cap(1000, "5411"), 1000);
    }
}

/// A card transaction: an authorization with its hold and what became of it, a force post, or a
/// refund. Amounts in minor units of `currency`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub id: crate::ids::TransactionId,
    pub tenant_id: crate::ids::TenantId,
    pub environment: crate::environment::Environment,
    pub card_id: crate::ids::CardId,
    pub cardholder_id: crate::ids::CardholderId,
    pub program_id: crate::ids::ProgramId,
    pub account_id: crate::ids::AccountId,
    pub kind: TransactionKind,
    pub state: TransactionState,
    pub network_transaction_id: String,
    pub currency: Currency,
    pub requested_amount: i64,
    pub authorized_amount: i64,
    pub held_amount: i64,
    pub cleared_amount: i64,
    pub reversed_amount: i64,
    pub response_code: ResponseCode,
    pub decline_reason: Option<DeclineReason>,
    pub authorization_code: Option<String>,
    pub merchant: Merchant,
    pub entry_mode: String,
    pub stand_in: bool,
    pub decision_trace: serde_json::Value,
    pub received_at: Timestamp,
    pub custodian_sent_at: Option<Timestamp>,
    pub custodian_answered_at: Option<Timestamp>,
    pub answered_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A six-character approval code, as networks carry.
pub fn authorization_code(rng: &mut impl rand::Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    (0..6)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}
