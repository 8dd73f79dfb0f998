//! The dispute desk: filing a cardholder's claim, moving the case through the network's cycle,
//! and the money behind each step (provisional credit, its reversal, the chargeback credit).
//! Which step may follow which, the deadlines and the journals are the domain's
//! (`domain::dispute`); this module reads what they need, writes what they decide in one
//! transaction with the events and the audit entry, and retries when a concurrent change won.

mod deadlines;
mod report;
pub mod view;

use std::sync::Arc;

use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{
    Claim, Disposition, DisputeAccounts, DisputeEvent, DisputeStatus, FilingContext, FilingError,
    IllegalDisputeTransition, credit_made_final_journal, credit_reversal_journal, provisional_credit_journal,
};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{DisputeId, DisputeNoteId, TransactionId, UserId};
use cardplane_domain::ledger::Journal;
use cardplane_store::compliance::DocumentRecord;
use cardplane_store::disputes::{
    DisputeChange, DisputeNote, DisputeRecord, DisputeStore, Evidence, EvidenceSource, FileError, FilingFacts,
};
use cardplane_store::ledger::{BALANCE_LIMIT_CONSTRAINT, LedgerStore, PostError};
use cardplane_store::programs::ProgramStore;
use cardplane_store::transactions::TransactionStore;
use cardplane_store::{EffectRecords, Scope, StoreError};

pub use deadlines::DeadlineRun;
pub use report::{AgeBucket, DisputeReport, ReasonOutcome};
use view::{DisputeEnvelope, DisputeView};

/// How a workflow gets what is written with its effect (the idempotent answer, the audit entry)
/// from the answer it is about to give: status and body.
pub type Recorder<'a> = &'a (dyn Fn(u16, &str) -> Option<EffectRecords> + Sync);

/// A concurrent change (another step, an evidence upload, the deadline job) is retried this many
/// times before the caller is told to retry.
const ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DisputeError {
    #[error("no such dispute")]
    NotFound,
    #[error(transparent)]
    Filing(#[from] FilingError),
    #[error(transparent)]
    Illegal(#[from] IllegalDisputeTransition),
    #[error("provisional credit was already granted")]
    CreditAlreadyGranted,
    #[error("no provisional credit is outstanding")]
    NoCreditToReverse,
    #[error("the card's balance would pass the maximum balance")]
    BalanceLimit,
    #[error("the dispute kept changing concurrently; retry")]
    Busy,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DisputeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => DisputeError::NotFound,
            e => DisputeError::Store(e),
        }
    }
}

/// One thing done to a case.
#[derive(Debug, Clone)]
pub enum Step {
    /// A move of the state machine, with the reason recorded if it closes the case.
    Move(DisputeEvent, Option<String>),
    GrantCredit,
    ReverseCredit,
    Assign(Option<UserId>),
    Note(UserId, String),
    /// Evidence attached; with a move when it comes with one (the merchant's representment).
    Evidence(Box<DocumentRecord>, EvidenceSource, Option<DisputeEvent>),
    /// The deadline job saw the resolution deadline coming.
    FlagDeadline,
}

/// A committed change and the answer that was recorded with it.
#[derive(Debug)]
pub struct Committed {
    pub record: DisputeRecord,
    pub body: String,
}

#[derive(Clone)]
pub struct DisputeDesk {
    disputes: Arc<dyn DisputeStore>,
    transactions: Arc<dyn TransactionStore>,
    ledger: Arc<dyn LedgerStore>,
    programs: Arc<dyn ProgramStore>,
}

fn body_of(record: &DisputeRecord, now: Timestamp) -> String {
    let envelope = DisputeEnvelope {
        dispute: DisputeView::of(record, now),
    };
    serde_json::to_string(&envelope).unwrap_or_default()
}

fn event(record: &DisputeRecord, kind: EventType, now: Timestamp) -> Event {
    let d = &record.dispute;
    let data = serde_json::to_value(DisputeView::of(record, now)).unwrap_or_default();
    Event::new(&d.tenant_id, d.environment, kind, d.id.to_string(), data, now)
}

/// What a step writes: the case after it, its journals and events, and a note or evidence.
struct Plan {
    next: DisputeRecord,
    journals: Vec<Journal>,
    events: Vec<EventType>,
    note: Option<DisputeNote>,
    evidence: Option<Evidence>,
}

impl DisputeDesk {
    pub fn new(
        disputes: Arc<dyn DisputeStore>,
        transactions: Arc<dyn TransactionStore>,
        ledger: Arc<dyn LedgerStore>,
        programs: Arc<dyn ProgramStore>,
    ) -> Self {
        DisputeDesk {
            disputes,
            transactions,
            ledger,
            programs,
        }
    }

    pub fn store(&self) -> &dyn DisputeStore {
        self.disputes.as_ref()
    }

    /// Files a claim against a transaction (201 answer).
    pub async fn file(
        &self,
        scope: &Scope,
        transaction: &TransactionId,
        claim: Claim,
        records: Recorder<'_>,
        now: Timestamp,
    ) -> Result<Committed, DisputeError> {
        let t = self.transactions.get_transaction(scope, transaction).await?;
        let program = self.programs.get_program(scope, &t.program_id).await?;
        for _ in 0..ATTEMPTS {
            let facts: FilingFacts = self
                .disputes
                .filing_facts(&t.id, &t.card_id, &t.account_id, &t.program_id)
                .await?;
            let ctx = FilingContext {
                transaction: &t,
                network: program.network,
                already_disputed: facts.already_disputed,
                fraud_disputes_on_card: facts.fraud_disputes_on_card,
                account_opened_at: facts.account_opened_at,
                policy: facts.policy,
            };
            let dispute = cardplane_domain::dispute::file(ctx, claim.clone(), now)?;
            let record = DisputeRecord {
                dispute,
                assignee_id: None,
                deadline_flagged_at: None,
            };
            let body = body_of(&record, now);
            let events = [event(&record, EventType::DisputeCreated, now)];
            match self
                .disputes
                .insert_dispute(&record.dispute, &facts, &events, records(201, &body).as_ref())
                .await
            {
                Ok(()) => return Ok(Committed { record, body }),
                Err(FileError::Raced) => continue,
                Err(FileError::Store(e)) => return Err(e.into()),
            }
        }
        Err(DisputeError::Busy)
    }

    /// Does one step to a case (200 answer), retrying from a fresh read when a concurrent change
    /// won the race.
    pub async fn step(
        &self,
        scope: &Scope,
        id: &DisputeId,
        step: Step,
        records: Recorder<'_>,
        now: Timestamp,
    ) -> Result<Committed, DisputeError> {
        for _ in 0..ATTEMPTS {
            let current = self.disputes.get_dispute(Some(scope), id).await?;
            let plan = self.plan(scope, &current, &step, now).await?;
            let body = body_of(&plan.next, now);
            let events: Vec<Event> = plan.events.iter().map(|k| event(&plan.next, *k, now)).collect();
            let effect_records = records(200, &body);
            let change = DisputeChange {
                next: &plan.next,
                expected_version: current.dispute.version,
                journals: &plan.journals,
                events: &events,
                note: plan.note.as_ref(),
                evidence: plan.evidence.as_ref(),
                records: effect_records.as_ref(),
            };
            match self.disputes.change_dispute(scope, change, now).await {
                Ok(()) => {
                    return Ok(Committed {
                        record: plan.next,
                        body,
                    });
                }
                // The version moved, or the card's balance changed under a reversal: read again.
                Err(PostError::Store(StoreError::Conflict { constraint })) if constraint == "disputes_version" => {}
                Err(PostError::Store(StoreError::Conflict { constraint }))
                    if constraint == BALANCE_LIMIT_CONSTRAINT =>
                {
                    return Err(DisputeError::BalanceLimit);
                }
                Err(PostError::InsufficientFunds(_)) => {}
                Err(PostError::Store(e)) => return Err(e.into()),
            }
        }
        Err(DisputeError::Busy)
    }

    async fn accounts(
        &self,
        scope: &Scope,
        current: &DisputeRecord,
        now: Timestamp,
    ) -> Result<DisputeAccounts, DisputeError> {
        Ok(self
            .disputes
            .dispute_accounts(scope, &current.dispute.program_id, now)
            .await?)
    }

    /// What the card can give back without going below its floor.
    async fn card_can_pay(&self, scope: &Scope, current: &DisputeRecord) -> Result<i64, DisputeError> {
        Ok(self
            .ledger
            .get_account(scope, &current.dispute.account_id)
            .await?
            .spendable())
    }

    // One match over every kind of step, so what each writes reads side by side (86 lines).
    async fn plan(
        &self,
        scope: &Scope,
        current: &DisputeRecord,
        step: &Step,
        now: Timestamp,
    ) -> Result<Plan, DisputeError> {
        let d = &current.dispute;
        let mut plan = Plan {
            next: DisputeRecord {
                dispute: cardplane_domain::dispute::Dispute {
                    updated_at: now,
                    version: d.version + 1,
                    ..d.clone()
                },
                ..current.clone()
            },
            journals: Vec::new(),
            events: vec![EventType::DisputeUpdated],
            note: None,
            evidence: None,
        };
        match step {
            Step::Move(event, reason) => return self.plan_move(scope, current, *event, reason.clone(), now).await,
            Step::GrantCredit => {
                if !d.is_open() {
                    return Err(IllegalDisputeTransition::Closed.into());
                }
                if d.provisional_credit > 0 {
                    return Err(DisputeError::CreditAlreadyGranted);
                }
                let accounts = self.accounts(scope, current, now).await?;
                plan.journals
                    .push(provisional_credit_journal(d, &accounts, now).map_err(StoreError::other)?);
                plan.next.dispute.provisional_credit = d.amount;
                plan.events = vec![EventType::DisputeProvisionalCreditGranted];
            }
            Step::ReverseCredit => {
                if !d.is_open() {
                    return Err(IllegalDisputeTransition::Closed.into());
                }
                if d.provisional_credit == 0 {
                    return Err(DisputeError::NoCreditToReverse);
                }
                let accounts = self.accounts(scope, current, now).await?;
                let can_pay = self.card_can_pay(scope, current).await?;
                plan.journals.push(
                    credit_reversal_journal(d, &accounts, d.provisional_credit, can_pay, now)
                        .map_err(StoreError::other)?,
                );
                plan.next.dispute.provisional_credit = 0;
                plan.events = vec![EventType::DisputeProvisionalCreditReversed];
            }
            Step::Assign(who) => plan.next.assignee_id = who.clone(),
            Step::Note(author, body) => {
                plan.note = Some(DisputeNote {
                    id: DisputeNoteId::generate(),
                    dispute_id: d.id.clone(),
                    author_id: Some(author.clone()),
                    body: body.clone(),
                    created_at: now,
                });
                plan.events.clear();
            }
            Step::Evidence(document, source, event) => {
                if !d.is_open() {
                    return Err(IllegalDisputeTransition::Closed.into());
                }
                if let Some(event) = event {
                    plan.next.dispute = d.apply(*event, None, now)?;
                } else if d.state.status == DisputeStatus::PendingCustomer && *source == EvidenceSource::Custodian {
                    // Evidence the custodian was asked for moves the case back to the issuer.
                    plan.next.dispute = d.apply(DisputeEvent::EvidenceReceived, None, now)?;
                }
                plan.evidence = Some(Evidence {
                    id: document.id.clone(),
                    dispute_id: d.id.clone(),
                    source: *source,
                    document: (**document).clone(),
                    created_at: now,
                });
            }
            Step::FlagDeadline => plan.next.deadline_flagged_at = Some(now),
        }
        Ok(plan)
    }

    /// A move of the state machine and, when it closes the case, the money: the network's credit
    /// for what was recovered, the reversal of credit not recovered, or credit made final.
    async fn plan_move(
        &self,
        scope: &Scope,
        current: &DisputeRecord,
        event: DisputeEvent,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<Plan, DisputeError> {
        let d = &current.dispute;
        let mut next = d.apply(event, reason, now)?;
        let mut journals = Vec::new();
        let mut events = vec![EventType::DisputeUpdated];
        if next.state.status == DisputeStatus::Closed {
            events = vec![EventType::DisputeClosed];
            let accounts = self.accounts(scope, current, now).await?;
            let recovered = next.state.recovered.unwrap_or(0);
            let granted = d.provisional_credit;
            if event == DisputeEvent::ResolutionDeadlinePassed {
                // Regulation E: the cardholder keeps the whole amount; the program bears it.
                if granted < d.amount {
                    journals.push(provisional_credit_journal(d, &accounts, now).map_err(StoreError::other)?);
                    events.insert(0, EventType::DisputeProvisionalCreditGranted);
                }
                journals.push(credit_made_final_journal(d, &accounts, now).map_err(StoreError::other)?);
                next.provisional_credit = d.amount;
            } else {
                if recovered > 0 {
                    journals.push(
                        cardplane_domain::dispute::chargeback_journal(d, &accounts, recovered, now)
                            .map_err(StoreError::other)?,
                    );
                }
                let to_reverse = granted - granted.min(recovered);
                if to_reverse > 0 {
                    let can_pay = self.card_can_pay(scope, current).await?;
                    journals.push(
                        credit_reversal_journal(d, &accounts, to_reverse, can_pay, now).map_err(StoreError::other)?,
                    );
                    events.insert(0, EventType::DisputeProvisionalCreditReversed);
                }
                next.provisional_credit = match next.state.disposition {
                    Some(Disposition::Won | Disposition::PartiallyWon) => recovered,
                    _ => 0,
                };
            }
        }
        Ok(Plan {
            next: DisputeRecord {
                dispute: next,
                ..current.clone()
            },
            journals,
            events,
            note: None,
            evidence: None,
        })
    }
}
