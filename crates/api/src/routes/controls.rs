//! `/spend_controls`: amount and count limits per window on a card, a cardholder or a program;
//! `GET /cards/{id}/spend_controls` shows what remains and when each window renews.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::controls::{ControlScopeKind, SpendControl};
use cardplane_domain::controls::{SpendLimit, Window};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{CardholderId, SpendControlId};
use cardplane_domain::{FieldError, Timestamp};
use cardplane_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::lookup::{load_card, load_cardholder, load_program};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::views::page_items;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSpendControlRequest {
    /// Exactly one of card_id, cardholder_id, program_id.
    pub card_id: Option<String>,
    pub cardholder_id: Option<String>,
    pub program_id: Option<String>,
    pub amount_limit: Option<i64>,
    pub count_limit: Option<i64>,
    /// per_transaction, day, week, month, year, lifetime or trailing.
    pub window: Option<String>,
    pub window_secs: Option<i64>,
    #[serde(default)]
    pub mccs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendControlView {
    pub id: String,
    pub livemode: bool,
    /// card, cardholder or program.
    pub scope: String,
    /// The card, cardholder or program it applies to.
    pub scope_id: String,
    pub amount_limit: Option<i64>,
    pub count_limit: Option<i64>,
    pub window: String,
    pub window_secs: Option<i64>,
    pub mccs: Vec<String>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendControlEnvelope {
    pub spend_control: SpendControlView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpendControlList {
    pub spend_controls: Vec<SpendControlEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

/// One control as it stands for a card right now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ControlStatusView {
    pub control_id: String,
    pub window: String,
    pub window_secs: Option<i64>,
    pub mccs: Vec<String>,
    pub amount_limit: Option<i64>,
    pub amount_used: i64,
    pub amount_remaining: Option<i64>,
    pub count_limit: Option<i64>,
    pub count_used: i64,
    pub count_remaining: Option<i64>,
    /// When usage next drops (window boundary, or the oldest counted authorization leaving a
    /// trailing window); null for lifetime and per-transaction limits.
    pub renews_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardControlsView {
    pub card_id: String,
    pub spend_controls: Vec<ControlStatusView>,
}

fn view(c: &SpendControl, scope_ref: String) -> SpendControlView {
    SpendControlView {
        id: c.id.to_string(),
        livemode: c.environment.livemode(),
        scope: c.scope_kind.as_str().to_owned(),
        scope_id: scope_ref,
        amount_limit: c.limit.amount_limit,
        count_limit: c.limit.count_limit,
        window: c.limit.window.as_str().to_owned(),
        window_secs: c.limit.window.trailing_secs(),
        mccs: c.limit.mccs.clone(),
        active: c.active,
        created_at: c.created_at.to_rfc3339(),
        updated_at: c.updated_at.to_rfc3339(),
    }
}

/// Program-scoped controls store the internal program id; show the tenant's own program_id.
async fn scope_ref(state: &AppState, ctx: &Ctx, c: &SpendControl) -> String {
    if c.scope_kind == ControlScopeKind::Program
        && let Ok(id) = cardplane_domain::ids::ProgramId::parse(&c.scope_id)
        && let Ok(p) = state.programs.get_program(&ctx.scope, &id).await
    {
        return p.program_id;
    }
    c.scope_id.clone()
}

#[utoipa::path(
    post, path = "/spend_controls", tag = "Spend controls", request_body = CreateSpendControlRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = SpendControlEnvelope), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn create_spend_control(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CreateSpendControlRequest>,
) -> ApiResult<Reply> {
    let (kind, scope_id, shown) = match (&req.card_id, &req.cardholder_id, &req.program_id) {
        (Some(card), None, None) => {
            let card = load_card(&state, &ctx, card)
                .await
                .map_err(|_| FieldError::invalid("card_id", "no such card"))?;
            (ControlScopeKind::Card, card.id.to_string(), card.id.to_string())
        }
        (None, Some(holder), None) => {
            let id =
                CardholderId::parse(holder).map_err(|_| FieldError::invalid("cardholder_id", "no such cardholder"))?;
            let h = load_cardholder(&state, &ctx, &id)
                .await
                .map_err(|_| FieldError::invalid("cardholder_id", "no such cardholder"))?;
            (ControlScopeKind::Cardholder, h.id.to_string(), h.id.to_string())
        }
        (None, None, Some(program)) => {
            let p = load_program(&state, &ctx, program)
                .await
                .map_err(|_| FieldError::invalid("program_id", "no such program"))?;
            (ControlScopeKind::Program, p.id.to_string(), p.program_id)
        }
        _ => {
            return Err(
                FieldError::invalid("card_id", "give exactly one of card_id, cardholder_id, program_id").into(),
            );
        }
    };
    let window = Window::parse("spend_control", req.window.as_deref(), req.window_secs).map_err(|e| FieldError {
        param: e.param.replace("spend_control.", ""),
        ..e
    })?;
    let limit =
        SpendLimit::parse("spend_control", req.amount_limit, req.count_limit, window, &req.mccs).map_err(|e| {
            FieldError {
                param: e.param.replace("spend_control.", ""),
                ..e
            }
        })?;
    let now = Timestamp::now();
    let control = SpendControl {
        id: SpendControlId::generate(),
        tenant_id: ctx.scope.tenant_id.clone(),
        environment: ctx.scope.environment,
        scope_kind: kind,
        scope_id,
        limit,
        active: true,
        created_at: now,
        updated_at: now,
    };
    let v = view(&control, shown);
    let body = render(&SpendControlEnvelope {
        spend_control: v.clone(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let data = serde_json::to_value(&v).unwrap_or_default();
    let events = [Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        EventType::SpendControlCreated,
        control.id.as_str(),
        data,
        now,
    )];
    state
        .network
        .insert_spend_control(&ctx.scope, &control, &events, response.as_ref(), now)
        .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

async fn load_control(state: &AppState, ctx: &Ctx, raw: &str) -> ApiResult<SpendControl> {
    let id = SpendControlId::parse(raw).map_err(|_| ApiError::not_found("spend_control"))?;
    state
        .network
        .get_spend_control(&ctx.scope, &id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("spend_control"),
            other => other.into(),
        })
}

#[utoipa::path(
    get, path = "/spend_controls", tag = "Spend controls", params(ListParams),
    responses((status = 200, body = SpendControlList)), security(("basic_auth" = []))
)]
pub async fn list_spend_controls(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| SpendControlId::parse(id).is_ok())?;
    let page = state.network.list_spend_controls(&ctx.scope, &page).await?;
    let mut views = Vec::with_capacity(page.items.len());
    for c in &page.items {
        views.push(SpendControlEnvelope {
            spend_control: view(c, scope_ref(&state, &ctx, c).await),
        });
    }
    let (_, has_more, total) = page_items(&page, |_| ());
    Reply::ok(&SpendControlList {
        spend_controls: views,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/spend_controls/{spend_control_id}", tag = "Spend controls", params(("spend_control_id" = String, Path)),
    responses((status = 200, body = SpendControlEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)), security(("basic_auth" = []))
)]
pub async fn get_spend_control(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let c = load_control(&state, &ctx, &id).await?;
    Reply::ok(&SpendControlEnvelope {
        spend_control: view(&c, scope_ref(&state, &ctx, &c).await),
    })
}

#[utoipa::path(
    post, path = "/spend_controls/{spend_control_id}/disable", tag = "Spend controls",
    params(("spend_control_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = SpendControlEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)), security(("basic_auth" = []))
)]
pub async fn disable_spend_control(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Reply> {
    let current = load_control(&state, &ctx, &id).await?;
    let now = Timestamp::now();
    let next = SpendControl {
        active: false,
        updated_at: now,
        ..current
    };
    let v = view(&next, scope_ref(&state, &ctx, &next).await);
    let body = render(&SpendControlEnvelope {
        spend_control: v.clone(),
    })?;
    let response = ctx.records(StatusCode::OK, &body);
    let data = serde_json::to_value(&v).unwrap_or_default();
    let events = [Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        EventType::SpendControlUpdated,
        next.id.as_str(),
        data,
        now,
    )];
    state
        .network
        .set_spend_control_active(&ctx.scope, &next, &events, response.as_ref(), now)
        .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    get, path = "/cards/{card_id}/spend_controls", tag = "Spend controls", params(("card_id" = String, Path)),
    responses((status = 200, description = "Every control on the card, with what remains and when it renews", body = CardControlsView),
              (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn card_spend_controls(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(card_id): Path<String>,
) -> ApiResult<Reply> {
    let card = load_card(&state, &ctx, &card_id).await?;
    let program = state.programs.get_program(&ctx.scope, &card.program).await?;
    let usage = state.engine.control_status(&card, &program, Timestamp::now()).await?;
    let spend_controls = usage
        .into_iter()
        .map(|(u, renews)| ControlStatusView {
            control_id: u.control_id.clone(),
            window: u.limit.window.as_str().to_owned(),
            window_secs: u.limit.window.trailing_secs(),
            mccs: u.limit.mccs.clone(),
            amount_limit: u.limit.amount_limit,
            amount_used: u.used_amount,
            amount_remaining: u.limit.amount_limit.map(|l| (l - u.used_amount).max(0)),
            count_limit: u.limit.count_limit,
            count_used: u.used_count,
            count_remaining: u.limit.count_limit.map(|l| (l - u.used_count).max(0)),
            renews_at: renews.map(|t| t.to_rfc3339()),
        })
        .collect();
    Reply::ok(&CardControlsView {
        card_id: card.id.to_string(),
        spend_controls,
    })
}
