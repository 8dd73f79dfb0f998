//! Fuzzing over HTTP with proptest: arbitrary bytes and arbitrary JSON (mutations of a valid body:
//! fields dropped, replaced by any JSON value, or added) are POSTed to every main write endpoint
//! of one running server per backend, and arbitrary path ids and query strings go to the reads.
//! Whatever arrives, the answer is never a 5xx, and every error is the documented envelope.
//!
//! Bounded for CI: `FUZZ_CASES` cases per endpoint and kind (default 24; `PROPTEST_CASES` also
//! works), with a fixed seed so a failure replays.

use cardplane_domain::api_key::Permission;
use cardplane_testkit::{Backend, both_backends};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::net::{NetMessage, merchant};
use crate::support::{Creds, TestApp, assert_error, seed_cardholder};

const ERROR_TYPES: [&str; 8] = [
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "conflict_error",
    "idempotency_error",
    "rate_limit_error",
    "api_error",
];

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .or_else(|_| std::env::var("PROPTEST_CASES"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn runner() -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases: cases(),
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

/// Any JSON value, including deep nesting, huge and negative numbers, floats and odd strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof!["\\PC{0,12}", any::<String>(), "[0-9]{1,25}", "(USD|EUR|JPY|usd|XXX|US)"].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}|\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// A valid body with some of its fields dropped, replaced by any JSON value, or extra fields
/// added; nested objects are mutated the same way.
fn mutated(valid: Value) -> BoxedStrategy<Value> {
    match valid {
        Value::Object(fields) => {
            let per_field: Vec<BoxedStrategy<(String, Option<Value>)>> = fields
                .into_iter()
                .map(|(name, value)| {
                    let keep = Just(Some(value.clone()));
                    prop_oneof![
                        4 => keep,
                        2 => mutated(value).prop_map(Some),
                        1 => Just(None),
                        2 => any_json().prop_map(Some),
                    ]
                    .prop_map(move |v| (name.clone(), v))
                    .boxed()
                })
                .collect();
            (per_field, proptest::option::weighted(0.2, ("[a-z_]{1,12}", any_json())))
                .prop_map(|(fields, extra)| {
                    let mut out: Map<String, Value> =
                        fields.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
                    if let Some((k, v)) = extra {
                        out.insert(k, v);
                    }
                    Value::Object(out)
                })
                .boxed()
        }
        Value::Array(items) if !items.is_empty() => {
            let first = items[0].clone();
            proptest::collection::vec(mutated(first), 0..4)
                .prop_map(Value::Array)
                .boxed()
        }
        other => prop_oneof![3 => Just(other), 1 => any_json()].boxed(),
    }
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Bytes(Vec<u8>, &'static str),
}

fn body(valid: Value) -> impl Strategy<Value = Body> {
    prop_oneof![
        6 => mutated(valid).prop_map(Body::Json),
        2 => any_json().prop_map(Body::Json),
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| Body::Bytes(b, "application/json")),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Body::Bytes(b, "text/plain")),
    ]
}

/// Sends and checks: no 5xx, and an error is the envelope with a known type.
async fn check(app: &TestApp, creds: &Creds, method: Method, path: &str, body: Option<&Body>) -> Result<(), String> {
    let mut req = app.request(method.clone(), path, creds);
    req = match body {
        Some(Body::Json(v)) => req.json(v),
        Some(Body::Bytes(b, ct)) => req.header("content-type", *ct).body(b.clone()),
        None => req,
    };
    let r = req
        .send()
        .await
        .map_err(|e| format!("{method} {path}: no answer: {e}"))?;
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = r.text().await.map_err(|e| e.to_string())?;
    let context = || format!("{method} {path} {body:?} -> {status} {text}");
    if status >= 500 {
        return Err(format!("server error: {}", context()));
    }
    if status >= 400 {
        let v: Value = serde_json::from_str(&text).map_err(|_| format!("not JSON: {}", context()))?;
        let error = v["error"]
            .as_object()
            .ok_or_else(|| format!("no envelope: {}", context()))?;
        let ok = content_type.starts_with("application/json")
            && error["type"].as_str().is_some_and(|t| ERROR_TYPES.contains(&t))
            && error["code"].as_str().is_some_and(|c| !c.is_empty())
            && error["message"].as_str().is_some()
            && (error["param"].is_null() || error["param"].is_string());
        if !ok {
            return Err(format!("malformed envelope: {}", context()));
        }
    }
    Ok(())
}

/// Runs the strategy through proptest's (synchronous) runner, sending each generated case on the
/// test's runtime; the first failure (shrunk) fails the test.
fn fuzz<S: Strategy>(strategy: S, send: impl Fn(S::Value) -> Result<(), String>) {
    let result =
        tokio::task::block_in_place(|| runner().run(&strategy, |case| send(case).map_err(TestCaseError::fail)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn post_bodies(app: &TestApp, creds: &Creds, path: &str, valid: Value) {
    let handle = tokio::runtime::Handle::current();
    fuzz(body(valid), |b| {
        handle.block_on(check(app, creds, Method::POST, path, Some(&b)))
    });
}

/// An id segment: real-looking, wrong prefix, or anything (percent-encoded).
fn id_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "(crdhldr|card|txn|sc|we|evt|key|prog)_[0-9a-f]{32}",
        "[A-Za-z0-9_-]{0,80}",
        "\\PC{0,20}",
        any::<String>(),
    ]
    .prop_map(|s| percent_encode(&s))
}

fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query() -> impl Strategy<Value = String> {
    let param = prop_oneof!["limit", "starting_after", "ending_before", "[a-z_]{1,8}"];
    let value = prop_oneof!["-?[0-9]{1,22}", "(crdhldr|card|txn)_[0-9a-f]{0,34}", "\\PC{0,10}"];
    proptest::collection::vec((param, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{}={}", percent_encode(&k), percent_encode(&v)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

async fn parsers_of_outside_input_never_answer_5xx(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let t = app.tenant_with(&[Permission::Reveal]).await.sandbox;
    app.program(&t, "GPR", "411111", 10_000_000).await;
    let card = app.card_with_balance(&t, "GPR", 100_000).await;
    let card_id = card["id"].as_str().unwrap().to_owned();
    let holder_id = card["cardholder_id"].as_str().unwrap().to_owned();
    let revealed = app.reveal(&t, &card_id).await;
    let (_, endpoint) = app
        .post(
            &t,
            "/webhook_endpoints",
            &json!({"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]}),
        )
        .await;
    let endpoint_id = endpoint["webhook_endpoint"]["id"].as_str().unwrap().to_owned();
    let net = app.network_key().await;
    let shop = merchant("m_1", "Shop", "5411", "Austin");
    let auth = NetMessage::authorization(&revealed, 100)
        .id("fz_1")
        .merchant(shop.clone())
        .entry_mode("chip")
        .partial(false)
        .into_json();
    let (_, approved) = app.post(&net, "/network/authorizations", &auth).await;
    assert_eq!(approved["decision"], "approved", "{approved}");

    // serde's derived structs would take an array of their fields in order; a body is an object.
    let (status, refused) = app
        .post(&t, "/cardholders", &json!(["Josh", "Wilson", "pat@wilson.com"]))
        .await;
    assert_error(
        status,
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );

    let mut holder = seed_cardholder("490940000", Some("uid-1"));
    holder["card"] =
        json!({"design_key": "blue", "program_id": "GPR", "initial_load": {"currency": "USD", "amount": 200}});
    let tenant_posts: Vec<(String, Value)> = vec![
        ("/cardholders".into(), holder.clone()),
        (format!("/cardholders/{holder_id}"), holder),
        (
            format!("/cardholders/{holder_id}/cards"),
            json!({"program_id": "GPR", "form_factor": "physical", "design_key": "black", "initial_load": {"currency": "USD", "amount": 50}}),
        ),
        (
            "/programs".into(),
            json!({"program_id": "P2", "name": "Two", "network": "MASTERCARD", "bin": "51234567",
            "currency": "EUR", "card_lifetime_years": 3, "form_factors": ["virtual"], "design_keys": ["x"],
            "funding_model": "stored_balance", "minimum_cardholder_age": 18, "kyc_required": true,
            "spend_controls": [{"amount_limit": 5000, "count_limit": 3, "window": "trailing", "window_secs": 3600, "mccs": ["5411"]}]}),
        ),
        (
            "/programs/GPR".into(),
            json!({"name": "Renamed", "status": "active", "design_keys": ["blue", "black"]}),
        ),
        (
            "/spend_controls".into(),
            json!({"card_id": card_id, "amount_limit": 1000, "count_limit": 5, "window": "trailing", "window_secs": 600, "mccs": ["5812"]}),
        ),
        (
            "/webhook_endpoints".into(),
            json!({"url": "http://127.0.0.1:9/a", "enabled_events": ["card.created"], "description": "d"}),
        ),
        (
            format!("/webhook_endpoints/{endpoint_id}"),
            json!({"url": "http://127.0.0.1:9/b", "enabled_events": ["*"], "enabled": true}),
        ),
        (
            format!("/webhook_endpoints/{endpoint_id}/replay"),
            json!({"since": "2026-01-01T00:00:00Z"}),
        ),
        (
            format!("/cards/{card_id}/balance_adjustments"),
            json!({"type": "credit", "amount": 10, "currency": "USD", "description": "x"}),
        ),
        (
            format!("/cards/{card_id}/replace"),
            json!({"reason": "damaged", "form_factor": "virtual"}),
        ),
        (
            "/sandbox/programs/GPR/fund".into(),
            json!({"amount": 100, "currency": "USD"}),
        ),
        (
            "/simulate/authorizations".into(),
            json!({"card_id": card_id, "amount": 10, "currency": "USD", "merchant": shop}),
        ),
        (
            "/simulate/clearings".into(),
            json!({"authorization_id": approved["authorization_id"], "amount": 10}),
        ),
        (
            "/simulate/reversals".into(),
            json!({"authorization_id": approved["authorization_id"], "amount": 1}),
        ),
        ("/simulate/refunds".into(), json!({"card_id": card_id, "amount": 5})),
        ("/api_keys".into(), json!({"name": "k", "permissions": ["reveal"]})),
    ];
    for (path, valid) in tenant_posts {
        post_bodies(&app, &t, &path, valid);
    }
    let network_posts = [
        ("/network/authorizations", auth.clone()),
        (
            "/network/clearings",
            NetMessage::clearing("fz_1", 50)
                .id("fz_c")
                .merchant(shop.clone())
                .into_json(),
        ),
        (
            "/network/reversals",
            NetMessage::reversal("fz_1").id("fz_r").amount(10).into_json(),
        ),
        (
            "/network/refunds",
            NetMessage::refund(&revealed, 10).id("fz_f").merchant(shop).into_json(),
        ),
    ];
    for (path, valid) in network_posts {
        post_bodies(&app, &net, path, valid);
    }

    // Reads: arbitrary ids in the path and arbitrary query strings.
    let handle = tokio::runtime::Handle::current();
    let templates = [
        "/cardholders/{}",
        "/cardholders/{}/cards",
        "/cards/{}",
        "/cards/{}/balance",
        "/cards/{}/ledger_entries",
        "/cards/{}/transactions",
        "/transactions/{}",
        "/spend_controls/{}",
        "/events/{}",
        "/programs/{}",
        "/webhook_endpoints/{}/deliveries",
        "/api_keys/{}",
    ];
    fuzz(
        (proptest::sample::select(templates.to_vec()), id_segment(), query()),
        |(template, id, q)| {
            let path = format!("{}?{q}", template.replace("{}", &id));
            handle.block_on(check(&app, &t, Method::GET, &path, None))
        },
    );
    let lists = [
        "/cardholders",
        "/cards",
        "/transactions",
        "/events",
        "/programs",
        "/spend_controls",
        "/webhook_endpoints",
        "/api_keys",
    ];
    fuzz((proptest::sample::select(lists.to_vec()), query()), |(list, q)| {
        handle.block_on(check(&app, &t, Method::GET, &format!("{list}?{q}"), None))
    });
    // State-changing POSTs without a body, on arbitrary ids.
    let actions = [
        "/cards/{}/activate",
        "/cards/{}/freeze",
        "/cards/{}/unfreeze",
        "/cards/{}/reveal",
        "/spend_controls/{}/disable",
        "/webhook_endpoints/{}/rotate_secret",
        "/events/{}/redeliver",
        "/api_keys/{}/revoke",
    ];
    fuzz(
        (proptest::sample::select(actions.to_vec()), id_segment()),
        |(template, id)| handle.block_on(check(&app, &t, Method::POST, &template.replace("{}", &id), None)),
    );
}

both_backends!(parsers_of_outside_input_never_answer_5xx);
