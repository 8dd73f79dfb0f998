//! Database outage: a real `cardplane serve` runs on a PostgreSQL cluster that belongs to this
//! test, under authorization load; the cluster is stopped at once (`pg_ctl stop -m immediate`)
//! and later started again. While it is down every request fails fast with `503` and
//! `Retry-After` in the error envelope (never a 500, never a hang, no internal text) and `/readyz`
//! says unready; once it is back Cardplane recovers by itself within 5 s, and every approval it
//! answered still exists with its hold.
//!
//! PostgreSQL only: SQLite is embedded in the process, so there is no database server to lose.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardplane_testkit::PgCluster;
use serde_json::Value;

mod common;
use cardplane_testkit::http::get;
use cardplane_testkit::net::NetMessage;
use common::{Creds, Server, assert_ledger_verifies, provision};

/// A request while the database is down must be answered within this (the pool's acquire
/// timeout is 2 s by default).
const FAIL_FAST: Duration = Duration::from_secs(3);
/// After the database is back, Cardplane must serve again within this.
const RECOVER_WITHIN: Duration = Duration::from_secs(5);
const CLIENTS: usize = 4;

#[derive(Debug, Clone)]
struct Outcome {
    sent: Instant,
    latency: Duration,
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(http: &reqwest::Client, base: &str, net: &Creds, card: &common::TestCard) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let tasks = (0..CLIENTS)
        .map(|client| {
            let (http, base, net, stop, outcomes) = (
                http.clone(),
                base.to_owned(),
                net.clone(),
                stop.clone(),
                outcomes.clone(),
            );
            let (pan, exp) = (card.pan.clone(), card.expiration.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = NetMessage::authorization(&(&pan, &exp), 100)
                        .id(format!("o{client}_{i}"))
                        .into_json();
                    let sent = Instant::now();
                    let r = http
                        .post(format!("{base}/network/authorizations"))
                        .basic_auth(&net.0, Some(&net.1))
                        .json(&body)
                        .send()
                        .await
                        .expect("the server answers (no connection dropped)");
                    let status = r.status().as_u16();
                    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                    let body: Value = r.json().await.expect("a JSON body");
                    outcomes.lock().unwrap().push(Outcome {
                        sent,
                        latency: sent.elapsed(),
                        status,
                        retry_after,
                        body,
                    });
                    if status != 200 {
                        // A real network would back off too; keep the log readable.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    Load { stop, outcomes, tasks }
}

fn assert_unavailable_envelope(status: u16, retry_after: Option<&str>, body: &Value) {
    assert_eq!(status, 503, "{body}");
    let retry: u64 = retry_after
        .expect("503 carries Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry >= 1);
    let error = body["error"].as_object().expect("the error envelope");
    assert_eq!(error["type"], "api_error", "{body}");
    assert_eq!(error["code"], "service_unavailable", "{body}");
    let message = error["message"].as_str().unwrap().to_lowercase();
    for internal in ["sqlx", "pool", "postgres", "connection", "io error", "database"] {
        assert!(!message.contains(internal), "internal text in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_fast_during_a_postgres_outage_and_recover_by_themselves() {
    let Some(mut pg) = tokio::task::spawn_blocking(PgCluster::start).await.unwrap() else {
        return;
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let (key, net) = provision(&url, dir.path());
    let server = Server::start_with(&url, dir.path(), &[]);
    let http = reqwest::Client::new();
    common::program(&http, &server.base, &key, 100_000_000).await;
    let card = common::card(&http, &server.base, &key, 10_000_000).await;

    let load = start_load(&http, &server.base, &net, &card);
    tokio::time::sleep(Duration::from_millis(800)).await;

    // The outage.
    pg = tokio::task::spawn_blocking(move || {
        pg.stop_immediate();
        pg
    })
    .await
    .unwrap();
    let down_at = Instant::now();
    let ready = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "/readyz while the database is down");
    assert!(
        down_at.elapsed() < FAIL_FAST,
        "/readyz answered in {:?}",
        down_at.elapsed()
    );
    let asked = Instant::now();
    let r = http
        .get(format!("{}/cards/{}/balance", server.base, card.id))
        .basic_auth(&key.0, Some(&key.1))
        .send()
        .await
        .unwrap();
    let latency = asked.elapsed();
    let (status, retry) = (
        r.status().as_u16(),
        r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
    );
    assert_unavailable_envelope(status, retry.as_deref(), &r.json().await.unwrap());
    assert!(latency < FAIL_FAST, "a tenant API read took {latency:?}");
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(down_at.elapsed())).await;

    // Back up: Cardplane must recover without help.
    let restarting_at = Instant::now();
    pg = tokio::task::spawn_blocking(move || {
        pg.start_server();
        pg
    })
    .await
    .unwrap();
    let up_at = Instant::now();
    let deadline = up_at + RECOVER_WITHIN;
    loop {
        let ready = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
        if ready.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz not ready 5 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = loop {
        let approved = load
            .outcomes
            .lock()
            .unwrap()
            .iter()
            .any(|o| o.sent > up_at && o.status == 200 && o.body["decision"] == "approved");
        if approved {
            break up_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no authorization approved 5 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop.store(true, Ordering::Relaxed);
    for t in load.tasks {
        t.await.unwrap();
    }
    let outcomes = load.outcomes.lock().unwrap().clone();

    // Every answer is a 200 or a fast 503 in the envelope; never a 500.
    let mut during = 0;
    for o in &outcomes {
        match o.status {
            200 => {}
            503 => assert_unavailable_envelope(o.status, o.retry_after.as_deref(), &o.body),
            other => panic!("status {other}: {}", o.body),
        }
        // Answered while the database was certainly down: after the stop, before the restart began.
        if o.sent >= down_at && o.sent + o.latency < restarting_at {
            during += 1;
            assert_eq!(
                o.status,
                503,
                "sent {:?} after the stop, answered in {:?}: {}",
                o.sent - down_at,
                o.latency,
                o.body
            );
            assert!(
                o.latency < FAIL_FAST,
                "a request took {:?} during the outage",
                o.latency
            );
        }
    }
    assert!(during >= 2, "the load ran during the outage ({during} requests)");
    let before = outcomes.iter().filter(|o| o.sent < down_at && o.status == 200).count();
    assert!(before > 10, "the load ran before the outage ({before} approvals)");

    // Every approval answered (before, around and after the outage) exists with its hold.
    let approved: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status == 200 && o.body["decision"] == "approved")
        .collect();
    for o in &approved {
        let id = o.body["authorization_id"].as_str().unwrap();
        let (status, tx) = get(&http, &server.base, &key, &format!("/transactions/{id}")).await;
        assert_eq!(status, 200, "{tx}");
        assert_eq!(tx["transaction"]["state"], "PENDING", "{tx}");
        assert_eq!(tx["transaction"]["held_amount"], o.body["approved_amount"], "{tx}");
    }
    let (_, balance) = get(&http, &server.base, &key, &format!("/cards/{}/balance", card.id)).await;
    let answered: i64 = approved
        .iter()
        .map(|o| o.body["approved_amount"].as_i64().unwrap())
        .sum();
    assert!(
        balance["balance"]["held"].as_i64().unwrap() >= answered,
        "every answered approval still holds: {balance}"
    );
    eprintln!(
        "outage: {} requests, {} approvals, {during} fast 503s while down, recovered {recovered:?} after restart",
        outcomes.len(),
        approved.len()
    );
    drop(server);
    assert_ledger_verifies(&url, dir.path());
    drop(pg);
}
