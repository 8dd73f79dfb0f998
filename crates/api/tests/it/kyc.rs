use std::time::Duration;

use cardplane_api::config::KycProviderKind;
use cardplane_testkit::{Backend, both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{FakeKyc, KycBehaviour, TestApp, seed_cardholder};

fn kyc_of(c: &Value) -> (String, Value, Value, Value) {
    (
        c["kyc_status"].as_str().unwrap().to_owned(),
        c["kyc_identity_reason"].clone(),
        c["kyc_address_reason"].clone(),
        c["kyc_file_reason"].clone(),
    )
}

async fn each_sandbox_kyc_outcome_follows_the_documented_table(app: TestApp) {
    let t = app.tenant().await;
    let n = Value::Null;
    let table = [
        ("0000", "PASSED", n.clone(), n.clone(), n.clone()),
        ("0001", "REJECTED", json!("WATCHLIST_MATCH"), n.clone(), n.clone()),
        ("0002", "RESUBMIT_DETAILS", json!("SSN_MISMATCH"), n.clone(), n.clone()),
        ("0003", "RESUBMIT_DETAILS", json!("SSN_INVALID"), n.clone(), n.clone()),
        (
            "0004",
            "RESUBMIT_DETAILS",
            n.clone(),
            json!("ADDRESS_PO_BOX"),
            n.clone(),
        ),
        (
            "0005",
            "UNDER_REVIEW",
            n.clone(),
            json!("ADDRESS_COMMERCIAL"),
            n.clone(),
        ),
        ("0006", "UNDER_REVIEW", n.clone(), json!("ADDRESS_RISKY"), n.clone()),
        ("0007", "UPLOAD_FILE", n.clone(), n.clone(), n.clone()),
        ("0008", "UPLOAD_FILE", n.clone(), n.clone(), json!("BLURRY")),
        ("0009", "UPLOAD_FILE", n.clone(), n.clone(), json!("WRONG_FILE")),
        ("0010", "UPLOAD_FILE", n.clone(), n.clone(), json!("UNRELATED_FILE")),
        ("0011", "TEMPORARY_ERROR", n.clone(), n.clone(), n.clone()),
        ("0012", "UNDER_REVIEW", json!("WATCHLIST_MATCH"), n.clone(), n.clone()),
        ("0013", "NOT_CHECKED", n.clone(), n.clone(), n.clone()),
        ("4321", "PASSED", n.clone(), n.clone(), n.clone()),
    ];
    for (last4, status, identity, address, file) in table {
        let c = app
            .cardholder(&t.sandbox, &seed_cardholder(&format!("49094{last4}"), None))
            .await;
        assert_eq!(
            kyc_of(&c),
            (status.to_owned(), identity, address, file),
            "SSN ending {last4}"
        );
        assert_eq!(c["kyc_passed_at"].is_string(), status == "PASSED");
        let (_, checks) = app
            .get(
                &t.sandbox,
                &format!("/cardholders/{}/kyc_checks", c["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(checks["total"], 1);
        assert_eq!(checks["kyc_checks"][0]["kyc_check"]["kyc_status"], status);
        assert_eq!(checks["kyc_checks"][0]["kyc_check"]["provider"], "sandbox");
    }
}

async fn fixing_details_reruns_kyc_and_releases_the_card_order(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "Apto_GPR", "411111", 1_000_000).await;
    let mut body = seed_cardholder("490940002", None);
    body["card"] = json!({"program_id": "Apto_GPR", "initial_load": {"currency": "USD", "amount": 500}});
    let c = app.cardholder(&t.sandbox, &body).await;
    assert_eq!(c["kyc_status"], "RESUBMIT_DETAILS");
    let id = c["id"].as_str().unwrap();
    let (_, orders) = app.get(&t.sandbox, &format!("/cardholders/{id}/card_orders")).await;
    assert_eq!(orders["card_orders"][0]["status"], "awaiting_kyc");

    let (status, fixed) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{id}"),
            &json!({"document": {"type": "ssn", "value": "490-94-0000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fixed}");
    assert_eq!(fixed["cardholder"]["kyc_status"], "PASSED");
    assert!(fixed["cardholder"]["kyc_identity_reason"].is_null());
    let (_, orders) = app.get(&t.sandbox, &format!("/cardholders/{id}/card_orders")).await;
    assert_eq!(orders["card_orders"][0]["status"], "fulfilled", "{orders}");
    let cards = fixed["cardholder"]["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "the card is issued once KYC passes");
    let (_, balance) = app
        .get(
            &t.sandbox,
            &format!("/cards/{}/balance", cards[0]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(balance["balance"]["balance"], 500);
    let (_, checks) = app.get(&t.sandbox, &format!("/cardholders/{id}/kyc_checks")).await;
    assert_eq!(checks["total"], 2);
    assert_eq!(
        checks["kyc_checks"][0]["kyc_check"]["kyc_status"], "PASSED",
        "newest first"
    );
    let (_, events) = app.get(&t.sandbox, "/events?limit=10").await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    for expected in ["cardholder.updated", "cardholder.kyc_updated", "card_order.updated"] {
        assert!(types.contains(&expected), "{types:?}");
    }
}

async fn rejected_cardholders_are_not_rechecked_automatically(app: TestApp) {
    let t = app.tenant().await;
    let c = app.cardholder(&t.sandbox, &seed_cardholder("490940001", None)).await;
    let id = c["id"].as_str().unwrap();
    let (_, after) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{id}"),
            &json!({"document": {"type": "ssn", "value": "490940000"}}),
        )
        .await;
    assert_eq!(after["cardholder"]["kyc_status"], "REJECTED");
    let (_, checks) = app.get(&t.sandbox, &format!("/cardholders/{id}/kyc_checks")).await;
    assert_eq!(checks["total"], 1);
}

async fn http_app(b: Backend, fake: &FakeKyc, timeout_ms: u64) -> Option<TestApp> {
    let url = fake.url.clone();
    TestApp::spawn_with(b, move |c| {
        c.kyc.sandbox_provider = KycProviderKind::Http;
        c.kyc.http_url = Some(url);
        c.kyc.http_timeout_ms = timeout_ms;
        c.kyc.http_secret = Some("kyc-shared-secret".into());
    })
    .await
}

async fn the_http_provider_maps_the_vendor_verdict(b: Backend) {
    let fake = FakeKyc::start(KycBehaviour::Verdict(json!({
        "status": "UNDER_REVIEW", "identity_reason": null, "address_reason": "ADDRESS_RISKY", "file_reason": null, "reference": "v-1"
    })))
    .await;
    let Some(app) = http_app(b, &fake, 2000).await else {
        return;
    };
    let t = app.tenant().await;
    let c = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    assert_eq!(
        kyc_of(&c),
        ("UNDER_REVIEW".into(), Value::Null, json!("ADDRESS_RISKY"), Value::Null)
    );
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, applicant) = &received[0];
    let signed = headers.as_ref().expect("the request is signed");
    // Standard Webhooks headers, keyed with the configured secret's bytes.
    standardwebhooks::Webhook::from_bytes(b"kyc-shared-secret".to_vec())
        .unwrap()
        .verify(&signed.body, &signed.headers)
        .expect("a Standard Webhooks signature over the exact body");
    assert_eq!(applicant["reference"], c["id"]);
    assert_eq!(applicant["document"], json!({"type": "ssn", "value": "490940000"}));
    assert_eq!(applicant["address"]["country"], "USA");
    let (_, checks) = app
        .get(
            &t.sandbox,
            &format!("/cardholders/{}/kyc_checks", c["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(checks["kyc_checks"][0]["kyc_check"]["provider"], "http");
}

async fn a_provider_timeout_gives_temporary_error(b: Backend) {
    let passed = json!({"status": "PASSED", "identity_reason": null, "address_reason": null, "file_reason": null});
    let fake = FakeKyc::start(KycBehaviour::SlowVerdict(Duration::from_secs(10), passed)).await;
    let Some(app) = http_app(b, &fake, 300).await else {
        return;
    };
    let t = app.tenant().await;
    let c = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    assert_eq!(
        c["kyc_status"], "TEMPORARY_ERROR",
        "the slow PASSED never arrived in time"
    );
}

async fn provider_errors_and_garbage_give_temporary_error(b: Backend) {
    let bad_passed =
        json!({"status": "PASSED", "identity_reason": "SSN_INVALID", "address_reason": null, "file_reason": null});
    for behaviour in [
        KycBehaviour::Status(500),
        KycBehaviour::Status(404),
        KycBehaviour::Garbage,
        KycBehaviour::Verdict(bad_passed.clone()),
    ] {
        let fake = FakeKyc::start(behaviour).await;
        let Some(app) = http_app(b, &fake, 2000).await else {
            return;
        };
        let t = app.tenant().await;
        let c = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
        assert_eq!(c["kyc_status"], "TEMPORARY_ERROR");
        assert_eq!(fake.received.lock().unwrap().len(), 1);
    }
}

both_backends!(
    the_http_provider_maps_the_vendor_verdict,
    a_provider_timeout_gives_temporary_error,
    provider_errors_and_garbage_give_temporary_error
);
app_tests!(
    each_sandbox_kyc_outcome_follows_the_documented_table,
    fixing_details_reruns_kyc_and_releases_the_card_order,
    rejected_cardholders_are_not_rechecked_automatically
);
