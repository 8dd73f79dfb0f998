use std::time::Duration;

use cardplane_api::config::KycProviderKind;
use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{FakeKyc, KycBehaviour, TestApp, assert_error, seed_cardholder, send};

async fn raw_post(
    app: &TestApp,
    creds: &crate::support::Creds,
    key: &str,
    body: &serde_json::Value,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = app
        .request(Method::POST, "/cardholders", creds)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

async fn a_replay_returns_the_stored_response_byte_for_byte(app: TestApp) {
    let t = app.tenant().await;
    let body = seed_cardholder("490940000", None);
    let (s1, h1, b1) = raw_post(&app, &t.sandbox, "order-1", &body).await;
    let (s2, h2, b2) = raw_post(&app, &t.sandbox, "order-1", &body).await;
    assert_eq!(s1, StatusCode::OK);
    assert_eq!((s1, &b1), (s2, &b2), "replay is byte-identical");
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 1);

    // The same key as a body field (as the Apto API puts it), with keys in another order.
    let mut with_field = json!({"idempotency_key": "order-1"});
    for (k, v) in body.as_object().unwrap().iter().rev() {
        with_field[k] = v.clone();
    }
    let r = app
        .request(Method::POST, "/cardholders", &t.sandbox)
        .json(&with_field)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), b1);

    // Errors are replayed too, and the key is scoped per tenant and environment.
    let mut bad = body.clone();
    bad["email"] = json!("broken");
    let (e1, _, eb1) = raw_post(&app, &t.sandbox, "bad-1", &bad).await;
    let (e2, eh2, eb2) = raw_post(&app, &t.sandbox, "bad-1", &bad).await;
    assert_eq!((e1, &eb1), (e2, &eb2));
    assert_eq!(e1, StatusCode::BAD_REQUEST);
    assert_eq!(eh2.get("idempotent-replayed").unwrap(), "true");
    let (s_live, _, _) = raw_post(&app, &t.live, "order-1", &body).await;
    assert_eq!(s_live, StatusCode::OK);
    let (_, live) = app.get(&t.live, "/cardholders").await;
    assert_eq!(live["total"], 1, "live ran its own request");
}

async fn a_reused_key_with_a_different_request_is_422(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let t = app.tenant().await;
    let body = seed_cardholder("490940000", None);
    assert_eq!(
        app.post_idem(&t.sandbox, "/cardholders", "k", &body).await.0,
        StatusCode::OK
    );
    let mut changed = body.clone();
    changed["first_name"] = json!("Joshua");
    let (status, err) = app.post_idem(&t.sandbox, "/cardholders", "k", &changed).await;
    assert_error(
        status,
        &err,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_error",
        "idempotency_key_reused",
    );
    let (status, err) = app.post_idem(&t.sandbox, "/api_keys", "k", &json!({"name": "x"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "another endpoint is another request: {err}"
    );
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["cardholders"][0]["cardholder"]["first_name"], "Josh");

    let (status, err) = app.post_idem(&t.sandbox, "/cardholders", &"x".repeat(256), &body).await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "idempotency_key_invalid",
    );
    let r = app
        .request(Method::POST, "/cardholders", &t.sandbox)
        .header("Idempotency-Key", "a")
        .json(&json!({"idempotency_key": "b"}));
    let (status, err) = send(r).await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "idempotency_key_mismatch",
    );
}

async fn fifty_concurrent_requests_with_one_key_create_exactly_one_cardholder(app: TestApp) {
    let t = app.tenant().await;
    let body = seed_cardholder("490940000", None);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let req = app
            .request(Method::POST, "/cardholders", &t.sandbox)
            .header("Idempotency-Key", "same")
            .json(&body);
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }));
    }
    let mut ok_bodies = std::collections::HashSet::new();
    for task in tasks {
        let (status, text) = task.await.unwrap();
        match status {
            StatusCode::OK => {
                ok_bodies.insert(text);
            }
            StatusCode::CONFLICT => {
                assert!(text.contains("idempotency_request_in_progress"), "{text}")
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert_eq!(ok_bodies.len(), 1, "every success is the same response");
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 1);
    let (_, events) = app.get(&t.sandbox, "/events").await;
    let created = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "cardholder.created")
        .count();
    assert_eq!(created, 1, "one cardholder.created event");
}

async fn a_request_still_running_makes_a_second_one_409(b: Backend) {
    let verdict = json!({"status": "PASSED", "identity_reason": null, "address_reason": null, "file_reason": null});
    // The provider holds its verdict long enough that the second request surely arrives while
    // the first is still running, however slow the machine (the test waits for the first to
    // reach the provider rather than guessing a delay).
    let fake = FakeKyc::start(KycBehaviour::SlowVerdict(Duration::from_secs(5), verdict)).await;
    let url = fake.url.clone();
    let Some(app) = TestApp::spawn_with(b, move |c| {
        c.kyc.sandbox_provider = KycProviderKind::Http;
        c.kyc.http_url = Some(url);
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let body = seed_cardholder("490940000", None);
    let first = {
        let req = app
            .request(Method::POST, "/cardholders", &t.sandbox)
            .header("Idempotency-Key", "slow")
            .json(&body);
        tokio::spawn(async move { req.send().await.unwrap().status() })
    };
    for _ in 0..2_000 {
        if !fake.received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        fake.received.lock().unwrap().len(),
        1,
        "the first request reached the provider"
    );
    let (status, err) = app.post_idem(&t.sandbox, "/cardholders", "slow", &body).await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "idempotency_error",
        "idempotency_request_in_progress",
    );
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(
        app.post_idem(&t.sandbox, "/cardholders", "slow", &body).await.0,
        StatusCode::OK
    );
    assert_eq!(fake.received.lock().unwrap().len(), 1, "the provider was asked once");
}

/// An API key's secret is shown once, yet a retry must get it again: the stored response is
/// sealed, so the secret never rests in clear.
async fn stored_responses_are_sealed_so_secrets_never_rest_in_clear(app: TestApp) {
    let t = app.tenant().await;
    let (status, first) = app
        .post_idem(&t.sandbox, "/api_keys", "new-key", &json!({"name": "worker"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, again) = app
        .post_idem(&t.sandbox, "/api_keys", "new-key", &json!({"name": "worker"}))
        .await;
    assert_eq!(first, again, "the retry gets the same key and secret");
    let secret = first["secret"].as_str().unwrap();
    let stored = match app.db.sqlite_path() {
        Some(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => crate::cardholders::postgres_dump(&app.db.url).await,
    };
    assert!(stored.contains("new-key"), "the scan sees the idempotency row");
    assert!(!stored.contains(secret), "an API secret rests in clear");
}

both_backends!(
    a_reused_key_with_a_different_request_is_422,
    a_request_still_running_makes_a_second_one_409
);
app_tests!(
    stored_responses_are_sealed_so_secrets_never_rest_in_clear,
    a_replay_returns_the_stored_response_byte_for_byte,
    fifty_concurrent_requests_with_one_key_create_exactly_one_cardholder
);
