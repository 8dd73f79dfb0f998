//! The storage conformance suite: written once, run against SQLite and PostgreSQL.

use cardplane_domain::api_key::ApiKey;
use cardplane_domain::cardholder::{Address, Cardholder, DateOfBirth, DocumentType, Email, Identity, PhoneNumber};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::idempotency::Claim;
use cardplane_domain::ids::{CardholderId, TenantId};
use cardplane_domain::kyc::{KycResult, KycState};
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::api_keys::ApiKeyStore;
use cardplane_store::cardholders::{CardholderStore, CardholderWrite};
use cardplane_store::events::EventStore;
use cardplane_store::idempotency::IdempotencyStore;
use cardplane_store::ledger::PostError;
use cardplane_store::tenants::TenantStore;
use cardplane_store::{Db, DbOptions, EffectRecords, IdempotentResponse, Scope, SqlStore, StoreError};
use cardplane_testkit::{Backend, TestDb, both_backends};

async fn store(backend: Backend) -> Option<(SqlStore, TestDb)> {
    let test_db = TestDb::create(backend).await?;
    let mut options = DbOptions::new(test_db.url.clone());
    options.max_connections = 4;
    let db = Db::connect(&options).await.expect("connect");
    db.migrate().await.expect("migrate");
    db.migrate().await.expect("migrations are idempotent");
    Some((SqlStore::new(db), test_db))
}

async fn tenant(store: &SqlStore) -> (Tenant, Scope) {
    let t = Tenant {
        id: TenantId::generate(),
        name: "T".into(),
        api_version: ApiVersion::current(),
        rate_limit_per_second: None,
        created_at: Timestamp::now(),
    };
    store.create_tenant(&t, &[], &[]).await.unwrap();
    let scope = Scope {
        tenant_id: t.id.clone(),
        environment: Environment::Sandbox,
    };
    (t, scope)
}

fn cardholder(scope: &Scope, uid: Option<&str>) -> Cardholder {
    let now = Timestamp::now();
    Cardholder {
        id: CardholderId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: scope.environment,
        custodian_uid: uid.map(str::to_owned),
        email: Email::parse(Some("pat@wilson.com")).unwrap(),
        phone: PhoneNumber::parse(Some("+16508881111")).unwrap(),
        identity: Identity {
            first_name: "Josh".into(),
            last_name: "Wilson".into(),
            date_of_birth: DateOfBirth::from_date(time::macros::date!(1982 - 06 - 20)),
            address: Address {
                street_one: "1800 Gates Ave".into(),
                street_two: None,
                locality: "Ridgewood".into(),
                region: "NY".into(),
                postal_code: "11385".into(),
                country: "USA".into(),
            },
        },
        document_type: DocumentType::Ssn,
        document_last4: "0000".into(),
        document_sealed: "sealed".into(),
        kyc: KycState::not_checked().record(KycResult::passed(), now),
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

fn write(c: &Cardholder) -> CardholderWrite<'_> {
    CardholderWrite {
        cardholder: c,
        kyc_check: None,
        card_orders: &[],
        card_issues: &[],
        events: &[],
        response: None,
        review: None,
    }
}

async fn api_keys_are_found_listed_and_revoked_once(backend: Backend) {
    let Some((store, _db)) = store(backend).await else {
        return;
    };
    let (t, scope) = tenant(&store).await;
    let (key, _secret) = ApiKey::issue(&t.id, Environment::Sandbox, "k".into(), vec![], b"p", Timestamp::now());
    store
        .insert_api_key(&scope, &key, &[], None, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(store.find_api_key(&key.id).await.unwrap(), key);
    let other = Scope {
        tenant_id: t.id.clone(),
        environment: Environment::Live,
    };
    assert!(matches!(
        store.get_api_key(&other, &key.id).await,
        Err(StoreError::NotFound)
    ));
    store
        .revoke_api_key(&scope, &key.id, Timestamp::now(), &[], None)
        .await
        .unwrap();
    assert!(matches!(
        store.revoke_api_key(&scope, &key.id, Timestamp::now(), &[], None).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.find_api_key(&key.id).await.unwrap().is_active());
}

async fn idempotency_claims_follow_the_protocol(backend: Backend) {
    let Some((store, _db)) = store(backend).await else {
        return;
    };
    let (_, scope) = tenant(&store).await;
    let now = Timestamp::now();
    let Claim::Acquired { token } = store.claim(&scope, "k1", "fp", now).await.unwrap() else {
        panic!("first claim")
    };
    assert_eq!(
        store.claim(&scope, "k1", "fp", now).await.unwrap(),
        Claim::InFlight {
            fingerprint: "fp".into()
        }
    );
    let response = IdempotentResponse {
        key: "k1".into(),
        claim_token: token.clone(),
        status: 201,
        body: "{\"a\":1}".into(),
    };
    store.complete(&scope, &response, now).await.unwrap();
    assert_eq!(
        store.claim(&scope, "k1", "other", now).await.unwrap(),
        Claim::Completed {
            fingerprint: "fp".into(),
            status: 201,
            body: b"{\"a\":1}".to_vec()
        }
    );
    // Completing twice (or with a stale token) is refused.
    assert!(store.complete(&scope, &response, now).await.is_err());

    // Keys are scoped: the same key in the other environment is free.
    let live = Scope {
        environment: Environment::Live,
        ..scope.clone()
    };
    assert!(matches!(
        store.claim(&live, "k1", "fp", now).await.unwrap(),
        Claim::Acquired { .. }
    ));

    // A claim whose request died is taken over after the stale period; the old token is dead.
    let Claim::Acquired { token: dead } = store.claim(&scope, "k2", "fp", now).await.unwrap() else {
        panic!()
    };
    let later = now.plus_secs(61);
    let Claim::Acquired { token: fresh } = store.claim(&scope, "k2", "fp", later).await.unwrap() else {
        panic!("takeover")
    };
    let stale = IdempotentResponse {
        key: "k2".into(),
        claim_token: dead,
        status: 200,
        body: "{}".into(),
    };
    assert!(store.complete(&scope, &stale, later).await.is_err());
    store.release(&scope, "k2", &fresh).await.unwrap();
    assert!(matches!(
        store.claim(&scope, "k2", "fp", later).await.unwrap(),
        Claim::Acquired { .. }
    ));

    // Completed keys expire after their TTL and are purged.
    let much_later = now.plus_secs(49 * 3600);
    assert!(store.purge_expired(much_later).await.unwrap() >= 1);
    assert!(matches!(
        store.claim(&scope, "k1", "new", much_later).await.unwrap(),
        Claim::Acquired { .. }
    ));
}

async fn cardholders_are_scoped_versioned_and_unique_by_custodian_uid(backend: Backend) {
    let Some((store, _db)) = store(backend).await else {
        return;
    };
    let (_, scope) = tenant(&store).await;
    let (_, other_tenant) = tenant(&store).await;
    let c = cardholder(&scope, Some("uid-1"));
    store
        .insert_cardholder(&scope, write(&c), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(store.get_cardholder(&scope, &c.id).await.unwrap(), c);
    assert!(matches!(
        store.get_cardholder(&other_tenant, &c.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .find_cardholder_by_custodian_uid(&scope, "uid-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );
    assert!(
        store
            .find_cardholder_by_custodian_uid(&other_tenant, "uid-1")
            .await
            .unwrap()
            .is_none()
    );

    let dup = cardholder(&scope, Some("uid-1"));
    let Err(PostError::Store(err)) = store.insert_cardholder(&scope, write(&dup), Timestamp::now()).await else {
        panic!("duplicate custodian_uid must conflict")
    };
    assert!(
        err.is_conflict_on("cardholders_custodian_uid", "custodian_uid"),
        "{err:?}"
    );
    // The same uid in another tenant, or without a uid, is fine.
    store
        .insert_cardholder(
            &other_tenant,
            write(&cardholder(&other_tenant, Some("uid-1"))),
            Timestamp::now(),
        )
        .await
        .unwrap();
    store
        .insert_cardholder(&scope, write(&cardholder(&scope, None)), Timestamp::now())
        .await
        .unwrap();
    store
        .insert_cardholder(&scope, write(&cardholder(&scope, None)), Timestamp::now())
        .await
        .unwrap();

    let mut next = c.clone();
    next.identity.first_name = "Joshua".into();
    next.version = 2;
    store
        .update_cardholder(&scope, write(&next), 1, Timestamp::now())
        .await
        .unwrap();
    let Err(PostError::Store(err)) = store.update_cardholder(&scope, write(&next), 1, Timestamp::now()).await else {
        panic!("stale version must conflict")
    };
    assert!(
        err.is_conflict_on("cardholders_version", "cardholders_version"),
        "{err:?}"
    );
    assert_eq!(
        store.get_cardholder(&scope, &c.id).await.unwrap().identity.first_name,
        "Joshua"
    );
}

async fn a_failed_write_stores_neither_effect_nor_response(backend: Backend) {
    let Some((store, _db)) = store(backend).await else {
        return;
    };
    let (_, scope) = tenant(&store).await;
    let now = Timestamp::now();
    let Claim::Acquired { token } = store.claim(&scope, "k", "fp", now).await.unwrap() else {
        panic!()
    };
    let c = cardholder(&scope, Some("taken"));
    store.insert_cardholder(&scope, write(&c), now).await.unwrap();
    let dup = cardholder(&scope, Some("taken"));
    let event = Event::new(
        &scope.tenant_id,
        scope.environment,
        EventType::CardholderCreated,
        dup.id.as_str(),
        serde_json::json!({}),
        now,
    );
    let response = IdempotentResponse {
        key: "k".into(),
        claim_token: token,
        status: 200,
        body: "{}".into(),
    };
    let w = CardholderWrite {
        cardholder: &dup,
        kyc_check: None,
        card_orders: &[],
        card_issues: &[],
        events: std::slice::from_ref(&event),
        response: Some(&EffectRecords {
            replay: Some(response),
            audit: None,
        }),
        review: None,
    };
    assert!(store.insert_cardholder(&scope, w, now).await.is_err());
    assert_eq!(
        store.claim(&scope, "k", "fp", now).await.unwrap(),
        Claim::InFlight {
            fingerprint: "fp".into()
        }
    );
    assert!(matches!(
        store.get_event(&scope, &event.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn lists_page_newest_first_in_both_directions(backend: Backend) {
    let Some((store, _db)) = store(backend).await else {
        return;
    };
    let (_, scope) = tenant(&store).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        let c = cardholder(&scope, None);
        ids.push(c.id.clone());
        store
            .insert_cardholder(&scope, write(&c), Timestamp::now())
            .await
            .unwrap();
    }
    ids.reverse(); // newest first
    let first = store
        .list_cardholders(
            &scope,
            &PageRequest {
                limit: 3,
                cursor: Cursor::Newest,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.total, 7);
    assert!(first.has_more);
    assert_eq!(first.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[..3]);
    let last_id = first.items[2].id.to_string();
    let second = store
        .list_cardholders(
            &scope,
            &PageRequest {
                limit: 3,
                cursor: Cursor::After(last_id),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[3..6]);
    let back = store
        .list_cardholders(
            &scope,
            &PageRequest {
                limit: 3,
                cursor: Cursor::Before(second.items[0].id.to_string()),
            },
        )
        .await
        .unwrap();
    assert_eq!(back.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[..3]);
    assert!(!back.has_more);
}

async fn events_are_written_with_their_change_and_listed(backend: Backend) {
    let Some((store, _db)) = store(backend).await else {
        return;
    };
    let (_, scope) = tenant(&store).await;
    let c = cardholder(&scope, None);
    let now = Timestamp::now();
    let event = Event::new(
        &scope.tenant_id,
        scope.environment,
        EventType::CardholderCreated,
        c.id.as_str(),
        serde_json::json!({"id": c.id}),
        now,
    );
    let w = CardholderWrite {
        cardholder: &c,
        kyc_check: None,
        card_orders: &[],
        card_issues: &[],
        events: std::slice::from_ref(&event),
        response: None,
        review: None,
    };
    store.insert_cardholder(&scope, w, now).await.unwrap();
    assert_eq!(store.get_event(&scope, &event.id).await.unwrap(), event);
    let page = store
        .list_events(
            &scope,
            None,
            &PageRequest {
                limit: 10,
                cursor: Cursor::Newest,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items, vec![event.clone()]);
    let first = PageRequest::newest(10);
    let of_type = store.list_events(&scope, Some(event.event_type), &first).await.unwrap();
    assert_eq!(of_type.items, vec![event.clone()]);
    let other = store
        .list_events(&scope, Some(EventType::WebhookEndpointDeleted), &first)
        .await
        .unwrap();
    assert!(other.items.is_empty());
}

both_backends!(
    api_keys_are_found_listed_and_revoked_once,
    idempotency_claims_follow_the_protocol,
    cardholders_are_scoped_versioned_and_unique_by_custodian_uid,
    a_failed_write_stores_neither_effect_nor_response,
    lists_page_newest_first_in_both_directions,
    events_are_written_with_their_change_and_listed,
);
