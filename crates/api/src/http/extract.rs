//! Extractors: the plumbing every handler shares. JSON and query rejections become API errors in
//! the envelope; the authenticated context hands tenant + environment to every handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::audit::{AuditRecord, Outcome};
use cardplane_domain::page::PageRequest;
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use cardplane_store::{EffectRecords, IdempotentResponse, Scope};

use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, ErrorType};

/// A JSON request body: `application/json` required, unknown fields refused, the body limit
/// enforced (413), and parse errors named by their JSON path.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorType::InvalidRequestError,
                "unsupported_media_type",
                "Request bodies must be JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        // serde's derived structs also accept a JSON array of their fields in order; a request
        // body is an object.
        if bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b != b'{')
        {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
                return parse_json(&bytes).map(JsonBody);
            }
            return Err(ApiError::invalid(
                "parameter_invalid",
                "The request body must be a JSON object",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::invalid("body_unreadable", "The request body could not be read")
    }
}

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorType::InvalidRequestError,
        "body_too_large",
        "The request body exceeds the size limit",
    )
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid("json_invalid", format!("The body is not valid JSON: {message}"));
        }
        // serde_path_to_error's path already ends with an unknown field's name; a missing field's
        // name is only in the message.
        let field_in_message = message.split('`').nth(1).map(str::to_owned);
        let (code, param) = if message.starts_with("unknown field") {
            ("parameter_unknown", path)
        } else if message.starts_with("missing field") {
            let field = field_in_message.unwrap_or_default();
            (
                "parameter_missing",
                if path == "." { field } else { format!("{path}.{field}") },
            )
        } else {
            ("parameter_invalid", path)
        };
        let err = ApiError::invalid(code, message);
        if param.is_empty() || param == "." {
            err
        } else {
            err.with_param(param)
        }
    })
}

/// The authenticated request: which key, tenant, environment and API version. Inserted by the
/// auth middleware; every store call takes `ctx.scope`.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub scope: Scope,
    pub key: ApiKey,
    pub tenant: Tenant,
    pub version: ApiVersion,
    pub idempotency: Option<IdempotencyClaim>,
    /// Set on mutations by the audit middleware.
    pub audit: Option<AuditDraft>,
}

/// An idempotency key this request holds; its response must be stored with the effect.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub token: String,
    /// Stored responses are sealed: some hold secrets shown once (API key and webhook secrets).
    pub vault: std::sync::Arc<cardplane_domain::vault::Vault>,
}

/// The vault context a stored response is sealed under: bound to its scope and key.
pub fn idempotency_context(scope: &Scope, key: &str) -> String {
    format!("idempotency:{}:{}:{key}", scope.tenant_id, scope.environment.as_str())
}

impl Ctx {
    /// Sandbox helpers and simulators refuse live keys: `403 sandbox_only`.
    pub fn sandbox_only(&self) -> Result<(), ApiError> {
        sandbox_only(self.scope.environment)
    }

    pub fn livemode(&self) -> bool {
        self.scope.environment.livemode()
    }

    /// What the store writes with this request's effect, in its transaction: the answer for
    /// idempotent replay and the audit entry.
    pub fn records(&self, status: StatusCode, body: &str) -> Option<EffectRecords> {
        let records = EffectRecords {
            replay: self.idempotent_response(status, body),
            audit: self.audit.as_ref().map(|d| d.with_effect(status, body)),
        };
        (records.replay.is_some() || records.audit.is_some()).then_some(records)
    }

    /// The response to store under the request's idempotency key, if it holds one.
    pub fn idempotent_response(&self, status: StatusCode, body: &str) -> Option<IdempotentResponse> {
        self.idempotency.as_ref().map(|c| IdempotentResponse {
            key: c.key.clone(),
            claim_token: c.token.clone(),
            status: status.as_u16(),
            body: c.vault.seal(body.as_bytes(), &idempotency_context(&self.scope, &c.key)),
        })
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Sandbox helpers and simulators refuse live traffic: `403 sandbox_only`.
pub fn sandbox_only(environment: cardplane_domain::Environment) -> Result<(), ApiError> {
    match environment {
        cardplane_domain::Environment::Sandbox => Ok(()),
        cardplane_domain::Environment::Live => Err(ApiError::forbidden(
            "sandbox_only",
            "This endpoint exists in sandbox only",
        )),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route is missing the auth middleware"))
    }
}

/// `limit`, `starting_after`, `ending_before` from the query string.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    // Read as text, so that a bad value is a 400 naming `limit`; documented as the integer it
    // must be, so generated clients type it right.
    /// 1 to 50, default 25.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
    /// An object ID: return the page of objects older than it.
    pub starting_after: Option<String>,
    /// An object ID: return the page of objects newer than it.
    pub ending_before: Option<String>,
}

/// Parses the query string strictly: unknown parameters are 400s too.
pub fn query_params<T: DeserializeOwned>(parts_query: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(parts_query.unwrap_or("")).map_err(|e| {
        let message = e.to_string();
        let err = ApiError::invalid("parameter_invalid", format!("Invalid query string: {message}"));
        match message.split('`').nth(1) {
            Some(field) if message.starts_with("unknown field") => {
                ApiError::invalid("parameter_unknown", message.clone()).with_param(field.to_owned())
            }
            _ => err,
        }
    })
}

/// Query parameters with strict parsing.
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        query_params(parts.uri.query()).map(StrictQuery)
    }
}

impl ListParams {
    pub fn page(&self, id_ok: impl Fn(&str) -> bool) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(
            self.limit.as_deref(),
            self.starting_after.as_deref(),
            self.ending_before.as_deref(),
            id_ok,
        )?)
    }
}

/// The id in a path's last `{..._id}` segment, and the kind it names (`card` for `{card_id}`).
pub fn object_in_path(template: &str, path: &str) -> Option<(String, String)> {
    template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, p)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.strip_suffix("_id").unwrap_or(name).to_owned(), p.to_owned()))
        })
        .last()
}

/// The audit entry of an API mutation, prepared before its handler runs. A handler that commits
/// an effect passes it to the store with the effect (`Ctx::records`), so the change and its entry
/// are one transaction; anything else (failures, replays, no-op answers) is written after.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    pub(crate) record: AuditRecord,
    /// What a created id is called (`/cards` creates a `card`).
    pub(crate) created_kind: String,
    pub(crate) written_with_effect: Arc<AtomicBool>,
}

impl AuditDraft {
    /// The entry for a successful answer that the store writes with the effect.
    pub fn with_effect(&self, status: StatusCode, body: &str) -> AuditRecord {
        self.written_with_effect.store(true, Ordering::Relaxed);
        self.finish(status, serde_json::from_str(body).ok().as_ref())
    }

    pub(crate) fn finish(&self, status: StatusCode, body: Option<&serde_json::Value>) -> AuditRecord {
        let mut record = self.record.clone();
        record.status = Some(status.as_u16());
        if status.is_success() {
            if record.object_id.is_none()
                && let Some(id) = body.and_then(created_id)
            {
                record.object_type = Some(self.created_kind.clone());
                record.object_id = Some(id);
            }
        } else {
            record.outcome = Outcome::Failure;
            if let Some(code) = body.and_then(|b| b.pointer("/error/code")).and_then(|c| c.as_str()) {
                record.details = serde_json::json!({ "code": code });
            }
        }
        record
    }
}

/// What a create answered: its `id`, top level or one envelope down (`{"card": {"id": ...}}`).
fn created_id(body: &serde_json::Value) -> Option<String> {
    let obj = body.as_object()?;
    if let Some(id) = obj.get("id").and_then(|v| v.as_str()) {
        return Some(id.to_owned());
    }
    obj.values()
        .find_map(|v| v.get("id").and_then(|i| i.as_str()))
        .map(str::to_owned)
}
