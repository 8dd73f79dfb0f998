use std::sync::Arc;

use serde_json::{Value, json};

use super::risk::{Attempt, RiskProfile};
use super::velocity::{CounterRow, VelocityBook, first_bucket};
use super::*;
use crate::authorization::{Merchant, Transaction, TransactionKind, TransactionState};
use crate::controls::ControlScopeKind;
use crate::ids::{AccountId, AuthorizationRuleId, CardId, CardholderId, ProgramId, TenantId, TransactionId};
use crate::time::Timestamp;

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn merchant() -> Merchant {
    Merchant {
        id: "m_coffee".into(),
        name: "Blue Bottle Coffee #12".into(),
        mcc: "5814".into(),
        country: "USA".into(),
        city: "Oakland".into(),
    }
}

fn facts(m: &Merchant, amount: i64, at: i64) -> Facts<'_> {
    Facts {
        amount,
        currency: "USD",
        merchant: m,
        entry_mode: "ecommerce",
        card_created_at: Timestamp::from_micros((T0 - 3 * 86_400) * 1_000_000),
        card_state: "ACTIVE",
        cardholder_kyc_status: "PASSED",
        at: Timestamp::from_micros(at * 1_000_000),
        utc_offset_minutes: 0,
        risk_score: 120,
    }
}

const IDS: ScopeIds<'static> = ScopeIds {
    card: "crd_1",
    cardholder: "crh_1",
    program: "prg_1",
};

fn rule(id: u8, scope: ControlScopeKind, raw: Value) -> Arc<CompiledRule> {
    let scope_id = match scope {
        ControlScopeKind::Card => "crd_1",
        ControlScopeKind::Cardholder => "crh_1",
        ControlScopeKind::Program => "prg_1",
    };
    Arc::new(CompiledRule {
        rule_id: AuthorizationRuleId::parse(&format!("arule_{id:032}")).unwrap(),
        version: 1,
        scope,
        scope_id: scope_id.into(),
        definition: RuleDefinition::parse(&raw, scope, scope_id).unwrap(),
    })
}

fn condition(attribute: &str, operation: &str, value: Value) -> Value {
    json!({"type": "conditional_action", "parameters": {"conditions": [
        {"attribute": attribute, "operation": operation, "value": value}
    ]}})
}

fn matches(raw: Value, f: &Facts<'_>) -> bool {
    let r = rule(1, ControlScopeKind::Program, raw);
    evaluate(&[r], f, &IDS, &VelocityBook::default(), false)
        .decline
        .is_some()
}

#[test]
fn every_attribute_and_operation_evaluates() {
    let m = merchant();
    let f = facts(&m, 12_000, T0 + 13 * 3600 + 5);
    let cases: Vec<(&str, &str, Value, bool)> = vec![
        ("mcc", "is_one_of", json!(["5814", "5812"]), true),
        ("mcc", "is_not_one_of", json!(["5814"]), false),
        ("merchant_country", "equals", json!("USA"), true),
        ("merchant_country", "is_not_one_of", json!(["USA", "CAN"]), false),
        ("merchant_id", "equals", json!("m_other"), false),
        ("merchant_name", "matches", json!("^blue bottle"), true),
        ("merchant_name", "matches", json!("starbucks"), false),
        ("currency", "is_one_of", json!(["EUR"]), false),
        ("amount", "greater_than", json!(11_999), true),
        ("amount", "greater_than", json!(12_000), false),
        ("amount", "less_than", json!(12_001), true),
        ("amount", "between", json!([12_000, 12_000]), true),
        ("amount", "equals", json!(12_000), true),
        ("amount", "is_one_of", json!([1, 2]), false),
        ("entry_mode", "equals", json!("ecommerce"), true),
        ("card_age_days", "less_than", json!(7), true),
        ("card_age_days", "equals", json!(3), true),
        ("card_state", "equals", json!("ACTIVE"), true),
        ("cardholder_kyc_status", "is_not_one_of", json!(["PASSED"]), false),
        ("hour_of_day", "equals", json!(13), true),
        ("hour_of_day", "between", json!([0, 5]), false),
        ("risk_score", "greater_than", json!(100), true),
        ("is_recurring", "equals", json!(false), true),
        ("is_recurring", "equals", json!(true), false),
    ];
    for (attribute, operation, value, expected) in cases {
        assert_eq!(
            matches(condition(attribute, operation, value.clone()), &f),
            expected,
            "{attribute} {operation} {value}"
        );
    }
}

#[test]
fn hour_of_day_follows_the_rules_offset() {
    let m = merchant();
    let f = facts(&m, 100, T0 + 2 * 3600); // 02:00 UTC = 21:00 the day before at -05:00
    let raw = json!({"type": "conditional_action", "parameters": {"utc_offset": "-05:00", "conditions": [
        {"attribute": "hour_of_day", "operation": "equals", "value": 21}]}});
    assert!(matches(raw, &f));
}

#[test]
fn all_and_any_combine_conditions() {
    let m = merchant();
    let f = facts(&m, 60_000, T0);
    let both = |mode: &str| {
        json!({"type": "conditional_action", "parameters": {"match": mode, "conditions": [
            {"attribute": "amount", "operation": "greater_than", "value": 50_000},
            {"attribute": "merchant_country", "operation": "is_not_one_of", "value": ["USA"]}]}})
    };
    assert!(!matches(both("all"), &f));
    assert!(matches(both("any"), &f));
}

#[test]
fn bad_definitions_name_the_field() {
    let bad: Vec<(Value, &str)> = vec![
        (
            condition("amount", "matches", json!("1")),
            "parameters.conditions[0].operation",
        ),
        (
            condition("colour", "equals", json!("red")),
            "parameters.conditions[0].attribute",
        ),
        (
            condition("merchant_name", "matches", json!("(")),
            "parameters.conditions[0].value",
        ),
        (
            condition("amount", "between", json!([5, 1])),
            "parameters.conditions[0].value",
        ),
        (
            condition("mcc", "is_one_of", json!([])),
            "parameters.conditions[0].value",
        ),
        (
            json!({"type": "velocity_limit", "parameters": {"window": "trailing", "window_secs": 5, "limit_count": 1}}),
            "parameters.window_secs",
        ),
        (
            json!({"type": "velocity_limit", "parameters": {"window": "day"}}),
            "parameters.limit_count",
        ),
        (
            json!({"type": "velocity_limit", "parameters": {"window": "lifetime", "limit_count": 3}}),
            "parameters.window",
        ),
        (
            json!({"type": "merchant_lock", "parameters": {}}),
            "parameters.merchant_ids",
        ),
        (
            json!({"type": "merchant_lock", "parameters": {"mccs": ["5814"], "action": "review", "response_code": "05"}}),
            "parameters.response_code",
        ),
        (
            json!({"type": "merchant_lock", "parameters": {"mccs": ["5814"], "response_code": "00"}}),
            "parameters.response_code",
        ),
        (json!({"type": "nope", "parameters": {}}), "type"),
        (
            json!({"type": "merchant_lock", "parameters": {"mccs": ["5814"]}, "extra": 1}),
            "extra",
        ),
    ];
    for (raw, param) in bad {
        let err = RuleDefinition::parse(&raw, ControlScopeKind::Program, "prg_1").unwrap_err();
        assert_eq!(err.param, param, "{raw}: {err}");
    }
    let per_program =
        json!({"type": "velocity_limit", "parameters": {"scope": "program", "window": "day", "limit_count": 3}});
    let err = RuleDefinition::parse(&per_program, ControlScopeKind::Card, "crd_1").unwrap_err();
    assert_eq!(err.param, "parameters.scope");
}

#[test]
fn declines_win_and_approve_only_suppresses_later_reviews() {
    let m = merchant();
    let f = facts(&m, 60_000, T0);
    let act = |action: &str, priority: i64| {
        json!({"priority": priority, "type": "conditional_action", "parameters": {"action": action, "conditions": [
            {"attribute": "amount", "operation": "greater_than", "value": 1}]}})
    };
    let approve = rule(1, ControlScopeKind::Program, act("approve", 1));
    let review = rule(2, ControlScopeKind::Program, act("review", 5));
    let decline = rule(3, ControlScopeKind::Program, act("decline", 9));
    let v = evaluate(
        &[decline.clone(), review.clone(), approve.clone()],
        &f,
        &IDS,
        &VelocityBook::default(),
        false,
    );
    assert_eq!(v.decline.as_ref().map(|h| &h.rule_id), Some(&decline.rule_id));
    assert!(v.reviews.is_empty(), "the earlier approve suppresses the review");
    assert_eq!(v.steps.len(), 3, "one step per matching rule");
    assert_eq!(v.steps[0].result, "approve");
    let none = rule(9, ControlScopeKind::Program, condition("amount", "less_than", json!(1)));
    let v = evaluate(
        &[none.clone(), review.clone()],
        &f,
        &IDS,
        &VelocityBook::default(),
        false,
    );
    assert_eq!(v.steps.len(), 2);
    assert_eq!(v.steps[1].detail, format!("no match: {} v1", none.rule_id));

    let v = evaluate(std::slice::from_ref(&review), &f, &IDS, &VelocityBook::default(), false);
    assert_eq!(v.reviews.len(), 1);
    assert!(v.decline.is_none());

    // The first decline by priority gives the code.
    let code = |c: &str, p: i64| {
        json!({"priority": p, "type": "conditional_action", "parameters": {"response_code": c, "conditions": [
            {"attribute": "amount", "operation": "greater_than", "value": 1}]}})
    };
    let later = rule(4, ControlScopeKind::Program, code("05", 50));
    let first = rule(5, ControlScopeKind::Program, code("62", 10));
    let v = evaluate(&[later, first], &f, &IDS, &VelocityBook::default(), false);
    assert_eq!(v.decline.unwrap().response_code, ResponseCode::RestrictedCard);
}

#[test]
fn shadow_steps_never_fail_the_trace() {
    let m = merchant();
    let f = facts(&m, 60_000, T0);
    let r = rule(
        1,
        ControlScopeKind::Program,
        condition("amount", "greater_than", json!(1)),
    );
    let v = evaluate(&[r], &f, &IDS, &VelocityBook::default(), true);
    assert_eq!(v.steps[0].check, "shadow_rule");
    assert_eq!(v.steps[0].result, "shadow");
    let trace = serde_json::to_value(&v.steps).unwrap();
    assert!(base_approved(&trace));
}

#[test]
fn merchant_lock_allows_only_listed_merchants() {
    let m = merchant();
    let f = facts(&m, 100, T0);
    assert!(!matches(
        json!({"type": "merchant_lock", "parameters": {"merchant_ids": ["m_coffee"]}}),
        &f
    ));
    assert!(!matches(
        json!({"type": "merchant_lock", "parameters": {"mccs": ["5814"]}}),
        &f
    ));
    assert!(matches(
        json!({"type": "merchant_lock", "parameters": {"mccs": ["5411"]}}),
        &f
    ));
}

fn auth(n: u32, at: i64, amount: i64, state: TransactionState, mcc: &str) -> Transaction {
    let ts = Timestamp::from_micros(at * 1_000_000);
    Transaction {
        id: TransactionId::parse(&format!("txn_{n:032}")).unwrap(),
        tenant_id: TenantId::generate(),
        environment: crate::Environment::Sandbox,
        card_id: CardId::parse(&format!("card_{:032}", 1)).unwrap(),
        cardholder_id: CardholderId::parse(&format!("crdhldr_{:032}", 1)).unwrap(),
        program_id: ProgramId::parse(&format!("prog_{:032}", 1)).unwrap(),
        account_id: AccountId::parse(&format!("acct_{:032}", 1)).unwrap(),
        kind: TransactionKind::Authorization,
        state,
        network_transaction_id: format!("n{n}"),
        currency: crate::money::Currency::parse("USD").unwrap(),
        requested_amount: amount,
        authorized_amount: amount,
        held_amount: amount,
        cleared_amount: 0,
        reversed_amount: 0,
        response_code: ResponseCode::Approved,
        decline_reason: None,
        authorization_code: None,
        merchant: Merchant {
            mcc: mcc.into(),
            ..merchant()
        },
        entry_mode: "chip".into(),
        stand_in: false,
        decision_trace: Value::Null,
        received_at: ts,
        custodian_sent_at: None,
        custodian_answered_at: None,
        answered_at: ts,
        expires_at: None,
        created_at: ts,
        updated_at: ts,
    }
}

#[test]
fn velocity_counts_approved_amounts_and_follows_reversals_and_expiries() {
    let raw = json!({"type": "velocity_limit", "parameters": {"window": "trailing", "window_secs": 3600,
        "limit_count": 3, "limit_amount": 10_000, "filters": {"mccs": ["5814"]}}});
    let r = rule(1, ControlScopeKind::Program, raw);
    let (key, spec) = r.definition.counter().unwrap();
    let specs = vec![(key.to_owned(), spec.clone())];
    let mut book = VelocityBook::new(Vec::<CounterRow>::new());
    let a = auth(1, T0, 4_000, TransactionState::Pending, "5814");
    book.record(&specs, None, &a);
    book.record(&specs, None, &auth(2, T0 + 60, 999, TransactionState::Declined, "5814"));
    book.record(&specs, None, &auth(3, T0 + 60, 999, TransactionState::Pending, "5411"));
    let mut reversed = a.clone();
    reversed.state = TransactionState::Reversed;
    reversed.reversed_amount = 1_000;
    book.record(&specs, Some(&a), &reversed);
    let b = auth(4, T0 + 120, 2_000, TransactionState::Pending, "5814");
    book.record(&specs, None, &b);
    let mut expired = b.clone();
    expired.state = TransactionState::Expired;
    book.record(&specs, Some(&b), &expired);
    let now = Timestamp::from_micros((T0 + 600) * 1_000_000);
    let window = crate::controls::Window::Trailing { secs: 3600 };
    let used = book.used(
        key,
        "card_00000000000000000000000000000001",
        first_bucket(&window, 60, now),
    );
    assert_eq!((used.count, used.amount), (1, 3_000));
    let deltas = book.deltas();
    assert_eq!(deltas.iter().map(|d| d.count).sum::<i64>(), 1);
    // An hour later the bucket has left the window.
    let later = Timestamp::from_micros((T0 + 3_700) * 1_000_000);
    let used = book.used(
        key,
        "card_00000000000000000000000000000001",
        first_bucket(&window, 60, later),
    );
    assert_eq!(used.count, 0);
}

#[test]
fn velocity_rule_declines_past_its_limit() {
    let m = merchant();
    let raw = json!({"type": "velocity_limit", "parameters": {"window": "day", "limit_count": 2}});
    let r = rule(1, ControlScopeKind::Card, raw);
    let key = r.definition.counter().unwrap().0.to_owned();
    let bucket = T0.div_euclid(3600) * 3600;
    let row = |count| CounterRow {
        counter: key.clone(),
        scope_id: "crd_1".into(),
        bucket,
        amount: 500,
        count,
    };
    let f = facts(&m, 100, T0 + 10);
    let v = evaluate(std::slice::from_ref(&r), &f, &IDS, &VelocityBook::new([row(1)]), false);
    assert!(v.decline.is_none());
    let v = evaluate(&[r], &f, &IDS, &VelocityBook::new([row(2)]), false);
    assert_eq!(v.decline.unwrap().response_code, ResponseCode::CountLimit);
}

#[test]
fn risk_score_is_the_sum_of_documented_factors() {
    let at = |s: i64| Timestamp::from_micros((T0 + s) * 1_000_000);
    let mut p = RiskProfile::default();
    let a = |amount, merchant: &'static str, country: &'static str, s| Attempt {
        amount,
        merchant_id: merchant,
        country,
        at: at(s),
    };
    assert_eq!(p.score(&a(5_000, "m1", "USA", 0)).score, 0);
    for i in 0..3 {
        p.observe(&a(1_000, "m1", "USA", i), true, 1_000);
    }
    // New merchant (+100), other country (+150), 20x the usual amount (+200), 3 attempts in
    // 10 minutes (+60).
    let s = p.score(&a(20_000, "m2", "FRA", 30));
    assert_eq!(s.score, 510, "{}", s.describe());
    let names: Vec<&str> = s.factors.iter().map(|f| f.factor).collect();
    assert_eq!(
        names,
        ["attempts_10m", "new_merchant", "country_change", "amount_vs_usual"]
    );
    // Two declines in the hour (+140).
    p.observe(&a(50, "m3", "USA", 40), false, 0);
    p.observe(&a(50, "m3", "USA", 50), false, 0);
    let s = p.score(&a(1_000, "m1", "USA", 60));
    assert_eq!(s.score, 180 + 140, "{}", s.describe());
    // Card testing: small attempts, this one included.
    p.observe(&a(100, "m3", "USA", 70), false, 0);
    p.observe(&a(100, "m3", "USA", 80), false, 0);
    let s = p.score(&a(100, "m3", "USA", 90));
    assert!(s.card_testing);
    assert_eq!(s.score, 240 + 280 + 100 + 300, "{}", s.describe());
    assert!(p.take_testing_alert(at(90)));
    assert!(!p.take_testing_alert(at(120)));
    // An hour later the attempts have aged out.
    let s = p.score(&a(1_000, "m1", "USA", 4_000));
    assert_eq!(s.score, 0, "{}", s.describe());
}
