//! `/programs`: card programs per tenant and environment, created with their ledger accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::FieldError;
use cardplane_domain::Timestamp;
use cardplane_domain::controls::{SpendLimit, Window};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::ProgramId;
use cardplane_domain::ledger::{Account, AccountKind};
use cardplane_domain::money::Currency;
use cardplane_domain::program::{
    CARD_LIFETIME_YEARS_MAX, FormFactor, FundingModel, Network, Program, ProgramStatus, parse_bin, parse_design_keys,
    parse_program_ref,
};
use cardplane_store::StoreError;
use cardplane_store::programs::ProgramWriteError;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{ProgramEnvelope, ProgramFundingEnvelope, ProgramFundingView, ProgramList, ProgramView, page_items};

const PROGRAM_ACCOUNTS: [AccountKind; 4] = [
    AccountKind::ProgramFunding,
    AccountKind::ProgramSettlement,
    AccountKind::ProgramFees,
    AccountKind::ProgramExternal,
];
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

fn parse_create(ctx: &Ctx, req: &CreateProgramRequest, now: Timestamp) -> Result<Program, FieldError> {
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
    Ok(Program {
        id: ProgramId::generate(),
        tenant_id: ctx.scope.tenant_id.clone(),
        environment: ctx.scope.environment,
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
        status: ProgramStatus::Active,
        created_at: now,
        updated_at: now,
    })
}

fn program_event(ctx: &Ctx, kind: EventType, view: &ProgramView, p: &Program, now: Timestamp) -> Event {
    let data = serde_json::to_value(view).unwrap_or_default();
    Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        kind,
        p.id.as_str(),
        data,
        now,
    )
}

pub async fn load_program(state: &AppState, ctx: &Ctx, program_id: &str) -> ApiResult<Program> {
    let program_id = parse_program_ref(Some(program_id)).map_err(|_| ApiError::not_found("program"))?;
    state
        .programs
        .get_program_by_ref(&ctx.scope, &program_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("program"),
            other => other.into(),
        })
}

#[utoipa::path(
    post, path = "/programs", tag = "Programs",
    request_body = CreateProgramRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = ProgramEnvelope),
        (status = 400, description = "Invalid config, e.g. a BIN overlapping another program's (bin_overlap)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "program_id taken", body = crate::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_program(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CreateProgramRequest>,
) -> ApiResult<Reply> {
    let now = Timestamp::now();
    let program = parse_create(&ctx, &req, now)?;
    let accounts: Vec<Account> = PROGRAM_ACCOUNTS
        .iter()
        .map(|kind| {
            Account::open(
                &ctx.scope.tenant_id,
                ctx.scope.environment,
                &program.id,
                *kind,
                program.currency,
                now,
            )
        })
        .collect();
    let view = ProgramView::from(&program);
    let body = render(&ProgramEnvelope { program: view.clone() })?;
    let response = ctx.idempotent_response(StatusCode::OK, &body);
    let events = [program_event(&ctx, EventType::ProgramCreated, &view, &program, now)];
    match state
        .programs
        .insert_program(&ctx.scope, &program, &accounts, &events, response.as_ref(), now)
        .await
    {
        Ok(()) => Ok(Reply::committed(StatusCode::OK, body)),
        Err(ProgramWriteError::BinOverlap) => Err(ApiError::invalid(
            "bin_overlap",
            "This BIN overlaps the BIN range of another program",
        )
        .with_param("bin")),
        Err(ProgramWriteError::ProgramIdTaken) => Err(ApiError::conflict(
            "program_id_taken",
            "A program with this program_id exists",
        )
        .with_param("program_id")),
        Err(ProgramWriteError::Store(e)) => Err(e.into()),
    }
}

#[utoipa::path(
    post, path = "/programs/{program_id}", tag = "Programs",
    request_body = UpdateProgramRequest,
    params(("program_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ProgramEnvelope), (status = 400, body = crate::error::ErrorEnvelope), (status = 404, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn update_program(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(program_id): Path<String>,
    JsonBody(req): JsonBody<UpdateProgramRequest>,
) -> ApiResult<Reply> {
    let current = load_program(&state, &ctx, &program_id).await?;
    let now = Timestamp::now();
    let mut next = current.clone();
    if req.name.is_some() {
        next.name = cardplane_domain::cardholder::parse_name("name", req.name.as_deref())?;
    }
    if let Some(raw) = &req.status {
        next.status = ProgramStatus::parse(raw).ok_or_else(|| FieldError::invalid("status", "active or suspended"))?;
    }
    if let Some(years) = req.card_lifetime_years {
        next.card_lifetime_years = parse_lifetime(years)?;
    }
    if let Some(raw) = &req.form_factors {
        next.form_factors = parse_form_factors(raw)?;
    }
    if let Some(raw) = &req.design_keys {
        next.design_keys = parse_design_keys(raw)?;
    }
    if let Some(raw) = &req.spend_controls {
        next.spend_controls = parse_controls(raw)?;
    }
    if let Some(age) = req.minimum_cardholder_age {
        next.minimum_cardholder_age = parse_age(age)?;
    }
    if let Some(kyc) = req.kyc_required {
        next.kyc_required = kyc;
    }
    next.updated_at = now;
    let view = ProgramView::from(&next);
    let body = render(&ProgramEnvelope { program: view.clone() })?;
    let response = ctx.idempotent_response(StatusCode::OK, &body);
    let events = [program_event(&ctx, EventType::ProgramUpdated, &view, &next, now)];
    match state
        .programs
        .update_program(&ctx.scope, &next, current.updated_at, &events, response.as_ref(), now)
        .await
    {
        Ok(()) => Ok(Reply::committed(StatusCode::OK, body)),
        Err(StoreError::Conflict { .. }) => Err(ApiError::conflict(
            "concurrent_update",
            "The program was changed concurrently; retry",
        )),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get, path = "/programs", tag = "Programs",
    params(ListParams),
    responses((status = 200, body = ProgramList)),
    security(("basic_auth" = []))
)]
pub async fn list_programs(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| parse_program_ref(Some(id)).is_ok())?;
    let page = state.programs.list_programs(&ctx.scope, &page).await?;
    let (programs, has_more, total) = page_items(&page, |p| ProgramEnvelope { program: p.into() });
    Reply::ok(&ProgramList {
        programs,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/programs/{program_id}", tag = "Programs",
    params(("program_id" = String, Path)),
    responses((status = 200, body = ProgramEnvelope), (status = 404, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_program(State(state): State<AppState>, ctx: Ctx, Path(program_id): Path<String>) -> ApiResult<Reply> {
    let program = load_program(&state, &ctx, &program_id).await?;
    Reply::ok(&ProgramEnvelope {
        program: (&program).into(),
    })
}

#[utoipa::path(
    get, path = "/programs/{program_id}/funding", tag = "Programs",
    params(("program_id" = String, Path)),
    responses((status = 200, body = ProgramFundingEnvelope), (status = 404, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_program_funding(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(program_id): Path<String>,
) -> ApiResult<Reply> {
    let program = load_program(&state, &ctx, &program_id).await?;
    let account = state
        .programs
        .program_account(&ctx.scope, &program.id, AccountKind::ProgramFunding)
        .await?;
    Reply::ok(&ProgramFundingEnvelope {
        funding: ProgramFundingView {
            program_id: program.program_id,
            currency: account.currency.code().to_owned(),
            balance: account.balance,
        },
    })
}
