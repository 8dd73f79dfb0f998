//! Capture for the developer portal's request log. The layer sits right inside `authenticate`
//! on the tenant API, so it sees the key, and outside the audit and idempotency layers, so it
//! sees their answers (replays, 409/422) too. It never makes a request wait on the log: it reads
//! the request body once and hands the same bytes on, keeps a response body only when it is
//! complete and no larger than the cap (other responses stream through untouched), and puts the
//! raw exchange on a bounded queue; when the queue is full the entry is dropped and counted.
//! Masking and writing happen in the writer task (`workflows::request_log`).

use std::sync::Mutex;
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cardplane_domain::Timestamp;
use cardplane_domain::request_log::{Exchange, RequestLogEntry};
use tokio::sync::mpsc;

use crate::http::extract::{Ctx, too_large};
use crate::state::AppState;

/// Counted when the queue is full and an entry is dropped.
pub const DROPPED_METRIC: &str = "request_log_dropped_total";

/// One request as the layer saw it, before masking: owned, so it can cross to the writer.
pub struct Captured {
    pub ctx_key: cardplane_domain::ids::ApiKeyId,
    pub scope: cardplane_store::Scope,
    pub received_at: Timestamp,
    pub method: String,
    pub route: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_us: i64,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_content_type: Option<String>,
    pub request_body: Bytes,
    pub response_content_type: Option<String>,
    pub response_body: Option<Bytes>,
    pub response_length_bytes: usize,
}

impl Captured {
    /// The masked entry to store (see `cardplane_domain::request_log`).
    pub fn into_entry(self, body_cap_bytes: usize) -> RequestLogEntry {
        RequestLogEntry::capture(
            Exchange {
                api_key_id: self.ctx_key,
                tenant_id: self.scope.tenant_id,
                environment: self.scope.environment,
                received_at: self.received_at,
                method: &self.method,
                route: &self.route,
                path: &self.path,
                query: self.query.as_deref(),
                status: self.status,
                latency_us: self.latency_us,
                request_id: self.request_id.as_deref(),
                idempotency_key: self.idempotency_key.as_deref(),
                request_content_type: self.request_content_type.as_deref(),
                request_body: &self.request_body,
                response_content_type: self.response_content_type.as_deref(),
                response_body: self.response_body.as_deref(),
                response_length_bytes: self.response_length_bytes,
            },
            body_cap_bytes,
        )
    }
}

/// The bounded queue between the capture layer and the writer.
pub struct Queue {
    sender: mpsc::Sender<Captured>,
    /// Taken once, by the writer `serve` starts.
    receiver: Mutex<Option<mpsc::Receiver<Captured>>>,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Queue {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// The receiving end, the first time it is asked for.
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Captured>> {
        self.receiver.lock().expect("request log queue lock poisoned").take()
    }

    /// Queues without waiting; a full (or closed) queue drops the entry.
    fn offer(&self, captured: Captured) {
        if self.sender.try_send(captured).is_err() {
            metrics::counter!(DROPPED_METRIC).increment(1);
        }
    }
}

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
