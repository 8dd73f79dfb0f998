//! Programs: the columns read and how a row becomes the domain type (shared by the aggregate
//! and the batch reads).

use crate::StoreError;
use crate::sql::ts;
use cardplane_domain::Environment;
use cardplane_domain::controls::{SpendLimit, Window};
use cardplane_domain::ids::{ProgramId, TenantId};
use cardplane_domain::money::Currency;
use cardplane_domain::program::MerchantRules;
use cardplane_domain::program::{
    CustodianConfig, FormFactor, FundingModel, Network, Program, ProgramStatus, StandInPolicy,
};
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) const PROGRAM_COLUMNS: &str = "id, tenant_id, environment, program_id, name, network, bin, currency, card_lifetime_years, \
    form_factors, design_keys, funding_model, spend_controls, minimum_cardholder_age, kyc_required, status, created_at, \
    updated_at, merchant_rules, custodian, risk_alert_threshold";

pub(crate) fn program_from_row(row: &AnyRow) -> Result<Program, StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("stored program {what}"));
    let env: String = row.try_get("environment")?;
    let network: String = row.try_get("network")?;
    let currency: String = row.try_get("currency")?;
    let form_factors: String = row.try_get("form_factors")?;
    let design_keys: String = row.try_get("design_keys")?;
    let funding: String = row.try_get("funding_model")?;
    let status: String = row.try_get("status")?;
    let lifetime: i64 = row.try_get("card_lifetime_years")?;
    let min_age: i64 = row.try_get("minimum_cardholder_age")?;
    Ok(Program {
        id: ProgramId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| bad("environment"))?,
        program_id: row.try_get("program_id")?,
        name: row.try_get("name")?,
        network: Network::parse(&network).ok_or_else(|| bad("network"))?,
        bin: row.try_get("bin")?,
        currency: Currency::parse(&currency).map_err(|_| bad("currency"))?,
        card_lifetime_years: u8::try_from(lifetime).map_err(|_| bad("lifetime"))?,
        form_factors: form_factors
            .split(',')
            .map(|f| FormFactor::parse(f).ok_or_else(|| bad("form factor")))
            .collect::<Result<_, _>>()?,
        design_keys: serde_json::from_str(&design_keys).map_err(|_| bad("design keys"))?,
        funding_model: FundingModel::parse(&funding).ok_or_else(|| bad("funding model"))?,
        spend_controls: controls_from_json(&row.try_get::<String, _>("spend_controls")?)?,
        minimum_cardholder_age: u8::try_from(min_age).map_err(|_| bad("minimum age"))?,
        kyc_required: row.try_get::<i16, _>("kyc_required")? == 1,
        merchant_rules: rules_from_json(&row.try_get::<String, _>("merchant_rules")?)?,
        custodian: custodian_from_json(row.try_get("custodian")?)?,
        status: ProgramStatus::parse(&status).ok_or_else(|| bad("status"))?,
        risk_alert_threshold: row.try_get("risk_alert_threshold")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn rules_from_json(text: &str) -> Result<MerchantRules, StoreError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| StoreError::corrupt("stored merchant rules"))?;
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    Ok(MerchantRules {
        allowed_mccs: list("allowed_mccs"),
        blocked_mccs: list("blocked_mccs"),
        allowed_countries: list("allowed_countries"),
        blocked_countries: list("blocked_countries"),
    })
}

fn custodian_from_json(text: Option<String>) -> Result<Option<CustodianConfig>, StoreError> {
    let Some(text) = text else { return Ok(None) };
    let bad = || StoreError::corrupt("stored custodian config");
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad())?;
    let stand_in = match (v["stand_in"]["policy"].as_str(), v["stand_in"]["amount"].as_i64()) {
        (Some("decline"), _) => StandInPolicy::Decline,
        (Some("approve_up_to"), Some(n)) => StandInPolicy::ApproveUpTo(n),
        _ => return Err(bad()),
    };
    Ok(Some(CustodianConfig {
        url: v["url"].as_str().ok_or_else(bad)?.to_owned(),
        secret_sealed: v["secret_sealed"].as_str().ok_or_else(bad)?.to_owned(),
        deadline_ms: v["deadline_ms"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)?,
        stand_in,
    }))
}

fn controls_from_json(text: &str) -> Result<Vec<SpendLimit>, StoreError> {
    let bad = || StoreError::corrupt("stored spend controls");
    let list: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|_| bad())?;
    list.iter()
        .map(|v| {
            let window = Window::parse("c", v["window"].as_str(), v["window_secs"].as_i64()).map_err(|_| bad())?;
            let mccs: Vec<String> = v["mccs"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            SpendLimit::parse(
                "c",
                v["amount_limit"].as_i64(),
                v["count_limit"].as_i64(),
                window,
                &mccs,
            )
            .map_err(|_| bad())
        })
        .collect()
}
