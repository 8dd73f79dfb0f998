//! The OpenAPI document, generated from the handlers and views (locked by a snapshot test).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    alerts, api_keys, authorization_rules, cardholder_documents, cardholders, cards, controls, disputes, events,
    network, ops, ops_alerts, ops_audit, ops_auth, ops_cases, ops_chains, ops_disputes, ops_people, programs, sandbox,
    simulate, simulate_disputes, transactions, webhooks,
};

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Username: API key id (`key_...`). Password: its secret (`sk_test_...` / `sk_live_...`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "network_auth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The card network's credential (`net_...` and its secret), from `cardplane network create-credential`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    crate::http::people::SESSION_COOKIE,
                    "Set by POST /ops/login. State-changing requests also need the X-CSRF-Token header.",
                ),
            )),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cardplane API",
        description = "Self-hostable card issuing. Conventions (errors, idempotency, pagination, versioning via the \
            `Cardplane-Version` header) are in docs/API.md.",
        license(name = "Apache-2.0")
    ),
    paths(
        cardholders::create_cardholder,
        cardholders::list_cardholders,
        cardholders::get_cardholder,
        cardholders::update_cardholder,
        cardholders::list_kyc_checks,
        cardholders::list_card_orders,
        cardholder_documents::upload_document,
        cardholder_documents::list_documents,
        programs::create_program,
        programs::list_programs,
        programs::get_program,
        programs::update_program,
        programs::get_program_funding,
        cards::create_card,
        cards::list_cards,
        cards::list_cardholder_cards,
        cards::get_card,
        cards::activate_card,
        cards::freeze_card,
        cards::unfreeze_card,
        cards::close_card,
        cards::replace_card,
        cards::reveal_card,
        cards::get_balance,
        cards::create_balance_adjustment,
        cards::list_ledger_entries,
        sandbox::advance_shipping,
        transactions::list_transactions,
        transactions::get_transaction,
        transactions::list_card_transactions,
        transactions::list_cardholder_transactions,
        controls::create_spend_control,
        controls::list_spend_controls,
        controls::get_spend_control,
        controls::disable_spend_control,
        controls::card_spend_controls,
        simulate::simulate_authorization,
        simulate::simulate_clearing,
        simulate::simulate_reversal,
        simulate::simulate_refund,
        network::network_authorization,
        network::network_reversal,
        network::network_clearing,
        network::network_refund,
        sandbox::fund_program,
        api_keys::list_api_keys,
        api_keys::create_api_key,
        api_keys::get_api_key,
        api_keys::revoke_api_key,
        events::list_events,
        events::get_event,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        webhooks::create_endpoint,
        webhooks::list_endpoints,
        webhooks::get_endpoint,
        webhooks::update_endpoint,
        webhooks::delete_endpoint,
        webhooks::rotate_secret,
        webhooks::list_deliveries,
        webhooks::replay,
        webhooks::redeliver_event,
        ops_auth::login,
        ops_auth::get_session,
        ops_auth::logout,
        ops_auth::begin_totp,
        ops_auth::confirm_totp,
        ops_auth::change_password,
        ops_people::list_operators,
        ops_people::create_operator,
        ops_people::update_operator,
        ops_people::reset_operator,
        ops_people::list_tenants,
        ops_people::get_tenant,
        ops_people::list_tenant_users,
        ops_people::create_tenant_user,
        ops_people::update_tenant_user,
        ops_people::list_tenant_api_keys,
        ops_people::revoke_tenant_api_key,
        ops_cases::list_cases,
        ops_cases::open_case,
        ops_cases::get_case,
        ops_cases::assign_case,
        ops_cases::add_note,
        ops_cases::upload_document,
        ops_cases::download_document,
        ops_cases::request_documents,
        ops_cases::decide_case,
        ops_chains::list_chains,
        ops_chains::put_chain,
        ops_audit::list_audit,
        ops_audit::export_audit,
        disputes::file_dispute,
        disputes::list_disputes,
        disputes::get_dispute,
        disputes::add_evidence,
        disputes::list_evidence,
        disputes::withdraw_dispute,
        disputes::get_policy,
        disputes::put_policy,
        simulate_disputes::simulate_network,
        simulate_disputes::simulate_representment,
        ops_disputes::list_disputes,
        ops_disputes::get_dispute,
        ops_disputes::assign_dispute,
        ops_disputes::add_note,
        ops_disputes::act_on_dispute,
        ops_disputes::dispute_report,
        authorization_rules::create_rule,
        authorization_rules::list_rules,
        authorization_rules::get_rule,
        authorization_rules::list_versions,
        authorization_rules::new_version,
        authorization_rules::promote_rule,
        authorization_rules::disable_rule,
        authorization_rules::start_backtest,
        authorization_rules::get_backtest,
        alerts::list_alerts,
        alerts::get_alert,
        ops_alerts::list_alerts,
        ops_alerts::assign_alert,
        ops_alerts::resolve_alert,
    ),
    modifiers(&BasicAuth),
    tags(
        (name = "Cardholders", description = "People who hold cards, with their KYC status"),
        (name = "Programs", description = "Card programs: network, BIN, currency, designs, funding, controls"),
        (name = "Cards", description = "Cards, their lifecycle, PAN reveal, balances and ledger entries"),
        (name = "Transactions", description = "Authorizations with their holds and decision traces, force posts, refunds"),
        (name = "Spend controls", description = "Amount and count limits per window"),
        (name = "Network", description = "The card network's interface (network credential)"),
        (name = "Sandbox", description = "Sandbox-only helpers and the simulator"),
        (name = "API keys", description = "Credentials of your tenant, per environment"),
        (name = "Events", description = "Every state change, in order"),
        (name = "Operations", description = "Health, readiness and metrics"),
        (name = "Disputes", description = "Chargebacks: the cardholder's claim, Regulation E provisional credit and deadlines, evidence, the network cycle (simulated in the sandbox)"),
        (name = "Authorization rules", description = "Your own decision rules (conditions, velocity limits, merchant locks) with immutable versions, shadow drafts, promotion and backtests; fraud alerts"),
        (name = "Webhooks", description = "Signed event delivery (Standard Webhooks), the delivery log, replay"),
        (name = "Operations console", description = "People (operators and tenant users), sign-in with TOTP, the compliance queue with approval chains and documents, the dispute queue and report, and the audit log. Cookie session + X-CSRF-Token."),
    )
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    crate::http::common_responses::add(&mut doc);
    doc
}

/// A request body built from the examples the document carries for an operation's request
/// schema: every property with an example, nested objects followed through their `$ref`s, and
/// required objects without one as `{}`. The portal's quickstart is made from these, so its code
/// samples and the reference cannot disagree. `None` when the operation takes no JSON body.
pub fn request_example(doc: &serde_json::Value, method: &str, path: &str) -> Option<serde_json::Value> {
    let schema = doc.pointer(&format!(
        "/paths/{}/{method}/requestBody/content/application~1json/schema",
        escape_pointer(path)
    ))?;
    example_of(doc, schema, 0)
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Schemas nest a few levels; the bound keeps a self-referencing schema from looping.
const EXAMPLE_DEPTH_MAX: usize = 8;

fn example_of(doc: &serde_json::Value, schema: &serde_json::Value, depth: usize) -> Option<serde_json::Value> {
    if depth > EXAMPLE_DEPTH_MAX {
        return None;
    }
    if let Some(example) = schema.get("example") {
        return Some(example.clone());
    }
    if let Some(target) = schema.get("$ref").and_then(|r| r.as_str()) {
        let resolved = doc.pointer(target.strip_prefix('#')?)?;
        return example_of(doc, resolved, depth + 1);
    }
    if let Some(options) = schema.get("oneOf").and_then(|o| o.as_array()) {
        return options.iter().find_map(|o| example_of(doc, o, depth + 1));
    }
    let properties = schema.get("properties")?.as_object()?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut body = serde_json::Map::new();
    for (name, property) in properties {
        match example_of(doc, property, depth + 1) {
            Some(value) => {
                body.insert(name.clone(), value);
            }
            None if required.contains(&name.as_str()) && property.get("type") == Some(&serde_json::json!("object")) => {
                body.insert(name.clone(), serde_json::json!({}));
            }
            None => {}
        }
    }
    (!body.is_empty()).then_some(serde_json::Value::Object(body))
}
