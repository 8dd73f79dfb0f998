//! Crash survival: `cardplane serve` is killed with SIGKILL again and again while authorizations
//! stream in; after each restart every authorization that was answered "approved" exists with its
//! hold, and the ledger verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardplane_testkit::{Backend, TestDb, both_backends};
use serde_json::{Value, json};

mod common;
use common::{Server, assert_ledger_verifies, provision};

const KILLS: usize = 3;

async fn approved_authorizations_survive_kill_9(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (key, net) = provision(&db.url, dir.path());
    let http = reqwest::Client::new();
    let mut server = Server::start(&db, dir.path());
    let post = |base: String, creds: (String, String), path: &str, body: Value| {
        let http = http.clone();
        let path = path.to_owned();
        async move {
            http.post(format!("{base}{path}"))
                .basic_auth(&creds.0, Some(&creds.1))
                .json(&body)
                .send()
                .await?
                .json::<Value>()
                .await
        }
    };
    post(server.base.clone(), key.clone(), "/programs", json!({"program_id": "P", "name": "P", "network": "VISA", "bin": "411111", "currency": "USD", "design_keys": ["a"]})).await.unwrap();
    post(
        server.base.clone(),
        key.clone(),
        "/sandbox/programs/P/fund",
        json!({"amount": 100_000_000, "currency": "USD"}),
    )
    .await
    .unwrap();
    let holder = post(server.base.clone(), key.clone(), "/cardholders", json!({
        "first_name": "A", "last_name": "B", "email": "a@b.co", "phone_number": "+16505550100", "date_of_birth": "1990-01-01",
        "address": {"street_one": "1 Main St", "locality": "Austin", "region": "TX", "postal_code": "73301", "country": "USA"},
        "document": {"type": "ssn", "value": "123450000"}})).await.unwrap();
    let card = post(
        server.base.clone(),
        key.clone(),
        &format!("/cardholders/{}/cards", holder["cardholder"]["id"].as_str().unwrap()),
        json!({"program_id": "P", "initial_load": {"currency": "USD", "amount": 10_000_000}}),
    )
    .await
    .unwrap();
    let card_id = card["card"]["id"].as_str().unwrap().to_owned();
    let secrets = post(
        server.base.clone(),
        key.clone(),
        &format!("/cards/{card_id}/reveal"),
        json!({}),
    )
    .await
    .unwrap();
    let (pan, exp) = (
        secrets["pan"].as_str().unwrap().to_owned(),
        secrets["expiration"].as_str().unwrap().to_owned(),
    );

    let approved: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    for round in 0..=KILLS {
        // Load for a moment from four clients, then (except in the last round) kill -9 mid-load.
        let mut tasks = Vec::new();
        for client in 0..4 {
            let (base, net, pan, exp, approved) = (
                server.base.clone(),
                net.clone(),
                pan.clone(),
                exp.clone(),
                approved.clone(),
            );
            let http = http.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10_000 {
                    let body = json!({"network_transaction_id": format!("c{round}_{client}_{i}"), "pan": pan, "expiration": exp,
                        "amount": 100, "currency": "USD", "merchant": {"id": "m", "name": "M", "mcc": "5411", "country": "USA", "city": "X"}});
                    let Ok(r) = http.post(format!("{base}/network/authorizations")).basic_auth(&net.0, Some(&net.1)).json(&body).send().await else { break };
                    let Ok(answer) = r.json::<Value>().await else { break };
                    if answer["decision"] == "approved" {
                        approved.lock().unwrap().push((answer["authorization_id"].as_str().unwrap().to_owned(), answer["approved_amount"].as_i64().unwrap()));
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        if round == KILLS {
            for t in &tasks {
                t.abort();
            }
            break;
        }
        server.kill();
        for t in tasks {
            let _ = t.await;
        }
        server = Server::start(&db, dir.path());
    }
    let approved = approved.lock().unwrap().clone();
    assert!(approved.len() > 20, "the load ran ({} approvals)", approved.len());
    for (id, amount) in &approved {
        let r: Value = http
            .get(format!("{}/transactions/{id}", server.base))
            .basic_auth(&key.0, Some(&key.1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            r["transaction"]["state"], "PENDING",
            "an answered approval survived: {r}"
        );
        assert_eq!(r["transaction"]["held_amount"].as_i64(), Some(*amount));
    }
    let balance: Value = http
        .get(format!("{}/cards/{card_id}/balance", server.base))
        .basic_auth(&key.0, Some(&key.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answered: i64 = approved.iter().map(|(_, a)| a).sum();
    assert!(
        balance["balance"]["held"].as_i64().unwrap() >= answered,
        "every answered approval still holds: {balance}"
    );
    server.kill();
    assert_ledger_verifies(&db.url, dir.path());
}

both_backends!(approved_authorizations_survive_kill_9);
