//! The operations console over real HTTP: sign-in (passwords, TOTP, lockout, idle sessions,
//! CSRF), the permission matrix for every role and endpoint, the compliance workflow with
//! four-eyes approval chains and documents, and the tamper-evident audit log.

use cardplane_api::workflows::admin::create_operator;
use cardplane_api::workflows::admin::new_user;
use cardplane_domain::Timestamp;
use cardplane_domain::audit::{ActorKind, AuditRecord, ChainBreak, Outcome};
use cardplane_domain::ids::{TenantId, UserId};
use cardplane_domain::people::{Action, OperatorRole, Person, Role, SignInGuard, allows};
use cardplane_domain::totp::{STEP_SECS, TotpSecret};
use cardplane_testkit::{Backend, both_backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, seed_cardholder, send};

const PASSWORD: &str = "correct horse battery staple";

/// A signed-in person: the session cookie, the CSRF token, and the TOTP secret once enrolled.
pub(crate) struct Staffer {
    pub(crate) id: String,
    email: String,
    cookie: String,
    csrf: String,
    totp: Option<TotpSecret>,
    recovery: Vec<String>,
}

fn session_cookie(r: &reqwest::Response) -> String {
    let set = r
        .headers()
        .get("set-cookie")
        .expect("sign-in sets the session cookie")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn login_raw(app: &TestApp, email: &str, password: &str, code: Option<&str>) -> reqwest::Response {
    let mut body = json!({"email": email, "password": password});
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    app.http.post(app.url("/ops/login")).json(&body).send().await.unwrap()
}

/// The code for the step after now: enrolment consumed the current one.
fn next_code(secret: &TotpSecret, steps_ahead: i64) -> String {
    secret.code_at(Timestamp::now().unix_seconds() + steps_ahead * STEP_SECS)
}

impl Staffer {
    async fn login(app: &TestApp, email: &str, code: Option<&str>) -> Staffer {
        let r = login_raw(app, email, PASSWORD, code).await;
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = session_cookie(&r);
        let body: Value = r.json().await.unwrap();
        Staffer {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            totp: None,
            recovery: Vec::new(),
        }
    }

    pub(crate) fn request(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        app.http
            .request(method, app.url(path))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
    }

    pub(crate) async fn get(&self, app: &TestApp, path: &str) -> (StatusCode, Value) {
        send(self.request(app, Method::GET, path)).await
    }

    pub(crate) async fn post(&self, app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
        send(self.request(app, Method::POST, path).json(body)).await
    }

    async fn put(&self, app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
        send(self.request(app, Method::PUT, path).json(body)).await
    }

    /// Enrols TOTP; the session stays signed in with MFA on.
    async fn enrol(&mut self, app: &TestApp) -> Vec<String> {
        let (status, begun) = self.post(app, "/ops/mfa/totp", &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{begun}");
        let secret = TotpSecret::from_base32(begun["secret"].as_str().unwrap()).unwrap();
        let code = secret.code_at(Timestamp::now().unix_seconds());
        let (status, done) = self.post(app, "/ops/mfa/totp/confirm", &json!({"code": code})).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        self.totp = Some(secret);
        self.recovery = done["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        self.recovery.clone()
    }
}

pub(crate) async fn add_person(app: &TestApp, email: &str, role: Role, tenant: Option<&TenantId>) -> UserId {
    let person = Person {
        id: UserId::generate(),
        email: email.to_owned(),
        name: email.to_owned(),
        role,
        tenant_id: tenant.cloned(),
        disabled: false,
        mfa_enabled: false,
        guard: SignInGuard::default(),
        created_at: Timestamp::now(),
        last_login_at: None,
    };
    let user = new_user(person, PASSWORD.to_owned()).await.unwrap();
    let audit = AuditRecord::new(
        Timestamp::now(),
        ActorKind::System,
        Some("test".into()),
        "user.created",
        Outcome::Success,
    )
    .on("user", user.person.id.as_str());
    app.state.people.insert_user(&user, &audit).await.unwrap();
    user.person.id
}

/// A signed-in person with TOTP enrolled.
pub(crate) async fn staff(app: &TestApp, email: &str, role: Role, tenant: Option<&TenantId>) -> Staffer {
    add_person(app, email, role, tenant).await;
    let mut p = Staffer::login(app, email, None).await;
    p.enrol(app).await;
    p
}

pub(crate) async fn admin(app: &TestApp) -> Staffer {
    create_operator(
        &app.state,
        "root@example.com",
        "Root",
        OperatorRole::Admin,
        PASSWORD.into(),
    )
    .await
    .unwrap();
    let mut p = Staffer::login(app, "root@example.com", None).await;
    p.enrol(app).await;
    p
}

async fn sign_in_rules(app: TestApp) {
    let root = admin(&app).await;

    // An 11-character password is refused; 12 is fine.
    let (status, body) = root
        .post(
            &app,
            "/ops/operators",
            &json!({"email": "short@example.com", "name": "S", "role": "support", "password": "elevenchars"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "password_too_short");
    let (status, body) = root
        .post(
            &app,
            "/ops/operators",
            &json!({"email": "Grace@Example.com", "name": "Grace", "role": "support", "password": "twelve chars"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["email"], "grace@example.com");

    // The cookie is HttpOnly, SameSite=Strict, Secure (the default), scoped to /ops.
    let r = login_raw(&app, "grace@example.com", "twelve chars", None).await;
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ops"] {
        assert!(set.contains(attr), "{set}");
    }

    // A wrong password and an unknown email answer alike.
    let wrong = login_raw(&app, "grace@example.com", "not the password", None).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let w: Value = wrong.json().await.unwrap();
    let unknown: Value = login_raw(&app, "nobody@example.com", "not the password", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(w["error"]["code"], "credentials_invalid");
    assert_eq!(w, unknown);
    // Both failures are audited, without what was typed as the email.
    let (_, audit) = root.get(&app, "/ops/audit?action=session.login&outcome=failure").await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 2, "{audit}");
    assert!(!audit.to_string().contains("nobody@example.com"), "{audit}");

    // Before a second factor, nothing but enrolment works.
    let grace = Staffer {
        cookie: session_cookie(&r),
        csrf: r.json::<Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        id: String::new(),
        email: "grace@example.com".into(),
        totp: None,
        recovery: Vec::new(),
    };
    let (status, body) = grace.get(&app, "/ops/tenants").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "mfa_enrolment_required");

    // CSRF: a cookie alone cannot change anything.
    let (status, body) = send(
        app.http
            .post(app.url("/ops/cases"))
            .header("cookie", &root.cookie)
            .json(&json!({"cardholder_id": "crdhldr_x", "note": "n"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "csrf_token_invalid");
    let (status, body) = send(
        app.http
            .post(app.url("/ops/logout"))
            .header("cookie", &root.cookie)
            .header("x-csrf-token", "forged"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "csrf_token_invalid");
    let (status, _) = root.get(&app, "/ops/session").await;
    assert_eq!(status, StatusCode::OK, "the refused logout left the session alone");

    // No cookie at all.
    let (status, body) = send(app.http.get(app.url("/ops/cases"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "session_required");
}

async fn totp_codes_are_single_use_and_recovery_codes_work_once(app: TestApp) {
    let mut root = admin(&app).await;
    // Enrol again refused.
    let (status, _) = root.post(&app, "/ops/mfa/totp", &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let secret = root.totp.take().unwrap();

    // Password alone is not enough any more.
    let r = login_raw(&app, &root.email, PASSWORD, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "mfa_code_required");

    let code = next_code(&secret, 1);
    let first = login_raw(&app, &root.email, PASSWORD, Some(&code)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let replay = login_raw(&app, &root.email, PASSWORD, Some(&code)).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error"]["code"],
        "mfa_code_reused"
    );
    let wrong = login_raw(&app, &root.email, PASSWORD, Some("000000")).await;
    // (One in a million: 000000 could be the real code; the next step's is then used up anyway.)
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // A second person's recovery codes.
    add_person(&app, "ops@example.com", Role::Operator(OperatorRole::Operations), None).await;
    let mut ops = Staffer::login(&app, "ops@example.com", None).await;
    let codes = ops.enrol(&app).await;
    assert_eq!(codes.len(), 10);
    let r = login_raw(&app, "ops@example.com", PASSWORD, Some(&codes[3])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["recovery_codes_remaining"], 9);
    let again = login_raw(&app, "ops@example.com", PASSWORD, Some(&codes[3])).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);

    // Both outcomes are in the audit log.
    let (status, page) = ops.get(&app, "/ops/audit").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "operations may not read the audit log: {page}"
    );
    // (A fresh TOTP code may not exist yet within this 30-second step: use a recovery code.)
    let root = Staffer::login(&app, &root.email, Some(&root.recovery[0])).await;
    let (_, page) = root.get(&app, "/ops/audit?action=session.login&outcome=failure").await;
    let codes: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["code"].as_str().unwrap())
        .collect();
    for expected in ["mfa_code_required", "mfa_code_reused", "mfa_code_invalid"] {
        assert!(codes.contains(&expected), "{expected} in {codes:?}");
    }
}

async fn eleven_wrong_passwords_lock_the_account(app: TestApp) {
    add_person(&app, "eve@example.com", Role::Operator(OperatorRole::Support), None).await;
    for i in 1..=10 {
        let r = login_raw(&app, "eve@example.com", "wrong password!", None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let eleventh = login_raw(&app, "eve@example.com", "wrong password!", None).await;
    assert_eq!(eleventh.status(), StatusCode::LOCKED);
    assert!(eleventh.headers().contains_key("retry-after"));
    assert_eq!(
        eleventh.json::<Value>().await.unwrap()["error"]["code"],
        "account_locked"
    );
    // Locked means locked: the right password is refused too.
    let right = login_raw(&app, "eve@example.com", PASSWORD, None).await;
    assert_eq!(right.status(), StatusCode::LOCKED);
    let user = app
        .state
        .people
        .find_user_by_email("eve@example.com")
        .await
        .unwrap()
        .unwrap();
    let until = user.person.guard.locked_until.unwrap();
    let minutes = (until.as_micros() - Timestamp::now().as_micros()) / 60_000_000;
    assert!((29..=30).contains(&minutes), "{minutes}");

    // An administrator resets her: new password, lock lifted, she must enrol a factor again.
    let root = admin(&app).await;
    let path = format!("/ops/operators/{}/reset", user.person.id);
    let (status, body) = root.post(&app, &path, &json!({"password": "short"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "password_too_short");
    let (status, body) = root
        .post(&app, &path, &json!({"password": "a brand new passphrase"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["locked_until"].is_null());
    assert_eq!(body["mfa_enabled"], false);
    let r = login_raw(&app, "eve@example.com", "a brand new passphrase", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = root
        .post(
            &app,
            &format!("/ops/operators/{}/reset", root.id),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not oneself");
    let (_, audit) = root.get(&app, "/ops/audit?action=user.credentials_reset").await;
    assert_eq!(audit["entries"][0]["object_id"], user.person.id.as_str());
}

async fn idle_sessions_expire(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, |c| c.operators.session_idle_secs = 1).await else {
        return;
    };
    let root = admin(&app).await;
    let (status, _) = root.get(&app, "/ops/session").await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let (status, body) = root.get(&app, "/ops/session").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "session_expired");
    // And it stays gone.
    let (_, body) = root.get(&app, "/ops/session").await;
    assert_eq!(body["error"]["code"], "session_invalid");
}

/// Every /ops endpoint with the action it needs; requests are shaped to pass body parsing and
/// fail harmlessly (404/400) after the permission check when allowed.
fn endpoints(tenant: &str) -> Vec<(Method, String, Option<Value>, Action)> {
    let nobody = "usr_0000000000000000000000000000000a";
    let case = "case_0000000000000000000000000000000a";
    let program = "prog_0000000000000000000000000000000a";
    let dispute = "dsp_0000000000000000000000000000000a";
    let alert = "alrt_0000000000000000000000000000000a";
    vec![
        (Method::GET, "/ops/operators".into(), None, Action::ViewOperators),
        (
            Method::POST,
            "/ops/operators".into(),
            Some(json!({"email": "bad", "name": "x", "role": "support", "password": PASSWORD})),
            Action::ManageOperators,
        ),
        (
            Method::POST,
            format!("/ops/operators/{nobody}"),
            Some(json!({"name": "x"})),
            Action::ManageOperators,
        ),
        (
            Method::POST,
            format!("/ops/operators/{nobody}/reset"),
            Some(json!({"password": PASSWORD})),
            Action::ManageOperators,
        ),
        (Method::GET, "/ops/tenants".into(), None, Action::ViewTenants),
        (Method::GET, format!("/ops/tenants/{tenant}"), None, Action::ViewTenants),
        (
            Method::GET,
            format!("/ops/tenants/{tenant}/users"),
            None,
            Action::ViewTenantUsers,
        ),
        (
            Method::POST,
            format!("/ops/tenants/{tenant}/users"),
            Some(json!({"email": "bad", "name": "x", "role": "viewer", "password": PASSWORD})),
            Action::ManageTenantUsers,
        ),
        (
            Method::POST,
            format!("/ops/tenants/{tenant}/users/{nobody}"),
            Some(json!({"name": "x"})),
            Action::ManageTenantUsers,
        ),
        (
            Method::GET,
            format!("/ops/tenants/{tenant}/api_keys"),
            None,
            Action::ViewApiKeys,
        ),
        (
            Method::POST,
            format!("/ops/tenants/{tenant}/api_keys/key_0000000000000000000000000000000a/revoke"),
            None,
            Action::ManageApiKeys,
        ),
        (Method::GET, "/ops/cases".into(), None, Action::ViewCases),
        (
            Method::POST,
            "/ops/cases".into(),
            Some(json!({"cardholder_id": "crdhldr_0000000000000000000000000000000a", "note": "look"})),
            Action::WorkCases,
        ),
        (Method::GET, format!("/ops/cases/{case}"), None, Action::ViewCases),
        (
            Method::POST,
            format!("/ops/cases/{case}/assign"),
            Some(json!({"assignee_id": null})),
            Action::WorkCases,
        ),
        (
            Method::POST,
            format!("/ops/cases/{case}/notes"),
            Some(json!({"body": "n"})),
            Action::WorkCases,
        ),
        (
            Method::POST,
            format!("/ops/cases/{case}/documents"),
            None,
            Action::WorkCases,
        ),
        (
            Method::POST,
            format!("/ops/cases/{case}/request_documents"),
            Some(json!({"kyc_file_reason": "BLURRY"})),
            Action::WorkCases,
        ),
        (
            Method::POST,
            format!("/ops/cases/{case}/decisions"),
            Some(json!({"decision": "approve"})),
            Action::DecideCases,
        ),
        (
            Method::GET,
            "/ops/documents/doc_0000000000000000000000000000000a/content".into(),
            None,
            Action::ViewDocuments,
        ),
        (
            Method::GET,
            format!("/ops/programs/{program}/approval_chains"),
            None,
            Action::ViewApprovalChains,
        ),
        (
            Method::PUT,
            format!("/ops/programs/{program}/approval_chains/default"),
            Some(json!({"steps": ["admin"], "sla_hours": 24})),
            Action::ManageApprovalChains,
        ),
        (Method::GET, "/ops/audit".into(), None, Action::ViewAudit),
        (Method::GET, "/ops/audit/export".into(), None, Action::ExportAudit),
        (Method::GET, "/ops/disputes".into(), None, Action::ViewDisputes),
        (
            Method::GET,
            format!("/ops/disputes/{dispute}"),
            None,
            Action::ViewDisputes,
        ),
        (
            Method::POST,
            format!("/ops/disputes/{dispute}/assign"),
            Some(json!({"assignee_id": null})),
            Action::WorkDisputes,
        ),
        (
            Method::POST,
            format!("/ops/disputes/{dispute}/notes"),
            Some(json!({"body": "x"})),
            Action::WorkDisputes,
        ),
        (
            Method::POST,
            format!("/ops/disputes/{dispute}/actions"),
            Some(json!({"action": "submit"})),
            Action::WorkDisputes,
        ),
        (Method::GET, "/ops/reports/disputes".into(), None, Action::ViewDisputes),
        (Method::GET, "/ops/alerts".into(), None, Action::ViewAlerts),
        (
            Method::POST,
            format!("/ops/alerts/{alert}/assign"),
            Some(json!({"assignee_id": null})),
            Action::WorkAlerts,
        ),
        (
            Method::POST,
            format!("/ops/alerts/{alert}/resolve"),
            Some(json!({"resolution": "not_fraud"})),
            Action::WorkAlerts,
        ),
    ]
}

async fn the_permission_matrix_holds_for_every_role_and_endpoint(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let t = app.tenant().await;
    let tenant = TenantId::parse(&t.id).unwrap();
    let table = endpoints(&t.id);

    // Every /ops endpoint in the OpenAPI document is in the table (or open to any signed-in person).
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let self_service = [
        "/ops/login",
        "/ops/logout",
        "/ops/session",
        "/ops/mfa/totp",
        "/ops/mfa/totp/confirm",
        "/ops/password",
    ];
    for (path, methods) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/ops") || self_service.contains(&path.as_str()) {
            continue;
        }
        for method in methods.as_object().unwrap().keys() {
            let covered = table.iter().any(|(m, p, _, _)| {
                m.as_str().eq_ignore_ascii_case(method)
                    && p.split('/').count() == path.split('/').count()
                    && p.split('/')
                        .zip(path.split('/'))
                        .all(|(a, b)| a == b || b.starts_with('{'))
            });
            assert!(covered, "{method} {path} is missing from the permission matrix test");
        }
    }

    let mut people = Vec::new();
    for (i, role) in Role::ALL.iter().enumerate() {
        let tenant_id = (!role.is_operator()).then_some(&tenant);
        people.push((*role, staff(&app, &format!("p{i}@example.com"), *role, tenant_id).await));
    }
    for (role, person) in &people {
        for (method, path, body, action) in &table {
            let mut req = person.request(&app, method.clone(), path);
            if let Some(b) = body {
                req = req.json(b);
            }
            let (status, reply) = send(req).await;
            let allowed = allows(*role, *action);
            if allowed {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} may {} {method} {path}: {reply}",
                    role.as_str(),
                    action.as_str()
                );
                assert!(status.as_u16() < 500, "{method} {path}: {reply}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} may not {} {method} {path}: {reply}",
                    role.as_str(),
                    action.as_str()
                );
                assert_eq!(reply["error"]["code"], "permission_denied");
            }
        }
    }

    // Tenant users see their own tenant only; another tenant is a 404 whatever their role.
    let other = app.tenant().await;
    for (role, person) in people.iter().filter(|(r, _)| !r.is_operator()) {
        let (status, _) = person.get(&app, &format!("/ops/tenants/{}", other.id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{}", role.as_str());
        let (_, list) = person.get(&app, "/ops/tenants").await;
        let ids: Vec<&str> = list["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![t.id.as_str()]);
    }

    // Refusals are audited as failures.
    let (_, root) = &people[0];
    let (_, page) = root
        .get(&app, "/ops/audit?outcome=failure&action=POST%20/ops/operators")
        .await;
    let refusals = page["entries"].as_array().unwrap();
    assert!(
        refusals
            .iter()
            .any(|e| e["details"]["code"] == "permission_denied" && e["status"] == 403),
        "{page}"
    );
}

async fn a_watchlist_match_needs_a_compliance_officer_then_a_different_admin(app: TestApp) {
    let t = app.tenant().await;
    let program = app.program(&t.sandbox, "GPR", "411111", 1_000_000).await;
    let root = admin(&app).await;
    let officer = staff(
        &app,
        "co@example.com",
        Role::Operator(OperatorRole::ComplianceOfficer),
        None,
    )
    .await;
    let other_admin = staff(&app, "admin2@example.com", Role::Operator(OperatorRole::Admin), None).await;

    let (status, chains) = root
        .get(
            &app,
            &format!("/ops/programs/{}/approval_chains", program["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{chains}");
    assert_eq!(
        chains["approval_chains"][1]["steps"],
        json!(["compliance_officer", "admin"])
    );

    // SSN ...0012: UNDER_REVIEW with WATCHLIST_MATCH; the card order waits for KYC.
    let mut body = seed_cardholder("490940012", None);
    body["card"] = json!({"program_id": "GPR", "initial_load": {"currency": "USD", "amount": 700}});
    let holder = app.cardholder(&t.sandbox, &body).await;
    assert_eq!(holder["kyc_status"], "UNDER_REVIEW");
    let holder_id = holder["id"].as_str().unwrap();

    let (_, queue) = officer
        .get(&app, &format!("/ops/cases?cardholder_id={holder_id}"))
        .await;
    let case = &queue["cases"][0];
    assert_eq!(case["reason"], "watchlist_match", "{queue}");
    assert_eq!(case["status"], "open");
    assert_eq!(case["next_step_role"], "compliance_officer");
    assert_eq!(case["program_id"], program["id"]);
    let case_id = case["id"].as_str().unwrap().to_owned();
    let path = format!("/ops/cases/{case_id}/decisions");
    let approve = json!({"decision": "approve", "comment": "checked the list"});

    // The admin cannot go first; the officer can.
    let (status, body) = root.post(&app, &path, &approve).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "approval_role_required");
    let (status, body) = officer.post(&app, &path, &approve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "pending_approval");
    assert_eq!(body["next_step_role"], "admin");
    // Still under review for the tenant.
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], "UNDER_REVIEW");
    let (status, body) = officer.post(&app, &path, &approve).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "approval_role_required");

    let (status, body) = other_admin.post(&app, &path, &approve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["approvals"].as_array().unwrap().len(), 2);
    let (status, body) = root.post(&app, &path, &approve).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "case_closed");

    // The decision reached the cardholder: PASSED, the waiting card issued, events, KYC history.
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], "PASSED", "{h}");
    assert!(h["cardholder"]["kyc_identity_reason"].is_null());
    let (_, orders) = app
        .get(&t.sandbox, &format!("/cardholders/{holder_id}/card_orders"))
        .await;
    assert_eq!(orders["card_orders"][0]["status"], "fulfilled", "{orders}");
    let (_, checks) = app
        .get(&t.sandbox, &format!("/cardholders/{holder_id}/kyc_checks"))
        .await;
    assert_eq!(
        checks["kyc_checks"][0]["kyc_check"]["provider"], "manual_review",
        "{checks}"
    );
    let (_, events) = app.get(&t.sandbox, "/events?limit=50").await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "cardholder.kyc_updated" || e["type"] == "cardholder.kyc_updated"),
        "{events}"
    );

    // Each step is in the audit log with who decided.
    let (_, audit) = root
        .get(&app, &format!("/ops/audit?object_id={case_id}&action=case.decided"))
        .await;
    let deciders: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "success")
        .map(|e| e["actor_id"].as_str().unwrap())
        .collect();
    assert_eq!(deciders, vec![other_admin.id.as_str(), officer.id.as_str()]);
}

async fn one_person_cannot_complete_a_four_eyes_chain_twice(app: TestApp) {
    let t = app.tenant().await;
    let program = app.program(&t.sandbox, "GPR", "411111", 1_000_000).await;
    let root = admin(&app).await;
    let second = staff(&app, "admin2@example.com", Role::Operator(OperatorRole::Admin), None).await;
    let path = format!(
        "/ops/programs/{}/approval_chains/default",
        program["id"].as_str().unwrap()
    );
    let (status, body) = root
        .put(&app, &path, &json!({"steps": ["admin", "admin"], "sla_hours": 4}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = root
        .put(&app, &path, &json!({"steps": ["support"], "sla_hours": 4}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // SSN ...0005: UNDER_REVIEW (commercial address).
    let mut body = seed_cardholder("490940005", None);
    body["card"] = json!({"program_id": "GPR"});
    let holder = app.cardholder(&t.sandbox, &body).await;
    let (_, queue) = root
        .get(
            &app,
            &format!("/ops/cases?cardholder_id={}", holder["id"].as_str().unwrap()),
        )
        .await;
    let case = &queue["cases"][0];
    assert_eq!(case["approval_chain"], json!(["admin", "admin"]), "{queue}");
    let case_id = case["id"].as_str().unwrap();
    let decisions = format!("/ops/cases/{case_id}/decisions");
    let (status, _) = root.post(&app, &decisions, &json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = root.post(&app, &decisions, &json!({"decision": "approve"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "four_eyes_required");
    let (_, audit) = root
        .get(&app, &format!("/ops/audit?object_id={case_id}&outcome=failure"))
        .await;
    assert_eq!(audit["entries"][0]["details"]["code"], "four_eyes_required", "{audit}");
    assert_eq!(audit["entries"][0]["actor_id"], root.id);
    // Rejecting is a decision on the step too: the same person cannot do that either.
    let (status, _) = root.post(&app, &decisions, &json!({"decision": "reject"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = second
        .post(&app, &decisions, &json!({"decision": "reject", "comment": "no"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rejected");
    let (_, h) = app
        .get(&t.sandbox, &format!("/cardholders/{}", holder["id"].as_str().unwrap()))
        .await;
    assert_eq!(h["cardholder"]["kyc_status"], "REJECTED");
    // The SLA came from the chain.
    assert!(case["due_at"].as_str().is_some());
}

pub(crate) fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(size, 7);
    bytes
}

async fn upload(
    app: &TestApp,
    who: &Staffer,
    case_id: &str,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    send(
        who.request(app, Method::POST, &format!("/ops/cases/{case_id}/documents"))
            .multipart(document_form(name, mime, bytes)),
    )
    .await
}

/// A server that keeps documents in a directory of the test's own, with a 64 KiB limit.
async fn spawn_with_documents(b: Backend) -> Option<(TestApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let documents_dir = dir.path().to_owned();
    let app = TestApp::spawn_with(b, |c| {
        c.operators.documents_dir = documents_dir;
        c.operators.document_max_bytes = 64 * 1024;
    })
    .await?;
    Some((app, dir))
}

/// A multipart identity document.
fn document_form(name: &str, mime: &str, bytes: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().text("kind", "identity_document").part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(mime)
            .unwrap(),
    )
}

/// A cardholder whose KYC case a reviewer sent back for files: (cardholder id, case id).
async fn awaiting_documents(app: &TestApp, reviewer: &Staffer, key: &crate::support::Creds) -> (String, String) {
    let holder = app.cardholder(key, &seed_cardholder("490940006", None)).await;
    let holder_id = holder["id"].as_str().unwrap().to_owned();
    let (_, queue) = reviewer
        .get(app, &format!("/ops/cases?cardholder_id={holder_id}"))
        .await;
    let case_id = queue["cases"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = reviewer
        .post(
            app,
            &format!("/ops/cases/{case_id}/request_documents"),
            &json!({"kyc_file_reason": "BLURRY"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "awaiting_documents");
    (holder_id, case_id)
}

/// The console's answers match the OpenAPI document (the dashboard will be built on them).
async fn console_answers_match_the_openapi_document(b: Backend) {
    let Some((app, _dir)) = spawn_with_documents(b).await else {
        return;
    };
    let t = app.tenant().await;
    app.program(&t.sandbox, "GPR", "411111", 0).await;
    let root = admin(&app).await;
    let officer = staff(
        &app,
        "officer@example.com",
        Role::Operator(OperatorRole::ComplianceOfficer),
        None,
    )
    .await;
    let documented = |method: Method, template: &str, (status, body): (StatusCode, Value)| {
        assert!(status.is_success(), "{method} {template}: {status} {body}");
        crate::contract::assert_documented(&method, template, status, &body);
        body
    };
    use Method as M;
    documented(M::GET, "/ops/session", root.get(&app, "/ops/session").await);
    documented(M::GET, "/ops/operators", root.get(&app, "/ops/operators").await);
    let person = documented(
        M::POST,
        "/ops/operators",
        root.post(
            &app,
            "/ops/operators",
            &json!({"email": "sam@example.com", "name": "Sam", "role": "support", "password": PASSWORD}),
        )
        .await,
    );
    let person_id = person["id"].as_str().unwrap().to_owned();
    documented(
        M::POST,
        "/ops/operators/{user_id}",
        root.post(
            &app,
            &format!("/ops/operators/{person_id}"),
            &json!({"role": "operations"}),
        )
        .await,
    );
    documented(
        M::POST,
        "/ops/operators/{user_id}/reset",
        root.post(
            &app,
            &format!("/ops/operators/{person_id}/reset"),
            &json!({"password": PASSWORD}),
        )
        .await,
    );
    let tenant = format!("/ops/tenants/{}", t.id);
    documented(M::GET, "/ops/tenants", root.get(&app, "/ops/tenants").await);
    documented(M::GET, "/ops/tenants/{tenant_id}", root.get(&app, &tenant).await);
    let user = documented(
        M::POST,
        "/ops/tenants/{tenant_id}/users",
        root.post(
            &app,
            &format!("{tenant}/users"),
            &json!({"email": "dev@acme.example", "name": "Dev", "role": "developer", "password": PASSWORD}),
        )
        .await,
    );
    let user_id = user["id"].as_str().unwrap().to_owned();
    documented(
        M::GET,
        "/ops/tenants/{tenant_id}/users",
        root.get(&app, &format!("{tenant}/users")).await,
    );
    documented(
        M::POST,
        "/ops/tenants/{tenant_id}/users/{user_id}",
        root.post(&app, &format!("{tenant}/users/{user_id}"), &json!({"role": "viewer"}))
            .await,
    );
    let keys = documented(
        M::GET,
        "/ops/tenants/{tenant_id}/api_keys",
        root.get(&app, &format!("{tenant}/api_keys")).await,
    );
    let live_key = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["livemode"] == true)
        .expect("the tenant's live key")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    documented(
        M::POST,
        "/ops/tenants/{tenant_id}/api_keys/{api_key_id}/revoke",
        root.post(&app, &format!("{tenant}/api_keys/{live_key}/revoke"), &json!({}))
            .await,
    );

    // The review workflow.
    let program_id = app.get(&t.sandbox, "/programs/GPR").await.1["program"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chains = format!("/ops/programs/{program_id}/approval_chains");
    documented(
        M::PUT,
        "/ops/programs/{program_id}/approval_chains/{trigger}",
        root.put(
            &app,
            &format!("{chains}/default"),
            &json!({"steps": ["compliance_officer"], "sla_hours": 24}),
        )
        .await,
    );
    documented(
        M::GET,
        "/ops/programs/{program_id}/approval_chains",
        root.get(&app, &chains).await,
    );
    let (holder_id, case_id) = awaiting_documents(&app, &root, &t.sandbox).await;
    let case = format!("/ops/cases/{case_id}");
    documented(M::GET, "/ops/cases", root.get(&app, "/ops/cases").await);
    documented(M::GET, "/ops/cases/{case_id}", root.get(&app, &case).await);
    documented(
        M::POST,
        "/ops/cases/{case_id}/assign",
        root.post(&app, &format!("{case}/assign"), &json!({"assignee_id": officer.id}))
            .await,
    );
    documented(
        M::POST,
        "/ops/cases/{case_id}/notes",
        root.post(
            &app,
            &format!("{case}/notes"),
            &json!({"body": "Called the custodian."}),
        )
        .await,
    );
    documented(
        M::POST,
        "/ops/cases/{case_id}/documents",
        upload(&app, &root, &case_id, "id.png", "image/png", png(500)).await,
    );
    documented(
        M::POST,
        "/ops/cases/{case_id}/request_documents",
        root.post(
            &app,
            &format!("{case}/request_documents"),
            &json!({"kyc_file_reason": "WRONG_FILE"}),
        )
        .await,
    );
    documented(
        M::POST,
        "/ops/cases/{case_id}/decisions",
        officer
            .post(&app, &format!("{case}/decisions"), &json!({"decision": "approve"}))
            .await,
    );
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], "PASSED", "{h}");
    let opened = documented(
        M::POST,
        "/ops/cases",
        root.post(
            &app,
            "/ops/cases",
            &json!({"cardholder_id": holder_id, "note": "Second look."}),
        )
        .await,
    );
    assert_eq!(opened["reason"], "manual", "{opened}");
    documented(M::GET, "/ops/audit", root.get(&app, "/ops/audit").await);
}

async fn documents_are_requested_uploaded_limited_and_stored_encrypted(b: Backend) {
    let Some((app, dir)) = spawn_with_documents(b).await else {
        return;
    };
    let documents_dir = dir.path().to_owned();
    let t = app.tenant().await;
    let root = admin(&app).await;
    let support = staff(&app, "support@example.com", Role::Operator(OperatorRole::Support), None).await;
    let (holder_id, case_id) = awaiting_documents(&app, &root, &t.sandbox).await;
    let holder_id = holder_id.as_str();
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], "UPLOAD_FILE");
    assert_eq!(h["cardholder"]["kyc_file_reason"], "BLURRY");

    // Over the limit, a forbidden type, a lie about the type: refused, nothing stored.
    let (status, body) = upload(&app, &root, &case_id, "big.png", "image/png", png(64 * 1024 + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "document_too_large");
    let (status, body) = upload(
        &app,
        &root,
        &case_id,
        "run.exe",
        "application/x-msdownload",
        b"MZ\x90\x00".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "document_type_forbidden");
    let (status, _) = upload(
        &app,
        &root,
        &case_id,
        "fake.pdf",
        "application/pdf",
        b"MZ not a pdf".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(std::fs::read_dir(&documents_dir).map(|d| d.count()).unwrap_or(0), 0);
    let (status, _) = upload(&app, &support, &case_id, "id.png", "image/png", png(100)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "support may not upload");

    let mut secret_png = png(2000);
    secret_png[100..120].copy_from_slice(b"PASSPORT-NUMBER-X123");
    let (status, doc) = upload(&app, &root, &case_id, "id.png", "image/png", secret_png.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["size_bytes"], 2000);
    let (_, detail) = root.get(&app, &format!("/ops/cases/{case_id}")).await;
    assert_eq!(
        detail["case"]["status"], "open",
        "a document puts the case back in the queue"
    );
    assert_eq!(detail["documents"][0]["id"], doc["id"]);
    assert!(detail["cardholder"].get("document_value").is_none());

    // At rest the file is sealed; through the API it comes back whole, and the view is audited.
    for entry in std::fs::read_dir(&documents_dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!raw.windows(20).any(|w| w == b"PASSPORT-NUMBER-X123"));
    }
    let r = root
        .request(
            &app,
            Method::GET,
            &format!("/ops/documents/{}/content", doc["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), secret_png);
    let (_, audit) = root.get(&app, "/ops/audit?action=document.*").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["document.viewed", "document.uploaded"]);
}

async fn a_custodian_uploads_what_kyc_asked_for_and_the_case_returns_to_the_queue(b: Backend) {
    let Some((app, dir)) = spawn_with_documents(b).await else {
        return;
    };
    let documents_dir = dir.path().to_owned();
    let t = app.tenant().await;
    let other = app.tenant().await;
    let root = admin(&app).await;
    let (holder_id, case_id) = awaiting_documents(&app, &root, &t.sandbox).await;
    let holder_id = holder_id.as_str();
    let path = format!("/cardholders/{holder_id}/documents");

    // Refused without storing anything: another tenant's key, the other environment, a file
    // over the limit, a type the bytes contradict.
    let upload = |creds: &crate::support::Creds, mime: &str, bytes: Vec<u8>| {
        send(
            app.request(Method::POST, &path, creds)
                .multipart(document_form("id.png", mime, bytes)),
        )
    };
    let (status, _) = upload(&other.sandbox, "image/png", png(100)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = upload(&t.live, "image/png", png(100)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = upload(&t.sandbox, "image/png", png(64 * 1024 + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = upload(&t.sandbox, "application/pdf", png(100)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "document_type_forbidden");
    let (status, body) = app.post(&t.sandbox, &path, &json!({"file": "x"})).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(std::fs::read_dir(&documents_dir).map(|d| d.count()).unwrap_or(0), 0);
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], "UPLOAD_FILE");

    // The custodian sends the file: it joins the case, which goes back to the queue, and the
    // cardholder moves from UPLOAD_FILE to UNDER_REVIEW.
    let bytes = png(3000);
    let (status, body) = upload(&t.sandbox, "image/png", bytes.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = &body["document"];
    assert_eq!(doc["case_id"], case_id.as_str());
    assert_eq!(doc["cardholder_id"], holder_id);
    assert_eq!(doc["size_bytes"], 3000);
    assert_eq!(doc["uploaded_by"], t.sandbox.id);
    let doc_id = doc["id"].as_str().unwrap();
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{holder_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], "UNDER_REVIEW", "{h}");
    assert_eq!(h["cardholder"]["kyc_file_reason"], Value::Null);
    let (_, checks) = app
        .get(&t.sandbox, &format!("/cardholders/{holder_id}/kyc_checks"))
        .await;
    assert_eq!(
        checks["kyc_checks"][0]["kyc_check"]["provider"], "document_upload",
        "{checks}"
    );
    let (_, listed) = app.get(&t.sandbox, &path).await;
    assert_eq!(listed["documents"][0]["id"], doc_id, "{listed}");
    let (status, _) = app.get(&other.sandbox, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, detail) = root.get(&app, &format!("/ops/cases/{case_id}")).await;
    assert_eq!(detail["case"]["status"], "open");
    assert_eq!(detail["documents"][0]["id"], doc_id);
    let r = root
        .request(&app, Method::GET, &format!("/ops/documents/{doc_id}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        bytes,
        "the reviewer reads what was sent"
    );

    // One audit entry for the upload, naming the cardholder and the document.
    let (_, audit) = root.get(&app, &format!("/ops/audit?object_id={holder_id}")).await;
    let uploads: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /cardholders/{cardholder_id}/documents" && e["outcome"] == "success")
        .collect();
    assert_eq!(uploads.len(), 1, "{audit}");
    assert_eq!(uploads[0]["details"]["document_id"], doc_id);
    assert_eq!(uploads[0]["actor_id"], t.sandbox.id);

    // A cardholder with no open case: the document is kept for a later review, KYC unchanged.
    let passed = app.cardholder(&t.sandbox, &seed_cardholder("490940000", None)).await;
    let passed_id = passed["id"].as_str().unwrap();
    let (status, body) = send(
        app.request(Method::POST, &format!("/cardholders/{passed_id}/documents"), &t.sandbox)
            .multipart(document_form("id.png", "image/png", png(200))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["document"]["case_id"], Value::Null);
    let (_, h) = app.get(&t.sandbox, &format!("/cardholders/{passed_id}")).await;
    assert_eq!(h["cardholder"]["kyc_status"], passed["kyc_status"]);

    // A retry under the same idempotency key (a new multipart boundary, the same parts) is
    // answered from the first upload; different parts under that key are refused.
    let retry = |bytes: Vec<u8>| {
        app.request(Method::POST, &format!("/cardholders/{passed_id}/documents"), &t.sandbox)
            .header("Idempotency-Key", "upload-1")
            .multipart(document_form("id.png", "image/png", bytes))
            .send()
    };
    let first = retry(png(300)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = retry(png(300)).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["document"]["id"], first["document"]["id"]);
    let changed = retry(png(301)).await.unwrap();
    assert_eq!(changed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = app
        .get(&t.sandbox, &format!("/cardholders/{passed_id}/documents"))
        .await;
    assert_eq!(listed["documents"].as_array().map(Vec::len), Some(2), "{listed}");
}

async fn every_api_mutation_and_reveal_is_audited_and_exported(app: TestApp) {
    let t = app.tenant_with(&[cardplane_domain::api_key::Permission::Reveal]).await;
    app.program(&t.sandbox, "GPR", "411111", 1_000_000).await;
    let card = app.card_with_balance(&t.sandbox, "GPR", 100).await;
    let card_id = card["id"].as_str().unwrap();
    app.reveal(&t.sandbox, card_id).await;
    let (status, _) = app.post(&t.sandbox, "/cardholders", &json!({"first_name": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let root = admin(&app).await;
    let (_, page) = root.get(&app, &format!("/ops/audit?tenant_id={}", t.id)).await;
    let entries = page["entries"].as_array().unwrap();
    let find = |action: &str| entries.iter().find(|e| e["action"] == action).cloned();
    let reveal = find("POST /cards/{card_id}/reveal").expect("the reveal is audited");
    assert_eq!(reveal["actor_kind"], "api_key");
    assert_eq!(reveal["actor_id"], t.sandbox.id);
    assert_eq!(reveal["object_id"], card_id);
    assert_eq!(reveal["object_type"], "card");
    assert_eq!(reveal["outcome"], "success");
    assert_eq!(reveal["origin_ip"], "127.0.0.1");
    let created = entries
        .iter()
        .find(|e| e["action"] == "POST /cardholders" && e["outcome"] == "success")
        .expect("the cardholder create is audited");
    assert!(
        created["object_id"].as_str().unwrap().starts_with("crdhldr_"),
        "{created}"
    );
    let failed = entries
        .iter()
        .find(|e| e["action"] == "POST /cardholders" && e["outcome"] == "failure")
        .expect("a refused create is audited too");
    assert_eq!(failed["status"], 400);
    assert_eq!(failed["details"]["code"], "parameter_invalid");
    // No secret in the log: the reveal's PAN is not stored anywhere in the audit entries.
    assert!(!page.to_string().contains(&t.sandbox.secret));

    let r = root
        .request(&app, Method::GET, "/ops/audit/export?action=POST%20/cards/*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("seq,id,occurred_at,actor_kind"));
    assert!(csv.contains("/reveal"), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.contains("POST /cards/")), "{csv}");

    // And the whole chain verifies.
    assert!(matches!(app.state.audit.verify_audit().await.unwrap(), Ok((n, _)) if n > 5));
}

/// A case opened because KYC asked for details closes when a KYC re-run passes (or is rejected):
/// status and `closed_at`, a note from the system (no author), a `case.closed` audit entry by the
/// system, all with the cardholder's update. A final rejection with a watchlist match closes the
/// old case and opens the watchlist case in its place.
async fn a_kyc_rerun_that_resolves_the_question_closes_its_case(app: TestApp) {
    let t = app.tenant().await;
    let root = admin(&app).await;
    let open_case_of = |holder: String| {
        let (app, root) = (&app, &root);
        async move {
            let (status, queue) = root
                .get(app, &format!("/ops/cases?cardholder_id={holder}&status=open,awaiting_documents,pending_approval,approved,rejected"))
                .await;
            assert_eq!(status, StatusCode::OK, "{queue}");
            queue["cases"].as_array().unwrap().clone()
        }
    };

    // SSN ...0002: RESUBMIT_DETAILS opens a kyc_resubmit_details case.
    let holder = app.cardholder(&t.sandbox, &seed_cardholder("123450002", None)).await;
    assert_eq!(holder["kyc_status"], "RESUBMIT_DETAILS");
    let holder_id = holder["id"].as_str().unwrap().to_owned();
    let cases = open_case_of(holder_id.clone()).await;
    assert_eq!(
        (cases.len(), &cases[0]["reason"], &cases[0]["status"]),
        (1, &json!("kyc_resubmit_details"), &json!("open"))
    );
    let case_id = cases[0]["id"].as_str().unwrap().to_owned();

    // The custodian fixes the SSN; KYC re-runs and passes.
    let (status, updated) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{holder_id}"),
            &json!({"document": {"type": "ssn", "value": "123450000"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["cardholder"]["kyc_status"], "PASSED");

    let (status, detail) = root.get(&app, &format!("/ops/cases/{case_id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["case"]["status"], "approved", "{detail}");
    assert!(detail["case"]["closed_at"].is_string(), "{detail}");
    assert_eq!(detail["case"]["next_step_role"], Value::Null);
    let notes = detail["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{detail}");
    assert_eq!(notes[0]["author_id"], Value::Null, "the system wrote it");
    let note = notes[0]["body"].as_str().unwrap();
    assert!(note.contains("KYC re-run") && note.contains("PASSED"), "{note}");
    let (_, default_queue) = root.get(&app, &format!("/ops/cases?cardholder_id={holder_id}")).await;
    assert_eq!(default_queue["cases"], json!([]), "no longer in the queue");

    let (_, audit) = root
        .get(&app, &format!("/ops/audit?object_id={case_id}&action=case.closed"))
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor_kind"], "system");
    assert_eq!(entries[0]["outcome"], "success");
    assert_eq!(entries[0]["tenant_id"], t.id);
    assert_eq!(entries[0]["details"]["kyc_status"], "PASSED");
    assert_eq!(entries[0]["details"]["status"], "approved");

    // A case that asked for details, answered by a final rejection on the watchlist: the old
    // case is rejected and the watchlist case takes its place.
    let other = app.cardholder(&t.sandbox, &seed_cardholder("123450003", None)).await;
    let other_id = other["id"].as_str().unwrap().to_owned();
    let (status, updated) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{other_id}"),
            &json!({"document": {"type": "ssn", "value": "123450001"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["cardholder"]["kyc_status"], "REJECTED");
    let cases = open_case_of(other_id).await;
    let by_reason = |r: &str| cases.iter().find(|c| c["reason"] == r).cloned().unwrap_or_default();
    assert_eq!(by_reason("kyc_resubmit_details")["status"], "rejected", "{cases:?}");
    assert_eq!(by_reason("watchlist_match")["status"], "open", "{cases:?}");

    // A re-run that still needs someone leaves the case open: 0002 -> 0007 (UPLOAD_FILE).
    let third = app.cardholder(&t.sandbox, &seed_cardholder("123450002", None)).await;
    let third_id = third["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &t.sandbox,
            &format!("/cardholders/{third_id}"),
            &json!({"document": {"type": "ssn", "value": "123450007"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cases = open_case_of(third_id).await;
    assert_eq!((cases.len(), &cases[0]["status"]), (1, &json!("open")), "{cases:?}");
    assert!(
        app.state.audit.verify_audit().await.unwrap().is_ok(),
        "the audit chain verifies"
    );
}

/// A change and its audit entry are one transaction: each committed request has exactly one
/// entry, and when the entry cannot be written the change does not happen either (no cardholder
/// created, no PAN shown).
async fn a_change_and_its_audit_entry_commit_together(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let t = app.tenant_with(&[cardplane_domain::api_key::Permission::Reveal]).await;
    app.program(&t.sandbox, "GPR", "411111", 1_000_000).await;
    let card = app.card_with_balance(&t.sandbox, "GPR", 100).await;
    let card_id = card["id"].as_str().unwrap();
    let holder = app
        .cardholder(&t.sandbox, &seed_cardholder("123456789", Some("u-1")))
        .await;
    let holder_id = holder["id"].as_str().unwrap();
    let root = admin(&app).await;
    let (_, page) = root.get(&app, &format!("/ops/audit?object_id={holder_id}")).await;
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "one entry per committed request: {page}");
    assert_eq!(entries[0]["action"], "POST /cardholders");
    assert_eq!(entries[0]["object_type"], "cardholder");
    assert_eq!(entries[0]["status"], 200);

    let holders = |list: Value| list["cardholders"].as_array().map(Vec::len);
    let before = holders(app.get(&t.sandbox, "/cardholders?limit=100").await.1);

    // The audit store refuses every write (a fault, injected as the database's owner would).
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let (fail, heal): (&[&str], &[&str]) = match b {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER audit_offline BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit offline'); END",
            ],
            &["DROP TRIGGER audit_offline"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION audit_offline() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'audit offline'; END $$",
                "CREATE TRIGGER audit_offline BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_offline()",
            ],
            &[
                "DROP TRIGGER audit_offline ON audit_log",
                "DROP FUNCTION audit_offline()",
            ],
        ),
    };
    for s in fail {
        sqlx::query(sqlx::AssertSqlSafe(*s)).execute(&pool).await.unwrap();
    }
    let (status, body) = app
        .post(&t.sandbox, "/cardholders", &seed_cardholder("123456780", Some("u-2")))
        .await;
    assert!(status.is_server_error(), "{status} {body}");
    let (status, body) = app
        .post(&t.sandbox, &format!("/cards/{card_id}/reveal"), &json!({}))
        .await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(body.get("pan").is_none(), "{body}");
    for s in heal {
        sqlx::query(sqlx::AssertSqlSafe(*s)).execute(&pool).await.unwrap();
    }

    let after = holders(app.get(&t.sandbox, "/cardholders?limit=100").await.1);
    assert_eq!(after, before, "a cardholder without its audit entry was created");
    let reveals: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM card_reveals")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reveals, 0, "a reveal without its audit entry was recorded");
    pool.close().await;
    assert!(app.state.audit.verify_audit().await.unwrap().is_ok());
}

async fn an_edited_or_deleted_audit_row_is_detected(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else { return };
    let root = admin(&app).await;
    for i in 0..4 {
        let (status, _) = root
            .post(
                &app,
                "/ops/cases",
                &json!({"cardholder_id": format!("crdhldr_{i:032x}"), "note": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (entries, _) = app.state.audit.verify_audit().await.unwrap().unwrap();
    assert!(entries >= 6, "{entries}");

    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    // The application cannot change the log: the database refuses.
    assert!(
        sqlx::query("UPDATE audit_log SET outcome = 'success' WHERE seq = 3")
            .execute(&pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_log WHERE seq = 3")
            .execute(&pool)
            .await
            .is_err()
    );

    // Someone with the keys to the database turns the guard off and edits a row.
    let (disable, enable) = match b {
        Backend::Sqlite => (
            vec!["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
            vec![],
        ),
        Backend::Postgres => (
            vec!["ALTER TABLE audit_log DISABLE TRIGGER USER"],
            vec!["ALTER TABLE audit_log ENABLE TRIGGER USER"],
        ),
    };
    for s in &disable {
        sqlx::query(sqlx::AssertSqlSafe(*s)).execute(&pool).await.unwrap();
    }
    sqlx::query("UPDATE audit_log SET action = 'forged' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        app.state.audit.verify_audit().await.unwrap(),
        Err(ChainBreak::Altered { seq: 3 })
    );
    // ...or deletes one instead.
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        app.state.audit.verify_audit().await.unwrap(),
        Err(ChainBreak::Gap { expected: 3, found: 4 })
    );
    for s in &enable {
        sqlx::query(sqlx::AssertSqlSafe(*s)).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

both_backends!(
    console_answers_match_the_openapi_document,
    a_custodian_uploads_what_kyc_asked_for_and_the_case_returns_to_the_queue,
    a_change_and_its_audit_entry_commit_together,
    idle_sessions_expire,
    the_permission_matrix_holds_for_every_role_and_endpoint,
    documents_are_requested_uploaded_limited_and_stored_encrypted,
    an_edited_or_deleted_audit_row_is_detected
);
app_tests!(
    a_kyc_rerun_that_resolves_the_question_closes_its_case,
    sign_in_rules,
    totp_codes_are_single_use_and_recovery_codes_work_once,
    eleven_wrong_passwords_lock_the_account,
    a_watchlist_match_needs_a_compliance_officer_then_a_different_admin,
    one_person_cannot_complete_a_four_eyes_chain_twice,
    every_api_mutation_and_reveal_is_audited_and_exported
);
