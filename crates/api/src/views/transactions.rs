//! Response shapes: Transactions (the views themselves are the engine's: it renders network answers).

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionEnvelope {
    pub transaction: TransactionView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionList {
    pub transactions: Vec<TransactionEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

pub use cardplane_engine::views::{
    DecisionTraceStep, MerchantView, NetworkAnswerView, TransactionTimestamps, TransactionView,
};
