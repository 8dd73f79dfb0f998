//! Successful answers match the OpenAPI document. Schemathesis mostly sends requests the API
//! refuses, so this walks every resource's happy path and validates each answer against the
//! schema its operation documents for that status (JSON Schema 2020-12, as OpenAPI 3.1 uses).

use std::sync::OnceLock;

use cardplane_api::openapi;
use cardplane_domain::api_key::Permission;
use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::net::NetMessage;
use crate::support::{Creds, TestApp, seed_cardholder, send};

/// Asserts that `answer` matches the schema the document gives `method template` for `status`.
pub(crate) fn assert_documented(method: &Method, template: &str, status: StatusCode, answer: &Value) {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let doc = DOCUMENT.get_or_init(|| serde_json::to_value(openapi::document()).unwrap());
    let operation = &doc["paths"][template][method.as_str().to_lowercase()];
    assert!(operation.is_object(), "{method} {template} is not in the document");
    let schema = &operation["responses"][status.as_str()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {template} documents no JSON schema for {status}"
    );
    let mut root = schema.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("the document's schemas compile");
    let errors: Vec<String> = validator
        .iter_errors(answer)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status} does not match the document: {errors:#?}\n{answer}"
    );
}

/// Requests with one key, each answer checked against the document.
struct Contract<'a> {
    app: &'a TestApp,
    key: &'a Creds,
    checked: usize,
}

impl<'a> Contract<'a> {
    fn new(app: &'a TestApp, key: &'a Creds) -> Self {
        Self { app, key, checked: 0 }
    }

    /// Sends `method path` (the concrete form of `template`) and checks that the answer has the
    /// expected status and matches the schema documented for it; returns the answer.
    async fn call(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let mut request = self.app.request(method.clone(), path, self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = send(request).await;
        assert_eq!(
            status,
            expected,
            "{method} {path}: {answer}\nerrors logged: {}",
            crate::support::logged_errors()
        );
        self.check(&method, template, status, &answer);
        answer
    }

    async fn get(&mut self, template: &str, path: &str) -> Value {
        self.call(Method::GET, template, path, None, StatusCode::OK).await
    }

    async fn post(&mut self, template: &str, path: &str, body: Value) -> Value {
        self.call(Method::POST, template, path, Some(body), StatusCode::OK)
            .await
    }

    fn check(&mut self, method: &Method, template: &str, status: StatusCode, answer: &Value) {
        assert_documented(method, template, status, answer);
        self.checked += 1;
    }
}

async fn successful_answers_match_the_openapi_document(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let t = app.tenant_with(&[Permission::Reveal]).await;
    let mut c = Contract::new(&app, &t.sandbox);

    // Programs and funding.
    let program = c
        .post(
            "/programs",
            "/programs",
            json!({"program_id": "GPR", "name": "Contract", "network": "VISA", "bin": "411111",
                   "currency": "USD", "design_keys": ["blue"]}),
        )
        .await;
    assert_eq!(program["program"]["program_id"], "GPR");
    c.post(
        "/sandbox/programs/{program_id}/fund",
        "/sandbox/programs/GPR/fund",
        json!({"amount": 100_000, "currency": "USD"}),
    )
    .await;
    c.get("/programs", "/programs").await;
    c.get("/programs/{program_id}", "/programs/GPR").await;
    c.get("/programs/{program_id}/funding", "/programs/GPR/funding").await;
    c.post("/programs/{program_id}", "/programs/GPR", json!({"name": "Renamed"}))
        .await;

    // Cardholders, KYC and documents.
    let created = c
        .post(
            "/cardholders",
            "/cardholders",
            seed_cardholder("490940000", Some("u-1")),
        )
        .await;
    let holder = created["cardholder"]["id"].as_str().unwrap().to_owned();
    let h = format!("/cardholders/{holder}");
    c.get("/cardholders", "/cardholders").await;
    c.get("/cardholders/{cardholder_id}", &h).await;
    c.post("/cardholders/{cardholder_id}", &h, json!({"email": "josh@wilson.com"}))
        .await;
    c.get("/cardholders/{cardholder_id}/kyc_checks", &format!("{h}/kyc_checks"))
        .await;
    c.get("/cardholders/{cardholder_id}/card_orders", &format!("{h}/card_orders"))
        .await;
    let form = reqwest::multipart::Form::new().text("kind", "selfie").part(
        "file",
        reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\nimage".to_vec())
            .file_name("me.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let (status, uploaded) = send(
        app.request(Method::POST, &format!("{h}/documents"), &t.sandbox)
            .multipart(form),
    )
    .await;
    c.check(
        &Method::POST,
        "/cardholders/{cardholder_id}/documents",
        status,
        &uploaded,
    );
    c.get("/cardholders/{cardholder_id}/documents", &format!("{h}/documents"))
        .await;

    // Cards, balances, the ledger, controls.
    let card = c
        .post(
            "/cardholders/{cardholder_id}/cards",
            &format!("{h}/cards"),
            json!({"program_id": "GPR", "initial_load": {"currency": "USD", "amount": 5_000}}),
        )
        .await;
    let card_id = card["card"]["id"].as_str().unwrap().to_owned();
    let k = format!("/cards/{card_id}");
    c.get("/cardholders/{cardholder_id}/cards", &format!("{h}/cards")).await;
    c.get("/cards", "/cards").await;
    c.get("/cards/{card_id}", &k).await;
    c.get("/cards/{card_id}/balance", &format!("{k}/balance")).await;
    c.post(
        "/cards/{card_id}/balance_adjustments",
        &format!("{k}/balance_adjustments"),
        json!({"type": "credit", "amount": 500, "currency": "USD", "description": "goodwill"}),
    )
    .await;
    c.get("/cards/{card_id}/ledger_entries", &format!("{k}/ledger_entries"))
        .await;
    let secrets = c
        .post("/cards/{card_id}/reveal", &format!("{k}/reveal"), json!({}))
        .await;
    let control = c
        .post(
            "/spend_controls",
            "/spend_controls",
            json!({"card_id": card_id, "count_limit": 100, "window": "day"}),
        )
        .await;
    c.get("/spend_controls", "/spend_controls").await;
    c.get("/cards/{card_id}/spend_controls", &format!("{k}/spend_controls"))
        .await;
    let control_id = control["spend_control"]["id"].as_str().unwrap().to_owned();
    c.get(
        "/spend_controls/{spend_control_id}",
        &format!("/spend_controls/{control_id}"),
    )
    .await;

    // Authorizations and their follow-ups, transactions.
    let merchant = json!({"id": "m1", "name": "Shop", "mcc": "5411", "country": "USA", "city": "Austin"});
    let approved = c
        .post(
            "/simulate/authorizations",
            "/simulate/authorizations",
            json!({"card_id": card_id, "amount": 300, "currency": "USD", "merchant": merchant}),
        )
        .await;
    assert_eq!(approved["decision"], "approved", "{approved}");
    let declined = c
        .post(
            "/simulate/authorizations",
            "/simulate/authorizations",
            json!({"card_id": card_id, "amount": 9_000_000, "currency": "USD", "merchant": merchant}),
        )
        .await;
    assert_eq!(declined["decision"], "declined", "{declined}");
    let authorization = approved["authorization_id"].clone();
    c.post(
        "/simulate/clearings",
        "/simulate/clearings",
        json!({"authorization_id": authorization, "amount": 200}),
    )
    .await;
    c.post(
        "/simulate/refunds",
        "/simulate/refunds",
        json!({"card_id": card_id, "amount": 50}),
    )
    .await;
    let tx_id = authorization.as_str().unwrap();
    c.get("/transactions", "/transactions").await;
    c.get("/transactions/{transaction_id}", &format!("/transactions/{tx_id}"))
        .await;
    c.get("/cards/{card_id}/transactions", &format!("{k}/transactions"))
        .await;
    c.get(
        "/cardholders/{cardholder_id}/transactions",
        &format!("{h}/transactions"),
    )
    .await;

    // The network's interface, with a network credential.
    let network_key = app.network_key().await;
    let mut n = Contract::new(&app, &network_key);
    let ntid = |s: &str| format!("nt_contract_{s}");
    let card = (
        secrets["pan"].as_str().unwrap(),
        secrets["expiration"].as_str().unwrap(),
    );
    let message = |id: &str, amount: i64| {
        NetMessage::authorization(&card, amount)
            .id(ntid(id))
            .merchant(merchant.clone())
            .entry_mode("chip")
            .into_json()
    };
    for (id, amount) in [("a1", 400), ("a2", 300), ("too_much", 9_000_000)] {
        n.post(
            "/network/authorizations",
            "/network/authorizations",
            message(id, amount),
        )
        .await;
    }
    n.post(
        "/network/clearings",
        "/network/clearings",
        NetMessage::clearing(&ntid("a1"), 400).id(ntid("c1")).into_json(),
    )
    .await;
    n.post(
        "/network/reversals",
        "/network/reversals",
        NetMessage::reversal(&ntid("a2")).id(ntid("r2")).into_json(),
    )
    .await;
    n.post(
        "/network/refunds",
        "/network/refunds",
        NetMessage::refund_of(&ntid("a1"), 100).id(ntid("f1")).into_json(),
    )
    .await;
    assert_eq!(n.checked, 6);

    // Card lifecycle.
    c.post("/cards/{card_id}/freeze", &format!("{k}/freeze"), json!({}))
        .await;
    c.post("/cards/{card_id}/unfreeze", &format!("{k}/unfreeze"), json!({}))
        .await;

    // Events, webhooks, API keys.
    let events = c.get("/events", "/events").await;
    let event_id = events["events"][0]["event"]["id"].as_str().unwrap().to_owned();
    c.get("/events/{event_id}", &format!("/events/{event_id}")).await;
    let endpoint = c
        .post(
            "/webhook_endpoints",
            "/webhook_endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}),
        )
        .await;
    let endpoint_id = endpoint["webhook_endpoint"]["id"].as_str().unwrap().to_owned();
    let w = format!("/webhook_endpoints/{endpoint_id}");
    c.get("/webhook_endpoints", "/webhook_endpoints").await;
    c.get("/webhook_endpoints/{endpoint_id}", &w).await;
    c.post("/webhook_endpoints/{endpoint_id}", &w, json!({"description": "ops"}))
        .await;
    c.post(
        "/webhook_endpoints/{endpoint_id}/rotate_secret",
        &format!("{w}/rotate_secret"),
        json!({}),
    )
    .await;
    c.get(
        "/webhook_endpoints/{endpoint_id}/deliveries",
        &format!("{w}/deliveries"),
    )
    .await;
    c.call(
        Method::DELETE,
        "/webhook_endpoints/{endpoint_id}",
        &w,
        None,
        StatusCode::OK,
    )
    .await;
    let key = c
        .post(
            "/api_keys",
            "/api_keys",
            json!({"name": "reporting", "permissions": []}),
        )
        .await;
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    c.get("/api_keys", "/api_keys").await;
    c.get("/api_keys/{api_key_id}", &format!("/api_keys/{key_id}")).await;
    c.post(
        "/api_keys/{api_key_id}/revoke",
        &format!("/api_keys/{key_id}/revoke"),
        json!({}),
    )
    .await;
    assert!(c.checked >= 45, "{} answers checked", c.checked);
}

both_backends!(successful_answers_match_the_openapi_document);
