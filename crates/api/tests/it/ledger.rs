use cardplane_api::workflows::secrets::{open_vault, rotate_kek};
use cardplane_domain::card::Card;
use cardplane_domain::pan::Pan;
use cardplane_domain::vault::Kek;
use cardplane_store::cards::CardStore;
use cardplane_store::{Db, DbOptions, SqlStore};
use cardplane_testkit::{Backend, both_backends};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, assert_error};

async fn assert_ledger_clean(app: &TestApp) {
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.journals > 0);
}

async fn balance_adjustments_move_money_through_the_ledger(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 5_000).await;
    let card = app.card_with_balance(&t.sandbox, "GPR", 1_000).await;
    let id = card["id"].as_str().unwrap();
    let adjust = |kind: &str, amount: i64| json!({"type": kind, "amount": amount, "currency": "USD", "description": format!("{kind} {amount}")});
    let path = format!("/cards/{id}/balance_adjustments");

    let (status, credit) = app
        .post_idem(&t.sandbox, &path, "credit-1", &adjust("credit", 2_500))
        .await;
    assert_eq!(status, StatusCode::OK, "{credit}");
    assert_eq!(credit["balance_adjustment"]["balance"]["balance"], 3_500);
    let (status, replay) = app
        .post_idem(&t.sandbox, &path, "credit-1", &adjust("credit", 2_500))
        .await;
    assert_eq!((status, &replay), (StatusCode::OK, &credit), "idempotent");
    let (status, debit) = app.post(&t.sandbox, &path, &adjust("debit", 500)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(debit["balance_adjustment"]["balance"]["spendable"], 3_000);

    let (status, err) = app.post(&t.sandbox, &path, &adjust("debit", 3_001)).await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "insufficient_funds",
    );
    let (status, err) = app.post(&t.sandbox, &path, &adjust("credit", 2_001)).await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "insufficient_program_funds",
    );
    let (status, err) = app
        .post(
            &t.sandbox,
            &path,
            &json!({"type": "credit", "amount": 5, "currency": "EUR"}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "currency_mismatch",
    );
    for (body, param) in [
        (json!({"type": "gift", "amount": 5, "currency": "USD"}), "type"),
        (json!({"type": "credit", "amount": 0, "currency": "USD"}), "amount"),
        (json!({"type": "credit", "amount": 1.5, "currency": "USD"}), "amount"),
        (json!({"type": "credit", "currency": "USD"}), "amount"),
    ] {
        let (status, err) = app.post(&t.sandbox, &path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["error"]["param"], param, "{err}");
    }

    let (_, balance) = app.get(&t.sandbox, &format!("/cards/{id}/balance")).await;
    assert_eq!(
        balance["balance"],
        json!({"card_id": id, "currency": "USD", "balance": 3_000, "spendable": 3_000, "held": 0})
    );
    let (_, entries) = app.get(&t.sandbox, &format!("/cards/{id}/ledger_entries")).await;
    assert_eq!(entries["total"], 3);
    let list = entries["ledger_entries"].as_array().unwrap();
    let after: Vec<i64> = list
        .iter()
        .map(|e| e["ledger_entry"]["balance_after"].as_i64().unwrap())
        .collect();
    assert_eq!(
        after,
        [3_000, 3_500, 1_000],
        "newest first, each with the balance after it"
    );
    assert_eq!(list[0]["ledger_entry"]["direction"], "debit");
    assert_eq!(list[2]["ledger_entry"]["description"], "Initial load");
    let (_, funding) = app.get(&t.sandbox, "/programs/GPR/funding").await;
    assert_eq!(funding["funding"]["balance"], 5_000 - 1_000 - 2_500 + 500);

    // Money can be taken back from a closed card, never added.
    app.post(&t.sandbox, &format!("/cards/{id}/close"), &json!({})).await;
    let (status, err) = app.post(&t.sandbox, &path, &adjust("credit", 1)).await;
    assert_error(status, &err, StatusCode::CONFLICT, "conflict_error", "card_cancelled");
    let (status, _) = app.post(&t.sandbox, &path, &adjust("debit", 3_000)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ledger_clean(&app).await;
}

async fn sixty_four_concurrent_debits_never_overdraw_a_card(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 1_000).await;
    let card = app.card_with_balance(&t.sandbox, "GPR", 1_000).await;
    let path = format!("/cards/{}/balance_adjustments", card["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let req = app
            .request(reqwest::Method::POST, &path, &t.sandbox)
            .json(&json!({"type": "debit", "amount": 50, "currency": "USD"}));
        tasks.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 20, "exactly the money there was");
    let (_, balance) = app
        .get(&t.sandbox, &format!("/cards/{}/balance", card["id"].as_str().unwrap()))
        .await;
    assert_eq!(balance["balance"]["balance"], 0);
    let (_, funding) = app.get(&t.sandbox, "/programs/GPR/funding").await;
    assert_eq!(
        funding["funding"]["balance"], 1_000,
        "money is conserved: it went back to the program"
    );
    assert_ledger_clean(&app).await;
}

async fn kek_rotation_keeps_every_pan_readable(b: Backend) {
    let old_kek = Kek::generate();
    let encoded = old_kek.encode();
    let Some(app) = TestApp::spawn_with(b, move |c| c.kek = Some(encoded)).await else {
        return;
    };
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 0).await;
    for _ in 0..3 {
        app.card_with_balance(&t.sandbox, "GPR", 0).await;
    }
    let holder = app
        .cardholder(&t.sandbox, &crate::support::seed_cardholder("490940000", None))
        .await;
    let store = SqlStore::new(Db::connect(&DbOptions::new(app.db.url.clone())).await.unwrap());
    let new_kek = Kek::generate();
    assert_eq!(rotate_kek(&store, &old_kek, &new_kek).await.unwrap(), 1);
    assert!(
        open_vault(&store, &old_kek).await.is_err(),
        "the old KEK no longer opens the vault"
    );
    let vault = open_vault(&store, &new_kek).await.unwrap();
    let sealed = store.all_sealed_pans().await.unwrap();
    assert_eq!(sealed.len(), 3);
    for (id, pan) in sealed {
        let clear = vault
            .open(&pan, &Card::vault_context(&id))
            .expect("readable under the new KEK");
        assert!(Pan::parse(std::str::from_utf8(&clear).unwrap()).is_ok());
    }
    // A server started with the new KEK serves the same cards and cardholders.
    drop(app.state.clone());
    let (status, _) = app
        .get(&t.sandbox, &format!("/cardholders/{}", holder["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
}

both_backends!(kek_rotation_keeps_every_pan_readable);
app_tests!(
    balance_adjustments_move_money_through_the_ledger,
    sixty_four_concurrent_debits_never_overdraw_a_card
);
