//! `cardplane bench`: provisions its own tenant, program and funded cards (bulk, straight into the
//! store), starts a `cardplane serve` child process on the same database, drives authorizations
//! over HTTP with K connections (closed loop) or at a fixed rate (open loop), and reports rates,
//! latency percentiles (HDR histogram), the server's RSS, baselines measured in the same run (the
//! HTTP ceiling of the same stack, the naive database bound), then verifies the ledger.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cardplane_api::state::AppState;
use cardplane_domain::card::{Card, CardState};
use cardplane_domain::cardholder::{Address, Cardholder, DateOfBirth, DocumentType, Email, Identity, PhoneNumber};
use cardplane_domain::ids::{CardId, CardholderId, ProgramId};
use cardplane_domain::kyc::{KycResult, KycState};
use cardplane_domain::ledger::{Account, AccountKind, Journal, JournalKind};
use cardplane_domain::money::{Currency, Money};
use cardplane_domain::pan::Pan;
use cardplane_domain::program::{FormFactor, FundingModel, Network, Program, ProgramStatus};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::Scope;
use cardplane_store::cardholders::CardholderWrite;
use cardplane_store::cards::{CardIssue, Posted};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

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
}

pub struct Options {
    pub workload: Workload,
    pub cards: usize,
    pub connections: usize,
    pub duration: Duration,
    /// Load before the measured run, left out of the figures.
    pub warmup: Duration,
    pub rate: Option<u64>,
    pub growth: Vec<usize>,
    pub baselines: bool,
}

const SEED: u64 = 42;
/// Each card is funded with 2,000 units; authorizations hold 1-100 units (USD, so x100 cents).
const CARD_FUNDS_MINOR: i64 = 2_000 * 100;
const AMOUNT_MIN_MINOR: i64 = 100;
const AMOUNT_MAX_MINOR: i64 = 100 * 100;
const PROVISION_BATCH: usize = 2_000;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub workload: Workload,
    pub backend: String,
    pub cards: usize,
    pub connections: usize,
    pub rate_target: Option<u64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub authorizations: u64,
    pub approved_per_s: f64,
    pub declined_per_s: f64,
    pub follow_up_messages: u64,
    pub errors: u64,
    pub latency: Latency,
    pub server_rss_max_mib: f64,
    /// Messages per database transaction of the authorization engine, mean and 99th percentile
    /// (the upper edge of the histogram bucket it falls in).
    pub batch_size_mean: f64,
    pub batch_size_p99: f64,
    /// Database statements the engine ran per message (BEGIN and COMMIT included), as the store
    /// counted them.
    pub statements_per_message: f64,
    pub ledger_clean: bool,
    pub money_conserved: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    pub runs: Vec<RunResult>,
    pub http_ceiling_per_s: Option<f64>,
    pub naive_db_bound_per_s: Option<f64>,
}

struct BenchCard {
    pan: String,
    expiration: String,
}

fn usd() -> Currency {
    Currency::parse("USD").expect("USD is supported")
}

/// A tenant with a funded program and a cardholder to hang cards on.
struct Books {
    scope: Scope,
    program: Program,
    funding: Account,
    holder: CardholderId,
    /// Cards issued so far: bulk PANs are numbered, so they never collide in the fresh BIN.
    issued: AtomicU64,
}

async fn books(state: &AppState) -> anyhow::Result<Books> {
    let tenant =
        cardplane_api::workflows::admin::create_tenant(state.tenants.as_ref(), &state.pepper, "Benchmark", &[], None)
            .await?;
    let scope = Scope {
        tenant_id: cardplane_domain::ids::TenantId::parse(&tenant.tenant_id)?,
        environment: Environment::Sandbox,
    };
    let now = Timestamp::now();
    // A fresh 6-digit BIN each run (so runs can share a database), retried if it overlaps.
    for _ in 0..20 {
        let bin = format!("4{:05}", rand::rng().random_range(0..100_000));
        match try_program(state, &scope, bin, now).await? {
            Some((program, funding)) => return finish_books(state, scope, program, funding, now).await,
            None => continue,
        }
    }
    bail!("no free BIN for the benchmark program")
}

async fn try_program(
    state: &AppState,
    scope: &Scope,
    bin: String,
    now: Timestamp,
) -> anyhow::Result<Option<(Program, Account)>> {
    let program = Program {
        id: ProgramId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: Environment::Sandbox,
        program_id: "BENCH".into(),
        name: "Benchmark".into(),
        network: Network::Visa,
        bin,
        currency: usd(),
        card_lifetime_years: 3,
        form_factors: vec![FormFactor::Virtual],
        design_keys: vec!["plain".into()],
        funding_model: FundingModel::StoredBalance,
        spend_controls: Vec::new(),
        minimum_cardholder_age: 18,
        kyc_required: true,
        merchant_rules: Default::default(),
        custodian: None,
        status: ProgramStatus::Active,
        created_at: now,
        updated_at: now,
    };
    let kinds = [
        AccountKind::ProgramFunding,
        AccountKind::ProgramSettlement,
        AccountKind::ProgramFees,
        AccountKind::ProgramExternal,
        AccountKind::ProgramLosses,
    ];
    let accounts: Vec<Account> = kinds
        .iter()
        .map(|k| Account::open(&scope.tenant_id, scope.environment, &program.id, *k, usd(), now))
        .collect();
    match state
        .programs
        .insert_program(scope, &program, &accounts, &[], None, now)
        .await
    {
        Ok(()) => Ok(Some((program, accounts[0].clone()))),
        Err(cardplane_store::programs::ProgramWriteError::BinOverlap) => Ok(None),
        Err(e) => bail!("creating the benchmark program: {e}"),
    }
}

async fn finish_books(
    state: &AppState,
    scope: Scope,
    program: Program,
    funding: Account,
    now: Timestamp,
) -> anyhow::Result<Books> {
    let holder = Cardholder {
        id: CardholderId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: Environment::Sandbox,
        custodian_uid: None,
        email: Email::parse(Some("bench@example.com"))?,
        phone: PhoneNumber::parse(Some("+16505550100"))?,
        identity: Identity {
            first_name: "Bench".into(),
            last_name: "Mark".into(),
            date_of_birth: DateOfBirth::from_date(time::macros::date!(1990 - 01 - 01)),
            address: Address {
                street_one: "1 Main St".into(),
                street_two: None,
                locality: "Austin".into(),
                region: "TX".into(),
                postal_code: "73301".into(),
                country: "USA".into(),
            },
        },
        document_type: DocumentType::Ssn,
        document_last4: "0000".into(),
        document_sealed: state.vault.seal(b"123450000", "benchmark"),
        kyc: KycState::not_checked().record(KycResult::passed(), now),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let write = CardholderWrite {
        cardholder: &holder,
        kyc_check: None,
        card_orders: &[],
        card_issues: &[],
        events: &[],
        response: None,
        review: None,
    };
    state
        .cardholders
        .insert_cardholder(&scope, write, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Books {
        scope,
        program,
        funding,
        holder: holder.id,
        issued: AtomicU64::new(0),
    })
}

/// Funds the program and bulk-issues `count` more funded cards, returning their PANs.
// Long: provisioning in order (fund the program, issue in bulk, seal PANs), one step each.
async fn provision(state: &AppState, books: &Books, count: usize) -> anyhow::Result<Vec<BenchCard>> {
    let store = state.sql_store();
    let external = state
        .programs
        .program_account(&books.scope, &books.program.id, AccountKind::ProgramExternal)
        .await?;
    let total = CARD_FUNDS_MINOR * i64::try_from(count)?;
    let now = Timestamp::now();
    let journal = Journal::transfer(
        &books.scope.tenant_id,
        Environment::Sandbox,
        JournalKind::ProgramFunding,
        "Benchmark funding".into(),
        &external.id,
        &books.funding.id,
        Money::new(total, usd()),
        now,
    )?;
    state
        .cards
        .post_adjustment(&books.scope, &journal, None, &|_| Posted::default(), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = ProgressBar::new(u64::try_from(count)?);
    bar.set_style(
        ProgressStyle::with_template("provisioning {bar:40} {pos}/{len} cards ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut cards = Vec::with_capacity(count);
    let (exp_month, exp_year) = books.program.expiry_for(now);
    while cards.len() < count {
        let n = PROVISION_BATCH.min(count - cards.len());
        let mut batch = Vec::with_capacity(n);
        let mut pans = Vec::with_capacity(n);
        for _ in 0..n {
            let pan = numbered_pan(&books.program.bin, books.issued.fetch_add(1, Ordering::Relaxed));
            let account = Account::open(
                &books.scope.tenant_id,
                Environment::Sandbox,
                &books.program.id,
                AccountKind::CardBalance,
                usd(),
                now,
            );
            let id = CardId::generate();
            let card = Card {
                id: id.clone(),
                tenant_id: books.scope.tenant_id.clone(),
                environment: Environment::Sandbox,
                cardholder_id: books.holder.clone(),
                program: books.program.id.clone(),
                program_ref: books.program.program_id.clone(),
                network: Network::Visa,
                currency: usd(),
                account_id: account.id.clone(),
                form_factor: FormFactor::Virtual,
                design_key: "plain".into(),
                state: CardState::Active,
                shipping_status: None,
                bin: books.program.bin.clone(),
                last4: pan.last4().into(),
                exp_month,
                exp_year,
                pan_sealed: state.vault.seal(pan.expose().as_bytes(), &Card::vault_context(&id)),
                pan_hash: pan.lookup_hash(&state.card_keys.pan_lookup),
                replaces: None,
                replacement_reason: None,
                replaced_by: None,
                created_at: now,
                updated_at: now,
                version: 1,
            };
            pans.push(BenchCard {
                pan: pan.expose().to_owned(),
                expiration: card.expiration(),
            });
            batch.push(CardIssue {
                card,
                new_account: Some(account),
                initial_load: None,
            });
        }
        match store
            .provision_funded_cards(&books.scope, &books.funding, &batch, CARD_FUNDS_MINOR)
            .await
        {
            Ok(()) => {
                cards.extend(pans);
                bar.inc(u64::try_from(n)?);
            }
            // A PAN collided with an existing one: draw the batch again.
            Err(cardplane_store::ledger::PostError::Store(e)) if e.is_conflict_on("cards_pan_hash", "pan_hash") => {
                continue;
            }
            Err(e) => bail!("provisioning cards: {e}"),
        }
    }
    bar.finish_and_clear();
    Ok(cards)
}

/// BIN + the card's number + Luhn digit: unique by construction within the benchmark's BIN.
fn numbered_pan(bin: &str, n: u64) -> Pan {
    let payload = format!(
        "{bin}{n:0width$}",
        width = cardplane_domain::pan::PAN_LEN - 1 - bin.len()
    );
    let check = cardplane_domain::pan::luhn_check_digit(&payload);
    Pan::parse(&format!("{payload}{check}")).expect("a numbered PAN is valid")
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn start_server(state: &AppState) -> anyhow::Result<Server> {
    let port = free_port()?;
    let config = &state.config;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("serve")
        .env("CARDPLANE_DATABASE_URL", &config.database_url)
        .env("CARDPLANE_LISTEN", format!("127.0.0.1:{port}"))
        .env("CARDPLANE_KEY_FILE", std::path::absolute(&config.key_file)?)
        .env("RUST_LOG", "warn")
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

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

struct Counters {
    approved: AtomicU64,
    declined: AtomicU64,
    follow_ups: AtomicU64,
    errors: AtomicU64,
    approved_minor: AtomicU64,
}

fn percentiles(h: &Histogram<u64>) -> Latency {
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

fn merchant() -> serde_json::Value {
    json!({"id": "bench_m", "name": "Bench Store", "mcc": "5411", "country": "USA", "city": "Austin"})
}

/// Drives the workload; returns counters, the merged latency histogram and the elapsed time.
#[allow(clippy::too_many_arguments, reason = "one run's settings")]
// Long: the open-loop load generator (pacing, the message mix, follow-ups, counting) is one
// loop per connection; its parts share the loop's state.
async fn drive(
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
struct EngineFigures {
    batches: f64,
    messages: f64,
    statements: f64,
    /// (upper bound, cumulative count) of the batch-size histogram.
    buckets: Vec<(f64, f64)>,
}

impl EngineFigures {
    async fn scrape(base: &str) -> EngineFigures {
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

    fn since(&self, before: &EngineFigures) -> EngineFigures {
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

    fn batch_size_mean(&self) -> f64 {
        if self.batches > 0.0 {
            self.messages / self.batches
        } else {
            0.0
        }
    }

    fn batch_size_quantile(&self, q: f64) -> f64 {
        let total = self.buckets.iter().map(|(_, n)| *n).fold(0.0, f64::max);
        let target = total * q;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= target && total > 0.0)
            .map_or(0.0, |(le, _)| *le)
    }

    fn statements_per_message(&self) -> f64 {
        if self.messages > 0.0 {
            self.statements / self.messages
        } else {
            0.0
        }
    }
}

fn uuid_like() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// The HTTP ceiling: the same stack (axum + hyper, reqwest client) answering a trivial JSON echo.
async fn http_ceiling(connections: usize, duration: Duration) -> anyhow::Result<f64> {
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

fn machine() -> String {
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

// Long: the bench's script in order (credential, books, cards per size, drive, settle, check,
// report), each step a few lines.
pub async fn run(state: AppState, o: Options) -> anyhow::Result<Report> {
    let backend = state.backend().name().to_owned();
    let credential = cardplane_api::workflows::admin::create_network_credential(
        state.network.as_ref(),
        &state.pepper,
        Environment::Sandbox,
        "bench",
    )
    .await?;
    let books = books(&state).await?;
    let (sizes, connections) = match o.workload {
        Workload::Hot => (vec![10], o.connections.max(64)),
        Workload::Growth => (
            if o.growth.is_empty() {
                vec![10_000, 1_000_000]
            } else {
                o.growth.clone()
            },
            o.connections,
        ),
        Workload::Authorize | Workload::Lifecycle => (vec![o.cards], o.connections),
    };
    let mut all_cards = Vec::new();
    let mut runs = Vec::new();
    let mut total_approved_minor = 0i64;
    for size in sizes {
        let more = size.saturating_sub(all_cards.len());
        eprintln!("provisioning {more} cards ({size} in all)");
        all_cards.extend(provision(&state, &books, more).await?);
        state.sql_store().settle_after_provisioning().await?;
        let server = start_server(&state).await?;
        let pid = server.child.id();
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "KiB fit in u64")]
                    peak.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        let cards = Arc::new(std::mem::take(&mut all_cards));
        eprintln!(
            "driving {:?} with {connections} connections for {:?} after a {:?} warm-up",
            o.workload, o.duration, o.warmup
        );
        if !o.warmup.is_zero() {
            let (warm, _, _) = drive(
                &server.base,
                (&credential.id, &credential.secret),
                cards.clone(),
                o.workload,
                connections,
                o.warmup,
                o.rate,
            )
            .await;
            total_approved_minor += i64::try_from(warm.approved_minor.load(Ordering::Relaxed))?;
        }
        let before = EngineFigures::scrape(&server.base).await;
        let (counters, histogram, elapsed) = drive(
            &server.base,
            (&credential.id, &credential.secret),
            cards.clone(),
            o.workload,
            connections,
            o.duration,
            o.rate,
        )
        .await;
        let engine = EngineFigures::scrape(&server.base).await.since(&before);
        sampler.abort();
        drop(server);
        all_cards = Arc::try_unwrap(cards).unwrap_or_default();
        let report = state.ledger.verify_ledger().await?;
        let (held, _) = state.sql_store().tenant_holds(&books.scope).await?;
        // Holds stay open across growth steps, so compare against every step's approvals.
        total_approved_minor += i64::try_from(counters.approved_minor.load(Ordering::Relaxed))?;
        let secs = elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss, reason = "rates for display")]
        let per_s = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / secs;
        #[allow(clippy::cast_precision_loss, reason = "KiB to MiB for display")]
        let rss = peak.load(Ordering::Relaxed) as f64 / 1024.0;
        runs.push(RunResult {
            workload: o.workload,
            backend: backend.clone(),
            cards: all_cards.len(),
            connections,
            rate_target: o.rate,
            duration_s: secs,
            warmup_s: o.warmup.as_secs_f64(),
            authorizations: counters.approved.load(Ordering::Relaxed) + counters.declined.load(Ordering::Relaxed),
            approved_per_s: per_s(&counters.approved),
            declined_per_s: per_s(&counters.declined),
            follow_up_messages: counters.follow_ups.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            latency: percentiles(&histogram),
            server_rss_max_mib: rss,
            batch_size_mean: engine.batch_size_mean(),
            batch_size_p99: engine.batch_size_quantile(0.99),
            statements_per_message: engine.statements_per_message(),
            ledger_clean: report.problems.is_empty(),
            // Only the authorize-style workloads leave every approval as an open hold.
            money_conserved: report.problems.is_empty()
                && (o.workload == Workload::Lifecycle || held == total_approved_minor),
        });
        if !report.problems.is_empty() {
            for p in report.problems.iter().take(10) {
                eprintln!("LEDGER PROBLEM: {p}");
            }
        }
    }
    let http_ceiling_per_s = if o.baselines {
        Some(http_ceiling(o.connections, Duration::from_secs(5)).await?)
    } else {
        None
    };
    let naive_db_bound_per_s = if o.baselines {
        Some(
            state
                .sql_store()
                .naive_transfer_bound(32, Duration::from_secs(5))
                .await?,
        )
    } else {
        None
    };
    let date = time::OffsetDateTime::now_utc().date().to_string();
    Ok(Report {
        machine: machine(),
        date,
        runs,
        http_ceiling_per_s,
        naive_db_bound_per_s,
    })
}

pub fn print(report: &Report) {
    println!("machine: {}  date: {}", report.machine, report.date);
    for r in &report.runs {
        println!(
            "{:?} on {} | {} cards, {} connections{} | {:.0} approved/s, {:.0} declined/s, {} follow-ups, {} errors over {:.1} s (after a {:.0} s warm-up)",
            r.workload,
            r.backend,
            r.cards,
            r.connections,
            r.rate_target.map(|x| format!(", open loop {x}/s")).unwrap_or_default(),
            r.approved_per_s,
            r.declined_per_s,
            r.follow_up_messages,
            r.errors,
            r.duration_s,
            r.warmup_s
        );
        println!(
            "  engine: batch size mean {:.1}, p99 {:.0}; {:.2} database statements per message",
            r.batch_size_mean, r.batch_size_p99, r.statements_per_message
        );
        println!(
            "  latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms | server RSS max {:.0} MiB | ledger {} | money conserved: {}",
            r.latency.p50_ms,
            r.latency.p90_ms,
            r.latency.p99_ms,
            r.latency.p999_ms,
            r.latency.max_ms,
            r.server_rss_max_mib,
            if r.ledger_clean { "clean" } else { "PROBLEMS" },
            r.money_conserved
        );
    }
    if let (Some(h), Some(n)) = (report.http_ceiling_per_s, report.naive_db_bound_per_s) {
        println!("baselines: HTTP ceiling {h:.0} req/s, naive database bound {n:.0} transfers/s (32 connections)");
        if let Some(r) = report.runs.first() {
            println!(
                "ratios: {:.2}x the naive database bound, {:.2}x the HTTP ceiling",
                r.approved_per_s / n,
                r.approved_per_s / h
            );
        }
    }
}
