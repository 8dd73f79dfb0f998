//! The console's operators and tenants administration on both backends: people created with a
//! role and a password shown once, roles changed and access disabled, credentials reset, a
//! tenant's users and API keys (revoked with a reason), and refusals rendered in place.

use cardplane_domain::people::OperatorRole;
use cardplane_store::audit::AuditFilter;
use reqwest::StatusCode;

use crate::console::{Browser, between, console_operator};
use crate::support::TestApp;

async fn user_id(app: &TestApp, email: &str) -> String {
    let user = app.state.people.find_user_by_email(email).await.unwrap().unwrap();
    user.person.id.to_string()
}

async fn audited(app: &TestApp, action: &str) -> Vec<cardplane_domain::audit::AuditEntry> {
    let filter = AuditFilter {
        action: Some(action.to_owned()),
        ..AuditFilter::default()
    };
    app.state.audit.list_audit(&filter, 20).await.unwrap()
}

async fn an_admin_adds_an_operator_with_a_one_time_password_then_changes_disables_and_resets_them(app: TestApp) {
    let mut admin = console_operator(&app, "admin@example.com", OperatorRole::Admin).await;
    let list = admin.get("/console/operators").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.html);
    assert!(list.html.contains("id=\"add-person\""));
    let csrf = list.csrf();

    let bad = admin
        .post(
            "/console/operators",
            &[
                ("csrf_token", &csrf),
                ("email", "not-an-email"),
                ("name", "Grace"),
                ("role", "support"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.html);
    assert!(bad.html.contains("id=\"error-new\"") && bad.html.contains("value=\"not-an-email\""));
    assert!(
        app.state
            .people
            .find_user_by_email("not-an-email")
            .await
            .unwrap()
            .is_none()
    );

    let added = admin
        .post(
            "/console/operators",
            &[
                ("csrf_token", &csrf),
                ("email", "grace@example.com"),
                ("name", "Grace"),
                ("role", "support"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.html);
    let password = between(&added.html, "<code id=\"issued-password\">", "</code>").expect("shown once");
    assert!(
        !admin.get("/console/operators").await.html.contains(&password),
        "only once"
    );
    let mut grace = Browser::new(&app);
    assert_eq!(
        grace.login("grace@example.com", &password, "").await.status,
        StatusCode::SEE_OTHER
    );

    let grace_id = user_id(&app, "grace@example.com").await;
    let changed = admin
        .post(
            &format!("/console/operators/{grace_id}/update"),
            &[("csrf_token", &csrf), ("role", "operations"), ("access", "disabled")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.html);
    let stored = app
        .state
        .people
        .find_user_by_email("grace@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.person.role.as_str(), stored.person.disabled),
        ("operations", true)
    );
    let entry = &audited(&app, "user.updated").await[0];
    assert_eq!(entry.record.details["role"]["to"], "operations");
    assert_eq!(entry.record.details["disabled"]["to"], true);

    // One's own role is refused in place.
    let admin_id = user_id(&app, "admin@example.com").await;
    let own = admin
        .post(
            &format!("/console/operators/{admin_id}/update"),
            &[("csrf_token", &csrf), ("role", "read_only"), ("access", "active")],
        )
        .await;
    assert_eq!(own.status, StatusCode::CONFLICT, "{}", own.html);
    assert!(own.html.contains(&format!("id=\"error-{admin_id}\"")));

    let reset = admin
        .post(
            &format!("/console/operators/{grace_id}/reset"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.html);
    let fresh = between(&reset.html, "<code id=\"issued-password\">", "</code>").unwrap();
    assert_ne!(fresh, password);
    assert_eq!(audited(&app, "user.credentials_reset").await.len(), 1);
}

async fn a_read_only_operator_sees_people_without_forms_and_a_forged_change_is_refused(app: TestApp) {
    let mut ro = console_operator(&app, "ro@example.com", OperatorRole::ReadOnly).await;
    let list = ro.get("/console/operators").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.html);
    assert!(list.html.contains("ro@example.com"));
    assert!(!list.html.contains("id=\"add-person\"") && !list.html.contains("id=\"save-"));
    let forged = ro
        .post(
            "/console/operators",
            &[
                ("csrf_token", &list.csrf()),
                ("email", "x@example.com"),
                ("name", "X"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        app.state
            .people
            .find_user_by_email("x@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let refusals = audited(&app, "POST /console/operators").await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].record.details["code"], "permission_denied");
    // Without the token the form is refused before the role is even looked at.
    let tokenless = ro
        .post(
            "/console/operators",
            &[("email", "y@example.com"), ("name", "Y"), ("role", "admin")],
        )
        .await;
    assert_eq!(tokenless.status, StatusCode::FORBIDDEN);
}

async fn a_tenant_page_lists_users_and_keys_and_a_key_is_revoked_with_a_reason(app: TestApp) {
    let t = app.tenant().await;
    let mut ops = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let list = ops.get("/console/tenants").await;
    assert!(
        list.html.contains(&format!("href=\"/console/tenants/{}\"", t.id)),
        "{}",
        list.html
    );
    let path = format!("/console/tenants/{}", t.id);
    let page = ops.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains(&t.sandbox.id) && page.html.contains(&t.live.id));
    assert!(!page.html.contains(&t.sandbox.secret), "never a secret");
    let csrf = page.csrf();

    let added = ops
        .post(
            &format!("{path}/users"),
            &[
                ("csrf_token", &csrf),
                ("email", "dev@tenant.example"),
                ("name", "Dev"),
                ("role", "developer"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.html);
    assert!(added.html.contains("id=\"issued-password\""));
    let dev = user_id(&app, "dev@tenant.example").await;
    let changed = ops
        .post(
            &format!("{path}/users/{dev}/update"),
            &[("csrf_token", &csrf), ("role", "viewer"), ("access", "active")],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.html);
    let stored = app
        .state
        .people
        .find_user_by_email("dev@tenant.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.person.role.as_str(), "viewer");

    let revoke = format!("{path}/api_keys/{}/revoke", t.sandbox.id);
    let no_reason = ops.post(&revoke, &[("csrf_token", &csrf), ("reason", " ")]).await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    assert!(no_reason.html.contains(&format!("id=\"key-error-{}\"", t.sandbox.id)));
    assert_eq!(app.get(&t.sandbox, "/programs").await.0, StatusCode::OK, "still works");

    let done = ops
        .post(
            &revoke,
            &[("csrf_token", &csrf), ("reason", "Leaked in a public repository")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(app.get(&t.sandbox, "/programs").await.0, StatusCode::UNAUTHORIZED);
    let entry = &audited(&app, "api_key.revoked").await[0];
    assert_eq!(entry.record.details["reason"], "Leaked in a public repository");
}

app_tests!(
    an_admin_adds_an_operator_with_a_one_time_password_then_changes_disables_and_resets_them,
    a_read_only_operator_sees_people_without_forms_and_a_forged_change_is_refused,
    a_tenant_page_lists_users_and_keys_and_a_key_is_revoked_with_a_reason,
);
