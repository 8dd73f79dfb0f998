use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cardplane_domain::ids::CardId;
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::net::{NetCard, NetMessage, Network, merchant, ntid};
use crate::support::{TestApp, send};

async fn network(app: &TestApp, net: &Network, message: NetMessage) -> Value {
    let (status, answer) = app.post(&net.credential, message.path(), &message.into_json()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn balance(app: &TestApp, net: &Network, card: &NetCard) -> (i64, i64, i64) {
    let (_, b) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/balance", card.id))
        .await;
    let b = &b["balance"];
    (
        b["balance"].as_i64().unwrap(),
        b["held"].as_i64().unwrap(),
        b["spendable"].as_i64().unwrap(),
    )
}

async fn assert_books_clean(app: &TestApp) {
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

async fn a_hold_is_cleared_reversed_and_refunded_through_the_ledger(app: TestApp) {
    let net = app.network(100_000).await;
    let c = app.net_card(&net, 10_000).await;

    let first = ntid();
    let answer = network(&app, &net, NetMessage::chip_authorization(&c, 2_500).id(&first)).await;
    assert_eq!(answer["decision"], "approved", "{answer}");
    assert_eq!(answer["response_code"], "00");
    assert_eq!(answer["approved_amount"], 2_500);
    assert_eq!(answer["available_balance"], 7_500);
    assert_eq!(answer["authorization_code"].as_str().unwrap().len(), 6);
    assert_eq!(
        balance(&app, &net, &c).await,
        (10_000, 2_500, 7_500),
        "a hold: spendable drops, balance does not"
    );

    // Partial clearing: posts 2,000 and releases the other 500.
    let cleared = network(&app, &net, NetMessage::clearing(&first, 2_000)).await;
    assert_eq!(cleared["decision"], "approved", "{cleared}");
    assert_eq!(cleared["authorization_id"], answer["authorization_id"]);
    assert_eq!(balance(&app, &net, &c).await, (8_000, 0, 8_000));
    let id = answer["authorization_id"].as_str().unwrap();
    let (_, t) = app.get(&net.tenant.sandbox, &format!("/transactions/{id}")).await;
    let t = &t["transaction"];
    assert_eq!(t["state"], "COMPLETE");
    assert_eq!(
        (
            t["authorized_amount"].as_i64(),
            t["cleared_amount"].as_i64(),
            t["held_amount"].as_i64()
        ),
        (Some(2_500), Some(2_000), Some(0))
    );
    let checks: Vec<&str> = t["decision_trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "card",
            "card_state",
            "program",
            "spend_controls",
            "merchant_rules",
            "funds",
            "risk_score"
        ]
    );
    assert!(t["timestamps"]["received_at"].is_string() && t["timestamps"]["answered_at"].is_string());
    assert_eq!(t["merchant"]["mcc"], "5411");

    // A partial then a full reversal.
    let second = ntid();
    network(&app, &net, NetMessage::chip_authorization(&c, 1_000).id(&second)).await;
    let partial = network(&app, &net, NetMessage::reversal(&second).amount(400)).await;
    assert_eq!(partial["approved_amount"], 400);
    assert_eq!(balance(&app, &net, &c).await, (8_000, 600, 7_400));
    network(&app, &net, NetMessage::reversal(&second)).await;
    assert_eq!(balance(&app, &net, &c).await, (8_000, 0, 8_000));
    let again = network(&app, &net, NetMessage::reversal(&second)).await;
    assert_eq!(
        (again["decision"].as_str(), again["reason"].as_str()),
        (Some("declined"), Some("original_not_pending"))
    );

    // Refunds, linked and not; an incremental authorization.
    network(&app, &net, NetMessage::refund_of(&first, 300)).await;
    network(
        &app,
        &net,
        NetMessage::refund(&c, 200).merchant(merchant("m_2", "Shop", "5651", "Austin")),
    )
    .await;
    assert_eq!(balance(&app, &net, &c).await, (8_500, 0, 8_500));
    let hotel = ntid();
    network(&app, &net, NetMessage::chip_authorization(&c, 1_000).id(&hotel)).await;
    let inc = NetMessage::chip_authorization(&c, 500).original(&hotel);
    let raised = network(&app, &net, inc).await;
    assert_eq!(raised["decision"], "approved", "{raised}");
    assert_eq!(balance(&app, &net, &c).await, (8_500, 1_500, 7_000));

    let (_, list) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/transactions", c.id))
        .await;
    assert_eq!(list["total"], 5);
    let (_, events) = app.get(&net.tenant.sandbox, "/events?limit=50").await;
    let count = |ty: &str| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["type"] == ty)
            .count()
    };
    assert_eq!(
        (count("transaction.created"), count("transaction.updated")),
        (5, 4),
        "clearing, two reversals, one increment"
    );
    assert_books_clean(&app).await;
}

async fn each_decline_reason_answers_with_its_response_code(app: TestApp) {
    let net = app.network(100_000).await;
    let t = &net.tenant.sandbox;
    let decline = |answer: &Value, code: &str, reason: &str| {
        assert_eq!(answer["decision"], "declined", "{answer}");
        assert_eq!(answer["response_code"], code, "{answer}");
        assert_eq!(answer["reason"], reason, "{answer}");
    };
    let c = app.net_card(&net, 1_000).await;
    let unknown = NetMessage::chip_authorization(&c, 100).set("pan", "4111111111111111");
    decline(&network(&app, &net, unknown).await, "14", "card_not_found");
    let wrong_exp = NetMessage::chip_authorization(&c, 100).set("expiration", "2099-01");
    decline(&network(&app, &net, wrong_exp).await, "14", "expiration_mismatch");
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c, 1_001)).await,
        "51",
        "insufficient_funds",
    );
    let partial = NetMessage::chip_authorization(&c, 1_500).partial(true);
    let answer = network(&app, &net, partial).await;
    assert_eq!(
        (answer["response_code"].as_str(), answer["approved_amount"].as_i64()),
        (Some("10"), Some(1_000)),
        "{answer}"
    );
    let eur = NetMessage::chip_authorization(&c, 1).set("currency", "EUR");
    decline(&network(&app, &net, eur).await, "05", "currency_mismatch");

    let c2 = app.net_card(&net, 5_000).await;
    app.post(t, &format!("/cards/{}/freeze", c2.id), &json!({})).await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c2, 100)).await,
        "62",
        "card_frozen",
    );
    app.post(t, &format!("/cards/{}/unfreeze", c2.id), &json!({})).await;
    app.post(
        t,
        "/programs/GPR",
        &json!({"merchant_rules": {"blocked_mccs": ["5411"]}}),
    )
    .await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c2, 100)).await,
        "57",
        "mcc_blocked",
    );
    app.post(
        t,
        "/programs/GPR",
        &json!({"merchant_rules": {"allowed_countries": ["CAN"]}}),
    )
    .await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c2, 100)).await,
        "57",
        "country_blocked",
    );
    app.post(
        t,
        "/programs/GPR",
        &json!({"merchant_rules": {}, "spend_controls": [{"amount_limit": 300, "window": "per_transaction"}]}),
    )
    .await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c2, 301)).await,
        "61",
        "spend_limit_exceeded",
    );
    app.post(t, "/programs/GPR", &json!({"spend_controls": []})).await;
    let (status, control) = app
        .post(
            t,
            "/spend_controls",
            &json!({"card_id": c2.id, "count_limit": 1, "window": "day"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{control}");
    assert_eq!(
        network(&app, &net, NetMessage::chip_authorization(&c2, 100)).await["response_code"],
        "00"
    );
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c2, 100)).await,
        "65",
        "velocity_limit_exceeded",
    );
    app.post(t, "/programs/GPR", &json!({"status": "suspended"})).await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&c, 1)).await,
        "05",
        "program_suspended",
    );
    app.post(t, "/programs/GPR", &json!({"status": "active"})).await;

    let holder = app
        .cardholder(t, &crate::support::seed_cardholder("490940000", None))
        .await;
    let (_, physical) = app
        .post(
            t,
            &format!("/cardholders/{}/cards", holder["id"].as_str().unwrap()),
            &json!({"program_id": "GPR", "form_factor": "physical"}),
        )
        .await;
    let pid = physical["card"]["id"].as_str().unwrap();
    let p = app.reveal(t, pid).await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&p, 1)).await,
        "57",
        "card_not_activated",
    );
    app.post(t, &format!("/cards/{pid}/close"), &json!({})).await;
    decline(
        &network(&app, &net, NetMessage::chip_authorization(&p, 1)).await,
        "14",
        "card_cancelled",
    );

    // A card past its expiry month (its expiry moved back in the database, as time would).
    let c3 = app.net_card(&net, 100).await;
    let sql = format!("UPDATE cards SET exp_year = 2020 WHERE id = '{}'", c3.id);
    match app.db.sqlite_path() {
        Some(_) => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
        None => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
    }
    let expired = NetMessage::chip_authorization(&c3, 1).set("expiration", format!("2020-{}", &c3.expiration[5..]));
    decline(&network(&app, &net, expired).await, "54", "card_expired");

    // Every decline is a transaction too, with its trace naming the failed check.
    let (_, txns) = app.get(t, &format!("/cards/{}/transactions", c2.id)).await;
    let declined = txns["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["transaction"]["decline_reason"] == "mcc_blocked")
        .unwrap();
    let trace = declined["transaction"]["decision_trace"].as_array().unwrap();
    assert_eq!(
        trace.iter().find(|s| s["check"] == "merchant_rules").unwrap()["result"],
        "fail"
    );
    assert_eq!(
        trace.iter().find(|s| s["check"] == "funds").unwrap()["result"],
        "skipped"
    );
    assert_books_clean(&app).await;
}

async fn a_repeated_network_message_is_not_applied_twice(app: TestApp) {
    let net = app.network(100_000).await;
    let c = app.net_card(&net, 5_000).await;
    let id = ntid();
    let first = app
        .http
        .post(app.url("/network/authorizations"))
        .basic_auth(&net.credential.id, Some(&net.credential.secret))
        .json(&NetMessage::chip_authorization(&c, 1_000).id(&id).json())
        .send()
        .await
        .unwrap();
    let first_body = first.text().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let req = app
            .http
            .post(app.url("/network/authorizations"))
            .basic_auth(&net.credential.id, Some(&net.credential.secret))
            .json(&NetMessage::chip_authorization(&c, 1_000).id(&id).json());
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.headers().get("network-replayed").is_some(), r.text().await.unwrap())
        }));
    }
    for task in tasks {
        let (replayed, body) = task.await.unwrap();
        assert!(replayed);
        assert_eq!(body, first_body);
    }
    assert_eq!(balance(&app, &net, &c).await, (5_000, 1_000, 4_000), "held once");
    let clearing = NetMessage::clearing(&id, 1_000).id("clr-1");
    network(&app, &net, clearing.clone()).await;
    network(&app, &net, clearing).await;
    assert_eq!(balance(&app, &net, &c).await, (4_000, 0, 4_000), "posted once");
    let (status, _) = send(
        app.http
            .post(app.url("/network/authorizations"))
            .basic_auth(&net.tenant.sandbox.id, Some(&net.tenant.sandbox.secret))
            .json(&NetMessage::chip_authorization(&c, 1).json()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "tenant keys cannot speak for the network"
    );
    assert_books_clean(&app).await;
}

async fn clearing_always_posts_and_never_overdraws(app: TestApp) {
    let net = app.network(100_000).await;
    let c = app.net_card(&net, 1_000).await;
    // A restaurant may clear 20% over the authorization, even on a card frozen since.
    let dinner =
        NetMessage::chip_authorization(&c, 800).merchant(merchant("m_1", "Corner Grocery", "5812", "New York"));
    let id = dinner.ntid().to_owned();
    network(&app, &net, dinner).await;
    app.post(&net.tenant.sandbox, &format!("/cards/{}/freeze", c.id), &json!({}))
        .await;
    network(&app, &net, NetMessage::clearing(&id, 960)).await;
    assert_eq!(balance(&app, &net, &c).await, (40, 0, 40));
    // A force post larger than the balance: the card pays what it has, the program's losses the rest.
    let forced = network(
        &app,
        &net,
        NetMessage::force_post(&c, 100).merchant(merchant("m", "Toll", "4784", "")),
    )
    .await;
    assert_eq!(forced["decision"], "approved");
    assert_eq!(balance(&app, &net, &c).await, (0, 0, 0), "never below the floor");
    let (_, list) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/transactions", c.id))
        .await;
    assert_eq!(list["transactions"][0]["transaction"]["kind"], "force_post");
    assert_books_clean(&app).await;
}

async fn holds_expire_after_their_mcc_ttl(app: TestApp) {
    let net = app.network(100_000).await;
    let c = app.net_card(&net, 5_000).await;
    network(&app, &net, NetMessage::chip_authorization(&c, 1_000)).await;
    let hotel =
        NetMessage::chip_authorization(&c, 2_000).merchant(merchant("m_1", "Corner Grocery", "7011", "New York"));
    let hotel_id = hotel.ntid().to_owned();
    network(&app, &net, hotel).await;
    let now = Timestamp::now();
    assert_eq!(
        app.state
            .engine
            .expire_holds(now.plus_secs(7 * 86_400 - 60))
            .await
            .unwrap(),
        0,
        "not before 7 days"
    );
    assert_eq!(
        app.state
            .engine
            .expire_holds(now.plus_secs(7 * 86_400 + 60))
            .await
            .unwrap(),
        1,
        "the grocery hold"
    );
    assert_eq!(balance(&app, &net, &c).await, (5_000, 2_000, 3_000));
    assert_eq!(
        app.state.engine.expire_holds(now.plus_secs(30 * 86_400)).await.unwrap(),
        0,
        "lodging holds live 31 days"
    );
    assert_eq!(
        app.state
            .engine
            .expire_holds(now.plus_secs(31 * 86_400 + 60))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        app.state.engine.expire_holds(now.plus_secs(40 * 86_400)).await.unwrap(),
        0,
        "each hold resolves once"
    );
    assert_eq!(balance(&app, &net, &c).await, (5_000, 0, 5_000));
    // Clearing after expiry is a force post.
    let late = network(&app, &net, NetMessage::clearing(&hotel_id, 2_000)).await;
    assert_eq!(late["decision"], "approved");
    assert_eq!(balance(&app, &net, &c).await, (3_000, 0, 3_000));
    let (_, list) = app
        .get(&net.tenant.sandbox, &format!("/cards/{}/transactions", c.id))
        .await;
    let states: Vec<&str> = list["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transaction"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["COMPLETE", "EXPIRED", "EXPIRED"]);
    assert_books_clean(&app).await;
}

async fn control_windows_count_exactly_to_their_edges(app: TestApp) {
    let net = app.network(100_000).await;
    let c = app.net_card(&net, 5_000).await;
    let t = &net.tenant.sandbox;
    for (window, secs) in [("day", None), ("trailing", Some(60))] {
        let mut body = json!({"card_id": c.id, "amount_limit": 10_000, "window": window});
        if let Some(s) = secs {
            body["window_secs"] = json!(s);
        }
        assert_eq!(app.post(t, "/spend_controls", &body).await.0, StatusCode::OK);
    }
    network(&app, &net, NetMessage::chip_authorization(&c, 700)).await;
    let (_, txns) = app.get(t, &format!("/cards/{}/transactions", c.id)).await;
    let created = txns["transactions"][0]["transaction"]["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let scope = Scope {
        tenant_id: cardplane_domain::ids::TenantId::parse(&net.tenant.id).unwrap(),
        environment: Environment::Sandbox,
    };
    let card = app
        .state
        .cards
        .get_card(&scope, &CardId::parse(&c.id).unwrap())
        .await
        .unwrap();
    let program = app.state.programs.get_program(&scope, &card.program).await.unwrap();
    let at = |now: Timestamp| {
        let (card, program) = (card.clone(), program.clone());
        let state = app.state.clone();
        async move {
            state
                .engine
                .control_status(&card, &program, now)
                .await
                .unwrap()
                .iter()
                .map(|(u, _)| u.used_amount)
                .collect::<Vec<_>>()
        }
    };
    let t0 = {
        let parsed = time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339).unwrap();
        Timestamp::from_micros(i64::try_from(parsed.unix_timestamp_nanos() / 1000).unwrap())
    };
    // created_at is rendered to the millisecond: stay clear of sub-millisecond edges.
    assert_eq!(at(t0.plus_secs(59)).await, [700, 700], "inside both windows");
    assert_eq!(at(t0.plus_secs(61)).await[1], 0, "out of the 60 s trailing window");
    let next_midnight = cardplane_domain::controls::Window::Day.renews_at(t0, None).unwrap();
    assert_eq!(
        at(Timestamp::from_micros(next_midnight.as_micros() - 1)).await[0],
        700,
        "the last microsecond of the day"
    );
    assert_eq!(at(next_midnight).await[0], 0, "a new day");
    let (_, shown) = app.get(t, &format!("/cards/{}/spend_controls", c.id)).await;
    let controls = shown["spend_controls"].as_array().unwrap();
    assert_eq!(controls.len(), 2);
    assert!(
        controls
            .iter()
            .all(|x| x["amount_used"] == 700 && x["amount_remaining"] == 9_300 && x["renews_at"].is_string()),
        "{shown}"
    );
}

async fn concurrent_authorizations_never_overdraw_or_exceed_a_limit(app: TestApp) {
    let net = app.network(1_000_000).await;
    let mut cards = Vec::new();
    for _ in 0..10 {
        cards.push(app.net_card(&net, 1_000).await);
    }
    // A program-wide daily limit shared by every card, smaller than their total funds.
    let (status, _) = app
        .post(
            &net.tenant.sandbox,
            "/spend_controls",
            &json!({"program_id": "GPR", "amount_limit": 6_000, "window": "day"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cards = Arc::new(cards);
    let approved_total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let cards = cards.clone();
        let creds = net.credential.clone();
        let url = app.url("/network/authorizations");
        let http = app.http.clone();
        let approved_total = approved_total.clone();
        tasks.push(tokio::spawn(async move {
            let c = &cards[i % 10];
            let amount = 150 + (i as i64 * 37) % 300;
            let r: Value = http
                .post(url)
                .basic_auth(&creds.id, Some(&creds.secret))
                .json(&NetMessage::chip_authorization(c, amount).json())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["decision"] == "approved" {
                approved_total.fetch_add(
                    usize::try_from(r["approved_amount"].as_i64().unwrap()).unwrap(),
                    Ordering::SeqCst,
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let approved = i64::try_from(approved_total.load(Ordering::SeqCst)).unwrap();
    assert!(approved <= 6_000, "the shared limit held: {approved}");
    let mut held = 0;
    for c in cards.iter() {
        let (balance, h, spendable) = balance(&app, &net, c).await;
        assert_eq!(balance, 1_000);
        assert!(spendable >= 0, "no card overdrawn");
        held += h;
    }
    assert_eq!(held, approved, "every approval is exactly one hold");
    assert_books_clean(&app).await;
}

async fn two_server_processes_on_one_database_keep_the_invariants(app: TestApp) {
    let net = app.network(1_000_000).await;
    let mut cards = Vec::new();
    for _ in 0..3 {
        cards.push(app.net_card(&net, 2_000).await);
    }
    let second = app.second_server().await;
    let mut tasks = Vec::new();
    for i in 0..48 {
        let base = if i % 2 == 0 { app.base.clone() } else { second.clone() };
        let c = &cards[i % 3];
        let body = NetMessage::chip_authorization(c, 300).json();
        let creds = net.credential.clone();
        let http = app.http.clone();
        tasks.push(tokio::spawn(async move {
            let r: Value = http
                .post(format!("{base}/network/authorizations"))
                .basic_auth(&creds.id, Some(&creds.secret))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["decision"] == "approved"
        }));
    }
    let mut approvals = 0;
    for t in tasks {
        if t.await.unwrap() {
            approvals += 1;
        }
    }
    assert_eq!(approvals, 18, "each card funds exactly six holds of 300");
    for c in &cards {
        assert_eq!(balance(&app, &net, c).await, (2_000, 1_800, 200));
    }
    assert_books_clean(&app).await;
}

async fn stand_in_advice_is_always_recorded_and_never_overdraws(app: TestApp) {
    let net = app.network(100_000).await;
    let c = app.net_card(&net, 500).await;
    app.post(&net.tenant.sandbox, &format!("/cards/{}/freeze", c.id), &json!({}))
        .await;
    let id = ntid();
    let advice = NetMessage::chip_authorization(&c, 800)
        .id(&id)
        .set("stand_in_advice", true);
    let answer = network(&app, &net, advice).await;
    assert_eq!(
        (answer["decision"].as_str(), answer["stand_in"].as_bool()),
        (Some("approved"), Some(true)),
        "{answer}"
    );
    assert_eq!(
        balance(&app, &net, &c).await,
        (500, 500, 0),
        "the hold reserves what the card has"
    );
    network(&app, &net, NetMessage::clearing(&id, 800)).await;
    assert_eq!(balance(&app, &net, &c).await, (0, 0, 0));
    let (_, t) = app
        .get(
            &net.tenant.sandbox,
            &format!("/transactions/{}", answer["authorization_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(t["transaction"]["decision_trace"][0]["check"], "stand_in_advice");
    assert_books_clean(&app).await;
}

app_tests!(
    stand_in_advice_is_always_recorded_and_never_overdraws,
    a_hold_is_cleared_reversed_and_refunded_through_the_ledger,
    each_decline_reason_answers_with_its_response_code,
    a_repeated_network_message_is_not_applied_twice,
    clearing_always_posts_and_never_overdraws,
    holds_expire_after_their_mcc_ttl,
    control_windows_count_exactly_to_their_edges,
    concurrent_authorizations_never_overdraw_or_exceed_a_limit,
    two_server_processes_on_one_database_keep_the_invariants
);
