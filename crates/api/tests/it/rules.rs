//! Authorization rules over real HTTP: the rule API (validation, versions, shadow drafts,
//! promotion, disabling), rules deciding real network authorizations, the velocity counters
//! they keep (checked against a recomputation from history), backtests, and fraud alerts.

use std::sync::Arc;

use cardplane_domain::alert::{Alert, AlertKind, AlertStatus};
use cardplane_domain::authorization::Transaction;
use cardplane_domain::controls::ControlScopeKind;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{AlertId, TransactionId};
use cardplane_domain::page::{Cursor, PageRequest};
use cardplane_domain::people::Role;
use cardplane_domain::rules::RuleDefinition;
use cardplane_domain::rules::velocity::{CounterRow, CounterSpec, VelocityBook};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::Scope;
use cardplane_store::transactions::TransactionFilter;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::net::{NetCard, NetMessage, Network, merchant, ntid};
use crate::ops::{admin, staff};
use crate::support::{Creds, TestApp, assert_error, send};

async fn create(app: &TestApp, creds: &Creds, body: Value) -> Value {
    let (status, rule) = app.post(creds, "/authorization_rules", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    rule["authorization_rule"].clone()
}

fn card_scope(card: &NetCard) -> Value {
    json!({"type": "card", "id": card.id})
}

async fn authorize(app: &TestApp, net: &Network, message: NetMessage) -> Value {
    let (status, answer) = app.post(&net.credential, message.path(), &message.into_json()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn buy(app: &TestApp, net: &Network, card: &NetCard, amount: i64, mcc: &str) -> Value {
    authorize(
        app,
        net,
        NetMessage::authorization(card, amount).merchant(merchant("m_shop", "Shop", mcc, "Austin")),
    )
    .await
}

fn decision(answer: &Value) -> (&str, &str) {
    (
        answer["decision"].as_str().unwrap_or_default(),
        answer["response_code"].as_str().unwrap_or_default(),
    )
}

async fn trace(app: &TestApp, net: &Network, answer: &Value) -> Vec<Value> {
    let id = answer["authorization_id"].as_str().unwrap();
    let (_, t) = app.get(&net.tenant.sandbox, &format!("/transactions/{id}")).await;
    t["transaction"]["decision_trace"].as_array().unwrap().clone()
}

fn sandbox(tenant_id: &str) -> Scope {
    Scope {
        tenant_id: cardplane_domain::ids::TenantId::parse(tenant_id).unwrap(),
        environment: Environment::Sandbox,
    }
}

/// Every transaction of the tenant's sandbox, oldest first.
async fn history(app: &TestApp, scope: &Scope) -> Vec<Transaction> {
    let page = PageRequest {
        limit: 100_000,
        cursor: Cursor::Newest,
    };
    let mut all = app
        .state
        .transactions
        .list_transactions(scope, TransactionFilter::All, &page)
        .await
        .unwrap()
        .items;
    all.reverse();
    all
}

/// The counters the given rules read, recomputed from every stored transaction.
fn recompute(specs: &[(String, Arc<CounterSpec>)], history: &[Transaction]) -> Vec<CounterRow> {
    let mut book = VelocityBook::default();
    for t in history {
        book.record(specs, None, t);
    }
    book.buckets()
}

fn spec_of(definition: &Value, kind: ControlScopeKind, scope_id: &str) -> (String, Arc<CounterSpec>) {
    let d = RuleDefinition::parse(definition, kind, scope_id).unwrap();
    let (key, spec) = d.counter().unwrap();
    (key.to_owned(), spec.clone())
}

async fn rule_definitions_are_checked_and_errors_name_the_field(app: TestApp) {
    let net = app.network(100_000).await;
    let card = app.net_card(&net, 10_000).await;
    let key = &net.tenant.sandbox;
    let scope = card_scope(&card);
    let cases = [
        (json!({"scope": scope, "parameters": {}}), "parameter_missing", "type"),
        (
            json!({"scope": scope, "type": "nope", "parameters": {}}),
            "parameter_invalid",
            "type",
        ),
        (
            json!({"scope": scope, "type": "conditional_action"}),
            "parameter_missing",
            "parameters",
        ),
        (
            json!({"scope": scope, "type": "conditional_action", "parameters": {"conditions": []}}),
            "parameter_invalid",
            "parameters.conditions",
        ),
        (
            json!({"scope": scope, "type": "conditional_action", "parameters": {"conditions": [
                {"attribute": "amount", "operation": "greater_than", "value": "ten"}]}}),
            "parameter_invalid",
            "parameters.conditions[0].value",
        ),
        (
            json!({"scope": scope, "type": "velocity_limit", "parameters": {"window": "day"}}),
            "parameter_missing",
            "parameters.limit_count",
        ),
        (
            json!({"scope": scope, "type": "velocity_limit", "parameters": {"window": "day", "limit_count": 3, "scope": "program"}}),
            "parameter_invalid",
            "parameters.scope",
        ),
        (
            json!({"scope": scope, "type": "merchant_lock", "parameters": {"mccs": ["54x1"]}}),
            "parameter_invalid",
            "parameters.mccs[0]",
        ),
        (
            json!({"scope": scope, "type": "merchant_lock", "parameters": {"mccs": ["5411"], "action": "review", "response_code": "05"}}),
            "parameter_invalid",
            "parameters.response_code",
        ),
        (
            json!({"scope": scope, "type": "merchant_lock", "priority": -1, "parameters": {"mccs": ["5411"]}}),
            "parameter_invalid",
            "priority",
        ),
        (
            json!({"scope": scope, "type": "merchant_lock", "mode": "loud", "parameters": {"mccs": ["5411"]}}),
            "parameter_invalid",
            "mode",
        ),
        (
            json!({"type": "merchant_lock", "parameters": {"mccs": ["5411"]}}),
            "parameter_missing",
            "scope",
        ),
        (
            json!({"scope": {"type": "galaxy", "id": "x"}, "type": "merchant_lock", "parameters": {"mccs": ["5411"]}}),
            "parameter_invalid",
            "scope.type",
        ),
        (
            json!({"scope": {"type": "card", "id": "card_nope"}, "type": "merchant_lock", "parameters": {"mccs": ["5411"]}}),
            "parameter_invalid",
            "scope.id",
        ),
        (
            json!({"scope": {"type": "program", "id": "NOPE"}, "type": "merchant_lock", "parameters": {"mccs": ["5411"]}}),
            "parameter_invalid",
            "scope.id",
        ),
    ];
    for (body, code, param) in cases {
        let (status, answer) = app.post(key, "/authorization_rules", &body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request_error", code);
        assert_eq!(answer["error"]["param"], param, "{body} -> {answer}");
    }
    // Another tenant's card is not a scope here; nor is this tenant's card in live mode.
    let other = app.tenant().await;
    let body = json!({"scope": scope, "type": "merchant_lock", "parameters": {"mccs": ["5411"]}});
    for creds in [&other.sandbox, &net.tenant.live] {
        let (status, answer) = app.post(creds, "/authorization_rules", &body).await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_invalid",
        );
        assert_eq!(answer["error"]["param"], "scope.id");
    }
    let (_, list) = app.get(key, "/authorization_rules").await;
    assert_eq!(list["total"], 0, "nothing was written: {list}");
}

async fn a_rule_moves_through_versions_with_one_active_and_one_draft(app: TestApp) {
    let net = app.network(100_000).await;
    let key = &net.tenant.sandbox;
    let rule = create(
        &app,
        key,
        json!({"scope": {"type": "program", "id": "GPR"}, "name": "Big tickets", "type": "conditional_action",
               "parameters": {"conditions": [{"attribute": "amount", "operation": "greater_than", "value": 5000}]}}),
    )
    .await;
    let id = rule["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("arule_"));
    assert_eq!(rule["status"], "shadow", "the default mode is shadow: {rule}");
    assert_eq!(rule["scope"], json!({"type": "program", "id": "GPR"}));
    assert_eq!(rule["type"], "conditional_action");
    assert!(rule["active"].is_null());
    assert_eq!(rule["draft"]["version"], 1);
    assert_eq!(rule["draft"]["name"], "Big tickets");
    assert_eq!(rule["draft"]["priority"], 100);

    // A second draft replaces the first (discarded) and keeps its name.
    let (status, second) = app
        .post(
            key,
            &format!("/authorization_rules/{id}/versions"),
            &json!({"parameters": {"conditions": [{"attribute": "amount", "operation": "greater_than", "value": 9000}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second = &second["authorization_rule"];
    assert_eq!(second["draft"]["version"], 2);
    assert_eq!(second["draft"]["name"], "Big tickets");
    assert_eq!(second["latest_version"], 2);

    // A new version is checked like the first.
    let (status, answer) = app
        .post(
            key,
            &format!("/authorization_rules/{id}/versions"),
            &json!({"parameters": {"conditions": [{"attribute": "colour", "operation": "equals", "value": 1}]}}),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    assert_eq!(answer["error"]["param"], "parameters.conditions[0].attribute");

    // Promoting a version that is no longer the draft is refused; the draft is promoted.
    let promote = format!("/authorization_rules/{id}/promote");
    let (status, answer) = app.post(key, &promote, &json!({"version": 1})).await;
    assert_error(
        status,
        &answer,
        StatusCode::CONFLICT,
        "conflict_error",
        "version_not_draft",
    );
    let (status, promoted) = app.post(key, &promote, &json!({"version": 2})).await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    let promoted = &promoted["authorization_rule"];
    assert_eq!(promoted["status"], "active");
    assert_eq!(promoted["active"]["version"], 2);
    assert_eq!(promoted["active"]["promoted_by"], key.id.as_str());
    assert!(promoted["draft"].is_null());
    let (status, answer) = app.post(key, &promote, &json!({})).await;
    assert_error(
        status,
        &answer,
        StatusCode::CONFLICT,
        "conflict_error",
        "rule_has_no_draft",
    );

    // A third version in shadow beside the active one, then promoted: 2 is superseded.
    let (_, third) = app
        .post(
            key,
            &format!("/authorization_rules/{id}/versions"),
            &json!({"name": "Bigger tickets", "priority": 5,
                    "parameters": {"conditions": [{"attribute": "amount", "operation": "greater_than", "value": 20000}]}}),
        )
        .await;
    assert_eq!(third["authorization_rule"]["status"], "active");
    assert_eq!(third["authorization_rule"]["active"]["version"], 2);
    assert_eq!(third["authorization_rule"]["draft"]["version"], 3);
    // The body may be left out altogether.
    let (status, promoted) = send(app.request(reqwest::Method::POST, &promote, key)).await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["authorization_rule"]["active"]["version"], 3);

    let (status, disabled) = app
        .post(key, &format!("/authorization_rules/{id}/disable"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["authorization_rule"]["status"], "disabled");
    let (status, answer) = app
        .post(key, &format!("/authorization_rules/{id}/disable"), &json!({}))
        .await;
    assert_error(status, &answer, StatusCode::CONFLICT, "conflict_error", "rule_disabled");

    let (status, versions) = app.get(key, &format!("/authorization_rules/{id}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    let states: Vec<(i64, &str)> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [(1, "discarded"), (2, "superseded"), (3, "superseded")],
        "{versions}"
    );
    let v3 = &versions["versions"][2];
    assert_eq!(
        (v3["name"].as_str(), v3["priority"].as_i64()),
        (Some("Bigger tickets"), Some(5))
    );
    assert_eq!(v3["created_by"], key.id.as_str());
    assert!(v3["promoted_at"].is_string() && v3["retired_at"].is_string());
    assert!(versions["versions"][0]["promoted_at"].is_null());

    // Every change is an event.
    let (_, events) = app.get(key, "/events?limit=50").await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["object_id"] == id.as_str())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "authorization_rule.created").count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "authorization_rule.updated").count(),
        5,
        "two drafts, two promotions, one disable: {types:?}"
    );

    // Lists filter by scope; other tenants and live mode see nothing.
    let (_, list) = app
        .get(key, "/authorization_rules?scope_type=program&scope_id=GPR")
        .await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = app.get(key, "/authorization_rules?scope_type=card").await;
    assert_eq!(list["total"], 0, "{list}");
    let (status, answer) = app.get(key, "/authorization_rules?scope_type=moon").await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    let other = app.tenant().await;
    for (creds, path) in [
        (&other.sandbox, format!("/authorization_rules/{id}")),
        (&net.tenant.live, format!("/authorization_rules/{id}")),
        (&other.sandbox, format!("/authorization_rules/{id}/versions")),
    ] {
        let (status, answer) = app.get(creds, &path).await;
        assert_error(
            status,
            &answer,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "resource_missing",
        );
    }
    let (status, answer) = app.post(&other.sandbox, &promote, &json!({})).await;
    assert_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        "not_found_error",
        "resource_missing",
    );
}

async fn a_retried_create_answers_the_same_rule_once(app: TestApp) {
    let net = app.network(100_000).await;
    let key = &net.tenant.sandbox;
    let body = json!({"scope": {"type": "program", "id": "GPR"}, "type": "merchant_lock", "mode": "active",
                      "parameters": {"mccs": ["5411"]}});
    let (s1, first) = app.post_idem(key, "/authorization_rules", "rule-1", &body).await;
    let (s2, again) = app.post_idem(key, "/authorization_rules", "rule-1", &body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, again);
    let (_, list) = app.get(key, "/authorization_rules").await;
    assert_eq!(list["total"], 1);
}

/// A velocity rule created after some approvals starts from them: its counter is seeded from
/// the stored history (reversals and declines counted as they stand), and it is deleted when
/// no version reads it any more.
async fn velocity_counters_are_seeded_from_history_when_a_rule_starts_using_them(app: TestApp) {
    let net = app.network(100_000).await;
    let card = app.net_card(&net, 50_000).await;
    let other_card = app.net_card(&net, 50_000).await;
    let key = &net.tenant.sandbox;
    let mut ids = Vec::new();
    for (i, amount) in [1_000, 2_500, 700, 4_000].into_iter().enumerate() {
        let id = ntid();
        let mcc = if i == 2 { "5812" } else { "5411" };
        let message = NetMessage::authorization(&card, amount)
            .id(&id)
            .merchant(merchant("m_shop", "Shop", mcc, "Austin"));
        let a = authorize(&app, &net, message).await;
        assert_eq!(decision(&a).0, "approved", "{a}");
        ids.push(id);
    }
    buy(&app, &net, &other_card, 900, "5411").await;
    // One reversed in part, one declined for funds.
    let partial = authorize(&app, &net, NetMessage::reversal(&ids[1]).amount(500)).await;
    assert_eq!(partial["approved_amount"], 500, "{partial}");
    let declined = buy(&app, &net, &card, 900_000, "5411").await;
    assert_eq!(decision(&declined).0, "declined");

    let definition = json!({"type": "velocity_limit", "parameters": {
        "window": "day", "limit_amount": 1_000_000, "filters": {"mccs": ["5411"]}}});
    let mut body = definition.clone();
    body["scope"] = json!({"type": "program", "id": "GPR"});
    body["mode"] = json!("active");
    let rule = create(&app, key, body).await;

    let t_scope = sandbox(&net.tenant.id);
    let all = history(&app, &t_scope).await;
    let program_id = all[0].program_id.to_string();
    let spec = spec_of(&definition, ControlScopeKind::Program, &program_id);
    let expected = recompute(std::slice::from_ref(&spec), &all);
    let stored = app.state.rules.store().velocity_counter_rows().await.unwrap();
    assert_eq!(stored, expected);
    let card_total: i64 = stored.iter().filter(|r| r.scope_id == card.id).map(|r| r.amount).sum();
    let card_count: i64 = stored.iter().filter(|r| r.scope_id == card.id).map(|r| r.count).sum();
    assert_eq!(
        (card_total, card_count),
        (1_000 + 2_000 + 4_000, 3),
        "the MCC filter, the partial reversal and the decline are honoured: {stored:?}"
    );

    // Disabling the only rule that reads the counter deletes it.
    let id = rule["id"].as_str().unwrap();
    let (status, _) = app
        .post(key, &format!("/authorization_rules/{id}/disable"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        app.state
            .rules
            .store()
            .velocity_counter_rows()
            .await
            .unwrap()
            .is_empty()
    );
}

/// An alert on a stored authorization, written as the engine writes one, for tests that need an
/// alert object whatever check raises it (the isolation matrix).
pub(crate) async fn raise_alert(app: &TestApp, scope: &Scope, transaction_id: &str) -> String {
    let id = TransactionId::parse(transaction_id).unwrap();
    let t = app.state.transactions.get_transaction(scope, &id).await.unwrap();
    let now = Timestamp::now();
    let alert = Alert {
        id: AlertId::generate(),
        tenant_id: t.tenant_id.clone(),
        environment: t.environment,
        kind: AlertKind::RiskScore,
        status: AlertStatus::Open,
        card_id: t.card_id.clone(),
        cardholder_id: t.cardholder_id.clone(),
        program_id: t.program_id.clone(),
        transaction_id: t.id.clone(),
        rule_id: None,
        rule_version: None,
        risk_score: 850,
        detail: "850: country_change=1 (+150)".into(),
        assignee: None,
        resolution: None,
        resolution_note: None,
        card_frozen: false,
        resolved_by: None,
        resolved_at: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let data = serde_json::to_value(cardplane_engine::views::AlertView::from(&alert)).unwrap();
    let event = Event::new(
        &t.tenant_id,
        t.environment,
        EventType::AlertCreated,
        alert.id.to_string(),
        data,
        now,
    );
    app.state.alerts.insert_alert(&alert, &[event]).await.unwrap();
    alert.id.to_string()
}

async fn operators_resolve_an_alert_as_fraud_and_the_frozen_card_declines(app: TestApp) {
    let net = app.network(100_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 10_000).await;
    let other_card = app.net_card(&net, 10_000).await;
    create(
        &app,
        key,
        json!({"scope": {"type": "program", "id": "GPR"}, "type": "conditional_action", "mode": "active",
               "parameters": {"action": "review",
                              "conditions": [{"attribute": "mcc", "operation": "equals", "value": "5812"}]}}),
    )
    .await;
    let first = buy(&app, &net, &card, 1_000, "5812").await;
    assert_eq!(decision(&first).0, "approved");
    buy(&app, &net, &other_card, 1_000, "5812").await;
    let (_, mine) = app.get(key, &format!("/alerts?card_id={}", card.id)).await;
    let id = mine["alerts"][0]["alert"]["id"].as_str().unwrap().to_owned();
    assert_eq!(mine["alerts"][0]["alert"]["transaction_id"], first["authorization_id"]);

    // The custodian sees it, filtered; others do not.
    let (status, got) = app.get(key, &format!("/alerts/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["alert"]["status"], "open");
    assert_eq!(got["alert"]["card_id"], card.id.as_str());
    let (_, list) = app.get(key, &format!("/alerts?card_id={}&status=open", card.id)).await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = app.get(key, "/alerts?kind=rule_review").await;
    assert_eq!(list["total"], 2, "{list}");
    let (_, list) = app.get(key, "/alerts?kind=card_testing").await;
    assert_eq!(list["total"], 0, "{list}");
    let (status, answer) = app.get(key, "/alerts?status=closed").await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    assert_eq!(answer["error"]["param"], "status");
    let stranger = app.tenant().await;
    for creds in [&stranger.sandbox, &net.tenant.live] {
        let (status, answer) = app.get(creds, &format!("/alerts/{id}")).await;
        assert_error(
            status,
            &answer,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "resource_missing",
        );
    }

    // Support may look at the queue but not work it.
    let root = admin(&app).await;
    let support = staff(
        &app,
        "support@example.com",
        Role::Operator(cardplane_domain::people::OperatorRole::Support),
        None,
    )
    .await;
    let (status, queue) = support
        .get(&app, &format!("/ops/alerts?tenant_id={}", net.tenant.id))
        .await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(queue["data"].as_array().unwrap().len(), 2);
    let resolve = format!("/ops/alerts/{id}/resolve");
    let (status, _) = support
        .post(&app, &resolve, &json!({"resolution": "fraud", "freeze_card": true}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, assigned) = root.post(&app, &format!("/ops/alerts/{id}/assign"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{assigned}");
    assert_eq!(assigned["alert"]["status"], "assigned");
    assert_eq!(assigned["alert"]["assignee_id"], root.id.as_str());
    let (status, answer) = root
        .post(&app, &resolve, &json!({"resolution": "not_fraud", "freeze_card": true}))
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::CONFLICT,
        "conflict_error",
        "freeze_needs_fraud",
    );
    let (status, answer) = root.post(&app, &resolve, &json!({"resolution": "maybe"})).await;
    assert_error(
        status,
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "parameter_invalid",
    );
    assert_eq!(answer["error"]["param"], "resolution");

    let (status, resolved) = root
        .post(
            &app,
            &resolve,
            &json!({"resolution": "fraud", "note": "cardholder confirmed", "freeze_card": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let a = &resolved["alert"];
    assert_eq!(
        (a["status"].as_str(), a["resolution"].as_str()),
        (Some("resolved"), Some("fraud"))
    );
    assert_eq!(a["card_frozen"], true);
    assert_eq!(a["resolution_note"], "cardholder confirmed");
    let (status, answer) = root.post(&app, &resolve, &json!({"resolution": "fraud"})).await;
    assert_error(
        status,
        &answer,
        StatusCode::CONFLICT,
        "conflict_error",
        "alert_resolved",
    );

    // The card is frozen through its lifecycle: its event, and the next authorization declines.
    let (_, c) = app.get(key, &format!("/cards/{}", card.id)).await;
    assert_eq!(c["card"]["state"], "INACTIVE", "{c}");
    let next = buy(&app, &net, &card, 500, "5411").await;
    assert_eq!(decision(&next).0, "declined", "{next}");
    assert_eq!(decision(&buy(&app, &net, &other_card, 500, "5411").await).0, "approved");
    let (_, events) = app.get(key, "/events?limit=50").await;
    let types: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"]["type"].as_str().unwrap(),
                e["event"]["object_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(types.contains(&("card.updated", card.id.as_str())), "{types:?}");
    assert_eq!(
        types.iter().filter(|(t, o)| *t == "alert.updated" && *o == id).count(),
        2,
        "assigned, resolved: {types:?}"
    );
    let (_, audit) = root.get(&app, "/ops/audit?action=alert.resolved").await;
    assert_eq!(audit["entries"][0]["object_id"], id.as_str(), "{audit}");
    let (_, queue) = root.get(&app, "/ops/alerts?status=resolved").await;
    assert_eq!(queue["data"].as_array().unwrap().len(), 1);
}

// ---- Rules deciding live authorizations (the engine side). ----

async fn each_kind_of_rule_declines_a_network_authorization(app: TestApp) {
    let net = app.network(1_000_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 100_000).await;

    create(
        &app,
        key,
        json!({"scope": card_scope(&card), "type": "conditional_action", "mode": "active",
               "parameters": {"conditions": [{"attribute": "mcc", "operation": "is_one_of", "value": ["7995"]}]}}),
    )
    .await;
    assert_eq!(
        decision(&buy(&app, &net, &card, 1_000, "5411").await),
        ("approved", "00")
    );
    let gambling = buy(&app, &net, &card, 1_000, "7995").await;
    assert_eq!(decision(&gambling), ("declined", "59"), "{gambling}");
    let steps = trace(&app, &net, &gambling).await;
    assert!(
        steps
            .iter()
            .any(|s| s["check"] == "authorization_rule" && s["result"] == "fail"),
        "{steps:?}"
    );

    let locked = app.net_card(&net, 100_000).await;
    create(
        &app,
        key,
        json!({"scope": card_scope(&locked), "type": "merchant_lock", "mode": "active",
               "parameters": {"mccs": ["5411"]}}),
    )
    .await;
    assert_eq!(
        decision(&buy(&app, &net, &locked, 1_000, "5411").await),
        ("approved", "00")
    );
    assert_eq!(
        decision(&buy(&app, &net, &locked, 1_000, "5812").await),
        ("declined", "57")
    );

    let counted = app.net_card(&net, 100_000).await;
    create(
        &app,
        key,
        json!({"scope": card_scope(&counted), "type": "velocity_limit", "mode": "active",
               "parameters": {"window": "day", "limit_count": 2}}),
    )
    .await;
    assert_eq!(decision(&buy(&app, &net, &counted, 100, "5411").await).0, "approved");
    assert_eq!(decision(&buy(&app, &net, &counted, 100, "5411").await).0, "approved");
    assert_eq!(
        decision(&buy(&app, &net, &counted, 100, "5411").await),
        ("declined", "65")
    );
}

async fn a_shadow_draft_never_changes_the_answer_and_promotion_applies_it(app: TestApp) {
    let net = app.network(1_000_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 100_000).await;
    let rule = create(
        &app,
        key,
        json!({"scope": card_scope(&card), "type": "conditional_action",
               "parameters": {"conditions": [{"attribute": "amount", "operation": "greater_than", "value": 5000}]}}),
    )
    .await;
    let answer = buy(&app, &net, &card, 6_000, "5411").await;
    assert_eq!(
        decision(&answer),
        ("approved", "00"),
        "a draft never declines: {answer}"
    );
    let steps = trace(&app, &net, &answer).await;
    assert!(
        steps
            .iter()
            .any(|s| s["check"] == "shadow_rule" && s["result"] == "shadow"),
        "the trace says what the draft would have done: {steps:?}"
    );
    let id = rule["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            key,
            &format!("/authorization_rules/{id}/promote"),
            &json!({"version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The very next authorization after the promotion's answer is decided by it.
    assert_eq!(
        decision(&buy(&app, &net, &card, 6_000, "5411").await),
        ("declined", "59")
    );
    assert_eq!(
        decision(&buy(&app, &net, &card, 4_000, "5411").await),
        ("approved", "00")
    );
}

/// A velocity limit of 3 a day created after two approvals declines the second authorization
/// after it, not the fourth.
async fn a_velocity_rule_created_after_approvals_counts_them(app: TestApp) {
    let net = app.network(1_000_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 100_000).await;
    for _ in 0..2 {
        assert_eq!(decision(&buy(&app, &net, &card, 100, "5411").await).0, "approved");
    }
    create(
        &app,
        key,
        json!({"scope": {"type": "program", "id": "GPR"}, "type": "velocity_limit", "mode": "active",
               "parameters": {"window": "day", "limit_count": 3}}),
    )
    .await;
    assert_eq!(decision(&buy(&app, &net, &card, 100, "5411").await).0, "approved");
    assert_eq!(decision(&buy(&app, &net, &card, 100, "5411").await), ("declined", "65"));
}

/// After a random workload (approvals, declines, partial and full reversals, rule changes in
/// between), the stored counters are exactly what the history says.
async fn velocity_counters_equal_a_recomputation_after_a_random_workload(app: TestApp) {
    let net = app.network(10_000_000).await;
    let key = &net.tenant.sandbox;
    let cards = [
        app.net_card(&net, 40_000).await,
        app.net_card(&net, 40_000).await,
        app.net_card(&net, 40_000).await,
    ];
    let per_card = json!({"type": "velocity_limit", "parameters": {"window": "day", "limit_count": 1000}});
    let cnp_amount = json!({"type": "velocity_limit", "parameters": {
        "window": "trailing", "window_secs": 3600, "limit_amount": 100_000_000, "filters": {"card_not_present_only": true}}});
    let mut body = per_card.clone();
    body["scope"] = json!({"type": "program", "id": "GPR"});
    body["mode"] = json!("active");
    create(&app, key, body).await;

    let mut seed: u64 = 0x5eed_1234;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut approved: Vec<String> = Vec::new();
    for step in 0..40 {
        if step == 15 {
            let mut body = cnp_amount.clone();
            body["scope"] = json!({"type": "program", "id": "GPR"});
            create(&app, key, body).await;
        }
        let card = &cards[usize::try_from(next(3)).unwrap()];
        match next(5) {
            0 if !approved.is_empty() => {
                let i = usize::try_from(next(approved.len() as u64)).unwrap();
                let original = approved.swap_remove(i);
                let mut reversal = NetMessage::reversal(&original);
                if next(2) == 0 {
                    reversal = reversal.amount(i64::try_from(next(300)).unwrap() + 1);
                }
                authorize(&app, &net, reversal).await;
            }
            _ => {
                let id = ntid();
                let mode = if next(2) == 0 { "ecommerce" } else { "chip" };
                let amount = i64::try_from(next(9_000)).unwrap() + 100;
                let answer = authorize(
                    &app,
                    &net,
                    NetMessage::authorization(card, amount).id(&id).entry_mode(mode),
                )
                .await;
                if answer["decision"] == "approved" {
                    approved.push(id);
                }
            }
        }
    }
    let scope = sandbox(&net.tenant.id);
    let all = history(&app, &scope).await;
    let program_id = all[0].program_id.to_string();
    let specs = [
        spec_of(&per_card, ControlScopeKind::Program, &program_id),
        spec_of(&cnp_amount, ControlScopeKind::Program, &program_id),
    ];
    let expected = recompute(&specs, &all);
    let stored = app.state.rules.store().velocity_counter_rows().await.unwrap();
    assert_eq!(stored, expected);
    assert!(!stored.is_empty());
}

/// The counters read by the rules that are in force now, recomputed from every stored
/// transaction of the tenant's sandbox.
async fn expected_counters(app: &TestApp, key: &Creds, tenant: &str) -> Vec<CounterRow> {
    let all = history(app, &sandbox(tenant)).await;
    let program_id = all[0].program_id.to_string();
    let (_, list) = app.get(key, "/authorization_rules?limit=50").await;
    let mut specs: Vec<(String, Arc<CounterSpec>)> = Vec::new();
    for r in list["authorization_rules"].as_array().unwrap() {
        let r = &r["authorization_rule"];
        for v in [&r["active"], &r["draft"]].into_iter().filter(|v| !v.is_null()) {
            let definition = json!({"type": r["type"], "parameters": v["parameters"]});
            let spec = spec_of(&definition, ControlScopeKind::Program, &program_id);
            if !specs.iter().any(|(k, _)| *k == spec.0) {
                specs.push(spec);
            }
        }
    }
    recompute(&specs, &all)
}

/// Rule changes (new rules, drafts, promotions, disabling) while authorizations stream in on
/// several connections: each change waits for the batches in flight and seeds what it starts, so
/// the counters still equal a recomputation from history.
async fn counters_stay_exact_when_rules_change_during_traffic(app: TestApp) {
    let net = app.network(10_000_000).await;
    let key = &net.tenant.sandbox;
    let cards = [app.net_card(&net, 1_000_000).await, app.net_card(&net, 1_000_000).await];
    let traffic = async {
        let streams = (0..4).map(|s| {
            let (app, net, card) = (&app, &net, &cards[s % 2]);
            async move {
                for i in 0..15 {
                    let amount = 100 + i64::try_from(s * 100 + i).unwrap();
                    let mode = if i % 2 == 0 { "ecommerce" } else { "chip" };
                    authorize(app, net, NetMessage::authorization(card, amount).entry_mode(mode)).await;
                }
            }
        });
        futures::future::join_all(streams).await;
    };
    let changes = async {
        let velocity = |window: &str, filters: Value| {
            json!({"scope": {"type": "program", "id": "GPR"}, "type": "velocity_limit", "mode": "active",
                   "parameters": {"window": window, "limit_count": 100_000, "filters": filters}})
        };
        let first = create(&app, key, velocity("day", json!({}))).await;
        let first = first["id"].as_str().unwrap().to_owned();
        create(&app, key, velocity("week", json!({"card_not_present_only": true}))).await;
        let (status, _) = app
            .post(
                key,
                &format!("/authorization_rules/{first}/versions"),
                &json!({"parameters": {"window": "trailing", "window_secs": 600, "limit_count": 100_000}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .post(key, &format!("/authorization_rules/{first}/promote"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let third = create(&app, key, velocity("month", json!({"mccs": ["5411"]}))).await;
        let (status, _) = app
            .post(
                key,
                &format!("/authorization_rules/{}/disable", third["id"].as_str().unwrap()),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    tokio::join!(traffic, changes);
    let stored = app.state.rules.store().velocity_counter_rows().await.unwrap();
    assert_eq!(stored, expected_counters(&app, key, &net.tenant.id).await);
    assert!(!stored.is_empty());
}

/// A promotion while authorizations stream in: every authorization was decided by exactly one
/// state of the rule (v1 active with v2 in shadow, or v2 active), never a mix.
async fn a_promotion_during_traffic_is_seen_whole_by_every_authorization(app: TestApp) {
    let net = app.network(10_000_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 1_000_000).await;
    let over =
        |value: i64| json!({"conditions": [{"attribute": "amount", "operation": "greater_than", "value": value}]});
    let rule = create(
        &app,
        key,
        json!({"scope": card_scope(&card), "type": "conditional_action", "mode": "active", "parameters": over(50_000)}),
    )
    .await;
    let id = rule["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            &net.tenant.sandbox,
            &format!("/authorization_rules/{id}/versions"),
            &json!({"parameters": over(1_000)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answers = std::sync::Mutex::new(Vec::new());
    let traffic = async {
        let streams = (0..4).map(|_| async {
            for _ in 0..8 {
                let a = buy(&app, &net, &card, 2_000, "5411").await;
                answers.lock().unwrap().push(a);
            }
        });
        futures::future::join_all(streams).await;
    };
    let promote = async {
        let (status, _) = app
            .post(
                key,
                &format!("/authorization_rules/{id}/promote"),
                &json!({"version": 2}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    tokio::join!(traffic, promote);
    let answers = answers.into_inner().unwrap();
    for a in &answers {
        let steps = trace(&app, &net, a).await;
        let mentions = |check: &str, version: &str| {
            steps.iter().any(|s| {
                s["check"] == check
                    && s["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&format!("{id} {version}"))
            })
        };
        match decision(a) {
            ("approved", _) => assert!(
                mentions("authorization_rule", "v1")
                    && mentions("shadow_rule", "v2")
                    && !mentions("authorization_rule", "v2"),
                "approved under v1 with v2 in shadow: {steps:?}"
            ),
            ("declined", "59") => assert!(
                mentions("authorization_rule", "v2")
                    && !mentions("authorization_rule", "v1")
                    && !mentions("shadow_rule", "v2"),
                "declined by v2 alone: {steps:?}"
            ),
            other => panic!("unexpected answer {other:?}: {a}"),
        }
    }
    assert_eq!(
        decision(&buy(&app, &net, &card, 2_000, "5411").await),
        ("declined", "59")
    );
}

fn no_backtest_job(c: &mut cardplane_api::Config) {
    // The test drives the job itself, so it knows when the run happened.
    c.backtest_poll_interval_ms = 3_600_000;
    c.webhooks.worker = false;
}

async fn spawn_quiet(b: cardplane_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(b, no_backtest_job).await
}

/// Ten authorizations with a review rule active; a draft that declines amounts over 5,000
/// changes exactly the four approvals over it (a review among them: declines win), and the
/// decline for funds stays a decline.
async fn a_backtest_over_a_known_history_gives_exact_counts(app: TestApp) {
    let net = app.network(1_000_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 100_000).await;
    let start = Timestamp::now().plus_secs(-1);
    create(
        &app,
        key,
        json!({"scope": {"type": "program", "id": "GPR"}, "type": "conditional_action", "mode": "active",
               "parameters": {"action": "review",
                              "conditions": [{"attribute": "mcc", "operation": "equals", "value": "5812"}]}}),
    )
    .await;
    let history = [
        (1_000, "5411", "approved"),
        (6_000, "5411", "approved"),
        (2_000, "5812", "approved"),
        (7_000, "5812", "approved"),
        (3_000, "5411", "approved"),
        (8_000, "5411", "approved"),
        (500, "5411", "approved"),
        (9_000, "5411", "approved"),
        (4_000, "5411", "approved"),
        (200_000, "5411", "declined"),
    ];
    for (amount, mcc, expected) in history {
        let answer = buy(&app, &net, &card, amount, mcc).await;
        assert_eq!(decision(&answer).0, expected, "{answer}");
    }
    let end = Timestamp::now().plus_secs(1);
    let rule = create(
        &app,
        key,
        json!({"scope": card_scope(&card), "type": "conditional_action",
               "parameters": {"conditions": [{"attribute": "amount", "operation": "greater_than", "value": 5000}]}}),
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    let path = format!("/authorization_rules/{id}/backtests");

    // The window is checked, and only a rule with a draft can be backtested.
    let at = |t: Timestamp| t.to_rfc3339();
    for (body, code, param) in [
        (json!({"end": at(end)}), "parameter_missing", "start"),
        (
            json!({"start": "yesterday", "end": at(end)}),
            "parameter_invalid",
            "start",
        ),
        (json!({"start": at(end), "end": at(start)}), "parameter_invalid", "end"),
        (
            json!({"start": at(start.plus_secs(-94 * 86_400)), "end": at(start)}),
            "parameter_invalid",
            "end",
        ),
    ] {
        let (status, answer) = app.post(key, &path, &body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request_error", code);
        assert_eq!(answer["error"]["param"], param, "{body}: {answer}");
    }
    let window = json!({"start": at(start), "end": at(end)});
    let stranger = app.tenant().await;
    let (status, answer) = app.post(&stranger.sandbox, &path, &window).await;
    assert_error(
        status,
        &answer,
        StatusCode::NOT_FOUND,
        "not_found_error",
        "resource_missing",
    );

    let (status, queued) = app.post(key, &path, &window).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let backtest = queued["backtest"]["id"].as_str().unwrap().to_owned();
    assert_eq!(queued["backtest"]["status"], "queued");
    assert_eq!(queued["backtest"]["draft_version"], 1);
    assert!(queued["backtest"]["active_version"].is_null());

    let ran = app.state.backtest_runner().run_once(Timestamp::now()).await.unwrap();
    assert_eq!(ran.map(|b| b.to_string()), Some(backtest.clone()));
    assert_eq!(
        app.state.backtest_runner().run_once(Timestamp::now()).await.unwrap(),
        None
    );

    let (status, done) = app.get(key, &format!("{path}/{backtest}")).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let b = &done["backtest"];
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["progress"], json!({"processed": 10, "total": 10}));
    let r = &b["result"];
    assert_eq!(r["authorizations"], 10);
    let tally = |count: i64, amount: i64| json!({"count": count, "amount": amount});
    assert_eq!(
        r["active"],
        json!({"approved": tally(7, 31_500), "reviewed": tally(2, 9_000), "declined": tally(1, 200_000)}),
        "{r}"
    );
    assert_eq!(
        r["draft"],
        json!({"approved": tally(4, 8_500), "reviewed": tally(1, 2_000), "declined": tally(5, 230_000)}),
        "{r}"
    );
    assert_eq!(r["changed"], 4);
    let examples = r["examples"].as_array().unwrap();
    let amounts: Vec<i64> = examples.iter().map(|e| e["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [6_000, 7_000, 8_000, 9_000]);
    assert_eq!(examples[1]["before"], "reviewed");
    for e in examples {
        assert_eq!(e["after"], "declined");
        assert_eq!(e["rule_id"], id);
        assert_eq!(e["response_code"], "59");
    }

    // Completion is an event; other tenants and live mode see no backtest.
    let (_, events) = app.get(key, "/events?limit=50").await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["type"] == "authorization_rule.backtest.completed"
                && e["event"]["object_id"] == backtest.as_str()),
        "{events}"
    );
    for creds in [&stranger.sandbox, &net.tenant.live] {
        let (status, answer) = app.get(creds, &format!("{path}/{backtest}")).await;
        assert_error(
            status,
            &answer,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "resource_missing",
        );
    }
    // Without a draft there is nothing to test.
    app.post(key, &format!("/authorization_rules/{id}/promote"), &json!({}))
        .await;
    let (status, answer) = app.post(key, &path, &window).await;
    assert_error(
        status,
        &answer,
        StatusCode::CONFLICT,
        "conflict_error",
        "rule_has_no_draft",
    );
}

/// A local webhook receiver: every body it got.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let log = got.clone();
    let router = axum::Router::new().fallback(axum::routing::post(move |body: axum::body::Bytes| {
        let log = log.clone();
        async move {
            log.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or_default());
            axum::http::StatusCode::NO_CONTENT
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, got)
}

async fn a_review_rule_raises_an_alert_delivered_as_a_webhook(app: TestApp) {
    let net = app.network(1_000_000).await;
    let key = &net.tenant.sandbox;
    let card = app.net_card(&net, 100_000).await;
    let (url, got) = receiver().await;
    let (status, endpoint) = app
        .post(
            key,
            "/webhook_endpoints",
            &json!({"url": url, "enabled_events": ["alert.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    let rule = create(
        &app,
        key,
        json!({"scope": card_scope(&card), "type": "conditional_action", "mode": "active",
               "parameters": {"action": "review",
                              "conditions": [{"attribute": "merchant_country", "operation": "is_not_one_of", "value": ["USA"]}]}}),
    )
    .await;
    let abroad = authorize(
        &app,
        &net,
        NetMessage::authorization(&card, 1_500).merchant(json!({"id": "m_paris", "name": "Café", "mcc": "5812",
                                                                   "country": "FRA", "city": "Paris"})),
    )
    .await;
    assert_eq!(decision(&abroad), ("approved", "00"), "a review approves: {abroad}");
    assert_eq!(decision(&buy(&app, &net, &card, 1_500, "5411").await).0, "approved");

    let (_, alerts) = app.get(key, "/alerts?kind=rule_review").await;
    assert_eq!(alerts["total"], 1, "{alerts}");
    let alert = &alerts["alerts"][0]["alert"];
    assert_eq!(alert["rule_id"], rule["id"]);
    assert_eq!(alert["rule_version"], 1);
    assert_eq!(alert["transaction_id"], abroad["authorization_id"]);
    assert_eq!(alert["status"], "open");

    app.state.deliverer().deliver_due(Timestamp::now()).await.unwrap();
    let bodies = got.lock().unwrap().clone();
    let created: Vec<&Value> = bodies.iter().filter(|b| b["type"] == "alert.created").collect();
    assert_eq!(created.len(), 1, "{bodies:?}");
    assert_eq!(created[0]["data"]["id"], alert["id"], "{bodies:?}");
}

app_tests!(spawn = super::spawn_quiet;
    a_backtest_over_a_known_history_gives_exact_counts,
    a_review_rule_raises_an_alert_delivered_as_a_webhook,
);

app_tests!(
    rule_definitions_are_checked_and_errors_name_the_field,
    a_rule_moves_through_versions_with_one_active_and_one_draft,
    a_retried_create_answers_the_same_rule_once,
    velocity_counters_are_seeded_from_history_when_a_rule_starts_using_them,
    operators_resolve_an_alert_as_fraud_and_the_frozen_card_declines,
    each_kind_of_rule_declines_a_network_authorization,
    a_shadow_draft_never_changes_the_answer_and_promotion_applies_it,
    a_velocity_rule_created_after_approvals_counts_them,
    velocity_counters_equal_a_recomputation_after_a_random_workload,
    counters_stay_exact_when_rules_change_during_traffic,
    a_promotion_during_traffic_is_seen_whole_by_every_authorization,
);
