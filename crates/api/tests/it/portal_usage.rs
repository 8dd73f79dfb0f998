//! The developer portal's request log and usage pages over real HTTP on both backends: a
//! developer's key makes requests, the log lists them with filters and a next page, the detail
//! shows the bodies with the SSN masked, the usage page counts them per day, key and endpoint
//! and counts the tenant's authorizations; another tenant's entry is 404.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::console::{Browser, between};
use crate::portal_tools::{poll_until, portal_user, sandbox_card};
use crate::support::{Creds, TestApp, seed_cardholder, send};
use cardplane_domain::people::TenantRole;

async fn spawn(b: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(b, |c| {
        c.operators.require_mfa = false;
        // The usage page's authorization figures come from the health rollup.
        c.health_rollup_interval_ms = 50;
        // Small, frequent batches: the pages must read right while the log is still being written.
        c.request_log.batch_max = 8;
        c.request_log.flush_interval_ms = 10;
    })
    .await
}

/// Requests listed on a request-log page.
fn listed(html: &str) -> usize {
    html.matches("<tr data-status=").count()
}

/// A sandbox key created on the portal's keys page.
async fn portal_key(dev: &mut Browser, name: &str) -> Creds {
    let page = dev.get("/portal/sandbox/api_keys").await;
    let created = dev
        .post(
            "/portal/sandbox/api_keys",
            &[("csrf_token", page.csrf().as_str()), ("name", name)],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    Creds {
        id: between(&created.html, "id=\"new-key-id\">", "<").unwrap(),
        secret: between(&created.html, "id=\"new-key-secret\">", "<").unwrap(),
    }
}

async fn requests_are_listed_filtered_paged_and_shown_masked(app: TestApp) {
    let tenant = app.tenant().await;
    let mut dev = portal_user(&app, &tenant, "dev@example.com", TenantRole::Developer).await;
    let key = portal_key(&mut dev, "Backend").await;
    let (status, created) = send(
        app.request(Method::POST, "/cardholders", &key)
            .header("Idempotency-Key", "portal-log-1")
            .json(&seed_cardholder("490940123", Some("uid-portal"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, _) = app.get(&key, "/cards/card_00000000000000000000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let by_key = format!("/portal/sandbox/requests?key={}", key.id);
    let list = poll_until(&mut dev, &by_key, |html| listed(html) == 2).await;
    assert!(
        list.contains("/v1/cardholders") || list.contains("/cardholders"),
        "{list}"
    );
    assert!(list.contains("portal-log-1"), "the idempotency key is listed");
    assert!(list.contains("Backend"), "the key is named");

    let errors = dev.get(&format!("{by_key}&status=4xx")).await;
    assert_eq!(listed(&errors.html), 1, "{}", errors.html);
    assert!(errors.html.contains("data-status=\"404\""));
    let posts = dev.get(&format!("{by_key}&method=post&path=CARDHOLDERS")).await;
    assert_eq!(listed(&posts.html), 1, "{}", posts.html);
    let refused = dev.get(&format!("{by_key}&status=abc")).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.html.contains("id=\"filter-error\""), "{}", refused.html);
    assert_eq!(listed(&refused.html), 0);

    // The detail: the SSN was masked before it was stored.
    let post_row = between(&posts.html, "<a href=\"/portal/sandbox/requests/", "\"").unwrap();
    let detail = dev.get(&format!("/portal/sandbox/requests/{post_row}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
    let body = between(&detail.html, "<pre id=\"request-body\">", "</pre>").unwrap();
    assert!(body.contains("*****0123"), "{body}");
    assert!(!detail.html.contains("490940123"), "no full SSN on the page");
    let response = between(&detail.html, "<pre id=\"response-body\">", "</pre>").unwrap();
    assert!(
        response.contains(created["cardholder"]["id"].as_str().unwrap()),
        "{response}"
    );
    assert!(
        detail.html.contains("POST /cardholders"),
        "the endpoint template is shown"
    );

    // Keyset pages: 52 more requests make a second page that repeats nothing.
    for _ in 0..52 {
        app.get(&key, "/cards?limit=1").await;
    }
    // The writer may flush the 52 in several batches: wait until all 54 are counted, so the
    // first page's cursor is taken over the whole log.
    poll_until(&mut dev, "/portal/sandbox/usage", |html| {
        between(html, "<table id=\"keys\">", "</table>").is_some_and(|k| k.contains("<td class=\"num\">54<"))
    })
    .await;
    let first = dev.get(&by_key).await;
    assert_eq!(listed(&first.html), 50);
    let next = between(&first.html, "id=\"next-page\" href=\"", "\"")
        .unwrap()
        .replace("&#38;", "&");
    let total = dev.get(&next).await;
    assert_eq!(total.status, StatusCode::OK, "{next}");
    assert_eq!(listed(&total.html), 4, "{}", total.html);
    let total = total.html;
    assert!(
        !total.contains("id=\"next-page\""),
        "54 requests: a page of 50 and one of 4"
    );
}

async fn usage_counts_requests_per_key_and_endpoint_and_the_tenants_authorizations(app: TestApp) {
    let tenant = app.tenant().await;
    let card = sandbox_card(&app, &tenant).await;
    let mut dev = portal_user(&app, &tenant, "dev@example.com", TenantRole::Viewer).await;
    let mut owner = portal_user(&app, &tenant, "owner@example.com", TenantRole::Owner).await;
    let key = portal_key(&mut owner, "Usage key").await;
    for path in ["/cardholders", "/cards", "/cards/card_00000000000000000000000000000000"] {
        app.get(&key, path).await;
    }
    for amount in [1_000, 2_000] {
        let (status, auth) = app
            .post(
                &key,
                "/simulate/authorizations",
                &json!({"card_id": card, "amount": amount}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{auth}");
    }
    let (_, declined) = app
        .post(
            &key,
            "/simulate/authorizations",
            &json!({"card_id": card, "amount": 900_000}),
        )
        .await;
    assert_eq!(declined["decision"], "declined", "{declined}");

    let usage = poll_until(&mut dev, "/portal/sandbox/usage", |html| {
        let keys = between(html, "<table id=\"keys\">", "</table>").unwrap_or_default();
        keys.contains("Usage key</td><td class=\"num\">6<")
            && html.contains("<td class=\"num\">2</td><td class=\"num\">1</td></tr>")
    })
    .await;
    let keys = between(&usage, "<table id=\"keys\">", "</table>").unwrap();
    assert!(
        keys.contains("Usage key</td><td class=\"num\">6</td><td class=\"num\">1</td><td class=\"num\">0</td>"),
        "6 requests, one 404: {keys}"
    );
    let endpoints = between(&usage, "<table id=\"endpoints\">", "</table>").unwrap();
    assert!(endpoints.contains("POST /simulate/authorizations"), "{endpoints}");
    assert!(endpoints.contains("GET /cards/{card_id}"), "{endpoints}");
    assert!(usage.contains("id=\"requests-chart\""));
    assert!(usage.contains("id=\"authorizations-chart\""));
    assert!(
        usage.contains("data-series=\"approved\" data-total=\"2\""),
        "approved today"
    );
    assert!(usage.contains("<rect class=\"bar\" data-value=\"6\""), "the key's bar");
    let day = dev.get("/portal/sandbox/usage?days=1").await;
    assert!(day.html.contains("aria-current=\"true\">1 day<"), "{}", day.html);
    let odd = dev.get("/portal/sandbox/usage?days=abc").await;
    assert_eq!(odd.status, StatusCode::OK, "an unknown window shows the default one");
    assert!(odd.html.contains("aria-current=\"true\">7 days<"), "{}", odd.html);
    let live = dev.get("/portal/live/usage").await;
    assert!(!live.html.contains("Usage key"), "sandbox requests are not live usage");
}

async fn another_tenants_request_is_not_found(app: TestApp) {
    let (a, b) = (app.tenant().await, app.tenant().await);
    let mut theirs = portal_user(&app, &b, "b@example.com", TenantRole::Viewer).await;
    let key = portal_key(
        &mut portal_user(&app, &b, "bo@example.com", TenantRole::Owner).await,
        "B",
    )
    .await;
    app.get(&key, "/cardholders").await;
    let list = poll_until(&mut theirs, "/portal/sandbox/requests", |html| listed(html) >= 1).await;
    let id = between(&list, "<a href=\"/portal/sandbox/requests/", "\"").unwrap();
    assert_eq!(
        theirs.get(&format!("/portal/sandbox/requests/{id}")).await.status,
        StatusCode::OK
    );
    let mut mine = portal_user(&app, &a, "a@example.com", TenantRole::Owner).await;
    for path in [
        format!("/portal/sandbox/requests/{id}"),
        format!("/portal/live/requests/{id}"),
        "/portal/sandbox/requests/nonsense".to_owned(),
    ] {
        assert_eq!(mine.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let listed = mine.get("/portal/sandbox/requests").await;
    assert!(!listed.html.contains(&id), "B's request is not in A's log");
}

app_tests!(
    spawn = super::spawn;
    requests_are_listed_filtered_paged_and_shown_masked,
    usage_counts_requests_per_key_and_endpoint_and_the_tenants_authorizations,
    another_tenants_request_is_not_found,
);
