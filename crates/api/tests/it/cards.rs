use cardplane_domain::api_key::Permission;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cardholders::postgres_dump;
use crate::support::{Creds, TestApp, assert_error, captured_logs, seed_cardholder, send};

fn program_body(program_id: &str, bin: &str) -> Value {
    json!({"program_id": program_id, "name": "P", "network": "VISA", "bin": bin, "currency": "USD", "design_keys": ["blue"]})
}

async fn program_config_is_validated(app: TestApp) {
    let a = app.tenant().await;
    let other = app.tenant().await;
    app.program(&a.sandbox, "GPR", "411111", 0).await;
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            program_body("X1", "41111122"),
            StatusCode::BAD_REQUEST,
            "bin_overlap",
            "bin",
        ),
        (
            program_body("X2", "4111"),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "bin",
        ),
        (
            json!({"program_id": "X3", "name": "P", "network": "MASTERCARD", "bin": "411112", "currency": "USD", "design_keys": ["a"]}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "bin",
        ),
        (
            json!({"program_id": "X4", "name": "P", "network": "VISA", "bin": "411113", "currency": "USD", "design_keys": ["a", "a"]}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "design_keys[1]",
        ),
        (
            json!({"program_id": "X5", "name": "P", "network": "VISA", "bin": "411114", "currency": "USD", "design_keys": []}),
            StatusCode::BAD_REQUEST,
            "parameter_missing",
            "design_keys",
        ),
        (
            json!({"program_id": "X6", "name": "P", "network": "VISA", "bin": "411115", "currency": "USD", "design_keys": ["a"], "spend_controls": [{"amount_limit": 0, "window": "day"}]}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "spend_controls[0].amount_limit",
        ),
        (
            json!({"program_id": "X7", "name": "P", "network": "VISA", "bin": "411116", "currency": "USD", "design_keys": ["a"], "spend_controls": [{"count_limit": 5, "window": "trailing", "window_secs": 1}]}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "spend_controls[0].window_secs",
        ),
        (
            json!({"program_id": "X8", "name": "P", "network": "VISA", "bin": "411117", "currency": "USD", "design_keys": ["a"], "card_lifetime_years": 11}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "card_lifetime_years",
        ),
        (
            json!({"program_id": "X9", "name": "P", "network": "VISA", "bin": "411118", "currency": "XYZ", "design_keys": ["a"]}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "currency",
        ),
        (
            json!({"program_id": "X10", "name": "P", "network": "VISA", "bin": "411119", "currency": "USD", "design_keys": ["a"], "form_factors": ["plastic"]}),
            StatusCode::BAD_REQUEST,
            "parameter_invalid",
            "form_factors[0]",
        ),
        (
            program_body("GPR", "422222"),
            StatusCode::CONFLICT,
            "program_id_taken",
            "program_id",
        ),
    ];
    for (body, status, code, param) in cases {
        let (got, err) = app.post(&a.sandbox, "/programs", &body).await;
        assert_eq!(got, status, "{body} -> {err}");
        assert_eq!(err["error"]["code"], code, "{err}");
        assert_eq!(err["error"]["param"], param, "{err}");
    }
    // BIN ranges are platform-wide within an environment; the same BIN in live is fine.
    let (status, err) = app
        .post(&other.sandbox, "/programs", &program_body("Theirs", "411111"))
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "bin_overlap",
    );
    let (status, _) = app.post(&a.live, "/programs", &program_body("GPR", "411111")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get(&a.sandbox, "/programs").await;
    assert_eq!(list["total"], 1, "no refused program was created");
}

async fn programs_decide_who_may_get_which_card(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 100_000).await;
    let passed = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    let pending = app.cardholder(&t.sandbox, &seed_cardholder("490940005", None)).await;
    let cards_of = |c: &Value| format!("/cardholders/{}/cards", c["id"].as_str().unwrap());

    let (status, err) = app
        .post(&t.sandbox, &cards_of(&pending), &json!({"program_id": "GPR"}))
        .await;
    assert_error(status, &err, StatusCode::CONFLICT, "conflict_error", "kyc_not_passed");
    let (status, err) = app
        .post(
            &t.sandbox,
            &cards_of(&passed),
            &json!({"program_id": "GPR", "design_key": "gold"}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "design_key_unknown",
    );
    assert_eq!(err["error"]["param"], "design_key");
    let (status, err) = app
        .post(&t.sandbox, &cards_of(&passed), &json!({"program_id": "NOPE"}))
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "program_not_found",
    );
    let (status, err) = app
        .post(
            &t.sandbox,
            &cards_of(&passed),
            &json!({"program_id": "GPR", "initial_load": {"currency": "EUR", "amount": 5}}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "currency_mismatch",
    );
    let (status, err) = app
        .post(
            &t.sandbox,
            &cards_of(&passed),
            &json!({"program_id": "GPR", "initial_load": {"currency": "USD", "amount": 100_001}}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "insufficient_program_funds",
    );

    let (status, _) = app
        .post(&t.sandbox, "/programs/GPR", &json!({"minimum_cardholder_age": 60}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = app
        .post(&t.sandbox, &cards_of(&passed), &json!({"program_id": "GPR"}))
        .await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "cardholder_too_young",
    );
    let (_, updated) = app
        .post(
            &t.sandbox,
            "/programs/GPR",
            &json!({"minimum_cardholder_age": 18, "status": "suspended"}),
        )
        .await;
    assert_eq!(updated["program"]["status"], "suspended");
    let (status, err) = app
        .post(&t.sandbox, &cards_of(&passed), &json!({"program_id": "GPR"}))
        .await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "program_suspended",
    );
    app.post(
        &t.sandbox,
        "/programs/GPR",
        &json!({"status": "active", "kyc_required": false}),
    )
    .await;
    let (status, card) = app
        .post(&t.sandbox, &cards_of(&pending), &json!({"program_id": "GPR"}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a program without KYC requirement issues: {card}"
    );
    let (_, cards) = app.get(&t.sandbox, "/cards").await;
    assert_eq!(cards["total"], 1, "only the last request issued a card");
    let (_, funding) = app.get(&t.sandbox, "/programs/GPR/funding").await;
    assert_eq!(funding["funding"]["balance"], 100_000, "refused loads moved no money");
}

async fn post_state(app: &TestApp, creds: &Creds, card: &str, action: &str) -> (StatusCode, Value) {
    app.post(creds, &format!("/cards/{card}/{action}"), &json!({})).await
}

async fn every_legal_and_illegal_card_transition(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 0).await;
    let holder = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    let (_, physical) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
            &json!({"program_id": "GPR", "form_factor": "physical"}),
        )
        .await;
    let card = physical["card"]["id"].as_str().unwrap().to_owned();
    assert_eq!(physical["card"]["state"], "CREATED");
    assert_eq!(physical["card"]["shipping_status"], "ordered");
    let steps = [
        ("freeze", StatusCode::CONFLICT, "card_not_activated"),
        ("unfreeze", StatusCode::CONFLICT, "card_not_activated"),
        ("activate", StatusCode::OK, "ACTIVE"),
        ("activate", StatusCode::CONFLICT, "card_already_active"),
        ("unfreeze", StatusCode::CONFLICT, "card_not_frozen"),
        ("freeze", StatusCode::OK, "INACTIVE"),
        ("freeze", StatusCode::CONFLICT, "card_already_frozen"),
        ("activate", StatusCode::CONFLICT, "card_frozen"),
        ("unfreeze", StatusCode::OK, "ACTIVE"),
        ("close", StatusCode::OK, "CANCELLED"),
        ("activate", StatusCode::CONFLICT, "card_cancelled"),
        ("freeze", StatusCode::CONFLICT, "card_cancelled"),
        ("unfreeze", StatusCode::CONFLICT, "card_cancelled"),
        ("close", StatusCode::CONFLICT, "card_cancelled"),
    ];
    for (action, status, expected) in steps {
        let (got, body) = post_state(&app, &t.sandbox, &card, action).await;
        assert_eq!(got, status, "{action}: {body}");
        if status == StatusCode::OK {
            assert_eq!(body["card"]["state"], expected, "{action}");
        } else {
            assert_eq!(body["error"]["code"], expected, "{action}");
        }
    }
    let (status, err) = app
        .post(
            &t.sandbox,
            &format!("/cards/{card}/replace"),
            &json!({"reason": "lost"}),
        )
        .await;
    assert_error(status, &err, StatusCode::CONFLICT, "conflict_error", "card_cancelled");
    // Created cards can be closed too.
    let (_, second) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
            &json!({"program_id": "GPR", "form_factor": "physical"}),
        )
        .await;
    let (status, closed) = post_state(&app, &t.sandbox, second["card"]["id"].as_str().unwrap(), "close").await;
    assert_eq!(
        (status, closed["card"]["state"].clone()),
        (StatusCode::OK, json!("CANCELLED"))
    );

    let virtual_card = app.card_with_balance(&t.sandbox, "GPR", 0).await;
    assert_eq!(virtual_card["state"], "ACTIVE");
    assert!(virtual_card["shipping_status"].is_null());
    let (_, events) = app.get(&t.sandbox, "/events?limit=50").await;
    let updates = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "card.updated")
        .count();
    assert_eq!(updates, 5, "one event per legal transition");
}

async fn the_sandbox_ships_physical_cards(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 0).await;
    let holder = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    let (_, physical) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
            &json!({"program_id": "GPR", "form_factor": "physical"}),
        )
        .await;
    let card = physical["card"]["id"].as_str().unwrap();
    let path = format!("/sandbox/cards/{card}/advance_shipping");
    for expected in ["shipped", "delivered"] {
        let (status, body) = app.post(&t.sandbox, &path, &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["card"]["shipping_status"], expected);
    }
    let (status, err) = app.post(&t.sandbox, &path, &json!({})).await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "card_already_delivered",
    );
    let virtual_card = app.card_with_balance(&t.sandbox, "GPR", 0).await;
    let (status, err) = app
        .post(
            &t.sandbox,
            &format!(
                "/sandbox/cards/{}/advance_shipping",
                virtual_card["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::CONFLICT,
        "conflict_error",
        "card_not_physical",
    );
    let (status, err) = app
        .post(
            &t.live,
            "/sandbox/programs/GPR/fund",
            &json!({"amount": 5, "currency": "USD"}),
        )
        .await;
    assert_error(status, &err, StatusCode::FORBIDDEN, "permission_error", "sandbox_only");
}

async fn replacements_share_the_balance_and_retire_the_old_card(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 10_000).await;
    let card = app.card_with_balance(&t.sandbox, "GPR", 700).await;
    let old = card["id"].as_str().unwrap();
    let (status, replaced) = app
        .post(
            &t.sandbox,
            &format!("/cards/{old}/replace"),
            &json!({"reason": "stolen"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    let new = replaced["card"]["id"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(replaced["card"]["replaces"], old);
    assert_eq!(replaced["card"]["replacement_reason"], "stolen");
    assert_ne!(replaced["card"]["last4"], Value::Null);
    let (_, old_now) = app.get(&t.sandbox, &format!("/cards/{old}")).await;
    assert_eq!(old_now["card"]["state"], "CANCELLED", "stolen: closed at once");
    assert_eq!(old_now["card"]["replaced_by"], new);
    let (_, balance) = app.get(&t.sandbox, &format!("/cards/{new}/balance")).await;
    assert_eq!(balance["balance"]["balance"], 700, "same balance");
    let (status, err) = app
        .post(&t.sandbox, &format!("/cards/{old}/replace"), &json!({"reason": "lost"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");

    // Damaged, replaced by a physical card: the old one works until the new one is activated.
    let (status, physical) = app
        .post(
            &t.sandbox,
            &format!("/cards/{new}/replace"),
            &json!({"reason": "damaged", "form_factor": "physical"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{physical}");
    let third = physical["card"]["id"].as_str().unwrap();
    assert_eq!(physical["card"]["state"], "CREATED");
    let (_, still) = app.get(&t.sandbox, &format!("/cards/{new}")).await;
    assert_eq!(still["card"]["state"], "ACTIVE");
    post_state(&app, &t.sandbox, third, "activate").await;
    let (_, retired) = app.get(&t.sandbox, &format!("/cards/{new}")).await;
    assert_eq!(retired["card"]["state"], "CANCELLED");
    let (_, balance) = app.get(&t.sandbox, &format!("/cards/{third}/balance")).await;
    assert_eq!(balance["balance"]["balance"], 700);
    let (status, err) = app
        .post(
            &t.sandbox,
            &format!("/cards/{third}/replace"),
            &json!({"reason": "misplaced"}),
        )
        .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
}

fn luhn(number: &str) -> bool {
    cardplane_domain::pan::luhn_valid(number)
}

async fn reveal_needs_permission_is_audited_and_pans_never_rest_in_clear(app: TestApp) {
    let t = app.tenant_with(&[Permission::Reveal]).await;
    let plain = {
        let (_, k) = app.post(&t.sandbox, "/api_keys", &json!({"name": "no reveal"})).await;
        Creds {
            id: k["api_key"]["id"].as_str().unwrap().into(),
            secret: k["secret"].as_str().unwrap().into(),
        }
    };
    app.program(&t.sandbox, "GPR", "411111", 0).await;
    let mut pans = Vec::new();
    for _ in 0..5 {
        let card = app.card_with_balance(&t.sandbox, "GPR", 0).await;
        let id = card["id"].as_str().unwrap();
        assert!(!card.to_string().contains("pan_"), "no PAN material in card objects");
        let (status, err) = app.post(&plain, &format!("/cards/{id}/reveal"), &json!({})).await;
        assert_error(
            status,
            &err,
            StatusCode::FORBIDDEN,
            "permission_error",
            "reveal_not_permitted",
        );
        let r = app
            .request(Method::POST, &format!("/cards/{id}/reveal"), &t.sandbox)
            .header("Idempotency-Key", format!("reveal-{id}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
        let secrets: Value = r.json().await.unwrap();
        let pan = secrets["pan"].as_str().unwrap().to_owned();
        assert!(luhn(&pan) && pan.starts_with("411111") && pan.len() == 16, "{pan}");
        assert!(pan.ends_with(card["last4"].as_str().unwrap()));
        assert_eq!(secrets["cvv"].as_str().unwrap().len(), 3);
        assert_eq!(secrets["expiration"], card["expiration"]);
        // A retry with the same key runs again (and is audited again) rather than replaying a stored PAN.
        let (status, again) = send(
            app.request(Method::POST, &format!("/cards/{id}/reveal"), &t.sandbox)
                .header("Idempotency-Key", format!("reveal-{id}"))
                .json(&json!({})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["pan"], pan.as_str());
        assert_eq!(again["cvv"], secrets["cvv"], "CVV is derived, stable");
        pans.push(pan);
    }
    let (_, events) = app.get(&t.sandbox, "/events?limit=50").await;
    let reveals = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "card.revealed")
        .count();
    assert_eq!(reveals, 10, "every reveal is recorded");
    let logs = captured_logs();
    let events_text = events.to_string();
    let stored = match app.db.sqlite_path() {
        Some(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => postgres_dump(&app.db.url).await,
    };
    for pan in &pans {
        assert!(!stored.contains(pan.as_str()), "a PAN is stored in clear");
        assert!(!logs.contains(pan.as_str()), "a PAN reached the logs");
        assert!(!events_text.contains(pan.as_str()), "a PAN is in an event");
    }
}

app_tests!(
    program_config_is_validated,
    programs_decide_who_may_get_which_card,
    every_legal_and_illegal_card_transition,
    the_sandbox_ships_physical_cards,
    replacements_share_the_balance_and_retire_the_old_card,
    reveal_needs_permission_is_audited_and_pans_never_rest_in_clear
);
