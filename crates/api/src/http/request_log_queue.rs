//! The bounded queue between the request-log capture layer (`http::request_log`) and its writer
//! (`workflows::request_log`): a request never waits on it; a full queue drops and counts.

use std::sync::Mutex;

use axum::body::Bytes;
use cardplane_domain::Timestamp;
use cardplane_domain::request_log::{Exchange, RequestLogEntry};
use tokio::sync::mpsc;

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
    pub(crate) fn offer(&self, captured: Captured) {
        if self.sender.try_send(captured).is_err() {
            metrics::counter!(DROPPED_METRIC).increment(1);
        }
    }
}
