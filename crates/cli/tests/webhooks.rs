//! Webhook delivery across real `cardplane serve` processes on one database: a server killed
//! (SIGKILL) mid-delivery loses nothing once another starts, and two servers never both send the
//! same delivery.

use std::collections::HashMap;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use cardplane_testkit::{Backend, TestDb, both_backends, http};

mod common;
use common::Server;
use serde_json::{Value, json};

/// A receiver that never answers the first request and answers 204 to the rest; counts requests
/// per `webhook-id`.
struct Receiver {
    url: String,
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

impl Receiver {
    async fn start(hang_first: bool) -> Receiver {
        let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let log = seen.clone();
        let handler = move |headers: HeaderMap, _body: Bytes| {
            let log = log.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let first = {
                    let mut seen = log.lock().unwrap();
                    let total: usize = seen.values().sum();
                    *seen.entry(id).or_default() += 1;
                    total == 0
                };
                if hang_first && first {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                StatusCode::NO_CONTENT
            }
        };
        let router = axum::Router::new().fallback(axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver { url, seen }
    }

    fn counts(&self) -> HashMap<String, usize> {
        self.seen.lock().unwrap().clone()
    }
}

fn tenant_key(db: &TestDb, dir: &std::path::Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cardplane"))
        .args(["tenant", "create", "--name", "Hooks", "--json"])
        .current_dir(dir)
        .env("CARDPLANE_DATABASE_URL", &db.url)
        .env("CARDPLANE_KEY_FILE", dir.join("cardplane.keys"))
        .env("RUST_LOG", "warn")
        .env_remove("CARDPLANE_KEK")
        .env_remove("CARDPLANE_API_KEY_PEPPER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        t["sandbox_key"]["id"].as_str().unwrap().to_owned(),
        t["sandbox_key"]["secret"].as_str().unwrap().to_owned(),
    )
}

async fn post(server: &Server, key: &(String, String), path: &str, body: Value) -> Value {
    let (status, answer) = http::post(&reqwest::Client::new(), &server.base, key, path, &body).await;
    assert!((200..300).contains(&status), "{path}: {status}");
    answer
}

async fn event_ids(server: &Server, key: &(String, String)) -> Vec<String> {
    let (_, events) = http::get(&reqwest::Client::new(), &server.base, key, "/events?limit=50").await;
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn a_server_killed_mid_delivery_loses_nothing(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = tenant_key(&db, dir.path());
    let receiver = Receiver::start(true).await;
    let mut first = Server::start(&db, dir.path());
    post(&first, &key, "/webhook_endpoints", json!({"url": receiver.url})).await;
    eventually("the first delivery is in flight", || !receiver.counts().is_empty()).await;
    for _ in 0..3 {
        post(&first, &key, "/api_keys", json!({"name": "more events"})).await;
    }
    first.kill();

    let second = Server::start(&db, dir.path());
    let expected = event_ids(&second, &key).await;
    let hooked: Vec<String> = expected.iter().take(4).cloned().collect(); // the endpoint came first
    eventually("every event after the endpoint has arrived", || {
        let counts = receiver.counts();
        hooked.iter().all(|id| counts.contains_key(id))
    })
    .await;
    eventually("the interrupted delivery was sent again", || {
        receiver.counts().values().any(|n| *n >= 2)
    })
    .await;
}

async fn two_servers_never_send_the_same_delivery(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = tenant_key(&db, dir.path());
    let receiver = Receiver::start(false).await;
    let one = Server::start(&db, dir.path());
    let two = Server::start(&db, dir.path());
    post(&one, &key, "/webhook_endpoints", json!({"url": receiver.url})).await;
    for i in 0..12 {
        let server = if i % 2 == 0 { &one } else { &two };
        post(server, &key, "/api_keys", json!({"name": "more events"})).await;
    }
    eventually("all 13 events have arrived", || receiver.counts().len() == 13).await;
    // A further poll round of both servers finds nothing left to send.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = receiver.counts();
    assert_eq!(counts.len(), 13);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

both_backends!(
    a_server_killed_mid_delivery_loses_nothing,
    two_servers_never_send_the_same_delivery,
);
