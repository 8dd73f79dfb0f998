//! `/cardholders/{cardholder_id}/documents`: the custodian sends what KYC asked for (UPLOAD_FILE).
//! A document goes to the cardholder's open case, which returns to the reviewers' queue; a
//! cardholder waiting in UPLOAD_FILE moves to UNDER_REVIEW. The bytes are sealed and never served
//! back through the API: reviewers read them in the operations console.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use cardplane_domain::kyc::{KycResult, KycStatus};
use cardplane_store::compliance::CaseChange;
use cardplane_store::{EffectRecords, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::Ctx;
use crate::http::lookup::{load_cardholder, parse_cardholder_id};
use crate::http::reply::{Reply, render};
use crate::state::AppState;
use crate::workflows::documents::{Owner, UploadedDocumentView, put_sealed, read_upload};
use crate::workflows::onboarding::{ReviewVerdict, apply_review};

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedDocumentEnvelope {
    pub document: UploadedDocumentView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedDocumentList {
    pub documents: Vec<UploadedDocumentView>,
}

#[utoipa::path(
    post, path = "/cardholders/{cardholder_id}/documents", tag = "Cardholders",
    params(("cardholder_id" = String, Path)),
    request_body(content = crate::workflows::documents::DocumentUpload, content_type = "multipart/form-data", description = "`file` (PDF, PNG or JPEG, up to the configured size) and `kind` (identity_document, proof_of_address, selfie, other)"),
    responses(
        (status = 200, description = "Stored; attached to the cardholder's open case, if any", body = UploadedDocumentEnvelope),
        (status = 400, body = crate::http::error::ErrorEnvelope), (status = 404, body = crate::http::error::ErrorEnvelope),
        (status = 409, description = "The cardholder's case changed meanwhile; retry", body = crate::http::error::ErrorEnvelope),
        (status = 413, body = crate::http::error::ErrorEnvelope), (status = 415, body = crate::http::error::ErrorEnvelope),
    ),
    security(("basic_auth" = []))
)]
pub async fn upload_document(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&id)?;
    let cardholder = load_cardholder(&state, &ctx, &id).await?;
    let upload = read_upload(multipart, state.config.operators.document_max_bytes).await?;
    let now = ctx.now();
    let case = state.compliance.open_case_of(&id).await?;
    let owner = Owner {
        tenant_id: &ctx.scope.tenant_id,
        environment: ctx.scope.environment,
        cardholder_id: &id,
        case_id: case.as_ref().map(|c| &c.id),
        uploaded_by: ctx.key.id.to_string(),
    };
    let record = put_sealed(&state, upload, owner, now).await?;
    let body = render(&UploadedDocumentEnvelope {
        document: (&record).into(),
    })?;
    // One audit entry per upload: the request's own, committed with the document.
    let audit = ctx
        .audit
        .as_ref()
        .ok_or_else(|| ApiError::internal("a mutation without its audit draft"))?
        .with_effect(StatusCode::OK, &body)
        .with_details(serde_json::json!({
            "document_id": record.id,
            "case_id": record.case_id,
            "kind": record.kind,
            "size_bytes": record.size_bytes,
        }));
    let replay = EffectRecords {
        replay: ctx.idempotent_response(StatusCode::OK, &body),
        audit: None,
    };
    let Some(case) = case else {
        let records = EffectRecords {
            audit: Some(audit),
            ..replay
        };
        state
            .compliance
            .attach_document(&ctx.scope, &record, None, &records, now)
            .await?;
        return Ok(Reply::committed(StatusCode::OK, body));
    };
    let next = case
        .document_received(now)
        .map_err(|e| ApiError::conflict(e.code(), e.to_string()))?;
    let change = CaseChange {
        document: Some(&record),
        ..CaseChange::of(&next, case.version, &audit)
    };
    if cardholder.kyc.result.status() == KycStatus::UploadFile {
        let verdict = ReviewVerdict {
            result: KycResult::status_only(KycStatus::UnderReview),
            source: "document_upload",
            records: Some(&replay),
        };
        apply_review(&state, &ctx.scope, &id, verdict, change, now).await?;
    } else {
        state
            .compliance
            .attach_document(&ctx.scope, &record, Some(change), &replay, now)
            .await
            .map_err(|e| match e {
                e if e.is_conflict_on("compliance_cases_version", "compliance_cases_version") => {
                    ApiError::conflict("case_changed", "The cardholder's case changed meanwhile; retry")
                }
                other => other.into(),
            })?;
    }
    Ok(Reply::committed(StatusCode::OK, body))
}

#[utoipa::path(
    get, path = "/cardholders/{cardholder_id}/documents", tag = "Cardholders",
    params(("cardholder_id" = String, Path)),
    responses((status = 200, body = UploadedDocumentList), (status = 404, body = crate::http::error::ErrorEnvelope)),
    security(("basic_auth" = []))
)]
pub async fn list_documents(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> ApiResult<Reply> {
    let id = parse_cardholder_id(&id)?;
    load_cardholder(&state, &ctx, &id).await?;
    let documents = match state.compliance.list_documents(&id).await {
        Ok(d) => d,
        Err(StoreError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut documents: Vec<UploadedDocumentView> = documents.iter().map(UploadedDocumentView::from).collect();
    documents.reverse();
    Reply::ok(&UploadedDocumentList { documents })
}
