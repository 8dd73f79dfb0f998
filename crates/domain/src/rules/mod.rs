//! Authorization rules: data, not code. A rule belongs to a program, a cardholder or a card and
//! has immutable versions; at most one version is active (applied) and at most one is a draft
//! (evaluated in shadow beside it, recorded in the trace, never applied) until it is promoted.
//!
//! Three kinds: `conditional_action` (conditions over the authorization's attributes, combined
//! by all/any), `velocity_limit` (count and/or amount over a window, per card, cardholder or
//! program, with filters) and `merchant_lock` (only listed merchants or MCCs).
//!
//! Precedence (`evaluate`): rules run in `priority` order (lower first, then by id) after the
//! built-in checks, and only an authorization those approved can be declined by a rule.
//! **Declines win**: if any matching rule declines, the authorization is declined with the first
//! such rule's response code, whatever any other rule says. A matching `approve` rule never
//! overrides a decline; it only suppresses the `review` of rules after it. A matching `review`
//! rule approves and opens an alert.

pub mod backtest;
mod condition;
mod evaluate;
mod facts;
pub mod risk;
pub mod velocity;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

pub use condition::{Condition, Operation};
pub use evaluate::{CompiledRule, Counters, RuleHit, ScopeIds, Verdict, base_approved, evaluate};
pub use facts::{Attribute, CARD_NOT_PRESENT_ENTRY_MODES, Fact, Facts, is_card_not_present, is_recurring};

use crate::authorization::ResponseCode;
use crate::controls::{ControlScopeKind, Window};
use crate::error::FieldError;
use velocity::{CounterSpec, bucket_secs};

crate::wire_enum!(RuleKind {
    ConditionalAction => "conditional_action",
    VelocityLimit => "velocity_limit",
    MerchantLock => "merchant_lock",
});

crate::wire_enum!(RuleAction {
    Decline => "decline",
    Review => "review",
    Approve => "approve",
});

crate::wire_enum!(VersionState {
    Draft => "draft",
    Active => "active",
    Superseded => "superseded",
    Discarded => "discarded",
});

pub const PRIORITY_DEFAULT: i64 = 100;
const CONDITIONS_MAX: usize = 20;
const MERCHANTS_MAX: usize = 500;

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleOutcome {
    pub action: RuleAction,
    /// The decline's response code (for `decline`).
    pub response_code: ResponseCode,
}

#[derive(Debug, Clone)]
pub struct ConditionalAction {
    /// `all` (true) or `any` (false).
    pub all: bool,
    pub conditions: Vec<Condition>,
    pub utc_offset_minutes: i32,
    pub outcome: RuleOutcome,
}

#[derive(Debug, Clone)]
pub struct VelocityLimit {
    pub spec: Arc<CounterSpec>,
    /// `spec.key()`, computed once.
    pub counter: String,
    pub window: Window,
    pub count_limit: Option<i64>,
    pub amount_limit: Option<i64>,
    pub outcome: RuleOutcome,
}

#[derive(Debug, Clone)]
pub struct MerchantLock {
    pub merchant_ids: Vec<String>,
    pub mccs: Vec<String>,
    pub outcome: RuleOutcome,
}

#[derive(Debug, Clone)]
pub enum RuleBody {
    Conditional(ConditionalAction),
    Velocity(VelocityLimit),
    MerchantLock(MerchantLock),
}

impl RuleBody {
    pub fn kind(&self) -> RuleKind {
        match self {
            RuleBody::Conditional(_) => RuleKind::ConditionalAction,
            RuleBody::Velocity(_) => RuleKind::VelocityLimit,
            RuleBody::MerchantLock(_) => RuleKind::MerchantLock,
        }
    }

    pub fn outcome(&self) -> RuleOutcome {
        match self {
            RuleBody::Conditional(c) => c.outcome,
            RuleBody::Velocity(v) => v.outcome,
            RuleBody::MerchantLock(m) => m.outcome,
        }
    }
}

/// A parsed version: its name, priority and body. `raw` is what was submitted (stored as is
/// and parsed again on load, so a stored rule always means what it meant when written).
#[derive(Debug, Clone)]
pub struct RuleDefinition {
    pub name: String,
    pub priority: i64,
    pub body: RuleBody,
}

fn object<'a>(param: &str, raw: &'a Value, allowed: &[&str]) -> Result<&'a serde_json::Map<String, Value>, FieldError> {
    let obj = raw
        .as_object()
        .ok_or_else(|| FieldError::invalid(param, "must be an object"))?;
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        let name = if param.is_empty() {
            extra.clone()
        } else {
            format!("{param}.{extra}")
        };
        return Err(FieldError::invalid(name, "unknown field"));
    }
    Ok(obj)
}

fn strings(
    param: &str,
    raw: Option<&Value>,
    check: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<String>, FieldError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items = raw
        .as_array()
        .filter(|a| a.len() <= MERCHANTS_MAX)
        .ok_or_else(|| FieldError::invalid(param, format!("must be a list of up to {MERCHANTS_MAX} values")))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s) if check(s) => out.push(s.to_owned()),
            _ => return Err(FieldError::invalid(format!("{param}[{i}]"), format!("must be {what}"))),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn is_mcc(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_country(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn positive(param: &str, raw: Option<&Value>) -> Result<Option<i64>, FieldError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if n > 0 && n <= crate::money::BALANCE_MAX_MINOR => Ok(Some(n)),
            _ => Err(FieldError::invalid(param, "must be a positive integer")),
        },
    }
}

fn outcome(obj: &serde_json::Map<String, Value>, default_code: ResponseCode) -> Result<RuleOutcome, FieldError> {
    let action = match obj.get("action") {
        None => RuleAction::Decline,
        Some(v) => v
            .as_str()
            .and_then(RuleAction::parse)
            .ok_or_else(|| FieldError::invalid("parameters.action", "must be decline, review or approve"))?,
    };
    let response_code = match obj.get("response_code") {
        None => default_code,
        Some(_) if action != RuleAction::Decline => {
            return Err(FieldError::invalid(
                "parameters.response_code",
                "only a decline has a response code",
            ));
        }
        Some(v) => v
            .as_str()
            .and_then(ResponseCode::parse)
            .filter(|c| !matches!(c, ResponseCode::Approved | ResponseCode::PartialApproval))
            .ok_or_else(|| {
                FieldError::invalid(
                    "parameters.response_code",
                    "must be a decline code: 05, 12, 13, 14, 51, 57, 59, 61, 62 or 65",
                )
            })?,
    };
    Ok(RuleOutcome { action, response_code })
}

fn utc_offset(raw: Option<&Value>) -> Result<i32, FieldError> {
    let Some(raw) = raw else {
        return Ok(0);
    };
    let bad = || FieldError::invalid("parameters.utc_offset", "must be ±HH:MM, e.g. -05:00");
    let s = raw.as_str().ok_or_else(bad)?;
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h.abs() > 14 || !(0..60).contains(&m) || rest.len() != 5 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

fn conditional(p: &Value) -> Result<RuleBody, FieldError> {
    let obj = object(
        "parameters",
        p,
        &["match", "conditions", "action", "response_code", "utc_offset"],
    )?;
    let all = match obj.get("match").and_then(Value::as_str) {
        None if !obj.contains_key("match") => true,
        Some("all") => true,
        Some("any") => false,
        _ => return Err(FieldError::invalid("parameters.match", "must be all or any")),
    };
    let list = obj
        .get("conditions")
        .and_then(Value::as_array)
        .ok_or_else(|| FieldError::missing("parameters.conditions"))?;
    if list.is_empty() || list.len() > CONDITIONS_MAX {
        return Err(FieldError::invalid(
            "parameters.conditions",
            format!("must hold 1 to {CONDITIONS_MAX} conditions"),
        ));
    }
    let conditions = list
        .iter()
        .enumerate()
        .map(|(i, c)| Condition::parse(&format!("parameters.conditions[{i}]"), c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RuleBody::Conditional(ConditionalAction {
        all,
        conditions,
        utc_offset_minutes: utc_offset(obj.get("utc_offset"))?,
        outcome: outcome(obj, ResponseCode::SuspectedFraud)?,
    }))
}

fn velocity(p: &Value, rule_scope: ControlScopeKind, owner: &str) -> Result<RuleBody, FieldError> {
    let obj = object(
        "parameters",
        p,
        &[
            "scope",
            "window",
            "window_secs",
            "limit_count",
            "limit_amount",
            "filters",
            "action",
            "response_code",
        ],
    )?;
    let scope = match obj.get("scope") {
        None => ControlScopeKind::Card,
        Some(v) => v
            .as_str()
            .and_then(ControlScopeKind::parse)
            .ok_or_else(|| FieldError::invalid("parameters.scope", "must be card, cardholder or program"))?,
    };
    let breadth = |k: ControlScopeKind| match k {
        ControlScopeKind::Card => 0,
        ControlScopeKind::Cardholder => 1,
        ControlScopeKind::Program => 2,
    };
    if breadth(scope) > breadth(rule_scope) {
        return Err(FieldError::invalid(
            "parameters.scope",
            format!(
                "a {} rule can count per card or per its own scope, not per {}",
                rule_scope.as_str(),
                scope.as_str()
            ),
        ));
    }
    let window = Window::parse(
        "parameters",
        obj.get("window").and_then(Value::as_str),
        obj.get("window_secs").and_then(Value::as_i64),
    )?;
    if !matches!(
        window,
        Window::Trailing { .. } | Window::Day | Window::Week | Window::Month
    ) {
        return Err(FieldError::invalid(
            "parameters.window",
            "must be trailing (10 s to 31 days), day, week or month",
        ));
    }
    let count_limit = positive("parameters.limit_count", obj.get("limit_count"))?;
    let amount_limit = positive("parameters.limit_amount", obj.get("limit_amount"))?;
    if count_limit.is_none() && amount_limit.is_none() {
        return Err(FieldError::missing("parameters.limit_count"));
    }
    let empty = Value::Object(serde_json::Map::new());
    let filters = obj.get("filters").unwrap_or(&empty);
    let f = object(
        "parameters.filters",
        filters,
        &["mccs", "countries", "card_not_present_only"],
    )?;
    let card_not_present_only = match f.get("card_not_present_only") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| FieldError::invalid("parameters.filters.card_not_present_only", "must be true or false"))?,
    };
    let spec = CounterSpec {
        owner: format!("{}:{owner}", rule_scope.as_str()),
        scope,
        mccs: strings("parameters.filters.mccs", f.get("mccs"), is_mcc, "a 4-digit MCC")?,
        countries: strings(
            "parameters.filters.countries",
            f.get("countries"),
            is_country,
            "an ISO 3166-1 alpha-3 code",
        )?,
        card_not_present_only,
        bucket_secs: bucket_secs(&window),
    };
    let default_code = if count_limit.is_some() {
        ResponseCode::CountLimit
    } else {
        ResponseCode::AmountLimit
    };
    Ok(RuleBody::Velocity(VelocityLimit {
        counter: spec.key(),
        spec: Arc::new(spec),
        window,
        count_limit,
        amount_limit,
        outcome: outcome(obj, default_code)?,
    }))
}

fn merchant_lock(p: &Value) -> Result<RuleBody, FieldError> {
    let obj = object("parameters", p, &["merchant_ids", "mccs", "action", "response_code"])?;
    let merchant_ids = strings(
        "parameters.merchant_ids",
        obj.get("merchant_ids"),
        |s| !s.is_empty() && s.len() <= 64,
        "a merchant id of up to 64 characters",
    )?;
    let mccs = strings("parameters.mccs", obj.get("mccs"), is_mcc, "a 4-digit MCC")?;
    if merchant_ids.is_empty() && mccs.is_empty() {
        return Err(FieldError::missing("parameters.merchant_ids"));
    }
    let outcome = outcome(obj, ResponseCode::NotPermitted)?;
    Ok(RuleBody::MerchantLock(MerchantLock {
        merchant_ids,
        mccs,
        outcome,
    }))
}

impl RuleDefinition {
    /// Parses `{"name", "priority", "type", "parameters"}` for a rule of scope `scope` (the
    /// program, cardholder or card `scope_id`).
    pub fn parse(raw: &Value, scope: ControlScopeKind, scope_id: &str) -> Result<RuleDefinition, FieldError> {
        let obj = object("", raw, &["name", "priority", "type", "parameters"])?;
        let name = match obj.get("name") {
            None => String::new(),
            Some(v) => match v.as_str() {
                Some(s) if s.chars().count() <= 200 => s.trim().to_owned(),
                _ => return Err(FieldError::invalid("name", "must be a string of up to 200 characters")),
            },
        };
        let priority = match obj.get("priority") {
            None => PRIORITY_DEFAULT,
            Some(v) => v
                .as_i64()
                .filter(|p| (0..=10_000).contains(p))
                .ok_or_else(|| FieldError::invalid("priority", "must be an integer from 0 to 10000"))?,
        };
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::missing("type"))?;
        let kind = RuleKind::parse(kind).ok_or_else(|| {
            FieldError::invalid("type", "must be conditional_action, velocity_limit or merchant_lock")
        })?;
        let params = obj.get("parameters").ok_or_else(|| FieldError::missing("parameters"))?;
        let body = match kind {
            RuleKind::ConditionalAction => conditional(params)?,
            RuleKind::VelocityLimit => velocity(params, scope, scope_id)?,
            RuleKind::MerchantLock => merchant_lock(params)?,
        };
        Ok(RuleDefinition { name, priority, body })
    }

    /// The counter this version reads and keeps, if it is a velocity limit.
    pub fn counter(&self) -> Option<(&str, &Arc<CounterSpec>)> {
        match &self.body {
            RuleBody::Velocity(v) => Some((&v.counter, &v.spec)),
            _ => None,
        }
    }
}
