//! How the authorization engine's objects look on the wire: in API answers and in event
//! payloads (a webhook receiver sees the same shape as a `GET`).

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MerchantView {
    pub id: String,
    pub name: String,
    #[schema(example = "5411")]
    pub mcc: String,
    #[schema(example = "USA")]
    pub country: String,
    pub city: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionTimestamps {
    pub received_at: String,
    pub custodian_sent_at: Option<String>,
    pub custodian_answered_at: Option<String>,
    pub answered_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionView {
    #[schema(example = "txn_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    /// authorization, force_post or refund.
    pub kind: String,
    /// PENDING, DECLINED, COMPLETE, REVERSED or EXPIRED.
    pub state: String,
    pub card_id: String,
    pub cardholder_id: String,
    pub network_transaction_id: String,
    pub currency: String,
    pub requested_amount: i64,
    /// Approved so far (incremental authorizations add to it).
    pub authorized_amount: i64,
    /// Still held on the card.
    pub held_amount: i64,
    pub cleared_amount: i64,
    pub reversed_amount: i64,
    #[schema(example = "00")]
    pub response_code: String,
    pub decline_reason: Option<String>,
    pub authorization_code: Option<String>,
    pub merchant: MerchantView,
    pub entry_mode: String,
    /// A stand-in policy (or the network) decided, not the normal pipeline.
    pub stand_in: bool,
    /// Each check the decision ran, with what it saw, in order.
    #[schema(value_type = Vec<DecisionTraceStep>)]
    pub decision_trace: serde_json::Value,
    pub timestamps: TransactionTimestamps,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&cardplane_domain::authorization::Transaction> for TransactionView {
    fn from(t: &cardplane_domain::authorization::Transaction) -> Self {
        TransactionView {
            id: t.id.to_string(),
            livemode: t.environment.livemode(),
            kind: t.kind.as_str().to_owned(),
            state: t.state.as_str().to_owned(),
            card_id: t.card_id.to_string(),
            cardholder_id: t.cardholder_id.to_string(),
            network_transaction_id: t.network_transaction_id.clone(),
            currency: t.currency.code().to_owned(),
            requested_amount: t.requested_amount,
            authorized_amount: t.authorized_amount,
            held_amount: t.held_amount,
            cleared_amount: t.cleared_amount,
            reversed_amount: t.reversed_amount,
            response_code: t.response_code.as_str().to_owned(),
            decline_reason: t.decline_reason.map(|r| r.as_str().to_owned()),
            authorization_code: t.authorization_code.clone(),
            merchant: MerchantView {
                id: t.merchant.id.clone(),
                name: t.merchant.name.clone(),
                mcc: t.merchant.mcc.clone(),
                country: t.merchant.country.clone(),
                city: t.merchant.city.clone(),
            },
            entry_mode: t.entry_mode.clone(),
            stand_in: t.stand_in,
            decision_trace: t.decision_trace.clone(),
            timestamps: TransactionTimestamps {
                received_at: t.received_at.to_rfc3339(),
                custodian_sent_at: t.custodian_sent_at.map(|x| x.to_rfc3339()),
                custodian_answered_at: t.custodian_answered_at.map(|x| x.to_rfc3339()),
                answered_at: t.answered_at.to_rfc3339(),
            },
            expires_at: t.expires_at.map(|x| x.to_rfc3339()),
            created_at: t.created_at.to_rfc3339(),
            updated_at: t.updated_at.to_rfc3339(),
        }
    }
}

/// The answer to the card network.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NetworkAnswerView {
    /// approved or declined.
    #[schema(example = "approved")]
    pub decision: String,
    /// The transaction this message created or changed.
    pub authorization_id: Option<String>,
    pub approved_amount: i64,
    #[schema(example = "00")]
    pub response_code: String,
    pub reason: Option<String>,
    pub authorization_code: Option<String>,
    /// The card's spendable balance after this message (stored-balance programs).
    pub available_balance: Option<i64>,
    pub currency: Option<String>,
    pub stand_in: bool,
}

/// One check an authorization decision ran (documents the shape of `decision_trace`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionTraceStep {
    /// card, card_state, program, spend_controls, merchant_rules, funds, custodian, ...
    pub check: String,
    /// pass or fail.
    pub result: String,
    pub detail: String,
}

impl From<&cardplane_domain::network::NetworkAnswer> for NetworkAnswerView {
    fn from(a: &cardplane_domain::network::NetworkAnswer) -> Self {
        NetworkAnswerView {
            decision: a.decision.as_str().to_owned(),
            authorization_id: a.authorization_id.as_ref().map(ToString::to_string),
            approved_amount: a.approved_amount,
            response_code: a.response_code.as_str().to_owned(),
            reason: a.reason.map(|r| r.as_str().to_owned()),
            authorization_code: a.authorization_code.clone(),
            available_balance: a.available_balance,
            currency: a.currency.map(|c| c.code().to_owned()),
            stand_in: a.stand_in,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EndpointView {
    #[schema(example = "we_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    #[schema(example = "https://example.com/webhooks/cardplane")]
    pub url: String,
    pub description: Option<String>,
    /// Event types delivered to this endpoint; `["*"]` is every type.
    #[schema(example = json!(["*"]))]
    pub enabled_events: Vec<String>,
    pub enabled: bool,
    /// Why it is disabled: `manual`, `gone` (it answered 410) or `failing` (every attempt failed
    /// for the configured period). Null when enabled.
    pub disabled_reason: Option<String>,
    /// While a secret rotation overlaps: when the previous secret stops signing.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&cardplane_domain::webhook::WebhookEndpoint> for EndpointView {
    fn from(e: &cardplane_domain::webhook::WebhookEndpoint) -> Self {
        let now = cardplane_domain::Timestamp::now();
        EndpointView {
            id: e.id.to_string(),
            livemode: e.environment.livemode(),
            url: e.url.clone(),
            description: e.description.clone(),
            enabled_events: e.enabled_events.names(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.map(|r| r.as_str().to_owned()),
            previous_secret_expires_at: e
                .previous_secret_expires_at
                .filter(|_| e.rotation_active(now))
                .map(|t| t.to_rfc3339()),
            created_at: e.created_at.to_rfc3339(),
            updated_at: e.updated_at.to_rfc3339(),
        }
    }
}

/// A fraud alert, as `GET /alerts/{id}` and the `alert.*` events show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertView {
    #[schema(example = "alrt_0193a0c4e8f07c3a9b1d2e4f5a6b7c8d")]
    pub id: String,
    pub livemode: bool,
    /// rule_review, risk_score or card_testing.
    pub kind: String,
    /// open, assigned or resolved.
    pub status: String,
    pub card_id: String,
    pub cardholder_id: String,
    pub program_id: String,
    pub transaction_id: String,
    /// The review rule that raised it (rule_review).
    pub rule_id: Option<String>,
    pub rule_version: Option<i64>,
    /// The authorization's risk score, 0-999.
    pub risk_score: i64,
    /// What the rule saw, or the score's factors.
    pub detail: String,
    pub assignee_id: Option<String>,
    /// fraud or not_fraud, once resolved.
    pub resolution: Option<String>,
    pub resolution_note: Option<String>,
    /// The resolution froze the card.
    pub card_frozen: bool,
    pub resolved_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&cardplane_domain::alert::Alert> for AlertView {
    fn from(a: &cardplane_domain::alert::Alert) -> Self {
        AlertView {
            id: a.id.to_string(),
            livemode: a.environment.livemode(),
            kind: a.kind.as_str().into(),
            status: a.status.as_str().into(),
            card_id: a.card_id.to_string(),
            cardholder_id: a.cardholder_id.to_string(),
            program_id: a.program_id.to_string(),
            transaction_id: a.transaction_id.to_string(),
            rule_id: a.rule_id.as_ref().map(ToString::to_string),
            rule_version: a.rule_version,
            risk_score: a.risk_score,
            detail: a.detail.clone(),
            assignee_id: a.assignee.as_ref().map(ToString::to_string),
            resolution: a.resolution.map(|r| r.as_str().into()),
            resolution_note: a.resolution_note.clone(),
            card_frozen: a.card_frozen,
            resolved_at: a.resolved_at.map(|t| t.to_rfc3339()),
            created_at: a.created_at.to_rfc3339(),
            updated_at: a.updated_at.to_rfc3339(),
        }
    }
}
