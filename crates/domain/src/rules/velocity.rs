//! Velocity counters: how much (and how many) a card, cardholder or program authorized in a
//! window, kept incrementally in time buckets so that no authorization sums its history.
//!
//! A counter is defined by what it counts (scope kind and filters) and the size of its buckets;
//! every velocity rule with the same definition shares it. A transaction moves the bucket of its
//! creation time by what it counts now minus what it counted before (`card_controls::
//! limit_usage`: approved authorizations, by authorized less reversed amount; an expired hold
//! stops counting). A window counts the whole buckets from the one holding its start: a trailing
//! window of W reaches back at most one bucket (≤ W/30) further than W; UTC calendar windows
//! (day, week, month) start on a bucket boundary and are exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::authorization::Transaction;
use crate::card_controls::limit_usage;
use crate::controls::{ControlScopeKind, Window};
use crate::rules::facts::is_card_not_present;
use crate::time::Timestamp;

/// Buckets older than this are never read (the longest window is 31 days).
pub const RETENTION_SECS: i64 = 33 * 86_400;

/// What a counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterSpec {
    /// The rule's own scope (`program:prog_...`): counters are kept for the cards a rule covers,
    /// so rules of different scopes never share one.
    pub owner: String,
    pub scope: ControlScopeKind,
    /// Sorted; empty: every MCC.
    pub mccs: Vec<String>,
    /// Sorted ISO alpha-3 codes; empty: every country.
    pub countries: Vec<String>,
    pub card_not_present_only: bool,
    pub bucket_secs: i64,
}

impl CounterSpec {
    /// A short stable name for the definition (the counters table's key).
    pub fn key(&self) -> String {
        let canonical = format!(
            "v1|{}|{}|{}|{}|{}|{}",
            self.owner,
            self.scope.as_str(),
            self.bucket_secs,
            self.mccs.join(","),
            self.countries.join(","),
            self.card_not_present_only
        );
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("vc_{hex}")
    }

    /// Whether the counter counts transactions like `t` at all (filters only).
    pub fn matches(&self, mcc: &str, country: &str, entry_mode: &str) -> bool {
        (self.mccs.is_empty() || self.mccs.iter().any(|m| m == mcc))
            && (self.countries.is_empty() || self.countries.iter().any(|c| c == country))
            && (!self.card_not_present_only || is_card_not_present(entry_mode))
    }

    /// The card, cardholder or program whose counter `t` moves.
    pub fn scope_id<'t>(&self, t: &'t Transaction) -> &'t str {
        match self.scope {
            ControlScopeKind::Card => t.card_id.as_str(),
            ControlScopeKind::Cardholder => t.cardholder_id.as_str(),
            ControlScopeKind::Program => t.program_id.as_str(),
        }
    }

    fn counted(&self, t: &Transaction) -> (i64, i64) {
        match limit_usage(t) {
            Some(amount) if self.matches(&t.merchant.mcc, &t.merchant.country, &t.entry_mode) => (amount, 1),
            _ => (0, 0),
        }
    }
}

/// Bucket size for a window: about 30 or more buckets per trailing window; calendar windows
/// aligned to UTC hours (day) or days (week, month).
pub fn bucket_secs(window: &Window) -> i64 {
    match window {
        Window::Trailing { secs } if *secs <= 120 => 1,
        Window::Trailing { secs } if *secs <= 7_200 => 60,
        Window::Trailing { secs } if *secs <= 5 * 86_400 => 3_600,
        Window::Day => 3_600,
        _ => 86_400,
    }
}

/// The first bucket a window counts at `now`.
pub fn first_bucket(window: &Window, bucket_secs: i64, now: Timestamp) -> i64 {
    let start = window.start(now).map_or(i64::MIN, Timestamp::unix_seconds);
    start.div_euclid(bucket_secs) * bucket_secs
}

pub fn bucket_of(at: Timestamp, bucket_secs: i64) -> i64 {
    at.unix_seconds().div_euclid(bucket_secs) * bucket_secs
}

/// One bucket of one counter, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRow {
    pub counter: String,
    pub scope_id: String,
    pub bucket: i64,
    pub amount: i64,
    pub count: i64,
}

/// What a counter holds in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub amount: i64,
    pub count: i64,
}

/// Counters as a batch (or a backtest) sees them: the loaded buckets plus what it recorded, and
/// the changes to write back.
#[derive(Debug, Default)]
pub struct VelocityBook {
    /// counter → scope id → buckets (nested so a lookup by `&str` allocates nothing).
    series: HashMap<String, HashMap<String, BTreeMap<i64, Used>>>,
    deltas: BTreeMap<(String, String, i64), Used>,
}

impl VelocityBook {
    pub fn new(loaded: impl IntoIterator<Item = CounterRow>) -> VelocityBook {
        let mut book = VelocityBook::default();
        for row in loaded {
            let bucket = book
                .series
                .entry(row.counter)
                .or_default()
                .entry(row.scope_id)
                .or_default();
            let used = bucket.entry(row.bucket).or_default();
            used.amount += row.amount;
            used.count += row.count;
        }
        book
    }

    /// Moves every counter in `specs` from what `before` counted to what `after` counts.
    pub fn record(&mut self, specs: &[(String, Arc<CounterSpec>)], before: Option<&Transaction>, after: &Transaction) {
        for (key, spec) in specs {
            let (was_amount, was_count) = before.map_or((0, 0), |b| spec.counted(b));
            let (amount, count) = spec.counted(after);
            if (amount, count) == (was_amount, was_count) {
                continue;
            }
            let delta = Used {
                amount: amount - was_amount,
                count: count - was_count,
            };
            let bucket = bucket_of(after.created_at, spec.bucket_secs);
            let scope = spec.scope_id(after).to_owned();
            for used in [
                self.series
                    .entry(key.clone())
                    .or_default()
                    .entry(scope.clone())
                    .or_default()
                    .entry(bucket)
                    .or_default(),
                self.deltas.entry((key.clone(), scope, bucket)).or_default(),
            ] {
                used.amount = used.amount.saturating_add(delta.amount);
                used.count += delta.count;
            }
        }
    }

    /// What the counter `key` holds for `scope_id` from `first_bucket` on.
    pub fn used(&self, key: &str, scope_id: &str, first_bucket: i64) -> Used {
        self.series
            .get(key)
            .and_then(|scopes| scopes.get(scope_id))
            .map(|buckets| {
                buckets.range(first_bucket..).fold(Used::default(), |acc, (_, u)| Used {
                    amount: acc.amount.saturating_add(u.amount),
                    count: acc.count + u.count,
                })
            })
            .unwrap_or_default()
    }

    /// The changes to add to the stored buckets.
    pub fn deltas(&self) -> Vec<CounterRow> {
        self.deltas
            .iter()
            .filter(|(_, u)| u.amount != 0 || u.count != 0)
            .map(|((counter, scope_id, bucket), u)| CounterRow {
                counter: counter.clone(),
                scope_id: scope_id.clone(),
                bucket: *bucket,
                amount: u.amount,
                count: u.count,
            })
            .collect()
    }

    /// Every nonzero bucket, for comparing with a recomputation.
    pub fn buckets(&self) -> Vec<CounterRow> {
        let mut rows: Vec<CounterRow> = self
            .series
            .iter()
            .flat_map(|(counter, scopes)| {
                scopes
                    .iter()
                    .map(move |(scope_id, buckets)| (counter, scope_id, buckets))
            })
            .flat_map(|(counter, scope_id, buckets)| {
                buckets
                    .iter()
                    .filter(|(_, u)| u.amount != 0 || u.count != 0)
                    .map(|(bucket, u)| CounterRow {
                        counter: counter.clone(),
                        scope_id: scope_id.clone(),
                        bucket: *bucket,
                        amount: u.amount,
                        count: u.count,
                    })
            })
            .collect();
        rows.sort_by(|a, b| (&a.counter, &a.scope_id, a.bucket).cmp(&(&b.counter, &b.scope_id, b.bucket)));
        rows
    }
}
