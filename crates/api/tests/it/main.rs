//! Integration tests: a real server over real HTTP against a real database, on both backends.

mod support;

mod auth;
mod cardholders;
mod cards;
mod conventions;
mod idempotency;
mod isolation;
mod kyc;
mod ledger;
mod pagination;
mod webhooks;
