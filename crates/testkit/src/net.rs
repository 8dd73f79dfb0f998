//! The messages a test sends as the card network: one builder for the JSON bodies of
//! `/network/authorizations`, `/network/clearings`, `/network/reversals` and `/network/refunds`.
//!
//! Each constructor gives the body its route needs with a fresh `network_transaction_id`; the
//! methods change or add one field. Nothing is added that the caller did not ask for, so a body is
//! exactly what the test would have written by hand.

use serde_json::{Value, json};

/// A fresh network transaction id.
pub fn ntid() -> String {
    format!("nt_{}", uuid::Uuid::new_v4().simple())
}

/// A merchant in the USA.
pub fn merchant(id: &str, name: &str, mcc: &str, city: &str) -> Value {
    json!({"id": id, "name": name, "mcc": mcc, "country": "USA", "city": city})
}

/// The merchant most tests use: `m`, `M`, grocery (5411), city `X`.
pub fn plain_merchant() -> Value {
    merchant("m", "M", "5411", "X")
}

/// The API suite's counter purchase merchant.
pub fn corner_grocery() -> Value {
    merchant("m_1", "Corner Grocery", "5411", "New York")
}

/// What a card message needs of a card: its PAN and expiration (`YYYY-MM`).
pub trait CardData {
    fn pan(&self) -> &str;
    fn expiration(&self) -> &str;
}

impl<P: AsRef<str>, E: AsRef<str>> CardData for (P, E) {
    fn pan(&self) -> &str {
        self.0.as_ref()
    }
    fn expiration(&self) -> &str {
        self.1.as_ref()
    }
}

/// Which network endpoint a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Authorization,
    Reversal,
    Clearing,
    Refund,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Kind::Authorization => "/network/authorizations",
            Kind::Reversal => "/network/reversals",
            Kind::Clearing => "/network/clearings",
            Kind::Refund => "/network/refunds",
        }
    }
}

/// One network message: where it goes and its body.
#[derive(Debug, Clone)]
#[must_use]
pub struct NetMessage {
    pub kind: Kind,
    body: Value,
}

impl NetMessage {
    /// An authorization of `amount` USD at the plain merchant (no entry mode, no partial
    /// approval field).
    pub fn authorization(card: &impl CardData, amount: i64) -> NetMessage {
        NetMessage {
            kind: Kind::Authorization,
            body: json!({
                "network_transaction_id": ntid(), "pan": card.pan(), "expiration": card.expiration(),
                "amount": amount, "currency": "USD", "merchant": plain_merchant()
            }),
        }
    }

    /// The API suite's counter purchase: at the Corner Grocery, chip, no partial approval.
    pub fn chip_authorization(card: &impl CardData, amount: i64) -> NetMessage {
        Self::authorization(card, amount)
            .merchant(corner_grocery())
            .entry_mode("chip")
            .partial(false)
    }

    /// A clearing of `amount` USD against the authorization `original`.
    pub fn clearing(original: &str, amount: i64) -> NetMessage {
        NetMessage {
            kind: Kind::Clearing,
            body: json!({
                "network_transaction_id": ntid(), "original_network_transaction_id": original,
                "amount": amount, "currency": "USD"
            }),
        }
    }

    /// A clearing with no authorization behind it, at the plain merchant.
    pub fn force_post(card: &impl CardData, amount: i64) -> NetMessage {
        NetMessage {
            kind: Kind::Clearing,
            body: json!({
                "network_transaction_id": ntid(), "pan": card.pan(), "amount": amount, "currency": "USD",
                "merchant": plain_merchant()
            }),
        }
    }

    /// A full reversal of the authorization `original` (`.amount(..)` makes it partial).
    pub fn reversal(original: &str) -> NetMessage {
        NetMessage {
            kind: Kind::Reversal,
            body: json!({"network_transaction_id": ntid(), "original_network_transaction_id": original}),
        }
    }

    /// An unlinked refund of `amount` USD to the card, at the plain merchant.
    pub fn refund(card: &impl CardData, amount: i64) -> NetMessage {
        NetMessage {
            kind: Kind::Refund,
            ..Self::force_post(card, amount)
        }
    }

    /// A refund of `amount` USD linked to the transaction `original`.
    pub fn refund_of(original: &str, amount: i64) -> NetMessage {
        NetMessage {
            kind: Kind::Refund,
            ..Self::clearing(original, amount)
        }
    }

    /// The message's own network transaction id.
    pub fn id(self, id: impl Into<String>) -> Self {
        self.set("network_transaction_id", id.into())
    }

    /// Links the message to an earlier one (an incremental authorization, for one).
    pub fn original(self, original: &str) -> Self {
        self.set("original_network_transaction_id", original)
    }

    pub fn amount(self, amount: i64) -> Self {
        self.set("amount", amount)
    }

    pub fn merchant(self, merchant: Value) -> Self {
        self.set("merchant", merchant)
    }

    pub fn entry_mode(self, mode: &str) -> Self {
        self.set("entry_mode", mode)
    }

    pub fn partial(self, supported: bool) -> Self {
        self.set("partial_approval_supported", supported)
    }

    /// Any other field, or one set to a value its helper does not take (a wrong PAN, say).
    pub fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.body[field] = value.into();
        self
    }

    /// The endpoint the message goes to.
    pub fn path(&self) -> &'static str {
        self.kind.path()
    }

    /// The message's network transaction id.
    pub fn ntid(&self) -> &str {
        self.body["network_transaction_id"].as_str().unwrap_or_default()
    }

    /// The JSON body.
    pub fn json(&self) -> Value {
        self.body.clone()
    }

    /// The JSON body, without a copy.
    pub fn into_json(self) -> Value {
        self.body
    }
}
