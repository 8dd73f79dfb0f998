use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestApp, assert_error, seed_cardholder, send};

async fn every_response_carries_a_request_id_and_the_version_used(app: TestApp) {
    let t = app.tenant().await;
    let responses = [
        app.request(Method::GET, "/cardholders", &t.sandbox)
            .send()
            .await
            .unwrap(),
        app.http.get(app.url("/cardholders")).send().await.unwrap(),
        app.http.get(app.url("/no/such/route")).send().await.unwrap(),
        app.http.get(app.url("/healthz")).send().await.unwrap(),
    ];
    let mut ids = std::collections::HashSet::new();
    for r in &responses {
        let id = r
            .headers()
            .get("request-id")
            .expect("request-id")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ids.insert(id), "request ids are unique");
        assert_eq!(r.headers().get("cardplane-version").unwrap(), "2026-11-01");
    }
    // A request id the client sends is kept.
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("request-id").unwrap(), "trace-me-123");

    let r = app
        .request(Method::GET, "/cardholders", &t.sandbox)
        .header("Cardplane-Version", "2026-11-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get("cardplane-version").unwrap(), "2026-11-01");
    for bad in ["2019-01-01", "latest"] {
        let req = app
            .request(Method::POST, "/cardholders", &t.sandbox)
            .header("Cardplane-Version", bad)
            .json(&seed_cardholder("490940000", None));
        let (status, err) = send(req).await;
        assert_error(
            status,
            &err,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "api_version_invalid",
        );
    }
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 0, "a refused version changed nothing");
}

async fn unknown_routes_methods_and_oversize_bodies_use_the_envelope(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.request_body_limit_bytes = 2048).await else {
        return;
    };
    let t = app.tenant().await;
    let (status, err) = app.get(&t.sandbox, "/nothing-here").await;
    assert_error(
        status,
        &err,
        StatusCode::NOT_FOUND,
        "not_found_error",
        "route_not_found",
    );
    let (status, err) = send(app.request(Method::DELETE, "/cardholders", &t.sandbox)).await;
    assert_error(
        status,
        &err,
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
    );

    let mut big = seed_cardholder("490940000", None);
    big["first_name"] = json!("J".repeat(4096));
    let (status, err) = app.post(&t.sandbox, "/cardholders", &big).await;
    assert_error(
        status,
        &err,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "body_too_large",
    );
    let (status, err) = app.post_idem(&t.sandbox, "/cardholders", "big", &big).await;
    assert_error(
        status,
        &err,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "body_too_large",
    );
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 0);
}

async fn health_readiness_metrics_and_docs_are_served(app: TestApp) {
    let t = app.tenant().await;
    app.get(&t.sandbox, "/cardholders").await;
    let (status, body) = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/cardholders\""),
        "requests are counted by route"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "latency histogram"
    );
    let (status, doc) = send(app.http.get(app.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/cardholders"]["post"].is_object());
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "the interactive reference is served locally");
    assert!(!html.contains("https://"), "no assets from the internet");
}

async fn a_database_outage_is_a_503_without_internal_text(app: TestApp) {
    let t = app.tenant().await;
    app.state.close_db().await;
    let r = app
        .request(Method::GET, "/cardholders", &t.sandbox)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");
    assert_eq!(body["error"]["code"], "service_unavailable");
    let text = body.to_string().to_lowercase();
    for internal in ["pool", "sqlx", "closed", "sqlite", "postgres"] {
        assert!(!text.contains(internal), "internal detail `{internal}` leaked: {text}");
    }
    let (status, _) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

both_backends!(unknown_routes_methods_and_oversize_bodies_use_the_envelope);
app_tests!(
    every_response_carries_a_request_id_and_the_version_used,
    health_readiness_metrics_and_docs_are_served,
    a_database_outage_is_a_503_without_internal_text
);

/// The OpenAPI document is locked: a change to the API shows up as a diff of `openapi.json`.
/// Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p cardplane-api openapi`.
#[test]
fn openapi_document_matches_the_snapshot() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let current = serde_json::to_string_pretty(&cardplane_api::openapi::document()).unwrap() + "\n";
    if std::env::var("UPDATE_SNAPSHOTS").is_ok() {
        std::fs::write(&path, &current).unwrap();
    }
    let locked = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        locked == current,
        "openapi.json is out of date: rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    );
}

/// What a generated client needs from the document (issue 13: openapi-python-client skipped the
/// uploads, typed `limit` as a string, and its users wrote the authentication by hand):
/// every request body has a schema (the multipart uploads name a binary `file` and an enumerated
/// `kind`), every `limit` is a bounded integer, and every operation declares how it is
/// authenticated: HTTP basic with an API key, HTTP basic with the network's credential on
/// `/network/*`, the session cookie on `/ops/*`, nothing on the public endpoints.
#[test]
fn the_openapi_document_gives_generated_clients_schemas_types_and_security() {
    let doc = serde_json::to_value(cardplane_api::openapi::document()).unwrap();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        (&schemes["basic_auth"]["type"], &schemes["basic_auth"]["scheme"]),
        (&json!("http"), &json!("basic"))
    );
    assert_eq!(
        (&schemes["network_auth"]["type"], &schemes["network_auth"]["scheme"]),
        (&json!("http"), &json!("basic"))
    );
    assert_eq!(
        (&schemes["session_cookie"]["type"], &schemes["session_cookie"]["in"]),
        (&json!("apiKey"), &json!("cookie"))
    );
    let resolve = |schema: &serde_json::Value| match schema["$ref"].as_str() {
        Some(r) => doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone(),
        None => schema.clone(),
    };
    let mut uploads = 0;
    let mut limits = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, op) in operations.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            for (media, content) in op["requestBody"]["content"].as_object().into_iter().flatten() {
                assert!(content["schema"].is_object(), "{what}: {media} body without a schema");
                if media == "multipart/form-data" {
                    let body = resolve(&content["schema"]);
                    assert_eq!(body["properties"]["file"]["format"], "binary", "{what}");
                    assert_eq!(
                        resolve(&body["properties"]["kind"])["enum"],
                        json!(["identity_document", "proof_of_address", "selfie", "other"]),
                        "{what}"
                    );
                    assert_eq!(body["required"], json!(["file", "kind"]), "{what}");
                    uploads += 1;
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "limit" {
                    let schema = &p["schema"];
                    assert_eq!(schema["type"], "integer", "{what}: limit");
                    assert_eq!(schema["minimum"], 1, "{what}: limit");
                    assert!(schema["maximum"].as_u64().is_some_and(|m| m >= 50), "{what}: limit");
                    limits += 1;
                }
            }
            let expected = match path.as_str() {
                "/healthz" | "/readyz" | "/metrics" | "/ops/login" => None,
                p if p.starts_with("/network/") => Some("network_auth"),
                p if p.starts_with("/ops/") => Some("session_cookie"),
                _ => Some("basic_auth"),
            };
            match expected {
                None => assert!(op["security"].is_null(), "{what} is public: {}", op["security"]),
                Some(scheme) => assert_eq!(op["security"], json!([{scheme: []}]), "{what}"),
            }
        }
    }
    assert_eq!(
        uploads, 4,
        "every document upload (KYC, case, dispute evidence, representment) describes its parts"
    );
    assert!(limits >= 15, "every list takes a limit: {limits}");
}

/// utoipa names a schema after its Rust type and keeps the last one registered, so two types of
/// the same name in different modules silently replace each other in the document (the console's
/// document view once replaced the cardholder's). Every schema type name must be unique.
#[test]
fn openapi_schema_names_are_unique() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut schemas = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !(line.trim_start().starts_with("#[derive(") && line.contains("ToSchema")) {
                continue;
            }
            let item = lines[i + 1..]
                .iter()
                .find(|l| l.trim_start().starts_with("pub struct ") || l.trim_start().starts_with("pub enum "))
                .expect("a derive names an item");
            let name = item
                .split_whitespace()
                .nth(2)
                .unwrap()
                .trim_end_matches(['{', '(', ';', '<'])
                .split('<')
                .next()
                .unwrap()
                .to_owned();
            let here = format!("{}:{}", file.display(), i + 1);
            if let Some(first) = seen.insert(name.clone(), here.clone()) {
                panic!("schema {name} is defined twice: {first} and {here}");
            }
            schemas += 1;
        }
    }
    assert!(schemas > 50, "the scan found the schema types ({schemas})");
    // The case that broke: the cardholder's document view is the one the document holds.
    let doc = serde_json::to_value(cardplane_api::openapi::document()).unwrap();
    assert_eq!(
        doc["components"]["schemas"]["DocumentView"]["required"],
        serde_json::json!(["type", "last4"])
    );
}
