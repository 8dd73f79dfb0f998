//! The events browser: the tenant's events in one environment, newest first, filtered by type,
//! a page at a time; one event's JSON as the API and webhooks carry it, with its deliveries.

use askama::Template;
use axum::extract::{Path, Query, State};
use cardplane_domain::event::EventType;
use cardplane_domain::ids::EventId;
use cardplane_domain::page::{Cursor, Page, PageRequest};
use cardplane_domain::people::Action;
use serde::Deserialize;

use super::{Workspace, chrome};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::views::EventView;
use crate::web::{Chrome, PageResult, page, when};
use crate::workflows::webhooks::{load_event, parse_event_id};

const PAGE_SIZE: u32 = 25;
/// An event goes to each subscribed endpoint once (redeliveries reuse the delivery).
const DELIVERIES_SHOWN_MAX: u32 = 100;

/// A page of `limit` older than `after` (an id of the listed kind; anything else: the newest).
pub(super) fn older_than(after: Option<&str>, is_id: impl Fn(&str) -> bool, limit: u32) -> PageRequest {
    let cursor = match after {
        Some(a) if is_id(a) => Cursor::After(a.to_owned()),
        _ => Cursor::Newest,
    };
    PageRequest { limit, cursor }
}

/// The cursor of the page after this one, when there is one.
pub(super) fn next_after<T>(page: &Page<T>, id: impl Fn(&T) -> String) -> Option<String> {
    page.has_more.then(|| page.items.last().map(id)).flatten()
}

pub struct EventRow {
    pub id: String,
    pub kind: &'static str,
    pub object_id: String,
    pub created: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    r#type: String,
    /// The next page: events older than this one.
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/events.html")]
struct EventsPage {
    chrome: Chrome,
    env: &'static str,
    events: Vec<EventRow>,
    event_types: Vec<&'static str>,
    /// The type filtered on; empty for every type.
    kind: String,
    next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Path(env): Path<String>,
    Query(q): Query<EventsQuery>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    // An unknown type in the address filters on nothing rather than failing the page.
    let kind = EventType::parse(q.r#type.trim());
    let request = older_than(q.after.as_deref(), |a| EventId::parse(a).is_ok(), PAGE_SIZE);
    let events = state.events.list_events(&ws.scope(), kind, &request).await?;
    let next = next_after(&events, |e| e.id.to_string());
    page(&EventsPage {
        chrome: chrome(&staff, "events", Some(&ws)),
        env: ws.env(),
        events: events
            .items
            .iter()
            .map(|e| EventRow {
                id: e.id.to_string(),
                kind: e.event_type.as_str(),
                object_id: e.object_id.clone(),
                created: when(e.created_at),
            })
            .collect(),
        event_types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
        kind: kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        next,
    })
}

pub struct DeliveryRow {
    pub endpoint_id: String,
    pub state: String,
    pub attempts: i64,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "portal/event.html")]
struct EventPage {
    chrome: Chrome,
    env: &'static str,
    id: String,
    kind: &'static str,
    created: String,
    json: String,
    deliveries: Vec<DeliveryRow>,
}

pub async fn show(State(state): State<AppState>, staff: Staff, Path((env, id)): Path<(String, String)>) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    let id = parse_event_id(&id)?;
    let event = load_event(&state, &ws.scope(), &id).await?;
    let deliveries = state
        .webhooks
        .deliveries_for_event(&ws.scope(), &id, DELIVERIES_SHOWN_MAX)
        .await?;
    page(&EventPage {
        chrome: chrome(&staff, "events", Some(&ws)),
        env: ws.env(),
        id: id.to_string(),
        kind: event.event_type.as_str(),
        created: when(event.created_at),
        json: serde_json::to_string_pretty(&EventView::from(&event)).map_err(ApiError::internal)?,
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryRow {
                endpoint_id: d.endpoint_id,
                state: d.state,
                attempts: d.attempts,
                updated: when(d.updated_at),
            })
            .collect(),
    })
}
