//! The sample sandbox every new tenant starts with: a funded program, one cardholder who passes
//! sandbox KYC and their active card, so the first authorization can be simulated at once. It is
//! made through the same handlers a developer's API calls reach (as the tenant's sandbox key),
//! so the sample is exactly what the API would have made, with the same events.

use axum::extract::{Path, State};
use cardplane_domain::Environment;
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::tenant::Tenant;
use cardplane_store::Scope;
use rand::Rng;
use serde_json::json;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody};
use crate::routes::{cardholders, programs, sandbox};
use crate::state::AppState;

pub const PROGRAM_ID: &str = "sample_gpr";
/// $10,000.00 in the program's funding account; $100.00 on the sample card.
const FUNDING_MINOR: i64 = 1_000_000;
const CARD_LOAD_MINOR: i64 = 10_000;
/// BINs are unique per environment across tenants: a sample takes a random 8-digit one and
/// tries again on the rare overlap.
const BIN_ATTEMPTS: usize = 8;

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> ApiResult<T> {
    serde_json::from_value(value).map_err(ApiError::internal)
}

fn sandbox_ctx(tenant: &Tenant, key: &ApiKey) -> Ctx {
    Ctx {
        scope: Scope {
            tenant_id: tenant.id.clone(),
            environment: Environment::Sandbox,
        },
        key: key.clone(),
        tenant: tenant.clone(),
        version: tenant.api_version,
        idempotency: None,
        audit: None,
    }
}

async fn create_program(state: &AppState, ctx: &Ctx) -> ApiResult<bool> {
    for _ in 0..BIN_ATTEMPTS {
        let bin = format!("4{:07}", rand::rng().random_range(0..10_000_000u32));
        let request = parse(json!({
            "program_id": PROGRAM_ID, "name": "Sample general purpose reloadable", "network": "VISA",
            "bin": bin, "currency": "USD", "design_keys": ["blue"],
            "spend_controls": [{"amount_limit": 50000, "window": "day"}],
        }))?;
        match programs::create_program(State(state.clone()), ctx.clone(), JsonBody(request)).await {
            Ok(_) => return Ok(true),
            Err(e) if e.body.code == "bin_overlap" => continue,
            Err(e) if e.body.code == "program_id_taken" => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::internal("no free sandbox BIN for the sample program"))
}

/// Creates the sample in the tenant's sandbox, acting as `key` (a sandbox key of the tenant).
/// Does nothing if the sample program exists already.
pub async fn provision(state: &AppState, tenant: &Tenant, key: &ApiKey) -> ApiResult<()> {
    if key.environment != Environment::Sandbox || key.tenant_id != tenant.id {
        return Err(ApiError::internal("the sample is made with the tenant's sandbox key"));
    }
    let ctx = sandbox_ctx(tenant, key);
    if !create_program(state, &ctx).await? {
        return Ok(());
    }
    let funding = parse(json!({"amount": FUNDING_MINOR, "currency": "USD"}))?;
    sandbox::fund_program(
        State(state.clone()),
        ctx.clone(),
        Path(PROGRAM_ID.to_owned()),
        JsonBody(funding),
    )
    .await?;
    // The Apto sample cardholder; an SSN ending in 0000 passes sandbox KYC.
    let cardholder = parse(json!({
        "first_name": "Josh", "last_name": "Wilson", "custodian_uid": "sample-cardholder",
        "email": "josh.wilson@example.com", "phone_number": "+16508881111", "date_of_birth": "1982-06-20",
        "address": {"street_one": "1800 Gates Ave", "street_two": "2L", "locality": "Ridgewood",
                    "region": "NY", "postal_code": "11385", "country": "USA"},
        "document": {"type": "ssn", "value": "490940000"},
        "card": {"design_key": "blue", "program_id": PROGRAM_ID,
                 "initial_load": {"currency": "USD", "amount": CARD_LOAD_MINOR}, "additional_fields": {}},
    }))?;
    cardholders::create_cardholder(State(state.clone()), ctx, JsonBody(cardholder)).await?;
    Ok(())
}
