//! Fraud alerts and rule backtests on the wire (the rule itself is `engine::rules::view`).

use cardplane_engine::views::AlertView;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertEnvelope {
    pub alert: AlertView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

/// An alert in the operators' queue, with its tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpsAlertView {
    pub tenant_id: String,
    pub alert: AlertView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpsAlertList {
    /// Unresolved first, oldest first.
    pub data: Vec<OpsAlertView>,
}
