//! The test plays the card network: a network credential, cards whose PANs it knows, and the
//! messages it sends, as JSON bodies (over HTTP) or parsed as the routes parse them (straight into
//! the engine, when a test must decide what one batch holds).

use cardplane_api::routes::network::{
    NetworkAuthorizationRequest, NetworkPostingRequest, NetworkReversalRequest, parse_authorization, parse_posting,
};
use cardplane_domain::api_key::Permission;
use cardplane_domain::network::{NetworkMessage, ReversalMessage};
use serde_json::{Value, json};

use crate::support::{Creds, TestApp, TestTenant};

/// A network credential, and a tenant (with a funded program `GPR` on BIN 411111) whose keys may
/// reveal PANs.
pub struct Network {
    pub credential: Creds,
    pub tenant: TestTenant,
}

/// A card the network knows the PAN of.
#[derive(Debug, Clone)]
pub struct NetCard {
    pub id: String,
    pub pan: String,
    pub expiration: String,
}

impl TestApp {
    pub async fn network(&self, funding: i64) -> Network {
        let credential = self.network_key().await;
        let tenant = self.tenant_with(&[Permission::Reveal]).await;
        self.program(&tenant.sandbox, "GPR", "411111", funding).await;
        Network { credential, tenant }
    }

    /// A card of `GPR` loaded with `load`, with its PAN revealed.
    pub async fn net_card(&self, net: &Network, load: i64) -> NetCard {
        let c = self.card_with_balance(&net.tenant.sandbox, "GPR", load).await;
        let id = c["id"].as_str().unwrap().to_owned();
        let (_, secrets) = self
            .post(&net.tenant.sandbox, &format!("/cards/{id}/reveal"), &json!({}))
            .await;
        NetCard {
            id,
            pan: secrets["pan"].as_str().unwrap().into(),
            expiration: secrets["expiration"].as_str().unwrap().into(),
        }
    }
}

pub fn ntid() -> String {
    format!("nt_{}", uuid::Uuid::new_v4().simple())
}

fn merchant(name: &str) -> Value {
    json!({"id": "m_1", "name": name, "mcc": "5411", "country": "USA", "city": "New York"})
}

pub fn authorization(card: &NetCard, id: &str, amount: i64) -> Value {
    json!({
        "network_transaction_id": id, "pan": card.pan, "expiration": card.expiration, "amount": amount,
        "currency": "USD", "merchant": merchant("Corner Grocery"), "entry_mode": "chip",
        "partial_approval_supported": false
    })
}

pub fn incremental(card: &NetCard, id: &str, original: &str, amount: i64) -> Value {
    let mut body = authorization(card, id, amount);
    body["original_network_transaction_id"] = json!(original);
    body
}

pub fn reversal(id: &str, original: &str, amount: Option<i64>) -> Value {
    let mut body = json!({"network_transaction_id": id, "original_network_transaction_id": original});
    if let Some(a) = amount {
        body["amount"] = json!(a);
    }
    body
}

pub fn clearing(id: &str, original: &str, amount: i64) -> Value {
    json!({"network_transaction_id": id, "original_network_transaction_id": original, "amount": amount, "currency": "USD"})
}

/// A clearing with no authorization behind it.
pub fn force_post(card: &NetCard, id: &str, amount: i64) -> Value {
    json!({"network_transaction_id": id, "pan": card.pan, "amount": amount, "currency": "USD",
           "merchant": merchant("Corner Grocery")})
}

pub fn refund(card: &NetCard, id: &str, amount: i64) -> Value {
    force_post(card, id, amount)
}

/// Which network endpoint a body goes to.
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

    /// The body parsed as its route parses it.
    pub fn message(self, body: &Value) -> NetworkMessage {
        match self {
            Kind::Authorization => {
                let req: NetworkAuthorizationRequest = serde_json::from_value(body.clone()).unwrap();
                NetworkMessage::Authorization(parse_authorization(&req).unwrap())
            }
            Kind::Reversal => {
                let req: NetworkReversalRequest = serde_json::from_value(body.clone()).unwrap();
                NetworkMessage::Reversal(ReversalMessage {
                    network_transaction_id: req.network_transaction_id.unwrap(),
                    original: req.original_network_transaction_id.unwrap(),
                    amount: req.amount,
                })
            }
            Kind::Clearing | Kind::Refund => {
                let req: NetworkPostingRequest = serde_json::from_value(body.clone()).unwrap();
                let posting = parse_posting(&req).unwrap();
                if self == Kind::Clearing {
                    NetworkMessage::Clearing(posting)
                } else {
                    NetworkMessage::Refund(posting)
                }
            }
        }
    }
}
