//! The bank test (Jepsen style): workers authorize, clear, reverse, refund and adjust balances on
//! a few cards at once through three server instances on one database, while a reader checks the
//! books between operations: money is conserved at every read, no spendable balance goes below its
//! floor, every hold resolves once, and the ledger verifies at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cardplane_domain::api_key::Permission;
use cardplane_testkit::{Backend, both_backends};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::net::NetMessage;
use crate::support::{Creds, TestApp};

const CARDS: usize = 4;
const WORKERS: usize = 6;
const OPS_PER_WORKER: usize = 30;

async fn post(http: &reqwest::Client, base: &str, creds: &Creds, path: &str, body: Value) -> (StatusCode, Value) {
    let r = http
        .post(format!("{base}{path}"))
        .basic_auth(&creds.id, Some(&creds.secret))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn money_is_conserved_across_three_servers_under_concurrent_operations(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let tenant = app.tenant_with(&[Permission::Reveal]).await;
    let t = tenant.sandbox.clone();
    app.program(&t, "GPR", "411111", 1_000_000).await;
    let net = app.network_key().await;
    let mut cards = Vec::new();
    for _ in 0..CARDS {
        let c = app.card_with_balance(&t, "GPR", 5_000).await;
        cards.push(app.reveal(&t, c["id"].as_str().unwrap()).await);
    }
    let servers = Arc::new(vec![
        app.base.clone(),
        app.second_server().await,
        app.second_server().await,
    ]);
    let cards = Arc::new(cards);
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));

    // The reader: between operations, the books must always hold.
    let reader = {
        let (state, done, reads, cards, t) = (app.state.clone(), done.clone(), reads.clone(), cards.clone(), t.clone());
        let http = app.http.clone();
        let base = app.base.clone();
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let report = state.ledger.verify_ledger().await.unwrap();
                assert!(
                    report.problems.is_empty(),
                    "at read {}: {:?}",
                    reads.load(Ordering::Relaxed),
                    report.problems
                );
                for id in cards.iter().map(|c| &c.id) {
                    let (_, b) = cardplane_testkit::http::get(&http, &base, &t, &format!("/cards/{id}/balance")).await;
                    let spendable = b["balance"]["spendable"].as_i64();
                    assert!(spendable.is_some_and(|s| s >= 0), "spendable below its floor: {b}");
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (servers, cards, net, t, http) = (servers.clone(), cards.clone(), net.clone(), t.clone(), app.http.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(w as u64);
            let mut pending: Vec<String> = Vec::new();
            for i in 0..OPS_PER_WORKER {
                let base = &servers[rng.random_range(0..servers.len())];
                let card = &cards[rng.random_range(0..cards.len())];
                let ntid = format!("bank_{w}_{i}");
                let (status, _) = match rng.random_range(0..6) {
                    0 | 1 => {
                        let auth = NetMessage::authorization(card, rng.random_range(50..800)).id(&ntid);
                        let (s, a) = post(&http, base, &net, auth.path(), auth.into_json()).await;
                        if a["decision"] == "approved" {
                            pending.push(ntid.clone());
                        }
                        (s, a)
                    }
                    2 if !pending.is_empty() => {
                        let original = pending.swap_remove(rng.random_range(0..pending.len()));
                        let clearing = NetMessage::clearing(&original, rng.random_range(1..900)).id(&ntid);
                        post(&http, base, &net, clearing.path(), clearing.into_json()).await
                    }
                    3 if !pending.is_empty() => {
                        let original = pending.swap_remove(rng.random_range(0..pending.len()));
                        let reversal = NetMessage::reversal(&original).id(&ntid);
                        post(&http, base, &net, reversal.path(), reversal.into_json()).await
                    }
                    4 => {
                        let refund = NetMessage::refund(card, rng.random_range(1..200)).id(&ntid);
                        post(&http, base, &net, refund.path(), refund.into_json()).await
                    }
                    _ => {
                        let kind = if rng.random_bool(0.5) { "credit" } else { "debit" };
                        let (s, body) = post(
                            &http,
                            base,
                            &t,
                            &format!("/cards/{}/balance_adjustments", card.id),
                            json!({"type": kind, "amount": rng.random_range(1..600), "currency": "USD"}),
                        )
                        .await;
                        // A debit beyond spendable is refused, never overdrawn.
                        if s == StatusCode::CONFLICT {
                            assert_eq!(body["error"]["code"], "insufficient_funds", "{body}");
                            (StatusCode::OK, body)
                        } else {
                            (s, body)
                        }
                    }
                };
                assert_eq!(status, StatusCode::OK);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(
        reads.load(Ordering::Relaxed) > 0,
        "the reader checked the books while the workers ran"
    );
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Every resolved transaction holds nothing; every hold belongs to a pending authorization.
    let (_, txns) = app.get(&t, "/transactions?limit=50").await;
    for tx in txns["transactions"].as_array().unwrap() {
        let tx = &tx["transaction"];
        if tx["state"] != "PENDING" {
            assert_eq!(tx["held_amount"], 0, "{tx}");
        }
    }
}

both_backends!(money_is_conserved_across_three_servers_under_concurrent_operations);
