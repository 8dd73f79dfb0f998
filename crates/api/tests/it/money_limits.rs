//! Amounts at and around the limits (`AMOUNT_MAX_MINOR` = `BALANCE_MAX_MINOR` = 10^15 minor units,
//! and `i64::MAX`) through every money endpoint, on both backends: never a 5xx, each refusal in
//! the envelope with its own code, every balance within ±10^15, and `ledger verify` clean.
//!
//! The API's own money endpoints (program funding, card issue with an initial load, card orders
//! placed with a cardholder, balance adjustments) are checked against an exact in-memory model.
//! The authorization engine's endpoints (`/simulate/*`, `/network/*`) are driven in a second test
//! that checks only the invariants, re-reading the balances after each of their steps.

use cardplane_domain::api_key::Permission;
use cardplane_domain::money::{AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR};
use cardplane_testkit::Backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::net::NetMessage;
use crate::support::{Creds, TestApp, assert_error, seed_cardholder};

const MAX: i64 = BALANCE_MAX_MINOR;
const CARDS_MAX: usize = 3;

/// Amounts that matter at the edges, ordinary ones, and a band around the maximum.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => prop::sample::select(vec![
            1,
            5,
            MAX / 2,
            MAX / 2 + 1,
            MAX - 1,
            MAX,
            MAX + 1,
            2 * MAX,
            1 << 53,
            (1 << 53) + 1,
            i64::MAX / 2,
            i64::MAX - 1,
            i64::MAX,
        ]),
        2 => (MAX - 1_000)..=(MAX + 1_000),
        1 => 1i64..10_000,
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Fund(i64),
    Issue(i64),
    Order(i64),
    Credit(usize, i64),
    Debit(usize, i64),
    // The authorization engine's endpoints.
    SimAuthorize(usize, i64, bool),
    SimClear(i64),
    SimRefund(usize, i64),
    NetRefund(usize, i64),
    NetForcePost(usize, i64),
}

fn api_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => amount().prop_map(Op::Fund),
        2 => amount().prop_map(Op::Issue),
        1 => amount().prop_map(Op::Order),
        2 => (0..CARDS_MAX, amount()).prop_map(|(c, a)| Op::Credit(c, a)),
        2 => (0..CARDS_MAX, amount()).prop_map(|(c, a)| Op::Debit(c, a)),
    ]
}

fn engine_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => api_op(),
        1 => (0..CARDS_MAX, amount(), any::<bool>()).prop_map(|(c, a, p)| Op::SimAuthorize(c, a, p)),
        1 => amount().prop_map(Op::SimClear),
        1 => (0..CARDS_MAX, amount()).prop_map(|(c, a)| Op::SimRefund(c, a)),
        1 => (0..CARDS_MAX, amount()).prop_map(|(c, a)| Op::NetRefund(c, a)),
        1 => (0..CARDS_MAX, amount()).prop_map(|(c, a)| Op::NetForcePost(c, a)),
    ]
}

#[derive(Debug, Clone)]
struct Card {
    id: String,
    pan: String,
    expiration: String,
    balance: i64,
    held: i64,
}

/// What the books must say.
#[derive(Debug, Default)]
struct Model {
    funding: i64,
    external: i64,
    cards: Vec<Card>,
}

/// What the model predicts for one request.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    Refused(StatusCode, &'static str, Option<&'static str>),
}

fn too_large(param: &'static str) -> Expect {
    Expect::Refused(StatusCode::BAD_REQUEST, "amount_too_large", Some(param))
}

fn conflict(code: &'static str) -> Expect {
    Expect::Refused(StatusCode::CONFLICT, code, None)
}

fn within(balance: i64, delta: i64) -> bool {
    balance.checked_add(delta).is_some_and(|b| (-MAX..=MAX).contains(&b))
}

struct World<'a> {
    app: &'a TestApp,
    key: Creds,
    network: Creds,
    program: String,
    holder: String,
    /// Authorizations placed by `SimAuthorize`, newest last.
    authorizations: Vec<String>,
}

impl World<'_> {
    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.app.post(&self.key, path, body).await
    }

    /// Re-reads every balance the engine may have moved.
    async fn resync(&self, m: &mut Model) {
        m.funding = self.funding().await;
        for card in &mut m.cards {
            let (status, b) = self.app.get(&self.key, &format!("/cards/{}/balance", card.id)).await;
            assert_eq!(status, StatusCode::OK, "{b}");
            card.balance = b["balance"]["balance"].as_i64().unwrap();
            card.held = b["balance"]["held"].as_i64().unwrap();
        }
    }

    async fn funding(&self) -> i64 {
        let (status, f) = self
            .app
            .get(&self.key, &format!("/programs/{}/funding", self.program))
            .await;
        assert_eq!(status, StatusCode::OK, "{f}");
        f["funding"]["balance"].as_i64().unwrap()
    }

    async fn add_card(&self, m: &mut Model, id: &str, balance: i64) {
        let revealed = self.app.reveal(&self.key, id).await;
        m.cards.push(Card {
            id: revealed.id,
            pan: revealed.pan,
            expiration: revealed.expiration,
            balance,
            held: 0,
        });
    }
}

/// Sends one step; returns the answer and, for the API's own endpoints, what the model predicts
/// (applying it to the model when the request should succeed).
async fn step(w: &mut World<'_>, m: &mut Model, op: &Op) -> (StatusCode, Value, Option<Expect>) {
    let card = |i: usize| m.cards.get(i).cloned();
    match *op {
        Op::Fund(a) => {
            let (status, body) = w
                .post(
                    &format!("/sandbox/programs/{}/fund", w.program),
                    &json!({"amount": a, "currency": "USD"}),
                )
                .await;
            let expect = if a > AMOUNT_MAX_MINOR {
                too_large("amount")
            } else if !within(m.funding, a) || !within(m.external, -a) {
                conflict("balance_limit_exceeded")
            } else {
                m.funding += a;
                m.external -= a;
                Expect::Ok
            };
            (status, body, Some(expect))
        }
        Op::Issue(a) if m.cards.len() < CARDS_MAX => {
            let (status, body) = w
                .post(
                    &format!("/cardholders/{}/cards", w.holder),
                    &json!({"program_id": w.program, "initial_load": {"currency": "USD", "amount": a}}),
                )
                .await;
            let expect = if a > AMOUNT_MAX_MINOR {
                too_large("initial_load.amount")
            } else if m.funding < a {
                conflict("insufficient_program_funds")
            } else {
                m.funding -= a;
                w.add_card(m, body["card"]["id"].as_str().unwrap_or_default(), a).await;
                Expect::Ok
            };
            (status, body, Some(expect))
        }
        Op::Order(a) if m.cards.len() < CARDS_MAX => {
            let mut holder = seed_cardholder("490940000", None);
            holder["card"] = json!({"program_id": w.program, "initial_load": {"currency": "USD", "amount": a}});
            let (status, body) = w.post("/cardholders", &holder).await;
            let expect = if a > AMOUNT_MAX_MINOR {
                too_large("card.initial_load.amount")
            } else {
                // The cardholder is created either way; the order fails when the program cannot
                // pay for the load.
                if m.funding >= a {
                    m.funding -= a;
                    let id = body["cardholder"]["cards"][0]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    w.add_card(m, &id, a).await;
                }
                Expect::Ok
            };
            (status, body, Some(expect))
        }
        Op::Issue(_) | Op::Order(_) => (StatusCode::OK, Value::Null, None),
        Op::Credit(i, a) | Op::Debit(i, a) => {
            let Some(c) = card(i) else {
                return (StatusCode::OK, Value::Null, None);
            };
            let credit = matches!(op, Op::Credit(..));
            let kind = if credit { "credit" } else { "debit" };
            let (status, body) = w
                .post(
                    &format!("/cards/{}/balance_adjustments", c.id),
                    &json!({"type": kind, "amount": a, "currency": "USD"}),
                )
                .await;
            let (card_delta, funding_delta) = if credit { (a, -a) } else { (-a, a) };
            let expect = if a > AMOUNT_MAX_MINOR {
                too_large("amount")
            } else if !within(c.balance, card_delta) || !within(m.funding, funding_delta) {
                conflict("balance_limit_exceeded")
            } else if credit && m.funding < a {
                conflict("insufficient_program_funds")
            } else if !credit && c.balance - c.held < a {
                conflict("insufficient_funds")
            } else {
                m.funding += funding_delta;
                m.cards[i].balance += card_delta;
                Expect::Ok
            };
            (status, body, Some(expect))
        }
        Op::SimAuthorize(i, a, partial) => {
            let Some(c) = card(i) else {
                return (StatusCode::OK, Value::Null, None);
            };
            let (status, body) = w
                .post(
                    "/simulate/authorizations",
                    &json!({"card_id": c.id, "amount": a, "partial_approval_supported": partial}),
                )
                .await;
            if let Some(id) = body["authorization_id"].as_str() {
                w.authorizations.push(id.to_owned());
            }
            (status, body, None)
        }
        Op::SimClear(a) => {
            let Some(id) = w.authorizations.pop() else {
                return (StatusCode::OK, Value::Null, None);
            };
            let (status, body) = w
                .post("/simulate/clearings", &json!({"authorization_id": id, "amount": a}))
                .await;
            (status, body, None)
        }
        Op::SimRefund(i, a) => {
            let Some(c) = card(i) else {
                return (StatusCode::OK, Value::Null, None);
            };
            let (status, body) = w
                .post("/simulate/refunds", &json!({"card_id": c.id, "amount": a}))
                .await;
            (status, body, None)
        }
        Op::NetRefund(i, a) | Op::NetForcePost(i, a) => {
            let Some(c) = card(i) else {
                return (StatusCode::OK, Value::Null, None);
            };
            // An unlinked refund or a force post (a clearing without an authorization).
            let card = (&c.pan, &c.expiration);
            let message = if matches!(op, Op::NetRefund(..)) {
                NetMessage::refund(&card, a)
            } else {
                NetMessage::force_post(&card, a)
            };
            let (status, body) = w.app.post(&w.network, message.path(), &message.json()).await;
            (status, body, None)
        }
    }
}

async fn run(app: &TestApp, ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Each case has its own tenant and program (BINs are unique per environment).
    static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let bin = format!("4{:07}", CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let tenant = app.tenant_with(&[Permission::Reveal]).await;
    app.program(&tenant.sandbox, "GPR", &bin, 0).await;
    let holder = app
        .cardholder(&tenant.sandbox, &seed_cardholder("490940000", None))
        .await;
    let mut w = World {
        app,
        key: tenant.sandbox.clone(),
        network: app.network_key().await,
        program: "GPR".into(),
        holder: holder["id"].as_str().unwrap().to_owned(),
        authorizations: Vec::new(),
    };
    // Start with money in the program and two loaded cards, so every step has something to move.
    let mut m = Model::default();
    for op in [Op::Fund(1_000_000), Op::Issue(100_000), Op::Issue(100_000)] {
        let (status, body, expect) = step(&mut w, &mut m, &op).await;
        assert_eq!((status, expect), (StatusCode::OK, Some(Expect::Ok)), "{body}");
    }
    for (n, op) in ops.iter().enumerate() {
        let (status, body, expect) = step(&mut w, &mut m, op).await;
        prop_assert!(!status.is_server_error(), "step {n} {op:?} answered {status}: {body}");
        if status.is_client_error() {
            prop_assert!(
                body["error"]["code"].is_string() && body["error"]["type"].is_string(),
                "step {n} {op:?}: not the envelope: {body}"
            );
        }
        match expect {
            Some(Expect::Ok) => prop_assert_eq!(status, StatusCode::OK, "step {} {:?}: {}", n, op, body),
            Some(Expect::Refused(want, code, param)) => {
                prop_assert_eq!(status, want, "step {} {:?}: {}", n, op, body);
                prop_assert_eq!(&body["error"]["code"], code, "step {} {:?}", n, op);
                if let Some(param) = param {
                    prop_assert_eq!(&body["error"]["param"], param, "step {} {:?}", n, op);
                }
            }
            // The engine's steps: re-read what they moved.
            None => w.resync(&mut m).await,
        }
        prop_assert_eq!(w.funding().await, m.funding, "funding after step {} {:?}", n, op);
        prop_assert!(
            (0..=MAX).contains(&m.funding),
            "funding within the limit: {}",
            m.funding
        );
        for c in &m.cards {
            let (_, b) = app.get(&w.key, &format!("/cards/{}/balance", c.id)).await;
            prop_assert_eq!(
                b["balance"]["balance"].as_i64(),
                Some(c.balance),
                "card after step {} {:?}",
                n,
                op
            );
            prop_assert!(
                (-MAX..=MAX).contains(&c.balance),
                "card within the limit: {}",
                c.balance
            );
        }
    }
    let report = app.state.ledger.verify_ledger().await.unwrap();
    prop_assert!(report.problems.is_empty(), "ledger verify: {:?}", report.problems);
    Ok(())
}

fn drive(backend: Backend, ops: BoxedStrategy<Vec<Op>>, cases: u32, regressions: &'static str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(app) = rt.block_on(TestApp::spawn(backend)) else {
        return;
    };
    let config = Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops, |ops| rt.block_on(run(&app, ops)));
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn api_endpoints(backend: Backend) {
    drive(
        backend,
        proptest::collection::vec(api_op(), 1..24).boxed(),
        16,
        "proptest-regressions/money_limits_api.txt",
    );
}

fn engine_endpoints(backend: Backend) {
    drive(
        backend,
        proptest::collection::vec(engine_op(), 1..24).boxed(),
        16,
        "proptest-regressions/money_limits_engine.txt",
    );
}

#[test]
fn amounts_near_the_limits_through_the_api_money_endpoints_sqlite() {
    api_endpoints(Backend::Sqlite);
}

#[test]
fn amounts_near_the_limits_through_the_api_money_endpoints_postgres() {
    api_endpoints(Backend::Postgres);
}

#[test]
fn amounts_near_the_limits_through_the_simulator_and_network_sqlite() {
    engine_endpoints(Backend::Sqlite);
}

#[test]
fn amounts_near_the_limits_through_the_simulator_and_network_postgres() {
    engine_endpoints(Backend::Postgres);
}

/// The integrator's report, step by step: funding with `i64::MAX` is refused at parse time;
/// funding up to the maximum works, one more minor unit is a 409, and the program stays usable.
async fn funding_beyond_the_maximum_is_refused_and_the_program_stays_usable(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 0).await;
    let fund = |amount: Value| {
        let app = &app;
        let key = t.sandbox.clone();
        async move {
            app.post(
                &key,
                "/sandbox/programs/GPR/fund",
                &json!({"amount": amount, "currency": "USD"}),
            )
            .await
        }
    };
    for amount in [json!(i64::MAX), json!(MAX + 1)] {
        let (status, err) = fund(amount).await;
        assert_error(
            status,
            &err,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "amount_too_large",
        );
        assert_eq!(err["error"]["param"], "amount");
    }
    // Beyond i64 altogether: a 400 naming the field, not a 5xx.
    let (status, err) = fund(json!(u64::MAX)).await;
    assert_eq!(
        (status, &err["error"]["param"]),
        (StatusCode::BAD_REQUEST, &json!("amount")),
        "{err}"
    );

    let (status, funded) = fund(json!(MAX)).await;
    assert_eq!(status, StatusCode::OK, "{funded}");
    assert_eq!(funded["funding"]["balance"], MAX);
    for amount in [1, 5] {
        let (status, err) = fund(json!(amount)).await;
        assert_error(
            status,
            &err,
            StatusCode::CONFLICT,
            "conflict_error",
            "balance_limit_exceeded",
        );
    }
    // Money still moves inside the program: a card is loaded from the full funding account and
    // pays some back. Funding more stays refused: the program's external account (the outside
    // world's side of every funding) is at -10^15, so a program takes in at most 10^15 in all.
    let card = app.card_with_balance(&t.sandbox, "GPR", 1_000).await;
    let path = format!("/cards/{}/balance_adjustments", card["id"].as_str().unwrap());
    let (status, debit) = app
        .post(
            &t.sandbox,
            &path,
            &json!({"type": "debit", "amount": 400, "currency": "USD"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{debit}");
    assert_eq!(debit["balance_adjustment"]["balance"]["balance"], 600);
    let (status, err) = fund(json!(1)).await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "balance_limit_exceeded",
    );
    let (status, err) = app
        .post(
            &t.sandbox,
            &path,
            &json!({"type": "credit", "amount": MAX + 1, "currency": "USD"}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "amount_too_large",
    );
    assert_eq!(err["error"]["param"], "amount");
    let (status, funding) = app.get(&t.sandbox, "/programs/GPR/funding").await;
    assert_eq!(
        (status, &funding["funding"]["balance"]),
        (StatusCode::OK, &json!(MAX - 600))
    );
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Amounts in other requests are capped the same way: spend limits and a custodian's stand-in.
async fn limits_over_the_maximum_amount_are_refused_when_parsed(app: TestApp) {
    let t = app.tenant().await;
    let (status, err) = app
        .post(
            &t.sandbox,
            "/programs",
            &json!({"program_id": "P", "name": "P", "network": "VISA", "bin": "422222", "currency": "USD",
                    "design_keys": ["a"], "spend_controls": [{"amount_limit": MAX + 1, "window": "day"}]}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "amount_too_large",
    );
    assert_eq!(err["error"]["param"], "spend_controls[0].amount_limit");
}

app_tests!(
    funding_beyond_the_maximum_is_refused_and_the_program_stays_usable,
    limits_over_the_maximum_amount_are_refused_when_parsed
);
