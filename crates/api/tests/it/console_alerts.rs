//! The console's fraud alert queue and authorization rule pages on both backends: an alert a
//! `review` rule raised is listed, opened with its trace, assigned and resolved as fraud with a
//! note (audited as `/ops/alerts` audits it); a rule is listed, its draft promoted and the rule
//! disabled (audited as `/authorization_rules` audits it); roles without the permission are
//! refused, and a tenant's user sees only their own tenant's rules.

use cardplane_api::workflows::admin::create_operator;
use cardplane_domain::alert::Alert;
use cardplane_domain::ids::{AlertId, TenantId};
use cardplane_domain::people::{OperatorRole, Role, TenantRole};
use reqwest::StatusCode;
use serde_json::json;

use crate::console::{Browser, PASSWORD, between, console_operator};
use crate::console_programs::audit_of;
use crate::net::merchant;
use crate::net::{NetMessage, Network};
use crate::ops::add_person;
use crate::support::TestApp;

/// A `review` rule on the network's program (active v1) with a stricter draft (v2) in shadow.
async fn review_rule(app: &TestApp, net: &Network) -> String {
    let key = &net.tenant.sandbox;
    let (status, rule) = app
        .post(
            key,
            "/authorization_rules",
            &json!({"scope": {"type": "program", "id": "GPR"}, "name": "Review restaurants",
                    "type": "conditional_action", "mode": "active",
                    "parameters": {"action": "review",
                                   "conditions": [{"attribute": "mcc", "operation": "equals", "value": "5812"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let id = rule["authorization_rule"]["id"].as_str().unwrap().to_owned();
    let (status, rule) = app
        .post(
            key,
            &format!("/authorization_rules/{id}/versions"),
            &json!({"parameters": {"action": "review", "match": "any", "conditions": [
                {"attribute": "mcc", "operation": "is_one_of", "value": ["5812", "5813"]},
                {"attribute": "amount", "operation": "greater_than", "value": 50000}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rule}");
    assert_eq!(rule["authorization_rule"]["draft"]["version"], 2, "{rule}");
    id
}

/// The alert the rule raised on a purchase at a restaurant.
async fn raised_alert(app: &TestApp, net: &Network) -> (String, String, String) {
    let card = app.net_card(net, 10_000).await;
    let message = NetMessage::authorization(&card, 1_000).merchant(merchant("m_diner", "Diner", "5812", "Austin"));
    let (status, answer) = app.post(&net.credential, message.path(), &message.into_json()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["decision"], "approved", "{answer}");
    let (_, alerts) = app
        .get(&net.tenant.sandbox, &format!("/alerts?card_id={}", card.id))
        .await;
    let alert = &alerts["alerts"][0]["alert"];
    assert_eq!(alert["kind"], "rule_review", "{alerts}");
    (
        alert["id"].as_str().unwrap().to_owned(),
        answer["authorization_id"].as_str().unwrap().to_owned(),
        card.id.to_string(),
    )
}

fn form<'a>(csrf: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![("csrf_token", csrf)];
    f.extend_from_slice(fields);
    f
}

async fn an_alert_is_listed_opened_assigned_and_resolved_as_fraud_with_a_note(app: TestApp) {
    let net = app.network(100_000).await;
    let rule = review_rule(&app, &net).await;
    let (alert, txn, card) = raised_alert(&app, &net).await;
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;
    let colleague = create_operator(
        &app.state,
        "co@example.com",
        "Colette",
        OperatorRole::ComplianceOfficer,
        PASSWORD.into(),
    )
    .await
    .unwrap();

    let queue = b.get("/console/alerts").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.html);
    let table = between(&queue.html, "<table id=\"alerts\">", "</table>").unwrap();
    assert!(table.contains(&format!("href=\"/console/alerts/{alert}\"")), "{table}");
    assert!(table.contains("rule_review") && table.contains("open") && table.contains(&net.tenant.id));
    assert!(table.contains("mcc equals"), "the detail says what matched: {table}");
    let open = b.get("/console/alerts?status=resolved").await;
    assert!(!open.html.contains(&alert), "filtered out while open");
    let bad = b.get("/console/alerts?status=closed").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("id=\"filter-error\""), "{}", bad.html);

    let path = format!("/console/alerts/{alert}");
    let detail = b.get(&path).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
    for link in [
        format!("href=\"/console/transactions/{txn}\""),
        format!("href=\"/console/cards/{card}\""),
        format!("href=\"/console/rules/{rule}\""),
    ] {
        assert!(detail.html.contains(&link), "{link}");
    }
    let trace = between(&detail.html, "<ol id=\"decision-trace\"", "</ol>").unwrap();
    assert!(
        trace.contains("authorization_rule"),
        "the rule's step is in the trace: {trace}"
    );
    assert!(detail.html.contains("<label for=\"note\">") && detail.html.contains("id=\"do-resolve\""));

    // Assign to me, then to a colleague chosen from the operators who may work alerts.
    let csrf = detail.csrf();
    let mine = b
        .post(&format!("{path}/assign"), &form(&csrf, &[("assignee", "me")]))
        .await;
    assert_eq!(mine.status, StatusCode::SEE_OTHER, "{}", mine.html);
    let shown = b.get(&path).await;
    let assignee = between(&shown.html, "id=\"alert-assignee\">", "</td>").unwrap();
    assert_eq!(assignee, "ops@example.com (operations)");
    assert!(shown.html.contains(&format!(
        "<option value=\"{}\">Colette (compliance_officer)</option>",
        colleague.id
    )));
    let theirs = b
        .post(
            &format!("{path}/assign"),
            &form(&csrf, &[("assignee", colleague.id.as_str())]),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::SEE_OTHER, "{}", theirs.html);
    let shown = b.get(&path).await;
    assert_eq!(
        between(&shown.html, "id=\"alert-assignee\">", "</td>").unwrap(),
        "Colette (compliance_officer)"
    );
    assert_eq!(
        between(&shown.html, "id=\"alert-status\">", "</td>").unwrap(),
        "assigned"
    );
    let mine_only = b.get("/console/alerts?assignee=me").await;
    assert!(!mine_only.html.contains(&alert), "assigned to Colette now");

    // The reason is mandatory: refused in place, nothing changes.
    let resolve = format!("{path}/resolve");
    let refused = b
        .post(&resolve, &form(&csrf, &[("resolution", "fraud"), ("note", "  ")]))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.html);
    assert!(
        refused.html.contains("A note giving the reason is required"),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("id=\"do-resolve\""), "the form is still there");
    let refused = b
        .post(
            &resolve,
            &form(
                &csrf,
                &[("resolution", "not_fraud"), ("note", "x"), ("freeze_card", "yes")],
            ),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
    assert!(refused.html.contains("only a fraud resolution can freeze the card"));

    let done = b
        .post(
            &resolve,
            &form(
                &csrf,
                &[
                    ("resolution", "fraud"),
                    ("note", "Cardholder confirmed <not> theirs"),
                    ("freeze_card", "yes"),
                ],
            ),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let resolved = b.get(&path).await;
    assert_eq!(
        between(&resolved.html, "id=\"alert-status\">", "</td>").unwrap(),
        "resolved — fraud"
    );
    assert_eq!(
        between(&resolved.html, "id=\"alert-note\">", "</td>").unwrap(),
        "Cardholder confirmed &#60;not&#62; theirs",
        "escaped"
    );
    assert!(
        between(&resolved.html, "id=\"alert-resolved\">", "</td>")
            .unwrap()
            .contains("by ops@example.com (operations)")
    );
    assert!(resolved.html.contains("card frozen") && !resolved.html.contains("id=\"do-resolve\""));
    let (_, c) = app.get(&net.tenant.sandbox, &format!("/cards/{card}")).await;
    assert_eq!(c["card"]["state"], "INACTIVE", "frozen through its lifecycle: {c}");
    let (_, a) = app.get(&net.tenant.sandbox, &format!("/alerts/{alert}")).await;
    assert_eq!(a["alert"]["resolution_note"], "Cardholder confirmed <not> theirs");

    // Audited as /ops/alerts audits: the same actions, by this person, in the alert's tenant.
    let entries = audit_of(&app, &alert).await;
    let actions: Vec<&str> = entries
        .iter()
        .filter(|e| e.record.status == Some(200))
        .map(|e| e.record.action.as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "alert.assigned").count(),
        2,
        "{actions:?}"
    );
    let resolved_entry = entries.iter().find(|e| e.record.action == "alert.resolved").unwrap();
    assert_eq!(resolved_entry.record.details["resolution"], "fraud");
    assert_eq!(resolved_entry.record.details["card_frozen_now"], true);
    assert_eq!(resolved_entry.record.tenant_id.as_deref(), Some(net.tenant.id.as_str()));
    assert!(
        entries
            .iter()
            .any(|e| e.record.action == "POST /console/alerts/{alert_id}/{action}"
                && e.record.status == Some(400)
                && e.record.details["code"] == "parameter_missing"),
        "the refusal is audited too: {entries:?}"
    );
    let again = b
        .post(&resolve, &form(&csrf, &[("resolution", "fraud"), ("note", "twice")]))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.html.contains("already resolved"), "{}", again.html);
}

async fn a_rule_is_listed_its_draft_promoted_and_the_rule_disabled(app: TestApp) {
    let net = app.network(100_000).await;
    let rule = review_rule(&app, &net).await;
    let (_alert, _, _) = raised_alert(&app, &net).await;
    let (status, backtest) = app
        .post(
            &net.tenant.sandbox,
            &format!("/authorization_rules/{rule}/backtests"),
            &json!({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{backtest}");
    let backtest = backtest["backtest"]["id"].as_str().unwrap().to_owned();
    let mut b = console_operator(&app, "ops@example.com", OperatorRole::Operations).await;

    let choose = b.get("/console/rules").await;
    assert_eq!(choose.status, StatusCode::OK, "{}", choose.html);
    assert!(choose.html.contains("id=\"choose-tenant\"") && !choose.html.contains(&rule));
    let list = b
        .get(&format!(
            "/console/rules?tenant={}&env=sandbox&program=GPR",
            net.tenant.id
        ))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.html);
    let table = between(&list.html, "<table id=\"rules\">", "</table>").unwrap();
    let row = between(&table, &format!("href=\"/console/rules/{rule}\""), "</tr>").unwrap();
    for part in [
        "Review restaurants",
        "program GPR",
        "conditional_action",
        "active",
        "v1",
        "v2",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
    let elsewhere = b
        .get(&format!("/console/rules?tenant={}&env=live", net.tenant.id))
        .await;
    assert!(!elsewhere.html.contains(&rule), "a sandbox rule is not a live one");

    let path = format!("/console/rules/{rule}");
    let detail = b.get(&path).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
    let v1 = between(&detail.html, "<tr id=\"version-1\">", "</tr>").unwrap();
    assert!(
        v1.contains("active") && v1.contains("When all of:") && v1.contains("mcc equals 5812"),
        "{v1}"
    );
    assert!(v1.contains("action: review"), "{v1}");
    let v2 = between(&detail.html, "<tr id=\"version-2\">", "</tr>").unwrap();
    assert!(v2.contains("draft") && v2.contains("When any of:"), "{v2}");
    assert!(
        v2.contains("mcc is one of 5812, 5813") && v2.contains("amount greater than 50000"),
        "{v2}"
    );
    let tests = between(&detail.html, "<table id=\"backtests\">", "</table>").unwrap();
    assert!(
        tests.contains(&backtest) && tests.contains("draft v2 against active v1"),
        "{tests}"
    );

    let csrf = detail.csrf();
    // A promotion of a version that is no longer the draft is refused in place.
    let stale = b
        .post(
            &format!("{path}/promote"),
            &[("csrf_token", csrf.as_str()), ("version", "1")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.html);
    assert!(stale.html.contains("id=\"rule-error\""), "{}", stale.html);
    let promoted = b
        .post(
            &format!("{path}/promote"),
            &[("csrf_token", csrf.as_str()), ("version", "2")],
        )
        .await;
    assert_eq!(promoted.status, StatusCode::SEE_OTHER, "{}", promoted.html);
    let after = b.get(&promoted.location.unwrap()).await;
    assert!(after.html.contains("The draft is now the active version."));
    assert_eq!(between(&after.html, "id=\"rule-active\">", "</td>").unwrap(), "v2");
    assert_eq!(between(&after.html, "id=\"rule-draft\">", "</td>").unwrap(), "—");
    assert!(!after.html.contains("id=\"do-promote\""));
    let (_, api) = app
        .get(&net.tenant.sandbox, &format!("/authorization_rules/{rule}"))
        .await;
    assert_eq!(api["authorization_rule"]["active"]["version"], 2, "{api}");

    let disabled = b
        .post(&format!("{path}/disable"), &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{}", disabled.html);
    let after = b.get(&path).await;
    assert_eq!(
        between(&after.html, "id=\"rule-status\">", "</td>").unwrap(),
        "disabled"
    );
    assert!(!after.html.contains("id=\"do-disable\""));
    let twice = b
        .post(&format!("{path}/disable"), &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.html);
    let (_, api) = app
        .get(&net.tenant.sandbox, &format!("/authorization_rules/{rule}"))
        .await;
    assert_eq!(api["authorization_rule"]["status"], "disabled", "{api}");

    // Audited as /authorization_rules audits its changes, with the person as the actor.
    let entries = audit_of(&app, &rule).await;
    let ops_id = app
        .state
        .people
        .find_user_by_email("ops@example.com")
        .await
        .unwrap()
        .unwrap()
        .person
        .id;
    for action in [
        "POST /authorization_rules/{rule_id}/promote",
        "POST /authorization_rules/{rule_id}/disable",
    ] {
        let e = entries
            .iter()
            .find(|e| e.record.action == action && e.record.status == Some(200))
            .unwrap_or_else(|| panic!("{action}: {entries:?}"));
        assert_eq!(e.record.actor_id.as_deref(), Some(ops_id.as_str()));
        assert_eq!(e.record.tenant_id.as_deref(), Some(net.tenant.id.as_str()));
        assert_eq!(e.record.object_type.as_deref(), Some("authorization_rule"));
    }
}

async fn roles_without_the_permission_are_refused_and_tenant_users_see_only_their_own(app: TestApp) {
    let net = app.network(100_000).await;
    let rule = review_rule(&app, &net).await;
    let (alert, _, _) = raised_alert(&app, &net).await;
    let other = app.tenant().await;
    app.program(&other.sandbox, "Beta_GPR", "422222", 0).await;
    let (status, theirs) = app
        .post(
            &other.sandbox,
            "/authorization_rules",
            &json!({"scope": {"type": "program", "id": "Beta_GPR"}, "name": "Beta only", "type": "merchant_lock",
                    "mode": "active", "parameters": {"mccs": ["5411"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let theirs = theirs["authorization_rule"]["id"].as_str().unwrap().to_owned();

    // Support may look but not act.
    let mut support = console_operator(&app, "support@example.com", OperatorRole::Support).await;
    let detail = support.get(&format!("/console/alerts/{alert}")).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.html);
    assert!(!detail.html.contains("id=\"do-resolve\"") && !detail.html.contains("id=\"do-assign\""));
    let csrf = detail.csrf();
    let forged = support
        .post(
            &format!("/console/alerts/{alert}/resolve"),
            &[
                ("csrf_token", csrf.as_str()),
                ("resolution", "not_fraud"),
                ("note", "n"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    let rule_page = support.get(&format!("/console/rules/{rule}")).await;
    assert_eq!(rule_page.status, StatusCode::OK);
    assert!(!rule_page.html.contains("id=\"do-promote\"") && !rule_page.html.contains("id=\"do-disable\""));
    let forged = support
        .post(
            &format!("/console/rules/{rule}/disable"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    let (_, api) = app
        .get(&net.tenant.sandbox, &format!("/authorization_rules/{rule}"))
        .await;
    assert_eq!(api["authorization_rule"]["status"], "active");
    let (_, a) = app.get(&net.tenant.sandbox, &format!("/alerts/{alert}")).await;
    assert_eq!(a["alert"]["status"], "open");

    // A tenant's owner: no fraud alerts in the matrix; their own rules only.
    let tenant = TenantId::parse(&net.tenant.id).unwrap();
    add_person(
        &app,
        "owner@example.com",
        Role::Tenant(TenantRole::Owner),
        Some(&tenant),
    )
    .await;
    let mut owner = Browser::new(&app);
    let signed_in = owner.login("owner@example.com", PASSWORD, "").await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.html);
    owner.enrol().await;
    let alerts = owner.get("/console/alerts").await;
    assert_eq!(alerts.status, StatusCode::FORBIDDEN, "{}", alerts.html);
    assert_eq!(
        owner.get(&format!("/console/alerts/{alert}")).await.status,
        StatusCode::FORBIDDEN
    );
    let mine = owner.get("/console/rules").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.html);
    assert!(!mine.html.contains("id=\"f-tenant\""), "no tenant to choose");
    assert!(
        mine.html.contains(&rule) && !mine.html.contains(&theirs),
        "{}",
        mine.html
    );
    let foreign = owner.get(&format!("/console/rules/{theirs}")).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.html);
    assert!(!foreign.html.contains("Beta only"));
    assert_eq!(
        owner.get(&format!("/console/rules?tenant={}", other.id)).await.status,
        StatusCode::NOT_FOUND
    );
    let own = owner.get(&format!("/console/rules/{rule}")).await;
    assert_eq!(own.status, StatusCode::OK);
    let forged = owner
        .post(
            &format!("/console/rules/{theirs}/disable"),
            &[("csrf_token", own.csrf().as_str())],
        )
        .await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND, "{}", forged.html);
    let (_, api) = app.get(&other.sandbox, &format!("/authorization_rules/{theirs}")).await;
    assert_eq!(api["authorization_rule"]["status"], "active", "{api}");
}

async fn the_alert_queue_pages_newest_first_by_keyset_and_keeps_its_filters(app: TestApp) {
    let net = app.network(100_000).await;
    review_rule(&app, &net).await;
    let (first, _, _) = raised_alert(&app, &net).await;
    let original = app
        .state
        .alerts
        .get_alert(None, &AlertId::parse(&first).unwrap())
        .await
        .unwrap();
    // 50 newer alerts: the first page is full without the first one.
    for _ in 0..50 {
        let copy = Alert {
            id: AlertId::generate(),
            ..original.clone()
        };
        app.state.alerts.insert_alert(&copy, &[]).await.unwrap();
    }
    let mut b = console_operator(&app, "ro@example.com", OperatorRole::ReadOnly).await;
    let one = b
        .get(&format!("/console/alerts?status=open&tenant={}", net.tenant.id))
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.html);
    let rows = between(&one.html, "<tbody>", "</tbody>").unwrap();
    assert_eq!(rows.matches("<tr>").count(), 50);
    assert!(!rows.contains(&first));
    let next = between(&one.html, "id=\"next-page\" href=\"", "\"")
        .unwrap()
        .replace("&#38;", "&");
    assert!(next.contains("status=open") && next.contains(&net.tenant.id), "{next}");
    let two = b.get(&next).await;
    let rows = between(&two.html, "<tbody>", "</tbody>").unwrap();
    assert_eq!(rows.matches("<tr>").count(), 1, "{rows}");
    assert!(rows.contains(&first));
    assert!(!two.html.contains("id=\"next-page\""));
}

app_tests!(
    the_alert_queue_pages_newest_first_by_keyset_and_keeps_its_filters,
    an_alert_is_listed_opened_assigned_and_resolved_as_fraud_with_a_note,
    a_rule_is_listed_its_draft_promoted_and_the_rule_disabled,
    roles_without_the_permission_are_refused_and_tenant_users_see_only_their_own,
);
