//! `/programs`: card programs per tenant and environment, created with their ledger accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::Timestamp;
use cardplane_domain::event::EventType;
use cardplane_domain::ledger::{Account, AccountKind};
use cardplane_domain::program::parse_program_ref;
use cardplane_store::programs::ProgramWriteError;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::lookup::load_program;
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{ProgramEnvelope, ProgramFundingEnvelope, ProgramFundingView, ProgramList, ProgramView, page_items};
pub use crate::workflows::programs::{
    CreateProgramRequest, CustodianRequest, MerchantRulesRequest, SpendLimitRequest, StandInRequest,
    UpdateProgramRequest,
};
use crate::workflows::programs::{apply_update, parse_create, program_event, save_update};

const PROGRAM_ACCOUNTS: [AccountKind; 6] = [
    AccountKind::ProgramFunding,
    AccountKind::ProgramSettlement,
    AccountKind::ProgramFees,
    AccountKind::ProgramExternal,
    AccountKind::ProgramLosses,
    AccountKind::ProgramDisputes,
];

#[utoipa::path(
    post, path = "/programs", tag = "Programs",
    request_body = CreateProgramRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = ProgramEnvelope),
        (status = 400, description = "Invalid config, e.g. a BIN overlapping another program's (bin_overlap)", body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "program_id taken", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_program(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CreateProgramRequest>,
) -> ApiResult<Reply> {
    let now = Timestamp::now();
    let program = parse_create(&state, &ctx.scope, &req, now)?;
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
    let response = ctx.records(StatusCode::OK, &body);
    let events = [program_event(
        &ctx.scope,
        EventType::ProgramCreated,
        &view,
        &program,
        now,
    )];
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
    responses((status = 200, body = ProgramEnvelope), (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn update_program(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(program_id): Path<String>,
    JsonBody(req): JsonBody<UpdateProgramRequest>,
) -> ApiResult<Reply> {
    let current = load_program(&state, &ctx, &program_id).await?;
    let next = apply_update(&current, &req).map_err(|mut errors| ApiError::from(errors.remove(0)))?;
    let mut body = String::new();
    save_update(&state, &ctx.scope, &current, next, |view| {
        body = render(&ProgramEnvelope { program: view.clone() })?;
        Ok(ctx.records(StatusCode::OK, &body))
    })
    .await?;
    Ok(Reply::committed(StatusCode::OK, body))
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
    responses((status = 200, body = ProgramEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
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
    responses((status = 200, body = ProgramFundingEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
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
