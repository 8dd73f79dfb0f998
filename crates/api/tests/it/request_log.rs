//! The developer portal's request log: every tenant API request of an authenticated key is
//! stored off the request path with its status, latency, request id and idempotency key, masked
//! (no full PAN, CVV or SSN in any column, whatever a caller puts where), counted in the usage
//! rollup, scoped to its tenant, flushed on shutdown and purged after the retention period.

use std::collections::HashSet;
use std::time::Duration;

use cardplane_api::workflows::request_log::purge_expired;
use cardplane_domain::api_key::Permission;
use cardplane_domain::ids::{ApiKeyId, RequestLogId, TenantId};
use cardplane_domain::request_log::{Exchange, RequestLogEntry};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::request_log::{RequestLogFilter, RequestLogStore};
use cardplane_store::{Db, DbOptions, Scope, SqlStore, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Creds, TestApp, TestTenant, seed_cardholder, send};

fn scope(t: &TestTenant) -> Scope {
    Scope {
        tenant_id: TenantId::parse(&t.id).unwrap(),
        environment: Environment::Sandbox,
    }
}

/// Requests counted in the usage rollup for `scope` today.
async fn counted(store: &dyn RequestLogStore, scope: &Scope) -> i64 {
    let days = store.requests_per_day(scope, Timestamp::now(), 1).await.unwrap();
    days.iter().map(|d| d.counts.requests).sum()
}

/// Waits (bounded by a count of polls, not a time budget) until the writer has stored `n`
/// requests for `scope`.
async fn flushed(store: &dyn RequestLogStore, scope: &Scope, n: i64) {
    for _ in 0..600 {
        if counted(store, scope).await >= n {
            assert_eq!(counted(store, scope).await, n, "no more requests than were made");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the request log never reached {n} requests (has {})",
        counted(store, scope).await
    );
}

async fn a_request_is_logged_with_its_status_latency_request_id_and_idempotency_key(app: TestApp) {
    let t = app.tenant().await;
    let response = app
        .request(Method::POST, "/cardholders", &t.sandbox)
        .header("Idempotency-Key", "idem-create-1")
        .json(&seed_cardholder("490940000", Some("uid-1")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request_id = response.headers()["request-id"].to_str().unwrap().to_owned();
    let (status, _) = send(
        app.request(
            Method::GET,
            "/cards/card_00000000000000000000000000000000?limit=5",
            &t.sandbox,
        )
        .header("request-id", "caller-chosen-id"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let store = app.state.request_log.as_ref();
    flushed(store, &scope(&t), 2).await;
    let page = store
        .list(&scope(&t), &RequestLogFilter::default(), None, 10)
        .await
        .unwrap();
    let [missing, created] = page.entries.as_slice() else {
        panic!("two entries: {page:?}");
    };
    assert_eq!((missing.method.as_str(), missing.status), ("GET", 404));
    assert_eq!(missing.route, "/cards/{card_id}");
    assert_eq!(missing.query.as_deref(), Some("limit=5"));
    assert_eq!(missing.request_id.as_deref(), Some("caller-chosen-id"));
    assert_eq!((created.method.as_str(), created.status), ("POST", 200));
    assert_eq!(created.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(created.idempotency_key.as_deref(), Some("idem-create-1"));
    assert_eq!(created.api_key_id, t.sandbox.id);
    assert!(created.latency_us > 0);
    let detail = store.get(&scope(&t), &created.id).await.unwrap();
    let request: Value = serde_json::from_str(detail.request.text.as_deref().unwrap()).unwrap();
    assert_eq!(request["document"]["value"], "*****0000");
    assert_eq!(request["first_name"], "Josh");
    let response: Value = serde_json::from_str(detail.response.text.as_deref().unwrap()).unwrap();
    assert!(response["cardholder"]["id"].as_str().unwrap().starts_with("crdhldr_"));
    assert_eq!(detail.response.content_type.as_deref(), Some("application/json"));
}

async fn one_tenant_never_reads_anothers_request_log(app: TestApp) {
    let (a, b) = (app.tenant().await, app.tenant().await);
    app.get(&b.sandbox, "/cardholders").await;
    app.get(&a.sandbox, "/cards").await;
    let store = app.state.request_log.as_ref();
    flushed(store, &scope(&b), 1).await;
    flushed(store, &scope(&a), 1).await;
    let theirs = store
        .list(&scope(&b), &RequestLogFilter::default(), None, 10)
        .await
        .unwrap();
    let id = &theirs.entries[0].id;
    assert!(matches!(store.get(&scope(&a), id).await, Err(StoreError::NotFound)));
    let mine = store
        .list(&scope(&a), &RequestLogFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(mine.entries.len(), 1);
    assert_eq!(mine.entries[0].route, "/cards");
    let live = Scope {
        environment: Environment::Live,
        ..scope(&a)
    };
    assert_eq!(
        counted(store, &live).await,
        0,
        "the sandbox key's requests are not live usage"
    );
}

/// A tenant API caller that counts its requests and remembers every secret it handled.
struct Caller<'a> {
    app: &'a TestApp,
    creds: Creds,
    made: i64,
    pans: HashSet<String>,
    cvvs: Vec<String>,
    ssns: HashSet<String>,
}

impl Caller<'_> {
    async fn call(&mut self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.made += 1;
        let mut req = self.app.request(method, path, &self.creds);
        if let Some(body) = body {
            req = req.json(body);
        }
        send(req).await
    }

    async fn raw(&mut self, path: &str, content_type: &str, body: String) -> StatusCode {
        self.made += 1;
        let req = self.app.request(Method::POST, path, &self.creds);
        send(req.header("content-type", content_type).body(body)).await.0
    }
}

fn random_ssn(rng: &mut StdRng) -> String {
    format!(
        "{}{}{}",
        rng.random_range(100..666),
        rng.random_range(10..100),
        rng.random_range(1000..10_000)
    )
}

/// A PAN as people write it: plain, in groups of four with spaces or dashes.
fn styled(pan: &str, rng: &mut StdRng) -> String {
    let sep = match rng.random_range(0..3) {
        0 => return pan.to_owned(),
        1 => " ",
        _ => "-",
    };
    let chars: Vec<char> = pan.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(sep)
}

fn dashed(ssn: &str) -> String {
    format!("{}-{}-{}", &ssn[..3], &ssn[3..5], &ssn[5..])
}

/// Cardholders (random SSNs), cards revealed (PAN + CVV), authorizations.
async fn legitimate_traffic(c: &mut Caller<'_>, rng: &mut StdRng) -> Vec<String> {
    let mut cards = Vec::new();
    for i in 0..6 {
        let ssn = random_ssn(rng);
        c.ssns.insert(ssn.clone());
        let value = if i % 2 == 0 { ssn.clone() } else { dashed(&ssn) };
        let (status, holder) = c
            .call(Method::POST, "/cardholders", Some(&seed_cardholder(&value, None)))
            .await;
        assert_eq!(status, StatusCode::OK, "{holder}");
        let holder_id = holder["cardholder"]["id"].as_str().unwrap().to_owned();
        let body = json!({"program_id": "GPR", "initial_load": {"currency": "USD", "amount": 5_000}});
        let (status, card) = c
            .call(Method::POST, &format!("/cardholders/{holder_id}/cards"), Some(&body))
            .await;
        assert_eq!(status, StatusCode::OK, "{card}");
        let card_id = card["card"]["id"].as_str().unwrap().to_owned();
        let (status, secrets) = c
            .call(Method::POST, &format!("/cards/{card_id}/reveal"), Some(&json!({})))
            .await;
        assert_eq!(status, StatusCode::OK, "{secrets}");
        c.pans.insert(secrets["pan"].as_str().unwrap().to_owned());
        c.cvvs.push(secrets["cvv"].as_str().unwrap().to_owned());
        let merchant = json!({"id": "m1", "name": "Shop", "mcc": "5411", "country": "USA", "city": "Austin"});
        let auth =
            json!({"card_id": card_id, "amount": rng.random_range(1..900), "currency": "USD", "merchant": merchant});
        let (status, answer) = c.call(Method::POST, "/simulate/authorizations", Some(&auth)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        c.call(Method::GET, &format!("/cards/{card_id}/transactions"), None)
            .await;
        cards.push(card_id);
    }
    cards
}

/// Requests that put PANs and SSNs where they do not belong: unknown fields, wrong fields, ids,
/// paths, query strings, JSON numbers, keys, malformed JSON and non-JSON bodies.
async fn misplaced_secrets(c: &mut Caller<'_>, rng: &mut StdRng) {
    let pans: Vec<String> = c.pans.iter().cloned().collect();
    let ssns: Vec<String> = c.ssns.iter().cloned().collect();
    for round in 0..24 {
        let pan = &pans[rng.random_range(0..pans.len())];
        let ssn = &ssns[rng.random_range(0..ssns.len())];
        let (p, s) = (
            styled(pan, rng),
            if rng.random_bool(0.5) { dashed(ssn) } else { ssn.clone() },
        );
        let mut holder = seed_cardholder(ssn, None);
        match round % 12 {
            0 => holder["pan"] = json!(p),
            1 => holder["first_name"] = json!(format!("card {p} ssn {s}")),
            2 => holder["custodian_uid"] = json!(p),
            3 => holder["phone_number"] = json!(s),
            4 => {
                holder["card"] = json!({"program_id": "GPR", "additional_fields": {"number": pan.parse::<u64>().unwrap(), "cvv": 123, "id": s}})
            }
            5 => holder[p.as_str()] = json!(s),
            _ => {}
        }
        match round % 12 {
            0..=5 => {
                c.call(Method::POST, "/cardholders", Some(&holder)).await;
            }
            6 => {
                let auth = json!({"card_id": p, "amount": 100, "currency": "USD", "cvv": "123", "pan": pan});
                c.call(Method::POST, "/simulate/authorizations", Some(&auth)).await;
            }
            7 => {
                c.call(Method::GET, &format!("/cards/{pan}"), None).await;
            }
            8 => {
                let q = p.replace(' ', "%20");
                c.call(Method::GET, &format!("/cards?starting_after={q}&ssn={s}&limit=2"), None)
                    .await;
            }
            9 => {
                c.raw(
                    "/cardholders",
                    "application/json",
                    format!("{{\"pan\": \"{p}\", \"ssn\": {ssn}"),
                )
                .await;
            }
            10 => {
                c.raw("/cardholders", "text/plain", format!("pan={p}&ssn={s}")).await;
            }
            _ => {
                let body = json!({"name": format!("key {p}"), "permissions": [s]});
                c.call(Method::POST, "/api_keys", Some(&body)).await;
            }
        }
    }
}

/// Every column of every request log and usage row, as text.
async fn stored_columns(url: &str) -> Vec<String> {
    use sqlx::{Column, Row};
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut out = Vec::new();
    for table in ["request_log", "request_usage_daily"] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&pool)
            .await
            .unwrap();
        for row in &rows {
            for column in row.columns() {
                let i = column.ordinal();
                let text = row
                    .try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .or_else(|| row.try_get::<Option<i64>, _>(i).ok().flatten().map(|n| n.to_string()));
                out.extend(text);
            }
        }
    }
    pool.close().await;
    out
}

async fn a_randomized_workload_leaves_no_full_pan_cvv_or_ssn_in_any_stored_column(app: TestApp) {
    let seed: u64 = rand::rng().random();
    eprintln!("request log workload seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let t = app.tenant_with(&[Permission::Reveal]).await;
    let mut c = Caller {
        app: &app,
        creds: t.sandbox.clone(),
        made: 0,
        pans: HashSet::new(),
        cvvs: Vec::new(),
        ssns: HashSet::new(),
    };
    let program = json!({"program_id": "GPR", "name": "P", "network": "VISA", "bin": "411111", "currency": "USD", "design_keys": ["blue"]});
    c.call(Method::POST, "/programs", Some(&program)).await;
    c.call(
        Method::POST,
        "/sandbox/programs/GPR/fund",
        Some(&json!({"amount": 1_000_000, "currency": "USD"})),
    )
    .await;
    legitimate_traffic(&mut c, &mut rng).await;
    misplaced_secrets(&mut c, &mut rng).await;
    let store = app.state.request_log.as_ref();
    flushed(store, &scope(&t), c.made).await;
    let per_key = store.requests_per_key(&scope(&t), Timestamp::now(), 7).await.unwrap();
    assert_eq!(per_key.len(), 1);
    assert_eq!(per_key[0].counts.requests, c.made);
    let endpoints = store.endpoint_latency(&scope(&t), Timestamp::now(), 7).await.unwrap();
    assert_eq!(endpoints.iter().map(|e| e.counts.requests).sum::<i64>(), c.made);
    assert!(endpoints.iter().all(|e| e.p50_us.is_some() && e.p99_us >= e.p50_us));

    // On SQLite the log has a file of its own; the main database's copy of its tables stays empty.
    let log_url = cardplane_store::request_log_url(&app.db.url).unwrap_or_else(|| app.db.url.clone());
    let columns = stored_columns(&log_url).await;
    assert!(columns.len() > 19 * usize::try_from(c.made).unwrap());
    for text in &columns {
        let digits: String = text
            .replace("%20", "")
            .chars()
            .filter(|ch| !matches!(ch, ' ' | '-'))
            .collect();
        for pan in &c.pans {
            assert!(!digits.contains(pan.as_str()), "a full PAN is stored: {text}");
        }
        for ssn in &c.ssns {
            assert!(!digits.contains(ssn.as_str()), "a full SSN is stored: {text}");
        }
        let lower = text.to_lowercase();
        for cvv in &c.cvvs {
            assert!(
                !lower.contains(&format!("\"cvv\":\"{cvv}\"")),
                "a CVV is stored: {text}"
            );
        }
    }
}

fn old_entry(scope: &Scope, key: &ApiKeyId, at: Timestamp) -> RequestLogEntry {
    RequestLogEntry::capture(
        Exchange {
            api_key_id: key.clone(),
            tenant_id: scope.tenant_id.clone(),
            environment: scope.environment,
            received_at: at,
            method: "GET",
            route: "/cards",
            path: "/cards",
            query: None,
            status: 200,
            latency_us: 900,
            request_id: None,
            idempotency_key: None,
            request_content_type: None,
            request_body: b"",
            response_content_type: Some("application/json"),
            response_body: Some(b"{}"),
            response_length_bytes: 2,
        },
        1024,
    )
}

async fn the_retention_purge_removes_entries_and_usage_past_the_retention_period(app: TestApp) {
    let t = app.tenant().await;
    let key = ApiKeyId::parse(&t.sandbox.id).unwrap();
    let now = Timestamp::now();
    let days_ago = |d: i64| Timestamp::from_micros(now.as_micros() - d * 86_400_000_000);
    let entries: Vec<_> = [9, 8, 8, 6, 0]
        .iter()
        .map(|d| old_entry(&scope(&t), &key, days_ago(*d)))
        .collect();
    let store = app.state.request_log.as_ref();
    store.insert_batch(&entries).await.unwrap();
    assert_eq!(app.state.config.request_log.retention_days, 7);
    purge_expired(&app.state, now).await;
    let left = store
        .list(&scope(&t), &RequestLogFilter::default(), None, 50)
        .await
        .unwrap();
    let ids: Vec<&RequestLogId> = left.entries.iter().map(|e| &e.id).collect();
    assert_eq!(ids, vec![&entries[4].id, &entries[3].id]);
    let days = store.requests_per_day(&scope(&t), now, 30).await.unwrap();
    assert_eq!(days.iter().map(|d| d.counts.requests).sum::<i64>(), 2);
}

async fn quiet_writer(backend: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.request_log.flush_interval_ms = 600_000;
    })
    .await
}

async fn queued_entries_are_written_when_the_server_stops(mut app: TestApp) {
    let t = app.tenant().await;
    for _ in 0..7 {
        app.get(&t.sandbox, "/cardholders").await;
    }
    app.signal_shutdown();
    app.stopped().await.unwrap();
    let db = Db::connect(&DbOptions::new(app.db.url.clone())).await.unwrap();
    let store = SqlStore::new(db);
    assert_eq!(counted(&store, &scope(&t)).await, 7);
}

async fn disabled_capture_stores_nothing(mut app: TestApp) {
    let t = app.tenant().await;
    app.get(&t.sandbox, "/cardholders").await;
    app.signal_shutdown();
    app.stopped().await.unwrap();
    let db = Db::connect(&DbOptions::new(app.db.url.clone())).await.unwrap();
    assert_eq!(counted(&SqlStore::new(db), &scope(&t)).await, 0);
}

async fn without_request_log(backend: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| c.request_log.enabled = false).await
}

app_tests!(
    a_request_is_logged_with_its_status_latency_request_id_and_idempotency_key,
    one_tenant_never_reads_anothers_request_log,
    a_randomized_workload_leaves_no_full_pan_cvv_or_ssn_in_any_stored_column,
    the_retention_purge_removes_entries_and_usage_past_the_retention_period,
);
app_tests!(spawn = super::quiet_writer; queued_entries_are_written_when_the_server_stops);
app_tests!(spawn = super::without_request_log; disabled_capture_stores_nothing);
