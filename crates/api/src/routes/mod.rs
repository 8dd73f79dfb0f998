pub mod api_keys;
pub mod cardholders;
pub mod events;
pub mod ops;
