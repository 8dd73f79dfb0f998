//! The quickstart: the README's first steps as curl, Python (requests) and JavaScript (fetch),
//! with this server's address, the developer's newest key and their sample card filled in. The
//! request bodies come from the examples in the OpenAPI document (`openapi::request_example`),
//! so the samples and the API reference never disagree.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{Path, State};
use cardplane_domain::Environment;
use cardplane_domain::page::PageRequest;
use cardplane_domain::people::Action;
use cardplane_store::cards::CardSearch;
use serde_json::{Value, json};

use super::{Workspace, chrome, sample};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageError, PageResult, page};

/// One call of the walkthrough.
struct Step {
    title: &'static str,
    why: &'static str,
    method: &'static str,
    path: &'static str,
    sandbox_only: bool,
}

const STEPS: &[Step] = &[
    Step {
        title: "List your programs",
        why: "A program is a card product: network, BIN range, currency, spend controls. Your sandbox starts with a funded one.",
        method: "get",
        path: "/programs",
        sandbox_only: false,
    },
    Step {
        title: "Onboard a cardholder with a card",
        why: "KYC runs at once (in the sandbox an SSN ending in 0000 passes) and the card is issued and loaded from the program's funding account.",
        method: "post",
        path: "/cardholders",
        sandbox_only: false,
    },
    Step {
        title: "Simulate a card authorization",
        why: "The simulator plays the card network: the authorization goes through the same engine, controls and webhooks as real traffic.",
        method: "post",
        path: "/simulate/authorizations",
        sandbox_only: true,
    },
    Step {
        title: "See the transaction",
        why: "Every authorization, clearing, reversal and refund, newest first.",
        method: "get",
        path: "/transactions",
        sandbox_only: false,
    },
];

pub struct Snippet {
    pub id: String,
    pub title: &'static str,
    pub why: &'static str,
    pub call: String,
    pub curl: String,
    pub python: String,
    pub javascript: String,
}

#[derive(Template)]
#[template(path = "portal/quickstart.html")]
struct QuickstartPage {
    chrome: Chrome,
    env: &'static str,
    base_url: String,
    key_id: Option<String>,
    snippets: Vec<Snippet>,
}

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(crate::openapi::document()).unwrap_or_default())
}

/// What is filled in: the developer's own program and card where the examples name others.
struct Fill {
    program_id: String,
    card_id: Option<String>,
}

fn body_for(step: &Step, fill: &Fill) -> Option<Value> {
    let mut body = crate::openapi::request_example(document(), step.method, step.path)?;
    if let Some(card) = body.pointer_mut("/card/program_id") {
        *card = json!(fill.program_id);
    }
    if let Some(uid) = body.pointer_mut("/custodian_uid") {
        *uid = json!("quickstart-cardholder-1");
    }
    if let (Some(card), Some(id)) = (body.pointer_mut("/card_id"), &fill.card_id) {
        *card = json!(id);
    }
    Some(body)
}

/// A shell single-quoted string.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn curl(base: &str, step: &Step, body: Option<&Value>) -> String {
    let url = format!("{base}{}", step.path);
    match body {
        None => format!("curl -s -u \"$CARDPLANE_KEY\" {url}"),
        Some(b) => format!(
            "curl -s -u \"$CARDPLANE_KEY\" {url} \\\n  -H 'Content-Type: application/json' \\\n  -d {}",
            shell_quote(&serde_json::to_string_pretty(b).unwrap_or_default())
        ),
    }
}

/// A JSON value as a Python literal.
fn python_literal(value: &Value, indent: usize) -> String {
    let pad = "    ".repeat(indent + 1);
    let close = "    ".repeat(indent);
    match value {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|v| format!("{pad}{}", python_literal(v, indent + 1)))
                .collect();
            format!("[\n{},\n{close}]", inner.join(",\n"))
        }
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{pad}{}: {}",
                        serde_json::to_string(k).unwrap_or_default(),
                        python_literal(v, indent + 1)
                    )
                })
                .collect();
            format!("{{\n{},\n{close}}}", inner.join(",\n"))
        }
    }
}

fn python(base: &str, step: &Step, body: Option<&Value>) -> String {
    let head = format!(
        "import os\nimport requests\n\nBASE = \"{base}\"\nAUTH = tuple(os.environ[\"CARDPLANE_KEY\"].split(\":\", 1))\n\n"
    );
    let call = match body {
        None => format!("r = requests.{}(f\"{{BASE}}{}\", auth=AUTH)", step.method, step.path),
        Some(b) => format!(
            "r = requests.{}(f\"{{BASE}}{}\", auth=AUTH, json={})",
            step.method,
            step.path,
            python_literal(b, 0)
        ),
    };
    format!("{head}{call}\nprint(r.status_code, r.json())")
}

fn javascript(base: &str, step: &Step, body: Option<&Value>) -> String {
    let head = format!("const BASE = \"{base}\";\nconst AUTH = \"Basic \" + btoa(process.env.CARDPLANE_KEY);\n\n");
    let method = step.method.to_uppercase();
    let options = match body {
        None => format!("{{ method: \"{method}\", headers: {{ Authorization: AUTH }} }}"),
        Some(b) => format!(
            "{{\n  method: \"{method}\",\n  headers: {{ Authorization: AUTH, \"Content-Type\": \"application/json\" }},\n  body: JSON.stringify({}),\n}}",
            serde_json::to_string_pretty(b)
                .unwrap_or_default()
                .replace('\n', "\n  ")
        ),
    };
    format!(
        "{head}const r = await fetch(`${{BASE}}{}`, {options});\nconsole.log(r.status, await r.json());",
        step.path
    )
}

fn snippets(base: &str, env: Environment, fill: &Fill) -> Vec<Snippet> {
    STEPS
        .iter()
        .filter(|s| env == Environment::Sandbox || !s.sandbox_only)
        .enumerate()
        .map(|(i, step)| {
            let body = body_for(step, fill);
            Snippet {
                id: format!("step-{}", i + 1),
                title: step.title,
                why: step.why,
                call: format!("{} {}", step.method.to_uppercase(), step.path),
                curl: curl(base, step, body.as_ref()),
                python: python(base, step, body.as_ref()),
                javascript: javascript(base, step, body.as_ref()),
            }
        })
        .collect()
}

async fn fill(state: &AppState, ws: &Workspace) -> Result<Fill, PageError> {
    let search = CardSearch {
        tenant_id: Some(ws.tenant_id.to_string()),
        environment: Some(ws.env().to_owned()),
        state: Some("ACTIVE".to_owned()),
        ..CardSearch::default()
    };
    let card = state.cards.search_cards(&search, 1).await?.into_iter().next();
    let program_id = match &card {
        Some(c) => c.program_ref.clone(),
        None => sample::PROGRAM_ID.to_owned(),
    };
    Ok(Fill {
        program_id,
        card_id: card.map(|c| c.id.to_string()),
    })
}

/// Where the developer reaches this server: the configured public address, else the host their
/// browser used (shown only to them).
fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if state.config.portal.public_url.is_some() {
        return state.config.public_url();
    }
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c)))
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| state.config.public_url())
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(env): Path<String>,
    headers: axum::http::HeaderMap,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewApiKeys)?;
    let keys = state
        .api_keys
        .list_api_keys(&ws.scope(), &PageRequest::newest(100))
        .await?;
    let key_id = keys.items.iter().find(|k| k.is_active()).map(|k| k.id.to_string());
    let base_url = base_url(&state, &headers);
    let fill = fill(&state, &ws).await?;
    page(&QuickstartPage {
        chrome: chrome(&staff, "quickstart", Some(&ws)),
        env: ws.env(),
        snippets: snippets(&base_url, ws.environment, &fill),
        base_url,
        key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_an_operation_of_the_document_and_bodies_come_from_its_examples() {
        for step in STEPS {
            assert!(
                document()
                    .pointer(&format!("/paths/{}/{}", step.path.replace('/', "~1"), step.method))
                    .is_some(),
                "{} {}",
                step.method,
                step.path
            );
        }
        let fill = Fill {
            program_id: "sample_gpr".into(),
            card_id: Some("card_x".into()),
        };
        let cardholder = body_for(&STEPS[1], &fill).unwrap();
        assert_eq!(cardholder["first_name"], "Josh");
        assert_eq!(cardholder["document"]["value"], "490940000");
        assert_eq!(cardholder["card"]["program_id"], "sample_gpr");
        assert_eq!(cardholder["card"]["additional_fields"], json!({}));
        let authorization = body_for(&STEPS[2], &fill).unwrap();
        assert_eq!(authorization["card_id"], "card_x");
        assert_eq!(authorization["amount"], 1000);
        assert!(body_for(&STEPS[0], &fill).is_none(), "a GET has no body");
    }

    #[test]
    fn python_literals_are_python() {
        let v = json!({"a": true, "b": null, "c": [1, "x"], "d": {}});
        assert_eq!(
            python_literal(&v, 0),
            "{\n    \"a\": True,\n    \"b\": None,\n    \"c\": [\n        1,\n        \"x\",\n    ],\n    \"d\": {},\n}"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
