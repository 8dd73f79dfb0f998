//! Response shapes: webhook endpoints (the engine's view: `endpoint.disabled` events carry it too).

pub use cardplane_engine::views::EndpointView;
