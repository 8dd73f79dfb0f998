//! Cardplane's application layer: the workflows between the HTTP edge (`cardplane-api`) and the
//! store. A workflow takes narrow dependencies (store traits, a vault, an HTTP client), runs the
//! pure rules of `cardplane-domain`, and hands the store domain values to write; it never sees an
//! HTTP request. The first is the batch authorization engine.

pub mod authorization;
/// Webhook delivery: the outbox worker that signs and sends due events, with retries.
pub mod delivery;
pub mod disputes;
/// Adapter: where uploaded documents' sealed bytes are kept.
pub mod documents;
/// Adapters: identity verification providers (sandbox, HTTP vendor, none).
pub mod kyc;
/// One signed outbound JSON call (custodians, the KYC vendor).
pub mod outbound;
/// Authorization rules: versions, shadow drafts, promotion, and backtests.
pub mod rules;
pub mod views;
