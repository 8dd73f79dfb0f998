//! Response shapes: Events.

use cardplane_domain::event::Event;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    #[schema(example = "cardholder.created")]
    pub kind: String,
    pub livemode: bool,
    pub object_id: String,
    /// A snapshot of the object after the change.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id.to_string(),
            kind: e.event_type.as_str().to_owned(),
            livemode: e.environment.livemode(),
            object_id: e.object_id.clone(),
            data: e.data.clone(),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventEnvelope {
    pub event: EventView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventEnvelope>,
    pub has_more: bool,
    pub total: i64,
}
