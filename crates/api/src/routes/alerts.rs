//! `/alerts`: the fraud alerts the engine raised on the tenant's authorizations (a `review`
//! rule, a risk score at or above the program's threshold, a card-testing pattern), as the
//! custodian sees them; operators work them in `/ops/alerts`.

use axum::extract::{Path, State};
use cardplane_domain::ids::AlertId;
use cardplane_engine::views::AlertView;
use cardplane_store::StoreError;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, ListParams, StrictQuery};
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{AlertEnvelope, AlertList};
use crate::workflows::alerts::{alert_filter, parse_alert_id};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertListParams {
    /// 1 to 50, default 25.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
    /// open, assigned or resolved.
    pub status: Option<String>,
    /// rule_review, risk_score or card_testing.
    pub kind: Option<String>,
    pub card_id: Option<String>,
}

#[utoipa::path(
    get, path = "/alerts", tag = "Authorization rules", params(AlertListParams),
    responses((status = 200, body = AlertList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(q): StrictQuery<AlertListParams>,
) -> ApiResult<Reply> {
    let page = ListParams {
        limit: q.limit,
        starting_after: q.starting_after,
        ending_before: q.ending_before,
    }
    .page(|id| AlertId::parse(id).is_ok())?;
    let filter = alert_filter(
        Some(ctx.scope.clone()),
        q.status.as_deref(),
        q.kind.as_deref(),
        q.card_id.as_deref(),
    )?;
    let page = state.alerts.list_alerts(&filter, &page).await?;
    Reply::ok(&AlertList {
        alerts: page
            .items
            .iter()
            .map(|a| AlertEnvelope {
                alert: AlertView::from(a),
            })
            .collect(),
        has_more: page.has_more,
        total: page.total,
    })
}

#[utoipa::path(
    get, path = "/alerts/{alert_id}", tag = "Authorization rules", params(("alert_id" = String, Path)),
    responses((status = 200, body = AlertEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_alert(State(state): State<AppState>, ctx: Ctx, Path(alert_id): Path<String>) -> ApiResult<Reply> {
    let id = parse_alert_id(&alert_id)?;
    let alert = state
        .alerts
        .get_alert(Some(&ctx.scope), &id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("alert"),
            e => e.into(),
        })?;
    Reply::ok(&AlertEnvelope {
        alert: AlertView::from(&alert),
    })
}
