//! Disputes over real HTTP on both backends: filing rules, every network step in the sandbox,
//! Regulation E provisional credit from the deadline job (with an injected clock), the journals
//! behind each outcome, evidence, operators' queue and report, isolation, and the books after a
//! randomized workload.

use cardplane_domain::Timestamp;
use cardplane_testkit::{Backend, both_backends};
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ops::{admin, png};
use crate::support::{Creds, TestApp, assert_error, send};

const DAY: i64 = 86_400;

struct Fixture {
    key: Creds,
    card_id: String,
}

async fn fixture(app: &TestApp, load: i64) -> Fixture {
    let t = app.tenant().await;
    app.program(&t.sandbox, "disputes", "411111", 1_000_000).await;
    let card = app.card_with_balance(&t.sandbox, "disputes", load).await;
    Fixture {
        key: t.sandbox,
        card_id: card["id"].as_str().unwrap().to_owned(),
    }
}

/// An authorization of `amount`, cleared in full: a disputable purchase. Returns its id.
async fn purchase(app: &TestApp, f: &Fixture, amount: i64) -> String {
    let (status, auth) = app
        .post(
            &f.key,
            "/simulate/authorizations",
            &json!({"card_id": f.card_id, "amount": amount}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{auth}");
    assert_eq!(auth["decision"], "approved", "{auth}");
    let id = auth["authorization_id"].as_str().unwrap().to_owned();
    let (status, cleared) = app
        .post(&f.key, "/simulate/clearings", &json!({"authorization_id": id}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    id
}

async fn file(app: &TestApp, f: &Fixture, txn: &str, body: Value) -> (StatusCode, Value) {
    app.post(&f.key, &format!("/transactions/{txn}/disputes"), &body).await
}

async fn filed(app: &TestApp, f: &Fixture, txn: &str, amount: i64, reason: &str) -> Value {
    let (status, d) = file(app, f, txn, json!({"amount": amount, "reason": reason})).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    d["dispute"].clone()
}

/// Filed `days` ago (so Regulation E's clock has run that long); returns the dispute's id.
async fn filed_days_ago(app: &TestApp, f: &Fixture, txn: &str, amount: i64, reason: &str, days: i64) -> String {
    let body = json!({"amount": amount, "reason": reason, "customer_filed_at": days_ago(days)});
    let (status, d) = file(app, f, txn, body).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    d["dispute"]["id"].as_str().unwrap().to_owned()
}

/// Sets fields of a program's dispute policy.
async fn set_policy(app: &TestApp, key: &Creds, program: &str, policy: Value) {
    let (status, body) = send(
        app.request(Method::PUT, &format!("/programs/{program}/dispute_policy"), key)
            .json(&policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn network(app: &TestApp, f: &Fixture, id: &str, body: Value) -> (StatusCode, Value) {
    app.post(&f.key, &format!("/simulate/disputes/{id}/network"), &body)
        .await
}

async fn step(app: &TestApp, f: &Fixture, id: &str, action: &str) -> Value {
    let (status, d) = network(app, f, id, json!({"action": action})).await;
    assert_eq!(status, StatusCode::OK, "{action}: {d}");
    d["dispute"].clone()
}

async fn balance(app: &TestApp, f: &Fixture) -> i64 {
    let (_, b) = app.get(&f.key, &format!("/cards/{}/balance", f.card_id)).await;
    b["balance"]["balance"].as_i64().unwrap()
}

async fn books_clean(app: &TestApp) {
    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

async fn event_types(app: &TestApp, f: &Fixture, object: &str) -> Vec<String> {
    let (_, events) = app.get(&f.key, "/events?limit=50").await;
    let mut types: Vec<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["object_id"] == object)
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    types.reverse();
    types
}

async fn grant_due_credit(app: &TestApp, at: Timestamp) -> cardplane_engine::disputes::DeadlineRun {
    app.state.disputes.run_deadlines(at).await.unwrap()
}

fn days_ago(days: i64) -> String {
    Timestamp::now().plus_secs(-days * DAY).to_rfc3339()
}

async fn a_dispute_goes_from_filing_to_a_won_case(app: TestApp) {
    let f = fixture(&app, 10_000).await;
    let txn = purchase(&app, &f, 4_000).await;
    assert_eq!(balance(&app, &f).await, 6_000);

    let d = filed(&app, &f, &txn, 2_500, "merchandise_not_received").await;
    let id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["status"], "new");
    assert_eq!(d["reason_family"], "consumer_dispute");
    assert_eq!(d["network_reason_code"], "13.1");
    assert_eq!(d["provisional_credit"]["amount"], 0);
    let (status, got) = app.get(&f.key, &format!("/disputes/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["dispute"]["id"], id.as_str());

    // The clock grants provisional credit 10 business days on: no earlier.
    assert_eq!(grant_due_credit(&app, Timestamp::now()).await.credits_granted, 0);
    let run = grant_due_credit(&app, Timestamp::now().plus_secs(16 * DAY)).await;
    assert_eq!(run.credits_granted, 1, "{run:?}");
    assert_eq!(
        balance(&app, &f).await,
        8_500,
        "credit from the program's dispute account"
    );

    for action in ["submit", "representment", "pre_arbitrate", "arbitrate"] {
        step(&app, &f, &id, action).await;
    }
    let (status, won) = network(&app, &f, &id, json!({"action": "ruling", "ruling": "cardholder"})).await;
    assert_eq!(status, StatusCode::OK, "{won}");
    let won = &won["dispute"];
    assert_eq!(won["status"], "closed");
    assert_eq!(won["disposition"], "won");
    assert_eq!(won["recovered_amount"], 2_500);
    for stamp in [
        "submitted_at",
        "representment_at",
        "pre_arbitration_at",
        "arbitration_at",
        "closed_at",
    ] {
        assert!(won["timestamps"][stamp].is_string(), "{stamp}: {won}");
    }
    assert_eq!(balance(&app, &f).await, 8_500, "a won case keeps the credit");
    assert_eq!(
        event_types(&app, &f, &id).await,
        [
            "dispute.created",
            "dispute.provisional_credit.granted",
            "dispute.updated",
            "dispute.updated",
            "dispute.updated",
            "dispute.updated",
            "dispute.closed"
        ]
    );
    // Closed is closed: any further step is refused with its own code.
    let (status, body) = network(&app, &f, &id, json!({"action": "submit"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict_error", "dispute_closed");
    books_clean(&app).await;
}

async fn filing_is_refused_for_what_cannot_be_disputed(app: TestApp) {
    let f = fixture(&app, 10_000).await;

    // An authorization that is only pending is not disputable.
    let (_, auth) = app
        .post(
            &f.key,
            "/simulate/authorizations",
            &json!({"card_id": f.card_id, "amount": 500}),
        )
        .await;
    let pending = auth["authorization_id"].as_str().unwrap();
    let (status, body) = file(&app, &f, pending, json!({"amount": 500, "reason": "other"})).await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "conflict_error",
        "transaction_not_disputable",
    );

    let txn = purchase(&app, &f, 1_000).await;
    let (status, body) = file(&app, &f, &txn, json!({"amount": 1_001, "reason": "other"})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "dispute_amount_exceeds_disputable",
    );
    let (status, body) = file(&app, &f, &txn, json!({"amount": 100, "reason": "bad_reason"})).await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    let future = Timestamp::now().plus_secs(DAY).to_rfc3339();
    let (status, body) = file(
        &app,
        &f,
        &txn,
        json!({"amount": 100, "reason": "other", "customer_filed_at": future}),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "customer_filed_at_in_future",
    );

    // Partial disputes add up to the cleared amount, and no further.
    filed(&app, &f, &txn, 600, "incorrect_amount").await;
    let (status, body) = file(&app, &f, &txn, json!({"amount": 600, "reason": "incorrect_amount"})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "dispute_amount_exceeds_disputable",
    );
    filed(&app, &f, &txn, 400, "duplicate_processing").await;

    // The per-card fraud cap, from the program's policy.
    set_policy(&app, &f.key, "disputes", json!({"fraud_disputes_per_card_max": 1})).await;
    let first = purchase(&app, &f, 100).await;
    let second = purchase(&app, &f, 100).await;
    filed(&app, &f, &first, 100, "fraud_card_not_present").await;
    let (status, body) = file(
        &app,
        &f,
        &second,
        json!({"amount": 100, "reason": "fraud_card_present"}),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "fraud_dispute_limit_reached",
    );
    filed(&app, &f, &second, 100, "not_as_described").await;
    let (_, list) = app.get(&f.key, &format!("/disputes?card_id={}", f.card_id)).await;
    assert_eq!(list["total"], 4, "{list}");
    let (status, _) = app.get(&f.key, "/disputes?status=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    books_clean(&app).await;
}

async fn a_lost_case_takes_the_credit_back_and_the_program_pays_what_the_card_cannot(app: TestApp) {
    let f = fixture(&app, 5_000).await;
    let txn = purchase(&app, &f, 3_000).await;
    let id = filed_days_ago(&app, &f, &txn, 3_000, "not_as_described", 20).await;
    assert_eq!(grant_due_credit(&app, Timestamp::now()).await.credits_granted, 1);
    assert_eq!(balance(&app, &f).await, 5_000);

    // The cardholder spends most of the credit before the case is lost.
    purchase(&app, &f, 4_000).await;
    assert_eq!(balance(&app, &f).await, 1_000);
    step(&app, &f, &id, "submit").await;
    step(&app, &f, &id, "representment").await;
    let lost = step(&app, &f, &id, "accept_representment").await;
    assert_eq!(lost["disposition"], "lost");
    assert_eq!(lost["provisional_credit"]["amount"], 0);
    assert_eq!(
        balance(&app, &f).await,
        0,
        "the card gives back what it can, never below its floor"
    );
    let types = event_types(&app, &f, &id).await;
    assert!(
        types.contains(&"dispute.provisional_credit.reversed".to_owned()),
        "{types:?}"
    );
    books_clean(&app).await;
}

async fn the_resolution_deadline_makes_the_credit_final(app: TestApp) {
    let f = fixture(&app, 5_000).await;
    let txn = purchase(&app, &f, 1_000).await;
    let d = filed(&app, &f, &txn, 1_000, "cancelled_recurring").await;
    let id = d["id"].as_str().unwrap();
    // Chip at a US merchant on an account opened today: a new-account case, 90 days.
    let due = Timestamp::parse_rfc3339(d["resolution_due_at"].as_str().unwrap()).unwrap();
    let filed_at = Timestamp::parse_rfc3339(d["timestamps"]["customer_filed_at"].as_str().unwrap()).unwrap();
    assert_eq!((due.as_micros() - filed_at.as_micros()) / 1_000_000 / DAY, 90);

    let near = due.plus_secs(-2 * DAY);
    let run = grant_due_credit(&app, near).await;
    assert_eq!((run.credits_granted, run.flagged), (1, 0), "{run:?}");
    let run = grant_due_credit(&app, near).await;
    assert_eq!(run.flagged, 1, "{run:?}");
    let run = grant_due_credit(&app, due.plus_secs(1)).await;
    assert_eq!(run.credits_made_final, 1, "{run:?}");
    let (_, closed) = app.get(&f.key, &format!("/disputes/{id}")).await;
    assert_eq!(closed["dispute"]["disposition"], "won");
    assert_eq!(closed["dispute"]["resolution_reason"], "resolution_deadline_passed");
    assert_eq!(balance(&app, &f).await, 5_000);
    assert_eq!(grant_due_credit(&app, due.plus_secs(DAY)).await, Default::default());
    books_clean(&app).await;
}

async fn a_partial_ruling_returns_part_and_withdrawal_returns_the_rest(app: TestApp) {
    let f = fixture(&app, 10_000).await;
    let txn = purchase(&app, &f, 2_000).await;
    let d = filed(&app, &f, &txn, 2_000, "incorrect_amount").await;
    let id = d["id"].as_str().unwrap().to_owned();
    grant_due_credit(&app, Timestamp::now().plus_secs(20 * DAY)).await;
    assert_eq!(balance(&app, &f).await, 10_000);
    for action in ["submit", "representment", "pre_arbitrate", "arbitrate"] {
        step(&app, &f, &id, action).await;
    }
    let (status, body) = network(
        &app,
        &f,
        &id,
        json!({"action": "ruling", "ruling": "partial", "recovered_amount": 2_000}),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "conflict_error",
        "dispute_partial_amount_invalid",
    );
    let (status, body) = network(
        &app,
        &f,
        &id,
        json!({"action": "ruling", "ruling": "partial", "recovered_amount": 1_500}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dispute"]["disposition"], "partially_won");
    assert_eq!(balance(&app, &f).await, 9_500, "500 of the credit went back");

    // A withdrawn claim gives back what was credited; a withdrawn case is closed.
    let other = purchase(&app, &f, 700).await;
    let d = filed(&app, &f, &other, 700, "cancelled").await;
    let id = d["id"].as_str().unwrap().to_owned();
    grant_due_credit(&app, Timestamp::now().plus_secs(20 * DAY)).await;
    let before = balance(&app, &f).await;
    let (status, w) = app
        .post(
            &f.key,
            &format!("/disputes/{id}/withdraw"),
            &json!({"reason": "found the parcel"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["dispute"]["disposition"], "withdrawn");
    assert_eq!(balance(&app, &f).await, before - 700);
    let (status, body) = app.post(&f.key, &format!("/disputes/{id}/withdraw"), &json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict_error", "dispute_closed");
    books_clean(&app).await;
}

fn evidence_form(n: usize) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().text("kind", "other").part(
        "file",
        reqwest::multipart::Part::bytes(png(64 + n))
            .file_name(format!("receipt-{n}.png"))
            .mime_str("image/png")
            .unwrap(),
    )
}

async fn evidence_uploads_at_once_all_land_and_a_representment_carries_its_document(app: TestApp) {
    let f = fixture(&app, 10_000).await;
    let txn = purchase(&app, &f, 1_000).await;
    let d = filed(&app, &f, &txn, 1_000, "not_as_described").await;
    let id = d["id"].as_str().unwrap().to_owned();
    let uploads = (0..6).map(|n| {
        send(
            app.request(Method::POST, &format!("/disputes/{id}/evidence"), &f.key)
                .multipart(evidence_form(n)),
        )
    });
    for (status, body) in futures::future::join_all(uploads).await {
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["evidence"]["submitted_by"], "custodian");
    }
    let (_, list) = app.get(&f.key, &format!("/disputes/{id}/evidence")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 6, "{list}");

    step(&app, &f, &id, "submit").await;
    let (status, body) = send(
        app.request(Method::POST, &format!("/simulate/disputes/{id}/representment"), &f.key)
            .multipart(evidence_form(99)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["evidence"]["submitted_by"], "merchant");
    let (_, got) = app.get(&f.key, &format!("/disputes/{id}")).await;
    assert_eq!(got["dispute"]["status"], "representment");
}

async fn retries_replay_and_other_tenants_and_environments_see_nothing(app: TestApp) {
    let f = fixture(&app, 10_000).await;
    let txn = purchase(&app, &f, 1_000).await;
    let body = json!({"amount": 300, "reason": "duplicate_processing"});
    let path = format!("/transactions/{txn}/disputes");
    let (s1, first) = app.post_idem(&f.key, &path, "dispute-retry-1", &body).await;
    let (s2, second) = app.post_idem(&f.key, &path, "dispute-retry-1", &body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, second, "a retry replays the first answer");
    let (_, list) = app.get(&f.key, "/disputes").await;
    assert_eq!(list["total"], 1);
    let id = first["dispute"]["id"].as_str().unwrap();

    let other = app.tenant().await;
    for creds in [&other.sandbox, &other.live] {
        let (status, _) = app.get(creds, &format!("/disputes/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.post(creds, &format!("/disputes/{id}/withdraw"), &json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app.post(creds, &path, &body).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app.get(&other.live, "/disputes").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            &other.live,
            &format!("/simulate/disputes/{id}/network"),
            &json!({"action": "submit"}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "permission_error", "sandbox_only");
}

async fn operators_work_the_queue_and_read_the_report(app: TestApp) {
    let root = admin(&app).await;
    let f = fixture(&app, 10_000).await;
    let txn = purchase(&app, &f, 1_000).await;
    let d = filed(&app, &f, &txn, 1_000, "fraud_card_not_present").await;
    let id = d["id"].as_str().unwrap().to_owned();

    let (status, queue) = root.get(&app, "/ops/disputes").await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(queue["data"][0]["dispute"]["id"], id.as_str());
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/assign"),
            &json!({"assignee_id": root.id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assignee_id"], root.id.as_str());
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/notes"),
            &json!({"body": "called the cardholder"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["notes"][0]["body"], "called the cardholder");
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/actions"),
            &json!({"action": "grant_provisional_credit"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_missing",
    );
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/actions"),
            &json!({"action": "grant_provisional_credit", "reason": "clear fraud pattern"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dispute"]["provisional_credit"]["amount"], 1_000);
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/actions"),
            &json!({"action": "grant_provisional_credit", "reason": "again"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "conflict_error",
        "provisional_credit_already_granted",
    );
    for action in ["request_evidence", "submit"] {
        let (status, body) = root
            .post(&app, &format!("/ops/disputes/{id}/actions"), &json!({"action": action}))
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/actions"),
            &json!({"action": "merchant_accept"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dispute"]["disposition"], "won");

    let (status, report) = root.get(&app, "/ops/reports/disputes").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let fraud = report["by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "fraud_card_not_present")
        .unwrap();
    assert_eq!(
        (fraud["won"].as_i64(), fraud["win_rate_percent"].as_f64()),
        (Some(1), Some(100.0))
    );
    let csv = root
        .request(&app, Method::GET, "/ops/reports/disputes?format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.text()
            .await
            .unwrap()
            .contains("by_reason,fraud_card_not_present,0,1,1")
    );

    let (_, audit) = root.get(&app, "/ops/audit?limit=50").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "dispute.assigned",
        "dispute.note_added",
        "dispute.grant_provisional_credit",
        "dispute.submit",
    ] {
        assert!(actions.contains(&expected), "{expected} audited: {actions:?}");
    }
    books_clean(&app).await;
}

/// Random steps by custodian, network and clock over many cases: every answer is a 2xx or a
/// documented 4xx, and the books balance at the end.
async fn the_books_balance_after_a_randomized_dispute_workload(app: TestApp) {
    let f = fixture(&app, 50_000).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut ids = Vec::new();
    for _ in 0..8 {
        let amount = rng.random_range(100..3_000);
        let txn = purchase(&app, &f, amount).await;
        let (status, d) = file(
            &app,
            &f,
            &txn,
            json!({"amount": rng.random_range(1..=amount), "reason": "not_as_described"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{d}");
        ids.push(d["dispute"]["id"].as_str().unwrap().to_owned());
    }
    let actions = [
        "submit",
        "merchant_accept",
        "representment",
        "accept_representment",
        "pre_arbitrate",
        "arbitrate",
        "ruling",
    ];
    let mut clock = Timestamp::now();
    for _ in 0..60 {
        let id = &ids[rng.random_range(0..ids.len())];
        let status = match rng.random_range(0..10) {
            0 => {
                clock = clock.plus_secs(rng.random_range(1..20) * DAY);
                grant_due_credit(&app, clock).await;
                continue;
            }
            1 => app
                .post(&f.key, &format!("/disputes/{id}/withdraw"), &json!({}))
                .await
                .0
                .as_u16(),
            2 => {
                // Spending between steps, so reversals meet cards with less than was credited.
                purchase(&app, &f, rng.random_range(1..500)).await;
                200
            }
            _ => {
                let action = actions[rng.random_range(0..actions.len())];
                let ruling = ["cardholder", "merchant", "partial"][rng.random_range(0..3)];
                let body = json!({"action": action, "ruling": ruling, "recovered_amount": 1});
                network(&app, &f, id, body).await.0.as_u16()
            }
        };
        assert!(status == 200 || status == 400 || status == 409, "{status}");
    }
    books_clean(&app).await;
}

/// The server's own scheduled job grants the credit once it is due, and only where the program's
/// policy lets it: `kyc_verified_only` waits for KYC, `manual` never grants by itself.
async fn the_scheduled_job_grants_due_credit_as_the_policy_says(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.dispute_deadlines_interval_ms = 50).await else {
        return;
    };
    let f = fixture(&app, 10_000).await;
    set_policy(&app, &f.key, "disputes", json!({"provisional_credit": "manual"})).await;
    let manual = purchase(&app, &f, 300).await;
    let manual_id = filed_days_ago(&app, &f, &manual, 300, "other", 20).await;

    // A second program of the same tenant grants credit to KYC-verified cardholders only.
    app.program(&f.key, "verified", "422222", 100_000).await;
    let card = app.card_with_balance(&f.key, "verified", 1_000).await;
    let g = Fixture {
        key: f.key.clone(),
        card_id: card["id"].as_str().unwrap().to_owned(),
    };
    set_policy(
        &app,
        &f.key,
        "verified",
        json!({"provisional_credit": "kyc_verified_only"}),
    )
    .await;
    let verified = purchase(&app, &g, 400).await;
    let verified_id = filed_days_ago(&app, &g, &verified, 400, "other", 20).await;

    // Bounded by count, not time: the job runs every 50 ms; give it up to 400 looks.
    let mut granted = 0;
    for _ in 0..400 {
        let (_, got) = app.get(&f.key, &format!("/disputes/{verified_id}")).await;
        granted = got["dispute"]["provisional_credit"]["amount"].as_i64().unwrap();
        if granted > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(granted, 400, "the cardholder passed KYC: credit granted by the job");
    // The manual program's case was as due, and the job has looked at it: still nothing.
    let (_, got) = app.get(&f.key, &format!("/disputes/{manual_id}")).await;
    assert_eq!(got["dispute"]["provisional_credit"]["amount"], 0);
    books_clean(&app).await;
}

/// Every dispute answer, custodian's and operators', matches the schema the document gives it.
async fn dispute_answers_match_the_openapi_document(app: TestApp) {
    let root = admin(&app).await;
    let f = fixture(&app, 10_000).await;
    let txn = purchase(&app, &f, 1_000).await;
    let check = |method: Method, template: &str, status: StatusCode, answer: &Value| {
        crate::contract::assert_documented(&method, template, status, answer);
    };
    let (status, d) = file(&app, &f, &txn, json!({"amount": 500, "reason": "other"})).await;
    check(Method::POST, "/transactions/{transaction_id}/disputes", status, &d);
    let id = d["dispute"]["id"].as_str().unwrap().to_owned();
    let (status, body) = app.get(&f.key, &format!("/disputes/{id}")).await;
    check(Method::GET, "/disputes/{dispute_id}", status, &body);
    let (status, body) = app.get(&f.key, "/disputes?status=new").await;
    check(Method::GET, "/disputes", status, &body);
    let (status, body) = send(
        app.request(Method::POST, &format!("/disputes/{id}/evidence"), &f.key)
            .multipart(evidence_form(1)),
    )
    .await;
    check(Method::POST, "/disputes/{dispute_id}/evidence", status, &body);
    let (status, body) = app.get(&f.key, &format!("/disputes/{id}/evidence")).await;
    check(Method::GET, "/disputes/{dispute_id}/evidence", status, &body);
    let (status, body) = app.get(&f.key, "/programs/disputes/dispute_policy").await;
    check(Method::GET, "/programs/{program_id}/dispute_policy", status, &body);
    let (status, body) = network(&app, &f, &id, json!({"action": "submit"})).await;
    check(Method::POST, "/simulate/disputes/{dispute_id}/network", status, &body);
    let (status, body) = root.get(&app, "/ops/disputes").await;
    check(Method::GET, "/ops/disputes", status, &body);
    let (status, body) = root.get(&app, &format!("/ops/disputes/{id}")).await;
    check(Method::GET, "/ops/disputes/{dispute_id}", status, &body);
    let (status, body) = root
        .post(&app, &format!("/ops/disputes/{id}/notes"), &json!({"body": "checked"}))
        .await;
    check(Method::POST, "/ops/disputes/{dispute_id}/notes", status, &body);
    let (status, body) = root
        .post(
            &app,
            &format!("/ops/disputes/{id}/actions"),
            &json!({"action": "representment"}),
        )
        .await;
    check(Method::POST, "/ops/disputes/{dispute_id}/actions", status, &body);
    let (status, body) = root.get(&app, "/ops/reports/disputes").await;
    check(Method::GET, "/ops/reports/disputes", status, &body);
    let (status, body) = app.post(&f.key, &format!("/disputes/{id}/withdraw"), &json!({})).await;
    check(Method::POST, "/disputes/{dispute_id}/withdraw", status, &body);
}

both_backends!(the_scheduled_job_grants_due_credit_as_the_policy_says,);
app_tests!(
    dispute_answers_match_the_openapi_document,
    a_dispute_goes_from_filing_to_a_won_case,
    filing_is_refused_for_what_cannot_be_disputed,
    a_lost_case_takes_the_credit_back_and_the_program_pays_what_the_card_cannot,
    the_resolution_deadline_makes_the_credit_final,
    a_partial_ruling_returns_part_and_withdrawal_returns_the_rest,
    evidence_uploads_at_once_all_land_and_a_representment_carries_its_document,
    retries_replay_and_other_tenants_and_environments_see_nothing,
    operators_work_the_queue_and_read_the_report,
    the_books_balance_after_a_randomized_dispute_workload,
);
