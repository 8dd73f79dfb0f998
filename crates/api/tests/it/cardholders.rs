use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, captured_logs, seed_cardholder, send};

async fn the_seed_sample_creates_a_cardholder_in_the_seed_shape(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "Apto_GPR", "411111", 1_000_000).await;
    let mut body = seed_cardholder("490940000", Some("your-external-user-id"));
    body["card"] = json!({"design_key": "blue", "program_id": "Apto_GPR", "initial_load": {"currency": "USD", "amount": 200}, "additional_fields": {}});
    let (status, json) = app.post(&t.sandbox, "/cardholders", &body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let c = &json["cardholder"];
    assert_eq!(c["livemode"], false);
    assert!(c["id"].as_str().unwrap().starts_with("crdhldr_"));
    assert_eq!(c["corporation_id"], t.id.as_str());
    assert_eq!(c["email"], "pat@wilson.com");
    assert_eq!(c["kyc_status"], "PASSED");
    for reason in ["kyc_identity_reason", "kyc_address_reason", "kyc_file_reason"] {
        assert!(c[reason].is_null(), "{reason}");
    }
    assert!(c["kyc_passed_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(c["first_name"], "Josh");
    assert_eq!(c["last_name"], "Wilson");
    assert_eq!(c["phone"], 6508881111_i64);
    assert_eq!(c["custodian_uid"], "your-external-user-id");
    let cards = c["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "KYC passed, so the ordered card is issued: {c}");
    assert_eq!(cards[0]["design_key"], "blue");
    assert_eq!(cards[0]["state"], "ACTIVE");
    assert_eq!(cards[0]["program_id"], "Apto_GPR");
    assert_eq!(c["document"], json!({"type": "ssn", "last4": "0000"}));
    assert_eq!(
        c["created_at"].as_str().unwrap().len(),
        "2016-10-19T23:20:17.000Z".len()
    );

    let id = c["id"].as_str().unwrap();
    let (status, fetched) = app.get(&t.sandbox, &format!("/cardholders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, json);

    let (_, orders) = app.get(&t.sandbox, &format!("/cardholders/{id}/card_orders")).await;
    let order = &orders["card_orders"][0];
    assert_eq!(order["status"], "fulfilled", "{orders}");
    assert_eq!(order["card_id"], cards[0]["id"]);
    let card_id = cards[0]["id"].as_str().unwrap();
    let (_, balance) = app.get(&t.sandbox, &format!("/cards/{card_id}/balance")).await;
    assert_eq!(balance["balance"]["balance"], 200);
    assert_eq!(balance["balance"]["spendable"], 200);
    assert_eq!(order["program_id"], "Apto_GPR");
    assert_eq!(order["initial_load"], json!({"currency": "USD", "amount": 200}));

    let (_, events) = app.get(&t.sandbox, "/events").await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    for expected in [
        "cardholder.created",
        "card_order.created",
        "card.created",
        "balance_adjustment.created",
        "card_order.updated",
    ] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    let created = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "cardholder.created")
        .unwrap();
    assert_eq!(created["event"]["data"], json["cardholder"]);
    assert_eq!(created["event"]["livemode"], false);
    let event_id = created["event"]["id"].as_str().unwrap();
    let (status, one) = app.get(&t.sandbox, &format!("/events/{event_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["event"], created["event"]);
}

async fn posting_a_known_custodian_uid_updates_that_cardholder(app: TestApp) {
    let t = app.tenant().await;
    let first = app
        .cardholder(&t.sandbox, &seed_cardholder("490940000", Some("user-42")))
        .await;
    let mut again = seed_cardholder("490940000", Some("user-42"));
    again["email"] = json!("josh@example.org");
    let second = app.cardholder(&t.sandbox, &again).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["email"], "josh@example.org");
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 1);
    // custodian_uid is unique per tenant and environment: live gets its own cardholder.
    let live = app
        .cardholder(&t.live, &seed_cardholder("490940000", Some("user-42")))
        .await;
    assert_ne!(live["id"], first["id"]);
    assert_eq!(live["livemode"], true);
    let (_, events) = app.get(&t.sandbox, "/events").await;
    assert_eq!(events["events"][0]["event"]["type"], "cardholder.updated");
}

async fn updating_by_id_changes_only_the_given_fields(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let t = app.tenant().await;
    let c = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    let id = c["id"].as_str().unwrap();
    let (status, updated) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{id}"),
            &json!({"phone_number": "+44 20 7183 8750"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let u = &updated["cardholder"];
    assert_eq!(u["phone_number"], "+442071838750");
    assert_eq!(u["phone"], 2071838750_i64);
    assert_eq!(u["email"], c["email"]);
    assert_eq!(u["kyc_status"], "PASSED");
    assert_eq!(u["created_at"], c["created_at"]);
    let (status, body) = app
        .post(&t.sandbox, &format!("/cardholders/{id}"), &json!({"email": "nope"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    assert_eq!(body["error"]["param"], "email");
    let (_, unchanged) = app.get(&t.sandbox, &format!("/cardholders/{id}")).await;
    assert_eq!(unchanged["cardholder"]["email"], c["email"]);
    let (status, body) = app
        .post(
            &t.sandbox,
            "/cardholders/crdhldr_0000000000000000000000000000beef",
            &json!({"email": "a@b.co"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found_error",
        "resource_missing",
    );
}

/// Each validation rule names the offending field in `param`.
async fn each_validation_rule_rejects_with_its_param(app: TestApp) {
    let t = app.tenant().await;
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "parameter_missing",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("first_name");
            }),
            "first_name",
        ),
        (
            "parameter_missing",
            Box::new(|v| v["last_name"] = json!("  ")),
            "last_name",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["email"] = json!("pat.wilson.com")),
            "email",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["phone_number"] = json!("650-888-1111")),
            "phone_number",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["date_of_birth"] = json!("2099-01-01")),
            "date_of_birth",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["date_of_birth"] = json!("06/20/1982")),
            "date_of_birth",
        ),
        (
            "cardholder_too_young",
            Box::new(|v| v["date_of_birth"] = json!("2015-01-01")),
            "date_of_birth",
        ),
        (
            "parameter_missing",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("address");
            }),
            "address",
        ),
        (
            "address_po_box",
            Box::new(|v| v["address"]["street_one"] = json!("P.O. Box 1234")),
            "address.street_one",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["address"]["country"] = json!("XX")),
            "address.country",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["address"]["postal_code"] = json!("1138")),
            "address.postal_code",
        ),
        (
            "parameter_missing",
            Box::new(|v| v["address"]["locality"] = Value::Null),
            "address.locality",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["document"]["value"] = json!("49094000")),
            "document.value",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["document"]["type"] = json!("library_card")),
            "document.type",
        ),
        (
            "parameter_missing",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("document");
            }),
            "document",
        ),
        (
            "parameter_unknown",
            Box::new(|v| v["nickname"] = json!("JW")),
            "nickname",
        ),
        (
            "parameter_unknown",
            Box::new(|v| v["address"]["planet"] = json!("Earth")),
            "address.planet",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["first_name"] = json!(42)),
            "first_name",
        ),
        (
            "parameter_missing",
            Box::new(|v| v["card"] = json!({"design_key": "blue"})),
            "card.program_id",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["card"] = json!({"program_id": "P", "initial_load": {"currency": "USD", "amount": -5}})),
            "card.initial_load.amount",
        ),
        (
            "parameter_invalid",
            Box::new(|v| v["card"] = json!({"program_id": "P", "initial_load": {"currency": "ZZZ", "amount": 5}})),
            "card.initial_load.currency",
        ),
    ];
    for (code, mutate, param) in cases {
        let mut body = seed_cardholder("490940000", None);
        mutate(&mut body);
        let (status, err) = app.post(&t.sandbox, "/cardholders", &body).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "invalid_request_error", code);
        assert_eq!(err["error"]["param"], param, "{err}");
    }
    let (_, list) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(list["total"], 0, "no rejected request created anything");
    let (_, events) = app.get(&t.sandbox, "/events").await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["api_key.created"], "only the tenant's own key creation");
}

async fn minimum_age_is_configurable(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.kyc.minimum_age_years = 21).await else {
        return;
    };
    let t = app.tenant().await;
    let today = time::OffsetDateTime::now_utc().date();
    let twenty = today.replace_year(today.year() - 20).unwrap_or(today);
    let mut body = seed_cardholder("490940000", None);
    body["date_of_birth"] = json!(format!(
        "{:04}-{:02}-{:02}",
        twenty.year(),
        u8::from(twenty.month()),
        twenty.day()
    ));
    let (status, err) = app.post(&t.sandbox, "/cardholders", &body).await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "cardholder_too_young",
    );
}

async fn document_numbers_are_never_returned_logged_or_stored_in_clear(app: TestApp) {
    let t = app.tenant().await;
    let ssn = "512340000";
    let c = app
        .cardholder(&t.sandbox, &seed_cardholder(ssn, Some("leak-check")))
        .await;
    let id = c["id"].as_str().unwrap();
    let (_, fetched) = app.get(&t.sandbox, &format!("/cardholders/{id}")).await;
    let (_, events) = app.get(&t.sandbox, "/events").await;
    for text in [c.to_string(), fetched.to_string(), events.to_string(), captured_logs()] {
        assert!(!text.contains(ssn), "document number leaked");
    }
    match app.db.sqlite_path() {
        Some(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            assert!(
                !bytes.windows(ssn.len()).any(|w| w == ssn.as_bytes()),
                "document in clear in the SQLite file"
            );
        }
        None => {
            let dump = postgres_dump(&app.db.url).await;
            assert!(dump.contains("leak-check"), "the scan sees the rows");
            assert!(!dump.contains(ssn), "document in clear in PostgreSQL");
        }
    }
}

/// Every row of every table, as text.
pub async fn postgres_dump(url: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let mut out = String::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM {table} t"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for r in rows {
            out.push_str(&r.get::<String, _>(0));
            out.push('\n');
        }
    }
    out
}

async fn wrong_content_type_and_malformed_json_are_refused_in_the_envelope(app: TestApp) {
    let t = app.tenant().await;
    let (status, err) = send(
        app.request(Method::POST, "/cardholders", &t.sandbox)
            .body("first_name=Josh"),
    )
    .await;
    assert_error(
        status,
        &err,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        "unsupported_media_type",
    );
    let (status, err) = send(
        app.request(Method::POST, "/cardholders", &t.sandbox)
            .header("content-type", "application/json")
            .body("{\"first_name\": "),
    )
    .await;
    assert_error(
        status,
        &err,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "json_invalid",
    );
    let (status, err) = send(
        app.request(Method::POST, "/cardholders", &t.sandbox)
            .header("content-type", "application/json")
            .body("[1,2]"),
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

both_backends!(
    updating_by_id_changes_only_the_given_fields,
    minimum_age_is_configurable
);
app_tests!(
    the_seed_sample_creates_a_cardholder_in_the_seed_shape,
    posting_a_known_custodian_uid_updates_that_cardholder,
    each_validation_rule_rejects_with_its_param,
    document_numbers_are_never_returned_logged_or_stored_in_clear,
    wrong_content_type_and_malformed_json_are_refused_in_the_envelope
);
