//! The API's own workflows: onboarding (create/update a cardholder, run KYC, fulfil card orders,
//! apply review verdicts), issuing, review cases, document uploads, operator administration and
//! key material. Routes parse a request, call one of these, and render. They still take the whole
//! `AppState`; the engine crate holds the workflows that already take narrow dependencies
//! (authorization, webhook delivery, the KYC and document-storage adapters).

pub mod admin;
pub mod alerts;
pub mod api_keys;
pub mod documents;
pub mod invitations;
pub mod issuing;
pub mod onboarding;
pub mod people;
pub mod programs;
pub mod request_log;
pub mod review;
pub mod rules;
pub mod secrets;
pub mod simulator;
pub mod webhooks;
