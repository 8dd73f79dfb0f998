//! What creating, updating and reviewing a cardholder share: card orders fulfilled (or failed, or
//! left unfunded) with their events, and the errors a retried cardholder write can end in.

use cardplane_domain::card::Card;
use cardplane_domain::card_order::{CardOrder, CardOrderEvent, CardOrderStatus};
use cardplane_domain::cardholder::{CardOrderRequest, Cardholder};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::program::Program;
use cardplane_domain::{FieldError, Timestamp};
use cardplane_store::Scope;
use cardplane_store::StoreError;
use cardplane_store::cards::CardIssue;
use cardplane_store::ledger::PostError;

use crate::workflows::issuing::{IssueSpec, prepare_issue, refusal};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Ctx;
use crate::http::lookup::load_program;
use crate::state::AppState;
use crate::views::CardOrderView;

/// Optimistic-concurrency retries for an update that raced another.
pub(super) const UPDATE_ATTEMPTS_MAX: usize = 3;

pub(super) fn snapshot<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

pub(super) fn order_event(scope: &Scope, kind: EventType, order: &CardOrder, now: Timestamp) -> Event {
    Event::new(
        &scope.tenant_id,
        scope.environment,
        kind,
        order.id.as_str(),
        snapshot(&CardOrderView::from(order)),
        now,
    )
}

/// The program a card order names, checked before anything runs: it must exist, and the request
/// must fit it (design, currency). Refusals that depend on the cardholder come later.
pub(super) async fn order_program(state: &AppState, ctx: &Ctx, order: &CardOrderRequest) -> ApiResult<Program> {
    let program = load_program(state, ctx, &order.program_id)
        .await
        .map_err(|_| ApiError::invalid("program_not_found", "No such program").with_param("card.program_id"))?;
    let form_factor = program.form_factors[0];
    if let Err(r) = program.check_issue(
        true,
        i32::MAX,
        form_factor,
        order.design_key.as_deref(),
        order.initial_load.map(|m| m.currency()),
    ) && r.is_request_error()
    {
        let param = r.param().map(|p| format!("card.{p}")).unwrap_or_else(|| "card".into());
        return Err(refusal(r).with_param(param));
    }
    Ok(program)
}

/// Fulfils a pending order: a card, or the order marked failed with the refusal's code.
pub(super) async fn fulfil(
    state: &AppState,
    scope: &Scope,
    cardholder: &Cardholder,
    order: &CardOrder,
    program: &Program,
    now: Timestamp,
) -> ApiResult<(CardOrder, Option<CardIssue>, Vec<Event>)> {
    let spec = IssueSpec {
        program,
        form_factor: program.form_factors[0],
        design_key: order.request.design_key.as_deref(),
        initial_load: order.request.initial_load,
        replacing: None,
    };
    match prepare_issue(state, scope, cardholder, &spec, now).await {
        Ok((issue, mut events)) => {
            let mut done = order.apply(CardOrderEvent::Issued, now).map_err(ApiError::internal)?;
            done.card_id = Some(issue.card.id.clone());
            events.push(order_event(scope, EventType::CardOrderUpdated, &done, now));
            Ok((done, Some(issue), events))
        }
        Err(e) if e.status.is_client_error() => {
            let failed = fail_order(order, &e.body.code, now)?;
            Ok((
                failed.clone(),
                None,
                vec![order_event(scope, EventType::CardOrderUpdated, &failed, now)],
            ))
        }
        Err(e) => Err(e),
    }
}

pub(super) fn fail_order(order: &CardOrder, reason: &str, now: Timestamp) -> ApiResult<CardOrder> {
    let mut failed = order.apply(CardOrderEvent::Refused, now).map_err(ApiError::internal)?;
    failed.failure_reason = Some(reason.to_owned());
    Ok(failed)
}

/// Orders, the cards they produced and their events, ready to commit with a cardholder change.
#[derive(Default)]
pub(super) struct Fulfilment {
    pub(super) orders: Vec<CardOrder>,
    pub(super) issues: Vec<CardIssue>,
    pub(super) events: Vec<Event>,
}

impl Fulfilment {
    pub(super) async fn add(
        &mut self,
        state: &AppState,
        scope: &Scope,
        cardholder: &Cardholder,
        order: CardOrder,
        now: Timestamp,
    ) -> ApiResult<()> {
        if order.status != CardOrderStatus::Pending {
            self.orders.push(order);
            return Ok(());
        }
        let program = state
            .programs
            .get_program_by_ref(scope, &order.request.program_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ApiError::invalid("program_not_found", "No such program").with_param("card.program_id")
                }
                other => other.into(),
            })?;
        let (order, issue, events) = fulfil(state, scope, cardholder, &order, &program, now).await?;
        self.orders.push(order);
        self.issues.extend(issue);
        self.events.extend(events);
        Ok(())
    }

    /// The same orders with no card issued: what is committed when the program cannot fund the
    /// initial loads (the cardholder change itself must not fail for that).
    pub(super) fn without_funds(&self, scope: &Scope, now: Timestamp) -> ApiResult<Fulfilment> {
        let mut out = Fulfilment {
            events: self
                .events
                .iter()
                .filter(|e| e.event_type == EventType::CardOrderCreated)
                .cloned()
                .collect(),
            ..Fulfilment::default()
        };
        for order in &self.orders {
            let order = if order.status == CardOrderStatus::Fulfilled {
                let pending = CardOrder {
                    status: CardOrderStatus::Pending,
                    card_id: None,
                    ..order.clone()
                };
                fail_order(&pending, "insufficient_program_funds", now)?
            } else {
                order.clone()
            };
            if order.status == CardOrderStatus::Failed {
                out.events
                    .push(order_event(scope, EventType::CardOrderUpdated, &order, now));
            }
            out.orders.push(order);
        }
        Ok(out)
    }

    pub(super) fn cards(&self) -> Vec<Card> {
        self.issues.iter().map(|i| i.card.clone()).collect()
    }
}

pub(super) fn post_failure(e: PostError) -> ApiError {
    match e {
        PostError::InsufficientFunds(_) => crate::workflows::issuing::insufficient_program_funds(),
        PostError::Store(s) => s.into(),
    }
}

pub(super) enum UpdateError {
    Post(PostError),
    Api(ApiError),
}

impl From<StoreError> for UpdateError {
    fn from(e: StoreError) -> Self {
        UpdateError::Post(PostError::Store(e))
    }
}

impl From<PostError> for UpdateError {
    fn from(e: PostError) -> Self {
        UpdateError::Post(e)
    }
}

impl From<ApiError> for UpdateError {
    fn from(e: ApiError) -> Self {
        UpdateError::Api(e)
    }
}

impl From<FieldError> for UpdateError {
    fn from(e: FieldError) -> Self {
        UpdateError::Api(e.into())
    }
}
