pub mod api_keys;
pub mod cardholders;
pub mod cards;
pub mod events;
pub mod ops;
pub mod programs;
pub mod sandbox;
pub mod webhooks;
