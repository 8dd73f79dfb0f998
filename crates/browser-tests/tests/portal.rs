//! The developer portal in headless Chromium against a real server: sign up with the emailed
//! link, find the sample sandbox, create an API key (its secret shown once) and use it with curl,
//! follow the quickstart, find those requests in the request log with the SSN masked and counted
//! in the usage charts, simulate an authorization and see its webhook reach a local receiver and
//! the delivery log, invite a viewer who cannot create keys.

use std::sync::{Arc, Mutex};

use cardplane_browser_tests::{
    Chromium, Server, attribute, choose, click_and_wait, count, exists, fill, path_of, reload_until, replace,
    row_cells, screenshot, text, visit, wait_for_path,
};
use chromiumoxide::page::Page;
use tokio::sync::oneshot;

/// A cardholder as a developer would send it, with a full SSN the log must never show.
const HOLDER: &str = r#"{"first_name": "Ana", "last_name": "Lopez", "email": "ana@example.com",
    "phone_number": "+16508881113", "date_of_birth": "1990-03-04",
    "address": {"street_one": "5 Elm St", "locality": "Boston", "region": "MA", "postal_code": "02108", "country": "USA"},
    "document": {"type": "ssn", "value": "123450000"}}"#;
const SSN: &str = "123450000";
/// The SSN as the request log stores it: stars, then the last four digits.
const SSN_MASKED: &str = "*****0000";

/// Signs up through the pages and accepts the mailed link; the page ends at the overview.
async fn sign_up(server: &Server, page: &Page, email: &str, company: &str) {
    visit(page, &server.url("/portal/signup")).await;
    fill(page, "#company_name", company).await;
    fill(page, "#email", email).await;
    click_and_wait(page, "form[action='/portal/signup'] button").await;
    assert!(exists(page, "#signup-sent").await, "the page says a link was sent");
    let token = server.mailed_token(email);
    visit(page, &server.url(&format!("/portal/accept?token={token}"))).await;
    fill(page, "#name", "Dana Developer").await;
    fill(page, "#password", cardplane_browser_tests::PASSWORD).await;
    click_and_wait(page, "form[action='/portal/accept'] button").await;
    wait_for_path(page, "/portal").await;
}

/// Creates a sandbox key named `name` on the keys page; returns its id and secret (shown once).
async fn create_key(server: &Server, page: &Page, name: &str) -> (String, String) {
    visit(page, &server.url("/portal/sandbox/api_keys")).await;
    fill(page, "#key-name", name).await;
    click_and_wait(page, "form[action='/portal/sandbox/api_keys'] button").await;
    assert!(
        exists(page, "button[data-copy='new-key-secret']").await,
        "a copy button"
    );
    (text(page, "#new-key-id").await, text(page, "#new-key-secret").await)
}

fn curl(server: &Server, key: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-u", key, "-X", method, &server.url(path)]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (json, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(json).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_signs_up_makes_a_key_and_uses_it_with_curl() {
    let server = Server::start_portal().await;
    let chromium = Chromium::launch().await;
    let page = chromium.page(&server.url("/portal/login")).await;
    screenshot(&page, "portal-01-sign-in").await;
    sign_up(&server, &page, "dana@acme.test", "Acme Payments").await;
    assert!(
        text(&page, "#sandbox-programs").await.contains("sample_gpr"),
        "the sample sandbox is there at once"
    );
    assert!(text(&page, "#sandbox-cards").await.contains("ACTIVE"));
    screenshot(&page, "portal-02-overview").await;

    let (id, secret) = create_key(&server, &page, "Backend").await;
    screenshot(&page, "portal-03-key-created").await;
    let key = format!("{id}:{secret}");
    let (status, answer) = curl(&server, &key, "POST", "/cardholders", Some(HOLDER));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cardholder"]["kyc_status"], "PASSED", "{answer}");

    // The secret is not on the page once it is left.
    visit(&page, &server.url("/portal/sandbox/api_keys")).await;
    assert!(!page.content().await.unwrap().contains(&secret));

    visit(&page, &server.url("/portal/sandbox/quickstart")).await;
    assert_eq!(text(&page, "#quickstart-key").await, id);
    assert!(text(&page, "#step-2-curl").await.contains("/cardholders"));
    screenshot(&page, "portal-04-quickstart").await;
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_viewer_reads_keys_but_cannot_make_one() {
    let server = Server::start_portal().await;
    let chromium = Chromium::launch().await;
    let page = chromium.page(&server.url("/portal/login")).await;
    sign_up(&server, &page, "owner@acme.test", "Acme").await;
    visit(&page, &server.url("/portal/team")).await;
    fill(&page, "#invite-email", "vic@acme.test").await;
    page.find_element("#invite-role").await.unwrap().click().await.unwrap();
    page.evaluate("document.getElementById('invite-role').value = 'viewer'")
        .await
        .unwrap();
    click_and_wait(&page, "form[action='/portal/team/invitations'] button").await;
    assert!(exists(&page, "#invited").await);
    screenshot(&page, "portal-05-team").await;

    let viewer = chromium.page(&server.url("/portal/login")).await;
    let token = server.mailed_token("vic@acme.test");
    visit(&viewer, &server.url(&format!("/portal/accept?token={token}"))).await;
    fill(&viewer, "#name", "Vic Viewer").await;
    fill(&viewer, "#password", cardplane_browser_tests::PASSWORD).await;
    click_and_wait(&viewer, "form[action='/portal/accept'] button").await;
    wait_for_path(&viewer, "/portal").await;
    visit(&viewer, &server.url("/portal/sandbox/api_keys")).await;
    assert_eq!(path_of(&viewer).await, "/portal/sandbox/api_keys");
    assert!(!exists(&viewer, "#key-name").await, "no form for a viewer");
    screenshot(&viewer, "portal-06-viewer-keys").await;
    chromium.close().await;
}

/// The rows of the request log as the page shows them.
const LOGGED: &str = "#requests tbody tr[data-status]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_requests_are_in_the_request_log_masked_and_counted_in_usage() {
    let server = Server::start_portal().await;
    let chromium = Chromium::launch().await;
    let page = chromium.page(&server.url("/portal/login")).await;
    sign_up(&server, &page, "lee@acme.test", "Acme Cards").await;
    let (id, secret) = create_key(&server, &page, "Backend").await;
    let key = format!("{id}:{secret}");

    // Three requests with the key: a cardholder made, read back, and one that is not there.
    let (status, made) = curl(&server, &key, "POST", "/cardholders", Some(HOLDER));
    assert_eq!(status, 200, "{made}");
    let holder = made["cardholder"]["id"].as_str().unwrap().to_owned();
    let (status, read) = curl(&server, &key, "GET", &format!("/cardholders/{holder}"), None);
    assert_eq!(status, 200, "{read}");
    let (missing, answer) = curl(&server, &key, "GET", "/cardholders/ch_notthere", None);
    assert!((400..500).contains(&missing), "{missing} {answer}");

    // The log's writer flushes in the background: reload until all three are listed.
    let log = server.url("/portal/sandbox/requests");
    reload_until(
        &page,
        &log,
        &format!("document.querySelectorAll('{LOGGED}').length === 3"),
    )
    .await;
    assert!(!page.content().await.unwrap().contains(SSN));
    screenshot(&page, "portal-07-request-log").await;
    the_post_is_found_by_key_and_method_with_its_ssn_masked(&page, &id).await;
    the_failure_is_found_by_status_class(&page, missing).await;
    usage_counts_the_three(&server, &page).await;
    chromium.close().await;
}

/// Filters the log by key and method from its form, opens the one row and reads its bodies.
async fn the_post_is_found_by_key_and_method_with_its_ssn_masked(page: &Page, key_id: &str) {
    choose(page, "#f-key", key_id).await;
    choose(page, "#f-method", "POST").await;
    click_and_wait(page, "#request-filter button[type='submit']").await;
    assert_eq!(count(page, LOGGED).await, 1, "one POST with the key");
    assert_eq!(attribute(page, LOGGED, "data-status").await.as_deref(), Some("200"));
    assert!(text(page, LOGGED).await.contains("/cardholders"));
    click_and_wait(page, &format!("{LOGGED} a")).await;
    assert!(path_of(page).await.starts_with("/portal/sandbox/requests/"));
    assert_eq!(text(page, "#request-status").await, "200");
    let sent = text(page, "#request-body").await;
    assert!(sent.contains(&format!("\"{SSN_MASKED}\"")), "masked: {sent}");
    assert!(sent.contains("\"Lopez\""), "the rest is as sent: {sent}");
    let answered = text(page, "#response-body").await;
    assert!(answered.contains("PASSED"), "{answered}");
    let html = page.content().await.unwrap();
    assert!(!html.contains(SSN), "the full SSN is nowhere on the page");
    screenshot(page, "portal-08-request-masked").await;
}

/// The status filter takes a class: only the failed read is a 4xx.
async fn the_failure_is_found_by_status_class(page: &Page, status: u16) {
    click_and_wait(page, "a[href='/portal/sandbox/requests']").await;
    fill(page, "#f-status", "4xx").await;
    click_and_wait(page, "#request-filter button[type='submit']").await;
    assert_eq!(count(page, LOGGED).await, 1, "one 4xx");
    assert_eq!(attribute(page, LOGGED, "data-status").await, Some(status.to_string()));
    assert!(text(page, LOGGED).await.contains("/cardholders/ch_notthere"));
}

/// The usage page, reached from the menu, counts the key's three requests everywhere.
async fn usage_counts_the_three(server: &Server, page: &Page) {
    click_and_wait(page, "a[href='/portal/sandbox/usage']").await;
    reload_until(
        page,
        &server.url("/portal/sandbox/usage"),
        "document.getElementById('sum-requests').innerText.trim() === '3'",
    )
    .await;
    assert_eq!(text(page, "#sum-errors").await, "1 / 0");
    assert_eq!(
        attribute(page, "#requests-chart polyline[data-series='requests']", "data-total")
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(row_cells(page, "#keys", "Backend").await[1..4], ["3", "1", "0"]);
    assert_eq!(count(page, "#keys-chart rect.bar").await, 1, "one key was used");
    assert_eq!(
        attribute(page, "#keys-chart rect.bar", "data-value").await.as_deref(),
        Some("3")
    );
    assert_eq!(row_cells(page, "#endpoints", "POST /cardholders").await[1], "1");
    let reads = row_cells(page, "#endpoints", "GET /cardholders/{cardholder_id}").await;
    assert_eq!(reads[1], "2", "{reads:?}");
    screenshot(page, "portal-09-usage").await;
}

/// A local webhook receiver on 127.0.0.1: keeps each body it is sent and answers 204.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        let router = axum::Router::new().fallback(axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Receiver {
            url,
            bodies,
            _stop: stop,
        }
    }

    fn received(&self, needle: &str) -> bool {
        self.bodies.lock().unwrap().iter().any(|b| b.contains(needle))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_authorization_is_delivered_to_the_webhook_and_logged() {
    let server = Server::start_portal().await;
    let receiver = Receiver::start().await;
    let chromium = Chromium::launch().await;
    let page = chromium.page(&server.url("/portal/login")).await;
    sign_up(&server, &page, "sam@acme.test", "Acme Hooks").await;

    // An endpoint for transaction.created at the receiver, from the webhooks form.
    click_and_wait(&page, "a[href='/portal/sandbox/webhooks']").await;
    fill(&page, "#endpoint-url", &receiver.url).await;
    fill(&page, "#endpoint-description", "local receiver").await;
    page.find_element("#create-endpoint input[name='event'][value='transaction.created']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click_and_wait(&page, "#create-endpoint button[type='submit']").await;
    assert!(exists(&page, "#new-endpoint-secret").await, "the secret is shown once");
    let endpoint = attribute(&page, "#webhook-endpoints tbody a.mono", "href")
        .await
        .expect("the endpoint is listed");
    assert!(text(&page, "#webhook-endpoints").await.contains(&receiver.url));
    screenshot(&page, "portal-10-webhook-endpoint").await;

    // An authorization of 25.00 on the sample card, from the simulator's form.
    click_and_wait(&page, "a[href='/portal/sandbox/simulator']").await;
    assert!(
        text(&page, "#auth-card").await.contains("ACTIVE"),
        "the sample card is offered"
    );
    replace(&page, "#auth-amount", "2500").await;
    fill(&page, "#auth-merchant-name", "Corner Grocery").await;
    click_and_wait(&page, "#simulate-authorize button[type='submit']").await;
    assert_eq!(text(&page, "#decision").await, "approved");
    assert!(exists(&page, "#decision-trace tbody tr").await, "the trace is shown");
    let txn = text(&page, "#transaction-id").await;
    assert!(txn.starts_with("txn_"), "{txn}");
    screenshot(&page, "portal-11-simulated").await;

    the_delivery_is_logged(&server, &page, &endpoint, &receiver, &txn).await;
    chromium.close().await;
}

/// The worker delivers transaction.created to the receiver; the endpoint's delivery log shows
/// it delivered, and its attempt got the receiver's 204.
async fn the_delivery_is_logged(server: &Server, page: &Page, endpoint: &str, receiver: &Receiver, txn: &str) {
    click_and_wait(page, "#simulate-result a[href='/portal/sandbox/webhooks']").await;
    click_and_wait(page, &format!("#webhook-endpoints a[href='{endpoint}']")).await;
    reload_until(
        page,
        &server.url(endpoint),
        "Array.from(document.querySelectorAll('#delivery-log tbody tr')).some(r => r.cells[3] && r.cells[3].innerText.trim() === 'delivered')",
    )
    .await;
    assert_eq!(count(page, "#delivery-log tbody tr").await, 1, "one event subscribed");
    assert_eq!(
        text(page, "#delivery-log tbody tr td code").await,
        "transaction.created"
    );
    assert!(receiver.received(txn), "the receiver got the transaction's event");
    screenshot(page, "portal-12-delivery-log").await;
    click_and_wait(page, "#delivery-log tbody tr a").await;
    assert_eq!(count(page, "#attempts tbody tr").await, 1);
    let attempt = text(page, "#attempts tbody tr").await;
    assert!(attempt.contains("HTTP 204"), "{attempt}");
}
