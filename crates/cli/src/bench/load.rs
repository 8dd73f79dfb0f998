//! Driving the load: the server under test, the open-loop load generator, latency and engine
//! figures, and the machine it ran on.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cardplane_api::state::AppState;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use super::provisioning::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Authorizations of 1-100 units at random funded cards.
    Authorize,
    /// Authorize, then clear (90%), reverse (5%), refund (2%); some declines.
    Lifecycle,
    /// 10 cards, 64 connections: contention on a few accounts.
    Hot,
    /// `authorize` at growing card counts (`--growth`).
    Growth,
    /// A backtest over `--history` stored authorizations against `--rules` rules.
    Backtest,
    /// A fixed mix of tenant API calls, with the request log on and/or off (`--request-log`).
    Api,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub(super) struct Server {
    pub(super) child: Child,
    pub(super) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(super) async fn start_server(state: &AppState) -> anyhow::Result<Server> {
    start_server_with(state, &[]).await
}

/// A `cardplane serve` child with extra environment variables on top of the bench's settings.
pub(super) async fn start_server_with(state: &AppState, env: &[(&str, &str)]) -> anyhow::Result<Server> {
    let port = free_port()?;
    let config = &state.config;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("serve")
        .env("CARDPLANE_DATABASE_URL", &config.database_url)
        .env("CARDPLANE_LISTEN", format!("127.0.0.1:{port}"))
        .env("CARDPLANE_KEY_FILE", std::path::absolute(&config.key_file)?)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(k) = &config.kek {
        cmd.env("CARDPLANE_KEK", k);
    }
    if let Some(p) = &config.api_key_pepper {
        cmd.env("CARDPLANE_API_KEY_PEPPER", p);
    }
    let server = Server {
        child: cmd.spawn().context("starting cardplane serve")?,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become ready")
}

pub(super) fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

pub(super) struct Counters {
    pub(super) approved: AtomicU64,
    pub(super) declined: AtomicU64,
    pub(super) follow_ups: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) approved_minor: AtomicU64,
}

pub(super) fn percentiles(h: &Histogram<u64>) -> Latency {
    #[allow(clippy::cast_precision_loss, reason = "microseconds to milliseconds for display")]
    let ms = |v: u64| v as f64 / 1000.0;
    Latency {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

pub(super) fn merchant() -> serde_json::Value {
    json!({"id": "bench_m", "name": "Bench Store", "mcc": "5411", "country": "USA", "city": "Austin"})
}

/// Drives the workload; returns counters, the merged latency histogram and the elapsed time.
#[allow(clippy::too_many_arguments, reason = "one run's settings")]
// Long: the open-loop load generator (pacing, the message mix, follow-ups, counting) is one
// loop per connection; its parts share the loop's state.
pub(super) async fn drive(
    base: &str,
    credential: (&str, &str),
    cards: Arc<Vec<BenchCard>>,
    workload: Workload,
    connections: usize,
    duration: Duration,
    rate: Option<u64>,
) -> (Arc<Counters>, Histogram<u64>, Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let counters = Arc::new(Counters {
        approved: AtomicU64::new(0),
        declined: AtomicU64::new(0),
        follow_ups: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        approved_minor: AtomicU64::new(0),
    });
    let started = Instant::now();
    let deadline = started + duration;
    // Network transaction ids must be new in every run: a reused one gets its stored answer.
    let run = uuid_like();
    let mut tasks = Vec::new();
    for task in 0..connections {
        let (http, cards, counters) = (http.clone(), cards.clone(), counters.clone());
        let url = format!("{base}/network/authorizations");
        let base = base.to_owned();
        let (user, secret) = (credential.0.to_owned(), credential.1.to_owned());
        let run = run.clone();
        // Open loop: each connection sends at rate/connections, latency counted from the planned send.
        let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1) as f64));
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(SEED + task as u64);
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            // Connections tick out of phase, so a fixed rate arrives evenly rather than in bursts of
            // one request per connection at the same instant.
            let phase = interval.map_or(Duration::ZERO, |i| i.mul_f64(task as f64 / connections as f64));
            let mut next = Instant::now() + phase;
            let mut seq = 0u64;
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    next += i;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let planned = if interval.is_some() { next } else { Instant::now() };
                let card = &cards[rng.random_range(0..cards.len())];
                let oversized = workload == Workload::Lifecycle && rng.random_bool(0.03);
                let amount = if oversized { CARD_FUNDS_MINOR * 10 } else { rng.random_range(AMOUNT_MIN_MINOR..=AMOUNT_MAX_MINOR) };
                seq += 1;
                let ntid = format!("b{run}_{task}_{seq}");
                let body = json!({"network_transaction_id": ntid, "pan": card.pan, "expiration": card.expiration, "amount": amount,
                                  "currency": "USD", "merchant": merchant(), "entry_mode": "chip"});
                let sent = http.post(&url).basic_auth(&user, Some(&secret)).json(&body).send().await;
                let answer: Option<serde_json::Value> = match sent {
                    Ok(r) if r.status().is_success() => r.json().await.ok(),
                    _ => None,
                };
                let micros = u64::try_from(planned.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                let _ = h.record(micros.min(60_000_000));
                let Some(answer) = answer else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if answer["decision"] != "approved" {
                    counters.declined.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                counters.approved.fetch_add(1, Ordering::Relaxed);
                counters.approved_minor.fetch_add(answer["approved_amount"].as_u64().unwrap_or(0), Ordering::Relaxed);
                if workload != Workload::Lifecycle {
                    continue;
                }
                let roll: f64 = rng.random();
                let (path, follow) = if roll < 0.90 {
                    ("clearings", json!({"network_transaction_id": format!("{ntid}_c"), "original_network_transaction_id": ntid, "amount": amount, "currency": "USD"}))
                } else if roll < 0.95 {
                    ("reversals", json!({"network_transaction_id": format!("{ntid}_r"), "original_network_transaction_id": ntid}))
                } else if roll < 0.97 {
                    ("refunds", json!({"network_transaction_id": format!("{ntid}_f"), "pan": card.pan, "amount": amount / 2 + 1, "currency": "USD", "merchant": merchant()}))
                } else {
                    continue;
                };
                match http.post(format!("{base}/network/{path}")).basic_auth(&user, Some(&secret)).json(&follow).send().await {
                    Ok(r) if r.status().is_success() => counters.follow_ups.fetch_add(1, Ordering::Relaxed),
                    _ => counters.errors.fetch_add(1, Ordering::Relaxed),
                };
            }
            h
        }));
    }
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = merged.add(h);
        }
    }
    (counters, merged, started.elapsed())
}

/// The authorization engine's counters, read from the server's `/metrics`.
#[derive(Debug, Clone, Default)]
pub(super) struct EngineFigures {
    pub(super) batches: f64,
    pub(super) messages: f64,
    pub(super) statements: f64,
    /// (upper bound, cumulative count) of the batch-size histogram.
    pub(super) buckets: Vec<(f64, f64)>,
}

impl EngineFigures {
    pub(super) async fn scrape(base: &str) -> EngineFigures {
        let text = match reqwest::get(format!("{base}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let mut figures = EngineFigures::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            match name {
                "cardplane_engine_batches_total" => figures.batches = value,
                "cardplane_engine_messages_total" => figures.messages = value,
                "cardplane_engine_statements_total" => figures.statements = value,
                _ => {
                    if let Some(le) = name
                        .strip_prefix("cardplane_engine_batch_size_bucket{le=\"")
                        .and_then(|rest| rest.strip_suffix("\"}"))
                    {
                        let bound = if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap_or(f64::INFINITY)
                        };
                        figures.buckets.push((bound, value));
                    }
                }
            }
        }
        figures
    }

    pub(super) fn since(&self, before: &EngineFigures) -> EngineFigures {
        EngineFigures {
            batches: self.batches - before.batches,
            messages: self.messages - before.messages,
            statements: self.statements - before.statements,
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let earlier = before.buckets.iter().find(|(b, _)| b == le).map_or(0.0, |(_, m)| *m);
                    (*le, n - earlier)
                })
                .collect(),
        }
    }

    pub(super) fn batch_size_mean(&self) -> f64 {
        if self.batches > 0.0 {
            self.messages / self.batches
        } else {
            0.0
        }
    }

    pub(super) fn batch_size_quantile(&self, q: f64) -> f64 {
        let total = self.buckets.iter().map(|(_, n)| *n).fold(0.0, f64::max);
        let target = total * q;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= target && total > 0.0)
            .map_or(0.0, |(le, _)| *le)
    }

    pub(super) fn statements_per_message(&self) -> f64 {
        if self.messages > 0.0 {
            self.statements / self.messages
        } else {
            0.0
        }
    }
}

pub(super) fn uuid_like() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// The HTTP ceiling: the same stack (axum + hyper, reqwest client) answering a trivial JSON echo.
pub(super) async fn http_ceiling(connections: usize, duration: Duration) -> anyhow::Result<f64> {
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::Json<serde_json::Value>| async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/echo", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, url, done, stop) = (http.clone(), url.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"network_transaction_id": "x", "amount": 100, "merchant": merchant()});
                if http.post(&url).json(&body).send().await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    server.abort();
    #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

pub(super) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} cores, {model}")
}
