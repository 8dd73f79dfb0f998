//! One batch of network messages, applied in one database transaction: lock and read everything
//! the batch touches with a few set-based statements (`store::network_batch` gives the order),
//! book each message in arrival order against the in-memory books (`domain::network`), then
//! write everything with a few multi-row statements and commit. Nothing is answered before the
//! commit.
//!
//! Longer than the ~600 lines a file should be: reading, planning, booking and writing a batch
//! share one context and one set of invariants (nothing answered before the commit, arrival order
//! kept), and reviewing them is easiest in one file.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cardplane_domain::alert::Alert;
use cardplane_domain::card::Card;
use cardplane_domain::card_controls::{AppliedControl, TrackedUsage, applicable};
use cardplane_domain::controls::ControlScope;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{AccountId, CardId, TransactionId};
use cardplane_domain::ledger::Account;
use cardplane_domain::network::{
    self, Booked, Books, CardContext, CardRules, CustodianOutcome, MessageKind, NetworkAnswer, NetworkMessage,
};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::network_batch::{BatchWrites, LockedCard, NetworkBatch, NetworkBatchStore, RecordedMessage};

use super::programs::{KnownProgram, Programs};
use super::rules::{RuleSets, card_counters, read_for_screening};
use crate::views::{AlertView, NetworkAnswerView, TransactionView};

/// One thing a batch does.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every item is a message; boxing it costs an allocation each"
)]
pub(crate) enum Item {
    Message {
        environment: Environment,
        message: NetworkMessage,
        /// The keyed hash of the message's PAN, if it has one.
        pan_hash: Option<String>,
        /// Custodian-authority programs: what the custodian said, asked before the batch.
        custodian: Option<CustodianOutcome>,
        received_at: Timestamp,
    },
    /// Release this hold if it is still pending and due at `at`.
    Expire {
        transaction: TransactionId,
        card: CardId,
        at: Timestamp,
    },
}

impl Item {
    /// Which writer takes the item: one card's items always go to the same one.
    pub fn partition(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match self {
            Item::Message { message, pan_hash, .. } => match (pan_hash, message.original()) {
                (Some(hash), _) => hash.hash(&mut h),
                (None, Some(original)) => original.hash(&mut h),
                (None, None) => message.network_transaction_id().hash(&mut h),
            },
            Item::Expire { card, .. } => card.hash(&mut h),
        }
        h.finish()
    }

    fn message_key(&self) -> Option<(Environment, &str)> {
        match self {
            Item::Message {
                environment, message, ..
            } => Some((*environment, message.network_transaction_id())),
            Item::Expire { .. } => None,
        }
    }
}

/// What an item came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The network answer (the stored one, for a repeat).
    Answer { body: String, replayed: bool },
    /// Whether an expiry released a hold.
    Expired(bool),
}

/// A committed batch: an outcome per item, and what it cost.
pub(crate) struct Applied {
    pub outcomes: Vec<Outcome>,
    pub statements: u64,
}

enum Attempt {
    Committed(Applied),
    /// Another process answered these messages first while this batch ran: redo it.
    Raced,
}

pub(crate) struct Batcher {
    pub store: Arc<dyn NetworkBatchStore>,
    pub programs: Arc<Programs>,
    pub rules: Arc<RuleSets>,
}

/// Redo limit when other processes keep answering the same messages first (each redo finds
/// the answers they committed, so one is nearly always enough).
const RACED_REDOS_MAX: usize = 3;

impl Batcher {
    /// Applies `items` as one database transaction.
    pub async fn apply(&self, items: &[Item]) -> Result<Applied, StoreError> {
        for _ in 0..=RACED_REDOS_MAX {
            let mut batch = self.store.begin_batch().await?;
            match self.attempt(&mut batch, items).await? {
                Attempt::Committed(applied) => {
                    let statements = batch.commit().await?;
                    return Ok(Applied { statements, ..applied });
                }
                Attempt::Raced => {
                    tracing::debug!("a batch raced another process for a network message; redoing it");
                    continue;
                }
            }
        }
        Err(StoreError::corrupt("network messages kept racing another process"))
    }

    async fn attempt(&self, batch: &mut NetworkBatch, items: &[Item]) -> Result<Attempt, StoreError> {
        let plan = Plan::new(items);
        let locked = batch
            .lock_cards(
                &Plan::strs(&plan.pan_hashes),
                &Plan::strs(&plan.card_ids),
                &plan.original_keys(),
            )
            .await?;
        let keys: Vec<(Environment, &str)> = plan.first_of.keys().map(|(e, n)| (*e, n.as_str())).collect();
        let replays: HashMap<(Environment, String), String> = batch
            .stored_answers(&keys)
            .await?
            .into_iter()
            .map(|(e, n, body)| ((e, n), body))
            .collect();
        let cards = Cards::new(locked);
        let mut programs = HashMap::new();
        let mut program_rules = HashMap::new();
        for (id, version, rules_version) in cards.program_versions() {
            let known = self.programs.current(batch, &id, version).await?;
            program_rules.insert(
                id.clone(),
                self.rules.current(batch, &known.program, rules_version).await?,
            );
            programs.insert(id.clone(), known);
        }
        let card_rules: HashMap<CardId, CardRules> = cards
            .locked
            .iter()
            .filter_map(|l| Some((l.card.id.clone(), program_rules.get(&l.card.program)?.for_card(&l.card))))
            .collect();
        let transactions = batch
            .transactions(&plan.original_keys(), &Plan::strs(&plan.expiring))
            .await?;
        let now = Timestamp::now();
        let authorizing = plan.authorizing(items, &replays, &cards);
        let controls = self.controls(batch, &authorizing, &programs, now).await?;
        let screened: Vec<(&Card, &CardRules)> = authorizing
            .iter()
            .filter_map(|c| Some((*c, card_rules.get(&c.id)?)))
            .collect();
        let screening = read_for_screening(batch, &screened, now).await?;
        let program_accounts = self
            .lock_program_accounts(batch, items, &replays, &cards, &programs, &transactions)
            .await?;
        let mut accounts: Vec<Account> = cards.accounts();
        accounts.extend(program_accounts);
        let counters = card_rules
            .iter()
            .map(|(id, r)| (id.clone(), card_counters(r)))
            .collect();
        let books = Books::new(accounts, transactions, controls.usages).with_screening(
            screening.velocity,
            counters,
            screening.profiles,
        );
        let context = Context {
            cards: &cards,
            programs: &programs,
            controls: &controls.per_card,
            rules: &card_rules,
            now,
        };
        let booked = std::panic::catch_unwind(AssertUnwindSafe(|| book_all(items, &plan, &replays, &context, books)))
            .map_err(|_| StoreError::corrupt("booking a batch panicked"))?;
        let writes = BatchWrites {
            messages: booked.recorded(items),
            created: booked.books.created(),
            updated: booked.books.updated(),
            accounts: booked.books.account_changes(),
            postings: booked.books.postings(),
            events: &booked.events,
            counters: booked.books.velocity().deltas(),
            risk_profiles: booked.books.risk_changes(),
            alerts: &booked.alerts,
            now: Some(now),
        };
        if !batch.write(&writes).await?.is_empty() {
            return Ok(Attempt::Raced);
        }
        Ok(Attempt::Committed(Applied {
            outcomes: booked.outcomes,
            statements: 0,
        }))
    }

    /// Every control that applies to the batch's authorizations, with its usage read under the
    /// locks of shared scopes.
    async fn controls(
        &self,
        batch: &mut NetworkBatch,
        authorizing: &[&Card],
        programs: &HashMap<cardplane_domain::ids::ProgramId, Arc<KnownProgram>>,
        now: Timestamp,
    ) -> Result<Controls, StoreError> {
        let mut scope_ids: Vec<&str> = Vec::new();
        for card in authorizing {
            scope_ids.extend([card.id.as_str(), card.cardholder_id.as_str(), card.program.as_str()]);
        }
        scope_ids.sort_unstable();
        scope_ids.dedup();
        let tenant_controls = batch.spend_controls(&scope_ids).await?;
        let mut per_card: HashMap<CardId, Vec<AppliedControl>> = HashMap::new();
        let mut usages: Vec<TrackedUsage> = Vec::new();
        for card in authorizing.iter().copied() {
            let Some(known) = programs.get(&card.program) else {
                continue;
            };
            let applied = applicable(card, &known.program, &tenant_controls);
            for c in &applied {
                if !usages.iter().any(|u| u.control.key() == c.key()) {
                    usages.push(TrackedUsage::new(c.clone(), now));
                }
            }
            per_card.insert(card.id.clone(), applied);
        }
        let shared: Vec<String> = usages
            .iter()
            .filter(|u| u.window_start.is_some() && !matches!(u.control.scope, ControlScope::Card(_)))
            .map(|u| format!("{}:{}", u.control.id, u.control.scope.id()))
            .collect();
        batch.lock_control_scopes(&shared).await?;
        if usages.iter().any(|u| u.window_start.is_some()) {
            batch.read_usage(&mut usages).await?;
        }
        Ok(Controls { per_card, usages })
    }

    /// Locks the settlement and losses accounts of the programs whose cards the batch's
    /// clearings and refunds post to.
    async fn lock_program_accounts(
        &self,
        batch: &mut NetworkBatch,
        items: &[Item],
        replays: &HashMap<(Environment, String), String>,
        cards: &Cards,
        programs: &HashMap<cardplane_domain::ids::ProgramId, Arc<KnownProgram>>,
        transactions: &[cardplane_domain::authorization::Transaction],
    ) -> Result<Vec<Account>, StoreError> {
        // Cards of the authorizations the postings may name: stored ones, and this batch's own.
        let mut authorized: HashMap<(Environment, &str), &CardId> = transactions
            .iter()
            .map(|t| ((t.environment, t.network_transaction_id.as_str()), &t.card_id))
            .collect();
        for item in items {
            if let Item::Message {
                environment,
                message: NetworkMessage::Authorization(m),
                pan_hash: Some(hash),
                ..
            } = item
                && let Some(card) = cards.by_pan(*environment, hash)
            {
                authorized
                    .entry((*environment, m.network_transaction_id.as_str()))
                    .or_insert(&card.id);
            }
        }
        let mut ids: Vec<&AccountId> = Vec::new();
        for item in items {
            let Item::Message {
                environment,
                message: NetworkMessage::Clearing(m) | NetworkMessage::Refund(m),
                pan_hash,
                ..
            } = item
            else {
                continue;
            };
            if replays.contains_key(&(*environment, m.network_transaction_id.clone())) {
                continue;
            }
            let by_original = m
                .original
                .as_deref()
                .and_then(|o| authorized.get(&(*environment, o)))
                .and_then(|id| cards.by_id(id));
            let by_pan = pan_hash.as_deref().and_then(|h| cards.by_pan(*environment, h));
            for card in [by_original, by_pan].into_iter().flatten() {
                if let Some(known) = programs.get(&card.program) {
                    ids.extend([&known.accounts.settlement, &known.accounts.losses]);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        batch.lock_accounts(&ids).await
    }
}

/// What the batch's items name, gathered before anything is read.
#[derive(Default)]
struct Plan {
    pan_hashes: Vec<String>,
    card_ids: Vec<String>,
    originals: Vec<(Environment, String)>,
    expiring: Vec<String>,
    /// The first item of each network message (a later item with its key is a duplicate).
    first_of: HashMap<(Environment, String), usize>,
}

impl Plan {
    fn new(items: &[Item]) -> Plan {
        let mut plan = Plan::default();
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Message {
                    environment,
                    message,
                    pan_hash,
                    ..
                } => {
                    plan.first_of
                        .entry((*environment, message.network_transaction_id().to_owned()))
                        .or_insert(i);
                    plan.pan_hashes.extend(pan_hash.iter().cloned());
                    if let Some(o) = message.original() {
                        plan.originals.push((*environment, o.to_owned()));
                    }
                }
                Item::Expire { transaction, card, .. } => {
                    plan.card_ids.push(card.to_string());
                    plan.expiring.push(transaction.to_string());
                }
            }
        }
        for list in [&mut plan.pan_hashes, &mut plan.card_ids, &mut plan.expiring] {
            list.sort_unstable();
            list.dedup();
        }
        plan.originals
            .sort_unstable_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        plan.originals.dedup();
        plan
    }

    fn strs(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }

    fn original_keys(&self) -> Vec<(Environment, &str)> {
        self.originals.iter().map(|(e, n)| (*e, n.as_str())).collect()
    }

    /// The cards of the batch's fresh authorizations (what controls and screening read for).
    fn authorizing<'c>(
        &self,
        items: &[Item],
        replays: &HashMap<(Environment, String), String>,
        cards: &'c Cards,
    ) -> Vec<&'c Card> {
        items
            .iter()
            .enumerate()
            .filter(|(i, item)| self.is_fresh(*i, item, replays))
            .filter_map(|(_, item)| match item {
                Item::Message {
                    environment,
                    message: NetworkMessage::Authorization(_),
                    pan_hash: Some(hash),
                    ..
                } => cards.by_pan(*environment, hash),
                _ => None,
            })
            .collect()
    }

    /// Whether an item is the first of its message and not answered before.
    fn is_fresh(&self, index: usize, item: &Item, replays: &HashMap<(Environment, String), String>) -> bool {
        match item.message_key() {
            None => true,
            Some((env, ntid)) => {
                let key = (env, ntid.to_owned());
                self.first_of.get(&key) == Some(&index) && !replays.contains_key(&key)
            }
        }
    }
}

/// The batch's cards, locked, by PAN hash and by id.
struct Cards {
    locked: Vec<LockedCard>,
    by_hash: HashMap<String, usize>,
    by_id: HashMap<CardId, usize>,
}

impl Cards {
    fn new(locked: Vec<LockedCard>) -> Cards {
        let mut by_hash = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, l) in locked.iter().enumerate() {
            by_hash.insert(l.card.pan_hash.clone(), i);
            by_id.insert(l.card.id.clone(), i);
        }
        Cards { locked, by_hash, by_id }
    }

    /// The card a PAN names in this environment (the network only reaches its own).
    fn by_pan(&self, environment: Environment, hash: &str) -> Option<&Card> {
        self.by_hash
            .get(hash)
            .map(|i| &self.locked[*i].card)
            .filter(|c| c.environment == environment)
    }

    fn by_id(&self, id: &CardId) -> Option<&Card> {
        self.by_id.get(id).map(|i| &self.locked[*i].card)
    }

    /// Each program once, with its version stamp and its rules stamp.
    fn program_versions(&self) -> Vec<(cardplane_domain::ids::ProgramId, Timestamp, i64)> {
        let mut seen = HashSet::new();
        self.locked
            .iter()
            .filter(|l| seen.insert(l.card.program.clone()))
            .map(|l| (l.card.program.clone(), l.program_version, l.rules_version))
            .collect()
    }

    fn kyc_status(&self, id: &CardId) -> &str {
        self.by_id.get(id).map_or("", |i| self.locked[*i].kyc_status.as_str())
    }

    /// Each locked account once (a replacement card shares its predecessor's).
    fn accounts(&self) -> Vec<Account> {
        let mut seen = HashSet::new();
        self.locked
            .iter()
            .filter(|l| seen.insert(l.account.id.clone()))
            .map(|l| l.account.clone())
            .collect()
    }
}

struct Controls {
    per_card: HashMap<CardId, Vec<AppliedControl>>,
    usages: Vec<TrackedUsage>,
}

struct Context<'a> {
    cards: &'a Cards,
    programs: &'a HashMap<cardplane_domain::ids::ProgramId, Arc<KnownProgram>>,
    controls: &'a HashMap<CardId, Vec<AppliedControl>>,
    rules: &'a HashMap<CardId, CardRules>,
    now: Timestamp,
}

const NO_CONTROLS: &[AppliedControl] = &[];
static NO_RULES: std::sync::LazyLock<network::CardRules> = std::sync::LazyLock::new(network::CardRules::default);

impl Context<'_> {
    fn target(&self, card: Option<&Card>) -> Option<CardContext<'_>> {
        let card = card?;
        let known = self.programs.get(&card.program)?;
        Some(CardContext {
            card: self.cards.by_id(&card.id)?,
            program: &known.program,
            accounts: &known.accounts,
            controls: self.controls.get(&card.id).map_or(NO_CONTROLS, Vec::as_slice),
            rules: self.rules.get(&card.id).unwrap_or(&NO_RULES),
            kyc_status: self.cards.kyc_status(&card.id),
        })
    }

    /// The card a clearing or refund posts to: its authorization's, or the one its PAN names.
    fn posting_card(
        &self,
        books: &Books,
        environment: Environment,
        m: &network::PostingMessage,
        pan_hash: Option<&str>,
    ) -> Option<&Card> {
        match m.original.as_deref().and_then(|o| books.authorization(environment, o)) {
            Some(original) => self.cards.by_id(&original.card_id),
            None => pan_hash.and_then(|h| self.cards.by_pan(environment, h)),
        }
    }
}

/// The batch after booking: what to answer and what to write.
struct BookedBatch {
    books: Books,
    outcomes: Vec<Outcome>,
    events: Vec<Event>,
    alerts: Vec<Alert>,
    /// For each item that was booked fresh: its answer body and the transaction it names.
    fresh: Vec<Option<(String, Option<TransactionId>)>>,
    now: Timestamp,
}

impl BookedBatch {
    fn recorded<'a>(&'a self, items: &'a [Item]) -> Vec<RecordedMessage<'a>> {
        items
            .iter()
            .zip(&self.fresh)
            .filter_map(|(item, fresh)| {
                let (body, transaction) = fresh.as_ref()?;
                let Item::Message {
                    environment, message, ..
                } = item
                else {
                    return None;
                };
                Some(RecordedMessage {
                    environment: *environment,
                    network_transaction_id: message.network_transaction_id(),
                    kind: message_kind(message).as_str(),
                    response: body,
                    transaction_id: transaction.as_ref().map(TransactionId::as_str),
                    created_at: self.now,
                })
            })
            .collect()
    }
}

fn message_kind(message: &NetworkMessage) -> MessageKind {
    message.kind()
}

fn transaction_event(t: &cardplane_domain::authorization::Transaction, kind: EventType, now: Timestamp) -> Event {
    let data = serde_json::to_value(TransactionView::from(t)).unwrap_or_default();
    Event::new(&t.tenant_id, t.environment, kind, t.id.as_str(), data, now)
}

/// Books every item in arrival order. Pure but for ids and time: no I/O happens here.
// Long: the batch's one loop, one arm per item kind, over books that every arm changes.
fn book_all(
    items: &[Item],
    plan: &Plan,
    replays: &HashMap<(Environment, String), String>,
    ctx: &Context<'_>,
    mut books: Books,
) -> BookedBatch {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; items.len()];
    let mut fresh = vec![None; items.len()];
    let mut events = Vec::new();
    let mut alerts = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let booked = match item {
            Item::Expire { transaction, at, .. } => {
                let expired = network::expire(transaction, *at, &mut books);
                if let Some(t) = &expired {
                    events.push(transaction_event(t, EventType::TransactionUpdated, *at));
                }
                outcomes[i] = Some(Outcome::Expired(expired.is_some()));
                continue;
            }
            Item::Message { .. } if !plan.is_fresh(i, item, replays) => continue,
            Item::Message {
                environment,
                message,
                pan_hash,
                custodian,
                received_at,
            } => book_message(
                *environment,
                message,
                pan_hash.as_deref(),
                custodian.as_ref(),
                *received_at,
                ctx,
                &mut books,
            ),
        };
        if let Some((amount, cap)) = booked.over_capture {
            tracing::warn!(amount, cap, "clearing exceeds the over-capture tolerance");
        }
        if let Some(t) = &booked.created {
            events.push(transaction_event(t, EventType::TransactionCreated, ctx.now));
        }
        if let Some(t) = &booked.updated {
            events.push(transaction_event(t, EventType::TransactionUpdated, ctx.now));
        }
        for alert in &booked.alerts {
            let data = serde_json::to_value(AlertView::from(alert)).unwrap_or_default();
            events.push(Event::new(
                &alert.tenant_id,
                alert.environment,
                EventType::AlertCreated,
                alert.id.as_str(),
                data,
                ctx.now,
            ));
        }
        alerts.extend(booked.alerts);
        let body = answer_body(&booked.answer);
        outcomes[i] = Some(Outcome::Answer {
            body: body.clone(),
            replayed: false,
        });
        fresh[i] = Some((body, booked.answer.authorization_id.clone()));
    }
    // Repeats: the stored answer, or the answer their first copy in this batch got.
    for (i, item) in items.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        let Some((env, ntid)) = item.message_key() else {
            continue;
        };
        let key = (env, ntid.to_owned());
        let body = match replays.get(&key) {
            Some(stored) => stored.clone(),
            None => match plan.first_of.get(&key).and_then(|first| fresh[*first].as_ref()) {
                Some((body, _)) => body.clone(),
                None => continue,
            },
        };
        outcomes[i] = Some(Outcome::Answer { body, replayed: true });
    }
    BookedBatch {
        books,
        outcomes: outcomes
            .into_iter()
            .map(|o| o.expect("every item of a batch has an outcome"))
            .collect(),
        events,
        alerts,
        fresh,
        now: ctx.now,
    }
}

fn book_message(
    environment: Environment,
    message: &NetworkMessage,
    pan_hash: Option<&str>,
    custodian: Option<&CustodianOutcome>,
    received_at: Timestamp,
    ctx: &Context<'_>,
    books: &mut Books,
) -> Booked {
    let now = ctx.now;
    match message {
        NetworkMessage::Authorization(m) => {
            let card = pan_hash.and_then(|h| ctx.cards.by_pan(environment, h));
            network::authorize(m, ctx.target(card), custodian, received_at, now, books)
        }
        NetworkMessage::Reversal(m) => network::reverse(environment, m, now, books),
        NetworkMessage::Clearing(m) => {
            let card = ctx.posting_card(books, environment, m, pan_hash);
            network::clear(m, ctx.target(card), received_at, now, books)
        }
        NetworkMessage::Refund(m) => {
            let card = ctx.posting_card(books, environment, m, pan_hash);
            network::refund(m, ctx.target(card), received_at, now, books)
        }
    }
}

fn answer_body(answer: &NetworkAnswer) -> String {
    serde_json::to_string(&NetworkAnswerView::from(answer)).unwrap_or_default()
}
