//! Document uploads: the multipart body read and checked (type, size, magic bytes), sealed and
//! stored through the engine's document storage port, and opened again for reviewers.

use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;
use axum::http::StatusCode;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::ids::{CardholderId, CaseId, DocumentId, TenantId};
use cardplane_store::compliance::DocumentRecord;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult, ErrorType};
use crate::http::extract::too_large;
use crate::state::AppState;

/// Content types a document may have, checked against the file's own first bytes too.
const ALLOWED_TYPES: [(&str, &[u8]); 3] = [
    ("application/pdf", b"%PDF-"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
];

cardplane_domain::wire_enum!(DocumentKind {
    IdentityDocument => "identity_document",
    ProofOfAddress => "proof_of_address",
    Selfie => "selfie",
    Other => "other",
});

// Describes the multipart body in the OpenAPI document; the handlers read the parts themselves
// (`read_upload`), checking size and type as they stream in.
/// A document upload: the file and what it is.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the multipart body; never constructed")]
pub struct DocumentUpload {
    /// The file: PDF, PNG or JPEG (declared type and first bytes), at most
    /// `operators.document_max_bytes` (10 MiB by default).
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    kind: DocumentUploadKind,
}

/// What the document is.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "describes the multipart body; never constructed")]
pub enum DocumentUploadKind {
    IdentityDocument,
    ProofOfAddress,
    Selfie,
    Other,
}

/// What an uploaded document looks like from outside: never its bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedDocumentView {
    pub id: String,
    pub cardholder_id: String,
    /// The case it was attached to, if the cardholder had one open.
    pub case_id: Option<String>,
    /// identity_document, proof_of_address, selfie or other.
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// The person (`usr_...`) or API key (`key_...`) that uploaded it.
    pub uploaded_by: String,
    pub created_at: String,
}

impl From<&DocumentRecord> for UploadedDocumentView {
    fn from(d: &DocumentRecord) -> Self {
        Self {
            id: d.id.to_string(),
            cardholder_id: d.cardholder_id.to_string(),
            case_id: d.case_id.as_ref().map(|c| c.to_string()),
            kind: d.kind.clone(),
            file_name: d.file_name.clone(),
            content_type: d.content_type.clone(),
            size_bytes: d.size_bytes,
            sha256: d.sha256.clone(),
            uploaded_by: d.uploaded_by.clone(),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

/// A document as received, checked: size, kind, and a declared type its bytes agree with.
pub struct Upload {
    file_name: String,
    content_type: &'static str,
    kind: DocumentKind,
    bytes: Vec<u8>,
}

fn multipart_invalid(message: &str) -> ApiError {
    ApiError::invalid("multipart_invalid", message)
}

/// Reads a multipart body of `file` and `kind`, refusing it whole past `limit` bytes.
// Long: a multipart body is read field by field with every refusal (size, type, magic bytes,
// missing field) where it happens.
pub async fn read_upload(multipart: Result<Multipart, MultipartRejection>, limit: usize) -> ApiResult<Upload> {
    let mut multipart = multipart.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorType::InvalidRequestError,
            "unsupported_media_type",
            "Upload documents as multipart/form-data with `file` and `kind`",
        )
    })?;
    let mut file: Option<(String, String, Vec<u8>)> = None;
    let mut kind: Option<DocumentKind> = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|_| multipart_invalid("The multipart body could not be read"))?
    {
        match field.name() {
            Some("file") => {
                let name = field
                    .file_name()
                    .unwrap_or("document")
                    .chars()
                    .take(200)
                    .collect::<String>();
                let declared = field.content_type().unwrap_or("application/octet-stream").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large()
                    } else {
                        multipart_invalid("The multipart body could not be read")
                    }
                })? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            ErrorType::InvalidRequestError,
                            "document_too_large",
                            format!("Documents may be at most {limit} bytes"),
                        )
                        .with_param("file"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((name, declared, bytes));
            }
            Some("kind") => {
                let text = field
                    .text()
                    .await
                    .map_err(|_| multipart_invalid("`kind` could not be read"))?;
                kind = Some(DocumentKind::parse(text.trim()).ok_or_else(|| {
                    ApiError::invalid(
                        "parameter_invalid",
                        "identity_document, proof_of_address, selfie or other",
                    )
                    .with_param("kind")
                })?);
            }
            _ => {
                return Err(ApiError::invalid(
                    "parameter_unknown",
                    "Only `file` and `kind` are accepted",
                ));
            }
        }
    }
    let (file_name, declared, bytes) =
        file.ok_or_else(|| ApiError::invalid("parameter_missing", "`file` is required").with_param("file"))?;
    let kind = kind.ok_or_else(|| ApiError::invalid("parameter_missing", "`kind` is required").with_param("kind"))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("parameter_invalid", "the file is empty").with_param("file"));
    }
    let content_type = ALLOWED_TYPES
        .iter()
        .find(|(mime, magic)| *mime == declared && bytes.starts_with(magic))
        .map(|(mime, _)| *mime)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorType::InvalidRequestError,
                "document_type_forbidden",
                "Documents must be PDF, PNG or JPEG (declared and actual type alike)",
            )
            .with_param("file")
        })?;
    Ok(Upload {
        file_name,
        content_type,
        kind,
        bytes,
    })
}

/// Where a document belongs and who brought it.
pub struct Owner<'a> {
    pub tenant_id: &'a TenantId,
    pub environment: Environment,
    pub cardholder_id: &'a CardholderId,
    pub case_id: Option<&'a CaseId>,
    /// `usr_...` or `key_...`.
    pub uploaded_by: String,
}

/// Seals and stores the bytes, then describes them; the caller commits the record (bytes first:
/// a row never names a file that is not there, and an orphan file is harmless).
pub async fn put_sealed(
    state: &AppState,
    upload: Upload,
    owner: Owner<'_>,
    now: Timestamp,
) -> ApiResult<DocumentRecord> {
    let id = DocumentId::generate();
    let record = DocumentRecord {
        id: id.clone(),
        tenant_id: owner.tenant_id.clone(),
        environment: owner.environment,
        cardholder_id: owner.cardholder_id.clone(),
        case_id: owner.case_id.cloned(),
        kind: upload.kind.as_str().to_owned(),
        file_name: upload.file_name,
        content_type: upload.content_type.to_owned(),
        size_bytes: i64::try_from(upload.bytes.len()).map_err(ApiError::internal)?,
        sha256: cardplane_domain::api_key::hex(&Sha256::digest(&upload.bytes)),
        storage_key: id.to_string(),
        uploaded_by: owner.uploaded_by,
        created_at: now,
    };
    let sealed = state.vault.seal(&upload.bytes, &document_context(&id));
    state
        .documents
        .put(&record.storage_key, sealed.into_bytes())
        .await
        .map_err(ApiError::unavailable)?;
    Ok(record)
}

/// A stored document's bytes, unsealed.
pub async fn open_sealed(state: &AppState, doc: &DocumentRecord) -> ApiResult<Vec<u8>> {
    let sealed = state
        .documents
        .get(&doc.storage_key)
        .await
        .map_err(ApiError::unavailable)?;
    let sealed = String::from_utf8(sealed).map_err(ApiError::internal)?;
    state
        .vault
        .open(&sealed, &document_context(&doc.id))
        .map_err(ApiError::internal)
}

fn document_context(id: &DocumentId) -> String {
    format!("document:{id}")
}
