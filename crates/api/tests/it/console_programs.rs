//! The console's program pages on both backends: the list per tenant and environment, one
//! program's configuration, and the edit form (checked in place, shown as a diff, applied on
//! confirmation through the API's workflow, audited, refused when the program moved meanwhile).

use cardplane_domain::people::OperatorRole;
use cardplane_store::audit::AuditFilter;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console::{Browser, Page, between, console_operator};
use crate::support::{TestApp, TestTenant};

/// The edit form as a person would send it for a fresh test program, with `changes` applied.
fn edit_form<'a>(csrf: &'a str, changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf_token", csrf),
        ("name", "Test program"),
        ("status", "active"),
        ("card_lifetime_years", "3"),
        ("minimum_cardholder_age", "18"),
        ("kyc_required", "true"),
        ("risk_alert_threshold", "800"),
        ("design_keys", "blue, black"),
        ("allowed_mccs", ""),
        ("blocked_mccs", ""),
        ("allowed_countries", ""),
        ("blocked_countries", ""),
        ("form_factors", "virtual"),
        ("form_factors", "physical"),
        ("sc0_amount_limit", ""),
        ("sc0_count_limit", ""),
        ("sc0_window", ""),
        ("sc0_window_secs", ""),
        ("sc0_mccs", ""),
    ];
    for (k, v) in changes {
        match form.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => form.push((k, v)),
        }
    }
    form
}

/// The hidden fields of the confirmation form (values in these tests need no unescaping).
fn confirmation(page: &Page) -> Vec<(String, String)> {
    let form = between(&page.html, "id=\"confirm-form\">", "</form>").expect("a confirmation form");
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|chunk| {
            let name = chunk.split('"').next().unwrap().to_owned();
            let value = between(chunk, "value=\"", "\"").unwrap();
            (name, value)
        })
        .collect()
}

async fn post_owned(b: &mut Browser, path: &str, form: &[(String, String)]) -> Page {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    b.post(path, &form).await
}

async fn program_in(app: &TestApp, t: &TestTenant, program_id: &str, bin: &str) -> Value {
    app.program(&t.sandbox, program_id, bin, 0).await
}

async fn api_program(app: &TestApp, t: &TestTenant, program_id: &str) -> Value {
    let (status, body) = app.get(&t.sandbox, &format!("/programs/{program_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["program"].clone()
}

pub(crate) async fn audit_of(app: &TestApp, object: &str) -> Vec<cardplane_domain::audit::AuditEntry> {
    app.state
        .audit
        .list_audit(
            &AuditFilter {
                object_id: Some(object.to_owned()),
                ..AuditFilter::default()
            },
            50,
        )
        .await
        .unwrap()
}

async fn programs_are_listed_per_tenant_and_a_read_only_operator_cannot_edit_them(app: TestApp) {
    let (a, b_tenant) = (app.tenant().await, app.tenant().await);
    let pa = program_in(&app, &a, "Alpha_GPR", "411111").await;
    let pb = program_in(&app, &b_tenant, "Beta_GPR", "422222").await;
    let mut b = console_operator(&app, "ro@example.com", OperatorRole::ReadOnly).await;

    let all = b.get("/console/programs").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.html);
    assert!(all.html.contains("Alpha_GPR") && all.html.contains("Beta_GPR"));
    assert!(all.html.contains("stored_balance") && all.html.contains("VISA"));
    let one = b.get(&format!("/console/programs?tenant={}", a.id)).await;
    assert!(one.html.contains("Alpha_GPR") && !one.html.contains("Beta_GPR"));
    let live = b.get("/console/programs?environment=live").await;
    assert!(!live.html.contains("Alpha_GPR"), "test programs are sandbox ones");

    let path = format!("/console/programs/{}", pa["id"].as_str().unwrap());
    let detail = b.get(&path).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
    for part in [
        "id=\"spend-controls\"",
        "id=\"merchant-rules\"",
        "id=\"approval-chains\"",
        "id=\"rules\"",
    ] {
        assert!(detail.html.contains(part), "{part}");
    }
    assert!(detail.html.contains("<td id=\"risk-threshold\">800</td>"));
    assert!(!detail.html.contains("id=\"edit-form\"") && !detail.html.contains("id=\"do-review\""));

    let csrf = detail.csrf();
    let forged = b
        .post(
            &format!("{path}/edit"),
            &edit_form(&csrf, &[("risk_alert_threshold", "10")]),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    assert_eq!(api_program(&app, &a, "Alpha_GPR").await["risk_alert_threshold"], 800);
    let refusals = audit_of(&app, pa["id"].as_str().unwrap()).await;
    assert!(
        refusals
            .iter()
            .any(|e| e.record.action == "POST /console/programs/{program_id}/{action}"
                && e.record.status == Some(403)
                && e.record.details["code"] == "permission_denied"),
        "{refusals:?}"
    );
    // Another tenant's program is there for operators, but the id must exist.
    assert_eq!(
        b.get(&format!("/console/programs/{}", pb["id"].as_str().unwrap()))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(b.get("/console/programs/prog_nope").await.status, StatusCode::NOT_FOUND);
}

async fn a_program_edit_is_checked_in_place_then_confirmed_from_its_diff_and_audited(app: TestApp) {
    let t = app.tenant().await;
    let p = program_in(&app, &t, "Apto_GPR", "411111").await;
    let id = p["id"].as_str().unwrap().to_owned();
    let path = format!("/console/programs/{id}");
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let detail = b.get(&path).await;
    assert!(detail.html.contains("id=\"edit-form\""), "{}", detail.html);
    let csrf = detail.csrf();

    // No CSRF token: refused before anything is read.
    let no_csrf = b.post(&format!("{path}/edit"), &edit_form("", &[])[1..]).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);

    // Errors are shown next to their fields and nothing changes.
    let bad = edit_form(
        &csrf,
        &[
            ("risk_alert_threshold", "5000"),
            ("sc0_amount_limit", "5000"),
            ("blocked_mccs", "54"),
        ],
    );
    let refused = b.post(&format!("{path}/edit"), &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    for slot in ["e-risk_alert_threshold", "e-sc0", "e-blocked_mccs"] {
        assert!(
            refused.html.contains(&format!("id=\"{slot}\"")),
            "{slot}: {}",
            refused.html
        );
    }
    assert!(refused.html.contains("value=\"5000\""), "what was typed is kept");
    assert_eq!(api_program(&app, &t, "Apto_GPR").await["spend_controls"], json!([]));

    // A valid edit shows the diff first; the program is untouched until confirmed.
    let good = edit_form(&csrf, &[("sc0_amount_limit", "5000"), ("sc0_window", "day")]);
    let diff = b.post(&format!("{path}/edit"), &good).await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.html);
    let table = between(&diff.html, "<table id=\"diff\">", "</table>").unwrap();
    assert!(table.contains("spend_controls") && table.contains("5000"), "{table}");
    assert!(!table.contains("risk_alert_threshold"), "only what changes");
    assert_eq!(api_program(&app, &t, "Apto_GPR").await["spend_controls"], json!([]));

    let done = post_owned(&mut b, &format!("{path}/confirm"), &confirmation(&diff)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let after = b.get(&done.location.unwrap()).await;
    assert!(after.html.contains("id=\"notice\""));
    assert!(after.html.contains("USD 50.00"), "{}", after.html);
    let stored = api_program(&app, &t, "Apto_GPR").await;
    assert_eq!(stored["spend_controls"][0]["amount_limit"], 5000);
    assert_eq!(stored["spend_controls"][0]["window"], "day");

    let audit = audit_of(&app, &id).await;
    let entry = audit
        .iter()
        .find(|e| e.record.action == "program.updated")
        .expect("audited");
    let operator = app
        .state
        .people
        .find_user_by_email("ops@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.record.actor_id, Some(operator.person.id.to_string()));
    let change = &entry.record.details["changes"]["spend_controls"];
    assert_eq!(change["from"], json!([]));
    assert_eq!(change["to"][0]["amount_limit"], 5000);
    assert!(
        audit.iter().any(|e| e.record.status == Some(400)),
        "the refusal is audited too"
    );

    let (_, events) = app.get(&t.sandbox, "/events").await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "program.updated"),
        "{events}"
    );
}

async fn a_confirmation_after_someone_else_changed_the_program_shows_the_new_diff(app: TestApp) {
    let t = app.tenant().await;
    let p = program_in(&app, &t, "Apto_GPR", "411111").await;
    let path = format!("/console/programs/{}", p["id"].as_str().unwrap());
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let csrf = b.get(&path).await.csrf();
    let diff = b
        .post(
            &format!("{path}/edit"),
            &edit_form(&csrf, &[("risk_alert_threshold", "700")]),
        )
        .await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.html);

    // Meanwhile, through the API.
    let (status, body) = app
        .post(&t.sandbox, "/programs/Apto_GPR", &json!({"name": "Renamed elsewhere"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let stale = post_owned(&mut b, &format!("{path}/confirm"), &confirmation(&diff)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.html);
    assert!(stale.html.contains("id=\"moved\""));
    let table = between(&stale.html, "<table id=\"diff\">", "</table>").unwrap();
    assert!(
        table.contains("Renamed elsewhere"),
        "the form would undo the rename: {table}"
    );
    let now = api_program(&app, &t, "Apto_GPR").await;
    assert_eq!(
        (now["name"].as_str(), now["risk_alert_threshold"].as_i64()),
        (Some("Renamed elsewhere"), Some(800))
    );

    let again = post_owned(&mut b, &format!("{path}/confirm"), &confirmation(&stale)).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.html);
    assert_eq!(api_program(&app, &t, "Apto_GPR").await["risk_alert_threshold"], 700);
}

app_tests!(
    programs_are_listed_per_tenant_and_a_read_only_operator_cannot_edit_them,
    a_program_edit_is_checked_in_place_then_confirmed_from_its_diff_and_audited,
    a_confirmation_after_someone_else_changed_the_program_shows_the_new_diff,
);
