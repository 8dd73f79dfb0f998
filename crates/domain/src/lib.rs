//! Cardplane's pure domain core: no tokio, sqlx or axum. Everything here is deterministic given
//! its inputs (time and randomness are passed in or confined to ID/key generation).

#[macro_use]
mod wire_enum;

pub mod alert;
pub mod api_key;
pub mod audit;
pub mod authorization;
pub mod business_days;
pub mod card;
pub mod card_controls;
pub mod card_order;
pub mod cardholder;
pub mod compliance;
pub mod controls;
pub mod country;
pub mod dispute;
pub mod environment;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod invitation;
pub mod kyc;
pub mod ledger;
pub mod money;
pub mod network;
pub mod page;
pub mod pan;
pub mod people;
pub mod program;
pub mod request_log;
pub mod rules;
pub mod tenant;
pub mod time;
pub mod totp;
pub mod vault;
pub mod version;
pub mod webhook;

pub use environment::Environment;
pub use error::FieldError;
pub use time::Timestamp;
