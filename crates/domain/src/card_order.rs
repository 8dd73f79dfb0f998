//! A card ordered together with a cardholder (`card` in the create request). It waits for KYC,
//! then becomes pending until the cards capability issues the card.

use crate::cardholder::CardOrderRequest;
use crate::ids::{CardOrderId, CardholderId};
use crate::time::Timestamp;

crate::wire_enum!(CardOrderStatus {
    AwaitingKyc => "awaiting_kyc",
    Pending => "pending",
    Fulfilled => "fulfilled",
    Failed => "failed",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOrderEvent {
    KycPassed,
    Issued,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card order cannot go from {from:?} on {event:?}")]
pub struct IllegalCardOrderTransition {
    pub from: CardOrderStatus,
    pub event: CardOrderEvent,
}

impl CardOrderStatus {
    pub fn apply(self, event: CardOrderEvent) -> Result<CardOrderStatus, IllegalCardOrderTransition> {
        use CardOrderEvent as E;
        use CardOrderStatus as S;
        match (self, event) {
            (S::AwaitingKyc, E::KycPassed) => Ok(S::Pending),
            (S::Pending, E::Issued) => Ok(S::Fulfilled),
            (S::AwaitingKyc | S::Pending, E::Refused) => Ok(S::Failed),
            (S::AwaitingKyc, E::Issued)
            | (S::Pending, E::KycPassed)
            | (S::Fulfilled | S::Failed, E::KycPassed | E::Issued | E::Refused) => {
                Err(IllegalCardOrderTransition { from: self, event })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOrder {
    pub id: CardOrderId,
    pub cardholder_id: CardholderId,
    pub request: CardOrderRequest,
    pub status: CardOrderStatus,
    /// The card that fulfilled the order.
    pub card_id: Option<crate::ids::CardId>,
    /// Why the order failed (an error code), when it did.
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CardOrder {
    pub fn place(cardholder_id: &CardholderId, request: CardOrderRequest, kyc_passed: bool, now: Timestamp) -> Self {
        let status = if kyc_passed {
            CardOrderStatus::Pending
        } else {
            CardOrderStatus::AwaitingKyc
        };
        CardOrder {
            id: CardOrderId::generate(),
            cardholder_id: cardholder_id.clone(),
            request,
            status,
            card_id: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn apply(&self, event: CardOrderEvent, now: Timestamp) -> Result<CardOrder, IllegalCardOrderTransition> {
        Ok(CardOrder {
            status: self.status.apply(event)?,
            updated_at: now,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_is_decided() {
        use CardOrderEvent as E;
        use CardOrderStatus as S;
        let legal = [
            (S::AwaitingKyc, E::KycPassed, S::Pending),
            (S::Pending, E::Issued, S::Fulfilled),
            (S::AwaitingKyc, E::Refused, S::Failed),
            (S::Pending, E::Refused, S::Failed),
        ];
        for from in S::ALL {
            for event in [E::KycPassed, E::Issued, E::Refused] {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| f == from && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(from.apply(event).ok(), expected, "{from:?} on {event:?}");
            }
        }
    }
}
