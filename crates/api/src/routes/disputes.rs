//! Disputes, custodian-facing: file a claim against a cleared purchase, follow it, add evidence,
//! withdraw it; each program's dispute policy; and, in the sandbox, the network's side of the
//! cycle. The rules live in `domain::dispute`, the workflow in `engine::disputes`.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{
    Claim, DisputeEvent, DisputePolicy, DisputeReason, DisputeStatus, FilingError, ProvisionalCreditPolicy, Ruling,
};
use cardplane_domain::ids::{CardId, CardholderId, DisputeId, ProgramId, TransactionId};
use cardplane_engine::disputes::view::{DisputeEnvelope, DisputeView, EvidenceEnvelope, EvidenceList, EvidenceView};
use cardplane_engine::disputes::{DisputeError, Step};
use cardplane_store::disputes::{DisputeFilter, DisputeRecord, Evidence, EvidenceSource};
use cardplane_store::{EffectRecords, Scope};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Ctx, JsonBody, ListParams, StrictQuery};
use crate::http::lookup::load_program;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::workflows::documents::{Owner, put_sealed, read_upload};

/// The answer to every dispute failure, in one place for the custodian and operator routes.
pub fn dispute_error(e: DisputeError) -> ApiError {
    match e {
        DisputeError::NotFound => ApiError::not_found("dispute"),
        DisputeError::Filing(f) => filing_error(&f),
        DisputeError::Illegal(x) => ApiError::conflict(x.code(), x.to_string()),
        DisputeError::CreditAlreadyGranted => ApiError::conflict("provisional_credit_already_granted", e.to_string()),
        DisputeError::NoCreditToReverse => ApiError::conflict("no_provisional_credit", e.to_string()),
        DisputeError::BalanceLimit => ApiError::balance_limit(),
        DisputeError::Busy => ApiError::conflict("concurrent_update", e.to_string()),
        DisputeError::Store(s) => s.into(),
    }
}

fn filing_error(f: &FilingError) -> ApiError {
    let unprocessable = |code: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            crate::http::error::ErrorType::InvalidRequestError,
            code,
            f.to_string(),
        )
    };
    match f {
        FilingError::NotDisputable => ApiError::conflict(f.code(), f.to_string()),
        FilingError::AmountTooLarge(_) => unprocessable(f.code()).with_param("amount"),
        FilingError::FiledInFuture => ApiError::invalid(f.code(), f.to_string()).with_param("customer_filed_at"),
        FilingError::WindowClosed(_) | FilingError::FraudLimit(_) => unprocessable(f.code()),
    }
}

pub(crate) fn required<T>(value: Option<T>, field: &str) -> ApiResult<T> {
    value.ok_or_else(|| ApiError::invalid("parameter_missing", format!("`{field}` is required")).with_param(field))
}

fn parse_time(raw: Option<&str>, field: &str) -> ApiResult<Option<Timestamp>> {
    raw.map(|r| {
        Timestamp::parse_rfc3339(r).ok_or_else(|| {
            ApiError::invalid("parameter_invalid", "an RFC 3339 instant, e.g. 2026-12-01T10:00:00Z").with_param(field)
        })
    })
    .transpose()
}

pub fn parse_dispute_id(raw: &str) -> ApiResult<DisputeId> {
    DisputeId::parse(raw).map_err(|_| ApiError::not_found("dispute"))
}

pub(crate) fn recorder(ctx: &Ctx) -> impl Fn(u16, &str) -> Option<EffectRecords> + Sync + '_ {
    move |status, body| ctx.records(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDisputeRequest {
    /// Minor units: all or part of what was cleared and is not yet disputed.
    #[schema(example = 2500)]
    pub amount: Option<i64>,
    /// fraud_card_present, fraud_card_not_present, no_authorization, declined_authorization,
    /// duplicate_processing, incorrect_amount, late_presentment, merchandise_not_received,
    /// not_as_described, cancelled_recurring, refund_not_processed, cancelled, atm_misdispense
    /// or other.
    #[schema(example = "merchandise_not_received")]
    pub reason: Option<String>,
    /// What the cardholder said, in their words (at most 2,000 characters).
    pub customer_note: Option<String>,
    /// When the cardholder told the custodian (RFC 3339); Regulation E's clock starts here.
    /// Default: now.
    pub customer_filed_at: Option<String>,
}

#[utoipa::path(
    post, path = "/transactions/{transaction_id}/disputes", tag = "Disputes",
    params(("transaction_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = FileDisputeRequest,
    responses(
        (status = 201, body = DisputeEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "transaction_not_disputable (not a cleared purchase)", body = crate::http::error::ErrorEnvelope),
        (status = 422, description = "dispute_amount_exceeds_disputable, dispute_window_closed or fraud_dispute_limit_reached", body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn file_dispute(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(transaction_id): Path<String>,
    JsonBody(req): JsonBody<FileDisputeRequest>,
) -> ApiResult<Reply> {
    let transaction = TransactionId::parse(&transaction_id).map_err(|_| ApiError::not_found("transaction"))?;
    let now = Timestamp::now();
    let claim = match parse_claim(req, now) {
        Ok(claim) => claim,
        Err(e) => {
            // Someone else's transaction is a 404 whatever the body says.
            state.transactions.get_transaction(&ctx.scope, &transaction).await?;
            return Err(e);
        }
    };
    let committed = state
        .disputes
        .file(&ctx.scope, &transaction, claim, &recorder(&ctx), now)
        .await
        .map_err(|e| match e {
            DisputeError::NotFound => ApiError::not_found("transaction"),
            e => dispute_error(e),
        })?;
    Ok(Reply::committed(StatusCode::CREATED, committed.body))
}

fn parse_claim(req: FileDisputeRequest, now: Timestamp) -> ApiResult<Claim> {
    let amount = required(req.amount, "amount")?;
    let reason = DisputeReason::parse(&required(req.reason, "reason")?)
        .ok_or_else(|| ApiError::invalid("parameter_invalid", "not one of the dispute reasons").with_param("reason"))?;
    if req.customer_note.as_ref().is_some_and(|n| n.chars().count() > 2_000) {
        return Err(ApiError::invalid("parameter_invalid", "at most 2,000 characters").with_param("customer_note"));
    }
    Ok(Claim {
        amount,
        reason,
        customer_note: req.customer_note,
        customer_filed_at: parse_time(req.customer_filed_at.as_deref(), "customer_filed_at")?.unwrap_or(now),
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DisputeListParams {
    /// 1 to 50, default 25.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
    /// new, pending_customer, submitted, representment, pre_arbitration, arbitration or closed.
    pub status: Option<String>,
    pub card_id: Option<String>,
    pub cardholder_id: Option<String>,
    pub program_id: Option<String>,
    /// Filed at or after this instant (RFC 3339).
    pub created_gte: Option<String>,
    /// Filed before this instant (RFC 3339).
    pub created_lt: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeList {
    pub disputes: Vec<DisputeEnvelope>,
    pub has_more: bool,
    pub total: i64,
}

fn bad_filter(field: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", format!("`{field}` is not valid here")).with_param(field)
}

/// The filters of a list, checked: an id of the wrong kind is a 400 naming it.
pub fn dispute_filter(
    scope: Option<Scope>,
    status: Option<&str>,
    card: Option<&str>,
    cardholder: Option<&str>,
    program: Option<&str>,
) -> ApiResult<DisputeFilter> {
    Ok(DisputeFilter {
        scope,
        statuses: status
            .map(|s| DisputeStatus::parse(s).ok_or_else(|| bad_filter("status")))
            .transpose()?
            .into_iter()
            .collect(),
        card_id: card
            .map(|c| CardId::parse(c).map_err(|_| bad_filter("card_id")))
            .transpose()?,
        cardholder_id: cardholder
            .map(|c| CardholderId::parse(c).map_err(|_| bad_filter("cardholder_id")))
            .transpose()?,
        program_id: program
            .map(|p| ProgramId::parse(p).map_err(|_| bad_filter("program_id")))
            .transpose()?,
        ..DisputeFilter::default()
    })
}

#[utoipa::path(
    get, path = "/disputes", tag = "Disputes", params(DisputeListParams),
    responses((status = 200, body = DisputeList), (status = 400, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_disputes(
    State(state): State<AppState>,
    ctx: Ctx,
    StrictQuery(q): StrictQuery<DisputeListParams>,
) -> ApiResult<Reply> {
    let page = ListParams {
        limit: q.limit,
        starting_after: q.starting_after,
        ending_before: q.ending_before,
    }
    .page(|id| DisputeId::parse(id).is_ok())?;
    let mut filter = dispute_filter(
        Some(ctx.scope.clone()),
        q.status.as_deref(),
        q.card_id.as_deref(),
        q.cardholder_id.as_deref(),
        q.program_id.as_deref(),
    )?;
    filter.created_gte = parse_time(q.created_gte.as_deref(), "created_gte")?;
    filter.created_lt = parse_time(q.created_lt.as_deref(), "created_lt")?;
    let page = state.disputes.store().list_disputes(&filter, &page).await?;
    let now = Timestamp::now();
    Reply::ok(&DisputeList {
        disputes: page
            .items
            .iter()
            .map(|r| DisputeEnvelope {
                dispute: DisputeView::of(r, now),
            })
            .collect(),
        has_more: page.has_more,
        total: page.total,
    })
}

pub(crate) async fn load(state: &AppState, scope: &Scope, raw: &str) -> ApiResult<DisputeRecord> {
    let id = parse_dispute_id(raw)?;
    state
        .disputes
        .store()
        .get_dispute(Some(scope), &id)
        .await
        .map_err(|e| dispute_error(e.into()))
}

#[utoipa::path(
    get, path = "/disputes/{dispute_id}", tag = "Disputes", params(("dispute_id" = String, Path)),
    responses((status = 200, body = DisputeEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_dispute(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let record = load(&state, &ctx.scope, &id).await?;
    Reply::ok(&DisputeEnvelope {
        dispute: DisputeView::of(&record, Timestamp::now()),
    })
}

/// Stores an uploaded document sealed and attaches it to the case as `source`'s evidence; the
/// answer (201, the evidence) is recorded with the change.
pub(crate) async fn attach_evidence(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    multipart: Result<Multipart, MultipartRejection>,
    source: EvidenceSource,
    event: Option<DisputeEvent>,
) -> ApiResult<Reply> {
    let record = load(state, &ctx.scope, id).await?;
    let upload = read_upload(multipart, state.config.operators.document_max_bytes).await?;
    let now = Timestamp::now();
    let owner = Owner {
        tenant_id: &ctx.scope.tenant_id,
        environment: ctx.scope.environment,
        cardholder_id: &record.dispute.cardholder_id,
        case_id: None,
        uploaded_by: ctx.key.id.to_string(),
    };
    let document = put_sealed(state, upload, owner, now).await?;
    let evidence = Evidence {
        id: document.id.clone(),
        dispute_id: record.dispute.id.clone(),
        source,
        document: document.clone(),
        created_at: now,
    };
    let body = serde_json::to_string(&EvidenceEnvelope {
        evidence: EvidenceView::from(&evidence),
    })
    .map_err(ApiError::internal)?;
    let step = Step::Evidence(Box::new(document), source, event);
    state
        .disputes
        .step(
            &ctx.scope,
            &record.dispute.id,
            step,
            &|_, _| ctx.records(StatusCode::CREATED, &body),
            now,
        )
        .await
        .map_err(dispute_error)?;
    Ok(Reply::committed(StatusCode::CREATED, body))
}

#[utoipa::path(
    post, path = "/disputes/{dispute_id}/evidence", tag = "Disputes",
    params(("dispute_id" = String, Path)),
    request_body(content = crate::workflows::documents::DocumentUpload, content_type = "multipart/form-data", description = "`file` (PDF, PNG or JPEG, up to the configured size) and `kind` (use `other` for receipts and correspondence)"),
    responses(
        (status = 201, body = EvidenceEnvelope), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
        (status = 413, body = crate::http::error::ErrorEnvelope), (status = 415, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn add_evidence(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Reply> {
    attach_evidence(&state, &ctx, &id, multipart, EvidenceSource::Custodian, None).await
}

#[utoipa::path(
    get, path = "/disputes/{dispute_id}/evidence", tag = "Disputes", params(("dispute_id" = String, Path)),
    responses((status = 200, body = EvidenceList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_evidence(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let record = load(&state, &ctx.scope, &id).await?;
    let evidence = state.disputes.store().list_evidence(&record.dispute.id).await?;
    Reply::ok(&EvidenceList {
        data: evidence.iter().map(EvidenceView::from).collect(),
    })
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why (kept with the case; at most 500 characters).
    pub reason: Option<String>,
}

pub(crate) fn reason_of(req: ReasonRequest) -> ApiResult<Option<String>> {
    match req.reason {
        Some(r) if r.chars().count() > 500 => {
            Err(ApiError::invalid("parameter_invalid", "at most 500 characters").with_param("reason"))
        }
        r => Ok(r),
    }
}

#[utoipa::path(
    post, path = "/disputes/{dispute_id}/withdraw", tag = "Disputes",
    params(("dispute_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "Closed as withdrawn; provisional credit granted is taken back", body = DisputeEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn withdraw_dispute(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReasonRequest>,
) -> ApiResult<Reply> {
    let id = parse_dispute_id(&id)?;
    let step = Step::Move(
        DisputeEvent::Withdraw,
        Some(reason_of(req)?.unwrap_or_else(|| "withdrawn".into())),
    );
    let committed = state
        .disputes
        .step(&ctx.scope, &id, step, &recorder(&ctx), Timestamp::now())
        .await
        .map_err(dispute_error)?;
    Ok(Reply::committed(StatusCode::OK, committed.body))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputePolicyBody {
    /// Days after settlement a claim may be filed (default 120).
    pub filing_window_days: Option<u32>,
    /// Fraud disputes a card may have (default 15).
    pub fraud_disputes_per_card_max: Option<u32>,
    /// Business days to provisional credit (default 10).
    pub provisional_credit_business_days: Option<u32>,
    /// Days to resolution (default 45).
    pub resolution_days: Option<u32>,
    /// Days to resolution for point-of-sale, foreign and new-account cases (default 90).
    pub extended_resolution_days: Option<u32>,
    /// automatic, kyc_verified_only (Regulation E exempts unverified prepaid) or manual.
    pub provisional_credit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputePolicyEnvelope {
    pub dispute_policy: DisputePolicyBody,
}

fn policy_view(p: &DisputePolicy) -> DisputePolicyEnvelope {
    DisputePolicyEnvelope {
        dispute_policy: DisputePolicyBody {
            filing_window_days: Some(p.filing_window_days),
            fraud_disputes_per_card_max: Some(p.fraud_disputes_per_card_max),
            provisional_credit_business_days: Some(p.provisional_credit_business_days),
            resolution_days: Some(p.resolution_days),
            extended_resolution_days: Some(p.extended_resolution_days),
            provisional_credit: Some(p.provisional_credit.as_str().to_owned()),
        },
    }
}

#[utoipa::path(
    get, path = "/programs/{program_id}/dispute_policy", tag = "Disputes", params(("program_id" = String, Path)),
    responses((status = 200, body = DisputePolicyEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn get_policy(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let program = load_program(&state, &ctx, &id).await?;
    let policy = state.disputes.store().dispute_policy(&program.id).await?;
    Reply::ok(&policy_view(&policy))
}

fn days(value: Option<u32>, default: u32, field: &str, max: u32) -> ApiResult<u32> {
    match value.unwrap_or(default) {
        d if (1..=max).contains(&d) => Ok(d),
        _ => Err(ApiError::invalid("parameter_invalid", format!("1 to {max}")).with_param(field)),
    }
}

#[utoipa::path(
    put, path = "/programs/{program_id}/dispute_policy", tag = "Disputes",
    params(("program_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = DisputePolicyBody,
    responses(
        (status = 200, description = "Fields left out take their defaults", body = DisputePolicyEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn put_policy(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DisputePolicyBody>,
) -> ApiResult<Reply> {
    let program = load_program(&state, &ctx, &id).await?;
    let d = DisputePolicy::default();
    let policy = DisputePolicy {
        filing_window_days: days(req.filing_window_days, d.filing_window_days, "filing_window_days", 540)?,
        fraud_disputes_per_card_max: days(
            req.fraud_disputes_per_card_max,
            d.fraud_disputes_per_card_max,
            "fraud_disputes_per_card_max",
            1_000,
        )?,
        provisional_credit_business_days: days(
            req.provisional_credit_business_days,
            d.provisional_credit_business_days,
            "provisional_credit_business_days",
            60,
        )?,
        resolution_days: days(req.resolution_days, d.resolution_days, "resolution_days", 365)?,
        extended_resolution_days: days(
            req.extended_resolution_days,
            d.extended_resolution_days,
            "extended_resolution_days",
            365,
        )?,
        provisional_credit: match req.provisional_credit.as_deref() {
            None => d.provisional_credit,
            Some(p) => ProvisionalCreditPolicy::parse(p).ok_or_else(|| {
                ApiError::invalid("parameter_invalid", "automatic, kyc_verified_only or manual")
                    .with_param("provisional_credit")
            })?,
        },
    };
    let body = serde_json::to_string(&policy_view(&policy)).map_err(ApiError::internal)?;
    let records = ctx.records(StatusCode::OK, &body);
    state
        .disputes
        .store()
        .put_dispute_policy(&program.id, &policy, records.as_ref(), &ctx.scope, Timestamp::now())
        .await?;
    Ok(Reply::committed(StatusCode::OK, body))
}

/// A network or issuer step by name (the sandbox simulator and the operators' record of what the
/// network answered share it).
pub fn network_event(
    action: &str,
    ruling: Option<&str>,
    recovered: Option<i64>,
    status: DisputeStatus,
) -> ApiResult<DisputeEvent> {
    let bad = |m: &str| ApiError::invalid("parameter_invalid", m.to_owned());
    Ok(match action {
        "submit" => DisputeEvent::Submit,
        "merchant_accept" if status == DisputeStatus::PreArbitration => DisputeEvent::PreArbitrationAccepted,
        "merchant_accept" => DisputeEvent::MerchantAccepted,
        "representment" => DisputeEvent::Represented,
        "accept_representment" => DisputeEvent::AcceptRepresentment,
        "pre_arbitrate" => DisputeEvent::PreArbitrate,
        "arbitrate" => DisputeEvent::Arbitrate,
        "ruling" => DisputeEvent::Ruled(match ruling {
            Some("cardholder") => Ruling::ForCardholder,
            Some("merchant") => Ruling::ForMerchant,
            Some("partial") => Ruling::Partly(recovered.ok_or_else(|| {
                ApiError::invalid("parameter_missing", "a partial ruling needs `recovered_amount`")
                    .with_param("recovered_amount")
            })?),
            _ => return Err(bad("`ruling` is cardholder, merchant or partial").with_param("ruling")),
        }),
        _ => return Err(bad("not a network action").with_param("action")),
    })
}
