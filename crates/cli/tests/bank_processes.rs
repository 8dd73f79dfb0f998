//! The bank test across processes: three real `cardplane serve` processes on one database take
//! concurrent authorizations, clearings, reversals, refunds and balance adjustments, each worker
//! picking a server at random, while a reader checks the books between operations straight from
//! the database: money is conserved at every read (every journal balances, balances sum to zero per
//! tenant, environment and currency), no spendable balance goes below its floor, every account's
//! held amount equals what its pending authorizations hold. Some holds are raced: two reversals of
//! one authorization on two different servers; exactly one of them releases it. At the end every
//! resolved authorization holds nothing and `cardplane ledger verify` is clean.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cardplane_store::ledger::LedgerStore;
use cardplane_store::{Db, DbOptions, SqlStore};
use cardplane_testkit::{Backend, TestDb, both_backends};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

mod common;
use cardplane_testkit::http::{get, post};
use cardplane_testkit::net::NetMessage;
use common::{Creds, Server, TestCard, assert_ledger_verifies, provision};

const SERVERS: usize = 3;
const CARDS: usize = 4;
const WORKERS: usize = 6;
const OPS_PER_WORKER: usize = 30;

/// One worker's operations; returns how many double reversals it raced.
async fn worker(
    w: u64,
    http: reqwest::Client,
    servers: Arc<Vec<String>>,
    cards: Arc<Vec<TestCard>>,
    net: Creds,
    key: Creds,
) -> usize {
    let mut rng = StdRng::seed_from_u64(w);
    let mut pending: Vec<(String, i64)> = Vec::new();
    let mut raced = 0;
    for i in 0..OPS_PER_WORKER {
        let base = &servers[rng.random_range(0..servers.len())];
        let card = &cards[rng.random_range(0..cards.len())];
        let ntid = format!("pbank_{w}_{i}");
        let (status, answer) = match rng.random_range(0..7) {
            0 | 1 => {
                let amount = rng.random_range(50..800);
                let auth = NetMessage::authorization(card, amount).id(&ntid);
                let (s, a) = post(&http, base, &net, auth.path(), &auth.json()).await;
                if a["decision"] == "approved" {
                    pending.push((ntid.clone(), a["approved_amount"].as_i64().unwrap()));
                }
                (s, a)
            }
            2 if !pending.is_empty() => {
                let (original, _) = pending.swap_remove(rng.random_range(0..pending.len()));
                let clearing = NetMessage::clearing(&original, rng.random_range(1..900)).id(&ntid);
                post(&http, base, &net, clearing.path(), &clearing.json()).await
            }
            3 if !pending.is_empty() => {
                let (original, _) = pending.swap_remove(rng.random_range(0..pending.len()));
                let reversal = NetMessage::reversal(&original).id(&ntid);
                post(&http, base, &net, reversal.path(), &reversal.json()).await
            }
            4 if !pending.is_empty() => {
                // Two reversals of one hold, at once, on two different servers: one releases it.
                let (original, held) = pending.swap_remove(rng.random_range(0..pending.len()));
                let (a, b) = (&servers[i % SERVERS], &servers[(i + 1) % SERVERS]);
                let one = NetMessage::reversal(&original).id(format!("{ntid}_a")).json();
                let two = NetMessage::reversal(&original).id(format!("{ntid}_b")).json();
                let ((s1, r1), (s2, r2)) = tokio::join!(
                    post(&http, a, &net, "/network/reversals", &one),
                    post(&http, b, &net, "/network/reversals", &two)
                );
                assert_eq!((s1, s2), (200, 200), "{r1} {r2}");
                let released = [&r1, &r2]
                    .iter()
                    .filter(|r| r["decision"] == "approved")
                    .map(|r| r["approved_amount"].as_i64().unwrap())
                    .sum::<i64>();
                assert_eq!(released, held, "a hold is released exactly once: {r1} {r2}");
                raced += 1;
                (200, Value::Null)
            }
            5 => {
                let refund = NetMessage::refund(card, rng.random_range(1..200)).id(&ntid);
                post(&http, base, &net, refund.path(), &refund.json()).await
            }
            _ => {
                let kind = if rng.random_bool(0.5) { "credit" } else { "debit" };
                let (s, body) = post(
                    &http,
                    base,
                    &key,
                    &format!("/cards/{}/balance_adjustments", card.id),
                    &json!({"type": kind, "amount": rng.random_range(1..600), "currency": "USD"}),
                )
                .await;
                // A debit beyond spendable is refused, never overdrawn.
                if s == 409 {
                    assert_eq!(body["error"]["code"], "insufficient_funds", "{body}");
                    (200, body)
                } else {
                    (s, body)
                }
            }
        };
        assert_eq!(status, 200, "{answer}");
    }
    raced
}

async fn money_is_conserved_across_three_serve_processes(b: Backend) {
    let Some(db) = TestDb::create(b).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (key, net) = provision(&db.url, dir.path());
    let first = Server::start(&db, dir.path());
    let others: Vec<Server> = (1..SERVERS).map(|_| Server::start(&db, dir.path())).collect();
    let servers = Arc::new(
        std::iter::once(first.base.clone())
            .chain(others.iter().map(|s| s.base.clone()))
            .collect::<Vec<_>>(),
    );
    let http = reqwest::Client::new();
    common::program(&http, &servers[0], &key, 1_000_000).await;
    let mut cards = Vec::new();
    for i in 0..CARDS {
        cards.push(common::card(&http, &servers[i % SERVERS], &key, 5_000).await);
    }
    let cards = Arc::new(cards);

    // The reader: straight from the database, between the workers' operations.
    let store = SqlStore::new(Db::connect(&DbOptions::new(db.url.clone())).await.unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (done, reads, cards, servers, key, http) = (
            done.clone(),
            reads.clone(),
            cards.clone(),
            servers.clone(),
            key.clone(),
            http.clone(),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let report = store.verify_ledger().await.unwrap();
                assert!(
                    report.problems.is_empty(),
                    "at read {}: {:?}",
                    reads.load(Ordering::Relaxed),
                    report.problems
                );
                for (i, card) in cards.iter().enumerate() {
                    let (s, balance) = get(
                        &http,
                        &servers[i % SERVERS],
                        &key,
                        &format!("/cards/{}/balance", card.id),
                    )
                    .await;
                    assert_eq!(s, 200, "{balance}");
                    assert!(
                        balance["balance"]["spendable"].as_i64().unwrap() >= 0,
                        "below its floor: {balance}"
                    );
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            store
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(worker(
                u64::try_from(w).unwrap(),
                http.clone(),
                servers.clone(),
                cards.clone(),
                net.clone(),
                key.clone(),
            ))
        })
        .collect();
    let mut raced = 0;
    for w in workers {
        raced += w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let store = reader.await.unwrap();
    assert!(
        reads.load(Ordering::Relaxed) > 0,
        "the reader checked the books while the workers ran"
    );
    assert!(raced > 0, "some holds were raced");
    let report = store.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Every resolved authorization holds nothing.
    let mut after = String::new();
    loop {
        let (_, page) = get(&http, &servers[0], &key, &format!("/transactions?limit=50{after}")).await;
        let txns = page["transactions"].as_array().unwrap().clone();
        for tx in &txns {
            let tx = &tx["transaction"];
            if tx["state"] != "PENDING" {
                assert_eq!(tx["held_amount"], 0, "{tx}");
            }
        }
        if page["has_more"] != true {
            break;
        }
        after = format!(
            "&starting_after={}",
            txns.last().unwrap()["transaction"]["id"].as_str().unwrap()
        );
    }
    drop(first);
    drop(others);
    assert_ledger_verifies(&db.url, dir.path());
}

both_backends!(money_is_conserved_across_three_serve_processes);
