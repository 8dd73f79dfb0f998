//! `cardplane bench api`: the tenant API's throughput with the request log on and off. Each run
//! starts its own `cardplane serve` child on the configured database (`CARDPLANE_REQUEST_LOG_ENABLED`
//! set for it), provisions a program and cards over HTTP, then drives a fixed mix of reads and
//! writes with K connections (closed loop) and reports requests per second and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cardplane_api::state::AppState;
use cardplane_domain::api_key::Permission;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::load::{Latency, Server, machine, percentiles, start_server_with};

/// Which runs `bench api` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestLogMode {
    On,
    Off,
    /// Off and on (in alternating order over the rounds), and the ratio.
    Both,
}

const CARDS: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct ApiRun {
    pub request_log: bool,
    pub backend: String,
    pub connections: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    pub latency: Latency,
}

/// The tenant's key and the objects the mix reads and writes.
struct Fixture {
    base: String,
    key: (String, String),
    cards: Vec<String>,
    holders: Vec<String>,
}

async fn call(
    http: &reqwest::Client,
    f: &Fixture,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Result<(u16, Value)> {
    let mut req = http
        .request(method, format!("{}{path}", f.base))
        .basic_auth(&f.key.0, Some(&f.key.1));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

fn cardholder(rng: &mut StdRng) -> Value {
    let ssn = format!(
        "{}{}{}",
        rng.random_range(100..666),
        rng.random_range(10..100),
        rng.random_range(1000..10_000)
    );
    json!({"first_name": "Bench", "last_name": "Holder", "email": "bench@example.com", "phone_number": "+16508881111",
           "date_of_birth": "1982-06-20", "document": {"type": "ssn", "value": ssn},
           "address": {"street_one": "1800 Gates Ave", "locality": "Ridgewood", "region": "NY", "postal_code": "11385", "country": "USA"}})
}

/// A funded program (fresh BIN), cardholders and loaded cards, made through the API.
async fn fixture(state: &AppState, base: &str) -> anyhow::Result<Fixture> {
    let tenant = cardplane_api::workflows::admin::create_tenant(
        state.tenants.as_ref(),
        &state.pepper,
        "API bench",
        &[Permission::Reveal],
        Some(1_000_000),
    )
    .await?;
    let mut f = Fixture {
        base: base.to_owned(),
        key: (tenant.sandbox_key.id, tenant.sandbox_key.secret),
        cards: Vec::new(),
        holders: Vec::new(),
    };
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(7);
    let bin = format!("4{:05}", rand::rng().random_range(0..100_000));
    let program = json!({"program_id": "API", "name": "API bench", "network": "VISA", "bin": bin, "currency": "USD", "design_keys": ["blue"]});
    let (status, body) = call(&http, &f, Method::POST, "/programs", Some(program)).await?;
    if status != 200 {
        bail!("bench program not created ({status}): {body}");
    }
    call(
        &http,
        &f,
        Method::POST,
        "/sandbox/programs/API/fund",
        Some(json!({"amount": 1_000_000_000, "currency": "USD"})),
    )
    .await?;
    for _ in 0..CARDS {
        let (_, holder) = call(&http, &f, Method::POST, "/cardholders", Some(cardholder(&mut rng))).await?;
        let holder_id = holder["cardholder"]["id"]
            .as_str()
            .context("cardholder created")?
            .to_owned();
        let load = json!({"program_id": "API", "initial_load": {"currency": "USD", "amount": 10_000_000}});
        let (_, card) = call(
            &http,
            &f,
            Method::POST,
            &format!("/cardholders/{holder_id}/cards"),
            Some(load),
        )
        .await?;
        f.cards
            .push(card["card"]["id"].as_str().context("card issued")?.to_owned());
        f.holders.push(holder_id);
    }
    Ok(f)
}

/// One request of the fixed mix: 40% card reads, 20% card lists, 15% cardholder reads, 15%
/// simulated authorizations, 10% cardholder creations.
async fn one_request(http: &reqwest::Client, f: &Fixture, rng: &mut StdRng) -> bool {
    let roll = rng.random_range(0..100);
    let card = &f.cards[rng.random_range(0..f.cards.len())];
    let holder = &f.holders[rng.random_range(0..f.holders.len())];
    let sent = match roll {
        0..40 => call(http, f, Method::GET, &format!("/cards/{card}"), None).await,
        40..60 => call(http, f, Method::GET, "/cards?limit=10", None).await,
        60..75 => call(http, f, Method::GET, &format!("/cardholders/{holder}"), None).await,
        75..90 => {
            let merchant = json!({"id": "m1", "name": "Shop", "mcc": "5411", "country": "USA", "city": "Austin"});
            let body =
                json!({"card_id": card, "amount": rng.random_range(1..100), "currency": "USD", "merchant": merchant});
            call(http, f, Method::POST, "/simulate/authorizations", Some(body)).await
        }
        _ => call(http, f, Method::POST, "/cardholders", Some(cardholder(rng))).await,
    };
    matches!(sent, Ok((200..300, _)))
}

/// Closed loop: each connection sends its next request when the previous one is answered.
async fn drive(f: Arc<Fixture>, connections: usize, duration: Duration) -> (u64, u64, Histogram<u64>, Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .expect("client");
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for task in 0..connections {
        let (http, f, done, errors) = (http.clone(), f.clone(), done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(1_000 + task as u64);
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = one_request(&http, &f, &mut rng).await;
                let _ = h.record(
                    u64::try_from(sent.elapsed().as_micros())
                        .unwrap_or(u64::MAX)
                        .clamp(1, 60_000_000),
                );
                if ok { &done } else { &errors }.fetch_add(1, Ordering::Relaxed);
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
    (
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        merged,
        started.elapsed(),
    )
}

async fn run_one(
    state: &AppState,
    on: bool,
    connections: usize,
    duration: Duration,
    warmup: Duration,
) -> anyhow::Result<ApiRun> {
    let flag = if on { "true" } else { "false" };
    let server: Server = start_server_with(
        state,
        &[
            ("CARDPLANE_REQUEST_LOG_ENABLED", flag),
            ("CARDPLANE_RATE_LIMIT_PER_SECOND", "1000000"),
        ],
    )
    .await?;
    let f = Arc::new(fixture(state, &server.base).await?);
    eprintln!(
        "request log {}: {connections} connections, {warmup:?} warm-up, {duration:?} measured",
        if on { "on" } else { "off" }
    );
    drive(f.clone(), connections, warmup).await;
    let (requests, errors, histogram, elapsed) = drive(f, connections, duration).await;
    drop(server);
    #[allow(clippy::cast_precision_loss, reason = "a rate for display")]
    let requests_per_s = requests as f64 / elapsed.as_secs_f64();
    Ok(ApiRun {
        request_log: on,
        backend: state.backend().name().to_owned(),
        connections,
        duration_s: elapsed.as_secs_f64(),
        requests,
        errors,
        requests_per_s,
        latency: percentiles(&histogram),
    })
}

/// The settings of each round, in order: pairs alternate (off, on, on, off...).
fn schedule(mode: RequestLogMode, rounds: usize) -> Vec<bool> {
    match mode {
        RequestLogMode::On => vec![true; rounds],
        RequestLogMode::Off => vec![false; rounds],
        RequestLogMode::Both => (0..rounds).flat_map(|r| [r % 2 == 1, r % 2 == 0]).collect(),
    }
}

/// The median requests per second of the runs with the log `on`.
fn median_rate(runs: &[ApiRun], on: bool) -> Option<f64> {
    let mut rates: Vec<f64> = runs
        .iter()
        .filter(|r| r.request_log == on)
        .map(|r| r.requests_per_s)
        .collect();
    rates.sort_by(f64::total_cmp);
    match rates.len() {
        0 => None,
        n if n % 2 == 1 => Some(rates[n / 2]),
        n => Some((rates[n / 2 - 1] + rates[n / 2]) / 2.0),
    }
}

/// Runs the mix with the request log off and/or on and prints the figures (and the ratio).
pub async fn run(
    state: AppState,
    mode: RequestLogMode,
    rounds: usize,
    connections: usize,
    duration: Duration,
    warmup: Duration,
) -> anyhow::Result<Vec<ApiRun>> {
    let mut runs = Vec::new();
    for on in schedule(mode, rounds) {
        runs.push(run_one(&state, on, connections, duration, warmup).await?);
    }
    println!("machine: {}", machine());
    for r in &runs {
        println!(
            "api mix on {} | request log {} | {} connections | {:.0} requests/s ({} ok, {} errors over {:.1} s) | p50 {:.2} ms p99 {:.2} ms",
            r.backend,
            if r.request_log { "on " } else { "off" },
            r.connections,
            r.requests_per_s,
            r.requests,
            r.errors,
            r.duration_s,
            r.latency.p50_ms,
            r.latency.p99_ms
        );
    }
    if let (Some(off), Some(on)) = (median_rate(&runs, false), median_rate(&runs, true)) {
        println!(
            "request log on / off (medians over {rounds} round(s)): {off:.0} -> {on:.0} requests/s = {:.3} (cost {:.1}%)",
            on / off,
            (1.0 - on / off) * 100.0
        );
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_the_order_of_each_pair() {
        assert_eq!(
            schedule(RequestLogMode::Both, 3),
            vec![false, true, true, false, false, true]
        );
        assert_eq!(schedule(RequestLogMode::On, 2), vec![true, true]);
    }
}
