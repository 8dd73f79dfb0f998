use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Creds, TestApp, assert_error, seed_cardholder};

/// Every endpoint that names an object, tried with credentials that must not see it.
async fn assert_invisible(app: &TestApp, outsider: &Creds, cardholder_id: &str, key_id: &str, event_id: &str) {
    let reads = [
        format!("/cardholders/{cardholder_id}"),
        format!("/cardholders/{cardholder_id}/kyc_checks"),
        format!("/cardholders/{cardholder_id}/card_orders"),
        format!("/api_keys/{key_id}"),
        format!("/events/{event_id}"),
    ];
    for path in &reads {
        let (status, body) = app.get(outsider, path).await;
        assert_error(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "resource_missing",
        );
    }
    let writes = [
        (
            format!("/cardholders/{cardholder_id}"),
            json!({"first_name": "Mallory"}),
        ),
        (format!("/api_keys/{key_id}/revoke"), json!({})),
    ];
    for (path, body) in &writes {
        let (status, err) = app.post(outsider, path, body).await;
        assert_error(
            status,
            &err,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "resource_missing",
        );
    }
    for list in ["/cardholders", "/events", "/api_keys"] {
        let (_, page) = app.get(outsider, list).await;
        let text = page.to_string();
        assert!(
            !text.contains(cardholder_id) && !text.contains(event_id),
            "{list} leaks"
        );
    }
}

async fn other_tenants_and_the_other_environment_see_404_everywhere(app: TestApp) {
    let a = app.tenant().await;
    let other = app.tenant().await;
    let c = app
        .cardholder(&a.sandbox, &seed_cardholder("490940000", Some("alice")))
        .await;
    let id = c["id"].as_str().unwrap();
    let (_, events) = app.get(&a.sandbox, "/events").await;
    let event_id = events["events"][0]["event"]["id"].as_str().unwrap().to_owned();

    assert_invisible(&app, &other.sandbox, id, &a.sandbox.id, &event_id).await;
    assert_invisible(&app, &other.live, id, &a.sandbox.id, &event_id).await;
    assert_invisible(&app, &a.live, id, &a.sandbox.id, &event_id).await;

    // The same custodian_uid elsewhere creates a separate cardholder instead of updating A's.
    let theirs = app
        .cardholder(&other.sandbox, &seed_cardholder("490940000", Some("alice")))
        .await;
    assert_ne!(theirs["id"], c["id"]);

    // Nothing of A's changed, and A's key still works.
    let (status, after) = app.get(&a.sandbox, &format!("/cardholders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["cardholder"], c);
    let (_, a_events) = app.get(&a.sandbox, "/events").await;
    assert_eq!(a_events["total"], events["total"]);
}

app_tests!(other_tenants_and_the_other_environment_see_404_everywhere);
