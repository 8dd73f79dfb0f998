//! Console page times over a large transaction table: ignored by default (it writes a million
//! rows); run with `cargo test -p cardplane-api --test it -- --ignored console_scale::million --nocapture`
//! and `CARDPLANE_CONSOLE_SCALE_ROWS` to choose the size. It prints figures for BENCHMARKS.md and
//! checks only that each page answers 200 (no timing thresholds).

use std::time::{Duration, Instant};

use cardplane_domain::Timestamp;
use cardplane_domain::people::OperatorRole;
use reqwest::StatusCode;

use crate::console::console_operator;
use crate::net::NetMessage;
use crate::support::TestApp;

const CARDS: usize = 10;
const SAMPLES: usize = 15;

/// Synthetic transactions spread over the cards that exist, 0.6 s apart ending now (a million
/// rows span a week), one in ten declined; ids sort with their creation time and come before the
/// real ones. One statement: a number series joined to the cards.
fn fill_sql(backend: cardplane_testkit::Backend, rows: usize, now: i64) -> String {
    let (series, id) = match backend {
        cardplane_testkit::Backend::Sqlite => (
            format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}), "),
            "'txn_' || printf('%032x', n.i)".to_owned(),
        ),
        cardplane_testkit::Backend::Postgres => (
            format!("WITH n(i) AS (SELECT generate_series(CAST(1 AS BIGINT), {rows})), "),
            "'txn_' || lpad(to_hex(n.i), 32, '0')".to_owned(),
        ),
    };
    format!(
        "{series}c AS (SELECT id, cardholder_id, account_id, tenant_id, environment, program_id, \
         ROW_NUMBER() OVER (ORDER BY id) - 1 AS k FROM cards) \
         INSERT INTO transactions (id, tenant_id, environment, card_id, cardholder_id, program_id, account_id, kind, state, \
         network_transaction_id, currency, requested_amount, authorized_amount, held_amount, cleared_amount, reversed_amount, \
         response_code, decline_reason, authorization_code, merchant_id, merchant_name, mcc, merchant_country, merchant_city, \
         entry_mode, stand_in, decision_trace, received_at, custodian_sent_at, custodian_answered_at, answered_at, expires_at, \
         created_at, updated_at) \
         SELECT {id}, c.tenant_id, c.environment, c.id, c.cardholder_id, c.program_id, c.account_id, 'authorization', \
         CASE WHEN n.i % 10 = 0 THEN 'DECLINED' ELSE 'COMPLETE' END, 'nt_scale_' || n.i, 'USD', 100 + n.i % 10000, \
         CASE WHEN n.i % 10 = 0 THEN 0 ELSE 100 + n.i % 10000 END, 0, \
         CASE WHEN n.i % 10 = 0 THEN 0 ELSE 100 + n.i % 10000 END, 0, \
         CASE WHEN n.i % 10 = 0 THEN '51' ELSE '00' END, CASE WHEN n.i % 10 = 0 THEN 'insufficient_funds' ELSE NULL END, \
         NULL, 'm', 'Scale Merchant', CASE n.i % 4 WHEN 0 THEN '5411' WHEN 1 THEN '5812' WHEN 2 THEN '5999' ELSE '4111' END, \
         'USA', 'X', 'chip', 0, '[]', {now} - ({rows} - n.i) * 600000, NULL, NULL, \
         {now} - ({rows} - n.i) * 600000 + 1000 + (n.i % 50) * 100, NULL, \
         {now} - ({rows} - n.i) * 600000, {now} - ({rows} - n.i) * 600000 \
         FROM n JOIN c ON c.k = n.i % {CARDS}"
    )
}

async fn time_page(b: &mut crate::console::Browser, path: &str) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let page = b.get(path).await;
        times.push(started.elapsed());
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
    }
    times.sort();
    (times[SAMPLES / 2], times[SAMPLES - 1])
}

async fn console_pages_over_many_transactions(app: TestApp) {
    let rows: usize = std::env::var("CARDPLANE_CONSOLE_SCALE_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let net = app.network(10_000_000).await;
    let mut cards = Vec::new();
    for _ in 0..CARDS {
        cards.push(app.net_card(&net, 100_000).await);
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(fill_sql(
        app.db.backend,
        rows,
        Timestamp::now().as_micros(),
    )))
    .execute(&pool)
    .await
    .unwrap();
    let filled = started.elapsed();
    if app.db.backend == cardplane_testkit::Backend::Postgres {
        sqlx::query("ANALYZE transactions").execute(&pool).await.unwrap();
    }
    // Then one real authorization (its id sorts after the synthetic ones, as time-ordered ids
    // do), so a page has a real decision trace.
    let msg = NetMessage::authorization(&cards[0], 1_000);
    let (_, real) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
    let real_id = real["authorization_id"].as_str().unwrap().to_owned();
    // The background job may take part of the backlog meanwhile: both walk the same watermark.
    let started = Instant::now();
    loop {
        let run = app.state.health.roll_up(Timestamp::now(), 5_000).await.unwrap();
        if run.total() == 0 {
            break;
        }
    }
    let rollup = started.elapsed();
    let rolled: i64 = app
        .state
        .health
        .health_totals(&cardplane_store::health::HealthFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|t| t.metric == "authorizations")
        .map(|t| t.n)
        .sum();
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let last4 = &cards[3].pan[cards[3].pan.len() - 4..];
    let pages = [
        "/console?window=1h".to_owned(),
        "/console?window=24h".to_owned(),
        "/console?window=7d".to_owned(),
        "/console/transactions".to_owned(),
        format!("/console/transactions?card={last4}"),
        "/console/transactions?state=DECLINED".to_owned(),
        "/console/transactions?mcc=5812&amount_min=5000&amount_max=6000".to_owned(),
        format!("/console/transactions/{real_id}"),
        format!("/console/cards/{}", cards[3].id),
        "/console/cards".to_owned(),
    ];
    println!(
        "console scale ({:?}): {rows} transactions inserted in {:.1} s; rolled up {rolled} in {:.1} s ({:.0} rows/s)",
        app.db.backend,
        filled.as_secs_f64(),
        rollup.as_secs_f64(),
        rolled as f64 / rollup.as_secs_f64().max(0.001)
    );
    for path in &pages {
        let (p50, max) = time_page(&mut b, path).await;
        println!(
            "  {path:<62} p50 {:>7.1} ms   max of {SAMPLES} {:>7.1} ms",
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}

mod million {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "writes a million transactions; run by hand for BENCHMARKS.md"]
    async fn sqlite() {
        if let Some(app) = crate::support::TestApp::spawn(cardplane_testkit::Backend::Sqlite).await {
            super::console_pages_over_many_transactions(app).await;
        }
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "writes a million transactions; run by hand for BENCHMARKS.md"]
    async fn postgres() {
        if let Some(app) = crate::support::TestApp::spawn(cardplane_testkit::Backend::Postgres).await {
            super::console_pages_over_many_transactions(app).await;
        }
    }
}
