//! The request log's writer and retention. The writer drains the capture queue every
//! `flush_interval_ms` (and at once again while batches come out full), masks each entry and
//! writes up to `batch_max` of them with one `insert_batch`; on shutdown it drains what is
//! queued before the database closes.

use std::future::Future;
use std::time::Duration;

use cardplane_domain::Timestamp;
use cardplane_domain::request_log::RequestLogEntry;
use tokio::sync::mpsc;

use crate::http::request_log::Captured;
use crate::state::AppState;

/// Rows the retention purge deletes per statement.
const PURGE_CHUNK_ROWS: u32 = 5_000;

/// Runs until `stop` resolves, then writes what is still queued and returns.
pub async fn write_until(state: AppState, mut queue: mpsc::Receiver<Captured>, stop: impl Future<Output = ()>) {
    let every = Duration::from_millis(state.config.request_log.flush_interval_ms.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = &mut stop => true,
        };
        drain(&state, &mut queue).await;
        if stopping {
            return;
        }
    }
}

/// Writes batches until the queue is empty (or a batch comes out short: the rest waits for the
/// next tick, so a trickle of requests is written in few, larger batches).
async fn drain(state: &AppState, queue: &mut mpsc::Receiver<Captured>) {
    let settings = &state.config.request_log;
    let batch_max = settings.batch_max.max(1);
    let cap = settings.body_cap_bytes;
    loop {
        let mut captured: Vec<Captured> = Vec::with_capacity(batch_max);
        while captured.len() < batch_max {
            match queue.try_recv() {
                Ok(c) => captured.push(c),
                Err(_) => break,
            }
        }
        if captured.is_empty() {
            return;
        }
        let full = captured.len() == batch_max;
        // Masking parses and rewrites every body: a blocking thread does it, so a batch never
        // holds one of the runtime's workers (and the requests queued on it) for milliseconds.
        let batch = match tokio::task::spawn_blocking(move || {
            captured
                .into_iter()
                .map(|c| c.into_entry(cap))
                .collect::<Vec<RequestLogEntry>>()
        })
        .await
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "request log masking failed; batch dropped");
                return;
            }
        };
        if let Err(e) = state.request_log.insert_batch(&batch).await {
            metrics::counter!("request_log_write_failures_total").increment(1);
            tracing::warn!(error = %e, entries = batch.len(), "request log batch not written");
        }
        if !full {
            return;
        }
    }
}

/// Deletes entries and usage days older than `request_log.retention_days`.
pub async fn purge_expired(state: &AppState, now: Timestamp) {
    let days = i64::from(state.config.request_log.retention_days.max(1));
    let cutoff = Timestamp::from_micros(now.as_micros() - days * 86_400_000_000);
    match state.request_log.purge_before(cutoff, PURGE_CHUNK_ROWS).await {
        Ok(run) if run.log_rows + run.usage_rows == 0 => {}
        Ok(run) => tracing::info!(
            entries = run.log_rows,
            usage_rows = run.usage_rows,
            "request log purged"
        ),
        Err(e) => tracing::warn!(error = %e, "request log purge failed"),
    }
}
