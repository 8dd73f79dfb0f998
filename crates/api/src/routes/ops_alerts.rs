//! The fraud alert queue for operators: alerts across tenants (unresolved first), assignment,
//! and resolution as fraud or not; a fraud resolution may freeze the card through the card's
//! own lifecycle, in the same transaction as the alert, its events and the audit entry.

use axum::extract::{Path, State};
use cardplane_domain::alert::Alert;
use cardplane_engine::views::AlertView;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, StrictQuery};
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{OpsAlertList, OpsAlertView};
use crate::workflows::alerts::{self as workflow, QueueAsk, Resolve};

const QUEUE_MAX: u32 = 200;

fn view(a: &Alert) -> OpsAlertView {
    OpsAlertView {
        tenant_id: a.tenant_id.to_string(),
        alert: AlertView::from(a),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQueueQuery {
    pub tenant_id: Option<String>,
    /// open, assigned or resolved.
    pub status: Option<String>,
    /// rule_review, risk_score or card_testing.
    pub kind: Option<String>,
    pub card_id: Option<String>,
    pub assignee_id: Option<String>,
    /// 1 to 200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
}

#[utoipa::path(
    get, path = "/ops/alerts", tag = "Operations console", params(AlertQueueQuery),
    responses(
        (status = 200, description = "Unresolved alerts first, oldest first", body = OpsAlertList),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<AlertQueueQuery>,
) -> ApiResult<Reply> {
    let filter = workflow::queue_filter(
        &staff,
        &QueueAsk {
            tenant_id: q.tenant_id.as_deref(),
            status: q.status.as_deref(),
            kind: q.kind.as_deref(),
            card_id: q.card_id.as_deref(),
            assignee_id: q.assignee_id.as_deref(),
        },
    )?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=QUEUE_MAX).contains(l))
            .ok_or_else(|| ApiError::invalid("parameter_invalid", "1 to 200").with_param("limit"))?,
    };
    let rows = state.alerts.alert_queue(&filter, limit).await?;
    Reply::ok(&OpsAlertList {
        data: rows.iter().map(view).collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertAssignRequest {
    /// An operator who may work alerts; absent or null: yourself.
    pub assignee_id: Option<String>,
}

#[utoipa::path(
    post, path = "/ops/alerts/{alert_id}/assign", tag = "Operations console",
    params(("alert_id" = String, Path)), request_body = AlertAssignRequest,
    responses(
        (status = 200, body = OpsAlertView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "alert_resolved or concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn assign_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AlertAssignRequest>,
) -> ApiResult<Reply> {
    let next = workflow::assign(&state, &staff, &id, req.assignee_id.as_deref()).await?;
    Reply::ok(&view(&next))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertResolveRequest {
    /// fraud or not_fraud.
    pub resolution: Option<String>,
    /// Up to 2,000 characters.
    pub note: Option<String>,
    /// Freeze the card (a fraud resolution only); a card already frozen or closed is left as it is.
    #[serde(default)]
    pub freeze_card: bool,
}

#[utoipa::path(
    post, path = "/ops/alerts/{alert_id}/resolve", tag = "Operations console",
    params(("alert_id" = String, Path)), request_body = AlertResolveRequest,
    responses(
        (status = 200, body = OpsAlertView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "alert_resolved, freeze_needs_fraud or concurrent_update", body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn resolve_alert(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AlertResolveRequest>,
) -> ApiResult<Reply> {
    let resolve = Resolve {
        resolution: req.resolution.as_deref(),
        note: req.note.as_deref(),
        freeze_card: req.freeze_card,
        note_required: false,
    };
    let next = workflow::resolve(&state, &staff, &id, &resolve).await?;
    Reply::ok(&view(&next))
}
