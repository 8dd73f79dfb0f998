//! Cardplane's HTTP API: thin handlers that parse requests into domain types, call the pure core
//! and the stores, and render the documented JSON shapes.

pub mod admin;
pub mod app;
mod common_responses;
pub mod config;
pub mod delivery;
pub mod documents;
pub mod error;
pub mod extract;
pub mod issuing;
pub mod limits;
pub mod lookup;
pub mod middleware;
pub mod network_wire;
pub mod onboarding;
pub mod openapi;
pub mod people;
pub mod reply;
pub mod review;
pub mod routes;
pub mod secrets;
pub mod shutdown;
pub mod state;
pub mod views;
pub mod webhook_listen;

pub use app::{Application, open_state, router};
pub use config::Config;
