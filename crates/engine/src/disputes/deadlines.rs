//! The Regulation E clock, run by a scheduled job in every `serve` process: provisional credit
//! granted when it falls due (as the program's policy allows), credit made final when a case
//! outlives its resolution deadline, and cases nearing that deadline flagged for the queue.
//! Several processes may run it at once: each step is a versioned change, so a case is moved once.

use cardplane_domain::Timestamp;
use cardplane_domain::dispute::DisputeEvent;
use cardplane_store::Scope;
use cardplane_store::disputes::DueDispute;

use super::view::DEADLINE_WARNING_SECS;
use super::{DisputeDesk, DisputeError, Step};

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineRun {
    pub credits_granted: u32,
    pub credits_made_final: u32,
    pub flagged: u32,
    /// Cases another process moved first, or whose step failed (logged; next run tries again).
    pub skipped: u32,
}

/// Cases looked at per run; the rest wait for the next run.
const BATCH: u32 = 200;

fn due_step(due: &DueDispute, now: Timestamp) -> Option<Step> {
    let d = &due.record.dispute;
    if d.resolution_overdue(now) {
        Some(Step::Move(
            DisputeEvent::ResolutionDeadlinePassed,
            Some("resolution_deadline_passed".to_owned()),
        ))
    } else if d.provisional_credit_due(due.policy.provisional_credit, due.kyc_verified, now) {
        Some(Step::GrantCredit)
    } else if due.record.deadline_flagged_at.is_none() && now.plus_secs(DEADLINE_WARNING_SECS) >= d.resolution_due_at {
        Some(Step::FlagDeadline)
    } else {
        None
    }
}

impl DisputeDesk {
    /// One pass of the clock as of `now` (the job passes the wall clock; tests pass any time).
    pub async fn run_deadlines(&self, now: Timestamp) -> Result<DeadlineRun, DisputeError> {
        let mut run = DeadlineRun::default();
        for due in self.disputes.due_disputes(now, DEADLINE_WARNING_SECS, BATCH).await? {
            let Some(step) = due_step(&due, now) else { continue };
            let d = &due.record.dispute;
            let scope = Scope {
                tenant_id: d.tenant_id.clone(),
                environment: d.environment,
            };
            let counter = match &step {
                Step::GrantCredit => &mut run.credits_granted,
                Step::FlagDeadline => &mut run.flagged,
                _ => &mut run.credits_made_final,
            };
            match self.step(&scope, &d.id, step, &|_, _| None, now).await {
                Ok(_) => *counter += 1,
                Err(e) => {
                    tracing::warn!(dispute = %d.id, error = %e, "dispute deadline step skipped");
                    run.skipped += 1;
                }
            }
        }
        Ok(run)
    }
}
