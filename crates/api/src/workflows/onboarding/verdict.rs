//! The review workflow's verdicts applied to a cardholder: its KYC state and history, orders that
//! waited for KYC fulfilled when it passes, events and the case change, in one transaction.

use cardplane_domain::Timestamp;
use cardplane_domain::card_order::{CardOrderEvent, CardOrderStatus};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{CardholderId, KycCheckId};
use cardplane_domain::kyc::KycCheck;
use cardplane_domain::kyc::KycResult;
use cardplane_store::cardholders::CardholderWrite;
use cardplane_store::cardholders::ReviewWrite;
use cardplane_store::compliance::CaseChange;
use cardplane_store::ledger::PostError;
use cardplane_store::{EffectRecords, Scope};

use crate::workflows::issuing::PAN_ATTEMPTS_MAX;

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::CardholderEnvelope;

use super::fulfilment::{Fulfilment, UPDATE_ATTEMPTS_MAX, UpdateError, post_failure, snapshot};

/// A KYC result that comes from the review workflow, and its source (the `provider` of its
/// `kyc_checks` entry).
#[derive(Debug, Clone, Copy)]
pub struct ReviewVerdict<'a> {
    pub result: KycResult,
    pub source: &'static str,
    /// What an API request commits with it (its idempotent answer).
    pub records: Option<&'a EffectRecords>,
}

impl ReviewVerdict<'_> {
    /// A reviewer's decision.
    pub fn manual(result: KycResult) -> Self {
        Self {
            result,
            source: "manual_review",
            records: None,
        }
    }
}

/// A verdict of the review workflow, committed with the case change that produced it: the
/// cardholder's KYC state and history, orders waiting for KYC fulfilled when it passes, events,
/// and the audit entry, all in one transaction.
pub async fn apply_review(
    state: &AppState,
    scope: &Scope,
    id: &CardholderId,
    verdict: ReviewVerdict<'_>,
    change: CaseChange<'_>,
    now: Timestamp,
) -> ApiResult<()> {
    let mut unfunded = false;
    for _ in 0..UPDATE_ATTEMPTS_MAX + PAN_ATTEMPTS_MAX {
        match try_apply_review(state, scope, id, verdict, change, unfunded, now).await {
            Err(UpdateError::Post(PostError::Store(e)))
                if e.is_conflict_on("cardholders_version", "cards_pan_hash") =>
            {
                continue;
            }
            Err(UpdateError::Post(PostError::InsufficientFunds(_))) if !unfunded => unfunded = true,
            Err(UpdateError::Post(PostError::Store(e)))
                if e.is_conflict_on("compliance_cases_version", "compliance_cases_version") =>
            {
                return Err(ApiError::conflict(
                    "case_changed",
                    "The case changed while this decision was made; reload it and decide again",
                ));
            }
            Err(UpdateError::Post(e)) => return Err(post_failure(e)),
            Err(UpdateError::Api(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
    Err(ApiError::conflict(
        "concurrent_update",
        "The cardholder is being changed concurrently; retry",
    ))
}

async fn try_apply_review(
    state: &AppState,
    scope: &Scope,
    id: &CardholderId,
    verdict: ReviewVerdict<'_>,
    change: CaseChange<'_>,
    unfunded: bool,
    now: Timestamp,
) -> Result<(), UpdateError> {
    let current = state.cardholders.get_cardholder(scope, id).await?;
    let mut cardholder = current.clone();
    let check = KycCheck {
        id: KycCheckId::generate(),
        cardholder_id: id.clone(),
        provider: verdict.source.into(),
        result: verdict.result,
        created_at: now,
    };
    cardholder.kyc = cardholder.kyc.record(verdict.result, now);
    cardholder.updated_at = now;
    cardholder.version = current.version + 1;
    let mut fulfilment = Fulfilment::default();
    if cardholder.kyc.passed() && !current.kyc.passed() {
        for order in state
            .cardholders
            .list_card_orders(scope, id)
            .await?
            .into_iter()
            .filter(|o| o.status == CardOrderStatus::AwaitingKyc)
        {
            let pending = order
                .apply(CardOrderEvent::KycPassed, now)
                .map_err(ApiError::internal)?;
            fulfilment.add(state, scope, &cardholder, pending, now).await?;
        }
    }
    if unfunded {
        fulfilment = fulfilment.without_funds(scope, now)?;
    }
    let mut cards = state.cards.cards_of(scope, std::slice::from_ref(id)).await?;
    cards.extend(fulfilment.cards());
    let envelope = CardholderEnvelope::with_cards(&cardholder, &cards);
    let mut events = vec![Event::new(
        &scope.tenant_id,
        scope.environment,
        EventType::CardholderKycUpdated,
        id.as_str(),
        snapshot(&envelope.cardholder),
        now,
    )];
    events.extend(fulfilment.events.iter().cloned());
    let write = CardholderWrite {
        cardholder: &cardholder,
        kyc_check: Some(&check),
        card_orders: &fulfilment.orders,
        card_issues: &fulfilment.issues,
        events: &events,
        response: verdict.records,
        review: Some(ReviewWrite {
            open_case: None,
            change: Some(change),
        }),
    };
    state
        .cardholders
        .update_cardholder(scope, write, current.version, now)
        .await?;
    Ok(())
}
