//! Crash survival: `cardplane serve` is killed with SIGKILL again and again while authorizations
//! stream in; after each restart every authorization that was answered "approved" exists with its
//! hold, and the ledger verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardplane_testkit::{Backend, TestDb, both_backends};
use serde_json::Value;

mod common;
use cardplane_testkit::http::get;
use cardplane_testkit::net::NetMessage;
use common::{Server, assert_ledger_verifies, provision};

const KILLS: usize = 3;

async fn approved_authorizations_survive_kill_9(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (key, net) = provision(&db.url, dir.path());
    let http = reqwest::Client::new();
    let mut server = Server::start(&db, dir.path());
    common::program(&http, &server.base, &key, 100_000_000).await;
    let card = common::card(&http, &server.base, &key, 10_000_000).await;
    let (card_id, pan, exp) = (card.id, card.pan, card.expiration);

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
                    let body = NetMessage::authorization(&(&pan, &exp), 100)
                        .id(format!("c{round}_{client}_{i}"))
                        .into_json();
                    let Ok(r) = http
                        .post(format!("{base}/network/authorizations"))
                        .basic_auth(&net.0, Some(&net.1))
                        .json(&body)
                        .send()
                        .await
                    else {
                        break;
                    };
                    let Ok(answer) = r.json::<Value>().await else { break };
                    if answer["decision"] == "approved" {
                        approved.lock().unwrap().push((
                            answer["authorization_id"].as_str().unwrap().to_owned(),
                            answer["approved_amount"].as_i64().unwrap(),
                        ));
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
        let (_, r) = get(&http, &server.base, &key, &format!("/transactions/{id}")).await;
        assert_eq!(
            r["transaction"]["state"], "PENDING",
            "an answered approval survived: {r}"
        );
        assert_eq!(r["transaction"]["held_amount"].as_i64(), Some(*amount));
    }
    let (_, balance) = get(&http, &server.base, &key, &format!("/cards/{card_id}/balance")).await;
    let answered: i64 = approved.iter().map(|(_, a)| a).sum();
    assert!(
        balance["balance"]["held"].as_i64().unwrap() >= answered,
        "every answered approval still holds: {balance}"
    );
    server.kill();
    assert_ledger_verifies(&db.url, dir.path());
}

both_backends!(approved_authorizations_survive_kill_9);
