//! Long-running reliability (soak): the bank workload runs against two real `cardplane serve`
//! processes on a PostgreSQL cluster that belongs to the test, while faults are injected: a
//! server is killed with SIGKILL and restarted every quarter of the run, and the database is
//! stopped at once (`pg_ctl stop -m immediate`) and restarted halfway through. Clients do what a
//! card network and a careful API client do: on no answer or a 503 they retry the same message
//! (same `network_transaction_id`, same `Idempotency-Key`) on whichever server is up.
//!
//! At the end every answered message is checked against what the database holds (an approval is
//! still held, a reversal released it, a clearing posted what it said) and the ledger verifies;
//! "lost" counts every answered effect that is missing. It must be 0.
//!
//! `SOAK_SECS` sets the duration (default 12 s in CI); `.ci/reliability` runs it for minutes in a
//! release build and prints the figures that BENCHMARKS.md records.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cardplane_store::ledger::LedgerStore;
use cardplane_store::{Db, DbOptions, SqlStore};
use cardplane_testkit::PgCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

mod common;
use cardplane_testkit::http::get;
use cardplane_testkit::net::NetMessage;
use common::{Creds, Server, TestCard, assert_ledger_verifies, provision};

const SERVERS: usize = 2;
const CARDS: usize = 8;
const WORKERS: usize = 6;
/// How long a client keeps retrying one message before it counts it as unanswered.
const RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counters {
    operations: AtomicU64,
    retries: AtomicU64,
    unanswered: AtomicU64,
    in_doubt: AtomicU64,
}

/// What a worker was told, to compare with what the database holds at the end.
#[derive(Debug, Clone)]
enum Answered {
    /// Approved and left pending.
    Held {
        auth_id: String,
        amount: i64,
    },
    Cleared {
        auth_id: String,
        amount: i64,
    },
    Reversed {
        auth_id: String,
    },
}

impl Answered {
    fn auth_id(&self) -> &str {
        match self {
            Answered::Held { auth_id, .. } | Answered::Cleared { auth_id, .. } | Answered::Reversed { auth_id } => {
                auth_id
            }
        }
    }

    /// Whether the stored transaction shows this answer's effect.
    fn holds(&self, t: &Value) -> bool {
        match self {
            Answered::Held { amount, .. } => t["state"] == "PENDING" && t["held_amount"] == *amount,
            Answered::Cleared { amount, .. } => t["cleared_amount"] == *amount && t["held_amount"] == 0,
            Answered::Reversed { .. } => t["state"] == "REVERSED" && t["held_amount"] == 0,
        }
    }
}

struct Cluster {
    servers: RwLock<Vec<String>>,
    counters: Counters,
    answered: Mutex<Vec<Answered>>,
}

impl Cluster {
    fn pick(&self, rng: &mut StdRng) -> String {
        let servers = self.servers.read().unwrap();
        servers[rng.random_range(0..servers.len())].clone()
    }

    /// Sends until some server answers with something other than a 503 (or gives up).
    async fn send(
        &self,
        http: &reqwest::Client,
        rng: &mut StdRng,
        creds: &Creds,
        path: &str,
        body: &Value,
        idem: Option<&str>,
    ) -> Option<(u16, Value)> {
        let started = Instant::now();
        loop {
            let base = self.pick(rng);
            let mut req = http
                .post(format!("{base}{path}"))
                .basic_auth(&creds.0, Some(&creds.1))
                .timeout(Duration::from_secs(10))
                .json(body);
            if let Some(key) = idem {
                req = req.header("Idempotency-Key", key);
            }
            if let Ok(r) = req.send().await {
                let status = r.status().as_u16();
                if let Ok(v) = r.json::<Value>().await
                    && status != 503
                {
                    self.counters.operations.fetch_add(1, Ordering::Relaxed);
                    return Some((status, v));
                }
            }
            if started.elapsed() > RETRY_FOR {
                self.counters.unanswered.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn worker(
    w: u64,
    cluster: Arc<Cluster>,
    http: reqwest::Client,
    cards: Arc<Vec<TestCard>>,
    net: Creds,
    key: Creds,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(w);
    let mut pending: Vec<(String, String, i64)> = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let card = &cards[rng.random_range(0..cards.len())];
        let ntid = format!("soak_{w}_{i}");
        match rng.random_range(0..10) {
            0..=4 => {
                let body = NetMessage::authorization(card, rng.random_range(1..500))
                    .id(&ntid)
                    .json();
                if let Some((200, a)) = cluster
                    .send(&http, &mut rng, &net, "/network/authorizations", &body, None)
                    .await
                    && a["decision"] == "approved"
                {
                    pending.push((
                        ntid,
                        a["authorization_id"].as_str().unwrap().to_owned(),
                        a["approved_amount"].as_i64().unwrap(),
                    ));
                }
            }
            5 | 6 if !pending.is_empty() => {
                let (original, auth_id, held) = pending.swap_remove(rng.random_range(0..pending.len()));
                let amount = rng.random_range(1..=held);
                let body = NetMessage::clearing(&original, amount).id(&ntid).json();
                match cluster
                    .send(&http, &mut rng, &net, "/network/clearings", &body, None)
                    .await
                {
                    Some((200, c)) => {
                        assert_eq!(c["decision"], "approved", "{c}");
                        cluster.answered.lock().unwrap().push(Answered::Cleared {
                            auth_id,
                            amount: c["approved_amount"].as_i64().unwrap(),
                        });
                    }
                    other => panic!("clearing: {other:?}"),
                }
            }
            7 if !pending.is_empty() => {
                let (original, auth_id, _) = pending.swap_remove(rng.random_range(0..pending.len()));
                let body = NetMessage::reversal(&original).id(&ntid).json();
                match cluster
                    .send(&http, &mut rng, &net, "/network/reversals", &body, None)
                    .await
                {
                    Some((200, r)) => {
                        assert_eq!(r["decision"], "approved", "{r}");
                        cluster.answered.lock().unwrap().push(Answered::Reversed { auth_id });
                    }
                    other => panic!("reversal: {other:?}"),
                }
            }
            8 => {
                let body = NetMessage::refund(card, rng.random_range(1..100)).id(&ntid).json();
                cluster
                    .send(&http, &mut rng, &net, "/network/refunds", &body, None)
                    .await;
            }
            _ => {
                let kind = if rng.random_bool(0.5) { "credit" } else { "debit" };
                let body = json!({"type": kind, "amount": rng.random_range(1..300), "currency": "USD"});
                let path = format!("/cards/{}/balance_adjustments", card.id);
                if let Some((status, v)) = cluster.send(&http, &mut rng, &key, &path, &body, Some(&ntid)).await {
                    // A key whose first request died with its server stays claimed for 60 s: the
                    // outcome is in doubt until then (the ledger check covers it either way).
                    let in_doubt = v["error"]["code"] == "idempotency_request_in_progress";
                    if in_doubt {
                        cluster.counters.in_doubt.fetch_add(1, Ordering::Relaxed);
                    }
                    assert!(
                        status == 200 || in_doubt || v["error"]["code"] == "insufficient_funds",
                        "{status} {v}"
                    );
                }
            }
        }
    }
    let mut answered = cluster.answered.lock().unwrap();
    answered.extend(
        pending
            .into_iter()
            .map(|(_, auth_id, amount)| Answered::Held { auth_id, amount }),
    );
}

fn soak_duration() -> Duration {
    Duration::from_secs(
        std::env::var("SOAK_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(12),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_is_lost_under_kill_9_and_a_database_outage() {
    let Some(mut pg) = tokio::task::spawn_blocking(PgCluster::start).await.unwrap() else {
        return;
    };
    let duration = soak_duration();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let (key, net) = provision(&url, dir.path());
    let env = [("RUST_LOG", "warn,cardplane=info")];
    let mut processes: Vec<Server> = (0..SERVERS)
        .map(|_| Server::start_with(&url, dir.path(), &env))
        .collect();
    let http = reqwest::Client::new();
    common::program(&http, &processes[0].base, &key, 1_000_000_000_000).await;
    let mut cards = Vec::new();
    for _ in 0..CARDS {
        cards.push(common::card(&http, &processes[0].base, &key, 10_000_000_000).await);
    }
    let cards = Arc::new(cards);
    let cluster = Arc::new(Cluster {
        servers: RwLock::new(processes.iter().map(|s| s.base.clone()).collect()),
        counters: Counters::default(),
        answered: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(worker(
                u64::try_from(w).unwrap(),
                cluster.clone(),
                http.clone(),
                cards.clone(),
                net.clone(),
                key.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // Faults at every interval (a quarter of the run, at most 30 s): a kill -9 and restart of a
    // server, except the middle one, which stops the database for a while.
    let started = Instant::now();
    let interval = (duration / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let steps = u32::try_from(duration.as_secs() / interval.as_secs().max(1))
        .unwrap()
        .max(4)
        - 1;
    let outage = (duration / 8).clamp(Duration::from_secs(1), Duration::from_secs(10));
    let (mut kills, mut outages, mut down_for) = (0u64, 0u64, Duration::ZERO);
    for step in 1..=steps {
        tokio::time::sleep_until((started + interval * step).into()).await;
        if step == steps.div_ceil(2) {
            pg = tokio::task::spawn_blocking(move || {
                pg.stop_immediate();
                pg
            })
            .await
            .unwrap();
            let down = Instant::now();
            tokio::time::sleep(outage).await;
            pg = tokio::task::spawn_blocking(move || {
                pg.start_server();
                pg
            })
            .await
            .unwrap();
            down_for += down.elapsed();
            outages += 1;
        } else {
            let victim = usize::try_from(step).unwrap() % SERVERS;
            processes[victim].kill();
            let fresh = tokio::task::spawn_blocking({
                let (url, dir) = (url.clone(), dir.path().to_owned());
                move || Server::start_with(&url, &dir, &[("RUST_LOG", "warn,cardplane=info")])
            })
            .await
            .unwrap();
            cluster.servers.write().unwrap()[victim] = fresh.base.clone();
            processes[victim] = fresh;
            kills += 1;
        }
    }
    tokio::time::sleep_until((started + duration).into()).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();

    // What was answered is what the database holds.
    let answered = cluster.answered.lock().unwrap().clone();
    let base = processes[0].base.clone();
    let mut checks = tokio::task::JoinSet::new();
    for chunk in answered.chunks(answered.len().div_ceil(8).max(1)) {
        let (chunk, http, base, key) = (chunk.to_vec(), http.clone(), base.clone(), key.clone());
        checks.spawn(async move {
            let mut lost = 0u64;
            for a in &chunk {
                let (status, tx) = get(&http, &base, &key, &format!("/transactions/{}", a.auth_id())).await;
                if status != 200 || !a.holds(&tx["transaction"]) {
                    eprintln!("LOST: {a:?} -> {status} {tx}");
                    lost += 1;
                }
            }
            lost
        });
    }
    let mut lost = 0u64;
    while let Some(n) = checks.join_next().await {
        lost += n.unwrap();
    }
    let store = SqlStore::new(Db::connect(&DbOptions::new(url.clone())).await.unwrap());
    let report = store.verify_ledger().await.unwrap();
    drop(store);
    let c = &cluster.counters;
    let operations = c.operations.load(Ordering::Relaxed);
    let summary = json!({
        "duration_secs": elapsed.as_secs_f64().round(),
        "operations": operations,
        "operations_per_sec": operations / elapsed.as_secs().max(1),
        "answered_effects_checked": answered.len(),
        "retries": c.retries.load(Ordering::Relaxed),
        "unanswered": c.unanswered.load(Ordering::Relaxed),
        "adjustments_in_doubt": c.in_doubt.load(Ordering::Relaxed),
        "kill_9_restarts": kills,
        "database_outages": outages,
        "database_down_secs": down_for.as_secs_f64(),
        "lost": lost,
        "ledger_problems": report.problems.len(),
        "ledger": format!("{} accounts, {} journals, {} entries", report.accounts, report.journals, report.entries),
    });
    eprintln!("SOAK {summary}");
    assert_eq!(lost, 0, "answered effects missing");
    assert_eq!(c.unanswered.load(Ordering::Relaxed), 0, "a message never got an answer");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(operations > 0 && kills > 0 && outages > 0);
    drop(processes);
    assert_ledger_verifies(&url, dir.path());
    drop(pg);
}
