//! Secrets never leak, at scale: 10,000 cards are issued (bulk, straight into the store, as the
//! benchmark provisions them) plus some through the API, a bank-test-like stream of
//! authorizations, clearings, reversals, refunds, adjustments and reveals runs over HTTP with the
//! server logging at TRACE, and then a full database dump (pg_dump on PostgreSQL; the database
//! file and its WAL on SQLite) and every captured log line are scanned: no issued PAN (in any
//! digit run), no CVV next to "cvv", no API key, network credential or webhook secret, no KEK, no
//! full document number.

use std::collections::HashSet;
use std::sync::Arc;

use cardplane_api::workflows::admin::create_network_credential;
use cardplane_domain::api_key::Permission;
use cardplane_domain::card::{Card, CardState};
use cardplane_domain::ids::{CardId, CardholderId, TenantId};
use cardplane_domain::ledger::{Account, AccountKind};
use cardplane_domain::pan::Pan;
use cardplane_domain::program::{FormFactor, Network};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::Scope;
use cardplane_store::cards::CardIssue;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::net::NetMessage;
use crate::support::{Creds, TestApp, captured_logs, seed_cardholder};

const BULK_CARDS: usize = 10_000;
const BATCH: usize = 2_000;
const CARD_FUNDS: i64 = 50_000;
const TRAFFIC_CARDS: usize = 120;
const REVEALED: usize = 12;

struct Known {
    pans: HashSet<String>,
    /// (PAN, CVV) of revealed cards.
    cvvs: Vec<(String, String)>,
    secrets: Vec<(&'static str, String)>,
    documents: Vec<String>,
}

/// Issues `BULK_CARDS` funded cards for `holder` with random PANs in the program's BIN.
async fn provision(app: &TestApp, scope: &Scope, holder: &CardholderId, rng: &mut StdRng) -> Vec<(String, String)> {
    let state = &app.state;
    let program = state.programs.get_program_by_ref(scope, "GPR").await.unwrap();
    let funding = state
        .programs
        .program_account(scope, &program.id, AccountKind::ProgramFunding)
        .await
        .unwrap();
    let store = state.sql_store();
    let now = Timestamp::now();
    let (exp_month, exp_year) = program.expiry_for(now);
    let mut cards = Vec::with_capacity(BULK_CARDS);
    while cards.len() < BULK_CARDS {
        let mut batch = Vec::with_capacity(BATCH);
        let mut pans = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min(BULK_CARDS - cards.len()) {
            let pan = Pan::generate(&program.bin, rng);
            let account = Account::open(
                &scope.tenant_id,
                Environment::Sandbox,
                &program.id,
                AccountKind::CardBalance,
                program.currency,
                now,
            );
            let id = CardId::generate();
            let card = Card {
                id: id.clone(),
                tenant_id: scope.tenant_id.clone(),
                environment: Environment::Sandbox,
                cardholder_id: holder.clone(),
                program: program.id.clone(),
                program_ref: program.program_id.clone(),
                network: Network::Visa,
                currency: program.currency,
                account_id: account.id.clone(),
                form_factor: FormFactor::Virtual,
                design_key: "blue".into(),
                state: CardState::Active,
                shipping_status: None,
                bin: program.bin.clone(),
                last4: pan.last4().into(),
                exp_month,
                exp_year,
                pan_sealed: state.vault.seal(pan.expose().as_bytes(), &Card::vault_context(&id)),
                pan_hash: pan.lookup_hash(&state.card_keys.pan_lookup),
                replaces: None,
                replacement_reason: None,
                replaced_by: None,
                created_at: now,
                updated_at: now,
                version: 1,
            };
            pans.push((pan.expose().to_owned(), card.expiration()));
            batch.push(CardIssue {
                card,
                new_account: Some(account),
                initial_load: None,
            });
        }
        store
            .provision_funded_cards(scope, &funding, &batch, CARD_FUNDS)
            .await
            .expect("bulk issue (a random PAN collision would be astronomically unlikely)");
        cards.extend(pans);
    }
    cards
}

/// Where an issued PAN appears inside any digit run of `text`.
fn pans_in(text: &[u8], pans: &HashSet<String>) -> Vec<String> {
    let lengths: HashSet<usize> = pans.iter().map(String::len).collect();
    let mut found = Vec::new();
    for run in text.split(|b| !b.is_ascii_digit()).filter(|r| r.len() >= 12) {
        for len in &lengths {
            for window in run.windows(*len) {
                let candidate = String::from_utf8_lossy(window);
                if pans.contains(candidate.as_ref()) {
                    found.push(candidate.into_owned());
                }
            }
        }
    }
    found
}

/// A CVV within a few non-alphanumeric characters after "cvv" (any case).
fn cvv_next_to_label(text: &str, cvv: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("cvv").any(|(i, _)| {
        let rest = &lower[i + 3..];
        let gap = rest.bytes().take_while(|b| !b.is_ascii_alphanumeric()).count();
        gap <= 8 && rest[gap..].starts_with(cvv)
    })
}

fn scan(what: &str, text: &[u8], known: &Known) {
    let found = pans_in(text, &known.pans);
    assert!(
        found.is_empty(),
        "{what}: {} issued PAN(s), e.g. {}",
        found.len(),
        &found[0][..6]
    );
    let text = String::from_utf8_lossy(text);
    for (_, cvv) in &known.cvvs {
        assert!(!cvv_next_to_label(&text, cvv), "{what}: a CVV next to its label");
    }
    for (name, secret) in &known.secrets {
        assert!(!text.contains(secret.as_str()), "{what}: the {name}");
    }
    for doc in &known.documents {
        let dashed = format!("{}-{}-{}", &doc[..3], &doc[3..5], &doc[5..]);
        assert!(
            !text.contains(doc.as_str()) && !text.contains(&dashed),
            "{what}: a full document number"
        );
    }
}

/// The database at rest: pg_dump of the whole database, or the SQLite file and its WAL.
async fn dump(app: &TestApp) -> Vec<u8> {
    match app.db.sqlite_path() {
        Some(path) => {
            let mut bytes = std::fs::read(&path).unwrap();
            let wal = path.with_extension("db-wal");
            bytes.extend(std::fs::read(wal).unwrap_or_default());
            bytes
        }
        None => {
            let url = app.db.url.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("pg_dump")
                    .args(["--no-owner", "--dbname", &url])
                    .output()
                    .expect("pg_dump runs (PostgreSQL client tools installed)")
            })
            .await
            .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        }
    }
}

async fn post(app: &TestApp, creds: &Creds, path: &str, body: Value) -> Value {
    let (status, v) = app.post(creds, path, &body).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    v
}

async fn no_secret_reaches_logs_or_the_database_at_scale(app: TestApp) {
    let app = Arc::new(app);
    let mut rng = StdRng::seed_from_u64(0x5ec2e7);
    let tenant = app.tenant_with(&[Permission::Reveal]).await;
    let t = tenant.sandbox.clone();
    let scope = Scope {
        tenant_id: TenantId::parse(&tenant.id).unwrap(),
        environment: Environment::Sandbox,
    };
    app.program(
        &t,
        "GPR",
        "411111",
        CARD_FUNDS * i64::try_from(BULK_CARDS).unwrap() + 10_000_000,
    )
    .await;
    let mut known = Known {
        pans: HashSet::new(),
        cvvs: Vec::new(),
        secrets: vec![
            ("sandbox key secret", tenant.sandbox.secret.clone()),
            ("live key secret", tenant.live.secret.clone()),
            ("KEK", app.state.config.kek.clone().unwrap()),
        ],
        documents: Vec::new(),
    };

    // Cardholders with their own document numbers, through the API (with and without card).
    let mut holders = Vec::new();
    for i in 0..20 {
        // Area 100-599 (valid), last two digits 14-93 (the sandbox passes those).
        let ssn = format!(
            "{}",
            rng.random_range(100_000_000..599_999_900u64) / 100 * 100 + 14 + i % 80
        );
        let mut body = seed_cardholder(&ssn, None);
        if i % 4 == 0 {
            body["card"] = json!({"program_id": "GPR", "initial_load": {"currency": "USD", "amount": 5_000}});
        }
        let holder = post(&app, &t, "/cardholders", body).await;
        holders.push(holder["cardholder"]["id"].as_str().unwrap().to_owned());
        known.documents.push(ssn);
    }
    let bulk = provision(&app, &scope, &CardholderId::parse(&holders[0]).unwrap(), &mut rng).await;
    known.pans.extend(bulk.iter().map(|(pan, _)| pan.clone()));

    // Secrets shown once: an API key (its answer stored for idempotent replay), a network
    // credential, a webhook endpoint's signing secret.
    let (status, key) = app
        .post_idem(
            &t,
            "/api_keys",
            "scale-key-1",
            &json!({"name": "backend", "permissions": ["reveal"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{key}");
    known
        .secrets
        .push(("created API key secret", key["secret"].as_str().unwrap().to_owned()));
    let net = create_network_credential(app.state.network.as_ref(), &app.state.pepper, Environment::Sandbox, "n")
        .await
        .unwrap();
    known.secrets.push(("network credential secret", net.secret.clone()));
    let net = Creds {
        id: net.id,
        secret: net.secret,
    };
    let endpoint = post(
        &app,
        &t,
        "/webhook_endpoints",
        json!({"url": "http://127.0.0.1:9/hooks"}),
    )
    .await;
    known
        .secrets
        .push(("webhook secret", endpoint["secret"].as_str().unwrap().to_owned()));

    // Cards through the API, and reveals (learning CVVs) of those and of bulk cards.
    let mut api_cards = Vec::new();
    for holder in &holders[1..6] {
        let card = post(
            &app,
            &t,
            &format!("/cardholders/{holder}/cards"),
            json!({"program_id": "GPR",
            "initial_load": {"currency": "USD", "amount": 20_000}}),
        )
        .await;
        api_cards.push(card["card"]["id"].as_str().unwrap().to_owned());
    }
    let (_, list) = app.get(&t, "/cards?limit=50").await;
    let listed: Vec<String> = list["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["card"]["id"].as_str().unwrap().to_owned())
        .collect();
    for id in api_cards.iter().chain(listed.iter().take(REVEALED)) {
        let revealed = app.reveal(&t, id).await;
        known.cvvs.push((revealed.pan.clone(), revealed.cvv));
        known.pans.insert(revealed.pan);
    }

    // Bank-like traffic from four clients over a sample of the bulk cards.
    let sample: Vec<(String, String)> = bulk.iter().step_by(BULK_CARDS / TRAFFIC_CARDS).cloned().collect();
    let mut clients = Vec::new();
    for (c, chunk) in sample.chunks(TRAFFIC_CARDS / 4).enumerate() {
        let (app, net, chunk) = (app.clone(), net.clone(), chunk.to_vec());
        clients.push(tokio::spawn(async move {
            for (i, card) in chunk.iter().enumerate() {
                let ntid = format!("s{c}_{i}");
                let auth = NetMessage::authorization(card, 1_000 + i64::try_from(i).unwrap()).id(&ntid);
                let a = post(&app, &net, auth.path(), auth.into_json()).await;
                assert_eq!(a["decision"], "approved", "{a}");
                let follow = match i % 3 {
                    0 => NetMessage::clearing(&ntid, 900).id(format!("{ntid}_c")),
                    1 => NetMessage::reversal(&ntid).id(format!("{ntid}_r")),
                    _ => NetMessage::refund(card, 300).id(format!("{ntid}_f")),
                };
                post(&app, &net, follow.path(), follow.into_json()).await;
                // A wrong expiry is declined; the PAN in that message must not be logged either.
                let wrong_expiry = NetMessage::authorization(card, 10)
                    .id(format!("{ntid}_x"))
                    .set("expiration", "2020-01");
                let declined = post(&app, &net, wrong_expiry.path(), wrong_expiry.into_json()).await;
                assert_eq!(declined["decision"], "declined", "{declined}");
            }
        }));
    }
    for id in &api_cards {
        post(
            &app,
            &t,
            "/simulate/authorizations",
            json!({"card_id": id, "amount": 700}),
        )
        .await;
        post(
            &app,
            &t,
            &format!("/cards/{id}/balance_adjustments"),
            json!({"type": "debit", "amount": 100, "currency": "USD"}),
        )
        .await;
    }
    for c in clients {
        c.await.unwrap();
    }
    // A PAN that was never issued, sent by the network: not logged either.
    let stranger = Pan::generate("411111", &mut rng);
    let unknown_card = (stranger.expose(), "2030-01");
    let stranger_auth = NetMessage::authorization(&unknown_card, 10).id("stranger");
    let answer = post(&app, &net, stranger_auth.path(), stranger_auth.into_json()).await;
    assert_eq!(answer["decision"], "declined", "{answer}");
    known.pans.insert(stranger.expose().to_owned());

    let report = app.state.ledger.verify_ledger().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    let logs = captured_logs();
    assert!(
        logs.contains(&tenant.id) && logs.contains("\"level\":\"TRACE\""),
        "the logs of this run were captured at TRACE"
    );
    scan("logs", logs.as_bytes(), &known);
    let at_rest = dump(&app).await;
    let some_card = CardId::parse(&listed[0]).unwrap();
    assert!(
        String::from_utf8_lossy(&at_rest).contains(some_card.as_str()),
        "the dump holds the cards"
    );
    scan("database dump", &at_rest, &known);
}

app_tests!(no_secret_reaches_logs_or_the_database_at_scale);
