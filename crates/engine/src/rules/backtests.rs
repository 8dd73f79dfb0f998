//! The backtest job: claims one queued backtest under a lease, replays the rule scope's stored
//! authorizations page by page through `domain::rules::backtest::Replay` (nothing but one page
//! and the counters in memory), reports progress, and writes the result with its
//! `authorization_rule.backtest.completed` event.

use std::sync::Arc;

use cardplane_domain::Timestamp;
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::BacktestId;
use cardplane_domain::rules::backtest::{Replay, Report, WARM_UP_SECS, swap_in_draft};
use cardplane_domain::rules::{CompiledRule, RuleDefinition};
use cardplane_store::StoreError;
use cardplane_store::rules::{BacktestRecord, BacktestStatus, BacktestStore, HistoryCursor, RuleSetRow};

use super::view::BacktestView;

/// Rows read per page of history.
const PAGE_ROWS: u32 = 5_000;
/// Progress is written (and the lease extended) about this often, in rows.
const PROGRESS_EVERY_ROWS: i64 = 10_000;
/// A runner that stops renewing its lease for this long loses the backtest to another.
const LEASE_SECS: i64 = 120;

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("the tested rule no longer exists")]
    RuleGone,
    #[error("a stored rule version no longer parses")]
    BadDefinition,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn compile(
    row: &RuleSetRow,
    version: Option<&(i64, serde_json::Value)>,
) -> Result<Option<Arc<CompiledRule>>, RunError> {
    let Some((v, definition)) = version else {
        return Ok(None);
    };
    let definition =
        RuleDefinition::parse(definition, row.scope_kind, &row.scope_id).map_err(|_| RunError::BadDefinition)?;
    Ok(Some(Arc::new(CompiledRule {
        rule_id: row.rule_id.clone(),
        version: *v,
        scope: row.scope_kind,
        scope_id: row.scope_id.clone(),
        definition,
    })))
}

#[derive(Clone)]
pub struct BacktestRunner {
    store: Arc<dyn BacktestStore>,
}

impl BacktestRunner {
    pub fn new(store: Arc<dyn BacktestStore>) -> Self {
        BacktestRunner { store }
    }

    /// Runs one due backtest to its end, if there is one; its id.
    pub async fn run_once(&self, now: Timestamp) -> Result<Option<BacktestId>, StoreError> {
        let Some(mut b) = self.store.claim_backtest(now, now.plus_secs(LEASE_SECS)).await? else {
            return Ok(None);
        };
        let outcome = self.replay(&mut b).await;
        let done = Timestamp::now();
        match outcome {
            Ok(report) => {
                b.status = BacktestStatus::Completed;
                b.processed = report.authorizations;
                b.result = Some(serde_json::to_value(&report).unwrap_or_default());
            }
            // A store failure leaves the lease to run out, so the backtest is tried again.
            Err(RunError::Store(e)) => return Err(e),
            Err(e) => {
                b.status = BacktestStatus::Failed;
                b.error = Some(e.to_string());
            }
        }
        b.completed_at = Some(done);
        let mut events = Vec::new();
        if b.status == BacktestStatus::Completed {
            let data = serde_json::to_value(BacktestView::from(&b)).unwrap_or_default();
            events.push(Event::new(
                &b.tenant_id,
                b.environment,
                EventType::AuthorizationRuleBacktestCompleted,
                b.id.to_string(),
                data,
                done,
            ));
        }
        self.store.finish_backtest(&b, &events, done).await?;
        Ok(Some(b.id))
    }

    async fn replay(&self, b: &mut BacktestRecord) -> Result<Report, RunError> {
        let rows = self.store.backtest_rule_set(b).await?;
        let tested = rows.iter().find(|r| r.rule_id == b.rule_id).ok_or(RunError::RuleGone)?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            versions.push((compile(row, row.active.as_ref())?, compile(row, row.draft.as_ref())?));
        }
        let (active, draft) = swap_in_draft(&versions, &b.rule_id);
        let (kind, scope_id) = (tested.scope_kind, tested.scope_id.clone());
        let cards = self.store.card_facts(kind, &scope_id).await?;
        b.total = self
            .store
            .count_authorizations(kind, &scope_id, b.window_start, b.window_end)
            .await?;
        let mut replay = Replay::new(active, draft, b.window_start, b.window_end);
        let from = b.window_start.plus_secs(-WARM_UP_SECS);
        let mut cursor: HistoryCursor = None;
        let mut next_progress = PROGRESS_EVERY_ROWS;
        loop {
            let page = self
                .store
                .authorizations_page(kind, &scope_id, from, b.window_end, &cursor, PAGE_ROWS)
                .await?;
            let Some(last) = page.last() else { break };
            cursor = Some((last.created_at, last.id.clone()));
            for t in &page {
                replay.observe(t, &cards);
            }
            let processed = replay.report().authorizations;
            if processed >= next_progress {
                next_progress = processed + PROGRESS_EVERY_ROWS;
                let lease = Timestamp::now().plus_secs(LEASE_SECS);
                self.store.backtest_progress(&b.id, processed, b.total, lease).await?;
            }
            if page.len() < PAGE_ROWS as usize {
                break;
            }
        }
        Ok(replay.into_report())
    }
}
