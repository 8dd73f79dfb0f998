//! Webhook storage on both backends: the outbox written with every event, per-tenant sequence
//! numbers, and claims that never hand one delivery to two workers.

use std::collections::HashSet;

use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{TenantId, WebhookAttemptId, WebhookEndpointId};
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use cardplane_domain::webhook::{EnabledEvents, WebhookEndpoint};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::tenants::TenantStore;
use cardplane_store::webhooks::{AttemptRecord, DeliveryOutcome, EndpointOutcome, WebhookStore};
use cardplane_store::{Db, DbOptions, Scope, SqlStore};
use cardplane_testkit::{Backend, TestDb, both_backends};

async fn store(backend: Backend) -> Option<(SqlStore, TestDb)> {
    let test_db = TestDb::create(backend).await?;
    let mut options = DbOptions::new(test_db.url.clone());
    options.max_connections = 8;
    let db = Db::connect(&options).await.expect("connect");
    db.migrate().await.expect("migrate");
    Some((SqlStore::new(db), test_db))
}

async fn tenant(store: &SqlStore, environment: Environment) -> Scope {
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
        environment,
    }
}

fn event(scope: &Scope, kind: EventType) -> Event {
    Event::new(
        &scope.tenant_id,
        scope.environment,
        kind,
        "obj_1",
        serde_json::json!({"n": 1}),
        Timestamp::now(),
    )
}

async fn endpoint(store: &SqlStore, scope: &Scope, events: EnabledEvents, enabled: bool) -> WebhookEndpointId {
    let now = Timestamp::now();
    let e = WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: scope.environment,
        url: "http://127.0.0.1:9/".into(),
        description: None,
        enabled_events: events,
        enabled,
        disabled_reason: None,
        secret_sealed: "sealed".into(),
        previous_secret_sealed: None,
        previous_secret_expires_at: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_endpoint(scope, &e, &[], None, now).await.unwrap();
    e.id
}

/// Appends events through a store method that writes them (an endpoint update).
async fn append(store: &SqlStore, scope: &Scope, holder: &WebhookEndpointId, events: &[Event]) {
    let mut e = store.get_endpoint(scope, holder).await.unwrap();
    e.updated_at = Timestamp::now();
    store
        .update_endpoint(scope, &e, events, None, Timestamp::now())
        .await
        .unwrap();
}

async fn events_get_sequences_per_tenant_and_environment_and_only_subscribed_endpoints_get_deliveries(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let a = tenant(&store, Environment::Sandbox).await;
    let a_live = Scope {
        environment: Environment::Live,
        ..a.clone()
    };
    let other = tenant(&store, Environment::Sandbox).await;
    let cards = endpoint(&store, &a, EnabledEvents::Only(vec![EventType::CardCreated]), true).await;
    let paused = endpoint(&store, &a, EnabledEvents::All, false).await;
    let live_all = endpoint(&store, &a_live, EnabledEvents::All, true).await;
    let other_all = endpoint(&store, &other, EnabledEvents::All, true).await;

    append(
        &store,
        &a,
        &paused,
        &[event(&a, EventType::CardCreated), event(&a, EventType::CardUpdated)],
    )
    .await;
    append(&store, &a_live, &live_all, &[event(&a_live, EventType::CardCreated)]).await;
    append(&store, &other, &other_all, &[event(&other, EventType::CardCreated)]).await;

    let now = Timestamp::now();
    let due = store.claim_due(now, now.plus_secs(60), 100).await.unwrap();
    let first_sequence = due
        .iter()
        .find(|d| d.endpoint_id == cards)
        .and_then(|d| d.event_sequence);
    let mut got: Vec<(String, String, bool)> = due
        .iter()
        .map(|d| {
            (
                d.endpoint_id.to_string(),
                d.event_type.clone(),
                d.event_sequence.is_some(),
            )
        })
        .collect();
    got.sort();
    let mut expected = vec![
        (cards.to_string(), "card.created".to_owned(), true),
        (live_all.to_string(), "card.created".to_owned(), true),
        (other_all.to_string(), "card.created".to_owned(), true),
    ];
    expected.sort();
    assert_eq!(
        got, expected,
        "the paused endpoint and the unsubscribed type get nothing"
    );
    if b == Backend::Sqlite {
        assert_eq!(first_sequence, Some(1), "SQLite counts per tenant and environment");
    }

    append(&store, &a, &paused, &[event(&a, EventType::CardCreated)]).await;
    let now = Timestamp::now();
    let due = store.claim_due(now, now.plus_secs(60), 100).await.unwrap();
    assert_eq!(due.len(), 1);
    // Two events of this scope came before; PostgreSQL's numbers come from one sequence (gaps
    // between a tenant's numbers, order kept), SQLite's are consecutive per scope.
    assert!(
        due[0].event_sequence > first_sequence,
        "sequences increase within a tenant and environment"
    );
    if b == Backend::Sqlite {
        assert_eq!(
            due[0].event_sequence,
            Some(3),
            "sequences continue per tenant and environment"
        );
    }
}

async fn a_claimed_delivery_waits_for_its_lease_and_a_stale_holder_cannot_settle_it(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let s = tenant(&store, Environment::Sandbox).await;
    let id = endpoint(&store, &s, EnabledEvents::All, true).await;
    append(&store, &s, &id, &[event(&s, EventType::CardCreated)]).await;

    let now = Timestamp::now();
    let first = store.claim_due(now, now.plus_secs(60), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim_due(now, now.plus_secs(60), 10).await.unwrap().is_empty());
    let later = now.plus_secs(60);
    let second = store.claim_due(later, later.plus_secs(60), 10).await.unwrap();
    assert_eq!(second.len(), 1, "an expired lease is claimed again");

    let delivered = |attempted_at| AttemptRecord {
        attempt_id: WebhookAttemptId::generate(),
        attempt_number: 1,
        attempted_at,
        status_code: Some(200),
        latency_ms: 3,
        error: None,
        delivery: DeliveryOutcome::Delivered,
        endpoint: EndpointOutcome::Healthy,
    };
    // The first holder finishes late: its attempt is logged but it no longer decides.
    store.record_attempt(&first[0], &delivered(later)).await.unwrap();
    let retry_at = later.plus_secs(5);
    let failed = AttemptRecord {
        status_code: Some(500),
        delivery: DeliveryOutcome::RetryAt(retry_at),
        endpoint: EndpointOutcome::Failing,
        ..delivered(later)
    };
    store.record_attempt(&second[0], &failed).await.unwrap();
    assert!(
        store
            .claim_due(retry_at.plus_secs(-1), retry_at.plus_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let third = store.claim_due(retry_at, retry_at.plus_secs(60), 10).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempts, 1);
    assert_eq!(third[0].failing_since, Some(later));
    let page = cardplane_domain::page::PageRequest::parse(None, None, None, |_| true).unwrap();
    assert_eq!(store.list_attempts(&s, &id, &page).await.unwrap().items.len(), 2);

    // Trimming the log keeps recent attempts and pending deliveries.
    assert_eq!(store.purge_webhook_history(later).await.unwrap(), 0);
    assert_eq!(store.purge_webhook_history(later.plus_secs(1)).await.unwrap(), 2);
    assert!(store.list_attempts(&s, &id, &page).await.unwrap().items.is_empty());
    assert_eq!(
        store
            .claim_due(retry_at.plus_secs(60), retry_at.plus_secs(120), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn concurrent_claims_never_share_a_delivery(b: Backend) {
    let Some((store, _db)) = store(b).await else { return };
    let s = tenant(&store, Environment::Sandbox).await;
    let id = endpoint(&store, &s, EnabledEvents::All, true).await;
    let events: Vec<Event> = (0..40).map(|_| event(&s, EventType::CardUpdated)).collect();
    append(&store, &s, &id, &events).await;
    let now = Timestamp::now();
    let claimers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(now, now.plus_secs(60), 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.delivery_id));
            }
        })
    });
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    assert_eq!(all.len(), 40);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 40);
}

both_backends!(
    events_get_sequences_per_tenant_and_environment_and_only_subscribed_endpoints_get_deliveries,
    a_claimed_delivery_waits_for_its_lease_and_a_stale_holder_cannot_settle_it,
    concurrent_claims_never_share_a_delivery,
);
