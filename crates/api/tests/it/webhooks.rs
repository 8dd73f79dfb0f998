//! Webhooks over real HTTP on both backends: endpoints, Standard Webhooks signatures checked by
//! the specification authors' own library, the retry schedule under an injected clock, 410,
//! Retry-After, crash recovery, two workers on one database, replay and redelivery.
//!
//! The background worker is off in these tests; they drive `Deliverer::deliver_due(now)`.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use cardplane_api::{Config, open_state};
use cardplane_domain::Timestamp;
use cardplane_testkit::{Backend, both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use tokio::sync::oneshot;

use crate::support::{Creds, TestApp, assert_error};

/// How a fake receiver answers one request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    StatusRetryAfter(u16, u64),
    /// Never answers (until the test ends).
    Hang,
    /// 200 with a body that never ends.
    Huge,
}

#[derive(Clone)]
struct Delivery {
    headers: HeaderMap,
    body: Bytes,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> String {
        self.headers.get(name).unwrap().to_str().unwrap().to_owned()
    }
}

/// A local receiver: records every request, answers from a script, then 204.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    _shutdown: oneshot::Sender<()>,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Receiver {
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let (log, plan) = (got.clone(), script.clone());
        let handler = move |headers: HeaderMap, body: Bytes| {
            let (log, plan) = (log.clone(), plan.clone());
            async move {
                log.lock().unwrap().push(Delivery { headers, body });
                let answer = plan.lock().unwrap().pop_front().unwrap_or(Answer::Status(204));
                let mut response = axum::http::Response::builder();
                let status = match answer {
                    Answer::Status(s) => s,
                    Answer::StatusRetryAfter(s, secs) => {
                        response = response.header("retry-after", secs.to_string());
                        s
                    }
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        500
                    }
                    Answer::Huge => {
                        let chunks = futures::stream::repeat_with(|| {
                            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 * 1024]))
                        });
                        return response
                            .status(200)
                            .body(axum::body::Body::from_stream(chunks))
                            .unwrap();
                    }
                };
                if (300..400).contains(&status) {
                    response = response.header("location", "http://127.0.0.1:9/elsewhere");
                }
                response.status(status).body(axum::body::Body::from("ok")).unwrap()
            }
        };
        let router = axum::Router::new().fallback(axum::routing::post(handler));
        let (base, tx) = crate::support::serve_local(router).await;
        let url = format!("{base}/hooks");
        Receiver {
            url,
            got,
            script,
            _shutdown: tx,
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.got.lock().unwrap().clear();
    }

    /// Every request the receiver got verifies with the reference library under `secret`.
    fn assert_all_verify(&self, secret: &str) {
        let got = self.deliveries();
        assert!(!got.is_empty());
        for d in &got {
            verify(secret, d).unwrap_or_else(|e| panic!("delivery {} does not verify: {e}", d.header("webhook-id")));
        }
    }

    fn ids(&self) -> Vec<String> {
        self.deliveries().iter().map(|d| d.header("webhook-id")).collect()
    }
}

fn quiet(config: &mut Config) {
    config.webhooks.worker = false;
}

async fn spawn(b: Backend) -> Option<TestApp> {
    TestApp::spawn_with(b, quiet).await
}

/// Creates an endpoint and returns (id, secret).
async fn endpoint(app: &TestApp, creds: &Creds, url: &str, events: Value) -> (String, String) {
    let (status, body) = app
        .post(
            creds,
            "/webhook_endpoints",
            &json!({"url": url, "enabled_events": events}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["webhook_endpoint"]["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// Creates an API key, which appends an `api_key.created` event; returns the event's object id.
async fn some_event(app: &TestApp, creds: &Creds) -> String {
    let (status, body) = app.post(creds, "/api_keys", &json!({"name": "hook fodder"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["api_key"]["id"].as_str().unwrap().to_owned()
}

async fn attempts(app: &TestApp, creds: &Creds, endpoint: &str) -> Vec<Value> {
    let (status, body) = app
        .get(creds, &format!("/webhook_endpoints/{endpoint}/deliveries?limit=50"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut list: Vec<Value> = body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery"].clone())
        .collect();
    list.reverse(); // oldest first
    list
}

fn micros(rfc3339: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        rfc3339.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap()
}

fn verify(secret: &str, d: &Delivery) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret).unwrap().verify(&d.body, &d.headers)
}

async fn endpoints_are_managed_per_scope_and_the_secret_is_shown_once(app: TestApp) {
    let t = app.tenant().await;
    let other = app.tenant().await;
    let (id, secret) = endpoint(&app, &t.sandbox, "http://127.0.0.1:9/hooks", json!(["*"])).await;
    assert!(secret.starts_with("whsec_"));
    assert!(Webhook::new(&secret).is_ok());

    let (status, got) = app.get(&t.sandbox, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!got.to_string().contains(&secret[6..]), "{got}");
    assert_eq!(got["webhook_endpoint"]["enabled_events"], json!(["*"]));
    assert_eq!(got["webhook_endpoint"]["enabled"], true);
    assert_eq!(got["webhook_endpoint"]["livemode"], false);

    let (status, _) = app.get(&other.sandbox, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&t.live, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, updated) = app
        .post(
            &t.sandbox,
            &format!("/webhook_endpoints/{id}"),
            &json!({"enabled_events": ["card.created", "card.updated"], "description": "cards", "enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["webhook_endpoint"]["enabled_events"],
        json!(["card.created", "card.updated"])
    );
    assert_eq!(updated["webhook_endpoint"]["disabled_reason"], "manual");

    let (status, list) = app.get(&t.sandbox, "/webhook_endpoints").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(
        list["webhook_endpoints"][0]["webhook_endpoint"]["enabled_events"],
        json!(["card.created", "card.updated"])
    );

    let (status, body) = app
        .post(
            &t.sandbox,
            "/webhook_endpoints",
            &json!({"url": "http://127.0.0.1:9/", "enabled_events": ["nope"]}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    assert_eq!(body["error"]["param"], "enabled_events");
    let (status, body) = app
        .post(&t.sandbox, "/webhook_endpoints", &json!({"url": "ftp://example.com/"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );

    // Live refuses loopback, private and link-local; sandbox refuses link-local only.
    for url in [
        "http://127.0.0.1:9/",
        "http://10.0.0.1/",
        "http://[::1]:9/",
        "http://169.254.169.254/",
    ] {
        let (status, body) = app.post(&t.live, "/webhook_endpoints", &json!({"url": url})).await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "url_not_allowed",
        );
    }
    let (status, body) = app
        .post(
            &t.sandbox,
            "/webhook_endpoints",
            &json!({"url": "http://169.254.169.254/latest"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "url_not_allowed",
    );

    let response = app
        .request(reqwest::Method::DELETE, &format!("/webhook_endpoints/{id}"), &t.sandbox)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get(&t.sandbox, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, events) = app.get(&t.sandbox, "/events?limit=50").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    for kind in [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
}

async fn live_endpoints_may_reach_networks_the_operator_allows(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        quiet(c);
        c.webhooks.live_allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = endpoint(&app, &t.live, &receiver.url, json!(["*"])).await;
    let n = app.state.deliverer().deliver_due(Timestamp::now()).await.unwrap();
    assert_eq!(n, 1);
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    verify(&secret, &got[0]).unwrap();
    assert_eq!(got[0].json()["livemode"], true);
}

async fn deliveries_verify_with_the_reference_library_and_tampering_is_rejected(app: TestApp) {
    let t = app.tenant().await;
    let receiver = Receiver::start(&[]).await;
    let (endpoint_id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    let key_id = some_event(&app, &t.sandbox).await;
    let delivered = app.state.deliverer().deliver_due(Timestamp::now()).await.unwrap();
    assert_eq!(delivered, 2);

    let got = receiver.deliveries();
    assert_eq!(got.len(), 2);
    let mut sequences = Vec::new();
    for d in &got {
        verify(&secret, d).expect("signature verifies with the Standard Webhooks library");
        let event = d.json();
        assert_eq!(d.header("webhook-id"), event["id"].as_str().unwrap());
        assert_eq!(d.header("content-type"), "application/json");
        assert_eq!(event["livemode"], false);
        sequences.push(event["sequence"].as_i64().unwrap());
        // The event is the one the API shows.
        let (status, shown) = app
            .get(&t.sandbox, &format!("/events/{}", event["id"].as_str().unwrap()))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown["event"]["data"], event["data"]);
        assert_eq!(shown["event"]["type"], event["type"]);
    }
    let mut types: Vec<String> = got
        .iter()
        .map(|d| d.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["api_key.created", "webhook_endpoint.created"]);
    assert!(got.iter().any(|d| d.json()["object_id"] == key_id.as_str()));
    sequences.sort_unstable();
    assert!(sequences[0] < sequences[1], "{sequences:?}");

    let d = &got[0];
    // A tampered body, a wrong secret and a stale timestamp are all rejected.
    let mut tampered = d.clone();
    let mut body = tampered.body.to_vec();
    let last = body.len() - 2;
    body[last] ^= 0x01;
    tampered.body = Bytes::from(body);
    assert!(matches!(
        verify(&secret, &tampered),
        Err(standardwebhooks::WebhookError::InvalidSignature)
    ));
    let wrong = cardplane_domain::webhook::WebhookSecret::generate().expose();
    assert!(matches!(
        verify(&wrong, d),
        Err(standardwebhooks::WebhookError::InvalidSignature)
    ));
    let hook = Webhook::new(&secret).unwrap();
    for skew in [-301_i64, 301] {
        let ts = Timestamp::now().unix_seconds() + skew;
        let mut stale = d.clone();
        let sig = hook.sign(&d.header("webhook-id"), ts, &d.body).unwrap();
        stale
            .headers
            .insert("webhook-timestamp", ts.to_string().parse().unwrap());
        stale.headers.insert("webhook-signature", sig.parse().unwrap());
        assert!(verify(&secret, &stale).is_err(), "skew {skew}");
    }
    // Our own verifier (used by `cardplane webhooks listen`) agrees.
    let ours = cardplane_domain::webhook::WebhookSecret::parse(&secret).unwrap();
    assert!(cardplane_api::webhook_listen::check(&ours, &d.headers, &d.body, Timestamp::now()).is_ok());
    assert!(cardplane_api::webhook_listen::check(&ours, &tampered.headers, &tampered.body, Timestamp::now()).is_err());

    let log = attempts(&app, &t.sandbox, &endpoint_id).await;
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|a| a["status_code"] == 204 && a["next_attempt_at"].is_null())
    );
    // Nothing is due any more.
    assert_eq!(app.state.deliverer().deliver_due(Timestamp::now()).await.unwrap(), 0);
    // No secret ever reaches the logs.
    assert!(!crate::support::captured_logs().contains(&secret[6..]));
}

async fn during_rotation_both_secrets_sign_until_the_overlap_ends(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        quiet(c);
        c.webhooks.secret_overlap_secs = 3600;
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let receiver = Receiver::start(&[]).await;
    let (id, old) = endpoint(&app, &t.sandbox, &receiver.url, json!(["api_key.created"])).await;
    let (status, rotated) = app
        .post(
            &t.sandbox,
            &format!("/webhook_endpoints/{id}/rotate_secret"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["webhook_endpoint"]["previous_secret_expires_at"].is_string());

    some_event(&app, &t.sandbox).await;
    let deliverer = app.state.deliverer();
    deliverer.deliver_due(Timestamp::now()).await.unwrap();
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1, "only api_key.created is subscribed");
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    verify(&old, &got[0]).expect("old secret verifies during the overlap");
    verify(&new, &got[0]).expect("new secret verifies");

    // After the overlap only the new secret signs.
    receiver.clear();
    some_event(&app, &t.sandbox).await;
    deliverer.deliver_due(Timestamp::now().plus_secs(3601)).await.unwrap();
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 1);
    verify(&new, &got[0]).unwrap();
    assert!(verify(&old, &got[0]).is_err());
}

async fn a_failing_receiver_is_retried_on_schedule_until_it_succeeds(app: TestApp) {
    let t = app.tenant().await;
    // 500, a redirect (not followed), a 429 without Retry-After, then success.
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(302), Answer::Status(429)]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["webhook_endpoint.created"])).await;
    let deliverer = app.state.deliverer();
    let expected_delays_secs = [5_i64, 300, 1800];

    let mut now = Timestamp::now();
    for (i, delay) in expected_delays_secs.iter().enumerate() {
        assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1, "attempt {}", i + 1);
        let log = attempts(&app, &t.sandbox, &id).await;
        assert_eq!(log.len(), i + 1);
        let last = &log[i];
        assert_eq!(last["attempt_number"], i64::try_from(i + 1).unwrap());
        assert_eq!(micros(&last["attempted_at"]) / 1000, now.as_micros() / 1000);
        let next = micros(&last["next_attempt_at"]);
        let base = now.as_micros() + delay * 1_000_000;
        assert!(
            next >= base - 1000 && next <= base + delay * 100_000 + 1000,
            "attempt {} scheduled {next}, expected {delay}s (+10% jitter) after {}",
            i + 1,
            now.as_micros()
        );
        // Not a moment before its time.
        assert_eq!(
            deliverer
                .deliver_due(Timestamp::from_micros(next - 2000))
                .await
                .unwrap(),
            0
        );
        now = Timestamp::from_micros(next + 1000);
    }
    assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
    let log = attempts(&app, &t.sandbox, &id).await;
    let statuses: Vec<Value> = log.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(302), json!(429), json!(204)]);
    assert_eq!(log[1]["error"], "redirects are not followed");
    assert!(log[3]["next_attempt_at"].is_null());
    assert!(log.iter().all(|a| a["latency_ms"].as_i64().unwrap() >= 0));

    let got = receiver.deliveries();
    assert_eq!(got.len(), 4);
    let ids: HashSet<String> = got.iter().map(|d| d.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "every retry carries the same webhook-id");
    for d in &got {
        verify(&secret, d).unwrap();
    }
    assert_eq!(deliverer.deliver_due(now.plus_secs(10 * 86_400)).await.unwrap(), 0);
}

async fn a_410_disables_the_endpoint_with_an_event(app: TestApp) {
    let t = app.tenant().await;
    let receiver = Receiver::start(&[Answer::Status(410)]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    let deliverer = app.state.deliverer();
    assert_eq!(deliverer.deliver_due(Timestamp::now()).await.unwrap(), 1);
    let (_, got) = app.get(&t.sandbox, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(got["webhook_endpoint"]["enabled"], false);
    assert_eq!(got["webhook_endpoint"]["disabled_reason"], "gone");
    let (_, events) = app.get(&t.sandbox, "/events?limit=5").await;
    assert_eq!(events["events"][0]["event"]["type"], "webhook_endpoint.disabled");
    assert_eq!(events["events"][0]["event"]["object_id"], id.as_str());
    // Nothing more goes to it, even much later.
    some_event(&app, &t.sandbox).await;
    assert_eq!(
        deliverer.deliver_due(Timestamp::now().plus_secs(86_400)).await.unwrap(),
        0
    );
    assert_eq!(receiver.deliveries().len(), 1);
    let log = attempts(&app, &t.sandbox, &id).await;
    assert_eq!(log[0]["status_code"], 410);
    assert!(log[0]["next_attempt_at"].is_null());

    // Re-enabling resumes the pending deliveries.
    let (status, _) = app
        .post(
            &t.sandbox,
            &format!("/webhook_endpoints/{id}"),
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(deliverer.deliver_due(Timestamp::now()).await.unwrap() >= 1);
    receiver.assert_all_verify(&secret);
}

async fn retry_after_is_honoured(app: TestApp) {
    let t = app.tenant().await;
    let receiver = Receiver::start(&[Answer::StatusRetryAfter(503, 120), Answer::StatusRetryAfter(500, 900)]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    let deliverer = app.state.deliverer();
    let now = Timestamp::now();
    deliverer.deliver_due(now).await.unwrap();
    let log = attempts(&app, &t.sandbox, &id).await;
    // The schedule says 5 s; the receiver asked for 120 s.
    assert_eq!(
        micros(&log[0]["next_attempt_at"]) / 1000,
        now.plus_secs(120).as_micros() / 1000
    );
    assert_eq!(deliverer.deliver_due(now.plus_secs(119)).await.unwrap(), 0);
    let second = now.plus_secs(121);
    assert_eq!(deliverer.deliver_due(second).await.unwrap(), 1);
    // Retry-After on a 500 is not a request to wait: the schedule (5 min) applies.
    let log = attempts(&app, &t.sandbox, &id).await;
    let next = micros(&log[1]["next_attempt_at"]);
    assert!(next >= second.plus_secs(300).as_micros() - 1000 && next <= second.plus_secs(330).as_micros() + 1000);
    receiver.assert_all_verify(&secret);
}

async fn an_endpoint_failing_for_the_configured_period_is_disabled(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        quiet(c);
        c.webhooks.disable_after_failing_secs = 60;
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let receiver = Receiver::start(&[Answer::Status(500); 10]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    let deliverer = app.state.deliverer();
    let mut now = Timestamp::now();
    for _ in 0..3 {
        assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
        let (_, got) = app.get(&t.sandbox, &format!("/webhook_endpoints/{id}")).await;
        if got["webhook_endpoint"]["enabled"] == false {
            break;
        }
        let log = attempts(&app, &t.sandbox, &id).await;
        now = Timestamp::from_micros(micros(&log.last().unwrap()["next_attempt_at"]) + 1000);
    }
    // Attempts at 0 s, ~5 s and ~305 s: the third is past the 60 s period.
    let (_, got) = app.get(&t.sandbox, &format!("/webhook_endpoints/{id}")).await;
    assert_eq!(got["webhook_endpoint"]["enabled"], false, "{got}");
    assert_eq!(got["webhook_endpoint"]["disabled_reason"], "failing");
    assert_eq!(attempts(&app, &t.sandbox, &id).await.len(), 3);
    let (_, events) = app.get(&t.sandbox, "/events?limit=1").await;
    assert_eq!(events["events"][0]["event"]["type"], "webhook_endpoint.disabled");
    receiver.assert_all_verify(&secret);
}

async fn a_crash_mid_delivery_loses_nothing(app: TestApp) {
    let t = app.tenant().await;
    let receiver = Receiver::start(&[Answer::Hang]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    let now = Timestamp::now();

    // Server A claims the delivery and dies while the receiver is still answering.
    let first = app.state.deliverer();
    let lease = first.lease_secs();
    let task = tokio::spawn(async move { first.deliver_due(now).await });
    for _ in 0..200 {
        if !receiver.deliveries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(receiver.deliveries().len(), 1);
    task.abort();
    let _ = task.await;

    // Server B, on the same database, takes over once A's lease has run out.
    let restarted = open_state((*app.state.config).clone()).await.unwrap();
    let second = restarted.deliverer();
    assert_eq!(second.deliver_due(now).await.unwrap(), 0, "A's claim still holds");
    assert_eq!(second.deliver_due(now.plus_secs(lease)).await.unwrap(), 1);
    let got = receiver.deliveries();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    verify(&secret, &got[1]).unwrap();
    let log = attempts(&app, &t.sandbox, &id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status_code"], 204);
    receiver.assert_all_verify(&secret);
    restarted.close_db().await;
}

async fn two_servers_never_deliver_the_same_attempt(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        quiet(c);
        c.webhooks.batch_size = 3;
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    for _ in 0..14 {
        some_event(&app, &t.sandbox).await;
    }
    let other = open_state((*app.state.config).clone()).await.unwrap();
    let (a, b2) = (app.state.deliverer(), other.deliverer());
    let now = Timestamp::now();
    let mut total = 0;
    for _ in 0..20 {
        let (x, y) = tokio::join!(a.deliver_due(now), b2.deliver_due(now));
        let (x, y) = (x.unwrap(), y.unwrap());
        total += x + y;
        if x == 0 && y == 0 {
            break;
        }
    }
    assert_eq!(total, 15);
    let ids = receiver.ids();
    assert_eq!(ids.len(), 15, "each delivery sent exactly once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 15);
    receiver.assert_all_verify(&secret);
    other.close_db().await;
}

async fn replay_since_t_resends_exactly_the_events_after_t(app: TestApp) {
    let t = app.tenant().await;
    let receiver = Receiver::start(&[]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["api_key.created"])).await;
    some_event(&app, &t.sandbox).await;
    some_event(&app, &t.sandbox).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = [some_event(&app, &t.sandbox).await, some_event(&app, &t.sandbox).await];
    let deliverer = app.state.deliverer();
    assert_eq!(deliverer.deliver_due(Timestamp::now()).await.unwrap(), 4);
    receiver.clear();

    let since_text = since
        .to_offset_date_time()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, body) = app
        .post(
            &t.sandbox,
            &format!("/webhook_endpoints/{id}/replay"),
            &json!({"since": since_text}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scheduled"], 2);
    assert_eq!(deliverer.deliver_due(Timestamp::now()).await.unwrap(), 2);
    let mut objects: Vec<String> = receiver
        .deliveries()
        .iter()
        .map(|d| d.json()["object_id"].as_str().unwrap().to_owned())
        .collect();
    objects.sort();
    let mut expected = later.to_vec();
    expected.sort();
    assert_eq!(objects, expected);

    let (status, body) = app
        .post(
            &t.sandbox,
            &format!("/webhook_endpoints/{id}/replay"),
            &json!({"since": "yesterday"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );

    // Redelivering one event sends it again to every subscribed endpoint.
    receiver.clear();
    let event_id = {
        let (_, events) = app.get(&t.sandbox, "/events?limit=1").await;
        events["events"][0]["event"]["id"].as_str().unwrap().to_owned()
    };
    let (status, body) = app
        .post(&t.sandbox, &format!("/events/{event_id}/redeliver"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scheduled"], 1);
    assert_eq!(deliverer.deliver_due(Timestamp::now()).await.unwrap(), 1);
    assert_eq!(receiver.ids(), std::slice::from_ref(&event_id));
    let (status, _) = app
        .post(&t.live, &format!("/events/{event_id}/redeliver"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    receiver.assert_all_verify(&secret);
}

async fn the_background_worker_delivers_on_its_own(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.webhooks.poll_interval_ms = 50).await else {
        return;
    };
    let t = app.tenant().await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    for _ in 0..200 {
        if !receiver.deliveries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    verify(&secret, &got[0]).unwrap();
    // The script is empty: everything after is answered 204.
    assert!(receiver.script.lock().unwrap().is_empty());
}

async fn a_slow_receiver_times_out_and_big_answers_are_read_only_up_to_the_cap(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| {
        quiet(c);
        c.webhooks.attempt_timeout_ms = 300;
    })
    .await
    else {
        return;
    };
    let t = app.tenant().await;
    let receiver = Receiver::start(&[Answer::Hang, Answer::Huge]).await;
    let (id, secret) = endpoint(&app, &t.sandbox, &receiver.url, json!(["*"])).await;
    let deliverer = app.state.deliverer();
    let now = Timestamp::now();
    assert_eq!(deliverer.deliver_due(now).await.unwrap(), 1);
    let log = attempts(&app, &t.sandbox, &id).await;
    assert!(log[0]["status_code"].is_null());
    assert_eq!(log[0]["error"], "timeout");
    let next = Timestamp::from_micros(micros(&log[0]["next_attempt_at"]) + 1000);
    // A 200 with an endless body counts as delivered once the status is in; the body is not
    // read past the cap.
    assert_eq!(deliverer.deliver_due(next).await.unwrap(), 1);
    let log = attempts(&app, &t.sandbox, &id).await;
    assert_eq!(log[1]["status_code"], 200, "{log:?}");
    assert!(log[1]["next_attempt_at"].is_null());
    receiver.assert_all_verify(&secret);
}

both_backends!(
    live_endpoints_may_reach_networks_the_operator_allows,
    during_rotation_both_secrets_sign_until_the_overlap_ends,
    an_endpoint_failing_for_the_configured_period_is_disabled,
    two_servers_never_deliver_the_same_attempt,
    the_background_worker_delivers_on_its_own,
    a_slow_receiver_times_out_and_big_answers_are_read_only_up_to_the_cap
);
app_tests!(spawn = super::spawn;
    endpoints_are_managed_per_scope_and_the_secret_is_shown_once,
    deliveries_verify_with_the_reference_library_and_tampering_is_rejected,
    a_failing_receiver_is_retried_on_schedule_until_it_succeeds,
    a_410_disables_the_endpoint_with_an_event,
    retry_after_is_honoured,
    a_crash_mid_delivery_loses_nothing,
    replay_since_t_resends_exactly_the_events_after_t
);
