//! Ledger properties on both backends: a model-based property test of adjustments, and PAN
//! generation at scale.

use std::collections::HashSet;

use cardplane_domain::card::{Card, CardState};
use cardplane_domain::cardholder::{Address, Cardholder, DateOfBirth, DocumentType, Email, Identity, PhoneNumber};
use cardplane_domain::controls::SpendLimit;
use cardplane_domain::ids::{CardId, CardholderId, ProgramId, TenantId};
use cardplane_domain::kyc::{KycResult, KycState};
use cardplane_domain::ledger::{Account, AccountKind, Journal, JournalKind};
use cardplane_domain::money::{Currency, Money};
use cardplane_domain::pan::{Pan, luhn_valid};
use cardplane_domain::program::{FormFactor, FundingModel, Network, Program, ProgramStatus};
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::cardholders::{CardholderStore, CardholderWrite};
use cardplane_store::cards::{CardIssue, CardStore, Posted};
use cardplane_store::ledger::{LedgerStore, PostError};
use cardplane_store::programs::ProgramStore;
use cardplane_store::tenants::TenantStore;
use cardplane_store::{Db, DbOptions, Scope, SqlStore};
use cardplane_testkit::{Backend, TestDb};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

const CARDS: usize = 4;

async fn open(backend: Backend) -> Option<(SqlStore, TestDb)> {
    let test_db = TestDb::create(backend).await?;
    let mut options = DbOptions::new(test_db.url.clone());
    options.max_connections = 4;
    let db = Db::connect(&options).await.expect("connect");
    db.migrate().await.expect("migrate");
    Some((SqlStore::new(db), test_db))
}

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

struct Books {
    scope: Scope,
    program: Program,
    funding: Account,
    external: Account,
    cards: Vec<Account>,
}

async fn books(store: &SqlStore, bin: &str, card_accounts: usize) -> Books {
    let now = Timestamp::now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: "T".into(),
        api_version: ApiVersion::current(),
        rate_limit_per_second: None,
        created_at: now,
    };
    store.create_tenant(&tenant, &[], &[]).await.unwrap();
    let scope = Scope {
        tenant_id: tenant.id.clone(),
        environment: Environment::Sandbox,
    };
    let program = Program {
        id: ProgramId::generate(),
        tenant_id: tenant.id.clone(),
        environment: Environment::Sandbox,
        program_id: "P".into(),
        name: "P".into(),
        network: Network::Visa,
        bin: bin.into(),
        currency: usd(),
        card_lifetime_years: 3,
        form_factors: vec![FormFactor::Virtual],
        design_keys: vec!["blue".into()],
        funding_model: FundingModel::StoredBalance,
        spend_controls: Vec::<SpendLimit>::new(),
        minimum_cardholder_age: 18,
        kyc_required: true,
        merchant_rules: Default::default(),
        risk_alert_threshold: 800,
        custodian: None,
        status: ProgramStatus::Active,
        created_at: now,
        updated_at: now,
    };
    let open = |kind| Account::open(&tenant.id, Environment::Sandbox, &program.id, kind, usd(), now);
    let funding = open(AccountKind::ProgramFunding);
    let external = open(AccountKind::ProgramExternal);
    store
        .insert_program(&scope, &program, &[funding.clone(), external.clone()], &[], None, now)
        .await
        .unwrap();
    let cards: Vec<Account> = (0..card_accounts).map(|_| open(AccountKind::CardBalance)).collect();
    store.open_accounts(&cards).await.unwrap();
    Books {
        scope,
        program,
        funding,
        external,
        cards,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Fund(i64),
    Credit(usize, i64),
    Debit(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..20_000).prop_map(Op::Fund),
        (0..CARDS, 1i64..8_000).prop_map(|(c, a)| Op::Credit(c, a)),
        (0..CARDS, 1i64..8_000).prop_map(|(c, a)| Op::Debit(c, a)),
    ]
}

/// The in-memory model: what every balance must be.
#[derive(Default)]
struct Model {
    funding: i64,
    external: i64,
    cards: [i64; CARDS],
}

async fn post(store: &SqlStore, books: &Books, from: &Account, to: &Account, amount: i64) -> Result<(), PostError> {
    let journal = Journal::transfer(
        &books.scope.tenant_id,
        Environment::Sandbox,
        JournalKind::BalanceAdjustment,
        "model step".into(),
        &from.id,
        &to.id,
        Money::new(amount, usd()),
        Timestamp::now(),
    )
    .unwrap();
    store
        .post_adjustment(&books.scope, &journal, None, &|_| Posted::default(), Timestamp::now())
        .await
        .map(|_| ())
}

async fn balance(store: &SqlStore, books: &Books, account: &Account) -> i64 {
    store.get_account(&books.scope, &account.id).await.unwrap().balance
}

async fn run_model(store: &SqlStore, ops: &[Op]) -> Result<(), TestCaseError> {
    // Each case gets its own tenant and program in the shared database, so its own BIN.
    static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let bin = format!("4{:07}", CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let books = books(store, &bin, CARDS).await;
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let (from, to, amount, allowed) = match *op {
            Op::Fund(a) => (&books.external, &books.funding, a, true),
            Op::Credit(c, a) => (&books.funding, &books.cards[c], a, model.funding >= a),
            Op::Debit(c, a) => (&books.cards[c], &books.funding, a, model.cards[c] >= a),
        };
        let result = post(store, &books, from, to, amount).await;
        match (&result, allowed) {
            (Ok(()), true) => match *op {
                Op::Fund(a) => {
                    model.external -= a;
                    model.funding += a;
                }
                Op::Credit(c, a) => {
                    model.funding -= a;
                    model.cards[c] += a;
                }
                Op::Debit(c, a) => {
                    model.cards[c] -= a;
                    model.funding += a;
                }
            },
            (Err(PostError::InsufficientFunds(id)), false) => prop_assert_eq!(id, &from.id),
            (other, _) => prop_assert!(false, "step {step} {op:?}: got {other:?}, model allowed: {allowed}"),
        }
        prop_assert_eq!(
            balance(store, &books, &books.funding).await,
            model.funding,
            "funding after step {}",
            step
        );
        prop_assert_eq!(
            balance(store, &books, &books.external).await,
            model.external,
            "external after step {}",
            step
        );
        for (i, card) in books.cards.iter().enumerate() {
            let b = balance(store, &books, card).await;
            prop_assert_eq!(b, model.cards[i], "card {} after step {}", i, step);
            prop_assert!(b >= 0, "no balance below its floor");
        }
        prop_assert_eq!(
            model.funding + model.external + model.cards.iter().sum::<i64>(),
            0,
            "money is conserved"
        );
    }
    let report = store.verify_ledger().await.unwrap();
    prop_assert!(report.problems.is_empty(), "ledger verify: {:?}", report.problems);
    Ok(())
}

fn model_based_adjustments(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some((store, _db)) = rt.block_on(open(backend)) else {
        return;
    };
    let config = Config {
        cases: 16,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/ledger_model.txt",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        rt.block_on(run_model(&store, &ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn model_based_adjustments_sqlite() {
    model_based_adjustments(Backend::Sqlite);
}

#[test]
fn model_based_adjustments_postgres() {
    model_based_adjustments(Backend::Postgres);
}

fn cardholder(scope: &Scope) -> Cardholder {
    let now = Timestamp::now();
    Cardholder {
        id: CardholderId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: scope.environment,
        custodian_uid: None,
        email: Email::parse(Some("a@b.co")).unwrap(),
        phone: PhoneNumber::parse(Some("+16508881111")).unwrap(),
        identity: Identity {
            first_name: "A".into(),
            last_name: "B".into(),
            date_of_birth: DateOfBirth::from_date(time::macros::date!(1980 - 01 - 01)),
            address: Address {
                street_one: "1 Main St".into(),
                street_two: None,
                locality: "X".into(),
                region: "NY".into(),
                postal_code: "10001".into(),
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

const PAN_CARDS: usize = 100_000;
const PAN_BATCH: usize = 2_000;

/// 100,000 cards, issued in batches with the same PAN generator and collision retry as the API:
/// every PAN passes Luhn, starts with the program's BIN, and no two are equal.
async fn a_hundred_thousand_cards_get_unique_luhn_valid_pans_in_their_bin(backend: Backend) {
    let Some((store, _db)) = open(backend).await else {
        return;
    };
    let books = books(&store, "438857", 0).await;
    let holder = cardholder(&books.scope);
    let w = CardholderWrite {
        cardholder: &holder,
        kyc_check: None,
        card_orders: &[],
        card_issues: &[],
        events: &[],
        response: None,
        review: None,
    };
    store
        .insert_cardholder(&books.scope, w, Timestamp::now())
        .await
        .unwrap();
    let key = b"pan lookup key";
    let mut pans: Vec<String> = Vec::with_capacity(PAN_CARDS);
    let mut retries = 0;
    while pans.len() < PAN_CARDS {
        let now = Timestamp::now();
        let batch: Vec<(Pan, CardIssue)> = (0..PAN_BATCH)
            .map(|_| {
                let pan = Pan::generate(&books.program.bin, &mut rand::rng());
                let account = Account::open(
                    &books.scope.tenant_id,
                    Environment::Sandbox,
                    &books.program.id,
                    AccountKind::CardBalance,
                    usd(),
                    now,
                );
                let card = Card {
                    id: CardId::generate(),
                    tenant_id: books.scope.tenant_id.clone(),
                    environment: Environment::Sandbox,
                    cardholder_id: holder.id.clone(),
                    program: books.program.id.clone(),
                    program_ref: "P".into(),
                    network: Network::Visa,
                    currency: usd(),
                    account_id: account.id.clone(),
                    form_factor: FormFactor::Virtual,
                    design_key: "blue".into(),
                    state: CardState::Active,
                    shipping_status: None,
                    bin: books.program.bin.clone(),
                    last4: pan.last4().into(),
                    exp_month: 11,
                    exp_year: 2029,
                    // The vault is exercised by the API tests; here the PAN itself is the subject.
                    pan_sealed: "sealed".into(),
                    pan_hash: pan.lookup_hash(key),
                    replaces: None,
                    replacement_reason: None,
                    replaced_by: None,
                    created_at: now,
                    updated_at: now,
                    version: 1,
                };
                (
                    pan,
                    CardIssue {
                        card,
                        new_account: Some(account),
                        initial_load: None,
                    },
                )
            })
            .collect();
        let issues: Vec<CardIssue> = batch.iter().map(|(_, i)| i.clone()).collect();
        match store.write_cards(&books.scope, &issues, &[], &[], None, now).await {
            Ok(()) => pans.extend(batch.into_iter().map(|(p, _)| p.expose().to_owned())),
            Err(PostError::Store(e)) if e.is_conflict_on("cards_pan_hash", "pan_hash") => retries += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    let distinct: HashSet<&String> = pans.iter().collect();
    assert_eq!(distinct.len(), PAN_CARDS, "unique");
    assert!(
        pans.iter()
            .all(|p| p.len() == 16 && p.starts_with("438857") && luhn_valid(p))
    );
    let newest = cardplane_domain::page::PageRequest {
        limit: 1,
        cursor: cardplane_domain::page::Cursor::Newest,
    };
    let page = store.list_cards(&books.scope, None, &newest).await.unwrap();
    assert_eq!(page.total, i64::try_from(PAN_CARDS).unwrap());
    eprintln!("{PAN_CARDS} PANs, {retries} batch retries after a collision");
}

/// The store's own check of the balance limit, under its row lock, behind the check callers make
/// before writing (two requests that each pass the callers' check must not push a balance past
/// the limit together), and for balances stored before the limit existed (`i64::MAX`, which
/// SQLite turned into a float on the next addition): a conflict on the limit, never a storage
/// failure, and nothing written.
async fn the_store_refuses_postings_beyond_the_balance_limit(backend: Backend) {
    use cardplane_domain::money::BALANCE_MAX_MINOR;
    use cardplane_store::StoreError;
    use cardplane_store::ledger::BALANCE_LIMIT_CONSTRAINT;
    use sqlx::Connection;

    let Some((store, db)) = open(backend).await else { return };
    let b = books(&store, "41111111", 1).await;
    let limit = |r: Result<(), PostError>| match r {
        Err(PostError::Store(e @ StoreError::Conflict { .. })) => {
            assert!(e.is_balance_limit(), "{e:?}");
            assert!(e.is_conflict_on(BALANCE_LIMIT_CONSTRAINT, BALANCE_LIMIT_CONSTRAINT));
        }
        other => panic!("expected the balance limit, got {other:?}"),
    };
    post(&store, &b, &b.external, &b.funding, BALANCE_MAX_MINOR)
        .await
        .unwrap();
    limit(post(&store, &b, &b.external, &b.funding, 1).await);
    assert_eq!(balance(&store, &b, &b.funding).await, BALANCE_MAX_MINOR);
    assert_eq!(balance(&store, &b, &b.external).await, -BALANCE_MAX_MINOR);
    // Below the limit again, money moves as before; the floor still answers InsufficientFunds.
    post(&store, &b, &b.funding, &b.cards[0], 7).await.unwrap();
    assert!(matches!(
        post(&store, &b, &b.cards[0], &b.external, 8).await,
        Err(PostError::InsufficientFunds(id)) if id == b.cards[0].id
    ));
    post(&store, &b, &b.cards[0], &b.funding, 7).await.unwrap();
    limit(post(&store, &b, &b.external, &b.funding, 1).await);

    // A second program whose books reached i64::MAX before the limit existed.
    let old = books(&store, "42222222", 0).await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    for (account, balance) in [(&old.funding, i64::MAX), (&old.external, -i64::MAX)] {
        sqlx::query("UPDATE accounts SET balance = $1 WHERE id = $2")
            .bind(balance)
            .bind(account.id.as_str())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    for amount in [1, 5, BALANCE_MAX_MINOR] {
        limit(post(&store, &old, &old.external, &old.funding, amount).await);
    }
    assert_eq!(
        balance(&store, &old, &old.funding).await,
        i64::MAX,
        "nothing was written"
    );
    let report = store.verify_ledger().await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(old.funding.id.as_str()) && p.contains("limit")),
        "ledger verify reports balances beyond the limit: {:?}",
        report.problems
    );
}

cardplane_testkit::both_backends!(
    a_hundred_thousand_cards_get_unique_luhn_valid_pans_in_their_bin,
    the_store_refuses_postings_beyond_the_balance_limit,
);
