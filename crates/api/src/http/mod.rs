//! The HTTP edge's plumbing, shared by every route: middleware (access log, version, credentials,
//! idempotency, audit), extractors, the error envelope, replies, rate limits, graceful shutdown,
//! staff sessions, path lookups and the network interface's shared request pieces.

pub(crate) mod common_responses;
pub mod error;
pub mod extract;
pub mod limits;
pub mod lookup;
pub mod middleware;
pub mod network;
pub mod people;
pub mod reply;
pub mod request_log;
pub mod request_log_queue;
pub mod shutdown;
