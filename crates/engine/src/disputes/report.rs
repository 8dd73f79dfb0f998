//! The regulator-facing view of the dispute book: open cases by age, Regulation E deadlines at
//! risk, outcomes by reason and the amounts involved.

use std::collections::BTreeMap;

use cardplane_domain::Timestamp;
use cardplane_domain::dispute::{Disposition, DisputeStatus};
use cardplane_store::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use super::view::{DEADLINE_WARNING_SECS, OpsDisputeRow};
use super::{DisputeDesk, DisputeError};

/// Open cases counted: beyond this the report says it is partial.
const OPEN_MAX: u32 = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct AgeBucket {
    /// 0-10 days, 11-30 days, 31-45 days, 46-90 days or over 90 days since filing.
    pub age: &'static str,
    pub open: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonOutcome {
    pub reason: String,
    pub filed: i64,
    pub open: i64,
    pub won: i64,
    pub partially_won: i64,
    pub lost: i64,
    pub withdrawn: i64,
    pub denied: i64,
    /// (won + partially won) / (won + partially won + lost + denied), in percent; none decided yet: null.
    pub win_rate_percent: Option<f64>,
    pub disputed_amount: i64,
    pub recovered_amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeReport {
    pub generated_at: String,
    pub open_by_age: Vec<AgeBucket>,
    /// Open cases whose provisional credit is due within 2 days and not granted, or whose
    /// resolution is due within 5 days (or overdue), nearest first.
    pub deadlines_at_risk: Vec<OpsDisputeRow>,
    pub by_reason: Vec<ReasonOutcome>,
    /// Minor units summed over currencies' cases alike (one currency per program here).
    pub open_disputed_amount: i64,
    pub provisional_credit_outstanding: i64,
    /// True when more open cases exist than the report looked at.
    pub partial: bool,
}

const CREDIT_WARNING_SECS: i64 = 2 * 86_400;

fn age_bucket(days: i64) -> usize {
    match days {
        ..=10 => 0,
        11..=30 => 1,
        31..=45 => 2,
        46..=90 => 3,
        _ => 4,
    }
}

impl DisputeDesk {
    pub async fn report(&self, scope: Option<&Scope>, now: Timestamp) -> Result<DisputeReport, DisputeError> {
        let open = self.disputes.open_disputes(scope, OPEN_MAX + 1).await?;
        let partial = open.len() > OPEN_MAX as usize;
        let labels = ["0-10 days", "11-30 days", "31-45 days", "46-90 days", "over 90 days"];
        let mut ages = [0_i64; 5];
        let mut at_risk = Vec::new();
        let (mut open_amount, mut outstanding) = (0_i64, 0_i64);
        for r in open.iter().take(OPEN_MAX as usize) {
            let d = &r.dispute;
            let days = (now.as_micros() - d.customer_filed_at.as_micros()) / 86_400_000_000;
            ages[age_bucket(days)] += 1;
            open_amount = open_amount.saturating_add(d.amount);
            outstanding = outstanding.saturating_add(d.provisional_credit);
            let credit_soon =
                d.provisional_credit == 0 && now.plus_secs(CREDIT_WARNING_SECS) >= d.provisional_credit_due_at;
            let resolution_soon = now.plus_secs(DEADLINE_WARNING_SECS) >= d.resolution_due_at;
            if credit_soon || resolution_soon {
                at_risk.push(OpsDisputeRow::of(r, now));
            }
        }
        let mut by_reason: BTreeMap<String, ReasonOutcome> = BTreeMap::new();
        for t in self.disputes.dispute_tallies(scope).await? {
            let row = by_reason
                .entry(t.reason.as_str().to_owned())
                .or_insert_with(|| ReasonOutcome {
                    reason: t.reason.as_str().to_owned(),
                    filed: 0,
                    open: 0,
                    won: 0,
                    partially_won: 0,
                    lost: 0,
                    withdrawn: 0,
                    denied: 0,
                    win_rate_percent: None,
                    disputed_amount: 0,
                    recovered_amount: 0,
                });
            row.filed += t.count;
            row.disputed_amount = row.disputed_amount.saturating_add(t.amount);
            row.recovered_amount = row.recovered_amount.saturating_add(t.recovered);
            match (t.status, t.disposition) {
                (DisputeStatus::Closed, Some(Disposition::Won)) => row.won += t.count,
                (DisputeStatus::Closed, Some(Disposition::PartiallyWon)) => row.partially_won += t.count,
                (DisputeStatus::Closed, Some(Disposition::Lost)) => row.lost += t.count,
                (DisputeStatus::Closed, Some(Disposition::Withdrawn)) => row.withdrawn += t.count,
                (DisputeStatus::Closed, Some(Disposition::Denied)) => row.denied += t.count,
                _ => row.open += t.count,
            }
        }
        let by_reason = by_reason
            .into_values()
            .map(|mut r| {
                let decided = r.won + r.partially_won + r.lost + r.denied;
                #[allow(clippy::cast_precision_loss, reason = "a percentage for people, not money")]
                let rate =
                    (decided > 0).then(|| ((r.won + r.partially_won) as f64 * 1000.0 / decided as f64).round() / 10.0);
                r.win_rate_percent = rate;
                r
            })
            .collect();
        Ok(DisputeReport {
            generated_at: now.to_rfc3339(),
            open_by_age: labels
                .iter()
                .zip(ages)
                .map(|(age, open)| AgeBucket { age, open })
                .collect(),
            deadlines_at_risk: at_risk,
            by_reason,
            open_disputed_amount: open_amount,
            provisional_credit_outstanding: outstanding,
            partial,
        })
    }
}

impl DisputeReport {
    /// The report as CSV: one section per table, values never starting with a formula character.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "section,key,open,filed,won,partially_won,lost,withdrawn,denied,win_rate_percent,disputed_amount,recovered_amount\n",
        );
        for b in &self.open_by_age {
            out.push_str(&format!("open_by_age,{},{},,,,,,,,,\n", b.age, b.open));
        }
        for r in &self.by_reason {
            out.push_str(&format!(
                "by_reason,{},{},{},{},{},{},{},{},{},{},{}\n",
                r.reason,
                r.open,
                r.filed,
                r.won,
                r.partially_won,
                r.lost,
                r.withdrawn,
                r.denied,
                r.win_rate_percent.map(|w| w.to_string()).unwrap_or_default(),
                r.disputed_amount,
                r.recovered_amount
            ));
        }
        for row in &self.deadlines_at_risk {
            out.push_str(&format!(
                "deadline_at_risk,{},{},,,,,,,,{},\n",
                row.dispute.id, row.next_due_at, row.dispute.amount
            ));
        }
        out.push_str(&format!(
            "totals,open_disputed_amount,,,,,,,,,{},\ntotals,provisional_credit_outstanding,,,,,,,,,{},\n",
            self.open_disputed_amount, self.provisional_credit_outstanding
        ));
        out
    }
}
