//! Model-based test of the batch engine: random mixes of network messages (authorizations, full
//! and partial; incremental authorizations; clearings, partial and over; reversals, partial and
//! full; refunds; force posts; and verbatim repeats of earlier messages) are cut into batches of
//! random sizes and applied one batch at a time with `Engine::handle_as_one_batch`, so several
//! messages for one card, and a message with its own repeat, share a batch. Every answer and,
//! after every batch, every card's balance and holds must be what the same messages applied one
//! at a time to a simple in-memory model give.

use cardplane_domain::Environment;
use cardplane_testkit::Backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::Value;

use crate::net::{Kind, NetCard, NetMessage, Parsed, corner_grocery, ntid};
use crate::support::TestApp;

const CARDS: usize = 3;
const LOAD: i64 = 5_000;

#[derive(Debug, Clone)]
enum Op {
    Authorize { card: usize, amount: i64, partial: bool },
    Incremental { pick: usize, amount: i64 },
    Clear { pick: usize, percent: i64 },
    Reverse { pick: usize, percent: Option<i64> },
    Refund { card: usize, amount: i64 },
    ForcePost { card: usize, amount: i64 },
    Repeat { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..CARDS, 1i64..3_000, any::<bool>()).prop_map(|(card, amount, partial)| Op::Authorize { card, amount, partial }),
        1 => (0usize..16, 1i64..1_500).prop_map(|(pick, amount)| Op::Incremental { pick, amount }),
        2 => (0usize..16, 1i64..130).prop_map(|(pick, percent)| Op::Clear { pick, percent }),
        2 => (0usize..16, prop::option::of(1i64..100)).prop_map(|(pick, percent)| Op::Reverse { pick, percent }),
        1 => (0..CARDS, 1i64..2_000).prop_map(|(card, amount)| Op::Refund { card, amount }),
        1 => (0..CARDS, 1i64..2_000).prop_map(|(card, amount)| Op::ForcePost { card, amount }),
        2 => (0usize..64).prop_map(|pick| Op::Repeat { pick }),
    ]
}

/// What a message's answer must say.
#[derive(Debug, Clone)]
enum Expect {
    Answer {
        approved: bool,
        amount: i64,
        code: &'static str,
        available: Option<i64>,
    },
    /// The same body the message at this index got, marked replayed.
    RepeatOf(usize),
}

#[derive(Debug, Clone)]
struct Sent {
    kind: Kind,
    body: Value,
    expect: Expect,
}

#[derive(Debug, Clone)]
struct Auth {
    ntid: String,
    card: usize,
    authorized: i64,
    held: i64,
    pending: bool,
}

/// The books as the messages applied one at a time leave them.
#[derive(Debug)]
struct Model {
    balance: [i64; CARDS],
    held: [i64; CARDS],
    auths: Vec<Auth>,
}

fn approved(amount: i64, code: &'static str, available: i64) -> Expect {
    Expect::Answer {
        approved: true,
        amount,
        code,
        available: Some(available),
    }
}

fn declined(code: &'static str, available: Option<i64>) -> Expect {
    Expect::Answer {
        approved: false,
        amount: 0,
        code,
        available,
    }
}

impl Model {
    fn spendable(&self, card: usize) -> i64 {
        self.balance[card] - self.held[card]
    }

    /// The card pays what it can of a final posting; the program's losses account the rest.
    fn pay(&mut self, card: usize, amount: i64) -> i64 {
        let paid = amount.min(self.spendable(card).max(0));
        self.balance[card] -= paid;
        paid
    }

    /// The message an op sends and what it must get, applied to the model; `None` when the op
    /// has nothing to act on yet.
    fn send(&mut self, op: &Op, cards: &[NetCard], sent: &[Sent]) -> Option<Sent> {
        let id = ntid();
        let (kind, body, expect) = match *op {
            Op::Authorize { card, amount, partial } => {
                let body = NetMessage::chip_authorization(&cards[card], amount)
                    .id(&id)
                    .partial(partial)
                    .into_json();
                let spendable = self.spendable(card);
                let hold = if amount <= spendable {
                    Some((amount, "00"))
                } else if partial && spendable > 0 {
                    Some((spendable, "10"))
                } else {
                    None
                };
                let expect = match hold {
                    Some((held, code)) => {
                        self.held[card] += held;
                        self.auths.push(Auth {
                            ntid: id.clone(),
                            card,
                            authorized: held,
                            held,
                            pending: true,
                        });
                        approved(held, code, spendable - held)
                    }
                    None => declined("51", Some(spendable)),
                };
                (Kind::Authorization, body, expect)
            }
            Op::Incremental { pick, amount } => {
                let i = pick % self.auths.len().max(1);
                let a = self.auths.get(i)?.clone();
                let body = NetMessage::chip_authorization(&cards[a.card], amount)
                    .id(&id)
                    .original(&a.ntid)
                    .into_json();
                let spendable = self.spendable(a.card);
                let expect = if !a.pending {
                    declined("12", None)
                } else if amount > spendable {
                    declined("51", Some(spendable))
                } else {
                    self.held[a.card] += amount;
                    self.auths[i].held += amount;
                    self.auths[i].authorized += amount;
                    approved(amount, "00", spendable - amount)
                };
                (Kind::Authorization, body, expect)
            }
            Op::Clear { pick, percent } => {
                let i = pick % self.auths.len().max(1);
                let a = self.auths.get(i)?.clone();
                let amount = (a.authorized * percent / 100).max(1);
                let body = NetMessage::clearing(&a.ntid, amount).id(&id).into_json();
                let release = if a.pending { a.held } else { 0 };
                self.held[a.card] -= release;
                self.auths[i].held = 0;
                self.auths[i].pending = false;
                let can_pay = self.spendable(a.card);
                let paid = self.pay(a.card, amount);
                (Kind::Clearing, body, approved(amount, "00", can_pay - paid))
            }
            Op::Reverse { pick, percent } => {
                let i = pick % self.auths.len().max(1);
                let a = self.auths.get(i)?.clone();
                let asked = percent.map(|p| (a.held * p / 100).max(1));
                let reversal = NetMessage::reversal(&a.ntid).id(&id);
                let body = match asked {
                    Some(amount) => reversal.amount(amount),
                    None => reversal,
                }
                .into_json();
                let expect = if a.pending {
                    let amount = asked.unwrap_or(a.held).min(a.held);
                    let spendable = self.spendable(a.card);
                    self.held[a.card] -= amount;
                    self.auths[i].held -= amount;
                    self.auths[i].pending = self.auths[i].held > 0;
                    approved(amount, "00", spendable + amount)
                } else {
                    declined("12", None)
                };
                (Kind::Reversal, body, expect)
            }
            Op::Refund { card, amount } => {
                let spendable = self.spendable(card);
                self.balance[card] += amount;
                (
                    Kind::Refund,
                    NetMessage::refund(&cards[card], amount)
                        .merchant(corner_grocery())
                        .id(&id)
                        .into_json(),
                    approved(amount, "00", spendable + amount),
                )
            }
            Op::ForcePost { card, amount } => {
                let spendable = self.spendable(card);
                let paid = self.pay(card, amount);
                let body = NetMessage::force_post(&cards[card], amount)
                    .merchant(corner_grocery())
                    .id(&id)
                    .into_json();
                (Kind::Clearing, body, approved(amount, "00", spendable - paid))
            }
            Op::Repeat { pick } => {
                let first = pick % sent.len().max(1);
                let earlier = sent.get(first)?;
                let original = match earlier.expect {
                    Expect::RepeatOf(i) => i,
                    Expect::Answer { .. } => first,
                };
                return Some(Sent {
                    kind: earlier.kind,
                    body: earlier.body.clone(),
                    expect: Expect::RepeatOf(original),
                });
            }
        };
        Some(Sent { kind, body, expect })
    }
}

async fn check_answer(
    sent: &Sent,
    got: &cardplane_engine::authorization::Answer,
    bodies: &[String],
) -> Result<(), TestCaseError> {
    match &sent.expect {
        Expect::RepeatOf(i) => {
            prop_assert!(got.replayed, "a repeat is replayed: {}", got.body);
            prop_assert_eq!(&got.body, &bodies[*i], "a repeat gets the first answer");
        }
        Expect::Answer {
            approved,
            amount,
            code,
            available,
        } => {
            let answer: Value = serde_json::from_str(&got.body).unwrap();
            prop_assert!(!got.replayed, "{}", got.body);
            let decision = if *approved { "approved" } else { "declined" };
            prop_assert_eq!(&answer["decision"], decision, "{} -> {}", sent.body, answer);
            prop_assert_eq!(answer["approved_amount"].as_i64(), Some(*amount), "{}", answer);
            prop_assert_eq!(&answer["response_code"], code, "{}", answer);
            prop_assert_eq!(answer["available_balance"].as_i64(), *available, "{}", answer);
        }
    }
    Ok(())
}

async fn run(backend: Backend, ops: Vec<Op>, sizes: Vec<usize>) -> Result<(), TestCaseError> {
    let Some(app) = TestApp::spawn(backend).await else {
        return Ok(());
    };
    let net = app.network(1_000_000).await;
    let mut cards = Vec::new();
    for _ in 0..CARDS {
        cards.push(app.net_card(&net, LOAD).await);
    }
    let mut model = Model {
        balance: [LOAD; CARDS],
        held: [0; CARDS],
        auths: Vec::new(),
    };
    let mut sent: Vec<Sent> = Vec::new();
    // The model's (balance, held) per card after each message, to compare at batch boundaries.
    let mut books: Vec<[(i64, i64); CARDS]> = Vec::new();
    for op in &ops {
        if let Some(s) = model.send(op, &cards, &sent) {
            sent.push(s);
            books.push(std::array::from_fn(|i| (model.balance[i], model.held[i])));
        }
    }
    let mut bodies: Vec<String> = Vec::new();
    let mut sizes = sizes.into_iter().cycle();
    let mut next = 0;
    while next < sent.len() {
        let size = sizes.next().unwrap_or(1).min(sent.len() - next);
        let batch = &sent[next..next + size];
        let messages = batch
            .iter()
            .map(|s| (Environment::Sandbox, s.kind.message(&s.body)))
            .collect();
        let answers = app.state.engine.handle_as_one_batch(messages).await;
        for (s, got) in batch.iter().zip(&answers) {
            let got = got.as_ref().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            check_answer(s, got, &bodies).await?;
            bodies.push(got.body.clone());
        }
        next += size;
        let expected = books[next - 1];
        for (i, card) in cards.iter().enumerate() {
            let (_, b) = app
                .get(&net.tenant.sandbox, &format!("/cards/{}/balance", card.id))
                .await;
            let got = (
                b["balance"]["balance"].as_i64().unwrap(),
                b["balance"]["held"].as_i64().unwrap(),
            );
            prop_assert_eq!(got, expected[i], "card {} after {} messages", i, next);
        }
    }
    let report = app.state.ledger.verify_ledger().await.unwrap();
    prop_assert!(report.problems.is_empty(), "ledger verify: {:?}", report.problems);
    Ok(())
}

fn batches(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config {
        cases: 8,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/batch_model.txt",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (
        proptest::collection::vec(op(), 1..48),
        proptest::collection::vec(1usize..12, 1..6),
    );
    let result = runner.run(&strategy, |(ops, sizes)| rt.block_on(run(backend, ops, sizes)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn batches_of_mixed_messages_match_the_sequential_model_sqlite() {
    batches(Backend::Sqlite);
}

#[test]
fn batches_of_mixed_messages_match_the_sequential_model_postgres() {
    batches(Backend::Postgres);
}
