//! Response shapes, one file per resource. Field names and order follow the Apto Core API
//! samples; objects are wrapped in a singular envelope (`{"cardholder": {...}}`) and lists in a
//! plural one with `has_more` and `total`, as the seed does.

mod api_keys;
mod cardholders;
mod cards;
mod cases;
mod common;
mod events;
mod people;
mod programs;
mod rules;
mod transactions;
mod webhooks;

pub use api_keys::*;
pub use cardholders::*;
pub use cards::*;
pub use cases::*;
pub use common::*;
pub use events::*;
pub use people::*;
pub use programs::*;
pub use rules::*;
pub use transactions::*;
pub use webhooks::*;
