//! `cardplane bench`: provisions its own tenant, program and funded cards (bulk, straight into the
//! store), starts a `cardplane serve` child process on the same database, drives authorizations
//! over HTTP with K connections (closed loop) or at a fixed rate (open loop), and reports rates,
//! latency percentiles (HDR histogram), the server's RSS, baselines measured in the same run (the
//! HTTP ceiling of the same stack, the naive database bound), then verifies the ledger.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cardplane_api::state::AppState;
use cardplane_domain::Environment;
use serde::Serialize;

pub mod api;
pub mod backtest;
mod load;
mod provisioning;

use load::*;
pub use load::{Latency, Workload};
use provisioning::*;

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
    /// Active authorization rules on the benchmark program.
    pub rules: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub workload: Workload,
    /// Active authorization rules on the program.
    pub rules: usize,
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
    if o.rules > 0 {
        state
            .sql_store()
            .install_bench_rules(&books.scope, &books.program.id, &provisioning::bench_rules(o.rules))
            .await?;
    }
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
        Workload::Backtest => anyhow::bail!("the backtest benchmark runs through bench::backtest::run"),
        Workload::Api => anyhow::bail!("the API benchmark runs through bench::api::run"),
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
            rules: o.rules,
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
            "{:?} on {} | {} rules, {} cards, {} connections{} | {:.0} approved/s, {:.0} declined/s, {} follow-ups, {} errors over {:.1} s (after a {:.0} s warm-up)",
            r.workload,
            r.backend,
            r.rules,
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
