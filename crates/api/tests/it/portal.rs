//! The developer portal's pages over real HTTP on both backends: sign-up with an emailed link
//! and the sample sandbox it makes, teammate invitations with roles, API keys created (secret
//! shown once, usable at once) and revoked, roles enforced, tenants kept apart, operators sent
//! to the console.

use std::path::PathBuf;

use cardplane_api::workflows::admin::create_operator;
use cardplane_domain::people::OperatorRole;
use cardplane_store::audit::AuditFilter;
use reqwest::StatusCode;

use crate::console::{Browser, PASSWORD, Page, between};
use crate::support::{Creds, TestApp};

/// A server where anyone may sign up, mailing into a directory of its own.
pub(crate) async fn spawn_open(backend: cardplane_testkit::Backend) -> Option<TestApp> {
    let dir = std::env::temp_dir().join(format!("cardplane-mail-{}", uuid::Uuid::now_v7().simple()));
    TestApp::spawn_with(backend, move |c| {
        c.portal.self_signup = true;
        c.portal.mail_dir = Some(dir);
    })
    .await
}

fn mail_dir(app: &TestApp) -> PathBuf {
    app.state
        .config
        .portal
        .mail_dir
        .clone()
        .expect("the test server mails into a directory")
}

/// The newest message to `to`, and the link token in it.
fn last_mail_to(app: &TestApp, to: &str) -> (String, Option<String>) {
    let mut mails: Vec<_> = std::fs::read_dir(mail_dir(app))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    mails.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    mails.sort();
    let text = mails
        .iter()
        .rev()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|t| t.starts_with(&format!("To: {to}\r\n")))
        .unwrap_or_else(|| panic!("no mail to {to}"));
    let token = between(&text, "/portal/accept?token=", "\n").map(|t| t.trim().to_owned());
    (text, token)
}

/// Signs up `email` for `company` through the pages and returns the owner, signed in.
pub(crate) async fn sign_up(app: &TestApp, email: &str, company: &str) -> Browser {
    let mut b = Browser::for_site(app, "/portal");
    let form = b.get("/portal/signup").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.html.contains("<label for=\"company_name\">"), "{}", form.html);
    let sent = b
        .post("/portal/signup", &[("company_name", company), ("email", email)])
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
    assert!(sent.html.contains("id=\"signup-sent\""));
    let (mail, token) = last_mail_to(app, email);
    let token = token.unwrap_or_else(|| panic!("a link in {mail}"));
    accept(&mut b, &token, "Owner Person").await;
    b
}

async fn accept(b: &mut Browser, token: &str, name: &str) -> Page {
    let page = b.get(&format!("/portal/accept?token={token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let done = b
        .post(
            "/portal/accept",
            &[("token", token), ("name", name), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location.as_deref(), Some("/portal"));
    done
}

/// Invites `email` as `role` from the owner's team page and accepts as them.
async fn invite(app: &TestApp, owner: &mut Browser, email: &str, role: &str) -> Browser {
    let team = owner.get("/portal/team").await;
    let invited = owner
        .post(
            "/portal/team/invitations",
            &[("csrf_token", &team.csrf()), ("email", email), ("role", role)],
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.html);
    assert!(invited.html.contains("id=\"invited\""));
    let (_, token) = last_mail_to(app, email);
    let mut b = Browser::for_site(app, "/portal");
    accept(&mut b, &token.unwrap(), role).await;
    b
}

async fn signing_up_by_email_link_makes_a_tenant_with_a_sample_sandbox(app: TestApp) {
    let mut b = Browser::for_site(&app, "/portal");
    // Refusals are rendered in place and change nothing.
    let bad = b
        .post("/portal/signup", &[("company_name", "  "), ("email", "dev@acme.test")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("id=\"signup-error\""), "{}", bad.html);
    b.post(
        "/portal/signup",
        &[("company_name", "Acme"), ("email", "dev@acme.test")],
    )
    .await;
    let (mail, token) = last_mail_to(&app, "dev@acme.test");
    assert!(mail.contains("Subject: Confirm your email"), "{mail}");
    let token = token.unwrap();

    let page = b.get(&format!("/portal/accept?token={token}")).await;
    assert!(page.html.contains("create the sandbox of Acme"), "{}", page.html);
    let short = b
        .post(
            "/portal/accept",
            &[("token", token.as_str()), ("name", "Dev"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(short.html.contains("id=\"accept-error\""));
    let tenants_before = app.state.tenants.list_tenants().await.unwrap().len();
    assert_eq!(tenants_before, 0, "a refused password created nothing");

    accept(&mut b, &token, "Dev Person").await;
    let home = b.get("/portal").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.html);
    assert!(home.html.contains("Acme"));
    let programs = between(&home.html, "<table id=\"sandbox-programs\">", "</table>").unwrap();
    assert!(
        programs.contains("sample_gpr") && programs.contains("USD 9900.00"),
        "{programs}"
    );
    let cards = between(&home.html, "<table id=\"sandbox-cards\">", "</table>").unwrap();
    assert!(cards.contains("ACTIVE"), "{cards}");

    // The link works once; the whole story is in the audit log.
    let again = b.get(&format!("/portal/accept?token={token}")).await;
    assert_eq!(again.status, StatusCode::GONE);
    let audit = app.state.audit.list_audit(&AuditFilter::default(), 100).await.unwrap();
    for action in ["invitation.signup_requested", "invitation.accepted"] {
        assert!(audit.iter().any(|e| e.record.action == action), "{action}");
    }
    // A second sign-up with the same address gets a reminder, not a second account.
    b.cookie = None;
    b.post(
        "/portal/signup",
        &[("company_name", "Acme 2"), ("email", "dev@acme.test")],
    )
    .await;
    let (mail, token) = last_mail_to(&app, "dev@acme.test");
    assert!(mail.contains("already has an account") && token.is_none(), "{mail}");
}

async fn sign_up_is_by_invitation_unless_the_platform_opens_it(app: TestApp) {
    let mut b = Browser::for_site(&app, "/portal");
    let page = b.get("/portal/signup").await;
    assert!(page.html.contains("id=\"signup-disabled\""));
    let refused = b
        .post(
            "/portal/signup",
            &[("company_name", "Acme"), ("email", "dev@acme.test")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(app.state.tenants.list_tenants().await.unwrap().is_empty());
    let unknown = b.get("/portal/accept?token=nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

async fn owners_invite_teammates_and_roles_decide_what_they_may_do(app: TestApp) {
    let mut owner = sign_up(&app, "owner@acme.test", "Acme").await;
    let mut dev = invite(&app, &mut owner, "dev@acme.test", "developer").await;
    let mut viewer = invite(&app, &mut owner, "viewer@acme.test", "viewer").await;

    let team = owner.get("/portal/team").await;
    let members = between(&team.html, "<table id=\"members\">", "</table>").unwrap();
    for who in ["owner@acme.test", "dev@acme.test", "viewer@acme.test"] {
        assert!(members.contains(who), "{members}");
    }
    // Only owners invite: others see no form, and a forged invitation is refused and audited.
    let dev_team = dev.get("/portal/team").await;
    assert!(!dev_team.html.contains("action=\"/portal/team/invitations\""));
    let forged = dev
        .post(
            "/portal/team/invitations",
            &[
                ("csrf_token", &dev_team.csrf()),
                ("email", "x@acme.test"),
                ("role", "owner"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let audit = app.state.audit.list_audit(&AuditFilter::default(), 200).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.record.action == "POST /portal/team/invitations" && e.record.status == Some(403)),
        "the refusal is audited"
    );

    // Viewers read keys but cannot make one; developers can.
    let keys = viewer.get("/portal/sandbox/api_keys").await;
    assert_eq!(keys.status, StatusCode::OK);
    assert!(!keys.html.contains("id=\"key-name\""));
    let forged = viewer
        .post(
            "/portal/sandbox/api_keys",
            &[("csrf_token", &keys.csrf()), ("name", "sneaky")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        dev.get("/portal/sandbox/api_keys")
            .await
            .html
            .contains("id=\"key-name\"")
    );

    // A withdrawn invitation's link no longer works.
    let team = owner.get("/portal/team").await;
    owner
        .post(
            "/portal/team/invitations",
            &[
                ("csrf_token", &team.csrf()),
                ("email", "late@acme.test"),
                ("role", "viewer"),
            ],
        )
        .await;
    let (_, token) = last_mail_to(&app, "late@acme.test");
    let team = owner.get("/portal/team").await;
    let id = between(&team.html, "action=\"/portal/team/invitations/", "/revoke\"").unwrap();
    let withdrawn = owner
        .post(
            &format!("/portal/team/invitations/{id}/revoke"),
            &[("csrf_token", &team.csrf())],
        )
        .await;
    assert_eq!(withdrawn.status, StatusCode::SEE_OTHER);
    let gone = Browser::for_site(&app, "/portal")
        .get(&format!("/portal/accept?token={}", token.unwrap()))
        .await;
    assert_eq!(gone.status, StatusCode::GONE);
}

async fn api_keys_are_shown_once_work_at_once_and_revoke_at_once(app: TestApp) {
    let mut owner = sign_up(&app, "owner@acme.test", "Acme").await;
    let page = owner.get("/portal/sandbox/api_keys").await;
    let empty_name = owner
        .post(
            "/portal/sandbox/api_keys",
            &[("csrf_token", &page.csrf()), ("name", "")],
        )
        .await;
    assert_eq!(empty_name.status, StatusCode::BAD_REQUEST);
    assert!(empty_name.html.contains("id=\"create-error\""));
    let created = owner
        .post(
            "/portal/sandbox/api_keys",
            &[("csrf_token", &page.csrf()), ("name", "Backend"), ("reveal", "1")],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    let id = between(&created.html, "id=\"new-key-id\">", "<").unwrap();
    let secret = between(&created.html, "id=\"new-key-secret\">", "<").unwrap();
    let creds = Creds {
        id: id.clone(),
        secret: secret.clone(),
    };
    let (status, body) = app.get(&creds, "/cardholders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1, "the sample cardholder: {body}");

    // The secret is never on the page again.
    let list = owner.get("/portal/sandbox/api_keys").await;
    assert!(!list.html.contains(&secret));
    assert!(list.html.contains("reveal"));
    let revoked = owner
        .post(
            &format!("/portal/sandbox/api_keys/{id}/revoke"),
            &[("csrf_token", &list.csrf())],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let (status, _) = app.get(&creds, "/cardholders").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // No live program, no live keys: the page says why and a forged request is refused.
    let live = owner.get("/portal/live/api_keys").await;
    assert!(live.html.contains("id=\"live-locked\""));
    let forged = owner
        .post(
            "/portal/live/api_keys",
            &[("csrf_token", &live.csrf()), ("name", "Prod")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        owner.get("/portal/staging/api_keys").await.status,
        StatusCode::NOT_FOUND
    );
}

fn unescape(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn the_quickstart_is_filled_in_and_its_requests_work_as_shown(app: TestApp) {
    let mut owner = sign_up(&app, "owner@acme.test", "Acme").await;
    let before = owner.get("/portal/sandbox/quickstart").await;
    assert!(
        before.html.contains("id=\"no-key\""),
        "the sign-up's key is not shown: its secret is gone"
    );
    let page = owner.get("/portal/sandbox/api_keys").await;
    let created = owner
        .post(
            "/portal/sandbox/api_keys",
            &[("csrf_token", &page.csrf()), ("name", "Quickstart")],
        )
        .await;
    let creds = Creds {
        id: between(&created.html, "id=\"new-key-id\">", "<").unwrap(),
        secret: between(&created.html, "id=\"new-key-secret\">", "<").unwrap(),
    };
    let quick = owner.get("/portal/sandbox/quickstart").await;
    assert_eq!(quick.status, StatusCode::OK, "{}", quick.html);
    assert!(
        unescape(&quick.html).contains(&format!("export CARDPLANE_KEY=\"{}:YOUR_SECRET\"", creds.id)),
        "{}",
        quick.html
    );
    assert!(quick.html.contains(&app.base), "the server's address is filled in");
    for language in ["curl", "python", "javascript"] {
        assert!(quick.html.contains(&format!("id=\"step-2-{language}\"")), "{language}");
    }
    // The bodies shown are sent as they are: a cardholder with a card, then an authorization.
    for (step, path) in [("step-2", "/cardholders"), ("step-3", "/simulate/authorizations")] {
        let curl = unescape(&between(&quick.html, &format!("id=\"{step}-curl\">"), "</pre>").unwrap());
        assert!(curl.contains(&format!("{}{path}", app.base)), "{curl}");
        let body: serde_json::Value = serde_json::from_str(between(&curl, "-d '", "'").as_deref().unwrap()).unwrap();
        let (status, answer) = app.post(&creds, path, &body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        if path == "/simulate/authorizations" {
            assert_eq!(answer["decision"], "approved", "{answer}");
        }
    }
    let python = unescape(&between(&quick.html, "id=\"step-2-python\">", "</pre>").unwrap());
    assert!(
        python.contains("requests.post(f\"{BASE}/cardholders\", auth=AUTH, json={"),
        "{python}"
    );
}

async fn one_tenants_users_never_reach_another_tenants_keys(app: TestApp) {
    let mut a = sign_up(&app, "a@a.test", "Tenant A").await;
    let mut b = sign_up(&app, "b@b.test", "Tenant B").await;
    let page = b.get("/portal/sandbox/api_keys").await;
    let created = b
        .post(
            "/portal/sandbox/api_keys",
            &[("csrf_token", &page.csrf()), ("name", "B's key")],
        )
        .await;
    let b_key = between(&created.html, "id=\"new-key-id\">", "<").unwrap();
    let a_page = a.get("/portal/sandbox/api_keys").await;
    assert!(!a_page.html.contains(&b_key));
    let reach = a
        .post(
            &format!("/portal/sandbox/api_keys/{b_key}/revoke"),
            &[("csrf_token", &a_page.csrf())],
        )
        .await;
    assert_eq!(reach.status, StatusCode::NOT_FOUND);
    assert!(b.get("/portal/sandbox/api_keys").await.html.contains("active"));
}

async fn operators_are_sent_to_the_console_and_csrf_is_required(app: TestApp) {
    create_operator(
        &app.state,
        "ops@example.com",
        "Ops",
        OperatorRole::Admin,
        PASSWORD.into(),
    )
    .await
    .unwrap();
    let mut op = Browser::for_site(&app, "/portal");
    let signed_in = op.login("ops@example.com", PASSWORD, "").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    // Operators have no second factor here to enrol: the portal turns them away before that.
    let page = op.get("/portal/mfa").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.html.contains("/console"), "{}", page.html);

    let mut owner = sign_up(&app, "owner@acme.test", "Acme").await;
    let missing = owner.post("/portal/sandbox/api_keys", &[("name", "No token")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    // Pages load nothing from elsewhere.
    let home = owner.get("/portal").await;
    assert!(!home.html.contains("http://") && !home.html.contains("https://"));
}

async fn spawn_open_with_mfa(backend: cardplane_testkit::Backend) -> Option<TestApp> {
    let dir = std::env::temp_dir().join(format!("cardplane-mail-{}", uuid::Uuid::now_v7().simple()));
    TestApp::spawn_with(backend, move |c| {
        c.portal.self_signup = true;
        c.portal.mail_dir = Some(dir);
        c.portal.require_mfa = true;
    })
    .await
}

async fn a_platform_may_require_tenant_users_to_enrol_a_second_factor(app: TestApp) {
    let mut owner = sign_up(&app, "owner@acme.test", "Acme").await;
    let home = owner.get("/portal").await;
    assert_eq!(home.location.as_deref(), Some("/portal/mfa"));
    owner.enrol().await;
    assert_eq!(owner.get("/portal").await.status, StatusCode::OK);
}

app_tests!(
    spawn = super::spawn_open;
    signing_up_by_email_link_makes_a_tenant_with_a_sample_sandbox,
    owners_invite_teammates_and_roles_decide_what_they_may_do,
    api_keys_are_shown_once_work_at_once_and_revoke_at_once,
    one_tenants_users_never_reach_another_tenants_keys,
    the_quickstart_is_filled_in_and_its_requests_work_as_shown,
    operators_are_sent_to_the_console_and_csrf_is_required,
);
app_tests!(sign_up_is_by_invitation_unless_the_platform_opens_it);
app_tests!(spawn = super::spawn_open_with_mfa; a_platform_may_require_tenant_users_to_enrol_a_second_factor);
