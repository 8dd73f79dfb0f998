//! The test plays the card network: a network credential, cards whose PANs it knows, and the
//! messages it sends (built with `cardplane_testkit::net`), as JSON bodies (over HTTP) or parsed as the routes parse them (straight into
//! the engine, when a test must decide what one batch holds).

use cardplane_api::routes::network::{
    NetworkAuthorizationRequest, NetworkPostingRequest, NetworkReversalRequest, parse_authorization, parse_posting,
};
use cardplane_domain::api_key::Permission;
use cardplane_domain::network::{NetworkMessage, ReversalMessage};
use serde_json::Value;

use crate::support::{Creds, TestApp, TestTenant};

/// A network credential, and a tenant (with a funded program `GPR` on BIN 411111) whose keys may
/// reveal PANs.
pub struct Network {
    pub credential: Creds,
    pub tenant: TestTenant,
}

/// A card the network knows the PAN of.
pub use cardplane_testkit::http::RevealedCard as NetCard;
pub use cardplane_testkit::net::{Kind, NetMessage, corner_grocery, merchant, ntid};

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
        self.reveal(&net.tenant.sandbox, c["id"].as_str().unwrap()).await
    }
}

/// A network message parsed as its route parses it (to hand straight to the engine).
pub trait Parsed {
    fn message(self, body: &Value) -> NetworkMessage;
}

impl Parsed for Kind {
    fn message(self, body: &Value) -> NetworkMessage {
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
