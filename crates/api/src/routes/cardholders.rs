//! `/cardholders`: create (or update by `custodian_uid`), update by id, list, get, KYC history and
//! card orders.

use crate::review::{case_for_kyc, case_resolved_by_kyc};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::card::Card;
use cardplane_domain::card_order::{CardOrder, CardOrderEvent, CardOrderStatus};
use cardplane_domain::cardholder::{
    Address, AddressInput, CardOrderRequest, Cardholder, DateOfBirth, Document, Email, Identity, PhoneNumber,
    parse_custodian_uid, parse_name,
};
use cardplane_domain::compliance::Case;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::{CardholderId, KycCheckId};
use cardplane_domain::kyc::KycResult;
use cardplane_domain::kyc::{KycApplicant, KycCheck, KycState};
use cardplane_domain::program::Program;
use cardplane_domain::{FieldError, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::cardholders::CardholderWrite;
use cardplane_store::cardholders::ReviewWrite;
use cardplane_store::cards::CardIssue;
use cardplane_store::compliance::CaseChange;
use cardplane_store::ledger::PostError;
use cardplane_store::{EffectRecords, Scope};

use crate::issuing::{IssueSpec, PAN_ATTEMPTS_MAX, pan_collision, prepare_issue, refusal};
use crate::routes::programs::load_program;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::reply::{Reply, render};
use crate::state::AppState;
use crate::views::{
    CardOrderList, CardOrderView, CardholderEnvelope, CardholderList, KycCheckEnvelope, KycCheckList, page_items,
};

/// Optimistic-concurrency retries for an update that raced another.
const UPDATE_ATTEMPTS_MAX: usize = 3;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(example = "1800 Gates Ave")]
    pub street_one: Option<String>,
    #[schema(example = "2L")]
    pub street_two: Option<String>,
    #[schema(example = "Ridgewood")]
    pub locality: Option<String>,
    #[schema(example = "NY")]
    pub region: Option<String>,
    #[schema(example = "11385")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-3 (alpha-2 accepted).
    #[schema(example = "USA")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentRequest {
    /// ssn, itin, passport, drivers_license or national_id.
    #[serde(rename = "type")]
    #[schema(example = "ssn")]
    pub kind: Option<String>,
    #[schema(example = "490940000")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialLoadRequest {
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Minor units.
    #[schema(example = 200)]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    #[schema(example = "blue")]
    pub design_key: Option<String>,
    #[schema(example = "Apto_GPR")]
    pub program_id: Option<String>,
    pub initial_load: Option<InitialLoadRequest>,
    /// Accepted for compatibility with the Apto API; must be an object.
    #[schema(value_type = Object)]
    pub additional_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Create body: every field but `custodian_uid` and `card` is required. As an update
/// (`POST /cardholders/{id}`) every field is optional and only given fields change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardholderRequest {
    #[schema(example = "Josh")]
    pub first_name: Option<String>,
    #[schema(example = "Wilson")]
    pub last_name: Option<String>,
    /// Your unique user id; unique per tenant and environment.
    #[schema(example = "your-external-user-id")]
    pub custodian_uid: Option<String>,
    #[schema(example = "pat@wilson.com")]
    pub email: Option<String>,
    /// E.123 international notation.
    #[schema(example = "+16508881111")]
    pub phone_number: Option<String>,
    /// YYYY-MM-DD.
    #[schema(example = "1982-06-20")]
    pub date_of_birth: Option<String>,
    pub address: Option<AddressRequest>,
    pub document: Option<DocumentRequest>,
    pub card: Option<CardRequest>,
}

fn address_input(a: &AddressRequest) -> AddressInput<'_> {
    AddressInput {
        street_one: a.street_one.as_deref(),
        street_two: a.street_two.as_deref(),
        locality: a.locality.as_deref(),
        region: a.region.as_deref(),
        postal_code: a.postal_code.as_deref(),
        country: a.country.as_deref(),
    }
}

fn parse_card(card: &CardRequest) -> Result<CardOrderRequest, FieldError> {
    CardOrderRequest::parse(
        card.program_id.as_deref(),
        card.design_key.as_deref(),
        card.initial_load.as_ref().map(|l| (l.currency.as_deref(), l.amount)),
    )
}

/// A fully parsed create request.
struct NewCardholder {
    custodian_uid: Option<String>,
    email: Email,
    phone: PhoneNumber,
    identity: Identity,
    document: Document,
    card: Option<CardOrderRequest>,
}

fn parse_new(req: &CardholderRequest, today: time::Date, minimum_age: u8) -> Result<NewCardholder, FieldError> {
    let first_name = parse_name("first_name", req.first_name.as_deref())?;
    let last_name = parse_name("last_name", req.last_name.as_deref())?;
    let custodian_uid = parse_custodian_uid(req.custodian_uid.as_deref())?;
    let email = Email::parse(req.email.as_deref())?;
    let phone = PhoneNumber::parse(req.phone_number.as_deref())?;
    let date_of_birth = DateOfBirth::parse(req.date_of_birth.as_deref(), today, minimum_age)?;
    let address = Address::parse(address_input(
        req.address.as_ref().ok_or_else(|| FieldError::missing("address"))?,
    ))?;
    let doc = req.document.as_ref().ok_or_else(|| FieldError::missing("document"))?;
    let document = Document::parse(doc.kind.as_deref(), doc.value.as_deref())?;
    let card = req.card.as_ref().map(parse_card).transpose()?;
    Ok(NewCardholder {
        custodian_uid,
        email,
        phone,
        identity: Identity {
            first_name,
            last_name,
            date_of_birth,
            address,
        },
        document,
        card,
    })
}

/// Applies the fields present in an update request to the current cardholder.
struct Merged {
    cardholder: Cardholder,
    new_document: Option<Document>,
    card: Option<CardOrderRequest>,
}

fn merge(
    current: &Cardholder,
    req: &CardholderRequest,
    today: time::Date,
    minimum_age: u8,
) -> Result<Merged, FieldError> {
    let mut next = current.clone();
    if req.first_name.is_some() {
        next.identity.first_name = parse_name("first_name", req.first_name.as_deref())?;
    }
    if req.last_name.is_some() {
        next.identity.last_name = parse_name("last_name", req.last_name.as_deref())?;
    }
    if req.custodian_uid.is_some() {
        next.custodian_uid = parse_custodian_uid(req.custodian_uid.as_deref())?;
    }
    if req.email.is_some() {
        next.email = Email::parse(req.email.as_deref())?;
    }
    if req.phone_number.is_some() {
        next.phone = PhoneNumber::parse(req.phone_number.as_deref())?;
    }
    if req.date_of_birth.is_some() {
        next.identity.date_of_birth = DateOfBirth::parse(req.date_of_birth.as_deref(), today, minimum_age)?;
    }
    if let Some(a) = &req.address {
        next.identity.address = Address::parse(address_input(a))?;
    }
    let new_document = req
        .document
        .as_ref()
        .map(|d| Document::parse(d.kind.as_deref(), d.value.as_deref()))
        .transpose()?;
    let card = req.card.as_ref().map(parse_card).transpose()?;
    Ok(Merged {
        cardholder: next,
        new_document,
        card,
    })
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

fn snapshot<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn order_event(scope: &Scope, kind: EventType, order: &CardOrder, now: Timestamp) -> Event {
    Event::new(
        &scope.tenant_id,
        scope.environment,
        kind,
        order.id.as_str(),
        snapshot(&CardOrderView::from(order)),
        now,
    )
}

fn min_age(state: &AppState) -> u8 {
    state.config.kyc.minimum_age_years
}

/// The program a card order names, checked before anything runs: it must exist, and the request
/// must fit it (design, currency). Refusals that depend on the cardholder come later.
async fn order_program(state: &AppState, ctx: &Ctx, order: &CardOrderRequest) -> ApiResult<Program> {
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
async fn fulfil(
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

fn fail_order(order: &CardOrder, reason: &str, now: Timestamp) -> ApiResult<CardOrder> {
    let mut failed = order.apply(CardOrderEvent::Refused, now).map_err(ApiError::internal)?;
    failed.failure_reason = Some(reason.to_owned());
    Ok(failed)
}

/// Orders, the cards they produced and their events, ready to commit with a cardholder change.
#[derive(Default)]
struct Fulfilment {
    orders: Vec<CardOrder>,
    issues: Vec<CardIssue>,
    events: Vec<Event>,
}

impl Fulfilment {
    async fn add(
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
    fn without_funds(&self, scope: &Scope, now: Timestamp) -> ApiResult<Fulfilment> {
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

    fn cards(&self) -> Vec<Card> {
        self.issues.iter().map(|i| i.card.clone()).collect()
    }
}

#[utoipa::path(
    post, path = "/cardholders", tag = "Cardholders",
    request_body = CardholderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry")),
    responses(
        (status = 200, description = "Created, or updated when `custodian_uid` matched", body = CardholderEnvelope),
        (status = 400, body = crate::error::ErrorEnvelope), (status = 401, body = crate::error::ErrorEnvelope),
        (status = 409, body = crate::error::ErrorEnvelope), (status = 422, body = crate::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn create_cardholder(
    State(state): State<AppState>,
    ctx: Ctx,
    JsonBody(req): JsonBody<CardholderRequest>,
) -> ApiResult<Reply> {
    let now = Timestamp::now();
    let input = parse_new(&req, now.date(), min_age(&state))?;
    if let Some(uid) = &input.custodian_uid
        && let Some(existing) = state
            .cardholders
            .find_cardholder_by_custodian_uid(&ctx.scope, uid)
            .await?
    {
        return update(&state, &ctx, &existing.id, &req).await;
    }
    if let Some(order) = &input.card {
        order_program(&state, &ctx, order).await?;
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
    let check = run_kyc(&state, &ctx, &cardholder, &input.document, now).await;
    cardholder.kyc = cardholder.kyc.record(check.result, now);
    let program_ref = input.card.as_ref().map(|c| c.program_id.as_str());
    let review = case_for_kyc(&state, &ctx.scope, &id, &check, program_ref, now).await?;
    for _ in 0..PAN_ATTEMPTS_MAX {
        let mut fulfilment = Fulfilment::default();
        let mut created_events = Vec::new();
        if let Some(request) = input.card.clone() {
            let order = CardOrder::place(&id, request, cardholder.kyc.passed(), now);
            created_events.push(order_event(&ctx.scope, EventType::CardOrderCreated, &order, now));
            fulfilment.add(&state, &ctx.scope, &cardholder, order, now).await?;
        }
        created_events.append(&mut fulfilment.events);
        fulfilment.events = created_events;
        match insert_new(&state, &ctx, &cardholder, &check, &fulfilment, review.as_ref(), now).await {
            Ok(reply) => return Ok(reply),
            Err(e) if pan_collision(&e) => continue,
            Err(PostError::InsufficientFunds(_)) => {
                let unfunded = fulfilment.without_funds(&ctx.scope, now)?;
                return insert_new(&state, &ctx, &cardholder, &check, &unfunded, review.as_ref(), now)
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
                return update(&state, &ctx, &existing.id, &req).await;
            }
            Err(e) => return Err(post_failure(e)),
        }
    }
    Err(ApiError::internal("could not allocate a unique PAN"))
}

fn post_failure(e: PostError) -> ApiError {
    match e {
        PostError::InsufficientFunds(_) => crate::issuing::insufficient_program_funds(),
        PostError::Store(s) => s.into(),
    }
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

#[utoipa::path(
    post, path = "/cardholders/{cardholder_id}", tag = "Cardholders",
    request_body = CardholderRequest,
    params(("cardholder_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 200, body = CardholderEnvelope),
        (status = 400, body = crate::error::ErrorEnvelope), (status = 404, body = crate::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn update_cardholder(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CardholderRequest>,
) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    update(&state, &ctx, &id, &req).await
}

async fn update(state: &AppState, ctx: &Ctx, id: &CardholderId, req: &CardholderRequest) -> ApiResult<Reply> {
    if let Some(card) = &req.card {
        order_program(state, ctx, &parse_card(card)?).await?;
    }
    let mut unfunded = false;
    for _ in 0..UPDATE_ATTEMPTS_MAX + PAN_ATTEMPTS_MAX {
        match try_update(state, ctx, id, req, unfunded).await {
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

enum UpdateError {
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

async fn try_update(
    state: &AppState,
    ctx: &Ctx,
    id: &CardholderId,
    req: &CardholderRequest,
    unfunded: bool,
) -> Result<Reply, UpdateError> {
    let now = Timestamp::now();
    let current = state.cardholders.get_cardholder(&ctx.scope, id).await?;
    let Merged {
        mut cardholder,
        new_document,
        card,
    } = merge(&current, req, now.date(), min_age(state))?;
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

/// Loads a cardholder of this scope, or 404.
pub async fn load_cardholder(state: &AppState, ctx: &Ctx, id: &CardholderId) -> ApiResult<Cardholder> {
    state
        .cardholders
        .get_cardholder(&ctx.scope, id)
        .await
        .map_err(not_found)
}

/// A malformed ID cannot name an object in this scope: 404, like a foreign one.
pub fn parse_id(raw: &str) -> ApiResult<CardholderId> {
    CardholderId::parse(raw).map_err(|_| ApiError::not_found("cardholder"))
}

#[utoipa::path(
    get, path = "/cardholders", tag = "Cardholders",
    params(ListParams),
    responses((status = 200, body = CardholderList), (status = 400, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_cardholders(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let page = params.page(|id| CardholderId::parse(id).is_ok())?;
    let page = state.cardholders.list_cardholders(&ctx.scope, &page).await?;
    let ids: Vec<CardholderId> = page.items.iter().map(|c| c.id.clone()).collect();
    let cards = state.cards.cards_of(&ctx.scope, &ids).await?;
    let (cardholders, has_more, total) = page_items(&page, |c| CardholderEnvelope::with_cards(c, &cards));
    Reply::ok(&CardholderList {
        cardholders,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}", tag = "Cardholders",
    params(("cardholder_id" = String, Path)),
    responses((status = 200, body = CardholderEnvelope), (status = 404, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_cardholder(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    let cardholder = state
        .cardholders
        .get_cardholder(&ctx.scope, &id)
        .await
        .map_err(not_found)?;
    let cards = state.cards.cards_of(&ctx.scope, std::slice::from_ref(&id)).await?;
    Reply::ok(&CardholderEnvelope::with_cards(&cardholder, &cards))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("cardholder"),
        other => other.into(),
    }
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/kyc_checks", tag = "Cardholders",
    params(("cardholder_id" = String, Path), ListParams),
    responses((status = 200, body = KycCheckList), (status = 404, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_kyc_checks(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    StrictQuery(params): StrictQuery<ListParams>,
) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    let page = params.page(|k| KycCheckId::parse(k).is_ok())?;
    state
        .cardholders
        .get_cardholder(&ctx.scope, &id)
        .await
        .map_err(not_found)?;
    let page = state.cardholders.list_kyc_checks(&ctx.scope, &id, &page).await?;
    let (kyc_checks, has_more, total) = page_items(&page, |k| KycCheckEnvelope { kyc_check: k.into() });
    Reply::ok(&KycCheckList {
        kyc_checks,
        has_more,
        total,
    })
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/card_orders", tag = "Cardholders",
    params(("cardholder_id" = String, Path)),
    responses((status = 200, body = CardOrderList), (status = 404, body = crate::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_card_orders(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_id(&id)?;
    state
        .cardholders
        .get_cardholder(&ctx.scope, &id)
        .await
        .map_err(not_found)?;
    let orders = state.cardholders.list_card_orders(&ctx.scope, &id).await?;
    let mut card_orders: Vec<CardOrderView> = orders.iter().map(CardOrderView::from).collect();
    card_orders.reverse();
    Reply::ok(&CardOrderList { card_orders })
}

/// A KYC result that comes from the review workflow, and its source (the `provider` of its
/// `kyc_checks` entry).
#[derive(Debug, Clone, Copy)]
pub struct ReviewVerdict<'a> {
    pub result: KycResult,
    pub source: &'static str,
    /// What an API request commits with it (its idempotent answer).
    pub records: Option<&'a EffectRecords>,
}

impl ReviewVerdict<'_> {
    /// A reviewer's decision.
    pub fn manual(result: KycResult) -> Self {
        Self {
            result,
            source: "manual_review",
            records: None,
        }
    }
}

/// A verdict of the review workflow, committed with the case change that produced it: the
/// cardholder's KYC state and history, orders waiting for KYC fulfilled when it passes, events,
/// and the audit entry, all in one transaction.
pub async fn apply_review(
    state: &AppState,
    scope: &Scope,
    id: &CardholderId,
    verdict: ReviewVerdict<'_>,
    change: CaseChange<'_>,
    now: Timestamp,
) -> ApiResult<()> {
    let mut unfunded = false;
    for _ in 0..UPDATE_ATTEMPTS_MAX + PAN_ATTEMPTS_MAX {
        match try_apply_review(state, scope, id, verdict, change, unfunded, now).await {
            Err(UpdateError::Post(PostError::Store(e)))
                if e.is_conflict_on("cardholders_version", "cards_pan_hash") =>
            {
                continue;
            }
            Err(UpdateError::Post(PostError::InsufficientFunds(_))) if !unfunded => unfunded = true,
            Err(UpdateError::Post(PostError::Store(e)))
                if e.is_conflict_on("compliance_cases_version", "compliance_cases_version") =>
            {
                return Err(ApiError::conflict(
                    "case_changed",
                    "The case changed while this decision was made; reload it and decide again",
                ));
            }
            Err(UpdateError::Post(e)) => return Err(post_failure(e)),
            Err(UpdateError::Api(e)) => return Err(e),
            Ok(()) => return Ok(()),
        }
    }
    Err(ApiError::conflict(
        "concurrent_update",
        "The cardholder is being changed concurrently; retry",
    ))
}

async fn try_apply_review(
    state: &AppState,
    scope: &Scope,
    id: &CardholderId,
    verdict: ReviewVerdict<'_>,
    change: CaseChange<'_>,
    unfunded: bool,
    now: Timestamp,
) -> Result<(), UpdateError> {
    let current = state.cardholders.get_cardholder(scope, id).await?;
    let mut cardholder = current.clone();
    let check = KycCheck {
        id: KycCheckId::generate(),
        cardholder_id: id.clone(),
        provider: verdict.source.into(),
        result: verdict.result,
        created_at: now,
    };
    cardholder.kyc = cardholder.kyc.record(verdict.result, now);
    cardholder.updated_at = now;
    cardholder.version = current.version + 1;
    let mut fulfilment = Fulfilment::default();
    if cardholder.kyc.passed() && !current.kyc.passed() {
        for order in state
            .cardholders
            .list_card_orders(scope, id)
            .await?
            .into_iter()
            .filter(|o| o.status == CardOrderStatus::AwaitingKyc)
        {
            let pending = order
                .apply(CardOrderEvent::KycPassed, now)
                .map_err(ApiError::internal)?;
            fulfilment.add(state, scope, &cardholder, pending, now).await?;
        }
    }
    if unfunded {
        fulfilment = fulfilment.without_funds(scope, now)?;
    }
    let mut cards = state.cards.cards_of(scope, std::slice::from_ref(id)).await?;
    cards.extend(fulfilment.cards());
    let envelope = CardholderEnvelope::with_cards(&cardholder, &cards);
    let mut events = vec![Event::new(
        &scope.tenant_id,
        scope.environment,
        EventType::CardholderKycUpdated,
        id.as_str(),
        snapshot(&envelope.cardholder),
        now,
    )];
    events.extend(fulfilment.events.iter().cloned());
    let write = CardholderWrite {
        cardholder: &cardholder,
        kyc_check: Some(&check),
        card_orders: &fulfilment.orders,
        card_issues: &fulfilment.issues,
        events: &events,
        response: verdict.records,
        review: Some(ReviewWrite {
            open_case: None,
            change: Some(change),
        }),
    };
    state
        .cardholders
        .update_cardholder(scope, write, current.version, now)
        .await?;
    Ok(())
}
