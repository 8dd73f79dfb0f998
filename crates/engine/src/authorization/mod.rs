//! The authorization engine. A network message (from `/network/*` or the sandbox simulator)
//! comes in through `Engine::handle`:
//!
//! 1. its PAN is turned into the keyed lookup hash; for a custodian-authority program's
//!    authorization the custodian is asked now, with its deadline, before the message joins a
//!    batch (no database transaction is ever open during an outside call);
//! 2. it joins a writer's queue (`writer`), which group-commits whatever is waiting as one
//!    batch (`batch`): cards and accounts locked and read set-based, each message booked in
//!    arrival order by the pure rules of `domain::network`, everything written in a few
//!    multi-row statements, one commit;
//! 3. it is answered only after that commit, so an answered approval is durable.
//!
//! A network transaction id has exactly one effect: a repeat in the same batch, or one that
//! another process committed first, gets the stored answer, marked as replayed.

mod batch;
pub mod custodian;
mod programs;
mod rules;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use cardplane_domain::authorization::{AuthorizationRequest, ControlUsage, DecisionInput, Funds, decide};
use cardplane_domain::card::Card;
use cardplane_domain::card_controls::{TrackedUsage, applicable};
use cardplane_domain::network::{AuthorizationMessage, CustodianOutcome, NetworkMessage};
use cardplane_domain::program::{FundingModel, Program};
use cardplane_domain::vault::Vault;
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::cards::CardStore;
use cardplane_store::network::NetworkStore;
use cardplane_store::network_batch::NetworkBatchStore;
use cardplane_store::programs::ProgramStore;
use cardplane_store::{Scope, StoreError};
use tokio::sync::{mpsc, oneshot};

pub use batch::Outcome;
pub use custodian::Breakers;
pub use programs::KnownProgram;

use batch::{Batcher, Item};
use custodian::{CustodianCall, ask};
use programs::Programs;
use writer::Submission;

/// The answer to a network message: the JSON body, and whether it is a stored one replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub body: String,
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The database cannot be reached now; the network should retry.
    #[error("database unavailable")]
    Unavailable,
    #[error("the message could not be applied: {0}")]
    Failed(String),
}

impl From<&StoreError> for EngineError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => EngineError::Unavailable,
            other => EngineError::Failed(other.to_string()),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::from(&e)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// The most messages one batch applies.
    pub batch_size_max: usize,
    /// Messages waiting for a writer beyond this make senders wait (backpressure).
    pub queue_capacity: usize,
    /// Writers committing batches side by side. Messages are spread over them by card, so one
    /// card's messages keep their order within a process; more writers overlap one batch's
    /// commit with the next one's work (SQLite, with one writer connection, gains nothing).
    pub writers: usize,
    /// Consecutive custodian failures that open a program's circuit breaker, and for how long.
    pub breaker_failures: u32,
    pub breaker_open: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_size_max: 256,
            queue_capacity: 4096,
            writers: 1,
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
        }
    }
}

/// What the engine works with.
pub struct EngineDeps {
    pub batches: Arc<dyn NetworkBatchStore>,
    pub cards: Arc<dyn CardStore>,
    pub programs: Arc<dyn ProgramStore>,
    pub network: Arc<dyn NetworkStore>,
    /// The key of the PAN lookup hash.
    pub pan_lookup_key: Arc<[u8]>,
    pub vault: Arc<Vault>,
    /// Outbound calls (custodian authority); per-call deadlines are applied here.
    pub http: reqwest::Client,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    queues: Vec<mpsc::Sender<Submission>>,
    batcher: Arc<Batcher>,
    deps: EngineDeps,
    breakers: Breakers,
}

impl Engine {
    /// Starts the writer task (on the current tokio runtime); it ends when the last `Engine`
    /// clone is dropped.
    pub fn start(deps: EngineDeps, config: EngineConfig) -> Engine {
        let batcher = Arc::new(Batcher {
            store: deps.batches.clone(),
            programs: Arc::new(Programs::default()),
            rules: Arc::new(rules::RuleSets::default()),
        });
        let queues = (0..config.writers.max(1))
            .map(|_| {
                let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
                tokio::spawn(writer::run(receiver, batcher.clone(), config.batch_size_max.max(1)));
                queue
            })
            .collect();
        Engine {
            inner: Arc::new(Inner {
                queues,
                batcher,
                deps,
                breakers: Breakers::new(config.breaker_failures.max(1), config.breaker_open),
            }),
        }
    }

    pub fn breakers(&self) -> &Breakers {
        &self.inner.breakers
    }

    /// Handles one network message in `environment` (a network credential reaches only its own).
    pub async fn handle(&self, environment: Environment, message: NetworkMessage) -> Result<Answer, EngineError> {
        let item = self.item(environment, message).await?;
        match self.submit(item).await? {
            Outcome::Answer { body, replayed } => Ok(Answer { body, replayed }),
            Outcome::Expired(_) => Err(EngineError::Failed("a message was answered as an expiry".into())),
        }
    }

    /// Applies these messages as exactly one batch, in order (tests and tools: the queue decides
    /// batches by timing, this does not).
    pub async fn handle_as_one_batch(
        &self,
        messages: Vec<(Environment, NetworkMessage)>,
    ) -> Vec<Result<Answer, EngineError>> {
        let mut items = Vec::with_capacity(messages.len());
        let mut results: Vec<Option<Result<Answer, EngineError>>> = Vec::new();
        for (environment, message) in messages {
            match self.item(environment, message).await {
                Ok(item) => {
                    items.push(item);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut receivers = Vec::with_capacity(items.len());
        let mut replies = Vec::with_capacity(items.len());
        for _ in &items {
            let (reply, receiver) = oneshot::channel();
            replies.push(reply);
            receivers.push(receiver);
        }
        writer::settle(&self.inner.batcher, &items, replies).await;
        let mut answers = receivers.into_iter();
        results
            .into_iter()
            .map(|r| match r {
                Some(done) => done,
                None => match answers.next().map(|mut a| a.try_recv()) {
                    Some(Ok(Ok(Outcome::Answer { body, replayed }))) => Ok(Answer { body, replayed }),
                    Some(Ok(Err(e))) => Err(e),
                    _ => Err(EngineError::Failed("no answer".into())),
                },
            })
            .collect()
    }

    /// Releases holds that were never cleared and are due at `now`; returns how many.
    pub async fn expire_holds(&self, now: Timestamp) -> Result<usize, EngineError> {
        const PAGE: i64 = 500;
        let mut expired = 0;
        loop {
            let due = self.inner.deps.batches.due_holds(now, PAGE).await?;
            let page = due.len();
            let released = futures::future::join_all(due.into_iter().map(|(transaction, card)| {
                self.submit(Item::Expire {
                    transaction,
                    card,
                    at: now,
                })
            }))
            .await;
            for r in released {
                if r? == Outcome::Expired(true) {
                    expired += 1;
                }
            }
            if i64::try_from(page).unwrap_or(0) < PAGE {
                return Ok(expired);
            }
        }
    }

    async fn submit(&self, item: Item) -> Result<Outcome, EngineError> {
        let (reply, answer) = oneshot::channel();
        let queues = &self.inner.queues;
        let writer = usize::try_from(item.partition() % queues.len() as u64).unwrap_or(0);
        queues[writer]
            .send(Submission { item, reply })
            .await
            .map_err(|_| EngineError::Failed("the authorization writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| EngineError::Failed("the authorization writer dropped a message".into()))?
    }

    async fn item(&self, environment: Environment, message: NetworkMessage) -> Result<Item, EngineError> {
        let received_at = Timestamp::now();
        let pan_hash = message.pan().map(|p| p.lookup_hash(&self.inner.deps.pan_lookup_key));
        let custodian = match (&message, &pan_hash) {
            (NetworkMessage::Authorization(m), Some(hash)) if m.original.is_none() && !m.stand_in_advice => {
                self.custodian_outcome(environment, m, hash, received_at).await?
            }
            _ => None,
        };
        Ok(Item::Message {
            environment,
            message,
            pan_hash,
            custodian,
            received_at,
        })
    }

    /// For a custodian-authority card: asks the custodian, unless the checks before funds
    /// already decline (the batch will decline it again, against the state it locks).
    async fn custodian_outcome(
        &self,
        environment: Environment,
        m: &AuthorizationMessage,
        pan_hash: &str,
        received_at: Timestamp,
    ) -> Result<Option<CustodianOutcome>, EngineError> {
        let deps = &self.inner.deps;
        let funding = self
            .inner
            .batcher
            .programs
            .funding_model(deps.batches.as_ref(), environment, &m.pan)
            .await?;
        if funding != Some(FundingModel::CustodianAuthority) {
            return Ok(None);
        }
        let Some(card) = deps
            .cards
            .find_card_by_pan_hash(pan_hash)
            .await?
            .filter(|c| c.environment == environment)
        else {
            return Ok(None);
        };
        let scope = Scope {
            tenant_id: card.tenant_id.clone(),
            environment,
        };
        let program = deps.programs.get_program(&scope, &card.program).await?;
        if !self.passes_checks_before_funds(&card, &program, m, received_at).await? {
            return Ok(None);
        }
        Ok(Some(self.ask_custodian(&card, &program, m, received_at).await?))
    }

    /// Every control on a card with what it has used in its window now, and when that renews.
    pub async fn control_status(
        &self,
        card: &Card,
        program: &Program,
        now: Timestamp,
    ) -> Result<Vec<(ControlUsage, Option<Timestamp>)>, EngineError> {
        let deps = &self.inner.deps;
        let scope_ids = [card.id.as_str(), card.cardholder_id.as_str(), program.id.as_str()];
        let tenant_controls = deps.network.active_spend_controls(&scope_ids).await?;
        let mut usages: Vec<TrackedUsage> = applicable(card, program, &tenant_controls)
            .into_iter()
            .map(|c| TrackedUsage::new(c, now))
            .collect();
        let oldest = deps.batches.read_usage(&mut usages).await?;
        Ok(usages
            .iter()
            .zip(oldest)
            .map(|(u, oldest)| (u.usage(), u.control.limit.window.renews_at(now, oldest)))
            .collect())
    }

    async fn passes_checks_before_funds(
        &self,
        card: &Card,
        program: &Program,
        m: &AuthorizationMessage,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        let controls: Vec<ControlUsage> = self
            .control_status(card, program, now)
            .await?
            .into_iter()
            .map(|(usage, _)| usage)
            .collect();
        let pre = decide(&DecisionInput {
            card: Some(card),
            expiration_matches: m.expiration == (card.exp_year, card.exp_month),
            program: Some(program),
            merchant_rules: &program.merchant_rules,
            controls: &controls,
            request: &AuthorizationRequest {
                amount: m.amount,
                currency: m.currency,
                merchant: m.merchant.clone(),
                partial_approval_supported: m.partial_approval_supported,
            },
            funds: Funds::NotYetChecked,
            now,
        });
        Ok(pre.approved)
    }

    async fn ask_custodian(
        &self,
        card: &Card,
        program: &Program,
        m: &AuthorizationMessage,
        received_at: Timestamp,
    ) -> Result<CustodianOutcome, EngineError> {
        let config = program
            .custodian
            .clone()
            .ok_or_else(|| EngineError::Failed("a custodian-authority program without a custodian".into()))?;
        let secret = self
            .inner
            .deps
            .vault
            .open(
                &config.secret_sealed,
                &format!("program.custodian_secret:{}", program.id),
            )
            .map_err(|e| EngineError::Failed(e.to_string()))?;
        // The deadline counts from when the message arrived.
        let elapsed = Timestamp::now().as_micros() - received_at.as_micros();
        let left = i64::from(config.deadline_ms) * 1000 - elapsed;
        let deadline = Duration::from_micros(u64::try_from(left.max(0)).unwrap_or(0));
        let body = serde_json::json!({
            "type": "authorization.request",
            "card_id": card.id, "cardholder_id": card.cardholder_id, "program_id": program.program_id,
            "network_transaction_id": m.network_transaction_id,
            "amount": m.amount, "currency": m.currency,
            "merchant": {"id": m.merchant.id, "name": m.merchant.name, "mcc": m.merchant.mcc,
                         "country": m.merchant.country, "city": m.merchant.city},
        });
        let call = CustodianCall {
            breaker_key: program.id.as_str(),
            url: &config.url,
            secret: &secret,
            deadline,
            stand_in: config.stand_in,
            amount: m.amount,
            body,
        };
        Ok(ask(&self.inner.deps.http, &self.inner.breakers, call).await)
    }
}
