//! The webhook delivery worker. Each round claims due deliveries (with a lease, so several
//! `serve` processes never send the same attempt), sends them signed per Standard Webhooks, and
//! records each attempt with its outcome. The clock is a parameter: `deliver_due(now)` is what the
//! background loop calls with the wall clock and what tests call with an injected one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::WebhookAttemptId;
use cardplane_domain::vault::Vault;
use cardplane_domain::webhook::{
    self, AttemptVerdict, DisabledReason, Network, WebhookSecret, address_allowed, failing_too_long,
};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::webhooks::{AttemptRecord, DeliveryOutcome, DueDelivery, EndpointOutcome, WebhookStore};
use rand::Rng;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::views::EndpointView;

/// Response bodies are read up to this size and then dropped (we only need the status).
pub const RESPONSE_BODY_READ_MAX_BYTES: usize = 64 * 1024;
const USER_AGENT: &str = concat!("Cardplane-Webhooks/", env!("CARGO_PKG_VERSION"));

/// The vault context an endpoint secret is sealed under.
pub fn secret_context(endpoint_id: &str) -> String {
    format!("webhook_endpoint.secret:{endpoint_id}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("the URL must be an absolute http or https URL with a host")]
    Invalid,
    #[error("the URL's host could not be resolved")]
    Unresolvable,
    #[error("the URL resolves to an address endpoints in this environment may not use")]
    NotAllowed,
}

const URL_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks an endpoint URL when it is created or changed: it must parse and every address it
/// resolves to must be allowed. (Deliveries check again when they connect, against DNS
/// rebinding.)
pub async fn check_url(raw: &str, environment: Environment, allow: &[Network]) -> Result<reqwest::Url, UrlError> {
    let url = reqwest::Url::parse(raw).map_err(|_| UrlError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Invalid);
    }
    let host = url.host_str().ok_or(UrlError::Invalid)?.to_owned();
    let port = url.port_or_known_default().ok_or(UrlError::Invalid)?;
    let addrs: Vec<SocketAddr> = match host_ip(&url) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        // A resolver that never answers must not hold the request until its deadline.
        None => tokio::time::timeout(URL_LOOKUP_TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
            .await
            .map_err(|_| UrlError::Unresolvable)?
            .map_err(|_| UrlError::Unresolvable)?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable);
    }
    if addrs.iter().any(|a| !address_allowed(a.ip(), environment, allow)) {
        return Err(UrlError::NotAllowed);
    }
    Ok(url)
}

fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Resolves names and drops addresses the environment may not reach, so a name that resolves to
/// an internal address at delivery time (DNS rebinding) fails to connect.
struct GuardedResolver {
    environment: Environment,
    allow: Arc<[Network]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let environment = self.environment;
        let allow = self.allow.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| address_allowed(a.ip(), environment, &allow)).collect();
            if allowed.is_empty() {
                return Err("no allowed address for this host".into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

fn client(environment: Environment, allow: Arc<[Network]>, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .user_agent(USER_AGENT)
        .dns_resolver(GuardedResolver { environment, allow })
        .build()
        .expect("static HTTP client configuration is valid")
}

/// What delivery needs of the operator's webhook settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Per-attempt timeout, connect to last body byte.
    pub attempt_timeout_ms: u64,
    /// A claim lasts the attempt timeout plus this margin; then another worker may take it over.
    pub lease_margin_secs: i64,
    /// Deliveries claimed per round.
    pub batch_size: u32,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after_failing_secs: i64,
    /// The delivery log keeps attempts this long.
    pub history_retention_days: i64,
}

/// What came back from one HTTP attempt.
struct Sent {
    status: Option<u16>,
    retry_after_secs: Option<i64>,
    error: Option<String>,
}

#[derive(Clone)]
pub struct Deliverer {
    store: Arc<dyn WebhookStore>,
    vault: Arc<Vault>,
    config: DeliveryConfig,
    allow: Arc<[Network]>,
    sandbox: reqwest::Client,
    live: reqwest::Client,
}

impl Deliverer {
    /// A deliverer over the webhook store, opening endpoint secrets with the vault; live
    /// endpoints may reach the operator's `allow` networks although they are internal.
    pub fn new(store: Arc<dyn WebhookStore>, vault: Arc<Vault>, config: DeliveryConfig, allow: Arc<[Network]>) -> Self {
        let timeout = Duration::from_millis(config.attempt_timeout_ms);
        Deliverer {
            store,
            vault,
            sandbox: client(Environment::Sandbox, allow.clone(), timeout),
            live: client(Environment::Live, allow.clone(), timeout),
            config,
            allow,
        }
    }

    /// How long a claim is held: the attempt timeout (rounded up) plus a margin for recording.
    pub fn lease_secs(&self) -> i64 {
        let timeout = i64::try_from(self.config.attempt_timeout_ms.div_ceil(1000)).unwrap_or(i64::MAX / 4);
        timeout.saturating_add(self.config.lease_margin_secs.max(1))
    }

    /// One round: claims what is due at `now`, sends it, records every attempt. Returns how many
    /// deliveries were attempted.
    pub async fn deliver_due(&self, now: Timestamp) -> Result<usize, StoreError> {
        let due = self
            .store
            .claim_due(now, now.plus_secs(self.lease_secs()), self.config.batch_size)
            .await?;
        let results = futures::future::join_all(due.iter().map(|d| self.attempt(d, now))).await;
        for (d, r) in due.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(webhook_endpoint.id = %d.endpoint_id, event.id = %d.event_id, error = %e,
                    "could not record a webhook attempt; it will be retried when its lease expires");
            }
        }
        Ok(due.len())
    }

    fn secrets(&self, due: &DueDelivery, now: Timestamp) -> Result<Vec<WebhookSecret>, String> {
        let context = secret_context(due.endpoint_id.as_str());
        let open = |sealed: &str| {
            self.vault
                .open(sealed, &context)
                .map_err(|e| e.to_string())
                .and_then(|bytes| WebhookSecret::from_bytes(bytes).map_err(|e| e.to_string()))
        };
        let mut secrets = vec![open(&due.secret_sealed)?];
        if let (Some(previous), Some(until)) = (&due.previous_secret_sealed, due.previous_secret_expires_at)
            && until > now
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }

    async fn attempt(&self, due: &DueDelivery, now: Timestamp) -> Result<(), StoreError> {
        let started = Instant::now();
        let sent = match self.secrets(due, now) {
            Ok(secrets) => self.send(due, &secrets).await,
            Err(cause) => {
                tracing::error!(webhook_endpoint.id = %due.endpoint_id, error = %cause, "endpoint secret unavailable");
                Sent {
                    status: None,
                    retry_after_secs: None,
                    error: Some("signing secret unavailable".into()),
                }
            }
        };
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempt_number = due.attempts + 1;
        let verdict = webhook::judge(sent.status, sent.retry_after_secs);
        let jitter = rand::rng().random_range(0..=webhook::JITTER_PERMILLE_MAX);
        let (delivery, endpoint) = match verdict {
            AttemptVerdict::Delivered => (DeliveryOutcome::Delivered, EndpointOutcome::Healthy),
            AttemptVerdict::Gone => (
                DeliveryOutcome::GaveUp,
                self.disable(due, DisabledReason::Gone, now).await?,
            ),
            AttemptVerdict::Failed { not_before_secs } => {
                let delivery = match webhook::next_attempt_at(now, attempt_number, not_before_secs, jitter) {
                    Some(at) => DeliveryOutcome::RetryAt(at),
                    None => DeliveryOutcome::GaveUp,
                };
                let endpoint = if failing_too_long(due.failing_since, now, self.config.disable_after_failing_secs) {
                    self.disable(due, DisabledReason::Failing, now).await?
                } else {
                    EndpointOutcome::Failing
                };
                (delivery, endpoint)
            }
        };
        tracing::info!(
            webhook_endpoint.id = %due.endpoint_id, event.id = %due.event_id, tenant.id = %due.scope.tenant_id,
            attempt = attempt_number, http.status = sent.status, latency_ms, error = sent.error.as_deref(),
            "webhook attempt"
        );
        let result = match verdict {
            AttemptVerdict::Delivered => "delivered",
            AttemptVerdict::Gone => "gone",
            AttemptVerdict::Failed { .. } => "failed",
        };
        metrics::counter!("webhook_attempts_total", "result" => result).increment(1);
        metrics::histogram!("webhook_attempt_duration_seconds").record(started.elapsed().as_secs_f64());
        let record = AttemptRecord {
            attempt_id: WebhookAttemptId::generate(),
            attempt_number,
            attempted_at: now,
            status_code: sent.status,
            latency_ms,
            error: sent.error,
            delivery,
            endpoint,
        };
        self.store.record_attempt(due, &record).await
    }

    /// The outcome that disables the endpoint, with the event that says so.
    async fn disable(
        &self,
        due: &DueDelivery,
        reason: DisabledReason,
        now: Timestamp,
    ) -> Result<EndpointOutcome, StoreError> {
        let mut endpoint = self.store.get_endpoint(&due.scope, &due.endpoint_id).await?;
        endpoint.enabled = false;
        endpoint.disabled_reason = Some(reason);
        endpoint.failing_since = None;
        endpoint.updated_at = now;
        let data = serde_json::to_value(EndpointView::from(&endpoint)).unwrap_or_default();
        let event = Event::new(
            &due.scope.tenant_id,
            due.scope.environment,
            EventType::WebhookEndpointDisabled,
            endpoint.id.as_str(),
            data,
            now,
        );
        tracing::warn!(webhook_endpoint.id = %due.endpoint_id, reason = reason.as_str(), "webhook endpoint disabled");
        Ok(EndpointOutcome::Disable(reason, Box::new(event)))
    }

    async fn send(&self, due: &DueDelivery, secrets: &[WebhookSecret]) -> Sent {
        let failed = |error: &str| Sent {
            status: None,
            retry_after_secs: None,
            error: Some(error.to_owned()),
        };
        let body = payload(due);
        let url = match reqwest::Url::parse(&due.url) {
            Ok(u) => u,
            Err(_) => return failed("invalid URL"),
        };
        if let Some(ip) = host_ip(&url)
            && !address_allowed(ip, due.scope.environment, &self.allow)
        {
            return failed("address not allowed");
        }
        // The signature's timestamp is the real send time: receivers check it against their clock.
        let timestamp = Timestamp::now().unix_seconds();
        let msg_id = due.event_id.as_str();
        let signature = webhook::signature_header(secrets, msg_id, timestamp, body.as_bytes());
        let client = match due.scope.environment {
            Environment::Sandbox => &self.sandbox,
            Environment::Live => &self.live,
        };
        let mut request = client.post(url).header("content-type", "application/json");
        for (name, value) in webhook::standard_headers(msg_id, timestamp, signature) {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return failed("timeout"),
            Err(e) if e.is_connect() => return failed("connection failed"),
            Err(_) => return failed("request failed"),
        };
        let status = response.status().as_u16();
        let retry_after_secs = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| webhook::parse_retry_after(v, Timestamp::now()));
        // Read at most the cap, then drop the connection's remainder.
        let mut read = 0usize;
        let mut error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read >= RESPONSE_BODY_READ_MAX_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    error = Some("timeout".to_owned());
                    break;
                }
                Err(_) => break,
            }
        }
        if error.is_none() && (300..400).contains(&status) {
            error = Some("redirects are not followed".to_owned());
        }
        if error.is_some() && (200..300).contains(&status) {
            // The body did not arrive within the timeout: not a delivery we can count on.
            return Sent {
                status: None,
                retry_after_secs: None,
                error,
            };
        }
        Sent {
            status: Some(status),
            retry_after_secs,
            error,
        }
    }
}

/// The body of a delivery: the event as the API renders it, plus its sequence number.
pub fn payload(due: &DueDelivery) -> String {
    let data: serde_json::Value = serde_json::from_str(&due.event_data).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "id": due.event_id.as_str(),
        "type": due.event_type,
        "livemode": due.scope.environment.livemode(),
        "object_id": due.event_object_id,
        "sequence": due.event_sequence,
        "data": data,
        "created_at": due.event_created_at.to_rfc3339(),
    })
    .to_string()
}

/// The delivery log is trimmed this often.
const HISTORY_PURGE_EVERY: Duration = Duration::from_secs(3600);

impl Deliverer {
    /// Drops delivery-log entries older than the retention period.
    pub async fn purge_history(&self, now: Timestamp) -> Result<u64, StoreError> {
        let days = self.config.history_retention_days.max(1);
        self.store.purge_webhook_history(now.plus_secs(-days * 86_400)).await
    }
}

/// The background loop `serve` runs: a round every poll interval (immediately again while there
/// is a full batch), and a trim of the delivery log every hour.
pub async fn run(deliverer: Deliverer, poll_interval: Duration) {
    let mut last_purge: Option<Instant> = None;
    loop {
        if last_purge.is_none_or(|t| t.elapsed() >= HISTORY_PURGE_EVERY) {
            last_purge = Some(Instant::now());
            match deliverer.purge_history(Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "old webhook delivery records removed"),
                Err(e) => tracing::warn!(error = %e, "webhook history purge failed"),
            }
        }
        match deliverer.deliver_due(Timestamp::now()).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook delivery round failed"),
        }
        tokio::time::sleep(poll_interval).await;
    }
}
