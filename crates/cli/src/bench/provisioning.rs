//! Bench provisioning: a tenant's program, its accounts and funding, and cards in bulk with
//! PANs the bench knows.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::bail;
use cardplane_api::state::AppState;
use cardplane_domain::card::{Card, CardState};
use cardplane_domain::cardholder::{Address, Cardholder, DateOfBirth, DocumentType, Email, Identity, PhoneNumber};
use cardplane_domain::ids::{CardId, CardholderId, ProgramId};
use cardplane_domain::kyc::{KycResult, KycState};
use cardplane_domain::ledger::{Account, AccountKind, Journal, JournalKind};
use cardplane_domain::money::{Currency, Money};
use cardplane_domain::pan::Pan;
use cardplane_domain::program::{FormFactor, FundingModel, Network, Program, ProgramStatus};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::Scope;
use cardplane_store::cardholders::CardholderWrite;
use cardplane_store::cards::{CardIssue, Posted};
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;

pub(super) const SEED: u64 = 42;

/// Each card is funded with 2,000 units; authorizations hold 1-100 units (USD, so x100 cents).
pub(super) const CARD_FUNDS_MINOR: i64 = 2_000 * 100;

pub(super) const AMOUNT_MIN_MINOR: i64 = 100;

pub(super) const AMOUNT_MAX_MINOR: i64 = 100 * 100;

pub(super) const PROVISION_BATCH: usize = 2_000;

pub(super) struct BenchCard {
    pub(super) pan: String,
    pub(super) expiration: String,
}

pub(super) fn usd() -> Currency {
    Currency::parse("USD").expect("USD is supported")
}

/// A tenant with a funded program and a cardholder to hang cards on.
pub(super) struct Books {
    pub(super) scope: Scope,
    pub(super) program: Program,
    pub(super) funding: Account,
    pub(super) holder: CardholderId,
    /// Cards issued so far: bulk PANs are numbered, so they never collide in the fresh BIN.
    pub(super) issued: AtomicU64,
}

pub(super) async fn books(state: &AppState) -> anyhow::Result<Books> {
    let tenant =
        cardplane_api::workflows::admin::create_tenant(state.tenants.as_ref(), &state.pepper, "Benchmark", &[], None)
            .await?;
    let scope = Scope {
        tenant_id: cardplane_domain::ids::TenantId::parse(&tenant.tenant_id)?,
        environment: Environment::Sandbox,
    };
    let now = Timestamp::now();
    // A fresh 6-digit BIN each run (so runs can share a database), retried if it overlaps.
    for _ in 0..20 {
        let bin = format!("4{:05}", rand::rng().random_range(0..100_000));
        match try_program(state, &scope, bin, now).await? {
            Some((program, funding)) => return finish_books(state, scope, program, funding, now).await,
            None => continue,
        }
    }
    bail!("no free BIN for the benchmark program")
}

pub(super) async fn try_program(
    state: &AppState,
    scope: &Scope,
    bin: String,
    now: Timestamp,
) -> anyhow::Result<Option<(Program, Account)>> {
    let program = Program {
        id: ProgramId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: Environment::Sandbox,
        program_id: "BENCH".into(),
        name: "Benchmark".into(),
        network: Network::Visa,
        bin,
        currency: usd(),
        card_lifetime_years: 3,
        form_factors: vec![FormFactor::Virtual],
        design_keys: vec!["plain".into()],
        funding_model: FundingModel::StoredBalance,
        spend_controls: Vec::new(),
        minimum_cardholder_age: 18,
        kyc_required: true,
        merchant_rules: Default::default(),
        risk_alert_threshold: 800,
        custodian: None,
        status: ProgramStatus::Active,
        created_at: now,
        updated_at: now,
    };
    let kinds = [
        AccountKind::ProgramFunding,
        AccountKind::ProgramSettlement,
        AccountKind::ProgramFees,
        AccountKind::ProgramExternal,
        AccountKind::ProgramLosses,
    ];
    let accounts: Vec<Account> = kinds
        .iter()
        .map(|k| Account::open(&scope.tenant_id, scope.environment, &program.id, *k, usd(), now))
        .collect();
    match state
        .programs
        .insert_program(scope, &program, &accounts, &[], None, now)
        .await
    {
        Ok(()) => Ok(Some((program, accounts[0].clone()))),
        Err(cardplane_store::programs::ProgramWriteError::BinOverlap) => Ok(None),
        Err(e) => bail!("creating the benchmark program: {e}"),
    }
}

pub(super) async fn finish_books(
    state: &AppState,
    scope: Scope,
    program: Program,
    funding: Account,
    now: Timestamp,
) -> anyhow::Result<Books> {
    let holder = Cardholder {
        id: CardholderId::generate(),
        tenant_id: scope.tenant_id.clone(),
        environment: Environment::Sandbox,
        custodian_uid: None,
        email: Email::parse(Some("bench@example.com"))?,
        phone: PhoneNumber::parse(Some("+16505550100"))?,
        identity: Identity {
            first_name: "Bench".into(),
            last_name: "Mark".into(),
            date_of_birth: DateOfBirth::from_date(time::macros::date!(1990 - 01 - 01)),
            address: Address {
                street_one: "1 Main St".into(),
                street_two: None,
                locality: "Austin".into(),
                region: "TX".into(),
                postal_code: "73301".into(),
                country: "USA".into(),
            },
        },
        document_type: DocumentType::Ssn,
        document_last4: "0000".into(),
        document_sealed: state.vault.seal(b"123450000", "benchmark"),
        kyc: KycState::not_checked().record(KycResult::passed(), now),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let write = CardholderWrite {
        cardholder: &holder,
        kyc_check: None,
        card_orders: &[],
        card_issues: &[],
        events: &[],
        response: None,
        review: None,
    };
    state
        .cardholders
        .insert_cardholder(&scope, write, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Books {
        scope,
        program,
        funding,
        holder: holder.id,
        issued: AtomicU64::new(0),
    })
}

/// Funds the program and bulk-issues `count` more funded cards, returning their PANs.
// Long: provisioning in order (fund the program, issue in bulk, seal PANs), one step each.
pub(super) async fn provision(state: &AppState, books: &Books, count: usize) -> anyhow::Result<Vec<BenchCard>> {
    let store = state.sql_store();
    let external = state
        .programs
        .program_account(&books.scope, &books.program.id, AccountKind::ProgramExternal)
        .await?;
    let total = CARD_FUNDS_MINOR * i64::try_from(count)?;
    let now = Timestamp::now();
    let journal = Journal::transfer(
        &books.scope.tenant_id,
        Environment::Sandbox,
        JournalKind::ProgramFunding,
        "Benchmark funding".into(),
        &external.id,
        &books.funding.id,
        Money::new(total, usd()),
        now,
    )?;
    state
        .cards
        .post_adjustment(&books.scope, &journal, None, &|_| Posted::default(), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = ProgressBar::new(u64::try_from(count)?);
    bar.set_style(
        ProgressStyle::with_template("provisioning {bar:40} {pos}/{len} cards ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut cards = Vec::with_capacity(count);
    let (exp_month, exp_year) = books.program.expiry_for(now);
    while cards.len() < count {
        let n = PROVISION_BATCH.min(count - cards.len());
        let mut batch = Vec::with_capacity(n);
        let mut pans = Vec::with_capacity(n);
        for _ in 0..n {
            let pan = numbered_pan(&books.program.bin, books.issued.fetch_add(1, Ordering::Relaxed));
            let account = Account::open(
                &books.scope.tenant_id,
                Environment::Sandbox,
                &books.program.id,
                AccountKind::CardBalance,
                usd(),
                now,
            );
            let id = CardId::generate();
            let card = Card {
                id: id.clone(),
                tenant_id: books.scope.tenant_id.clone(),
                environment: Environment::Sandbox,
                cardholder_id: books.holder.clone(),
                program: books.program.id.clone(),
                program_ref: books.program.program_id.clone(),
                network: Network::Visa,
                currency: usd(),
                account_id: account.id.clone(),
                form_factor: FormFactor::Virtual,
                design_key: "plain".into(),
                state: CardState::Active,
                shipping_status: None,
                bin: books.program.bin.clone(),
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
            pans.push(BenchCard {
                pan: pan.expose().to_owned(),
                expiration: card.expiration(),
            });
            batch.push(CardIssue {
                card,
                new_account: Some(account),
                initial_load: None,
            });
        }
        match store
            .provision_funded_cards(&books.scope, &books.funding, &batch, CARD_FUNDS_MINOR)
            .await
        {
            Ok(()) => {
                cards.extend(pans);
                bar.inc(u64::try_from(n)?);
            }
            // A PAN collided with an existing one: draw the batch again.
            Err(cardplane_store::ledger::PostError::Store(e)) if e.is_conflict_on("cards_pan_hash", "pan_hash") => {
                continue;
            }
            Err(e) => bail!("provisioning cards: {e}"),
        }
    }
    bar.finish_and_clear();
    Ok(cards)
}

/// BIN + the card's number + Luhn digit: unique by construction within the benchmark's BIN.
pub(super) fn numbered_pan(bin: &str, n: u64) -> Pan {
    let payload = format!(
        "{bin}{n:0width$}",
        width = cardplane_domain::pan::PAN_LEN - 1 - bin.len()
    );
    let check = cardplane_domain::pan::luhn_check_digit(&payload);
    Pan::parse(&format!("{payload}{check}")).expect("a numbered PAN is valid")
}

/// `n` rules for the benchmark program, none of which ever declines its traffic (a store in
/// Austin, 5411, amounts far below the limits) but all of which do their full work: half are
/// conditional actions over several attributes, half velocity limits, each with its own counter
/// (distinct windows and filters), so every authorization reads and moves that many counters.
pub(super) fn bench_rules(n: usize) -> Vec<serde_json::Value> {
    let windows = [60, 600, 3_600, 21_600, 86_400, 172_800, 604_800, 1_209_600, 2_678_400];
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                serde_json::json!({"name": format!("bench conditional {i}"), "priority": i, "type": "conditional_action",
                    "parameters": {"match": "all", "conditions": [
                        {"attribute": "amount", "operation": "greater_than", "value": 1_000_000_000 + i},
                        {"attribute": "merchant_country", "operation": "is_not_one_of", "value": ["USA", "CAN"]},
                        {"attribute": "merchant_name", "operation": "matches", "value": "^(casino|crypto)"},
                        {"attribute": "risk_score", "operation": "greater_than", "value": 900}]}})
            } else {
                let k = i / 2;
                let window = windows[k % windows.len()];
                let mut filters = serde_json::json!({});
                if k >= windows.len() {
                    filters = serde_json::json!({"mccs": ["5411", "5812", format!("{:04}", 7000 + k)]});
                }
                serde_json::json!({"name": format!("bench velocity {i}"), "priority": i, "type": "velocity_limit",
                    "parameters": {"scope": "card", "window": "trailing", "window_secs": window,
                        "limit_count": 1_000_000_000, "limit_amount": 1_000_000_000_000i64, "filters": filters}})
            }
        })
        .collect()
}
