//! Cardplane storage: one runtime-query implementation over sqlx `Any`, so the same SQL runs on
//! the embedded SQLite default and on PostgreSQL. Each aggregate has a narrow trait; an operation
//! that must be atomic (state change + its events + the idempotent response) is one method that
//! owns its transaction.

mod db;
mod effects;
mod error;
mod rows;
mod sql;

/// A fixed set of wire names for a storage-level enum.
#[macro_export]
macro_rules! store_enum {
    ($name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($wire => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

pub mod alerts;
pub mod api_keys;
pub mod audit;
/// Bench provisioning (bulk tenants, cards and balances): compiled only for the CLI's `bench`
/// command, never into a server built without the feature.
#[cfg(feature = "bench")]
pub mod bench;
pub mod cardholders;
pub mod cards;
pub mod compliance;
pub mod disputes;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod invitations;
pub mod ledger;
pub mod network;
pub mod network_batch;
pub mod people;
pub mod programs;
pub mod request_log;
pub mod rules;
pub mod tenants;
pub mod transactions;
pub mod vault;
pub mod webhooks;

pub use db::{Backend, Db, DbOptions, request_log_url};
pub use error::StoreError;

use cardplane_domain::Environment;
use cardplane_domain::ids::TenantId;

/// The tenant and environment every scoped query runs in. Handlers get it from the API key, so
/// an unscoped query is hard to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub tenant_id: TenantId,
    pub environment: Environment,
}

/// What a mutation writes with its effect, in the same transaction, so neither can be lost
/// without the other: its answer for idempotent replay (when the request holds a key) and its
/// audit entry (when the caller is audited).
#[derive(Debug, Clone, Default)]
pub struct EffectRecords {
    pub replay: Option<IdempotentResponse>,
    pub audit: Option<cardplane_domain::audit::AuditRecord>,
}

/// A response to store under an idempotency key in the same transaction as the effect.
#[derive(Debug, Clone)]
pub struct IdempotentResponse {
    pub key: String,
    /// The token of our claim: completing fails if the key was taken over since.
    pub claim_token: String,
    pub status: u16,
    pub body: String,
}

/// The SQL store for every aggregate.
#[derive(Clone)]
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
