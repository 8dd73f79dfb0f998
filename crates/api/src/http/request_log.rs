//! Capture for the developer portal's request log. The layer sits right inside `authenticate`
//! on the tenant API, so it sees the key, and outside the audit and idempotency layers, so it
//! sees their answers (replays, 409/422) too. It never makes a request wait on the log: it reads
//! the request body once and hands the same bytes on, keeps a response body only when it is
//! complete and no larger than the cap (other responses stream through untouched), and puts the
//! raw exchange on a bounded queue; when the queue is full the entry is dropped and counted.
//! Masking and writing happen in the writer task (`workflows::request_log`).

use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cardplane_domain::Timestamp;

use crate::http::extract::{Ctx, too_large};
use crate::state::AppState;

/// Counted when the queue is full and an entry is dropped.
pub use crate::http::request_log_queue::{Captured, DROPPED_METRIC, Queue};

fn header_text(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The response body's bytes when it is complete in memory and at most `cap` long; otherwise
/// the response is returned as it was (streamed on untouched) with its length if known.
async fn kept_response(response: Response, cap: usize) -> (Response, Option<Bytes>, usize) {
    let hint = response.body().size_hint();
    match hint.exact() {
        Some(len) if usize::try_from(len).is_ok_and(|l| l <= cap) => {
            let (parts, body) = response.into_parts();
            match axum::body::to_bytes(body, cap).await {
                Ok(bytes) => {
                    let len = bytes.len();
                    (Response::from_parts(parts, Body::from(bytes.clone())), Some(bytes), len)
                }
                Err(_) => (
                    crate::http::error::ApiError::internal("response body unreadable").into_response(),
                    None,
                    0,
                ),
            }
        }
        _ => (response, None, usize::try_from(hint.lower()).unwrap_or(usize::MAX)),
    }
}

/// Middleware: records the request of an authenticated key (any status) on the queue.
pub async fn capture(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(ctx) = req.extensions().get::<Ctx>() else {
        return next.run(req).await;
    };
    let started = Instant::now();
    let headers = req.headers();
    let mut captured = Captured {
        ctx_key: ctx.key.id.clone(),
        scope: ctx.scope.clone(),
        received_at: Timestamp::now(),
        method: req.method().to_string(),
        route: req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned()),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
        status: 0,
        latency_us: 0,
        request_id: header_text(headers, "request-id"),
        idempotency_key: header_text(headers, "idempotency-key"),
        request_content_type: header_text(headers, header::CONTENT_TYPE.as_str()),
        request_body: Bytes::new(),
        response_content_type: None,
        response_body: None,
        response_length_bytes: 0,
    };
    let multipart = captured
        .request_content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    let limit = if multipart {
        state.document_body_limit()
    } else {
        state.config.request_body_limit_bytes
    };
    let (parts, body) = req.into_parts();
    let response = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            captured.request_body = bytes.clone();
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(_) => too_large().into_response(),
    };
    captured.latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
    captured.status = response.status().as_u16();
    captured.response_content_type = header_text(response.headers(), header::CONTENT_TYPE.as_str());
    let (response, body, length) = kept_response(response, state.config.request_log.body_cap_bytes).await;
    captured.response_body = body;
    captured.response_length_bytes = length;
    state.request_log_queue.offer(captured);
    response
}
