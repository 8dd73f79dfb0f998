use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::http::error::ApiError;

/// A JSON response whose exact bytes are known before it is sent, so the same bytes can be
/// stored for idempotent replay in the effect's own transaction.
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// The idempotent response was committed with the effect; the middleware must not store it.
    pub committed: bool,
}

/// Marks a response whose idempotency record is already written.
#[derive(Clone, Copy)]
pub struct Committed;

/// Marks a response holding card secrets: it is never stored for idempotent replay (that would
/// put a PAN in a database column in clear); a retried request simply runs again.
#[derive(Clone, Copy)]
pub struct Sensitive;

pub fn render<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

impl Reply {
    pub fn ok<T: Serialize>(value: &T) -> Result<Reply, ApiError> {
        Ok(Reply {
            status: StatusCode::OK,
            body: render(value)?,
            committed: false,
        })
    }

    pub fn created<T: Serialize>(value: &T) -> Result<Reply, ApiError> {
        Ok(Reply {
            status: StatusCode::CREATED,
            body: render(value)?,
            committed: false,
        })
    }

    pub fn committed(status: StatusCode, body: String) -> Reply {
        Reply {
            status,
            body,
            committed: true,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.committed {
            response.extensions_mut().insert(Committed);
        }
        response
    }
}

/// Reads a (small, JSON) response body so its `id` or error code can be recorded, and rebuilds it.
pub async fn peek_json(response: Response) -> (Response, Option<serde_json::Value>) {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => {
            let json = serde_json::from_slice(&bytes).ok();
            (Response::from_parts(parts, axum::body::Body::from(bytes)), json)
        }
        Err(_) => (ApiError::internal("response body unreadable").into_response(), None),
    }
}
