//! Tenant isolation for every endpoint in the OpenAPI document: with another tenant's key, or the
//! other environment's, every path naming one of tenant A's objects answers 404 (403 `sandbox_only`
//! for live keys on sandbox-only paths) for every method, and nothing of A's changes. New endpoints
//! are covered as soon as they are in the document.

use std::collections::HashMap;

use cardplane_domain::api_key::Permission;
use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Creds, TestApp, seed_cardholder, send};

/// Fields that legitimately move while we look (reading with A's key touches its key).
fn strip_volatile(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("last_used_at");
        for (_, child) in o.iter_mut() {
            *child = strip_volatile(child.take());
        }
    }
    v
}

async fn every_endpoint_hides_other_tenants_and_environments(b: Backend) {
    // No delivery worker: its attempts would change A's delivery log while we compare.
    // Nor the backtest job: a backtest finishing would change what A sees.
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.webhooks.worker = false;
        c.backtest_poll_interval_ms = 3_600_000;
    })
    .await
    else {
        return;
    };
    let a = app.tenant_with(&[Permission::Reveal]).await;
    // The outsiders may reveal too, so a refusal can only come from the card being out of reach.
    let other = app.tenant_with(&[Permission::Reveal]).await;
    let t = &a.sandbox;
    app.program(t, "GPR", "411111", 100_000).await;
    let holder = app.cardholder(t, &seed_cardholder("490940000", Some("iso"))).await;
    let holder_id = holder["id"].as_str().unwrap().to_owned();
    let card = app.card_with_balance(t, "GPR", 1_000).await;
    let card_id = card["id"].as_str().unwrap().to_owned();
    let (_, auth) = app
        .post(
            t,
            "/simulate/authorizations",
            &json!({"card_id": card_id, "amount": 100}),
        )
        .await;
    let transaction_id = auth["authorization_id"].as_str().unwrap().to_owned();
    let (_, control) = app
        .post(
            t,
            "/spend_controls",
            &json!({"card_id": card_id, "amount_limit": 500, "window": "day"}),
        )
        .await;
    let control_id = control["spend_control"]["id"].as_str().unwrap().to_owned();
    let (status, endpoint) = app
        .post(
            t,
            "/webhook_endpoints",
            &json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    let endpoint_id = endpoint["webhook_endpoint"]["id"].as_str().unwrap().to_owned();
    let (_, purchase) = app
        .post(
            t,
            "/simulate/authorizations",
            &json!({"card_id": card_id, "amount": 200}),
        )
        .await;
    let purchase_id = purchase["authorization_id"].as_str().unwrap().to_owned();
    app.post(t, "/simulate/clearings", &json!({"authorization_id": purchase_id}))
        .await;
    let (status, dispute) = app
        .post(
            t,
            &format!("/transactions/{purchase_id}/disputes"),
            &json!({"amount": 100, "reason": "other"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dispute}");
    let dispute_id = dispute["dispute"]["id"].as_str().unwrap().to_owned();
    let (status, rule) = app
        .post(
            t,
            "/authorization_rules",
            &json!({"scope": {"type": "card", "id": card_id}, "type": "merchant_lock",
                    "parameters": {"mccs": ["5411"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let rule_id = rule["authorization_rule"]["id"].as_str().unwrap().to_owned();
    let scope = cardplane_store::Scope {
        tenant_id: cardplane_domain::ids::TenantId::parse(&a.id).unwrap(),
        environment: cardplane_domain::Environment::Sandbox,
    };
    let alert_id = crate::rules::raise_alert(&app, &scope, &transaction_id).await;
    let now = cardplane_domain::Timestamp::now();
    let (status, backtest) = app
        .post(
            t,
            &format!("/authorization_rules/{rule_id}/backtests"),
            &json!({"start": now.plus_secs(-3600).to_rfc3339(), "end": now.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{backtest}");
    let backtest_id = backtest["backtest"]["id"].as_str().unwrap().to_owned();
    let (_, events) = app.get(t, "/events?limit=1").await;
    let event_id = events["events"][0]["event"]["id"].as_str().unwrap().to_owned();
    let ids: HashMap<&str, String> = HashMap::from([
        ("cardholder_id", holder_id.clone()),
        ("card_id", card_id.clone()),
        ("program_id", "GPR".to_owned()),
        ("api_key_id", t.id.clone()),
        ("event_id", event_id.clone()),
        ("transaction_id", transaction_id.clone()),
        ("spend_control_id", control_id.clone()),
        ("endpoint_id", endpoint_id.clone()),
        ("dispute_id", dispute_id.clone()),
        ("rule_id", rule_id.clone()),
        ("alert_id", alert_id.clone()),
        ("backtest_id", backtest_id.clone()),
    ]);

    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // /ops is for people (cookie sessions); its own matrix is in ops.rs.
        if !path.contains('{') || path.starts_with("/network") || path.starts_with("/ops") {
            continue;
        }
        let mut concrete = path.clone();
        for (name, value) in &ids {
            concrete = concrete.replace(&format!("{{{name}}}"), value);
        }
        assert!(!concrete.contains('{'), "the matrix has no object for {path}: add one");
        for method in ops.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone(), concrete.clone()));
        }
    }
    assert!(
        routes.len() >= 30,
        "the matrix covers the API ({} routes)",
        routes.len()
    );

    let snapshot = |creds: Creds| {
        let routes = routes.clone();
        let app = &app;
        async move {
            let mut out = Vec::new();
            for (method, _, concrete) in routes.iter().filter(|(m, _, _)| m == "GET") {
                let _ = method;
                let (status, body) = app.get(&creds, concrete).await;
                out.push((concrete.clone(), status, strip_volatile(body)));
            }
            out
        }
    };
    let before = snapshot(t.clone()).await;
    assert!(
        before.iter().all(|(_, s, _)| *s == StatusCode::OK),
        "A sees its own objects"
    );

    for (who, creds, live) in [
        ("another tenant", &other.sandbox, false),
        ("another tenant's live key", &other.live, true),
        ("A's live key", &a.live, true),
    ] {
        for (method, path, concrete) in &routes {
            let mut req = app.request(Method::from_bytes(method.as_bytes()).unwrap(), concrete, creds);
            if method == "POST" || method == "PUT" {
                // A body that would be valid for A, so only ownership can refuse it.
                let body = match path.as_str() {
                    "/webhook_endpoints/{endpoint_id}/replay" => json!({"since": "2020-01-01T00:00:00Z"}),
                    _ => json!({}),
                };
                req = req.json(&body);
            }
            let (status, body) = send(req).await;
            let sandbox_only = path.starts_with("/sandbox") || path.starts_with("/simulate");
            let hidden = status == StatusCode::NOT_FOUND && body["error"]["type"] == "not_found_error";
            let refused_live =
                live && sandbox_only && status == StatusCode::FORBIDDEN && body["error"]["code"] == "sandbox_only";
            assert!(
                hidden || refused_live,
                "{who}: {method} {path} answered {status} {body}"
            );
        }
    }
    // Object references in bodies are scoped too.
    for (path, body) in [
        (
            "/spend_controls",
            json!({"card_id": card_id, "amount_limit": 1, "window": "day"}),
        ),
        ("/simulate/authorizations", json!({"card_id": card_id, "amount": 1})),
        ("/simulate/clearings", json!({"authorization_id": transaction_id})),
        ("/simulate/refunds", json!({"card_id": card_id, "amount": 1})),
        (
            "/authorization_rules",
            json!({"scope": {"type": "card", "id": card_id}, "type": "merchant_lock", "parameters": {"mccs": ["5411"]}}),
        ),
    ] {
        let (status, answer) = app.post(&other.sandbox, path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
    }
    let after = snapshot(t.clone()).await;
    assert_eq!(before, after, "nothing of A's changed");
}

both_backends!(every_endpoint_hides_other_tenants_and_environments);
