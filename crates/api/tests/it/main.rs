//! Integration tests: a real server over real HTTP against a real database, on both backends.

#[macro_use]
mod support;

mod auth;
mod authorization;
mod bank;
mod batch_model;
mod cardholders;
mod cards;
mod console;
mod console_alerts;
mod console_people;
mod console_programs;
mod console_scale;
mod contract;
mod conventions;
mod custodian;
mod disputes;
mod engine;
mod fuzz_http;
mod idempotency;
mod isolation;
mod isolation_matrix;
mod kyc;
mod ledger;
mod lifecycle_model;
mod limits;
mod money_limits;
mod net;
mod ops;
mod pagination;
mod portal;
mod portal_tools;
mod portal_usage;
mod request_log;
mod rules;
mod secrets_at_scale;
mod shutdown;
mod webhooks;
