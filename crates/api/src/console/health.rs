//! Home: program health over the last hour, day or week, from the roll-up aggregates only.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use cardplane_domain::Timestamp;
use cardplane_domain::people::Action;
use cardplane_store::health::{HealthFilter, QueueHealth, RollupTotal, SeriesPoint, metric};
use serde::Deserialize;

use super::{Chrome, PageResult, page};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::chart::LineChart;

/// The windows the page offers: (name, minutes, chart bucket minutes). Buckets of whole hours
/// read the hourly aggregates: a day is 24 rows per series, a week 168.
const WINDOWS: [(&str, i64, i64); 3] = [("1h", 60, 1), ("24h", 1_440, 60), ("7d", 10_080, 120)];

#[derive(Debug, Deserialize, Default)]
pub struct HealthQuery {
    window: Option<String>,
    tenant: Option<String>,
    environment: Option<String>,
    program: Option<String>,
}

/// One (tenant, environment, program) line of the table.
#[derive(Default)]
pub struct ProgramHealth {
    pub tenant_id: String,
    pub environment: String,
    pub program_id: String,
    pub approved: i64,
    pub declined: i64,
    /// Per minute over the window, two decimals.
    pub per_minute: String,
    pub approval_rate: String,
    pub top_declines: Vec<(String, i64)>,
    pub p50: String,
    pub p99: String,
    pub cleared: Vec<String>,
    latency: BTreeMap<i64, i64>,
}

/// Webhook delivery attempts per tenant and environment.
pub struct WebhookHealth {
    pub tenant_id: String,
    pub environment: String,
    pub success: i64,
    pub failure: i64,
    pub rate: String,
}

#[derive(Template)]
#[template(path = "console/health.html")]
struct HealthPage {
    chrome: Chrome,
    window: &'static str,
    windows: Vec<(&'static str, bool)>,
    env_is_sandbox: bool,
    env_is_live: bool,
    query: HealthQuery,
    overall: ProgramHealth,
    programs: Vec<ProgramHealth>,
    webhooks: Vec<WebhookHealth>,
    queues: QueueHealth,
    show_queues: bool,
    chart: LineChart,
    series: Vec<(String, i64, i64)>,
    rolled_up_note: &'static str,
}

/// `part / whole` as a percentage with one decimal, in integers.
pub fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "–".into();
    }
    let tenths = (part * 1_000 + whole / 2) / whole;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// `count / minutes` with two decimals, in integers.
fn rate(count: i64, minutes: i64) -> String {
    let hundredths = count * 100 / minutes.max(1);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// The latency bucket holding the `q`-th per-mille observation ("≤ 5 ms"), from bucket upper
/// bounds; observations above the last bound read "> 5000 ms".
fn quantile(buckets: &BTreeMap<i64, i64>, per_mille: i64) -> String {
    let total: i64 = buckets.values().sum();
    if total == 0 {
        return "–".into();
    }
    let rank = (total * per_mille + 999) / 1_000;
    let mut seen = 0;
    for (bound, n) in buckets {
        seen += n;
        if seen >= rank {
            return if *bound == i64::MAX {
                format!("> {} ms", cardplane_store::health::LATENCY_BUCKETS_MS[11])
            } else {
                format!("≤ {bound} ms")
            };
        }
    }
    "–".into()
}

fn bucket_bound(dim: &str) -> i64 {
    dim.strip_prefix("<=").and_then(|b| b.parse().ok()).unwrap_or(i64::MAX)
}

impl ProgramHealth {
    fn add(&mut self, t: &RollupTotal, declines: &mut BTreeMap<String, i64>, cleared: &mut BTreeMap<String, i64>) {
        match (t.metric.as_str(), t.dim.as_str()) {
            (metric::AUTHORIZATIONS, "approved") => self.approved += t.n,
            (metric::AUTHORIZATIONS, _) => self.declined += t.n,
            (metric::DECLINE, reason) => *declines.entry(reason.to_owned()).or_default() += t.n,
            (metric::LATENCY_MS, bucket) => *self.latency.entry(bucket_bound(bucket)).or_default() += t.n,
            (metric::CLEARED, currency) => *cleared.entry(currency.to_owned()).or_default() += t.amount,
            _ => {}
        }
    }

    fn finish(&mut self, minutes: i64, declines: BTreeMap<String, i64>, cleared: BTreeMap<String, i64>) {
        let total = self.approved + self.declined;
        self.per_minute = rate(total, minutes);
        self.approval_rate = percent(self.approved, total);
        let mut declines: Vec<(String, i64)> = declines.into_iter().collect();
        declines.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        declines.truncate(3);
        self.top_declines = declines;
        self.p50 = quantile(&self.latency, 500);
        self.p99 = quantile(&self.latency, 990);
        self.cleared = cleared
            .into_iter()
            .map(|(currency, minor)| super::money(minor, &currency))
            .collect();
    }
}

/// A program's figures with its decline reasons and cleared amounts per currency, as summed.
type Accumulator = (ProgramHealth, BTreeMap<String, i64>, BTreeMap<String, i64>);

fn summarise(totals: &[RollupTotal], minutes: i64) -> (ProgramHealth, Vec<ProgramHealth>, Vec<WebhookHealth>) {
    let mut overall = (ProgramHealth::default(), BTreeMap::new(), BTreeMap::new());
    let mut programs: BTreeMap<(String, String, String), Accumulator> = BTreeMap::new();
    let mut webhooks: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for t in totals {
        if t.metric == metric::WEBHOOK {
            let slot = webhooks
                .entry((t.tenant_id.clone(), t.environment.clone()))
                .or_default();
            if t.dim == "success" {
                slot.0 += t.n;
            } else {
                slot.1 += t.n;
            }
            continue;
        }
        let key = (t.tenant_id.clone(), t.environment.clone(), t.program_id.clone());
        let entry = programs.entry(key.clone()).or_insert_with(|| {
            (
                ProgramHealth {
                    tenant_id: key.0,
                    environment: key.1,
                    program_id: key.2,
                    ..ProgramHealth::default()
                },
                BTreeMap::new(),
                BTreeMap::new(),
            )
        });
        entry.0.add(t, &mut entry.1, &mut entry.2);
        overall.0.add(t, &mut overall.1, &mut overall.2);
    }
    let (mut all, d, c) = overall;
    all.finish(minutes, d, c);
    let programs = programs
        .into_values()
        .map(|(mut p, d, c)| {
            p.finish(minutes, d, c);
            p
        })
        .collect();
    let webhooks = webhooks
        .into_iter()
        .map(|((tenant_id, environment), (success, failure))| WebhookHealth {
            tenant_id,
            environment,
            success,
            failure,
            rate: percent(success, success + failure),
        })
        .collect();
    (all, programs, webhooks)
}

fn minute_label(minute: i64, with_date: bool) -> String {
    let t = Timestamp::from_micros(minute * 60_000_000).to_offset_date_time();
    if with_date {
        format!(
            "{:02}-{:02} {:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        )
    } else {
        format!("{:02}:{:02}", t.hour(), t.minute())
    }
}

/// Every bucket of the window, empty ones as zero, so the line does not skip quiet periods.
fn fill(points: &[SeriesPoint], first: i64, buckets: i64, width: i64) -> Vec<(i64, i64, i64)> {
    let by_bucket: BTreeMap<i64, &SeriesPoint> = points.iter().map(|p| (p.bucket, p)).collect();
    (0..buckets)
        .map(|k| {
            let b = first + k * width;
            by_bucket.get(&b).map_or((b, 0, 0), |p| (b, p.approved, p.declined))
        })
        .collect()
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

pub async fn home(State(state): State<AppState>, staff: Staff, Query(mut query): Query<HealthQuery>) -> PageResult {
    let (window, minutes, width) = WINDOWS
        .iter()
        .copied()
        .find(|(name, _, _)| query.window.as_deref() == Some(*name))
        .unwrap_or(WINDOWS[1]);
    let now_minute = Timestamp::now().as_micros().div_euclid(60_000_000);
    let buckets = minutes / width;
    let first = (now_minute / width - buckets + 1) * width;
    // A tenant user sees their own tenant only, whatever the query says.
    let tenant = match &staff.person.tenant_id {
        Some(t) => Some(t.to_string()),
        None => nonempty(&query.tenant),
    };
    query.tenant = tenant.clone();
    let filter = HealthFilter {
        since_minute: first,
        tenant_id: tenant.clone(),
        environment: nonempty(&query.environment).filter(|e| e == "sandbox" || e == "live"),
        program_id: nonempty(&query.program),
        // A week reads the hourly aggregates (its buckets are whole hours).
        hourly: width % 60 == 0,
    };
    let totals = state.health.health_totals(&filter).await?;
    let points = state.health.health_series(&filter, width).await?;
    let show_queues = staff.person.can(Action::ViewCases) || staff.person.can(Action::ViewDisputes);
    let queues = if show_queues {
        state.health.queue_health(Timestamp::now(), tenant.as_deref()).await?
    } else {
        QueueHealth::default()
    };
    let (overall, programs, webhooks) = summarise(&totals, minutes);
    let filled = fill(&points, first, buckets, width);
    let with_date = minutes > 1_440 - 1;
    let step = usize::try_from(buckets / 6).unwrap_or(1).max(1);
    let x_labels = (0..filled.len())
        .step_by(step)
        .map(|i| (i, minute_label(filled[i].0, with_date)))
        .collect();
    let chart = LineChart::new(
        "health-chart",
        format!("Authorizations per {width} min, last {window} (UTC)"),
        vec![
            ("Approved", "approved", filled.iter().map(|p| p.1).collect()),
            ("Declined", "declined", filled.iter().map(|p| p.2).collect()),
        ],
        x_labels,
    );
    let series = filled
        .iter()
        .filter(|p| p.1 + p.2 > 0)
        .map(|(b, a, d)| (minute_label(*b, true), *a, *d))
        .collect();
    page(&HealthPage {
        chrome: Chrome::new(&staff, "health"),
        window,
        windows: WINDOWS.iter().map(|w| (w.0, w.0 == window)).collect(),
        env_is_sandbox: query.environment.as_deref() == Some("sandbox"),
        env_is_live: query.environment.as_deref() == Some("live"),
        query,
        overall,
        programs,
        webhooks,
        queues,
        show_queues,
        chart,
        series,
        rolled_up_note: "Figures come from per-minute aggregates rolled up every few seconds; the last seconds may not be counted yet.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_rates_are_rounded_in_integers() {
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(0, 0), "–");
        assert_eq!(rate(150, 60), "2.50");
    }

    #[test]
    fn quantiles_name_the_bucket_holding_the_rank() {
        let mut b = BTreeMap::new();
        b.insert(5, 98);
        b.insert(50, 1);
        b.insert(i64::MAX, 1);
        assert_eq!(quantile(&b, 500), "≤ 5 ms");
        assert_eq!(quantile(&b, 990), "≤ 50 ms");
        assert_eq!(quantile(&b, 1_000), "> 5000 ms");
    }
}
