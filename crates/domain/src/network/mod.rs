//! The card network's messages as parsed at the edge, the answer each gets, and (in `books` and
//! `booking`) what each message does to the books. Every message is identified by its network
//! transaction id: it has one effect, and a repeat gets the first answer.

mod booking;
mod books;
mod screening;

pub use booking::{Booked, CardContext, authorize, clear, expire, hold_for, refund, reverse, stand_in_advice};
pub use books::{Books, Posting, ProgramAccounts};
pub use screening::{CardRules, Screening};

use crate::authorization::{CustodianVerdict, DeclineReason, Merchant, ResponseCode};
use crate::ids::TransactionId;
use crate::money::Currency;
use crate::pan::Pan;
use crate::time::Timestamp;

crate::wire_enum!(MessageKind {
    Authorization => "authorization",
    IncrementalAuthorization => "incremental_authorization",
    Reversal => "reversal",
    Clearing => "clearing",
    Refund => "refund",
});

/// An authorization request (or an incremental one, or the network's stand-in advice).
#[derive(Debug, Clone)]
pub struct AuthorizationMessage {
    pub network_transaction_id: String,
    pub pan: Pan,
    /// (year, month) as the network sent it.
    pub expiration: (u16, u8),
    pub amount: i64,
    pub currency: Currency,
    pub merchant: Merchant,
    pub entry_mode: String,
    pub partial_approval_supported: bool,
    /// Incremental authorization of this original.
    pub original: Option<String>,
    /// The network already approved it while we were unreachable: always posted.
    pub stand_in_advice: bool,
}

#[derive(Debug, Clone)]
pub struct ReversalMessage {
    pub network_transaction_id: String,
    pub original: String,
    /// Partial reversal; `None` reverses whatever is still held.
    pub amount: Option<i64>,
}

/// A clearing (capture) of an authorization, or with no (usable) authorization a force post; or a
/// refund (a credit).
#[derive(Debug, Clone)]
pub struct PostingMessage {
    pub network_transaction_id: String,
    pub original: Option<String>,
    pub pan: Option<Pan>,
    pub amount: i64,
    pub currency: Currency,
    pub merchant: Option<Merchant>,
}

#[derive(Debug, Clone)]
pub enum NetworkMessage {
    Authorization(AuthorizationMessage),
    Reversal(ReversalMessage),
    Clearing(PostingMessage),
    Refund(PostingMessage),
}

impl NetworkMessage {
    pub fn network_transaction_id(&self) -> &str {
        match self {
            NetworkMessage::Authorization(m) => &m.network_transaction_id,
            NetworkMessage::Reversal(m) => &m.network_transaction_id,
            NetworkMessage::Clearing(m) | NetworkMessage::Refund(m) => &m.network_transaction_id,
        }
    }

    pub fn kind(&self) -> MessageKind {
        match self {
            NetworkMessage::Authorization(m) if m.original.is_some() => MessageKind::IncrementalAuthorization,
            NetworkMessage::Authorization(_) => MessageKind::Authorization,
            NetworkMessage::Reversal(_) => MessageKind::Reversal,
            NetworkMessage::Clearing(_) => MessageKind::Clearing,
            NetworkMessage::Refund(_) => MessageKind::Refund,
        }
    }

    /// The network transaction id of the authorization this message refers to.
    pub fn original(&self) -> Option<&str> {
        match self {
            NetworkMessage::Authorization(m) => m.original.as_deref(),
            NetworkMessage::Reversal(m) => Some(&m.original),
            NetworkMessage::Clearing(m) | NetworkMessage::Refund(m) => m.original.as_deref(),
        }
    }

    pub fn pan(&self) -> Option<&Pan> {
        match self {
            NetworkMessage::Authorization(m) => Some(&m.pan),
            NetworkMessage::Reversal(_) => None,
            NetworkMessage::Clearing(m) | NetworkMessage::Refund(m) => m.pan.as_ref(),
        }
    }
}

/// What a custodian-authority program's custodian said (or its stand-in policy, when it could
/// not answer usably in time), with when it was asked and when it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustodianOutcome {
    pub verdict: CustodianVerdict,
    pub sent_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
}

crate::wire_enum!(NetworkDecision {
    Approved => "approved",
    Declined => "declined",
});

/// The answer to the card network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAnswer {
    pub decision: NetworkDecision,
    /// The transaction this message created or changed.
    pub authorization_id: Option<TransactionId>,
    pub approved_amount: i64,
    pub response_code: ResponseCode,
    pub reason: Option<DeclineReason>,
    pub authorization_code: Option<String>,
    /// The card's spendable balance after this message (stored-balance programs).
    pub available_balance: Option<i64>,
    pub currency: Option<Currency>,
    pub stand_in: bool,
}

impl NetworkAnswer {
    pub fn declined(reason: DeclineReason, currency: Option<Currency>, transaction: Option<&TransactionId>) -> Self {
        NetworkAnswer {
            decision: NetworkDecision::Declined,
            authorization_id: transaction.cloned(),
            approved_amount: 0,
            response_code: reason.response_code(),
            reason: Some(reason),
            authorization_code: None,
            available_balance: None,
            currency,
            stand_in: false,
        }
    }

    pub fn approved(&self) -> bool {
        self.decision == NetworkDecision::Approved
    }
}
