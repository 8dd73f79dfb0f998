//! `cardplane webhooks listen`: a small local receiver that verifies each delivery's Standard
//! Webhooks signature and prints the event, for trying webhooks out on one machine.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cardplane_domain::Timestamp;
use cardplane_domain::webhook::{WebhookSecret, verify};
use tokio::net::TcpListener;

/// Receivers should not need more than this; bigger bodies are refused.
const BODY_MAX_BYTES: usize = 1024 * 1024;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks one delivery; on success returns the event JSON as one line.
pub fn check(secret: &WebhookSecret, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<String, String> {
    let (Some(id), Some(ts), Some(sig)) = (
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
    ) else {
        return Err("missing webhook-id, webhook-timestamp or webhook-signature".into());
    };
    verify(secret, id, ts, sig, body, now).map_err(|e| format!("rejected {id}: {e}"))?;
    let event: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| format!("rejected {id}: body is not JSON"))?;
    Ok(event.to_string())
}

/// Binds `addr` and serves until `shutdown`; prints each verified event to stdout, each rejection
/// to stderr (answering 400 so the sender retries).
pub async fn listen(
    addr: SocketAddr,
    secret: WebhookSecret,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("listening for webhooks on http://{}/", listener.local_addr()?);
    let secret = Arc::new(secret);
    let handler = move |headers: HeaderMap, body: Bytes| {
        let secret = secret.clone();
        async move {
            match check(&secret, &headers, &body, Timestamp::now()) {
                Ok(line) => {
                    println!("{line}");
                    StatusCode::NO_CONTENT
                }
                Err(why) => {
                    eprintln!("{why}");
                    StatusCode::BAD_REQUEST
                }
            }
        }
    };
    let app = Router::new()
        .fallback(post(handler))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX_BYTES));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
