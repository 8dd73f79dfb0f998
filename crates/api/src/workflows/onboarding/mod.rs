//! Onboarding: a cardholder created or updated (KYC run, review case opened or resolved, card
//! orders fulfilled once KYC passes, everything committed in one transaction with its events), and
//! the review workflow's verdicts applied the same way (`verdict`). Routes parse requests and call
//! these; `fulfilment` holds what both share (card orders fulfilled, events, retry errors).

mod fulfilment;
mod verdict;

pub use verdict::{ReviewVerdict, apply_review};

use crate::workflows::review::{case_for_kyc, case_resolved_by_kyc};
use axum::http::StatusCode;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::card_order::{CardOrder, CardOrderEvent, CardOrderStatus};
use cardplane_domain::cardholder::{CardOrderRequest, Cardholder, Document, Email, Identity, PhoneNumber};
use cardplane_domain::compliance::Case;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{CardholderId, KycCheckId};
use cardplane_domain::kyc::{KycApplicant, KycCheck, KycState};
use cardplane_domain::{FieldError, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::cardholders::CardholderWrite;
use cardplane_store::cardholders::ReviewWrite;
use cardplane_store::ledger::PostError;

use crate::workflows::issuing::{PAN_ATTEMPTS_MAX, pan_collision};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Ctx;
use crate::http::reply::{Reply, render};
use crate::state::AppState;

use crate::views::CardholderEnvelope;
use fulfilment::{Fulfilment, UPDATE_ATTEMPTS_MAX, UpdateError, order_event, order_program, post_failure, snapshot};

/// A fully parsed create request.
pub struct NewCardholder {
    pub custodian_uid: Option<String>,
    pub email: Email,
    pub phone: PhoneNumber,
    pub identity: Identity,
    pub document: Document,
    pub card: Option<CardOrderRequest>,
}

/// An update request's fields applied to the current cardholder.
pub struct Merged {
    pub cardholder: Cardholder,
    pub new_document: Option<Document>,
    pub card: Option<CardOrderRequest>,
}

/// An update request as the workflow sees it: the card it orders (checked against its program
/// before anything runs) and how its fields apply to the cardholder as it is when the update runs
/// (re-read on every retry).
pub struct Patch<'a> {
    pub order: Option<CardOrderRequest>,
    pub merge: &'a (dyn Fn(&Cardholder, time::Date, u8) -> Result<Merged, FieldError> + Send + Sync),
}

fn document_context(id: &CardholderId) -> String {
    format!("cardholder.document:{id}")
}

fn open_document(state: &AppState, c: &Cardholder) -> ApiResult<Document> {
    let raw = state
        .vault
        .open(&c.document_sealed, &document_context(&c.id))
        .map_err(ApiError::internal)?;
    let value = String::from_utf8(raw).map_err(ApiError::internal)?;
    Document::parse(Some(c.document_type.as_str()), Some(&value))
        .map_err(|_| ApiError::internal("stored document does not parse"))
}

async fn run_kyc(state: &AppState, ctx: &Ctx, c: &Cardholder, document: &Document, now: Timestamp) -> KycCheck {
    let provider = state.kyc(ctx.scope.environment);
    let applicant = KycApplicant {
        reference: c.id.to_string(),
        identity: c.identity.clone(),
        email: c.email.as_str().to_owned(),
        phone_number: c.phone.e164().to_owned(),
        document: document.clone(),
    };
    let result = provider.verify(&applicant).await;
    KycCheck {
        id: KycCheckId::generate(),
        cardholder_id: c.id.clone(),
        provider: provider.name().to_owned(),
        result,
        created_at: now,
    }
}

pub fn min_age(state: &AppState) -> u8 {
    state.config.kyc.minimum_age_years
}

/// Creates a cardholder: KYC runs, a review case opens when it asks for one, an ordered card is
/// issued when KYC passes (or the order waits), all committed in one transaction. A
/// `custodian_uid` already taken turns the request into an update of that cardholder (`patch`).
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    input: NewCardholder,
    patch: &Patch<'_>,
    now: Timestamp,
) -> ApiResult<Reply> {
    if let Some(uid) = &input.custodian_uid
        && let Some(existing) = state
            .cardholders
            .find_cardholder_by_custodian_uid(&ctx.scope, uid)
            .await?
    {
        return update(state, ctx, &existing.id, patch).await;
    }
    if let Some(order) = &input.card {
        order_program(state, ctx, order).await?;
    }
    let id = CardholderId::generate();
    let mut cardholder = Cardholder {
        id: id.clone(),
        tenant_id: ctx.scope.tenant_id.clone(),
        environment: ctx.scope.environment,
        custodian_uid: input.custodian_uid,
        email: input.email,
        phone: input.phone,
        identity: input.identity,
        document_type: input.document.kind,
        document_last4: input.document.number.last4(),
        document_sealed: state
            .vault
            .seal(input.document.number.expose().as_bytes(), &document_context(&id)),
        kyc: KycState::not_checked(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let check = run_kyc(state, ctx, &cardholder, &input.document, now).await;
    cardholder.kyc = cardholder.kyc.record(check.result, now);
    let program_ref = input.card.as_ref().map(|c| c.program_id.as_str());
    let review = case_for_kyc(state, &ctx.scope, &id, &check, program_ref, now).await?;
    for _ in 0..PAN_ATTEMPTS_MAX {
        let mut fulfilment = Fulfilment::default();
        let mut created_events = Vec::new();
        if let Some(request) = input.card.clone() {
            let order = CardOrder::place(&id, request, cardholder.kyc.passed(), now);
            created_events.push(order_event(&ctx.scope, EventType::CardOrderCreated, &order, now));
            fulfilment.add(state, &ctx.scope, &cardholder, order, now).await?;
        }
        created_events.append(&mut fulfilment.events);
        fulfilment.events = created_events;
        match insert_new(state, ctx, &cardholder, &check, &fulfilment, review.as_ref(), now).await {
            Ok(reply) => return Ok(reply),
            Err(e) if pan_collision(&e) => continue,
            Err(PostError::InsufficientFunds(_)) => {
                let unfunded = fulfilment.without_funds(&ctx.scope, now)?;
                return insert_new(state, ctx, &cardholder, &check, &unfunded, review.as_ref(), now)
                    .await
                    .map_err(post_failure);
            }
            // A concurrent create took this custodian_uid first: this request becomes its update.
            Err(PostError::Store(e)) if e.is_conflict_on("cardholders_custodian_uid", "custodian_uid") => {
                let uid = cardholder.custodian_uid.as_deref().unwrap_or_default();
                let existing = state
                    .cardholders
                    .find_cardholder_by_custodian_uid(&ctx.scope, uid)
                    .await?
                    .ok_or_else(|| {
                        ApiError::conflict(
                            "custodian_uid_conflict",
                            "custodian_uid is being changed concurrently; retry",
                        )
                    })?;
                return update(state, ctx, &existing.id, patch).await;
            }
            Err(e) => return Err(post_failure(e)),
        }
    }
    Err(ApiError::internal("could not allocate a unique PAN"))
}

async fn insert_new(
    state: &AppState,
    ctx: &Ctx,
    cardholder: &Cardholder,
    check: &KycCheck,
    fulfilment: &Fulfilment,
    review: Option<&(Case, AuditRecord)>,
    now: Timestamp,
) -> Result<Reply, PostError> {
    let envelope = CardholderEnvelope::with_cards(cardholder, &fulfilment.cards());
    let mut events = vec![Event::new(
        &ctx.scope.tenant_id,
        ctx.scope.environment,
        EventType::CardholderCreated,
        cardholder.id.as_str(),
        snapshot(&envelope.cardholder),
        now,
    )];
    events.extend(fulfilment.events.iter().cloned());
    let body = render(&envelope).map_err(|e| StoreError::corrupt(e.body.message))?;
    let response = ctx.records(StatusCode::OK, &body);
    let write = CardholderWrite {
        cardholder,
        kyc_check: Some(check),
        card_orders: &fulfilment.orders,
        card_issues: &fulfilment.issues,
        events: &events,
        response: response.as_ref(),
        review: review.map(|(case, audit)| ReviewWrite {
            open_case: Some((case, audit)),
            change: None,
        }),
    };
    state.cardholders.insert_cardholder(&ctx.scope, write, now).await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

/// Updates a cardholder with a request's fields (`patch`), retrying when it raced another change.
pub async fn update(state: &AppState, ctx: &Ctx, id: &CardholderId, patch: &Patch<'_>) -> ApiResult<Reply> {
    if let Some(order) = &patch.order {
        order_program(state, ctx, order).await?;
    }
    let mut unfunded = false;
    for _ in 0..UPDATE_ATTEMPTS_MAX + PAN_ATTEMPTS_MAX {
        match try_update(state, ctx, id, patch, unfunded).await {
            Err(UpdateError::Post(PostError::Store(e)))
                if e.is_conflict_on("cardholders_version", "cards_pan_hash")
                    || e.is_conflict_on("compliance_cases_version", "compliance_cases_version") =>
            {
                continue;
            }
            Err(UpdateError::Post(PostError::InsufficientFunds(_))) if !unfunded => unfunded = true,
            Err(UpdateError::Post(PostError::Store(e)))
                if e.is_conflict_on("cardholders_custodian_uid", "custodian_uid") =>
            {
                return Err(ApiError::conflict(
                    "custodian_uid_taken",
                    "Another cardholder already has this custodian_uid",
                )
                .with_param("custodian_uid"));
            }
            Err(UpdateError::Post(PostError::Store(StoreError::NotFound))) => {
                return Err(ApiError::not_found("cardholder"));
            }
            Err(UpdateError::Post(e)) => return Err(post_failure(e)),
            Err(UpdateError::Api(e)) => return Err(e),
            Ok(reply) => return Ok(reply),
        }
    }
    Err(ApiError::conflict(
        "concurrent_update",
        "The cardholder is being changed concurrently; retry",
    ))
}

// Long: an update is one ordered sequence over the state it builds (merge, document, KYC
// re-run, review case, orders, events, one write); split, that state would pass through every step.
async fn try_update(
    state: &AppState,
    ctx: &Ctx,
    id: &CardholderId,
    patch: &Patch<'_>,
    unfunded: bool,
) -> Result<Reply, UpdateError> {
    let now = Timestamp::now();
    let current = state.cardholders.get_cardholder(&ctx.scope, id).await?;
    let Merged {
        mut cardholder,
        new_document,
        card,
    } = (patch.merge)(&current, now.date(), min_age(state))?;
    let old_document = open_document(state, &current)?;
    let document_changed = new_document.as_ref().is_some_and(|d| *d != old_document);
    if let Some(doc) = new_document.as_ref().filter(|_| document_changed) {
        cardholder.document_type = doc.kind;
        cardholder.document_last4 = doc.number.last4();
        cardholder.document_sealed = state.vault.seal(doc.number.expose().as_bytes(), &document_context(id));
    }
    let identity_changed = document_changed || cardholder.identity != current.identity;
    let check = if identity_changed && current.kyc.rerun_on_identity_change() {
        let document = new_document.clone().unwrap_or(old_document);
        Some(run_kyc(state, ctx, &cardholder, &document, now).await)
    } else {
        None
    };
    if let Some(c) = &check {
        cardholder.kyc = cardholder.kyc.record(c.result, now);
    }
    let newly_passed = cardholder.kyc.passed() && !current.kyc.passed();

    let existing_orders = state.cardholders.list_card_orders(&ctx.scope, id).await?;
    let review = match &check {
        Some(c) => {
            let program_ref = card.as_ref().map(|r| r.program_id.clone()).or_else(|| {
                existing_orders
                    .iter()
                    .find(|o| o.status == CardOrderStatus::AwaitingKyc)
                    .map(|o| o.request.program_id.clone())
            });
            case_for_kyc(state, &ctx.scope, id, c, program_ref.as_deref(), now).await?
        }
        None => None,
    };
    // A re-run that answers what the open case was asking closes it.
    let resolution = match &check {
        Some(c) => case_resolved_by_kyc(state, &ctx.scope, id, c, now).await?,
        None => None,
    };
    let mut fulfilment = Fulfilment::default();
    let mut order_events = Vec::new();
    if newly_passed {
        for order in existing_orders
            .iter()
            .filter(|o| o.status == CardOrderStatus::AwaitingKyc)
        {
            let pending = order
                .apply(CardOrderEvent::KycPassed, now)
                .map_err(ApiError::internal)?;
            fulfilment.add(state, &ctx.scope, &cardholder, pending, now).await?;
        }
    }
    if let Some(request) = card {
        let open = existing_orders.iter().any(|o| {
            o.request.program_id == request.program_id
                && matches!(o.status, CardOrderStatus::AwaitingKyc | CardOrderStatus::Pending)
        });
        if !open {
            let order = CardOrder::place(id, request, cardholder.kyc.passed(), now);
            order_events.push(order_event(&ctx.scope, EventType::CardOrderCreated, &order, now));
            fulfilment.add(state, &ctx.scope, &cardholder, order, now).await?;
        }
    }
    order_events.append(&mut fulfilment.events);
    fulfilment.events = order_events;
    if unfunded {
        fulfilment = fulfilment.without_funds(&ctx.scope, now)?;
    }

    let profile_changed = cardholder != current;
    if profile_changed {
        cardholder.updated_at = now;
        cardholder.version = current.version + 1;
    }
    let mut cards = state.cards.cards_of(&ctx.scope, std::slice::from_ref(id)).await?;
    cards.extend(fulfilment.cards());
    let envelope = CardholderEnvelope::with_cards(&cardholder, &cards);
    let body = render(&envelope)?;
    if !profile_changed && fulfilment.orders.is_empty() {
        // Nothing to change: answer with the current state, still honouring idempotency.
        if let Some(response) = ctx.idempotent_response(StatusCode::OK, &body) {
            state.idempotency.complete(&ctx.scope, &response, now).await?;
            return Ok(Reply::committed(StatusCode::OK, body));
        }
        return Ok(Reply {
            status: StatusCode::OK,
            body,
            committed: false,
        });
    }
    let data = snapshot(&envelope.cardholder);
    let scope = &ctx.scope;
    let mut all_events = Vec::new();
    if profile_changed {
        all_events.push(Event::new(
            &scope.tenant_id,
            scope.environment,
            EventType::CardholderUpdated,
            id.as_str(),
            data.clone(),
            now,
        ));
    }
    if cardholder.kyc.result != current.kyc.result {
        all_events.push(Event::new(
            &scope.tenant_id,
            scope.environment,
            EventType::CardholderKycUpdated,
            id.as_str(),
            data,
            now,
        ));
    }
    all_events.extend(fulfilment.events.iter().cloned());
    let response = ctx.records(StatusCode::OK, &body);
    let write = CardholderWrite {
        cardholder: &cardholder,
        kyc_check: check.as_ref(),
        card_orders: &fulfilment.orders,
        card_issues: &fulfilment.issues,
        events: &all_events,
        response: response.as_ref(),
        review: (review.is_some() || resolution.is_some()).then(|| ReviewWrite {
            open_case: review.as_ref().map(|(case, audit)| (case, audit)),
            change: resolution.as_ref().map(|r| r.change()),
        }),
    };
    state
        .cardholders
        .update_cardholder(scope, write, current.version, now)
        .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}
