//! Usage analytics in the portal: the tenant's API requests per day and per key, error rates,
//! p50/p99 latency per endpoint (from the request log's daily rollup), and the card
//! authorizations approved and declined per day (from the health rollups). Charts are SVG drawn
//! on the server; every figure is also in a table beneath.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use cardplane_domain::Timestamp;
use cardplane_domain::people::Action;
use cardplane_domain::request_log::{day_of, day_start};
use cardplane_store::health::{HealthFilter, SeriesPoint};
use cardplane_store::request_log::{DailyUsage, EndpointLatency, UsageCounts};
use serde::Deserialize;

use super::keys::key_names;
use super::requests::latency_ms;
use super::{Workspace, chrome};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::chart::{BarChart, LineChart};
use crate::web::{Chrome, PageResult, page};

/// The windows the page offers, in days.
const WINDOWS: [u32; 3] = [1, 7, 30];
const DEFAULT_WINDOW: u32 = 7;
const MINUTES_PER_DAY: i64 = 1_440;
/// Endpoints drawn in the latency chart (all are in the table).
const ENDPOINTS_CHARTED: usize = 12;

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    /// One of [`WINDOWS`]; anything else (or nothing) shows the default window.
    days: Option<String>,
}

/// One day of the window: requests, errors, authorizations.
pub struct DayRow {
    pub date: String,
    pub requests: i64,
    pub errors: i64,
    pub error_rate: String,
    pub approved: i64,
    pub declined: i64,
}

pub struct KeyRow {
    pub key: String,
    pub requests: i64,
    pub errors_4xx: i64,
    pub errors_5xx: i64,
    pub error_rate: String,
}

pub struct EndpointRow {
    pub endpoint: String,
    pub requests: i64,
    pub error_rate: String,
    pub p50: String,
    pub p99: String,
    pub mean: String,
}

pub struct Charts {
    pub requests: LineChart,
    pub authorizations: LineChart,
    pub keys: BarChart,
    pub latency: BarChart,
}

impl Charts {
    fn of(days: u32, rows: &[DayRow], keys: &[KeyRow], endpoints: &[EndpointLatency]) -> Self {
        Charts {
            requests: LineChart::new(
                "requests-chart",
                format!("API requests per day, last {days} days (UTC)"),
                vec![
                    ("Requests", "requests", rows.iter().map(|r| r.requests).collect()),
                    ("Errors (4xx, 5xx)", "errors", rows.iter().map(|r| r.errors).collect()),
                ],
                day_labels(rows),
            ),
            authorizations: LineChart::new(
                "authorizations-chart",
                format!("Card authorizations per day, last {days} days (UTC)"),
                vec![
                    ("Approved", "approved", rows.iter().map(|r| r.approved).collect()),
                    ("Declined", "declined", rows.iter().map(|r| r.declined).collect()),
                ],
                day_labels(rows),
            ),
            keys: BarChart::new(
                "keys-chart",
                "Requests per API key".to_owned(),
                keys.iter()
                    .map(|k| (k.key.clone(), k.requests, k.requests.to_string()))
                    .collect(),
            ),
            latency: BarChart::new(
                "latency-chart",
                "p99 latency per endpoint (ms, busiest endpoints)".to_owned(),
                endpoints
                    .iter()
                    .take(ENDPOINTS_CHARTED)
                    .map(|e| {
                        let row = endpoint_row(e);
                        (row.endpoint, e.p99_us.unwrap_or(0), row.p99)
                    })
                    .collect(),
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/usage.html")]
struct UsagePage {
    chrome: Chrome,
    env: &'static str,
    days: u32,
    windows: [u32; 3],
    retention_days: u32,
    totals: UsageCounts,
    total_error_rate: String,
    charts: Charts,
    day_rows: Vec<DayRow>,
    key_rows: Vec<KeyRow>,
    endpoint_rows: Vec<EndpointRow>,
}

/// `12.5%` from a per-mille figure.
fn per_mille(n: i64) -> String {
    format!("{}.{}%", n / 10, n % 10)
}

fn date(day: i64) -> String {
    let t = day_start(day).to_offset_date_time();
    format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn optional_ms(us: Option<i64>) -> String {
    us.map(latency_ms).unwrap_or_else(|| "–".to_owned())
}

/// Every day of the window, quiet days as zero, so the charts do not skip them.
fn day_rows(first: i64, days: u32, usage: &[DailyUsage], authorizations: &[SeriesPoint]) -> Vec<DayRow> {
    let usage: BTreeMap<i64, UsageCounts> = usage.iter().map(|u| (u.day, u.counts)).collect();
    let auths: BTreeMap<i64, (i64, i64)> = authorizations
        .iter()
        .map(|p| (p.bucket.div_euclid(MINUTES_PER_DAY), (p.approved, p.declined)))
        .collect();
    (first..first + i64::from(days))
        .map(|day| {
            let c = usage.get(&day).copied().unwrap_or_default();
            let (approved, declined) = auths.get(&day).copied().unwrap_or_default();
            DayRow {
                date: date(day),
                requests: c.requests,
                errors: c.errors_4xx + c.errors_5xx,
                error_rate: per_mille(c.error_rate_per_mille()),
                approved,
                declined,
            }
        })
        .collect()
}

fn endpoint_row(e: &EndpointLatency) -> EndpointRow {
    EndpointRow {
        endpoint: format!("{} {}", e.method, e.route),
        requests: e.counts.requests,
        error_rate: per_mille(e.counts.error_rate_per_mille()),
        p50: optional_ms(e.p50_us),
        p99: optional_ms(e.p99_us),
        mean: latency_ms(e.mean_us),
    }
}

/// Date labels under a daily chart: about six of them.
fn day_labels(rows: &[DayRow]) -> Vec<(usize, String)> {
    let step = (rows.len() / 6).max(1);
    (0..rows.len())
        .step_by(step)
        .map(|i| (i, rows[i].date[5..].to_owned()))
        .collect()
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(env): Path<String>,
    Query(q): Query<UsageQuery>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewIntegration)?;
    let days = q
        .days
        .and_then(|d| d.trim().parse().ok())
        .filter(|d| WINDOWS.contains(d))
        .unwrap_or(DEFAULT_WINDOW);
    let now = Timestamp::now();
    let first = day_of(now) - i64::from(days) + 1;
    let scope = ws.scope();
    let per_day = state.request_log.requests_per_day(&scope, now, days).await?;
    let per_key = state.request_log.requests_per_key(&scope, now, days).await?;
    let endpoints = state.request_log.endpoint_latency(&scope, now, days).await?;
    let authorizations = state
        .health
        .health_series(
            &HealthFilter {
                since_minute: first * MINUTES_PER_DAY,
                tenant_id: Some(ws.tenant_id.to_string()),
                environment: Some(ws.env().to_owned()),
                program_id: None,
                hourly: true,
            },
            MINUTES_PER_DAY,
        )
        .await?;
    let names = key_names(&state, &ws).await?;
    let rows = day_rows(first, days, &per_day, &authorizations);
    let totals = per_day.iter().fold(UsageCounts::default(), |t, d| UsageCounts {
        requests: t.requests + d.counts.requests,
        errors_4xx: t.errors_4xx + d.counts.errors_4xx,
        errors_5xx: t.errors_5xx + d.counts.errors_5xx,
    });
    let key_rows: Vec<KeyRow> = per_key
        .iter()
        .map(|k| KeyRow {
            key: names
                .get(&k.api_key_id)
                .cloned()
                .unwrap_or_else(|| k.api_key_id.clone()),
            requests: k.counts.requests,
            errors_4xx: k.counts.errors_4xx,
            errors_5xx: k.counts.errors_5xx,
            error_rate: per_mille(k.counts.error_rate_per_mille()),
        })
        .collect();
    let endpoint_rows: Vec<EndpointRow> = endpoints.iter().map(endpoint_row).collect();
    page(&UsagePage {
        chrome: chrome(&staff, "usage", Some(&ws)),
        env: ws.env(),
        days,
        windows: WINDOWS,
        retention_days: state.config.request_log.retention_days,
        totals,
        total_error_rate: per_mille(totals.error_rate_per_mille()),
        charts: Charts::of(days, &rows, &key_rows, &endpoints),
        day_rows: rows,
        key_rows,
        endpoint_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_day_of_the_window_has_a_row_with_both_sources_merged() {
        let first = 20_000;
        let usage = [DailyUsage {
            day: first + 1,
            counts: UsageCounts {
                requests: 10,
                errors_4xx: 1,
                errors_5xx: 1,
            },
        }];
        let auths = [SeriesPoint {
            bucket: (first + 2) * MINUTES_PER_DAY,
            approved: 3,
            declined: 4,
        }];
        let rows = day_rows(first, 3, &usage, &auths);
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].requests, rows[0].approved), (0, 0));
        assert_eq!(
            (rows[1].requests, rows[1].errors, rows[1].error_rate.as_str()),
            (10, 2, "20.0%")
        );
        assert_eq!((rows[2].approved, rows[2].declined), (3, 4));
        assert_eq!(rows[0].date, "2024-10-04");
    }
}
