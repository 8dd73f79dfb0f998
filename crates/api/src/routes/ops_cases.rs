//! The compliance queue: cases, notes, documents and approval decisions (per-program approval
//! chains: `ops_chains`). Decisions that change a cardholder's KYC go through the cardholder write path.

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::FieldError;
use cardplane_domain::Timestamp;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::compliance::{
    Case, CaseError, CaseReason, CaseStatus, ChainTrigger, Decision, upload_file_verdict,
};
use cardplane_domain::ids::{CardholderId, CaseId, CaseNoteId, DocumentId, ProgramId, TenantId, UserId};
use cardplane_domain::kyc::FileReason;
use cardplane_domain::people::Action;
use cardplane_store::compliance::{CaseChange, CaseFilter, CaseNote, ScopedObject};
use cardplane_store::{Scope, StoreError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, StrictQuery};
use crate::http::lookup::load_assignee;
use crate::http::people::Staff;
use crate::http::reply::Reply;
use crate::state::AppState;
use crate::views::{CardholderSummary, CaseDetail, CaseList, CaseView, NoteView};
use crate::workflows::documents::{Owner, UploadedDocumentView, open_sealed, put_sealed, read_upload};
use crate::workflows::onboarding::{ReviewVerdict, apply_review};
use crate::workflows::review::chain_for;

fn case_error(e: CaseError) -> ApiError {
    ApiError::conflict(e.code(), e.to_string())
}

fn parse_case_id(raw: &str) -> ApiResult<CaseId> {
    CaseId::parse(raw).map_err(|_| ApiError::not_found("case"))
}

/// Cases are operators' work: tenant users never see them (the matrix gives them no case
/// action), so loading needs only the permission.
async fn load_case(state: &AppState, staff: &Staff, action: Action, raw: &str) -> ApiResult<Case> {
    staff.require(action)?;
    let id = parse_case_id(raw)?;
    state.compliance.get_case(&id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("case"),
        other => other.into(),
    })
}

/// The same case, touched: its version moves so concurrent changes are noticed.
fn bumped(case: &Case, now: Timestamp) -> Case {
    Case {
        updated_at: now,
        version: case.version + 1,
        ..case.clone()
    }
}

fn case_scope(c: &Case) -> Scope {
    Scope {
        tenant_id: c.tenant_id.clone(),
        environment: c.environment,
    }
}

/// An audit entry about a case by this person.
fn case_audit(staff: &Staff, action: &str, case: &Case, details: serde_json::Value) -> AuditRecord {
    let mut a = staff.audit(action, "case", case.id.as_str());
    a.tenant_id = Some(case.tenant_id.to_string());
    a.environment = Some(case.environment.as_str().to_owned());
    a.details = details;
    a
}

fn conflict_on_version(e: StoreError) -> ApiError {
    if e.is_conflict_on("compliance_cases_version", "compliance_cases_version") {
        ApiError::conflict("case_changed", "The case changed meanwhile; reload it and retry")
    } else if e.is_conflict_on("case_approvals", "case_approvals.user_id") {
        case_error(CaseError::SamePersonTwice)
    } else {
        e.into()
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// Comma-separated statuses; default: every open status.
    pub status: Option<String>,
    /// A user id, `me`, or `none` (unassigned).
    pub assignee: Option<String>,
    pub reason: Option<String>,
    pub tenant_id: Option<String>,
    pub program_id: Option<String>,
    pub cardholder_id: Option<String>,
    /// `true`: only cases past their SLA.
    #[param(value_type = Option<bool>)]
    pub overdue: Option<String>,
    /// 1 to 100, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// A case id: the page after it (older cases).
    pub starting_after: Option<String>,
}

pub(crate) fn bad(param: &str, message: &str) -> ApiError {
    ApiError::invalid("parameter_invalid", message).with_param(param)
}

pub fn case_filter(q: &CaseQuery, staff: &Staff) -> ApiResult<(CaseFilter, u32)> {
    let mut f = CaseFilter::default();
    match q.status.as_deref() {
        None => {
            f.statuses = CaseStatus::ALL.iter().copied().filter(|s| !s.is_closed()).collect();
        }
        Some("all") => {}
        Some(list) => {
            for s in list.split(',') {
                f.statuses
                    .push(CaseStatus::parse(s.trim()).ok_or_else(|| bad("status", "unknown case status"))?);
            }
        }
    }
    match q.assignee.as_deref() {
        None => {}
        Some("me") => f.assignee_id = Some(staff.person.id.clone()),
        Some("none") => f.unassigned = true,
        Some(id) => f.assignee_id = Some(UserId::parse(id).map_err(|_| bad("assignee", "a user id, me or none"))?),
    }
    if let Some(r) = &q.reason {
        f.reason = Some(CaseReason::parse(r).ok_or_else(|| bad("reason", "unknown case reason"))?);
    }
    if let Some(t) = &q.tenant_id {
        f.tenant_id = Some(TenantId::parse(t).map_err(|_| bad("tenant_id", "not a tenant id"))?);
    }
    if let Some(p) = &q.program_id {
        f.program_id = Some(ProgramId::parse(p).map_err(|_| bad("program_id", "not a program id"))?);
    }
    if let Some(c) = &q.cardholder_id {
        f.cardholder_id = Some(CardholderId::parse(c).map_err(|_| bad("cardholder_id", "not a cardholder id"))?);
    }
    match q.overdue.as_deref() {
        None | Some("false") => {}
        Some("true") => f.overdue_at = Some(Timestamp::now()),
        Some(_) => return Err(bad("overdue", "true or false")),
    }
    if let Some(c) = &q.starting_after {
        f.before_id = Some(CaseId::parse(c).map_err(|_| bad("starting_after", "not a case id"))?);
    }
    let limit = match &q.limit {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad("limit", "between 1 and 100"))?,
    };
    Ok((f, limit))
}

#[utoipa::path(
    get, path = "/ops/cases", tag = "Operations console",
    params(CaseQuery),
    responses((status = 200, body = CaseList), (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn list_cases(
    State(state): State<AppState>,
    staff: Staff,
    StrictQuery(q): StrictQuery<CaseQuery>,
) -> ApiResult<Reply> {
    staff.require(Action::ViewCases)?;
    let (filter, limit) = case_filter(&q, &staff)?;
    let mut cases = state.compliance.list_cases(&filter, limit + 1).await?;
    let has_more = cases.len() > limit as usize;
    cases.truncate(limit as usize);
    let now = Timestamp::now();
    Reply::ok(&CaseList {
        cases: cases.iter().map(|c| CaseView::of(c, now)).collect(),
        has_more,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCaseRequest {
    pub cardholder_id: String,
    /// Why a person should look; becomes the case's first note.
    pub note: String,
}

fn note_body(raw: &str, param: &str) -> ApiResult<String> {
    let body = raw.trim();
    if body.is_empty() || body.chars().count() > 10_000 {
        return Err(ApiError::from(FieldError::invalid(
            param,
            "between 1 and 10000 characters",
        )));
    }
    Ok(body.to_owned())
}

#[utoipa::path(
    post, path = "/ops/cases", tag = "Operations console",
    request_body = OpenCaseRequest,
    responses(
        (status = 201, body = CaseView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn open_case(
    State(state): State<AppState>,
    staff: Staff,
    JsonBody(req): JsonBody<OpenCaseRequest>,
) -> ApiResult<Reply> {
    staff.require(Action::WorkCases)?;
    let body = note_body(&req.note, "note")?;
    let cardholder_id = CardholderId::parse(&req.cardholder_id).map_err(|_| ApiError::not_found("cardholder"))?;
    let scope = state
        .compliance
        .scope_of(ScopedObject::Cardholder(&cardholder_id))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("cardholder"),
            other => other.into(),
        })?;
    let now = Timestamp::now();
    let chain = chain_for(&state, None, ChainTrigger::Default).await?;
    let case = Case::open(
        &scope.tenant_id,
        scope.environment,
        &cardholder_id,
        None,
        CaseReason::Manual,
        chain,
        Some(staff.person.id.clone()),
        now,
    );
    let audit = case_audit(&staff, "case.opened", &case, serde_json::json!({ "reason": "manual" }));
    state.compliance.insert_case(&case, &audit).await.map_err(|e| {
        if e.is_conflict_on("compliance_cases_one_open", "compliance_cases_one_open") {
            ApiError::conflict("case_already_open", "This cardholder already has an open case")
        } else {
            e.into()
        }
    })?;
    let note = CaseNote {
        id: CaseNoteId::generate(),
        case_id: case.id.clone(),
        author_id: Some(staff.person.id.clone()),
        body,
        created_at: now,
    };
    let touched = bumped(&case, now);
    let note_audit = case_audit(&staff, "case.note_added", &case, serde_json::json!({}));
    state
        .compliance
        .update_case(CaseChange {
            note: Some(&note),
            ..CaseChange::of(&touched, case.version, &note_audit)
        })
        .await?;
    Reply::created(&CaseView::of(&touched, now))
}

#[utoipa::path(
    get, path = "/ops/cases/{case_id}", tag = "Operations console",
    params(("case_id" = String, Path)),
    responses((status = 200, body = CaseDetail), (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("session_cookie" = []))
)]
pub async fn get_case(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> ApiResult<Reply> {
    let case = load_case(&state, &staff, Action::ViewCases, &id).await?;
    let c = state
        .cardholders
        .get_cardholder(&case_scope(&case), &case.cardholder_id)
        .await?;
    let notes = state.compliance.list_notes(&case.id).await?;
    let documents = state.compliance.list_documents(&case.cardholder_id).await?;
    let kyc = c.kyc.result;
    Reply::ok(&CaseDetail {
        case: CaseView::of(&case, Timestamp::now()),
        cardholder: CardholderSummary {
            id: c.id.to_string(),
            first_name: c.identity.first_name.clone(),
            last_name: c.identity.last_name.clone(),
            email: c.email.as_str().to_owned(),
            country: c.identity.address.country.as_str().to_owned(),
            date_of_birth: c.identity.date_of_birth.to_iso(),
            document_type: c.document_type.as_str().to_owned(),
            document_last4: c.document_last4.clone(),
            kyc_status: kyc.status().as_str(),
            kyc_identity_reason: kyc.identity_reason().map(|r| r.as_str()),
            kyc_address_reason: kyc.address_reason().map(|r| r.as_str()),
            kyc_file_reason: kyc.file_reason().map(|r| r.as_str()),
        },
        notes: notes
            .iter()
            .map(|n| NoteView {
                id: n.id.to_string(),
                author_id: n.author_id.as_ref().map(ToString::to_string),
                body: n.body.clone(),
                created_at: n.created_at.to_rfc3339(),
            })
            .collect(),
        documents: documents.iter().map(UploadedDocumentView::from).collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// An operator who may work cases, or null to return the case to the queue.
    pub assignee_id: Option<String>,
}

#[utoipa::path(
    post, path = "/ops/cases/{case_id}/assign", tag = "Operations console",
    params(("case_id" = String, Path)),
    request_body = AssignRequest,
    responses(
        (status = 200, body = CaseView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn assign_case(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AssignRequest>,
) -> ApiResult<Reply> {
    let next = assign(&state, &staff, &id, req.assignee_id.as_deref()).await?;
    Reply::ok(&CaseView::of(&next, next.updated_at))
}

/// Assigns a case to someone who may work or decide cases (`None`: back to the queue); shared by
/// `/ops` and the console.
pub async fn assign(state: &AppState, staff: &Staff, id: &str, assignee_id: Option<&str>) -> ApiResult<Case> {
    let case = load_case(state, staff, Action::WorkCases, id).await?;
    let assignee = load_assignee(state, assignee_id, |p| {
        p.can(Action::WorkCases) || p.can(Action::DecideCases)
    })
    .await?;
    let now = Timestamp::now();
    let next = case.assign(assignee.clone(), now).map_err(case_error)?;
    let audit = case_audit(
        staff,
        "case.assigned",
        &case,
        serde_json::json!({ "from": case.assignee_id, "to": assignee }),
    );
    state
        .compliance
        .update_case(CaseChange::of(&next, case.version, &audit))
        .await
        .map_err(conflict_on_version)?;
    Ok(next)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    pub body: String,
}

#[utoipa::path(
    post, path = "/ops/cases/{case_id}/notes", tag = "Operations console",
    params(("case_id" = String, Path)),
    request_body = NoteRequest,
    responses(
        (status = 201, body = NoteView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn add_note(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<NoteRequest>,
) -> ApiResult<Reply> {
    let note = add_case_note(&state, &staff, &id, &req.body).await?;
    Reply::created(&NoteView {
        id: note.id.to_string(),
        author_id: note.author_id.as_ref().map(ToString::to_string),
        body: note.body,
        created_at: note.created_at.to_rfc3339(),
    })
}

/// Adds a note to a case (closed ones too); shared by `/ops` and the console.
pub async fn add_case_note(state: &AppState, staff: &Staff, id: &str, body: &str) -> ApiResult<CaseNote> {
    let case = load_case(state, staff, Action::WorkCases, id).await?;
    let body = note_body(body, "body")?;
    let now = Timestamp::now();
    // Notes go on closed cases too (follow-ups); the case's version still moves.
    let next = bumped(&case, now);
    let note = CaseNote {
        id: CaseNoteId::generate(),
        case_id: case.id.clone(),
        author_id: Some(staff.person.id.clone()),
        body,
        created_at: now,
    };
    let audit = case_audit(
        staff,
        "case.note_added",
        &case,
        serde_json::json!({ "note_id": note.id }),
    );
    state
        .compliance
        .update_case(CaseChange {
            note: Some(&note),
            ..CaseChange::of(&next, case.version, &audit)
        })
        .await
        .map_err(conflict_on_version)?;
    Ok(note)
}

#[utoipa::path(
    post, path = "/ops/cases/{case_id}/documents", tag = "Operations console",
    params(("case_id" = String, Path)),
    request_body(content = crate::workflows::documents::DocumentUpload, content_type = "multipart/form-data", description = "`file` (PDF, PNG or JPEG, up to the configured size) and `kind` (identity_document, proof_of_address, selfie, other)"),
    responses(
        (status = 201, body = UploadedDocumentView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
        (status = 413, body = crate::http::error::ErrorEnvelope), (status = 415, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn upload_document(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Reply> {
    let case = load_case(&state, &staff, Action::WorkCases, &id).await?;
    let upload = read_upload(multipart, state.config.operators.document_max_bytes).await?;
    let now = Timestamp::now();
    let owner = Owner {
        tenant_id: &case.tenant_id,
        environment: case.environment,
        cardholder_id: &case.cardholder_id,
        case_id: Some(&case.id),
        uploaded_by: staff.person.id.to_string(),
    };
    let record = put_sealed(&state, upload, owner, now).await?;
    let doc_id = record.id.clone();
    let next = case.document_received(now).map_err(case_error)?;
    let audit = case_audit(
        &staff,
        "document.uploaded",
        &case,
        serde_json::json!({ "document_id": doc_id, "kind": record.kind, "size_bytes": record.size_bytes }),
    );
    state
        .compliance
        .update_case(CaseChange {
            document: Some(&record),
            ..CaseChange::of(&next, case.version, &audit)
        })
        .await
        .map_err(conflict_on_version)?;
    Reply::created(&UploadedDocumentView::from(&record))
}

#[utoipa::path(
    get, path = "/ops/documents/{document_id}/content", tag = "Operations console",
    params(("document_id" = String, Path)),
    responses(
        (status = 200, description = "The document's bytes, with its content type"),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn download_document(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    staff.require(Action::ViewDocuments)?;
    let id = DocumentId::parse(&id).map_err(|_| ApiError::not_found("document"))?;
    let doc = state.compliance.get_document(&id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("document"),
        other => other.into(),
    })?;
    let bytes = open_sealed(&state, &doc).await?;
    let mut audit = staff.audit("document.viewed", "document", doc.id.as_str());
    audit.tenant_id = Some(doc.tenant_id.to_string());
    audit.environment = Some(doc.environment.as_str().to_owned());
    state.audit.append_audit(&audit).await?;
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.content_type).map_err(ApiError::internal)?,
    );
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    Ok(r)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestDocumentsRequest {
    /// UNRELATED_FILE, WRONG_FILE or BLURRY: why the cardholder must upload again. The
    /// cardholder's kyc_status becomes UPLOAD_FILE with this kyc_file_reason.
    pub kyc_file_reason: String,
}

#[utoipa::path(
    post, path = "/ops/cases/{case_id}/request_documents", tag = "Operations console",
    params(("case_id" = String, Path)),
    request_body = RequestDocumentsRequest,
    responses(
        (status = 200, body = CaseView), (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, body = crate::http::error::ErrorEnvelope), (status = 403, body = crate::http::error::ErrorEnvelope),
        (status = 404, body = crate::http::error::ErrorEnvelope), (status = 409, body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn request_documents(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RequestDocumentsRequest>,
) -> ApiResult<Reply> {
    let case = load_case(&state, &staff, Action::WorkCases, &id).await?;
    let reason = FileReason::parse(&req.kyc_file_reason)
        .ok_or_else(|| bad("kyc_file_reason", "UNRELATED_FILE, WRONG_FILE or BLURRY"))?;
    let now = Timestamp::now();
    let next = case.request_documents(now).map_err(case_error)?;
    let audit = case_audit(
        &staff,
        "case.documents_requested",
        &case,
        serde_json::json!({ "kyc_file_reason": reason.as_str() }),
    );
    let change = CaseChange::of(&next, case.version, &audit);
    apply_review(
        &state,
        &case_scope(&case),
        &case.cardholder_id,
        ReviewVerdict::manual(upload_file_verdict(reason)),
        change,
        now,
    )
    .await?;
    Reply::ok(&CaseView::of(&next, now))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// approve or reject.
    pub decision: String,
    pub comment: Option<String>,
}

#[utoipa::path(
    post, path = "/ops/cases/{case_id}/decisions", tag = "Operations console",
    params(("case_id" = String, Path)),
    request_body = DecisionRequest,
    responses(
        (status = 200, description = "The step is recorded; the last approval passes KYC, a rejection rejects it", body = CaseView),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 401, body = crate::http::error::ErrorEnvelope),
        (status = 403, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "Wrong role for the step, four eyes, or a closed case", body = crate::http::error::ErrorEnvelope),
    ),
    security(("session_cookie" = []))
)]
pub async fn decide_case(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> ApiResult<Reply> {
    let next = decide(&state, &staff, &id, &req.decision, req.comment.as_deref()).await?;
    Reply::ok(&CaseView::of(&next, next.updated_at))
}

/// Records this person's decision on the case's next approval step (the role and four-eyes rules
/// are the case's own); the last approval or any rejection settles the cardholder's KYC. Shared by
/// `/ops` and the console.
pub async fn decide(
    state: &AppState,
    staff: &Staff,
    id: &str,
    decision: &str,
    comment: Option<&str>,
) -> ApiResult<Case> {
    let case = load_case(state, staff, Action::DecideCases, id).await?;
    let decision = Decision::parse(decision).ok_or_else(|| bad("decision", "approve or reject"))?;
    let comment = comment.map(|c| note_body(c, "comment")).transpose()?;
    let now = Timestamp::now();
    let next = case.decide(&staff.person, decision, comment, now).map_err(case_error)?;
    let approval = next.approvals.last().expect("a decision records an approval");
    let audit = case_audit(
        staff,
        "case.decided",
        &case,
        serde_json::json!({
            "step": approval.step,
            "role": approval.role.as_str(),
            "decision": decision.as_str(),
            "status": { "from": case.status.as_str(), "to": next.status.as_str() },
        }),
    );
    match next.verdict() {
        Some(verdict) => {
            let change = CaseChange {
                approval: Some(approval),
                ..CaseChange::of(&next, case.version, &audit)
            };
            let verdict = ReviewVerdict::manual(verdict);
            apply_review(state, &case_scope(&case), &case.cardholder_id, verdict, change, now).await?;
        }
        None => state
            .compliance
            .update_case(CaseChange {
                approval: Some(approval),
                ..CaseChange::of(&next, case.version, &audit)
            })
            .await
            .map_err(conflict_on_version)?,
    }
    Ok(next)
}
