//! JSON over HTTP with basic auth, as the API and CLI tests both call a running server, and the
//! one way a test reveals a card's PAN.

use serde_json::{Value, json};

use crate::net::CardData;

/// Basic-auth credentials: an API key or a network credential.
pub trait Credentials {
    /// (id, secret)
    fn basic(&self) -> (&str, &str);
}

impl<I: AsRef<str>, S: AsRef<str>> Credentials for (I, S) {
    fn basic(&self) -> (&str, &str) {
        (self.0.as_ref(), self.1.as_ref())
    }
}

/// A request to `{base}{path}` with the credentials' basic auth.
pub fn request(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    creds: &impl Credentials,
    path: &str,
) -> reqwest::RequestBuilder {
    let (id, secret) = creds.basic();
    http.request(method, format!("{base}{path}"))
        .basic_auth(id, Some(secret))
}

/// POSTs `body`; the status and the JSON answer (null when the answer is not JSON).
pub async fn post(
    http: &reqwest::Client,
    base: &str,
    creds: &impl Credentials,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let r = request(http, reqwest::Method::POST, base, creds, path)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GETs `path`; the status and the JSON answer (null when the answer is not JSON).
pub async fn get(http: &reqwest::Client, base: &str, creds: &impl Credentials, path: &str) -> (u16, Value) {
    let r = request(http, reqwest::Method::GET, base, creds, path)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A card whose secrets the test has revealed.
#[derive(Debug, Clone)]
pub struct RevealedCard {
    pub id: String,
    pub pan: String,
    /// `YYYY-MM`
    pub expiration: String,
    pub cvv: String,
}

impl CardData for RevealedCard {
    fn pan(&self) -> &str {
        &self.pan
    }
    fn expiration(&self) -> &str {
        &self.expiration
    }
}

/// `POST /cards/{card_id}/reveal` with a key that may reveal; panics unless it answers 200.
pub async fn reveal(http: &reqwest::Client, base: &str, creds: &impl Credentials, card_id: &str) -> RevealedCard {
    let (status, secrets) = post(http, base, creds, &format!("/cards/{card_id}/reveal"), &json!({})).await;
    assert_eq!(status, 200, "reveal {card_id}: {secrets}");
    let field = |name: &str| {
        secrets[name]
            .as_str()
            .unwrap_or_else(|| panic!("reveal {card_id}: no {name} in {secrets}"))
            .to_owned()
    };
    RevealedCard {
        id: card_id.to_owned(),
        pan: field("pan"),
        expiration: field("expiration"),
        cvv: field("cvv"),
    }
}
