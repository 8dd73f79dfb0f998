//! Webhook health: delivery success over the last day per tenant (from the roll-up aggregates)
//! and every endpoint's state, with what waits and what was given up on. URLs are shown without
//! their query string (it may carry a token); secrets are never read.

use askama::Template;
use axum::extract::State;
use cardplane_domain::Timestamp;
use cardplane_domain::people::Action;
use cardplane_store::health::{HealthFilter, metric};
use cardplane_store::webhooks::EndpointHealth;

use super::health::percent;
use super::{Chrome, PageResult, page, when};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::without_query;

const ENDPOINTS_SHOWN_MAX: u32 = 200;

pub struct EndpointRow {
    pub e: EndpointHealth,
    pub url: String,
    pub failing_since: String,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    chrome: Chrome,
    /// (tenant, environment, succeeded, failed, rate) over the last 24 hours.
    rates: Vec<(String, String, i64, i64, String)>,
    endpoints: Vec<EndpointRow>,
}

pub async fn health(State(state): State<AppState>, staff: Staff) -> PageResult {
    // Endpoints are tenants' configuration: who may see API keys may see these.
    staff.require(Action::ViewApiKeys)?;
    let tenant = staff.person.tenant_id.as_ref().map(|t| t.to_string());
    let since_minute = Timestamp::now().as_micros().div_euclid(60_000_000) - 1_440;
    let totals = state
        .health
        .health_totals(&HealthFilter {
            since_minute,
            tenant_id: tenant.clone(),
            ..HealthFilter::default()
        })
        .await?;
    let mut by_tenant: std::collections::BTreeMap<(String, String), (i64, i64)> = std::collections::BTreeMap::new();
    for t in totals.iter().filter(|t| t.metric == metric::WEBHOOK) {
        let slot = by_tenant
            .entry((t.tenant_id.clone(), t.environment.clone()))
            .or_default();
        if t.dim == "success" {
            slot.0 += t.n;
        } else {
            slot.1 += t.n;
        }
    }
    let rates = by_tenant
        .into_iter()
        .map(|((t, e), (ok, bad))| (t, e, ok, bad, percent(ok, ok + bad)))
        .collect();
    let endpoints = state
        .webhooks
        .endpoint_health(tenant.as_deref(), ENDPOINTS_SHOWN_MAX)
        .await?
        .into_iter()
        .map(|e| EndpointRow {
            url: without_query(&e.url),
            failing_since: e.failing_since.map(when).unwrap_or_default(),
            e,
        })
        .collect();
    page(&WebhooksPage {
        chrome: Chrome::new(&staff, "webhooks"),
        rates,
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_shown_without_their_query_string() {
        assert_eq!(
            crate::web::without_query("https://example.com/hook?token=secret#x"),
            "https://example.com/hook"
        );
    }
}
