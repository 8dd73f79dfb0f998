use cardplane_domain::api_key::Permission;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Creds, TestApp, assert_error, send};

async fn requests_without_valid_credentials_get_401_in_the_envelope(app: TestApp) {
    let t = app.tenant().await;

    let (status, body) = send(app.http.get(app.url("/cardholders"))).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "credentials_missing",
    );

    let unknown = Creds {
        id: "key_0000000000000000000000000000abcd".into(),
        secret: t.sandbox.secret.clone(),
    };
    let (status, body) = app.get(&unknown, "/cardholders").await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "credentials_invalid",
    );

    let wrong = Creds {
        id: t.sandbox.id.clone(),
        secret: "sk_test_wrong".into(),
    };
    let (status, body) = app.get(&wrong, "/cardholders").await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "credentials_invalid",
    );

    // A live secret with the sandbox key id is still wrong.
    let crossed = Creds {
        id: t.sandbox.id.clone(),
        secret: t.live.secret.clone(),
    };
    let (status, _) = app.get(&crossed, "/cardholders").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = send(
        app.http
            .get(app.url("/cardholders"))
            .header("authorization", "Bearer abc"),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "credentials_missing",
    );
    let (status, _) = send(
        app.http
            .get(app.url("/cardholders"))
            .header("authorization", "Basic !!!notbase64"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = app.get(&t.sandbox, "/cardholders").await;
    assert_eq!(status, StatusCode::OK);
}

async fn revoked_keys_fail_at_once(app: TestApp) {
    let t = app.tenant().await;
    let (status, created) = app.post(&t.sandbox, "/api_keys", &json!({"name": "worker"})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let new = Creds {
        id: created["api_key"]["id"].as_str().unwrap().into(),
        secret: created["secret"].as_str().unwrap().into(),
    };
    assert!(new.secret.starts_with("sk_test_"));
    assert_eq!(created["api_key"]["livemode"], false);
    assert_eq!(app.get(&new, "/cardholders").await.0, StatusCode::OK);

    let (status, revoked) = app
        .post(&t.sandbox, &format!("/api_keys/{}/revoke", new.id), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["api_key"]["revoked_at"].is_string());
    let (status, body) = app.get(&new, "/cardholders").await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "api_key_revoked",
    );
    let (status, body) = app
        .post(&t.sandbox, &format!("/api_keys/{}/revoke", new.id), &json!({}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::CONFLICT,
        "conflict_error",
        "api_key_already_revoked",
    );
}

async fn api_keys_are_listed_without_secrets_and_record_last_use(app: TestApp) {
    let t = app.tenant().await;
    let (status, list) = app.get(&t.sandbox, "/api_keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["total"], 1,
        "only the sandbox key is visible to a sandbox key: {list}"
    );
    let listed = &list["api_keys"][0]["api_key"];
    assert_eq!(listed["id"], t.sandbox.id.as_str());
    assert!(!list.to_string().contains(&t.sandbox.secret));
    assert_eq!(listed["secret_last4"], &t.sandbox.secret[t.sandbox.secret.len() - 4..]);
    // last_used_at is written in the background, at most once a minute per key.
    let mut seen = false;
    for _ in 0..50 {
        let (_, key) = app.get(&t.sandbox, &format!("/api_keys/{}", t.sandbox.id)).await;
        if key["api_key"]["last_used_at"].is_string() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "last_used_at recorded");
}

async fn keys_can_only_grant_permissions_they_hold(app: TestApp) {
    let plain = app.tenant().await;
    let (status, body) = app
        .post(
            &plain.sandbox,
            "/api_keys",
            &json!({"name": "x", "permissions": ["reveal"]}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "permission_error",
        "permission_not_held",
    );
    assert_eq!(body["error"]["param"], "permissions[0]");
    let (status, body) = app
        .post(
            &plain.sandbox,
            "/api_keys",
            &json!({"name": "x", "permissions": ["fly"]}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );

    let privileged = app.tenant_with(&[Permission::Reveal]).await;
    let (status, body) = app
        .post(
            &privileged.sandbox,
            "/api_keys",
            &json!({"name": "x", "permissions": ["reveal"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["api_key"]["permissions"], json!(["reveal"]));
    let (status, body) = send(
        app.request(Method::POST, "/api_keys", &privileged.sandbox)
            .json(&json!({})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_missing",
    );
}

app_tests!(
    requests_without_valid_credentials_get_401_in_the_envelope,
    revoked_keys_fail_at_once,
    api_keys_are_listed_without_secrets_and_record_last_use,
    keys_can_only_grant_permissions_they_hold
);
