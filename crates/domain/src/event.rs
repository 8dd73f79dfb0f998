//! The event log: every state change appends one event in the same transaction as the change.
//! Webhook delivery reads this log.

use crate::environment::Environment;
use crate::ids::{EventId, TenantId};
use crate::time::Timestamp;

crate::wire_enum!(EventType {
    CardholderCreated => "cardholder.created",
    CardholderUpdated => "cardholder.updated",
    CardholderKycUpdated => "cardholder.kyc_updated",
    CardOrderCreated => "card_order.created",
    CardOrderUpdated => "card_order.updated",
    ProgramCreated => "program.created",
    ProgramUpdated => "program.updated",
    ProgramFunded => "program.funded",
    CardCreated => "card.created",
    CardUpdated => "card.updated",
    CardRevealed => "card.revealed",
    BalanceAdjustmentCreated => "balance_adjustment.created",
    TransactionCreated => "transaction.created",
    TransactionUpdated => "transaction.updated",
    DisputeCreated => "dispute.created",
    DisputeUpdated => "dispute.updated",
    DisputeProvisionalCreditGranted => "dispute.provisional_credit.granted",
    DisputeProvisionalCreditReversed => "dispute.provisional_credit.reversed",
    DisputeClosed => "dispute.closed",
    SpendControlCreated => "spend_control.created",
    SpendControlUpdated => "spend_control.updated",
    ApiKeyCreated => "api_key.created",
    ApiKeyRevoked => "api_key.revoked",
    WebhookEndpointCreated => "webhook_endpoint.created",
    WebhookEndpointUpdated => "webhook_endpoint.updated",
    WebhookEndpointDeleted => "webhook_endpoint.deleted",
    WebhookEndpointDisabled => "webhook_endpoint.disabled",
    AuthorizationRuleCreated => "authorization_rule.created",
    AuthorizationRuleUpdated => "authorization_rule.updated",
    AuthorizationRuleBacktestCompleted => "authorization_rule.backtest.completed",
    AlertCreated => "alert.created",
    AlertUpdated => "alert.updated",
});

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub event_type: EventType,
    pub object_id: String,
    /// A snapshot of the object after the change, as the API renders it.
    pub data: serde_json::Value,
    pub created_at: Timestamp,
}

impl Event {
    pub fn new(
        tenant_id: &TenantId,
        environment: Environment,
        event_type: EventType,
        object_id: impl Into<String>,
        data: serde_json::Value,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id: EventId::generate(),
            tenant_id: tenant_id.clone(),
            environment,
            event_type,
            object_id: object_id.into(),
            data,
            created_at,
        }
    }
}
