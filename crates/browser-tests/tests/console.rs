//! The operations console in headless Chromium against a real server: sign-in with TOTP, the
//! health chart, finding a transaction by last four digits and reading its decision trace,
//! freezing a card (the network is then declined), a read-only operator's view, refused
//! forged or token-less posts, and a program's spend control edited through its diff.

use cardplane_browser_tests::{
    Chromium, Server, click_and_wait, code, enrol, exists, fill, mark_stale, path_of, screenshot, sign_in, signed_in,
    submit_forged_form, text, visit, wait_for_new_document, wait_for_path,
};
use cardplane_domain::Timestamp;
use cardplane_domain::people::OperatorRole;
use cardplane_store::audit::AuditFilter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_with_totp_and_sees_the_health_chart() {
    let server = Server::start().await;
    let net = server.network().await;
    let card = server.card(&net, 5_000).await;
    for amount in [1_000, 1_500] {
        assert_eq!(server.authorize(&net, &card, amount).await["decision"], "approved");
    }
    assert_eq!(server.authorize(&net, &card, 9_000).await["decision"], "declined");
    server.state.health.roll_up(Timestamp::now(), 1_000).await.unwrap();

    let chromium = Chromium::launch().await;
    server.operator("ada@example.com", OperatorRole::Admin).await;
    let page = chromium.page(&server.url("/console/login")).await;
    screenshot(&page, "01-sign-in").await;
    sign_in(&page, "ada@example.com", "").await;
    let secret = enrol(&page).await;
    screenshot(&page, "02-totp-enrolled").await;

    // Sign out, then in again with a code from the authenticator.
    visit(&page, &server.url("/console")).await;
    click_and_wait(&page, "header form button").await;
    wait_for_path(&page, "/console/login").await;
    sign_in(&page, "ada@example.com", &code(&secret, 1)).await;
    wait_for_path(&page, "/console").await;
    assert_eq!(path_of(&page).await, "/console");

    visit(&page, &server.url("/console?window=1h")).await;
    assert!(
        exists(&page, "svg#health-chart polyline.approved").await,
        "the chart is drawn"
    );
    // The figures are the database's: 3 authorizations, 2 approved.
    let totals = server
        .state
        .health
        .health_totals(&cardplane_store::health::HealthFilter::default())
        .await
        .unwrap();
    let authorizations: i64 = totals
        .iter()
        .filter(|t| t.metric == "authorizations")
        .map(|t| t.n)
        .sum();
    assert_eq!(authorizations, 3);
    assert_eq!(text(&page, "#sum-authorizations").await, "3");
    assert_eq!(text(&page, "#sum-approval").await, "66.7%");
    let approved = page
        .find_element("svg#health-chart polyline.approved")
        .await
        .unwrap()
        .attribute("data-total")
        .await
        .unwrap();
    assert_eq!(approved.as_deref(), Some("2"));
    screenshot(&page, "03-health").await;
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_found_by_last4_and_a_frozen_card_is_declined() {
    let server = Server::start().await;
    let net = server.network().await;
    let card = server.card(&net, 5_000).await;
    let approved = server.authorize(&net, &card, 1_200).await;
    let declined = server.authorize(&net, &card, 9_000).await;
    assert_eq!(declined["decision"], "declined");

    let chromium = Chromium::launch().await;
    let (page, _) = signed_in(&server, &chromium, "ops@example.com", OperatorRole::Operations).await;

    // Search by the last four digits with the keyboard, open the declined one.
    visit(&page, &server.url("/console/transactions")).await;
    fill(&page, "#f-card", &card.pan[card.pan.len() - 4..]).await;
    mark_stale(&page).await;
    page.find_element("#f-card")
        .await
        .unwrap()
        .press_key("Enter")
        .await
        .unwrap();
    wait_for_new_document(&page).await;
    let id = declined["authorization_id"].as_str().unwrap();
    assert!(exists(&page, &format!("a[href='/console/transactions/{id}']")).await);
    assert!(
        exists(
            &page,
            &format!(
                "a[href='/console/transactions/{}']",
                approved["authorization_id"].as_str().unwrap()
            )
        )
        .await
    );
    assert!(!page.content().await.unwrap().contains(&card.pan), "never a full PAN");
    screenshot(&page, "04-transactions").await;
    click_and_wait(&page, &format!("a[href='/console/transactions/{id}']")).await;
    assert_eq!(
        text(&page, "#txn-state").await.split_whitespace().next(),
        Some("DECLINED")
    );
    let trace = page.find_elements("#decision-trace li").await.unwrap();
    assert!(!trace.is_empty(), "the decision trace is listed");
    screenshot(&page, "05-transaction").await;

    // Freeze from the card page, with the mandatory reason.
    visit(&page, &server.url(&format!("/console/cards/{}", card.id))).await;
    assert_eq!(text(&page, "#card-state").await, "ACTIVE");
    fill(&page, "#reason-freeze", "Cardholder reported it lost").await;
    click_and_wait(&page, "#do-freeze").await;
    wait_for_path(&page, &format!("/console/cards/{}?done=freeze", card.id)).await;
    assert_eq!(text(&page, "#card-state").await, "INACTIVE");
    screenshot(&page, "06-card-frozen").await;

    let after = server.authorize(&net, &card, 100).await;
    assert_eq!(after["decision"], "declined", "{after}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_operator_sees_no_actions_and_forged_or_tokenless_posts_are_refused() {
    let server = Server::start().await;
    let net = server.network().await;
    let card = server.card(&net, 5_000).await;
    let chromium = Chromium::launch().await;
    let (page, _) = signed_in(&server, &chromium, "ro@example.com", OperatorRole::ReadOnly).await;

    let card_path = format!("/console/cards/{}", card.id);
    visit(&page, &server.url(&card_path)).await;
    assert_eq!(text(&page, "#card-state").await, "ACTIVE");
    assert!(!exists(&page, "#do-freeze").await && !exists(&page, "#do-close").await);
    screenshot(&page, "07-card-read-only").await;

    // A forged form with the right CSRF token: the role refuses it, and it is audited.
    let csrf = page
        .find_element("header form input[name='csrf_token']")
        .await
        .unwrap()
        .attribute("value")
        .await
        .unwrap()
        .unwrap();
    submit_forged_form(
        &page,
        &format!("{card_path}/freeze"),
        &[("csrf_token", &csrf), ("reason", "forged")],
    )
    .await;
    assert!(
        text(&page, "h1").await.starts_with("403"),
        "{}",
        text(&page, "h1").await
    );
    screenshot(&page, "08-forged-post-refused").await;

    // Without the token: refused before any handler runs.
    visit(&page, &server.url(&card_path)).await;
    submit_forged_form(&page, &format!("{card_path}/freeze"), &[("reason", "no token")]).await;
    assert!(text(&page, "h1").await.starts_with("403"));

    visit(&page, &server.url(&card_path)).await;
    assert_eq!(text(&page, "#card-state").await, "ACTIVE");
    let refused = server
        .state
        .audit
        .list_audit(
            &AuditFilter {
                object_id: Some(card.id.clone()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    let codes: Vec<&str> = refused
        .iter()
        .filter(|e| e.record.status == Some(403))
        .filter_map(|e| e.record.details["code"].as_str())
        .collect();
    assert!(codes.contains(&"permission_denied"), "{codes:?}");
    assert!(codes.contains(&"csrf_token_invalid"), "{codes:?}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchlist_case_is_approved_by_a_compliance_officer_then_a_different_admin() {
    let server = Server::start().await;
    let net = server.network().await;
    let holder = server.watchlist_cardholder(&net).await;
    let chromium = Chromium::launch().await;
    let (officer, _) = signed_in(&server, &chromium, "co@example.com", OperatorRole::ComplianceOfficer).await;

    visit(&officer, &server.url("/console/cases")).await;
    screenshot(&officer, "09-compliance-queue").await;
    click_and_wait(&officer, "#cases a[href^='/console/cases/']").await;
    let case_path = path_of(&officer).await;
    click_and_wait(&officer, "#do-assign").await;
    fill(
        &officer,
        "#note-body",
        "Name matches a list entry; date of birth differs",
    )
    .await;
    click_and_wait(&officer, "#do-note").await;
    fill(&officer, "#comment", "false positive").await;
    click_and_wait(&officer, "#do-decide").await;
    assert_eq!(text(&officer, "#case-status").await, "pending_approval");
    assert!(
        exists(&officer, "#not-my-turn").await,
        "four eyes: the officer cannot take step 2"
    );
    assert!(
        text(&officer, "#approval-chain")
            .await
            .contains("not by co@example.com")
    );
    screenshot(&officer, "10-case-first-approval").await;

    // A second person, an admin, in a second browser profile.
    let admin_browser = Chromium::launch().await;
    let (admin, _) = signed_in(&server, &admin_browser, "admin@example.com", OperatorRole::Admin).await;
    visit(&admin, &server.url(&case_path)).await;
    click_and_wait(&admin, "#do-decide").await;
    assert_eq!(text(&admin, "#case-status").await, "approved");
    assert_eq!(text(&admin, "#holder-kyc").await, "PASSED");
    screenshot(&admin, "11-case-approved").await;

    let (_, fetched) =
        cardplane_testkit::http::get(&server.http, &server.base, &net.key, &format!("/cardholders/{holder}")).await;
    assert_eq!(fetched["cardholder"]["kyc_status"], "PASSED");
    admin_browser.close().await;
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spend_control_is_added_to_a_program_through_its_diff_and_audited() {
    let server = Server::start().await;
    let net = server.network().await;
    let search = cardplane_store::programs::ProgramSearch {
        tenant_id: Some(net.tenant.tenant_id.clone()),
        ..Default::default()
    };
    let program = server.state.programs.search_programs(&search, 1).await.unwrap();
    let id = program[0].program.id.to_string();

    let chromium = Chromium::launch().await;
    let (page, _) = signed_in(&server, &chromium, "ada@example.com", OperatorRole::Admin).await;
    visit(&page, &server.url(&format!("/console/programs/{id}"))).await;
    assert!(text(&page, "#spend-controls").await.contains("No spend controls"));
    fill(&page, "#sc0-amount", "2500").await;
    page.evaluate("document.querySelector('#sc0-window').value = 'day'")
        .await
        .unwrap();
    screenshot(&page, "10-program-edit").await;
    click_and_wait(&page, "#do-review").await;
    let diff = text(&page, "#diff").await;
    assert!(diff.contains("spend_controls") && diff.contains("2500"), "{diff}");
    screenshot(&page, "11-program-diff").await;

    click_and_wait(&page, "#do-confirm").await;
    wait_for_path(&page, &format!("/console/programs/{id}?done=updated")).await;
    let controls = text(&page, "#spend-controls").await;
    assert!(controls.contains("USD 25.00") && controls.contains("day"), "{controls}");
    screenshot(&page, "12-program-updated").await;

    visit(&page, &server.url(&format!("/console/audit?object_id={id}"))).await;
    let audit = text(&page, "#audit").await;
    assert!(audit.contains("program.updated"), "{audit}");
    screenshot(&page, "13-program-audit").await;
    chromium.close().await;
}
