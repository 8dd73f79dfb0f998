//! Cards and their lifecycle, as one exhaustive state machine. Physical cards start CREATED until
//! activated; virtual cards start ACTIVE. CANCELLED is terminal.

use crate::environment::Environment;
use crate::ids::{AccountId, CardId, CardholderId, ProgramId, TenantId};
use crate::program::FormFactor;
use crate::time::Timestamp;

crate::wire_enum!(CardState {
    Created => "CREATED",
    Active => "ACTIVE",
    Inactive => "INACTIVE",
    Cancelled => "CANCELLED",
});

crate::wire_enum!(ShippingStatus {
    Ordered => "ordered",
    Shipped => "shipped",
    Delivered => "delivered",
});

crate::wire_enum!(ReplacementReason {
    Lost => "lost",
    Stolen => "stolen",
    Damaged => "damaged",
    Expiring => "expiring",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardEvent {
    Activate,
    Freeze,
    Unfreeze,
    Close,
    /// Issuing a replacement: allowed from any live state, the card itself does not change yet.
    Replace,
}

impl CardEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            CardEvent::Activate => "activate",
            CardEvent::Freeze => "freeze",
            CardEvent::Unfreeze => "unfreeze",
            CardEvent::Close => "close",
            CardEvent::Replace => "replace",
        }
    }
}

/// An illegal transition, each with its own documented error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IllegalCardTransition {
    #[error("the card is already active")]
    AlreadyActive,
    #[error("the card is frozen: unfreeze it instead")]
    Frozen,
    #[error("the card has not been activated yet")]
    NotActivated,
    #[error("the card is already frozen")]
    AlreadyFrozen,
    #[error("the card is not frozen")]
    NotFrozen,
    #[error("the card is cancelled")]
    Cancelled,
}

impl IllegalCardTransition {
    pub fn code(self) -> &'static str {
        match self {
            IllegalCardTransition::AlreadyActive => "card_already_active",
            IllegalCardTransition::Frozen => "card_frozen",
            IllegalCardTransition::NotActivated => "card_not_activated",
            IllegalCardTransition::AlreadyFrozen => "card_already_frozen",
            IllegalCardTransition::NotFrozen => "card_not_frozen",
            IllegalCardTransition::Cancelled => "card_cancelled",
        }
    }
}

impl CardState {
    pub fn initial(form_factor: FormFactor) -> CardState {
        match form_factor {
            FormFactor::Virtual => CardState::Active,
            FormFactor::Physical => CardState::Created,
        }
    }

    pub fn apply(self, event: CardEvent) -> Result<CardState, IllegalCardTransition> {
        use CardEvent as E;
        use CardState as S;
        use IllegalCardTransition as X;
        match (self, event) {
            (S::Created, E::Activate) => Ok(S::Active),
            (S::Created, E::Freeze | E::Unfreeze) => Err(X::NotActivated),
            (S::Active, E::Activate) => Err(X::AlreadyActive),
            (S::Active, E::Freeze) => Ok(S::Inactive),
            (S::Active, E::Unfreeze) => Err(X::NotFrozen),
            (S::Inactive, E::Activate) => Err(X::Frozen),
            (S::Inactive, E::Freeze) => Err(X::AlreadyFrozen),
            (S::Inactive, E::Unfreeze) => Ok(S::Active),
            (S::Created | S::Active | S::Inactive, E::Close) => Ok(S::Cancelled),
            (S::Created | S::Active | S::Inactive, E::Replace) => Ok(self),
            (S::Cancelled, E::Activate | E::Freeze | E::Unfreeze | E::Close | E::Replace) => Err(X::Cancelled),
        }
    }
}

impl ShippingStatus {
    /// The sandbox advances a physical card one step; delivered is the last.
    pub fn next(self) -> Option<ShippingStatus> {
        match self {
            ShippingStatus::Ordered => Some(ShippingStatus::Shipped),
            ShippingStatus::Shipped => Some(ShippingStatus::Delivered),
            ShippingStatus::Delivered => None,
        }
    }
}

impl ReplacementReason {
    /// Lost or stolen cards must stop working at once; others keep working until the new one is
    /// activated.
    pub fn closes_old_card_at_once(self) -> bool {
        match self {
            ReplacementReason::Lost | ReplacementReason::Stolen => true,
            ReplacementReason::Damaged | ReplacementReason::Expiring => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub id: CardId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub cardholder_id: CardholderId,
    pub program: ProgramId,
    /// The program's own identifier (immutable, so kept with the card for display).
    pub program_ref: String,
    pub network: crate::program::Network,
    pub currency: crate::money::Currency,
    /// The ledger account holding the balance; a replacement shares its predecessor's.
    pub account_id: AccountId,
    pub form_factor: FormFactor,
    pub design_key: String,
    pub state: CardState,
    pub shipping_status: Option<ShippingStatus>,
    pub bin: String,
    pub last4: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub pan_sealed: String,
    pub pan_hash: String,
    pub replaces: Option<CardId>,
    pub replacement_reason: Option<ReplacementReason>,
    pub replaced_by: Option<CardId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

impl Card {
    pub fn expiration(&self) -> String {
        format!("{:04}-{:02}", self.exp_year, self.exp_month)
    }

    pub fn vault_context(id: &CardId) -> String {
        format!("card.pan:{id}")
    }

    /// Applies a lifecycle event, bumping version and time.
    pub fn apply(&self, event: CardEvent, now: Timestamp) -> Result<Card, IllegalCardTransition> {
        let state = self.state.apply(event)?;
        Ok(Card {
            state,
            updated_at: now,
            version: self.version + 1,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_is_decided_exactly_once() {
        use CardEvent as E;
        use CardState as S;
        let legal = [
            (S::Created, E::Activate, S::Active),
            (S::Active, E::Freeze, S::Inactive),
            (S::Inactive, E::Unfreeze, S::Active),
            (S::Created, E::Close, S::Cancelled),
            (S::Active, E::Close, S::Cancelled),
            (S::Inactive, E::Close, S::Cancelled),
            (S::Created, E::Replace, S::Created),
            (S::Active, E::Replace, S::Active),
            (S::Inactive, E::Replace, S::Inactive),
        ];
        let events = [E::Activate, E::Freeze, E::Unfreeze, E::Close, E::Replace];
        let mut illegal_codes = std::collections::HashSet::new();
        for from in S::ALL {
            for event in events {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (from.apply(event), expected) {
                    (Ok(to), Some(exp)) => assert_eq!(to, exp),
                    (Err(x), None) => {
                        illegal_codes.insert(x.code());
                    }
                    (got, exp) => panic!("{from:?} on {event:?}: got {got:?}, expected {exp:?}"),
                }
            }
        }
        assert_eq!(illegal_codes.len(), 6, "every illegal transition kind is reachable");
    }

    #[test]
    fn virtual_cards_start_active_and_physical_ones_created() {
        assert_eq!(CardState::initial(FormFactor::Virtual), CardState::Active);
        assert_eq!(CardState::initial(FormFactor::Physical), CardState::Created);
        assert_eq!(ShippingStatus::Ordered.next(), Some(ShippingStatus::Shipped));
        assert_eq!(ShippingStatus::Delivered.next(), None);
    }
}
