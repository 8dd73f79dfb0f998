//! Programs: the request shapes the API and the console share, the one parsing of them into
//! a `Program`, the comparison of two versions (for the console's diff and the audit log), and
//! the update workflow (the stored change, its `program.updated` event and the caller's
//! idempotency/audit records in one transaction).

use cardplane_domain::FieldError;
use cardplane_domain::Timestamp;
use cardplane_domain::controls::{SpendLimit, Window};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::ProgramId;
use cardplane_domain::money::{Currency, parse_amount_minor};
use cardplane_domain::program::MerchantRules;
use cardplane_domain::program::{
    CARD_LIFETIME_YEARS_MAX, CUSTODIAN_DEADLINE_MS_DEFAULT, CUSTODIAN_DEADLINE_MS_MAX, CustodianConfig, FormFactor,
    FundingModel, Network, Program, ProgramStatus, StandInPolicy, parse_bin, parse_design_keys, parse_program_ref,
};
use cardplane_store::{EffectRecords, Scope, StoreError};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::ProgramView;

const AGE_MAX: u8 = 100;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendLimitRequest {
    pub amount_limit: Option<i64>,
    pub count_limit: Option<i64>,
    /// per_transaction, day, week, month, year, lifetime or trailing.
    #[schema(example = "day")]
    pub window: Option<String>,
    /// Length of a trailing window, 10 s to 31 days.
    pub window_secs: Option<i64>,
    #[serde(default)]
    pub mccs: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRulesRequest {
    /// When set, only these MCCs are allowed.
    pub allowed_mccs: Option<Vec<String>>,
    pub blocked_mccs: Option<Vec<String>>,
    /// ISO 3166-1 alpha-3 (alpha-2 accepted). When set, only these countries are allowed.
    pub allowed_countries: Option<Vec<String>>,
    pub blocked_countries: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StandInRequest {
    /// decline (default) or approve_up_to.
    pub policy: Option<String>,
    /// For approve_up_to: the largest amount approved, minor units.
    pub amount: Option<i64>,
}

/// Custodian authority: Cardplane asks this endpoint at authorization time (signed like webhooks).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustodianRequest {
    #[schema(example = "https://custodian.example.com/cardplane/authorize")]
    pub url: Option<String>,
    /// At least 16 characters; signs each request (HMAC-SHA256). Never shown again.
    pub signing_secret: Option<String>,
    /// 100 to 2000, default 1500.
    pub deadline_ms: Option<u32>,
    pub stand_in: Option<StandInRequest>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProgramRequest {
    #[schema(example = "Apto_GPR")]
    pub program_id: Option<String>,
    #[schema(example = "General purpose reloadable")]
    pub name: Option<String>,
    /// VISA or MASTERCARD.
    #[schema(example = "VISA")]
    pub network: Option<String>,
    /// 6 or 8 digits of the network's range; may not overlap another program's BIN.
    #[schema(example = "411111")]
    pub bin: Option<String>,
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// 1 to 10, default 3.
    pub card_lifetime_years: Option<u8>,
    /// Default both.
    pub form_factors: Option<Vec<String>>,
    pub design_keys: Option<Vec<String>>,
    /// stored_balance (default) or custodian_authority.
    pub funding_model: Option<String>,
    pub spend_controls: Option<Vec<SpendLimitRequest>>,
    /// Default 18.
    pub minimum_cardholder_age: Option<u8>,
    /// Default true.
    pub kyc_required: Option<bool>,
    pub merchant_rules: Option<MerchantRulesRequest>,
    /// Required for custodian_authority programs.
    pub custodian: Option<CustodianRequest>,
    /// Authorizations with a risk score (0-999) at or above this raise an alert. Default 800.
    pub risk_alert_threshold: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProgramRequest {
    pub name: Option<String>,
    /// active or suspended: a suspended program issues no cards (and declines authorizations).
    pub status: Option<String>,
    pub card_lifetime_years: Option<u8>,
    pub form_factors: Option<Vec<String>>,
    pub design_keys: Option<Vec<String>>,
    pub spend_controls: Option<Vec<SpendLimitRequest>>,
    pub minimum_cardholder_age: Option<u8>,
    pub kyc_required: Option<bool>,
    pub merchant_rules: Option<MerchantRulesRequest>,
    /// 0 to 1000 (1000: never).
    pub risk_alert_threshold: Option<i64>,
}

fn parse_risk_threshold(raw: i64) -> Result<i64, FieldError> {
    if (0..=1000).contains(&raw) {
        Ok(raw)
    } else {
        Err(FieldError::invalid(
            "risk_alert_threshold",
            "must be from 0 to 1000 (1000: never)",
        ))
    }
}

fn parse_merchant_rules(raw: &MerchantRulesRequest) -> Result<MerchantRules, FieldError> {
    let mccs = |name: &str, list: &Option<Vec<String>>| -> Result<Vec<String>, FieldError> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, m)| cardplane_domain::controls::parse_mcc(&format!("merchant_rules.{name}[{i}]"), m))
            .collect()
    };
    let countries = |name: &str, list: &Option<Vec<String>>| -> Result<Vec<String>, FieldError> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| {
                cardplane_domain::country::normalize_country(c)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        FieldError::invalid(format!("merchant_rules.{name}[{i}]"), "an ISO 3166-1 country code")
                    })
            })
            .collect()
    };
    Ok(MerchantRules {
        allowed_mccs: mccs("allowed_mccs", &raw.allowed_mccs)?,
        blocked_mccs: mccs("blocked_mccs", &raw.blocked_mccs)?,
        allowed_countries: countries("allowed_countries", &raw.allowed_countries)?,
        blocked_countries: countries("blocked_countries", &raw.blocked_countries)?,
    })
}

fn parse_custodian(
    state: &AppState,
    program: &ProgramId,
    raw: &CustodianRequest,
) -> Result<CustodianConfig, FieldError> {
    let url = raw.url.as_deref().ok_or_else(|| FieldError::missing("custodian.url"))?;
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
        return Err(FieldError::invalid("custodian.url", "an http(s) URL"));
    }
    let secret = raw
        .signing_secret
        .as_deref()
        .ok_or_else(|| FieldError::missing("custodian.signing_secret"))?;
    if secret.len() < 16 || secret.len() > 256 {
        return Err(FieldError::invalid("custodian.signing_secret", "16 to 256 characters"));
    }
    let deadline_ms = raw.deadline_ms.unwrap_or(CUSTODIAN_DEADLINE_MS_DEFAULT);
    if !(100..=CUSTODIAN_DEADLINE_MS_MAX).contains(&deadline_ms) {
        return Err(FieldError::invalid(
            "custodian.deadline_ms",
            format!("100 to {CUSTODIAN_DEADLINE_MS_MAX}"),
        ));
    }
    let stand_in = match raw.stand_in.as_ref().map(|s| (s.policy.as_deref(), s.amount)) {
        None | Some((None | Some("decline"), None)) => StandInPolicy::Decline,
        Some((Some("approve_up_to"), Some(n))) if n > 0 => {
            StandInPolicy::ApproveUpTo(parse_amount_minor("custodian.stand_in.amount", Some(n))?)
        }
        Some((Some("approve_up_to"), _)) => {
            return Err(FieldError::invalid(
                "custodian.stand_in.amount",
                "a positive amount for approve_up_to",
            ));
        }
        Some(_) => {
            return Err(FieldError::invalid(
                "custodian.stand_in.policy",
                "decline or approve_up_to",
            ));
        }
    };
    Ok(CustodianConfig {
        url: url.to_owned(),
        secret_sealed: state
            .vault
            .seal(secret.as_bytes(), &format!("program.custodian_secret:{program}")),
        deadline_ms,
        stand_in,
    })
}

fn parse_lifetime(raw: u8) -> Result<u8, FieldError> {
    if !(1..=CARD_LIFETIME_YEARS_MAX).contains(&raw) {
        return Err(FieldError::invalid(
            "card_lifetime_years",
            format!("must be 1 to {CARD_LIFETIME_YEARS_MAX}"),
        ));
    }
    Ok(raw)
}

fn parse_form_factors(raw: &[String]) -> Result<Vec<FormFactor>, FieldError> {
    if raw.is_empty() {
        return Err(FieldError::invalid("form_factors", "at least one of virtual, physical"));
    }
    let mut out = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let ff = FormFactor::parse(f)
            .ok_or_else(|| FieldError::invalid(format!("form_factors[{i}]"), "virtual or physical"))?;
        if !out.contains(&ff) {
            out.push(ff);
        }
    }
    Ok(out)
}

fn parse_controls(raw: &[SpendLimitRequest]) -> Result<Vec<SpendLimit>, FieldError> {
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            let param = format!("spend_controls[{i}]");
            let window = Window::parse(&param, c.window.as_deref(), c.window_secs)?;
            SpendLimit::parse(&param, c.amount_limit, c.count_limit, window, &c.mccs)
        })
        .collect()
}

fn parse_age(raw: u8) -> Result<u8, FieldError> {
    if raw > AGE_MAX {
        return Err(FieldError::invalid(
            "minimum_cardholder_age",
            format!("must be at most {AGE_MAX}"),
        ));
    }
    Ok(raw)
}

pub fn parse_create(
    state: &AppState,
    scope: &Scope,
    req: &CreateProgramRequest,
    now: Timestamp,
) -> Result<Program, FieldError> {
    let program_id = parse_program_ref(req.program_id.as_deref())?;
    let name = cardplane_domain::cardholder::parse_name("name", req.name.as_deref())?;
    let network = match req.network.as_deref() {
        None => return Err(FieldError::missing("network")),
        Some(raw) => Network::parse(raw).ok_or_else(|| FieldError::invalid("network", "VISA or MASTERCARD"))?,
    };
    let bin = parse_bin(req.bin.as_deref(), network)?;
    let currency = match req.currency.as_deref() {
        None => return Err(FieldError::missing("currency")),
        Some(raw) => {
            Currency::parse(raw).map_err(|_| FieldError::invalid("currency", "a supported ISO 4217 currency"))?
        }
    };
    let funding_model = match req.funding_model.as_deref() {
        None => FundingModel::StoredBalance,
        Some(raw) => FundingModel::parse(raw)
            .ok_or_else(|| FieldError::invalid("funding_model", "stored_balance or custodian_authority"))?,
    };
    let design_keys = parse_design_keys(req.design_keys.as_deref().unwrap_or_default())?;
    let form_factors = match &req.form_factors {
        None => vec![FormFactor::Virtual, FormFactor::Physical],
        Some(raw) => parse_form_factors(raw)?,
    };
    let id = ProgramId::generate();
    let custodian = match (funding_model, &req.custodian) {
        (FundingModel::CustodianAuthority, Some(c)) => Some(parse_custodian(state, &id, c)?),
        (FundingModel::CustodianAuthority, None) => return Err(FieldError::missing("custodian")),
        (FundingModel::StoredBalance, Some(_)) => {
            return Err(FieldError::invalid(
                "custodian",
                "only custodian_authority programs have a custodian",
            ));
        }
        (FundingModel::StoredBalance, None) => None,
    };
    Ok(Program {
        id,
        tenant_id: scope.tenant_id.clone(),
        environment: scope.environment,
        program_id,
        name,
        network,
        bin,
        currency,
        card_lifetime_years: parse_lifetime(req.card_lifetime_years.unwrap_or(3))?,
        form_factors,
        design_keys,
        funding_model,
        spend_controls: parse_controls(req.spend_controls.as_deref().unwrap_or_default())?,
        minimum_cardholder_age: parse_age(req.minimum_cardholder_age.unwrap_or(18))?,
        kyc_required: req.kyc_required.unwrap_or(true),
        merchant_rules: req
            .merchant_rules
            .as_ref()
            .map(parse_merchant_rules)
            .transpose()?
            .unwrap_or_default(),
        custodian,
        status: ProgramStatus::Active,
        risk_alert_threshold: parse_risk_threshold(
            req.risk_alert_threshold
                .unwrap_or(cardplane_domain::alert::RISK_ALERT_THRESHOLD_DEFAULT),
        )?,
        created_at: now,
        updated_at: now,
    })
}

/// The program `current` becomes with the fields `req` sets; every field is checked, and the
/// errors come back in the order of the request's fields (the API answers with the first).
pub fn apply_update(current: &Program, req: &UpdateProgramRequest) -> Result<Program, Vec<FieldError>> {
    fn take<T>(errors: &mut Vec<FieldError>, slot: &mut T, parsed: Option<Result<T, FieldError>>) {
        match parsed {
            Some(Ok(v)) => *slot = v,
            Some(Err(e)) => errors.push(e),
            None => {}
        }
    }
    let mut next = current.clone();
    let mut errors = Vec::new();
    let e = &mut errors;
    take(
        e,
        &mut next.name,
        req.name
            .as_ref()
            .map(|n| cardplane_domain::cardholder::parse_name("name", Some(n))),
    );
    take(
        e,
        &mut next.status,
        req.status
            .as_deref()
            .map(|raw| ProgramStatus::parse(raw).ok_or_else(|| FieldError::invalid("status", "active or suspended"))),
    );
    take(
        e,
        &mut next.card_lifetime_years,
        req.card_lifetime_years.map(parse_lifetime),
    );
    take(
        e,
        &mut next.form_factors,
        req.form_factors.as_deref().map(parse_form_factors),
    );
    take(
        e,
        &mut next.design_keys,
        req.design_keys.as_deref().map(parse_design_keys),
    );
    take(
        e,
        &mut next.spend_controls,
        req.spend_controls.as_deref().map(parse_controls),
    );
    take(
        e,
        &mut next.minimum_cardholder_age,
        req.minimum_cardholder_age.map(parse_age),
    );
    take(e, &mut next.kyc_required, req.kyc_required.map(Ok));
    take(
        e,
        &mut next.merchant_rules,
        req.merchant_rules.as_ref().map(parse_merchant_rules),
    );
    take(
        e,
        &mut next.risk_alert_threshold,
        req.risk_alert_threshold.map(parse_risk_threshold),
    );
    if errors.is_empty() { Ok(next) } else { Err(errors) }
}

/// One field that differs between two versions of a program, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// The fields of the API's program view that differ (timestamps aside), in the view's order.
pub fn program_changes(before: &Program, after: &Program) -> Vec<FieldChange> {
    let as_map = |p: &Program| match serde_json::to_value(ProgramView::from(p)) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(before), as_map(after));
    new.iter()
        .filter(|(field, _)| !matches!(field.as_str(), "created_at" | "updated_at"))
        .filter_map(|(field, value)| {
            let was = old.get(field).cloned().unwrap_or(serde_json::Value::Null);
            (was != *value).then(|| FieldChange {
                field: field.clone(),
                before: was,
                after: value.clone(),
            })
        })
        .collect()
}

/// The changes as the audit log keeps them: `{field: {from, to}}`.
pub fn changes_for_audit(changes: &[FieldChange]) -> serde_json::Value {
    changes
        .iter()
        .map(|c| (c.field.clone(), serde_json::json!({ "from": c.before, "to": c.after })))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The event a program change or creation emits (and the webhook it becomes).
pub fn program_event(scope: &Scope, kind: EventType, view: &ProgramView, p: &Program, now: Timestamp) -> Event {
    let data = serde_json::to_value(view).unwrap_or_default();
    Event::new(&scope.tenant_id, scope.environment, kind, p.id.as_str(), data, now)
}

/// Stores `next` in place of `current` if nobody changed it since `current` was read, with the
/// `program.updated` event and `records` in the same transaction.
pub async fn save_update(
    state: &AppState,
    scope: &Scope,
    current: &Program,
    mut next: Program,
    records: impl FnOnce(&ProgramView) -> ApiResult<Option<EffectRecords>>,
) -> ApiResult<ProgramView> {
    let now = Timestamp::now();
    next.updated_at = now;
    let view = ProgramView::from(&next);
    let records = records(&view)?;
    let events = [program_event(scope, EventType::ProgramUpdated, &view, &next, now)];
    match state
        .programs
        .update_program(scope, &next, current.updated_at, &events, records.as_ref(), now)
        .await
    {
        Ok(()) => Ok(view),
        Err(StoreError::Conflict { .. }) => Err(ApiError::conflict(
            "concurrent_update",
            "The program was changed concurrently; retry",
        )),
        Err(e) => Err(e.into()),
    }
}
