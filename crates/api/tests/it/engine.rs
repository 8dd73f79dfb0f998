//! The batch engine's guarantees that timing alone would rarely show: a failing message fails
//! alone, a network transaction id has one effect however its copies meet (in one batch, or in
//! two processes' batches at once), and a change answered before a message arrives (freeze,
//! program suspension, a new spend control) always applies to it, whichever process made it.

use cardplane_domain::Environment;
use cardplane_engine::authorization::{Answer, EngineError};
use cardplane_testkit::{Backend, both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Executor;

use crate::net::{Kind, NetMessage, Parsed, corner_grocery, ntid};
use crate::support::TestApp;

fn parsed(answer: &Result<Answer, EngineError>) -> Value {
    serde_json::from_str(&answer.as_ref().expect("an answer").body).unwrap()
}

/// Makes the database refuse to record any transaction at the merchant named `Fault`.
async fn inject_fault(app: &TestApp, backend: Backend) {
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let statements: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TRIGGER fault BEFORE INSERT ON transactions WHEN NEW.merchant_name = 'Fault' \
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
        ],
        Backend::Postgres => &[
            "CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.merchant_name = 'Fault' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER fault BEFORE INSERT ON transactions FOR EACH ROW EXECUTE FUNCTION fault()",
        ],
    };
    for s in statements {
        pool.execute(*s).await.unwrap();
    }
    pool.close().await;
}

async fn one_bad_message_fails_alone_and_its_batch_commits(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 10_000).await;
    inject_fault(&app, b).await;
    let (first, faulty, last) = (ntid(), ntid(), ntid());
    let mut bad = NetMessage::chip_authorization(&card, 300).id(&faulty).into_json();
    bad["merchant"]["name"] = json!("Fault");
    let bodies = [
        NetMessage::chip_authorization(&card, 100).id(&first).into_json(),
        bad.clone(),
        NetMessage::chip_authorization(&card, 200).id(&last).into_json(),
        NetMessage::chip_authorization(&card, 100).id(&first).into_json(),
    ];
    let messages = bodies
        .iter()
        .map(|body| (Environment::Sandbox, Kind::Authorization.message(body)))
        .collect();
    let answers = app.state.engine.handle_as_one_batch(messages).await;

    assert_eq!(parsed(&answers[0])["decision"], "approved");
    assert!(
        matches!(&answers[1], Err(EngineError::Failed(_))),
        "the faulty message fails: {:?}",
        answers[1]
    );
    assert_eq!(parsed(&answers[2])["decision"], "approved");
    // Its neighbours committed, and the first message's copy got its answer.
    let copy = answers[3].as_ref().unwrap();
    assert!(copy.replayed);
    assert_eq!(copy.body, answers[0].as_ref().unwrap().body);
    let (_, balance) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/balance", card.id))
        .await;
    assert_eq!(balance["balance"]["held"], 300, "only the two good holds: {balance}");
    // Nothing of the faulty message was kept: once the fault is gone, it is applied afresh.
    let (_, txns) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/transactions", card.id))
        .await;
    assert_eq!(txns["total"], 2, "{txns}");
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let drop = match b {
        Backend::Sqlite => "DROP TRIGGER fault",
        Backend::Postgres => "DROP TRIGGER fault ON transactions",
    };
    pool.execute(drop).await.unwrap();
    pool.close().await;
    let (status, retried) = app.post(&net.credential, Kind::Authorization.path(), &bad).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retried["decision"], "approved", "{retried}");
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

async fn one_network_id_in_two_processes_batches_at_once_has_one_effect(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let (_, other) = app.second_app().await;
    let net = app.network(1_000_000).await;
    let cards = [app.net_card(&net, 100_000).await, app.net_card(&net, 100_000).await];
    for round in 0..5 {
        // The same messages, as two batches in two engines at once (reversed in one, so each
        // holds the other's first message while it reaches for the rest).
        let bodies: Vec<Value> = (0..6)
            .map(|i| {
                NetMessage::chip_authorization(&cards[i % 2], 100 + i as i64)
                    .id(format!("twice_{round}_{i}"))
                    .into_json()
            })
            .collect();
        let batch = |reverse: bool| {
            let mut messages: Vec<_> = bodies
                .iter()
                .map(|body| (Environment::Sandbox, Kind::Authorization.message(body)))
                .collect();
            if reverse {
                messages.reverse();
            }
            messages
        };
        let (mut mine, theirs) = tokio::join!(
            app.state.engine.handle_as_one_batch(batch(false)),
            other.engine.handle_as_one_batch(batch(true))
        );
        mine.reverse();
        for (a, b) in mine.iter().zip(&theirs) {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(a.body, b.body, "both senders get the same answer");
            assert!(a.replayed != b.replayed, "exactly one of them applied it");
        }
    }
    // One id for two different cards at once (a confused network): the batches lock nothing in
    // common and meet only when recording the answer. PostgreSQL: the first holds its answer's
    // key uncommitted for a while (a test trigger sleeps after the insert), so the second
    // decides too, then finds the key taken, and is redone as a repeat.
    if b == Backend::Postgres {
        let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
        pool.execute(
            "CREATE FUNCTION slow_answer() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$",
        )
        .await
        .unwrap();
        pool.execute(
            "CREATE TRIGGER slow_answer AFTER INSERT ON network_messages FOR EACH ROW \
             WHEN (NEW.network_transaction_id LIKE 'confused_%') EXECUTE FUNCTION slow_answer()",
        )
        .await
        .unwrap();
        pool.close().await;
    }
    for round in 0..3 {
        let id = format!("confused_{round}");
        let send = |engine: cardplane_engine::authorization::Engine, card: usize| {
            let message =
                Kind::Authorization.message(&NetMessage::chip_authorization(&cards[card], 1_000).id(&id).into_json());
            tokio::spawn(async move { engine.handle_as_one_batch(vec![(Environment::Sandbox, message)]).await })
        };
        let first = send(app.state.engine.clone(), 0);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let second = send(other.engine.clone(), 1);
        let (a, b) = (first.await.unwrap(), second.await.unwrap());
        let (a, b) = (a[0].as_ref().unwrap(), b[0].as_ref().unwrap());
        assert_eq!(a.body, b.body, "both senders get the same answer");
        assert!(a.replayed != b.replayed, "exactly one of them applied it");
    }
    if b == Backend::Postgres {
        assert!(
            crate::support::captured_logs().contains("raced another process"),
            "the second batch was redone"
        );
    }
    let held: i64 = {
        let mut total = 0;
        for c in &cards {
            let (_, b) = app.get(&net.tenant.sandbox, &format!("/cards/{}/balance", c.id)).await;
            total += b["balance"]["held"].as_i64().unwrap();
        }
        total
    };
    assert_eq!(held, 5 * (100..106).sum::<i64>() + 3 * 1_000, "each message held once");
    let (_, txns) = app.get(&net.tenant.sandbox, "/transactions?limit=50").await;
    assert_eq!(txns["total"], 33, "one transaction per network id");
}

async fn changes_answered_before_a_message_apply_to_it_in_every_process(app: TestApp) {
    let (other_base, _) = app.second_app().await;
    let net = app.network(1_000_000).await;
    let t = &net.tenant.sandbox;
    let card = app.net_card(&net, 50_000).await;
    let authorize = |base: String, amount: i64| {
        let body = NetMessage::chip_authorization(&card, amount).into_json();
        let req = app
            .http
            .post(format!("{base}{}", Kind::Authorization.path()))
            .basic_auth(&net.credential.id, Some(&net.credential.secret))
            .json(&body);
        async move { crate::support::send(req).await.1 }
    };
    // Both processes have seen the card and its program.
    for base in [app.base.clone(), other_base.clone()] {
        assert_eq!(authorize(base, 100).await["decision"], "approved");
    }
    // A freeze answered by one process is never overtaken in the other.
    let (status, _) = app.post(t, &format!("/cards/{}/freeze", card.id), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(authorize(other_base.clone(), 100).await["reason"], "card_frozen");
    app.post(t, &format!("/cards/{}/unfreeze", card.id), &json!({})).await;
    assert_eq!(authorize(other_base.clone(), 100).await["decision"], "approved");
    // A suspended program (cached by both) declines at once, and comes back.
    let (status, _) = app.post(t, "/programs/GPR", &json!({"status": "suspended"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(authorize(other_base.clone(), 100).await["reason"], "program_suspended");
    assert_eq!(authorize(app.base.clone(), 100).await["reason"], "program_suspended");
    app.post(t, "/programs/GPR", &json!({"status": "active"})).await;
    assert_eq!(authorize(other_base.clone(), 100).await["decision"], "approved");
    // A new spend control binds the next authorization.
    let (status, control) = app
        .post(
            t,
            "/spend_controls",
            &json!({"card_id": card.id, "amount_limit": 150, "window": "per_transaction"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{control}");
    assert_eq!(
        authorize(other_base.clone(), 200).await["reason"],
        "spend_limit_exceeded"
    );
    assert_eq!(authorize(other_base, 150).await["decision"], "approved");
}

async fn a_refund_beyond_the_balance_limit_is_declined_and_changes_nothing(app: TestApp) {
    let max = cardplane_domain::money::BALANCE_MAX_MINOR;
    let net = app.network(max).await;
    let card = app.net_card(&net, max - 10).await;
    let refund = |amount: i64| {
        let body = NetMessage::refund(&card, amount).merchant(corner_grocery()).into_json();
        let app = &app;
        let credential = net.credential.clone();
        async move { app.post(&credential, Kind::Refund.path(), &body).await }
    };
    let (status, answer) = refund(100).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&answer["decision"], &answer["reason"], &answer["response_code"]),
        (&json!("declined"), &json!("balance_limit_exceeded"), &json!("13")),
        "{answer}"
    );
    let (_, balance) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/balance", card.id))
        .await;
    assert_eq!(balance["balance"]["balance"], max - 10);
    let (_, answer) = refund(10).await;
    assert_eq!(answer["decision"], "approved", "{answer}");
    assert_eq!(answer["available_balance"], max);
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

both_backends!(
    one_bad_message_fails_alone_and_its_batch_commits,
    one_network_id_in_two_processes_batches_at_once_has_one_effect
);
app_tests!(
    a_refund_beyond_the_balance_limit_is_declined_and_changes_nothing,
    changes_answered_before_a_message_apply_to_it_in_every_process
);
