//! Model-based property test of the whole authorization lifecycle over real HTTP: random
//! authorizations (full and partial), incremental authorizations, clearings (partial, full, over),
//! reversals (partial, full), refunds, force posts and hold expiry with an injected clock, checked
//! after every step against a simple in-memory model.

use cardplane_api::workflows::admin::create_network_credential;
use cardplane_domain::api_key::Permission;
use cardplane_domain::{Environment, Timestamp};
use cardplane_testkit::Backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::Value;

use crate::net::{NetCard, NetMessage, merchant, ntid};
use crate::support::{Creds, TestApp};

const CARDS: usize = 2;
const LOAD: i64 = 5_000;

#[derive(Debug, Clone)]
enum Op {
    Authorize {
        card: usize,
        amount: i64,
        partial: bool,
        mcc: &'static str,
    },
    Incremental {
        pick: usize,
        amount: i64,
    },
    Clear {
        pick: usize,
        percent: i64,
    },
    Reverse {
        pick: usize,
        percent: Option<i64>,
    },
    Refund {
        card: usize,
        amount: i64,
    },
    ForcePost {
        card: usize,
        amount: i64,
    },
    Expire {
        days: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CARDS, 1i64..3_000, any::<bool>(), prop::sample::select(vec!["5411", "7011", "5812"]))
            .prop_map(|(card, amount, partial, mcc)| Op::Authorize { card, amount, partial, mcc }),
        1 => (0usize..8, 1i64..1_000).prop_map(|(pick, amount)| Op::Incremental { pick, amount }),
        3 => (0usize..8, 1i64..130).prop_map(|(pick, percent)| Op::Clear { pick, percent }),
        2 => (0usize..8, prop::option::of(1i64..100)).prop_map(|(pick, percent)| Op::Reverse { pick, percent }),
        1 => (0..CARDS, 1i64..2_000).prop_map(|(card, amount)| Op::Refund { card, amount }),
        1 => (0..CARDS, 1i64..2_000).prop_map(|(card, amount)| Op::ForcePost { card, amount }),
        1 => prop::sample::select(vec![1i64, 8, 32]).prop_map(|days| Op::Expire { days }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Done,
}

#[derive(Debug, Clone)]
struct Auth {
    ntid: String,
    card: usize,
    authorized: i64,
    held: i64,
    state: State,
    ttl_days: i64,
}

#[derive(Debug, Default)]
struct Model {
    balance: [i64; CARDS],
    held: [i64; CARDS],
    auths: Vec<Auth>,
}

impl Model {
    fn spendable(&self, card: usize) -> i64 {
        self.balance[card] - self.held[card]
    }

    /// The card pays what it can; the program's losses account covers the rest.
    fn purchase(&mut self, card: usize, amount: i64) {
        self.balance[card] -= amount.min(self.spendable(card).max(0));
    }
}

struct World {
    app: TestApp,
    network: Creds,
    cards: Vec<NetCard>,
    tenant: Creds,
    expired_until: Timestamp,
}

impl World {
    async fn send(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.app.post(&self.network, path, &body).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{path} {body} -> {answer}");
        answer
    }

    fn auth(&self, card: usize, amount: i64, partial: bool, mcc: &str) -> NetMessage {
        NetMessage::authorization(&self.cards[card], amount)
            .partial(partial)
            .merchant(merchant("m", "M", mcc, "X"))
    }
}

async fn step(w: &mut World, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Authorize {
            card,
            amount,
            partial,
            mcc,
        } => {
            let id = ntid();
            let answer = w
                .send(
                    "/network/authorizations",
                    w.auth(card, amount, partial, mcc).id(&id).into_json(),
                )
                .await;
            let spendable = m.spendable(card);
            let expected = if amount <= spendable {
                Some(amount)
            } else if partial && spendable > 0 {
                Some(spendable)
            } else {
                None
            };
            match expected {
                Some(approved) => {
                    prop_assert_eq!(&answer["decision"], "approved", "{:?}", answer);
                    prop_assert_eq!(answer["approved_amount"].as_i64(), Some(approved));
                    m.held[card] += approved;
                    let ttl_days = if mcc == "7011" { 31 } else { 7 };
                    m.auths.push(Auth {
                        ntid: id,
                        card,
                        authorized: approved,
                        held: approved,
                        state: State::Pending,
                        ttl_days,
                    });
                }
                None => prop_assert_eq!(&answer["response_code"], "51", "{:?}", answer),
            }
        }
        Op::Incremental { pick, amount } => {
            if m.auths.is_empty() {
                return Ok(());
            }
            let i = pick % m.auths.len();
            let a = m.auths[i].clone();
            let body = w.auth(a.card, amount, false, "5411").original(&a.ntid).into_json();
            let answer = w.send("/network/authorizations", body).await;
            if a.state == State::Pending && amount <= m.spendable(a.card) {
                prop_assert_eq!(&answer["decision"], "approved", "{:?}", answer);
                m.held[a.card] += amount;
                m.auths[i].held += amount;
                m.auths[i].authorized += amount;
            } else {
                prop_assert_eq!(&answer["decision"], "declined", "{:?}", answer);
            }
        }
        Op::Clear { pick, percent } => {
            if m.auths.is_empty() {
                return Ok(());
            }
            let i = pick % m.auths.len();
            let a = m.auths[i].clone();
            let amount = (a.authorized * percent / 100).max(1);
            let answer = w
                .send("/network/clearings", NetMessage::clearing(&a.ntid, amount).into_json())
                .await;
            prop_assert_eq!(&answer["decision"], "approved", "clearing always posts: {:?}", answer);
            if a.state == State::Pending {
                m.held[a.card] -= a.held;
                m.auths[i].held = 0;
                m.auths[i].state = State::Done;
            }
            m.purchase(a.card, amount);
        }
        Op::Reverse { pick, percent } => {
            if m.auths.is_empty() {
                return Ok(());
            }
            let i = pick % m.auths.len();
            let a = m.auths[i].clone();
            let mut reversal = NetMessage::reversal(&a.ntid);
            let amount = match percent {
                Some(p) => {
                    let amt = (a.held * p / 100).max(1);
                    reversal = reversal.amount(amt);
                    amt.min(a.held)
                }
                None => a.held,
            };
            let body = reversal.into_json();
            let answer = w.send("/network/reversals", body).await;
            if a.state == State::Pending {
                prop_assert_eq!(&answer["decision"], "approved", "{:?}", answer);
                m.held[a.card] -= amount;
                m.auths[i].held -= amount;
                if m.auths[i].held == 0 {
                    m.auths[i].state = State::Done;
                }
            } else {
                prop_assert_eq!(&answer["reason"], "original_not_pending", "{:?}", answer);
            }
        }
        Op::Refund { card, amount } => {
            w.send(
                "/network/refunds",
                NetMessage::refund(&w.cards[card], amount).into_json(),
            )
            .await;
            m.balance[card] += amount;
        }
        Op::ForcePost { card, amount } => {
            w.send(
                "/network/clearings",
                NetMessage::force_post(&w.cards[card], amount).into_json(),
            )
            .await;
            m.purchase(card, amount);
        }
        Op::Expire { days } => {
            // The injected clock only moves forward.
            let now = Timestamp::now().plus_secs(days * 86_400).max(w.expired_until);
            w.expired_until = now;
            w.app.state.engine.expire_holds(now).await.unwrap();
            // Holds were placed moments ago, so a hold has expired when its TTL in whole days is
            // below the (rounded) days the clock moved; the choice of 1, 8 and 32 keeps clear of edges.
            let horizon_days = (now.as_micros() - Timestamp::now().as_micros() + 43_200_000_000) / 86_400_000_000;
            for a in m
                .auths
                .iter_mut()
                .filter(|a| a.state == State::Pending && a.ttl_days < horizon_days)
            {
                m.held[a.card] -= a.held;
                a.held = 0;
                a.state = State::Done;
            }
        }
    }
    // After every step: the books match the model, nothing is below its floor.
    for (i, card) in w.cards.iter().enumerate() {
        let (_, b) = w.app.get(&w.tenant, &format!("/cards/{}/balance", card.id)).await;
        let (balance, held) = (
            b["balance"]["balance"].as_i64().unwrap(),
            b["balance"]["held"].as_i64().unwrap(),
        );
        prop_assert_eq!((balance, held), (m.balance[i], m.held[i]), "card {} after {:?}", i, op);
        prop_assert!(balance - held >= 0, "spendable never below its floor");
    }
    Ok(())
}

async fn run(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let Some(app) = TestApp::spawn(backend).await else {
        return Ok(());
    };
    let issued = create_network_credential(app.state.network.as_ref(), &app.state.pepper, Environment::Sandbox, "n")
        .await
        .unwrap();
    let tenant = app.tenant_with(&[Permission::Reveal]).await;
    app.program(&tenant.sandbox, "GPR", "411111", 1_000_000).await;
    let mut cards = Vec::new();
    for _ in 0..CARDS {
        let c = app.card_with_balance(&tenant.sandbox, "GPR", LOAD).await;
        cards.push(app.reveal(&tenant.sandbox, c["id"].as_str().unwrap()).await);
    }
    let mut world = World {
        app,
        network: Creds {
            id: issued.id,
            secret: issued.secret,
        },
        cards,
        tenant: tenant.sandbox,
        expired_until: Timestamp::now(),
    };
    let mut model = Model {
        balance: [LOAD; CARDS],
        ..Model::default()
    };
    for op in &ops {
        step(&mut world, &mut model, op).await?;
    }
    let report = world.app.state.ledger.verify_ledger().await.unwrap();
    prop_assert!(report.problems.is_empty(), "ledger verify: {:?}", report.problems);
    // Each hold resolved at most once: nothing still held by a resolved authorization.
    let (_, txns) = world.app.get(&world.tenant, "/transactions?limit=50").await;
    for t in txns["transactions"].as_array().unwrap() {
        let t = &t["transaction"];
        if t["state"] != "PENDING" {
            prop_assert_eq!(t["held_amount"].as_i64(), Some(0), "{:?}", t);
        }
    }
    Ok(())
}

fn lifecycle(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        cases: 8,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/lifecycle_model.txt",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 1..30), |ops| {
        rt.block_on(run(backend, ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn authorization_lifecycle_matches_the_model_sqlite() {
    lifecycle(Backend::Sqlite);
}

#[test]
fn authorization_lifecycle_matches_the_model_postgres() {
    lifecycle(Backend::Postgres);
}
