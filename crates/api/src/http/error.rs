//! The one API error type and its stable JSON envelope:
//! `{"error": {"type", "code", "message", "param"}}`. 5xx bodies never carry internal text; the
//! cause travels in a response extension to the request log line instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::FieldError;
use cardplane_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFoundError,
    ConflictError,
    IdempotencyError,
    RateLimitError,
    ApiError,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// Stable, machine-readable; documented in docs/API.md.
    pub code: String,
    pub message: String,
    /// The request field at fault, as a JSON path (`address.postal_code`), when there is one.
    pub param: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// Internal detail of a failure, for the request log only.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after_secs: Option<u64>,
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorType, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                kind,
                code: code.into(),
                message: message.into(),
                param: None,
            },
            retry_after_secs: None,
            cause: None,
        }
    }

    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.body.param = Some(param.into());
        self
    }

    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorType::InvalidRequestError, code, message)
    }

    pub fn unauthenticated(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorType::AuthenticationError, code, message)
    }

    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorType::PermissionError, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::NotFoundError,
            "resource_missing",
            format!("No such {what}"),
        )
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorType::ConflictError, code, message)
    }

    /// A posting that would take an account's balance beyond ±`BALANCE_MAX_MINOR`.
    pub fn balance_limit() -> Self {
        Self::conflict(
            cardplane_domain::ledger::BALANCE_LIMIT_EXCEEDED,
            format!(
                "This would take an account's balance beyond the maximum of {} minor units",
                cardplane_domain::money::BALANCE_MAX_MINOR
            ),
        )
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::ApiError,
            "internal_error",
            "An internal error occurred. Quote the Request-Id header when contacting support.",
        );
        e.cause = Some(cause.to_string());
        e
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "service_unavailable",
            "The service is temporarily unavailable. Retry after the delay in Retry-After.",
        );
        e.retry_after_secs = Some(1);
        e.cause = Some(cause.to_string());
        e
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: self.body.clone(),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(e.code, e.message).with_param(e.param)
    }
}

impl From<cardplane_engine::authorization::EngineError> for ApiError {
    fn from(e: cardplane_engine::authorization::EngineError) -> Self {
        use cardplane_engine::authorization::EngineError;
        match e {
            EngineError::Unavailable => ApiError::unavailable("the authorization engine's database is unavailable"),
            EngineError::Failed(cause) => ApiError::internal(cause),
        }
    }
}

impl From<cardplane_domain::ledger::BalanceLimitExceeded> for ApiError {
    fn from(_: cardplane_domain::ledger::BalanceLimitExceeded) -> Self {
        // Which account is internal (a program's funding or external account, say); the code
        // and the request say enough.
        ApiError::balance_limit()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            ref limit @ StoreError::Conflict { .. } if limit.is_balance_limit() => ApiError::balance_limit(),
            StoreError::Conflict { constraint } => {
                let mut err =
                    ApiError::conflict("conflict", "The request conflicts with a concurrent change; retry it.");
                err.cause = Some(constraint);
                err
            }
            StoreError::Unavailable(source) => ApiError::unavailable(source),
            StoreError::Other(source) => ApiError::internal(source),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.envelope()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
