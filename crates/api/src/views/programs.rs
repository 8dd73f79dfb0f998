//! Response shapes: Programs, their spend limits and funding.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendLimitView {
    /// Minor units of the program currency.
    pub amount_limit: Option<i64>,
    pub count_limit: Option<i64>,
    /// per_transaction, day, week, month, year, lifetime or trailing.
    #[schema(example = "day")]
    pub window: String,
    /// For trailing windows: their length in seconds.
    pub window_secs: Option<i64>,
    /// Only these merchant category codes count; empty = all.
    pub mccs: Vec<String>,
}

impl From<&cardplane_domain::controls::SpendLimit> for SpendLimitView {
    fn from(c: &cardplane_domain::controls::SpendLimit) -> Self {
        SpendLimitView {
            amount_limit: c.amount_limit,
            count_limit: c.count_limit,
            window: c.window.as_str().to_owned(),
            window_secs: c.window.trailing_secs(),
            mccs: c.mccs.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramView {
    /// Cardplane's id for the program (`prog_...`); operators' approval chains use it.
    pub id: String,
    /// Your identifier for the program.
    #[schema(example = "Apto_GPR")]
    pub program_id: String,
    pub livemode: bool,
    pub name: String,
    #[schema(example = "VISA")]
    pub network: String,
    #[schema(example = "411111")]
    pub bin: String,
    #[schema(example = "USD")]
    pub currency: String,
    pub card_lifetime_years: u8,
    pub form_factors: Vec<String>,
    pub design_keys: Vec<String>,
    /// stored_balance or custodian_authority.
    pub funding_model: String,
    pub spend_controls: Vec<SpendLimitView>,
    pub minimum_cardholder_age: u8,
    pub kyc_required: bool,
    /// Risk scores at or above this raise an alert.
    pub risk_alert_threshold: i64,
    #[schema(value_type = Object)]
    pub merchant_rules: serde_json::Value,
    /// Custodian-authority programs: the endpoint, deadline and stand-in policy (never the secret).
    #[schema(value_type = Option<Object>)]
    pub custodian: Option<serde_json::Value>,
    /// active or suspended.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&cardplane_domain::program::Program> for ProgramView {
    fn from(p: &cardplane_domain::program::Program) -> Self {
        ProgramView {
            id: p.id.to_string(),
            program_id: p.program_id.clone(),
            livemode: p.environment.livemode(),
            name: p.name.clone(),
            network: p.network.as_str().to_owned(),
            bin: p.bin.clone(),
            currency: p.currency.code().to_owned(),
            card_lifetime_years: p.card_lifetime_years,
            form_factors: p.form_factors.iter().map(|f| f.as_str().to_owned()).collect(),
            design_keys: p.design_keys.clone(),
            funding_model: p.funding_model.as_str().to_owned(),
            spend_controls: p.spend_controls.iter().map(SpendLimitView::from).collect(),
            minimum_cardholder_age: p.minimum_cardholder_age,
            kyc_required: p.kyc_required,
            risk_alert_threshold: p.risk_alert_threshold,
            merchant_rules: serde_json::json!({
                "allowed_mccs": p.merchant_rules.allowed_mccs, "blocked_mccs": p.merchant_rules.blocked_mccs,
                "allowed_countries": p.merchant_rules.allowed_countries, "blocked_countries": p.merchant_rules.blocked_countries,
            }),
            custodian: p.custodian.as_ref().map(|c| {
                let stand_in = match c.stand_in {
                    cardplane_domain::program::StandInPolicy::Decline => serde_json::json!({"policy": "decline"}),
                    cardplane_domain::program::StandInPolicy::ApproveUpTo(n) => {
                        serde_json::json!({"policy": "approve_up_to", "amount": n})
                    }
                };
                serde_json::json!({"url": c.url, "deadline_ms": c.deadline_ms, "stand_in": stand_in})
            }),
            status: p.status.as_str().to_owned(),
            created_at: p.created_at.to_rfc3339(),
            updated_at: p.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramEnvelope {
    pub program: ProgramView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramList {
    pub programs: Vec<ProgramEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramFundingView {
    pub program_id: String,
    pub currency: String,
    /// Money available to load onto cards, minor units.
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramFundingEnvelope {
    pub funding: ProgramFundingView,
}
