//! `/authorization_rules`: the tenant's own decision rules on a program, a cardholder or a card,
//! with immutable versions: create (active, or a draft in shadow), new drafts, promote, disable,
//! and backtests of a draft over stored history. The language is the domain's
//! (`domain::rules`); the workflow is `engine::rules`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::FieldError;
use cardplane_domain::Timestamp;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::ids::BacktestId;
use cardplane_domain::ids::{AuthorizationRuleId, CardholderId};
use cardplane_engine::rules::view::{
    BacktestEnvelope, BacktestView, RuleEnvelope, RuleList, RuleVersionList, RuleVersionView, RuleView,
};
use cardplane_engine::rules::{Change, Mode, NewRule, RuleScope, Submitted};
use cardplane_store::rules::RuleFilter;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::lookup::{load_card, load_cardholder, load_program};
use crate::http::reply::Reply;
use crate::routes::disputes::recorder;
use crate::state::AppState;
use crate::workflows::rules::{parse_rule_id, rule_error};

/// A JSON body the caller may leave out altogether (no body and no Content-Type): then
/// `T::default()`. A body that is there is read like any other (`JsonBody`).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> axum::extract::FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let absent = headers.get(axum::http::header::CONTENT_TYPE).is_none()
            && headers
                .get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|l| l.as_bytes() == b"0")
            && headers.get(axum::http::header::TRANSFER_ENCODING).is_none();
        if absent {
            return Ok(OptionalJsonBody(T::default()));
        }
        let JsonBody(body) = JsonBody::<T>::from_request(req, state).await?;
        Ok(OptionalJsonBody(body))
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleScopeRequest {
    /// program, cardholder or card.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The program's own `program_id`, or a cardholder or card id.
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRuleRequest {
    pub scope: Option<RuleScopeRequest>,
    /// Up to 200 characters.
    #[schema(value_type = Option<String>, example = "No gambling")]
    pub name: Option<Value>,
    /// 0 to 10000, default 100; lower runs first.
    #[schema(value_type = Option<i64>, example = 100)]
    pub priority: Option<Value>,
    /// conditional_action, velocity_limit or merchant_lock.
    #[serde(rename = "type")]
    #[schema(value_type = Option<String>, example = "conditional_action")]
    pub kind: Option<Value>,
    /// The kind's parameters (see docs/API.md, "Authorization rules").
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// active (applied at once) or shadow (default: a draft evaluated beside the active rules,
    /// recorded in the decision trace, never applied, until promoted).
    #[schema(example = "shadow")]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersionRequest {
    /// Default: the previous version's.
    #[schema(value_type = Option<String>)]
    pub name: Option<Value>,
    /// Default: the previous version's.
    #[schema(value_type = Option<i64>)]
    pub priority: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// May be left out (no body): promote whatever is the draft.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Promote only if this is still the draft (guards against promoting a newer draft than
    /// the one reviewed).
    pub version: Option<i64>,
}

fn bad(param: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message.to_owned()).with_param(param)
}

/// The rule's scope, loaded in the caller's tenant and environment: a 400 naming `scope.id`
/// when there is no such object here.
async fn rule_scope(state: &AppState, ctx: &Ctx, req: Option<&RuleScopeRequest>) -> ApiResult<RuleScope> {
    let req = req.ok_or_else(|| FieldError::missing("scope"))?;
    let kind = req.kind.as_deref().ok_or_else(|| FieldError::missing("scope.type"))?;
    let kind = ControlScopeKind::parse(kind).ok_or_else(|| bad("scope.type", "must be program, cardholder or card"))?;
    let id = req.id.as_deref().ok_or_else(|| FieldError::missing("scope.id"))?;
    let missing = |what: &str| bad("scope.id", &format!("no such {what}"));
    Ok(match kind {
        ControlScopeKind::Program => {
            let p = load_program(state, ctx, id).await.map_err(|_| missing("program"))?;
            RuleScope {
                kind,
                id: p.id.to_string(),
                shown: p.program_id,
            }
        }
        ControlScopeKind::Cardholder => {
            let holder = CardholderId::parse(id).map_err(|_| missing("cardholder"))?;
            let h = load_cardholder(state, ctx, &holder)
                .await
                .map_err(|_| missing("cardholder"))?;
            RuleScope {
                kind,
                id: h.id.to_string(),
                shown: h.id.to_string(),
            }
        }
        ControlScopeKind::Card => {
            let c = load_card(state, ctx, id).await.map_err(|_| missing("card"))?;
            RuleScope {
                kind,
                id: c.id.to_string(),
                shown: c.id.to_string(),
            }
        }
    })
}

#[utoipa::path(
    post, path = "/authorization_rules", tag = "Authorization rules", request_body = CreateRuleRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = RuleEnvelope),
        (status = 400, description = "parameter_missing or parameter_invalid, naming the field (e.g. `parameters.conditions[0].value`)", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_rule(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CreateRuleRequest>,
) -> ApiResult<Reply> {
    let mode = match req.mode.as_deref() {
        None | Some("shadow") => Mode::Shadow,
        Some("active") => Mode::Active,
        Some(_) => return Err(bad("mode", "must be active or shadow")),
    };
    let scope = rule_scope(&state, &ctx, req.scope.as_ref()).await?;
    let submitted = Submitted {
        name: req.name,
        priority: req.priority,
        kind: req.kind,
        parameters: req.parameters,
    };
    let committed = state
        .rules
        .create(
            &ctx.scope,
            NewRule {
                scope,
                submitted: &submitted,
                mode,
                by: ctx.key.id.as_str(),
            },
            &recorder(&ctx),
            ctx.now(),
        )
        .await
        .map_err(rule_error)?;
    Ok(Reply::committed(StatusCode::CREATED, committed.body))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RuleListParams {
    /// 1 to 100, default 25.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
    /// program, cardholder or card.
    pub scope_type: Option<String>,
    /// The program's own `program_id`, or a cardholder or card id.
    pub scope_id: Option<String>,
}

#[utoipa::path(
    get, path = "/authorization_rules", tag = "Authorization rules", params(RuleListParams),
    responses((status = 200, body = RuleList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_rules(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(q): StrictQuery<RuleListParams>,
) -> ApiResult<Reply> {
    let page = ListParams {
        limit: q.limit,
        starting_after: q.starting_after,
        ending_before: q.ending_before,
    }
    .page(|id| AuthorizationRuleId::parse(id).is_ok())?;
    let filter = RuleFilter {
        scope_kind: q
            .scope_type
            .as_deref()
            .map(|k| ControlScopeKind::parse(k).ok_or_else(|| bad("scope_type", "must be program, cardholder or card")))
            .transpose()?,
        scope_ref: q.scope_id,
    };
    let page = state.rules.store().list_rules(&ctx.scope, &filter, &page).await?;
    Reply::ok(&RuleList {
        authorization_rules: page
            .items
            .iter()
            .map(|r| RuleEnvelope {
                authorization_rule: RuleView::from(r),
            })
            .collect(),
        has_more: page.has_more,
        total: page.total,
    })
}

#[utoipa::path(
    get, path = "/authorization_rules/{rule_id}", tag = "Authorization rules",
    params(("rule_id" = String, Path)),
    responses((status = 200, body = RuleEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_rule(State(state): State<AppState>, ctx: Ctx, Path(rule_id): Path<String>) -> ApiResult<Reply> {
    let id = parse_rule_id(&rule_id)?;
    let rule = state
        .rules
        .store()
        .get_rule(&ctx.scope, &id)
        .await
        .map_err(|e| rule_error(e.into()))?;
    Reply::ok(&RuleEnvelope {
        authorization_rule: RuleView::from(&rule),
    })
}

#[utoipa::path(
    get, path = "/authorization_rules/{rule_id}/versions", tag = "Authorization rules",
    params(("rule_id" = String, Path)),
    responses((status = 200, description = "Every version, oldest first", body = RuleVersionList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_versions(State(state): State<AppState>, ctx: Ctx, Path(rule_id): Path<String>) -> ApiResult<Reply> {
    let id = parse_rule_id(&rule_id)?;
    // 404 for a rule that is not this scope's, even with no versions to show.
    state
        .rules
        .store()
        .get_rule(&ctx.scope, &id)
        .await
        .map_err(|e| rule_error(e.into()))?;
    let versions = state.rules.store().list_rule_versions(&ctx.scope, &id).await?;
    Reply::ok(&RuleVersionList {
        versions: versions.iter().map(RuleVersionView::from).collect(),
    })
}

async fn change(state: &AppState, ctx: &Ctx, raw: &str, change: Change) -> ApiResult<Reply> {
    let id = parse_rule_id(raw)?;
    let committed =
        crate::workflows::rules::change(state, &ctx.scope, &id, change, ctx.key.id.as_str(), &recorder(ctx)).await?;
    Ok(Reply::committed(StatusCode::OK, committed.body))
}

#[utoipa::path(
    post, path = "/authorization_rules/{rule_id}/versions", tag = "Authorization rules",
    params(("rule_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = NewVersionRequest,
    responses(
        (status = 200, description = "The rule with its new draft (a previous draft is discarded)", body = RuleEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn new_version(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(rule_id): Path<String>,
    JsonBody(req): JsonBody<NewVersionRequest>,
) -> ApiResult<Reply> {
    let submitted = Submitted {
        name: req.name,
        priority: req.priority,
        kind: None,
        parameters: req.parameters,
    };
    change(&state, &ctx, &rule_id, Change::NewVersion(submitted)).await
}

#[utoipa::path(
    post, path = "/authorization_rules/{rule_id}/promote", tag = "Authorization rules",
    params(("rule_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = PromoteRequest,
    responses(
        (status = 200, description = "The draft is active; the previous active version is superseded", body = RuleEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "rule_has_no_draft, version_not_draft or concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn promote_rule(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(rule_id): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<PromoteRequest>,
) -> ApiResult<Reply> {
    change(&state, &ctx, &rule_id, Change::Promote(req.version)).await
}

#[utoipa::path(
    post, path = "/authorization_rules/{rule_id}/disable", tag = "Authorization rules",
    params(("rule_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, description = "No version runs any more (the active one is superseded, the draft discarded)", body = RuleEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "rule_disabled or concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn disable_rule(State(state): State<AppState>, ctx: Ctx, Path(rule_id): Path<String>) -> ApiResult<Reply> {
    change(&state, &ctx, &rule_id, Change::Disable).await
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// RFC 3339; the window's first instant.
    #[schema(example = "2026-11-01T00:00:00Z")]
    pub start: Option<String>,
    /// RFC 3339; after `start`, at most 93 days later (exclusive).
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub end: Option<String>,
}

fn instant(raw: Option<&str>, field: &str) -> ApiResult<Timestamp> {
    let raw = raw.ok_or_else(|| FieldError::missing(field))?;
    Timestamp::parse_rfc3339(raw).ok_or_else(|| bad(field, "an RFC 3339 instant, e.g. 2026-12-01T10:00:00Z"))
}

#[utoipa::path(
    post, path = "/authorization_rules/{rule_id}/backtests", tag = "Authorization rules",
    params(("rule_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = BacktestRequest,
    responses(
        (status = 202, description = "Queued: replayed in the background; poll it", body = BacktestEnvelope),
        (status = 400, description = "parameter_missing or parameter_invalid (`start`, `end`: end after start, at most 93 days)", body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "rule_has_no_draft", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn start_backtest(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(rule_id): Path<String>,
    JsonBody(req): JsonBody<BacktestRequest>,
) -> ApiResult<Reply> {
    let id = parse_rule_id(&rule_id)?;
    let window = match (
        instant(req.start.as_deref(), "start"),
        instant(req.end.as_deref(), "end"),
    ) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(e), _) | (_, Err(e)) => {
            // Someone else's rule is a 404 whatever the body says.
            state
                .rules
                .store()
                .get_rule(&ctx.scope, &id)
                .await
                .map_err(|e| rule_error(e.into()))?;
            return Err(e);
        }
    };
    let (_, body) = state
        .rules
        .start_backtest(&ctx.scope, &id, window, &recorder(&ctx), ctx.now())
        .await
        .map_err(rule_error)?;
    Ok(Reply::committed(StatusCode::ACCEPTED, body))
}

#[utoipa::path(
    get, path = "/authorization_rules/{rule_id}/backtests/{backtest_id}", tag = "Authorization rules",
    params(("rule_id" = String, Path), ("backtest_id" = String, Path)),
    responses((status = 200, body = BacktestEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_backtest(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((rule_id, backtest_id)): Path<(String, String)>,
) -> ApiResult<Reply> {
    let id = parse_rule_id(&rule_id)?;
    let backtest = BacktestId::parse(&backtest_id).map_err(|_| ApiError::not_found("backtest"))?;
    let b = state
        .rules
        .backtests()
        .get_backtest(&ctx.scope, &id, &backtest)
        .await
        .map_err(|e| match e {
            cardplane_store::StoreError::NotFound => ApiError::not_found("backtest"),
            e => e.into(),
        })?;
    Reply::ok(&BacktestEnvelope {
        backtest: BacktestView::from(&b),
    })
}
