use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardplane_domain::api_key::Permission;
use cardplane_testkit::{Backend, both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::net::{NetMessage, merchant};
use crate::support::{TestApp, seed_cardholder};

const SECRET: &str = "custodian-shared-secret";
// Generous, so a loaded machine still asks in time; the slow custodian takes far longer.
const DEADLINE_MS: i64 = 1_000;

#[derive(Clone, Copy)]
enum Behaviour {
    Approve,
    Decline,
    Slow(Duration),
    Garbage,
    Fail,
}

/// A custodian's balance-authority endpoint whose behaviour the test switches, counting calls and
/// checking every request's signature.
struct FakeCustodian {
    url: String,
    calls: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<Behaviour>>,
    _stop: oneshot::Sender<()>,
}

impl FakeCustodian {
    async fn start() -> FakeCustodian {
        let calls = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Mutex::new(Behaviour::Approve));
        let (c, b) = (calls.clone(), behaviour.clone());
        let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (calls, behaviour) = (c.clone(), b.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let id = headers["webhook-id"].to_str().unwrap();
                let ts: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
                let expected = cardplane_domain::webhook::sign(SECRET.as_bytes(), id, ts, &body);
                assert_eq!(
                    headers["webhook-signature"].to_str().unwrap(),
                    expected,
                    "signed with the program's secret"
                );
                let request: Value = serde_json::from_slice(&body).unwrap();
                let current = *behaviour.lock().unwrap();
                match current {
                    Behaviour::Approve => (
                        axum::http::StatusCode::OK,
                        json!({"approved": true, "amount": request["amount"]}).to_string(),
                    ),
                    Behaviour::Decline => (axum::http::StatusCode::OK, json!({"approved": false}).to_string()),
                    Behaviour::Slow(d) => {
                        tokio::time::sleep(d).await;
                        (axum::http::StatusCode::OK, json!({"approved": true}).to_string())
                    }
                    Behaviour::Garbage => (axum::http::StatusCode::OK, "{\"approved\": mayb".to_owned()),
                    Behaviour::Fail => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned()),
                }
            }
        };
        let router = axum::Router::new().route("/authorize", axum::routing::post(handler));
        let (base, tx) = crate::support::serve_local(router).await;
        let url = format!("{base}/authorize");
        FakeCustodian {
            url,
            calls,
            behaviour,
            _stop: tx,
        }
    }

    fn set(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap() = b;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn micros(rfc3339: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        rfc3339.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap()
}

async fn a_custodian_decides_funds_and_stand_in_covers_every_failure(b: Backend) {
    let custodian = FakeCustodian::start().await;
    let Some(app) = TestApp::spawn_with(b, |c| {
        c.custodian_breaker_failures = 3;
        c.custodian_breaker_open_ms = 2_000;
    })
    .await
    else {
        return;
    };
    let tenant = app.tenant_with(&[Permission::Reveal]).await;
    let t = &tenant.sandbox;
    let (status, program) = app
        .post(
            t,
            "/programs",
            &json!({
                "program_id": "CUST", "name": "Custodian", "network": "VISA", "bin": "422222", "currency": "USD",
                "design_keys": ["blue"], "funding_model": "custodian_authority",
                "custodian": {"url": custodian.url, "signing_secret": SECRET, "deadline_ms": DEADLINE_MS,
                              "stand_in": {"policy": "approve_up_to", "amount": 1_000}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{program}");
    assert!(
        !program.to_string().contains(SECRET),
        "the signing secret is never shown"
    );
    let holder = app.cardholder(t, &seed_cardholder("490940000", None)).await;
    let (_, card) = app
        .post(
            t,
            &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
            &json!({"program_id": "CUST"}),
        )
        .await;
    let card_id = card["card"]["id"].as_str().unwrap();
    let revealed = app.reveal(t, card_id).await;
    let net = app.network_key().await;
    let authorize = |amount: i64| {
        let body = NetMessage::authorization(&revealed, amount)
            .merchant(merchant("m", "Shop", "5411", "NYC"))
            .into_json();
        let app = &app;
        let net = net.clone();
        async move {
            let (status, answer) = app.post(&net, "/network/authorizations", &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }
    };
    let transaction = |answer: &Value| {
        let id = answer["authorization_id"].as_str().unwrap().to_owned();
        let app = &app;
        let creds = t.clone();
        async move { app.get(&creds, &format!("/transactions/{id}")).await.1["transaction"].clone() }
    };

    // The custodian approves: no stored balance is needed, the custodian is the authority.
    let ok = authorize(5_000).await;
    assert_eq!(
        (ok["decision"].as_str(), ok["stand_in"].as_bool()),
        (Some("approved"), Some(false)),
        "{ok}"
    );
    let tx = transaction(&ok).await;
    assert!(tx["timestamps"]["custodian_sent_at"].is_string() && tx["timestamps"]["custodian_answered_at"].is_string());
    // It declines.
    custodian.set(Behaviour::Decline);
    let no = authorize(100).await;
    assert_eq!(
        (no["response_code"].as_str(), no["reason"].as_str()),
        (Some("05"), Some("custodian_declined"))
    );

    // Slow, garbage, failing: the stand-in policy answers by the deadline, and records it.
    for behaviour in [
        Behaviour::Slow(Duration::from_secs(5)),
        Behaviour::Garbage,
        Behaviour::Fail,
    ] {
        custodian.set(behaviour);
        let small = authorize(800).await;
        assert_eq!(
            (small["decision"].as_str(), small["stand_in"].as_bool()),
            (Some("approved"), Some(true)),
            "{small}"
        );
        let tx = transaction(&small).await;
        assert!(tx["timestamps"]["custodian_answered_at"].is_null(), "no usable answer");
        let took = micros(&tx["timestamps"]["answered_at"]) - micros(&tx["timestamps"]["received_at"]);
        assert!(
            took < 4_000_000,
            "answered {took} µs after receipt: the stand-in did not wait for the 5 s custodian"
        );
    }
    // Three failures in a row opened the breaker: no call goes out, stand-in answers at once.
    let before = custodian.calls();
    custodian.set(Behaviour::Approve);
    let big = authorize(1_500).await;
    assert_eq!(
        (big["response_code"].as_str(), big["reason"].as_str()),
        (Some("51"), Some("insufficient_funds")),
        "over the stand-in cap: {big}"
    );
    assert_eq!(
        custodian.calls(),
        before,
        "the open breaker kept the custodian out of it"
    );
    // After the open period one probe goes through; success closes the breaker.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let probe = authorize(1_500).await;
    assert_eq!(
        (probe["decision"].as_str(), probe["stand_in"].as_bool()),
        (Some("approved"), Some(false)),
        "{probe}"
    );
    assert_eq!(custodian.calls(), before + 1);
    let after = authorize(10).await;
    assert_eq!(after["stand_in"], false);
    assert_eq!(custodian.calls(), before + 2, "closed again");

    // A program whose stand-in policy declines answers 91 when its custodian cannot be reached.
    let unreachable = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/authorize", l.local_addr().unwrap())
    };
    let (status, _) = app
        .post(
            t,
            "/programs",
            &json!({
                "program_id": "CUST2", "name": "Strict", "network": "VISA", "bin": "433333", "currency": "USD",
                "design_keys": ["blue"], "funding_model": "custodian_authority",
                "custodian": {"url": unreachable, "signing_secret": SECRET, "deadline_ms": DEADLINE_MS}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, card2) = app
        .post(
            t,
            &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
            &json!({"program_id": "CUST2"}),
        )
        .await;
    let id2 = card2["card"]["id"].as_str().unwrap();
    let card2 = app.reveal(t, id2).await;
    let body = NetMessage::authorization(&card2, 100)
        .id("nt_unreachable")
        .merchant(merchant("m", "Shop", "5411", "NYC"))
        .into_json();
    let (_, answer) = app.post(&net, "/network/authorizations", &body).await;
    assert_eq!(
        (answer["response_code"].as_str(), answer["reason"].as_str()),
        (Some("91"), Some("custodian_unavailable")),
        "{answer}"
    );
    assert_eq!(answer["stand_in"], true);
}

both_backends!(a_custodian_decides_funds_and_stand_in_covers_every_failure);
