//! Fraud alerts: raised by the engine in the authorization's own batch transaction (a `review`
//! rule that matched an approved authorization, a risk score at or above the program's
//! threshold, a card-testing pattern), then worked by operators: open → assigned → resolved as
//! fraud (which may freeze the card) or not fraud.

use crate::environment::Environment;
use crate::ids::{AlertId, AuthorizationRuleId, CardId, CardholderId, ProgramId, TenantId, TransactionId, UserId};
use crate::time::Timestamp;

crate::wire_enum!(AlertKind {
    RuleReview => "rule_review",
    RiskScore => "risk_score",
    CardTesting => "card_testing",
});

crate::wire_enum!(AlertStatus {
    Open => "open",
    Assigned => "assigned",
    Resolved => "resolved",
});

crate::wire_enum!(AlertResolution {
    Fraud => "fraud",
    NotFraud => "not_fraud",
});

/// The risk score at which a program raises an alert unless it sets its own.
pub const RISK_ALERT_THRESHOLD_DEFAULT: i64 = 800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: AlertId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub kind: AlertKind,
    pub status: AlertStatus,
    pub card_id: CardId,
    pub cardholder_id: CardholderId,
    pub program_id: ProgramId,
    pub transaction_id: TransactionId,
    pub rule_id: Option<AuthorizationRuleId>,
    pub rule_version: Option<i64>,
    pub risk_score: i64,
    pub detail: String,
    pub assignee: Option<UserId>,
    pub resolution: Option<AlertResolution>,
    pub resolution_note: Option<String>,
    pub card_frozen: bool,
    pub resolved_by: Option<UserId>,
    pub resolved_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlertStepError {
    #[error("the alert is already resolved")]
    AlreadyResolved,
    #[error("only a fraud resolution can freeze the card")]
    FreezeNeedsFraud,
}

impl AlertStepError {
    pub fn code(self) -> &'static str {
        match self {
            AlertStepError::AlreadyResolved => "alert_resolved",
            AlertStepError::FreezeNeedsFraud => "freeze_needs_fraud",
        }
    }
}

impl Alert {
    pub fn assign(&self, to: UserId, now: Timestamp) -> Result<Alert, AlertStepError> {
        if self.status == AlertStatus::Resolved {
            return Err(AlertStepError::AlreadyResolved);
        }
        Ok(Alert {
            status: AlertStatus::Assigned,
            assignee: Some(to),
            updated_at: now,
            ..self.clone()
        })
    }

    pub fn resolve(
        &self,
        by: UserId,
        resolution: AlertResolution,
        note: Option<String>,
        freeze_card: bool,
        now: Timestamp,
    ) -> Result<Alert, AlertStepError> {
        if self.status == AlertStatus::Resolved {
            return Err(AlertStepError::AlreadyResolved);
        }
        if freeze_card && resolution != AlertResolution::Fraud {
            return Err(AlertStepError::FreezeNeedsFraud);
        }
        Ok(Alert {
            status: AlertStatus::Resolved,
            resolution: Some(resolution),
            resolution_note: note,
            card_frozen: freeze_card,
            resolved_by: Some(by),
            resolved_at: Some(now),
            updated_at: now,
            ..self.clone()
        })
    }
}
