//! The developer portal in headless Chromium against a real server: sign up with the emailed
//! link, find the sample sandbox, create an API key (its secret shown once) and use it with curl,
//! follow the quickstart, invite a viewer who cannot create keys.

use cardplane_browser_tests::{
    Chromium, Server, click_and_wait, exists, fill, path_of, screenshot, text, visit, wait_for_path,
};

/// Signs up through the pages and accepts the mailed link; the page ends at the overview.
async fn sign_up(server: &Server, page: &chromiumoxide::page::Page, email: &str, company: &str) {
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

    visit(&page, &server.url("/portal/sandbox/api_keys")).await;
    fill(&page, "#key-name", "Backend").await;
    click_and_wait(&page, "form[action='/portal/sandbox/api_keys'] button").await;
    let id = text(&page, "#new-key-id").await;
    let secret = text(&page, "#new-key-secret").await;
    assert!(
        exists(&page, "button[data-copy='new-key-secret']").await,
        "a copy button"
    );
    screenshot(&page, "portal-03-key-created").await;
    let key = format!("{id}:{secret}");
    let holder = r#"{"first_name": "Ana", "last_name": "Lopez", "email": "ana@example.com",
        "phone_number": "+16508881113", "date_of_birth": "1990-03-04",
        "address": {"street_one": "5 Elm St", "locality": "Boston", "region": "MA", "postal_code": "02108", "country": "USA"},
        "document": {"type": "ssn", "value": "123450000"}}"#;
    let (status, answer) = curl(&server, &key, "POST", "/cardholders", Some(holder));
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
