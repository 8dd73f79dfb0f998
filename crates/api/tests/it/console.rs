//! The operations console's pages over real HTTP on both backends: sign-in with TOTP enrolment
//! (QR code as SVG), sign-out, idle expiry, CSRF from the form field, refusals that leak nothing,
//! and the program-health home page read from the roll-up aggregates.

use cardplane_api::workflows::admin::create_operator;
use cardplane_domain::Timestamp;
use cardplane_domain::people::OperatorRole;
use cardplane_domain::totp::{STEP_SECS, TotpSecret};
use cardplane_store::audit::AuditFilter;
use reqwest::StatusCode;

use crate::net::{NetMessage, ntid};
use crate::support::TestApp;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A browser without JavaScript: keeps the console cookie, follows no redirects.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    /// The site signed in to: `/console` or `/portal`.
    site: &'static str,
    pub(crate) cookie: Option<String>,
    pub(crate) totp: Option<TotpSecret>,
}

pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) set_cookie: Option<String>,
    pub(crate) html: String,
}

impl Page {
    pub(crate) fn csrf(&self) -> String {
        between(&self.html, "name=\"csrf_token\" value=\"", "\"").expect("the page has a form with the CSRF token")
    }
}

/// The text between `start` and the next `end`.
pub(crate) fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Browser {
        Browser::for_site(app, "/console")
    }

    pub(crate) fn for_site(app: &TestApp, site: &'static str) -> Browser {
        Browser {
            site,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookie: None,
            totp: None,
        }
    }

    async fn read(&mut self, r: reqwest::Response) -> Page {
        let status = r.status();
        let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let location = header("location");
        let set_cookie = header("set-cookie");
        if let Some(set) = &set_cookie {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
        Page {
            status,
            location,
            set_cookie,
            html: r.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.read(r).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.read(r).await
    }

    pub(crate) async fn login(&mut self, email: &str, password: &str, code: &str) -> Page {
        let path = format!("{}/login", self.site);
        self.post(&path, &[("email", email), ("password", password), ("code", code)])
            .await
    }

    /// Enrols TOTP from the second-factor page; returns the recovery codes.
    pub(crate) async fn enrol(&mut self) -> Vec<String> {
        let page = self.get(&format!("{}/mfa", self.site)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        let begun = self
            .post(&format!("{}/mfa/begin", self.site), &[("csrf_token", &page.csrf())])
            .await;
        assert_eq!(begun.status, StatusCode::OK, "{}", begun.html);
        assert!(begun.html.contains("<svg"), "the QR code is inline SVG");
        let secret = between(&begun.html, "id=\"totp-secret\">", "<").unwrap();
        let secret = TotpSecret::from_base32(&secret).unwrap();
        let code = secret.code_at(Timestamp::now().unix_seconds());
        let done = self
            .post(
                &format!("{}/mfa/confirm", self.site),
                &[("csrf_token", &begun.csrf()), ("code", &code)],
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.html);
        self.totp = Some(secret);
        let list = between(&done.html, "<ul id=\"recovery-codes\" class=\"mono\">", "</ul>").unwrap();
        list.split("<li>")
            .filter_map(|c| c.split("</li>").next())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A code for a later step than any used so far (each step's code works once).
    pub(crate) fn next_code(&self, steps_ahead: i64) -> String {
        self.totp
            .as_ref()
            .unwrap()
            .code_at(Timestamp::now().unix_seconds() + steps_ahead * STEP_SECS)
    }
}

/// An operator of `role`, signed in to the console with TOTP enrolled.
pub(crate) async fn console_operator(app: &TestApp, email: &str, role: OperatorRole) -> Browser {
    create_operator(&app.state, email, email, role, PASSWORD.into())
        .await
        .unwrap();
    let mut b = Browser::new(app);
    let signed_in = b.login(email, PASSWORD, "").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.html);
    b.enrol().await;
    b
}

async fn signing_in_enrols_totp_with_a_qr_code_and_signing_out_ends_the_session(app: TestApp) {
    create_operator(
        &app.state,
        "ada@example.com",
        "Ada",
        OperatorRole::Admin,
        PASSWORD.into(),
    )
    .await
    .unwrap();
    let mut b = Browser::new(&app);

    // Without a session every page leads to the sign-in form, which has labelled fields.
    let home = b.get("/console").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location.as_deref(), Some("/console/login"));
    let form = b.get("/console/login").await;
    assert_eq!(form.status, StatusCode::OK);
    for field in ["email", "password", "code"] {
        assert!(
            form.html.contains(&format!("<label for=\"{field}\">")),
            "{field} is labelled"
        );
    }

    // No second factor yet: signed in, but only the enrolment page is open.
    let signed_in = b.login("ada@example.com", PASSWORD, "").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.html);
    let cookie = signed_in.set_cookie.unwrap();
    assert!(cookie.contains("Path=/console") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let home = b.get("/console").await;
    assert_eq!(home.location.as_deref(), Some("/console/mfa"));
    let codes = b.enrol().await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    let home = b.get("/console").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.html);
    assert!(home.html.contains("Program health"));

    // Sign out: the cookie is cleared and the old session is gone on the server too.
    let old_cookie = b.cookie.clone();
    let out = b.post("/console/logout", &[("csrf_token", &home.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    b.cookie = old_cookie;
    assert_eq!(b.get("/console").await.location.as_deref(), Some("/console/login"));

    // The second factor is now required; a recovery code works once in place of a code.
    b.cookie = None;
    let without = b.login("ada@example.com", PASSWORD, "").await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    let with = b.login("ada@example.com", PASSWORD, &b.next_code(1)).await;
    assert_eq!(with.status, StatusCode::SEE_OTHER, "{}", with.html);
    b.cookie = None;
    assert_eq!(
        b.login("ada@example.com", PASSWORD, &codes[0]).await.status,
        StatusCode::SEE_OTHER
    );
    b.cookie = None;
    assert_eq!(
        b.login("ada@example.com", PASSWORD, &codes[0]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn sign_in_refusals_say_the_same_thing_whatever_failed(app: TestApp) {
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    b.cookie = None;
    let message = |p: &Page| between(&p.html, "id=\"login-error\">", "<").unwrap();
    let unknown = b.login("nobody@example.com", PASSWORD, "123456").await;
    let wrong_password = b.login("ops@example.com", "wrong password!!", "123456").await;
    let no_code = b.login("ops@example.com", PASSWORD, "").await;
    let wrong_code = b.login("ops@example.com", PASSWORD, "000000").await;
    for p in [&unknown, &wrong_password, &no_code, &wrong_code] {
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert_eq!(message(p), message(&unknown));
        assert!(p.set_cookie.is_none());
    }
    // The email is kept in the form; the password never comes back.
    assert!(wrong_password.html.contains("value=\"ops@example.com\""));
    assert!(!wrong_password.html.contains("wrong password!!"));

    // Locked after repeated failures: still the same message, even with the right password.
    for _ in 0..10 {
        b.login("ops@example.com", "wrong password!!", "").await;
    }
    let locked = b.login("ops@example.com", PASSWORD, &b.next_code(1)).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&locked), message(&unknown));

    // The audit log has the exact reasons.
    let failures = app
        .state
        .audit
        .list_audit(
            &AuditFilter {
                action: Some("session.login".into()),
                ..AuditFilter::default()
            },
            100,
        )
        .await
        .unwrap();
    let codes: Vec<String> = failures
        .iter()
        .filter_map(|e| e.record.details.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .collect();
    for code in [
        "credentials_invalid",
        "mfa_code_required",
        "mfa_code_invalid",
        "account_locked",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code} in {codes:?}");
    }
}

async fn a_console_post_without_the_form_csrf_token_is_refused_and_audited(app: TestApp) {
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let home = b.get("/console").await;
    let missing = b.post("/console/logout", &[]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.html);
    assert!(missing.html.contains("403"));
    let wrong = b.post("/console/logout", &[("csrf_token", "not-the-token")]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // The session survived both.
    assert_eq!(b.get("/console").await.status, StatusCode::OK);
    let refused = app
        .state
        .audit
        .list_audit(
            &AuditFilter {
                action: Some("POST /console/logout".into()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e.record.status == Some(403) && e.record.details["code"] == "csrf_token_invalid")
    );
    assert_eq!(
        b.post("/console/logout", &[("csrf_token", &home.csrf())]).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn idle_console_sessions_expire(app: TestApp) {
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let page = b.get("/console").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/console/login?expired=1"));
    let login = b.get("/console/login?expired=1").await;
    assert!(login.html.contains("inactivity"));
}

/// The test runs the roll-up itself: the background job would race it on a slow machine.
async fn spawn_without_rollup_job(backend: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| c.health_rollup_interval_ms = 24 * 3600 * 1000).await
}

async fn spawn_short_idle(backend: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| c.operators.session_idle_secs = 1).await
}

async fn pages_load_nothing_from_elsewhere_and_are_not_framed(app: TestApp) {
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::ReadOnly).await;
    let r = app.http.get(app.url("/console/static/site.css")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    let r = app.http.get(app.url("/console/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    for path in ["/console", "/console/mfa", "/console/login"] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.html.contains("http://") && !page.html.contains("https://"),
            "{path} has an external URL"
        );
        // The one script is the site's own copy-button helper; nothing inline.
        let scripts = page.html.matches("<script").count();
        let own = page
            .html
            .matches("<script src=\"/console/static/site.js\" defer></script>")
            .count();
        assert_eq!(scripts, own, "{path} has a script that is not the site's own");
    }
}

async fn the_health_page_shows_rolled_up_authorizations_declines_and_clearing(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 5_000).await;
    let mut approved = Vec::new();
    for _ in 0..3 {
        let id = ntid();
        let msg = NetMessage::authorization(&card, 1_000).id(&id);
        let (status, answer) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["decision"], "approved", "{answer}");
        approved.push(id);
    }
    // 5,000 loaded, 3,000 held: this one is declined for funds.
    let msg = NetMessage::authorization(&card, 4_000);
    let (_, answer) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
    assert_eq!(answer["decision"], "declined", "{answer}");
    let msg = NetMessage::clearing(&approved[0], 1_000);
    let (status, answer) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // The page reads aggregates only: nothing shows until the roll-up has run (the job is off).
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let before = b.get("/console?window=1h").await;
    assert_eq!(between(&before.html, "id=\"sum-authorizations\">", "<").unwrap(), "0");

    let run = app.state.health.roll_up(Timestamp::now(), 1_000).await.unwrap();
    assert_eq!(run.transactions, 4, "{run:?}");
    let again = app.state.health.roll_up(Timestamp::now(), 1_000).await.unwrap();
    assert_eq!(again.total(), 0, "a roll-up takes each row once");

    let page = b.get("/console?window=1h").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert_eq!(between(&page.html, "id=\"sum-authorizations\">", "<").unwrap(), "4");
    assert_eq!(between(&page.html, "id=\"sum-approval\">", "<").unwrap(), "75.0%");
    assert!(
        page.html.contains("data-series=\"approved\" data-total=\"3\""),
        "{}",
        page.html
    );
    assert!(page.html.contains("data-series=\"declined\" data-total=\"1\""));
    let row = between(&page.html, "<tr data-program=\"", "</tr>").unwrap();
    assert!(row.contains("USD 10.00"), "cleared volume: {row}");
    assert!(row.contains("(1)"), "one decline with its reason: {row}");
    // The other windows and a filter that matches nothing.
    for w in ["24h", "7d"] {
        let page = b.get(&format!("/console?window={w}")).await;
        assert_eq!(
            between(&page.html, "id=\"sum-authorizations\">", "<").unwrap(),
            "4",
            "{w}"
        );
    }
    let none = b.get("/console?window=1h&program=OTHER").await;
    assert_eq!(between(&none.html, "id=\"sum-authorizations\">", "<").unwrap(), "0");
}

async fn transactions_are_found_by_last4_and_filters_and_show_their_decision_trace(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 5_000).await;
    let other = app.net_card(&net, 5_000).await;
    let mut ids = Vec::new();
    for amount in [1_000, 1_100, 1_200] {
        let msg = NetMessage::authorization(&card, amount);
        let (_, answer) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
        ids.push(answer["authorization_id"].as_str().unwrap().to_owned());
    }
    let msg = NetMessage::authorization(&card, 9_000);
    let (_, declined) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
    assert_eq!(declined["decision"], "declined", "{declined}");
    let msg = NetMessage::authorization(&other, 500);
    app.post(&net.credential, msg.path(), &msg.into_json()).await;

    let mut b = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    let last4 = &card.pan[card.pan.len() - 4..];
    let found = b.get(&format!("/console/transactions?card={last4}")).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.html);
    let rows = found.html.matches("href=\"/console/transactions/txn_").count()
        + found.html.matches("href=\"/console/transactions/auth_").count();
    // The other card may share the last four digits only by chance: count ours by id.
    for id in &ids {
        assert!(found.html.contains(id.as_str()), "{id} listed");
    }
    assert!(rows >= 4, "{rows}");
    assert!(!found.html.contains(&card.pan), "never a full PAN");

    // Filters narrow; a wrong value is explained in place.
    let only_declined = b
        .get(&format!("/console/transactions?card={last4}&state=DECLINED"))
        .await;
    let declined_id = declined["authorization_id"].as_str().unwrap();
    assert!(only_declined.html.contains(declined_id));
    assert!(!only_declined.html.contains(ids[0].as_str()));
    let amounts = b
        .get(&format!(
            "/console/transactions?card={last4}&amount_min=1100&amount_max=1200"
        ))
        .await;
    assert!(amounts.html.contains(ids[1].as_str()) && amounts.html.contains(ids[2].as_str()));
    assert!(!amounts.html.contains(ids[0].as_str()));
    let bad = b.get("/console/transactions?amount_min=ten&from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("id=\"e-min\"") && bad.html.contains("id=\"e-from\""));

    // Keyset pages: page size 50 is more than we have, so no "older" link.
    assert!(!found.html.contains("id=\"next-page\""));

    let detail = b.get(&format!("/console/transactions/{declined_id}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
    let trace = between(&detail.html, "<ol id=\"decision-trace\"", "</ol>").unwrap();
    assert!(trace.contains("<li>"), "{trace}");
    assert!(trace.contains("fail"), "the failed check is in the trace: {trace}");
    assert!(detail.html.contains("DECLINED"));
    assert!(!detail.html.contains(&card.pan));
    let approved = b.get(&format!("/console/transactions/{}", ids[0])).await;
    assert!(between(&approved.html, "<table id=\"ledger\">", "</table>").is_some());
    assert_eq!(
        b.get("/console/transactions/txn_nope").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_card_is_frozen_with_a_reason_and_then_declined_by_the_network(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 5_000).await;
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let path = format!("/console/cards/{}", card.id);
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("id=\"do-freeze\""));
    assert!(!page.html.contains(&card.pan));

    // No reason: refused in place, nothing changes.
    let csrf = page.csrf();
    let refused = b
        .post(&format!("{path}/freeze"), &[("csrf_token", &csrf), ("reason", "  ")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.html.contains("id=\"action-error\""));
    assert!(refused.html.contains("<td id=\"card-state\">ACTIVE</td>"));

    let frozen = b
        .post(
            &format!("{path}/freeze"),
            &[("csrf_token", &csrf), ("reason", "Reported lost by phone")],
        )
        .await;
    assert_eq!(frozen.status, StatusCode::SEE_OTHER, "{}", frozen.html);
    let page = b.get(&frozen.location.unwrap()).await;
    assert!(
        page.html.contains("<td id=\"card-state\">INACTIVE</td>"),
        "{}",
        page.html
    );
    assert!(page.html.contains("id=\"do-unfreeze\"") && !page.html.contains("id=\"do-freeze\""));

    let msg = NetMessage::authorization(&card, 100);
    let (_, answer) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
    assert_eq!(answer["decision"], "declined", "{answer}");

    let entries = app
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
    let freeze = entries
        .iter()
        .find(|e| e.record.action == "card.freeze")
        .expect("audited");
    assert_eq!(freeze.record.details["reason"], "Reported lost by phone");
    assert!(entries.iter().any(|e| e.record.details["code"] == "reason_required"));
}

async fn a_read_only_operator_sees_no_actions_and_a_forged_post_is_refused(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 5_000).await;
    let mut b = console_operator(&app, "ro@example.com", OperatorRole::ReadOnly).await;
    let path = format!("/console/cards/{}", card.id);
    let page = b.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("id=\"do-freeze\"") && !page.html.contains("<button type=\"submit\" id=\"do-"));
    let forged = b
        .post(
            &format!("{path}/freeze"),
            &[("csrf_token", &page.csrf()), ("reason", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    assert!(b.get(&path).await.html.contains("<td id=\"card-state\">ACTIVE</td>"));
    let entries = app
        .state
        .audit
        .list_audit(
            &AuditFilter {
                action: Some("POST /console/cards/{card_id}/{action}".into()),
                ..AuditFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].record.status, Some(403));
    assert_eq!(entries[0].record.details["code"], "permission_denied");
    assert_eq!(entries[0].record.object_id.as_deref(), Some(card.id.as_str()));
}

async fn cards_are_found_by_last4(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 5_000).await;
    let mut b = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    let last4 = &card.pan[card.pan.len() - 4..];
    let found = b.get(&format!("/console/cards?card={last4}")).await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.html.contains(card.id.as_str()));
    assert!(!found.html.contains(&card.pan));
    let bad = b.get("/console/cards?card=12").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("id=\"e-card\""));
    // Support may look but not act.
    let page = b.get(&format!("/console/cards/{}", card.id)).await;
    assert!(!page.html.contains("id=\"do-freeze\""));
}

async fn cardholders_are_found_and_show_kyc_cards_and_balances(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 2_500).await;
    let (_, c) = app.get(&net.tenant.sandbox, &format!("/cards/{}", card.id)).await;
    let holder = c["card"]["cardholder_id"].as_str().unwrap().to_owned();
    let mut b = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    let found = b.get("/console/cardholders?last_name=wilson").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.html);
    assert!(found.html.contains(holder.as_str()));
    let none = b.get("/console/cardholders?email=nobody@example.com").await;
    assert!(!none.html.contains(holder.as_str()));
    let page = b.get(&format!("/console/cardholders/{holder}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("<td id=\"kyc-status\">PASSED"), "{}", page.html);
    assert!(page.html.contains(card.id.as_str()));
    assert!(page.html.contains("USD 25.00"), "the card's balance");
    let checks = between(&page.html, "<table id=\"kyc-checks\">", "</table>").unwrap();
    assert!(checks.contains("PASSED"));
    assert!(page.html.contains("ssn ending 0000"), "the document's last four only");
    assert!(!page.html.contains("490940000"), "never the full document number");
    assert!(!page.html.contains(&card.pan));
    assert_eq!(
        b.get("/console/cardholders/crdhldr_nope").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_watchlist_case_is_worked_through_both_approval_steps_by_two_people(app: TestApp) {
    let tenant = app.tenant().await;
    let holder = app
        .cardholder(&tenant.sandbox, &crate::support::seed_cardholder("123450012", None))
        .await;
    let holder_id = holder["id"].as_str().unwrap();
    let mut officer = console_operator(&app, "co@example.com", OperatorRole::ComplianceOfficer).await;
    let mut admin = console_operator(&app, "admin@example.com", OperatorRole::Admin).await;

    let queue = officer.get("/console/cases").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.html);
    let case_id = between(&queue.html, "<a href=\"/console/cases/", "\"").expect("the case is queued");
    assert!(queue.html.contains("watchlist_match"));
    let path = format!("/console/cases/{case_id}");
    let page = officer.get(&path).await;
    assert!(page.html.contains(holder_id));
    let chain = between(&page.html, "<ol id=\"approval-chain\">", "</ol>").unwrap();
    assert!(
        chain.contains("compliance_officer") && chain.contains("admin"),
        "{chain}"
    );

    // Assign, an empty note refused in place, a note, then the first approval.
    let csrf = page.csrf();
    let assigned = officer
        .post(&format!("{path}/assign"), &[("csrf_token", &csrf), ("assignee", "me")])
        .await;
    assert_eq!(assigned.status, StatusCode::SEE_OTHER, "{}", assigned.html);
    let empty = officer
        .post(&format!("{path}/note"), &[("csrf_token", &csrf), ("body", " ")])
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.html.contains("id=\"case-error\""));
    let noted = officer
        .post(
            &format!("{path}/note"),
            &[
                ("csrf_token", &csrf),
                ("body", "Name matches a list entry; DOB differs"),
            ],
        )
        .await;
    assert_eq!(noted.status, StatusCode::SEE_OTHER);
    let first = officer
        .post(
            &format!("{path}/decide"),
            &[
                ("csrf_token", &csrf),
                ("decision", "approve"),
                ("comment", "false positive"),
            ],
        )
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.html);
    let page = officer.get(&path).await;
    assert!(
        page.html.contains("<td id=\"case-status\">pending_approval</td>"),
        "{}",
        page.html
    );
    assert!(
        page.html.contains("id=\"not-my-turn\""),
        "the officer cannot take step 2"
    );
    let chain = between(&page.html, "<ol id=\"approval-chain\">", "</ol>").unwrap();
    assert!(
        chain.contains("approve by co@example.com (compliance_officer)"),
        "{chain}"
    );
    assert!(
        chain.contains("not by co@example.com (compliance_officer) (four eyes)"),
        "{chain}"
    );
    // Posting anyway is refused in place with the rule's own message.
    let again = officer
        .post(
            &format!("{path}/decide"),
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.html);

    // The admin takes step 2: the case closes and KYC passes.
    let page = admin.get(&path).await;
    assert!(page.html.contains("id=\"do-decide\""));
    let second = admin
        .post(
            &format!("{path}/decide"),
            &[("csrf_token", &page.csrf()), ("decision", "approve")],
        )
        .await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "{}", second.html);
    let page = admin.get(&path).await;
    assert!(
        page.html.contains("<td id=\"case-status\">approved</td>"),
        "{}",
        page.html
    );
    assert!(page.html.contains("<span id=\"holder-kyc\">PASSED</span>"));
    let notes = between(&page.html, "<table id=\"notes\">", "</table>").unwrap();
    assert!(notes.contains("Name matches a list entry"));
    let (_, fetched) = app.get(&tenant.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(fetched["cardholder"]["kyc_status"], "PASSED");
}

async fn the_audit_log_is_filtered_verified_and_exported(app: TestApp) {
    let mut admin = console_operator(&app, "admin@example.com", OperatorRole::Admin).await;
    let mut ro = console_operator(&app, "ro@example.com", OperatorRole::ReadOnly).await;

    let page = admin.get("/console/audit?action=session.*").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let table = between(&page.html, "<table id=\"audit\">", "</table>").unwrap();
    assert!(table.contains("session.login"));
    assert!(!table.contains("mfa.enabled"), "the filter narrows");
    let failures = admin.get("/console/audit?outcome=failure").await;
    assert!(
        !between(&failures.html, "<tbody>", "</tbody>")
            .unwrap()
            .contains(">success<")
    );
    let bad = admin.get("/console/audit?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("id=\"filter-error\""));

    let verified = admin.get("/console/audit/verify").await;
    assert_eq!(verified.status, StatusCode::OK);
    assert!(
        between(&verified.html, "id=\"chain-status\">", "<")
            .unwrap()
            .starts_with("The chain is intact")
    );

    assert!(page.html.contains("id=\"export-csv\""));
    let r = app
        .http
        .get(app.url("/console/audit/export?action=session.*"))
        .header("cookie", admin.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("seq,id,occurred_at"));
    assert!(csv.contains("session.login"));

    // Read-only operators may read but not export.
    let ro_page = ro.get("/console/audit").await;
    assert_eq!(ro_page.status, StatusCode::OK);
    assert!(!ro_page.html.contains("id=\"export-csv\""));
    assert_eq!(ro.get("/console/audit/export").await.status, StatusCode::FORBIDDEN);
    // Support may not read the log at all.
    let mut support = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    assert_eq!(support.get("/console/audit").await.status, StatusCode::FORBIDDEN);
}

async fn the_dispute_queue_shows_a_dispute_that_is_assigned_noted_and_submitted(app: TestApp) {
    let t = app.tenant().await;
    app.program(&t.sandbox, "disputes", "411111", 1_000_000).await;
    let card = app.card_with_balance(&t.sandbox, "disputes", 10_000).await;
    let (_, auth) = app
        .post(
            &t.sandbox,
            "/simulate/authorizations",
            &serde_json::json!({"card_id": card["id"], "amount": 4_000}),
        )
        .await;
    let txn = auth["authorization_id"].as_str().unwrap().to_owned();
    app.post(
        &t.sandbox,
        "/simulate/clearings",
        &serde_json::json!({"authorization_id": txn}),
    )
    .await;
    let (status, filed) = app
        .post(
            &t.sandbox,
            &format!("/transactions/{txn}/disputes"),
            &serde_json::json!({"amount": 2_500, "reason": "merchandise_not_received"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    let id = filed["dispute"]["id"].as_str().unwrap().to_owned();

    let mut ops = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let queue = ops.get("/console/disputes").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.html);
    assert!(queue.html.contains(id.as_str()) && queue.html.contains("USD 25.00"));
    let path = format!("/console/disputes/{id}");
    let page = ops.get(&path).await;
    assert!(page.html.contains("<td id=\"dispute-status\">new"), "{}", page.html);
    let csrf = page.csrf();
    assert_eq!(
        ops.post(&format!("{path}/assign"), &[("csrf_token", &csrf), ("assignee", "me")])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        ops.post(
            &format!("{path}/note"),
            &[("csrf_token", &csrf), ("body", "Called the merchant")]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    // Denying needs a reason: refused in place.
    let deny = ops
        .post(&format!("{path}/action"), &[("csrf_token", &csrf), ("action", "deny")])
        .await;
    assert_eq!(deny.status, StatusCode::BAD_REQUEST, "{}", deny.html);
    assert!(deny.html.contains("id=\"dispute-error\""));
    let submitted = ops
        .post(
            &format!("{path}/action"),
            &[("csrf_token", &csrf), ("action", "submit")],
        )
        .await;
    assert_eq!(submitted.status, StatusCode::SEE_OTHER, "{}", submitted.html);
    let page = ops.get(&path).await;
    assert!(
        page.html.contains("<td id=\"dispute-status\">submitted"),
        "{}",
        page.html
    );
    assert!(page.html.contains("Called the merchant"));

    // Support sees the case but no forms.
    let mut support = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    let page = support.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.html.contains("id=\"do-action\""));
}

async fn webhook_endpoints_are_listed_without_secrets_or_query_strings(app: TestApp) {
    let t = app.tenant().await;
    let (status, created) = app
        .post(
            &t.sandbox,
            "/webhook_endpoints",
            &serde_json::json!({"url": "http://127.0.0.1:9/hook?token=sekrit", "enabled_events": ["card.updated"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let mut ops = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let page = ops.get("/console/webhooks").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let endpoints = between(&page.html, "<table id=\"endpoints\">", "</table>").unwrap();
    assert!(endpoints.contains("http://127.0.0.1:9/hook"), "{endpoints}");
    assert!(!page.html.contains("sekrit"), "the query string stays hidden");
    assert!(!page.html.contains("whsec_"), "no signing secret");
    assert!(endpoints.contains("enabled"));
    // Compliance officers do not see tenants' configuration.
    let mut co = console_operator(&app, "co@example.com", OperatorRole::ComplianceOfficer).await;
    assert_eq!(co.get("/console/webhooks").await.status, StatusCode::FORBIDDEN);
}

async fn transaction_pages_follow_each_other_without_gaps_or_repeats(app: TestApp) {
    let net = app.network(1_000_000).await;
    let card = app.net_card(&net, 100_000).await;
    let mut ids = Vec::new();
    for _ in 0..55 {
        let msg = NetMessage::authorization(&card, 100);
        let (_, answer) = app.post(&net.credential, msg.path(), &msg.into_json()).await;
        ids.push(answer["authorization_id"].as_str().unwrap().to_owned());
    }
    let mut b = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    let last4 = &card.pan[card.pan.len() - 4..];
    for first in [
        format!("/console/transactions?card={last4}"),
        format!("/console/transactions?card={}", card.id),
        "/console/transactions".to_owned(),
    ] {
        let mut seen = Vec::new();
        let mut next = Some(first.clone());
        let mut pages = 0;
        while let Some(path) = next {
            let page = b.get(&path.replace("&amp;", "&").replace("&#38;", "&")).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.html);
            let table = between(&page.html, "<table id=\"transactions\">", "</table>").unwrap();
            for chunk in table.split("<a href=\"/console/transactions/").skip(1) {
                seen.push(chunk.split('"').next().unwrap().to_owned());
            }
            next = between(&page.html, "id=\"next-page\" href=\"", "\"");
            pages += 1;
            assert!(pages <= 3, "{first}: too many pages: {path} {seen:?}");
        }
        assert_eq!(pages, 2, "{first}");
        let mut expected = ids.clone();
        expected.reverse();
        assert_eq!(seen, expected, "{first}: newest first, each once");
    }
}

app_tests!(
    transaction_pages_follow_each_other_without_gaps_or_repeats,
    webhook_endpoints_are_listed_without_secrets_or_query_strings,
    the_dispute_queue_shows_a_dispute_that_is_assigned_noted_and_submitted,
    the_audit_log_is_filtered_verified_and_exported,
    a_watchlist_case_is_worked_through_both_approval_steps_by_two_people,
    cardholders_are_found_and_show_kyc_cards_and_balances,
    transactions_are_found_by_last4_and_filters_and_show_their_decision_trace,
    a_card_is_frozen_with_a_reason_and_then_declined_by_the_network,
    a_read_only_operator_sees_no_actions_and_a_forged_post_is_refused,
    cards_are_found_by_last4,
    signing_in_enrols_totp_with_a_qr_code_and_signing_out_ends_the_session,
    sign_in_refusals_say_the_same_thing_whatever_failed,
    a_console_post_without_the_form_csrf_token_is_refused_and_audited,
    pages_load_nothing_from_elsewhere_and_are_not_framed,
);
app_tests!(spawn = super::spawn_without_rollup_job; the_health_page_shows_rolled_up_authorizations_declines_and_clearing);
app_tests!(spawn = super::spawn_short_idle; idle_console_sessions_expire);
