//! The request log's storage on both backends: batched writes with their usage rollup, scoped
//! reads, filters and keyset pages, usage figures from the rollup, and the retention purge.

use cardplane_domain::ids::{ApiKeyId, RequestLogId, TenantId};
use cardplane_domain::request_log::{Exchange, RequestLogEntry, day_of};
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::request_log::{LogCursor, RequestLogFilter, RequestLogStore, StatusFilter};
use cardplane_store::tenants::TenantStore;
use cardplane_store::{Db, DbOptions, Scope, SqlStore, StoreError};
use cardplane_testkit::{Backend, TestDb, both_backends};

async fn store(backend: Backend) -> Option<(SqlStore, TestDb)> {
    let test_db = TestDb::create(backend).await?;
    let db = Db::connect(&DbOptions::new(test_db.url.clone()))
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    Some((SqlStore::new(db), test_db))
}

async fn tenant(store: &SqlStore) -> Scope {
    let t = Tenant {
        id: TenantId::generate(),
        name: "T".into(),
        api_version: ApiVersion::current(),
        rate_limit_per_second: None,
        created_at: Timestamp::now(),
    };
    store.create_tenant(&t, &[], &[]).await.unwrap();
    Scope {
        tenant_id: t.id,
        environment: Environment::Sandbox,
    }
}

struct Call<'a> {
    key: &'a ApiKeyId,
    at: Timestamp,
    method: &'a str,
    route: &'a str,
    path: &'a str,
    status: u16,
    latency_us: i64,
}

fn entry(scope: &Scope, c: Call<'_>) -> RequestLogEntry {
    let body = br#"{"document": {"type": "ssn", "value": "123456789"}, "pan": "4111111111111111"}"#;
    RequestLogEntry::capture(
        Exchange {
            api_key_id: c.key.clone(),
            tenant_id: scope.tenant_id.clone(),
            environment: scope.environment,
            received_at: c.at,
            method: c.method,
            route: c.route,
            path: c.path,
            query: Some("limit=5"),
            status: c.status,
            latency_us: c.latency_us,
            request_id: Some("req-1"),
            idempotency_key: Some("idem-1"),
            request_content_type: Some("application/json"),
            request_body: body,
            response_content_type: Some("application/json"),
            response_body: Some(b"{\"ok\":true}"),
            response_length_bytes: 11,
        },
        16 * 1024,
    )
}

fn call<'a>(key: &'a ApiKeyId, at: Timestamp, status: u16, latency_us: i64) -> Call<'a> {
    Call {
        key,
        at,
        method: "POST",
        route: "/cardholders",
        path: "/cardholders",
        status,
        latency_us,
    }
}

async fn a_batch_is_stored_masked_and_read_back_only_in_its_scope(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let (mine, theirs) = (tenant(&store).await, tenant(&store).await);
    let key = ApiKeyId::generate();
    let now = Timestamp::now();
    let e = entry(&mine, call(&key, now, 201, 1_500));
    let other = entry(&theirs, call(&key, now, 200, 900));
    store.insert_batch(&[e.clone(), other.clone()]).await.unwrap();
    let got = store.get(&mine, &e.id).await.unwrap();
    assert_eq!(got.summary.status, 201);
    assert_eq!(got.summary.latency_us, 1_500);
    assert_eq!(got.summary.request_id.as_deref(), Some("req-1"));
    assert_eq!(got.summary.idempotency_key.as_deref(), Some("idem-1"));
    assert_eq!(got.summary.query.as_deref(), Some("limit=5"));
    let body = got.request.text.unwrap();
    assert!(
        !body.contains("4111111111111111") && !body.contains("123456789"),
        "{body}"
    );
    assert_eq!(got.response.text.as_deref(), Some("{\"ok\":true}"));
    assert!(matches!(store.get(&mine, &other.id).await, Err(StoreError::NotFound)));
    let live = Scope {
        environment: Environment::Live,
        ..mine.clone()
    };
    assert!(matches!(store.get(&live, &e.id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.get(&mine, &RequestLogId::generate()).await,
        Err(StoreError::NotFound)
    ));
    store.insert_batch(&[]).await.unwrap();
}

async fn lists_filter_and_page_newest_first(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let scope = tenant(&store).await;
    let (k1, k2) = (ApiKeyId::generate(), ApiKeyId::generate());
    let base = Timestamp::now().as_micros() - 1_000_000;
    let mut entries = Vec::new();
    for i in 0..25i64 {
        let key = if i % 2 == 0 { &k1 } else { &k2 };
        let status = [200, 201, 404, 422, 500][usize::try_from(i % 5).unwrap()];
        // Pairs share an instant, so the page boundary must fall back on the id.
        let mut c = call(key, Timestamp::from_micros(base + i / 2), status, 100 * i);
        if i % 3 == 0 {
            c.method = "GET";
            c.route = "/cards/{card_id}";
            c.path = "/cards/card_abc";
        }
        entries.push(entry(&scope, c));
    }
    store.insert_batch(&entries).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<LogCursor> = None;
    loop {
        let page = store
            .list(&scope, &RequestLogFilter::default(), after.as_ref(), 7)
            .await
            .unwrap();
        seen.extend(page.entries.iter().map(|e| (e.received_at, e.id.clone())));
        match page.next {
            Some(c) => after = Some(LogCursor::parse(&c.encode()).unwrap()),
            None => break,
        }
    }
    let mut expected: Vec<_> = entries.iter().map(|e| (e.received_at, e.id.clone())).collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected, "every entry once, newest first");

    let count = |f: RequestLogFilter| {
        let store = store.clone();
        let scope = scope.clone();
        async move { store.list(&scope, &f, None, 200).await.unwrap().entries.len() }
    };
    let by_key = RequestLogFilter {
        api_key_id: Some(k1.clone()),
        ..Default::default()
    };
    assert_eq!(count(by_key).await, 13);
    let errors = RequestLogFilter {
        status: Some(StatusFilter::Class(4)),
        ..Default::default()
    };
    assert_eq!(count(errors).await, 10);
    let exact = RequestLogFilter {
        status: Some(StatusFilter::Exact(500)),
        ..Default::default()
    };
    assert_eq!(count(exact).await, 5);
    let gets = RequestLogFilter {
        method: Some("get".into()),
        path_contains: Some("CARD_ABC".into()),
        ..Default::default()
    };
    assert_eq!(count(gets).await, 9);
    let literal = RequestLogFilter {
        path_contains: Some("card%".into()),
        ..Default::default()
    };
    assert_eq!(count(literal).await, 0, "wildcards in the text are literal");
    let ids = RequestLogFilter {
        request_id: Some("req-1".into()),
        idempotency_key: Some("idem-1".into()),
        from: Some(Timestamp::from_micros(base + 2)),
        until: Some(Timestamp::from_micros(base + 4)),
        ..Default::default()
    };
    assert_eq!(count(ids).await, 4);
}

async fn usage_comes_from_the_rollup_merged_across_batches(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let scope = tenant(&store).await;
    let (k1, k2) = (ApiKeyId::generate(), ApiKeyId::generate());
    let now = Timestamp::now();
    let yesterday = Timestamp::from_micros(now.as_micros() - 86_400_000_000);
    let long_ago = Timestamp::from_micros(now.as_micros() - 30 * 86_400_000_000);
    let first = vec![
        entry(&scope, call(&k1, now, 201, 1_000)),
        entry(&scope, call(&k1, now, 422, 1_000)),
        entry(&scope, call(&k2, yesterday, 500, 200_000)),
        entry(&scope, call(&k2, long_ago, 200, 1_000)),
    ];
    let second: Vec<_> = (0..96).map(|_| entry(&scope, call(&k1, now, 200, 1_000))).collect();
    store.insert_batch(&first).await.unwrap();
    store.insert_batch(&second).await.unwrap();

    let days = store.requests_per_day(&scope, now, 7).await.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(
        (days[0].day, days[0].counts.requests, days[0].counts.errors_5xx),
        (day_of(yesterday), 1, 1)
    );
    assert_eq!(
        (days[1].day, days[1].counts.requests, days[1].counts.errors_4xx),
        (day_of(now), 98, 1)
    );
    let keys = store.requests_per_key(&scope, now, 7).await.unwrap();
    assert_eq!(keys[0].api_key_id, k1.to_string());
    assert_eq!(keys[0].counts.requests, 98);
    assert_eq!(keys[1].counts.requests, 1);
    let endpoints = store.endpoint_latency(&scope, now, 7).await.unwrap();
    assert_eq!(endpoints.len(), 1);
    let e = &endpoints[0];
    assert_eq!(
        (e.method.as_str(), e.route.as_str(), e.counts.requests),
        ("POST", "/cardholders", 99)
    );
    assert_eq!(e.counts.error_rate_per_mille(), 2 * 1000 / 99);
    assert!((512..=1024).contains(&e.p50_us.unwrap()), "{e:?}");
    assert!(
        e.p99_us.unwrap() > 131_072,
        "the 99th of 99 requests is the slow one: {e:?}"
    );
    let other = tenant(&store).await;
    assert!(store.requests_per_day(&other, now, 7).await.unwrap().is_empty());
}

async fn the_purge_removes_old_entries_in_chunks_and_old_usage_days(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let scope = tenant(&store).await;
    let key = ApiKeyId::generate();
    let now = Timestamp::now();
    let old = Timestamp::from_micros(now.as_micros() - 10 * 86_400_000_000);
    let mut entries: Vec<_> = (0..23).map(|_| entry(&scope, call(&key, old, 200, 10))).collect();
    let fresh = entry(&scope, call(&key, now, 200, 10));
    entries.push(fresh.clone());
    store.insert_batch(&entries).await.unwrap();
    let cutoff = Timestamp::from_micros(now.as_micros() - 7 * 86_400_000_000);
    let run = store.purge_before(cutoff, 5).await.unwrap();
    assert_eq!(run.log_rows, 23);
    assert_eq!(run.usage_rows, 1);
    let left = store
        .list(&scope, &RequestLogFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(left.entries.len(), 1);
    assert_eq!(left.entries[0].id, fresh.id);
    assert_eq!(store.requests_per_day(&scope, now, 30).await.unwrap().len(), 1);
}

both_backends!(
    a_batch_is_stored_masked_and_read_back_only_in_its_scope,
    lists_filter_and_page_newest_first,
    usage_comes_from_the_rollup_merged_across_batches,
    the_purge_removes_old_entries_in_chunks_and_old_usage_days,
);
