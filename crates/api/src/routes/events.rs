//! `/events`: the log of every state change, newest first.

use axum::extract::{Path, State};
use cardplane_domain::ids::EventId;

use crate::http::error::ApiResult;
use crate::http::extract::{Ctx, ListParams, StrictQuery};
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{EventEnvelope, EventList, page_items};
use crate::workflows::webhooks;

#[utoipa::path(
    get, path = "/events", tag = "Events",
    params(ListParams),
    responses((status = 200, body = EventList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_events(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| EventId::parse(id).is_ok())?;
    let page = state.events.list_events(&ctx.scope, None, &page).await?;
    let (events, has_more, total) = page_items(&page, |e| EventEnvelope { event: e.into() });
    Reply::ok(&EventList {
        events,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/events/{event_id}", tag = "Events",
    params(("event_id" = String, Path)),
    responses((status = 200, body = EventEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_event(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = webhooks::parse_event_id(&id)?;
    let event = webhooks::load_event(&state, &ctx.scope, &id).await?;
    Reply::ok(&EventEnvelope { event: (&event).into() })
}
