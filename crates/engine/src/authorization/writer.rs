//! The writer stage: group commit. One task per process takes whatever messages arrived while
//! the previous batch was committing (at low load a batch is one message and waits for nothing;
//! under load batches grow, up to `batch_size_max`), applies them as one database transaction,
//! and answers each only after the commit.
//!
//! When a batch fails, one bad message must not sink its neighbours: the batch is split in two
//! and each half applied again, down to single messages, so only the message that cannot be
//! applied gets an error (and nothing of it is written). An unreachable database fails the whole
//! batch at once, and so does everything that queued while it was failing: retrying halves, or
//! making each waiting message wait for the database again, would only multiply the wait (the
//! next batch tries the database again).

use std::sync::Arc;
use std::time::Instant;

use cardplane_store::StoreError;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::EngineError;
use super::batch::{Batcher, Item, Outcome};

pub(crate) type Reply = oneshot::Sender<Result<Outcome, EngineError>>;

pub(crate) struct Submission {
    pub item: Item,
    pub reply: Reply,
}

pub(crate) async fn run(mut queue: mpsc::Receiver<Submission>, batcher: Arc<Batcher>, batch_size_max: usize) {
    let mut items = Vec::with_capacity(batch_size_max);
    let mut replies = Vec::with_capacity(batch_size_max);
    while let Some(first) = queue.recv().await {
        items.push(first.item);
        replies.push(first.reply);
        while items.len() < batch_size_max {
            match queue.try_recv() {
                Ok(next) => {
                    items.push(next.item);
                    replies.push(next.reply);
                }
                Err(_) => break,
            }
        }
        #[allow(clippy::cast_precision_loss, reason = "a batch size, for a histogram")]
        metrics::histogram!("cardplane_engine_batch_size").record(items.len() as f64);
        let unavailable = settle(&batcher, &items, std::mem::take(&mut replies)).await;
        items.clear();
        if unavailable {
            while let Ok(waiting) = queue.try_recv() {
                let _ = waiting.reply.send(Err(EngineError::Unavailable));
            }
        }
    }
}

/// Applies `items` as one batch and answers them; on failure, halves and tries again. Returns
/// whether the database was unavailable.
pub(crate) fn settle<'a>(batcher: &'a Batcher, items: &'a [Item], mut replies: Vec<Reply>) -> BoxFuture<'a, bool> {
    Box::pin(async move {
        let started = Instant::now();
        match batcher.apply(items).await {
            Ok(applied) => {
                metrics::counter!("cardplane_engine_batches_total").increment(1);
                metrics::counter!("cardplane_engine_messages_total").increment(items.len() as u64);
                metrics::counter!("cardplane_engine_statements_total").increment(applied.statements);
                metrics::histogram!("cardplane_engine_batch_duration_seconds").record(started.elapsed().as_secs_f64());
                for (reply, outcome) in replies.into_iter().zip(applied.outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                false
            }
            Err(e) if items.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
                metrics::counter!("cardplane_engine_batch_failures_total").increment(1);
                tracing::error!(error = %e, cause = ?std::error::Error::source(&e), messages = items.len(), "a batch of network messages failed");
                let error = EngineError::from(&e);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
                error == EngineError::Unavailable
            }
            Err(e) => {
                metrics::counter!("cardplane_engine_batch_failures_total").increment(1);
                tracing::warn!(error = %e, messages = items.len(), "a batch failed; applying its halves apart");
                let mid = items.len() / 2;
                let right = replies.split_off(mid);
                let left = settle(batcher, &items[..mid], replies).await;
                settle(batcher, &items[mid..], right).await || left
            }
        }
    })
}
