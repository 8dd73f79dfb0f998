//! Configuration: built-in defaults, then an optional TOML file, then `CARDPLANE_*` environment
//! variables. Secrets (KEK, pepper) are never printed: `Debug` masks them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://cardplane.db` (embedded default) or `postgres://user@host/db`.
    pub database_url: String,
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before it is answered
    /// `503 service_unavailable` (also what bounds a request while the database is down).
    pub database_acquire_timeout_ms: u64,
    pub listen: SocketAddr,
    /// Where generated secrets live when none are configured (created on first start, mode 0600).
    pub key_file: PathBuf,
    /// Key-encryption key (32 bytes, base64 or hex). Overrides the key file.
    pub kek: Option<String>,
    /// Server pepper for API secret hashes. Overrides the key file.
    pub api_key_pepper: Option<String>,
    pub request_body_limit_bytes: usize,
    /// Request line plus all headers (name, value and 4 bytes of separators each); over it: 431.
    pub request_header_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub log_format: LogFormat,
    pub kyc: KycConfig,
    /// Requests per second per API key (a tenant can have its own); bursts up to one second's worth.
    pub rate_limit_per_second: u32,
    /// Failed authentications per minute from one address before it is refused for a minute.
    pub auth_failures_per_minute: u32,
    /// Consecutive custodian failures that open a program's circuit breaker.
    pub custodian_breaker_failures: u32,
    /// How long an open breaker sends every authorization to stand-in before probing again.
    pub custodian_breaker_open_ms: u64,
    /// The most network messages the authorization engine applies in one database transaction.
    pub authorization_batch_size_max: usize,
    /// Authorization writers committing batches side by side (PostgreSQL; SQLite always uses one).
    pub authorization_writers: usize,
    /// How often the Regulation E clock runs over open disputes (provisional credit due,
    /// resolution deadlines); every process runs it, a case moves once.
    pub dispute_deadlines_interval_ms: u64,
    /// How often each process looks for a queued rule backtest to run (one at a time).
    pub backtest_poll_interval_ms: u64,
    /// How often the console's program-health aggregates are rolled up from new transactions,
    /// ledger entries and webhook attempts.
    pub health_rollup_interval_ms: u64,
    pub webhooks: WebhooksConfig,
    pub operators: OperatorsConfig,
    pub portal: PortalConfig,
    pub request_log: RequestLogConfig,
}

/// The developer portal (`[portal]`): who may sign up, tenant users' second factor, and how mail
/// with sign-up and invitation links leaves.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Anyone with an email address they can read may create a tenant from `/portal/signup`.
    /// Off by default: operators create tenants and invite their owners.
    pub self_signup: bool,
    /// Require tenant users (not only operators) to enrol a TOTP second factor.
    pub require_mfa: bool,
    /// The address people reach this server at, for links in mail and the quickstart
    /// (default: `http://` and the listen address).
    pub public_url: Option<String>,
    /// Also write each mail as a file here (the local mail adapter); mail is always logged
    /// without its link's secret.
    pub mail_dir: Option<PathBuf>,
    /// How long a sign-up or invitation link works.
    pub invitation_ttl_hours: i64,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            self_signup: false,
            require_mfa: false,
            public_url: None,
            mail_dir: None,
            invitation_ttl_hours: 72,
        }
    }
}

/// The developer portal's request log (`[request_log]`): every tenant API request of an
/// authenticated key, bodies masked, written off the request path.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLogConfig {
    /// Capture requests at all (off: the capture layer is not even installed).
    pub enabled: bool,
    /// Entries and usage days older than this are purged.
    pub retention_days: u32,
    /// Entries waiting for the writer; when full, new ones are dropped (and counted in
    /// `request_log_dropped_total`) rather than making a request wait.
    pub queue_capacity: usize,
    /// Masked bodies are cut at this size; larger responses are not buffered at all.
    pub body_cap_bytes: usize,
    /// The most entries written in one batch.
    pub batch_max: usize,
    /// How often the writer drains the queue.
    pub flush_interval_ms: u64,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention_days: 7,
            queue_capacity: 10_000,
            body_cap_bytes: 16 * 1024,
            batch_max: 512,
            flush_interval_ms: 250,
        }
    }
}

impl RequestLogConfig {
    fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        set_parsed(get, "CARDPLANE_REQUEST_LOG_ENABLED", &mut self.enabled)?;
        set_parsed(get, "CARDPLANE_REQUEST_LOG_RETENTION_DAYS", &mut self.retention_days)?;
        set_parsed(get, "CARDPLANE_REQUEST_LOG_QUEUE_CAPACITY", &mut self.queue_capacity)?;
        set_parsed(get, "CARDPLANE_REQUEST_LOG_BODY_CAP_BYTES", &mut self.body_cap_bytes)?;
        set_parsed(get, "CARDPLANE_REQUEST_LOG_BATCH_MAX", &mut self.batch_max)?;
        set_parsed(
            get,
            "CARDPLANE_REQUEST_LOG_FLUSH_INTERVAL_MS",
            &mut self.flush_interval_ms,
        )
    }
}

/// Overwrites `slot` with the variable `name`, parsed, when it is set.
fn set_parsed<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    slot: &mut T,
) -> Result<(), ConfigError>
where
    T::Err: fmt::Display,
{
    if let Some(raw) = get(name) {
        *slot = raw.parse().map_err(|e: T::Err| ConfigError::Env {
            name: name.into(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// People who sign in to `/ops` (`[operators]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorsConfig {
    /// A session unused for this long is over (15 minutes by default).
    pub session_idle_secs: i64,
    /// Send the session cookie with `Secure` (turn off only for plain-HTTP development).
    pub cookie_secure: bool,
    /// Require operators to enrol a TOTP second factor before anything but enrolment (tenant
    /// users: `portal.require_mfa`).
    pub require_mfa: bool,
    /// Where uploaded documents are stored (encrypted).
    pub documents_dir: PathBuf,
    pub document_max_bytes: usize,
}

impl Default for OperatorsConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: cardplane_domain::people::SESSION_IDLE_SECS,
            cookie_secure: true,
            require_mfa: true,
            documents_dir: PathBuf::from("cardplane-documents"),
            document_max_bytes: 10 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KycProviderKind {
    /// Deterministic from the document number (sandbox environment only).
    Sandbox,
    /// Posts the applicant to `kyc.http_url`.
    Http,
    /// Records NOT_CHECKED.
    None,
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KycConfig {
    pub minimum_age_years: u8,
    pub sandbox_provider: KycProviderKind,
    pub live_provider: KycProviderKind,
    pub http_url: Option<String>,
    pub http_timeout_ms: u64,
    pub http_secret: Option<String>,
}

impl Default for KycConfig {
    fn default() -> Self {
        Self {
            minimum_age_years: 18,
            sandbox_provider: KycProviderKind::Sandbox,
            live_provider: KycProviderKind::None,
            http_url: None,
            http_timeout_ms: 3000,
            http_secret: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://cardplane.db".into(),
            database_max_connections: 16,
            database_acquire_timeout_ms: 2_000,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            key_file: PathBuf::from("cardplane.keys"),
            kek: None,
            api_key_pepper: None,
            request_body_limit_bytes: 64 * 1024,
            request_header_limit_bytes: 16 * 1024,
            request_timeout_ms: 30_000,
            log_format: LogFormat::Json,
            kyc: KycConfig::default(),
            rate_limit_per_second: 200,
            auth_failures_per_minute: 30,
            custodian_breaker_failures: 5,
            custodian_breaker_open_ms: 30_000,
            authorization_batch_size_max: 256,
            authorization_writers: 2,
            dispute_deadlines_interval_ms: 60_000,
            backtest_poll_interval_ms: 1_000,
            health_rollup_interval_ms: 5_000,
            webhooks: WebhooksConfig::default(),
            operators: OperatorsConfig::default(),
            portal: PortalConfig::default(),
            request_log: RequestLogConfig::default(),
        }
    }
}

fn masked(v: &Option<String>) -> &'static str {
    if v.is_some() { "<set>" } else { "<unset>" }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("key_file", &self.key_file)
            .field("kek", &masked(&self.kek))
            .field("api_key_pepper", &masked(&self.api_key_pepper))
            .field("request_body_limit_bytes", &self.request_body_limit_bytes)
            .field("request_header_limit_bytes", &self.request_header_limit_bytes)
            .field("authorization_batch_size_max", &self.authorization_batch_size_max)
            .field("authorization_writers", &self.authorization_writers)
            .field("dispute_deadlines_interval_ms", &self.dispute_deadlines_interval_ms)
            .field("backtest_poll_interval_ms", &self.backtest_poll_interval_ms)
            .field("health_rollup_interval_ms", &self.health_rollup_interval_ms)
            .field("kyc.sandbox_provider", &self.kyc.sandbox_provider)
            .field("kyc.live_provider", &self.kyc.live_provider)
            .field("kyc.http_secret", &masked(&self.kyc.http_secret))
            .field("webhooks", &self.webhooks)
            .field("operators", &self.operators)
            .field("portal", &self.portal)
            .field("request_log", &self.request_log)
            .finish()
    }
}

/// Webhook delivery (`[webhooks]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Run the delivery worker in `serve` (tests that drive it with an injected clock turn it off).
    pub worker: bool,
    pub poll_interval_ms: u64,
    /// Per-attempt timeout, connect to last body byte.
    pub attempt_timeout_ms: u64,
    /// How long the previous secret keeps signing after `rotate_secret`.
    pub secret_overlap_secs: i64,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after_failing_secs: i64,
    /// Deliveries claimed per worker round.
    pub batch_size: u32,
    /// A claim lasts the attempt timeout plus this margin; then another worker may take it over.
    pub lease_margin_secs: i64,
    /// The delivery log keeps attempts this long.
    pub history_retention_days: i64,
    /// Networks (CIDR) live endpoints may reach even though they are private, loopback or
    /// link-local.
    pub live_allowed_networks: Vec<String>,
}

impl WebhooksConfig {
    /// What the delivery worker needs of these settings.
    pub fn delivery(&self) -> cardplane_engine::delivery::DeliveryConfig {
        cardplane_engine::delivery::DeliveryConfig {
            attempt_timeout_ms: self.attempt_timeout_ms,
            lease_margin_secs: self.lease_margin_secs,
            batch_size: self.batch_size,
            disable_after_failing_secs: self.disable_after_failing_secs,
            history_retention_days: self.history_retention_days,
        }
    }

    /// Parses the operator allowlist; fails on any malformed entry.
    pub fn allowlist(&self) -> Result<Vec<cardplane_domain::webhook::Network>, String> {
        self.live_allowed_networks
            .iter()
            .map(|n| cardplane_domain::webhook::Network::parse(n))
            .collect()
    }
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            worker: true,
            poll_interval_ms: 1000,
            attempt_timeout_ms: 10_000,
            secret_overlap_secs: 24 * 3600,
            disable_after_failing_secs: 5 * 24 * 3600,
            batch_size: 32,
            lease_margin_secs: 30,
            history_retention_days: 30,
            live_allowed_networks: Vec::new(),
        }
    }
}

impl WebhooksConfig {
    // Long: one environment variable per setting, a table.
    fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, raw: String) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            raw.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.into(),
                message: e.to_string(),
            })
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_WORKER") {
            self.worker = parsed("CARDPLANE_WEBHOOKS_WORKER", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_POLL_INTERVAL_MS") {
            self.poll_interval_ms = parsed("CARDPLANE_WEBHOOKS_POLL_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_ATTEMPT_TIMEOUT_MS") {
            self.attempt_timeout_ms = parsed("CARDPLANE_WEBHOOKS_ATTEMPT_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_SECRET_OVERLAP_SECS") {
            self.secret_overlap_secs = parsed("CARDPLANE_WEBHOOKS_SECRET_OVERLAP_SECS", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_DISABLE_AFTER_FAILING_SECS") {
            self.disable_after_failing_secs = parsed("CARDPLANE_WEBHOOKS_DISABLE_AFTER_FAILING_SECS", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_LEASE_MARGIN_SECS") {
            self.lease_margin_secs = parsed("CARDPLANE_WEBHOOKS_LEASE_MARGIN_SECS", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_HISTORY_RETENTION_DAYS") {
            self.history_retention_days = parsed("CARDPLANE_WEBHOOKS_HISTORY_RETENTION_DAYS", v)?;
        }
        if let Some(v) = get("CARDPLANE_WEBHOOKS_LIVE_ALLOWED_NETWORKS") {
            self.live_allowed_networks = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(())
    }
}

/// Hides a password in `postgres://user:password@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => {
                    format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name} is invalid: {message}")]
    Env { name: String, message: String },
}

impl Config {
    /// Whether this person must enrol a second factor before anything else.
    pub fn mfa_required(&self, person: &cardplane_domain::people::Person) -> bool {
        if person.role.is_operator() {
            self.operators.require_mfa
        } else {
            self.portal.require_mfa
        }
    }

    /// The address people reach this server at, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.portal.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Defaults, then the TOML file if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.message().to_owned(),
                })?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    // Long: one environment variable per setting, a table.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, raw: String) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            raw.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.into(),
                message: e.to_string(),
            })
        }
        let provider = |name: &str, raw: String| match raw.as_str() {
            "sandbox" => Ok(KycProviderKind::Sandbox),
            "http" => Ok(KycProviderKind::Http),
            "none" => Ok(KycProviderKind::None),
            _ => Err(ConfigError::Env {
                name: name.into(),
                message: "expected sandbox, http or none".into(),
            }),
        };
        if let Some(v) = get("CARDPLANE_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("CARDPLANE_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections = parsed("CARDPLANE_DATABASE_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = get("CARDPLANE_DATABASE_ACQUIRE_TIMEOUT_MS") {
            self.database_acquire_timeout_ms = parsed("CARDPLANE_DATABASE_ACQUIRE_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_AUTHORIZATION_BATCH_SIZE_MAX") {
            self.authorization_batch_size_max = parsed("CARDPLANE_AUTHORIZATION_BATCH_SIZE_MAX", v)?;
        }
        if let Some(v) = get("CARDPLANE_AUTHORIZATION_WRITERS") {
            self.authorization_writers = parsed("CARDPLANE_AUTHORIZATION_WRITERS", v)?;
        }
        if let Some(v) = get("CARDPLANE_DISPUTE_DEADLINES_INTERVAL_MS") {
            self.dispute_deadlines_interval_ms = parsed("CARDPLANE_DISPUTE_DEADLINES_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_BACKTEST_POLL_INTERVAL_MS") {
            self.backtest_poll_interval_ms = parsed("CARDPLANE_BACKTEST_POLL_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_HEALTH_ROLLUP_INTERVAL_MS") {
            self.health_rollup_interval_ms = parsed("CARDPLANE_HEALTH_ROLLUP_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_LISTEN") {
            self.listen = parsed("CARDPLANE_LISTEN", v)?;
        }
        if let Some(v) = get("CARDPLANE_KEY_FILE") {
            self.key_file = PathBuf::from(v);
        }
        if let Some(v) = get("CARDPLANE_KEK") {
            self.kek = Some(v);
        }
        if let Some(v) = get("CARDPLANE_API_KEY_PEPPER") {
            self.api_key_pepper = Some(v);
        }
        if let Some(v) = get("CARDPLANE_REQUEST_BODY_LIMIT_BYTES") {
            self.request_body_limit_bytes = parsed("CARDPLANE_REQUEST_BODY_LIMIT_BYTES", v)?;
        }
        if let Some(v) = get("CARDPLANE_REQUEST_HEADER_LIMIT_BYTES") {
            self.request_header_limit_bytes = parsed("CARDPLANE_REQUEST_HEADER_LIMIT_BYTES", v)?;
        }
        if let Some(v) = get("CARDPLANE_REQUEST_TIMEOUT_MS") {
            self.request_timeout_ms = parsed("CARDPLANE_REQUEST_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => {
                    return Err(ConfigError::Env {
                        name: "CARDPLANE_LOG_FORMAT".into(),
                        message: "expected json or pretty".into(),
                    });
                }
            };
        }
        if let Some(v) = get("CARDPLANE_RATE_LIMIT_PER_SECOND") {
            self.rate_limit_per_second = parsed("CARDPLANE_RATE_LIMIT_PER_SECOND", v)?;
        }
        if let Some(v) = get("CARDPLANE_AUTH_FAILURES_PER_MINUTE") {
            self.auth_failures_per_minute = parsed("CARDPLANE_AUTH_FAILURES_PER_MINUTE", v)?;
        }
        if let Some(v) = get("CARDPLANE_KYC_MINIMUM_AGE_YEARS") {
            self.kyc.minimum_age_years = parsed("CARDPLANE_KYC_MINIMUM_AGE_YEARS", v)?;
        }
        if let Some(v) = get("CARDPLANE_KYC_SANDBOX_PROVIDER") {
            self.kyc.sandbox_provider = provider("CARDPLANE_KYC_SANDBOX_PROVIDER", v)?;
        }
        if let Some(v) = get("CARDPLANE_KYC_LIVE_PROVIDER") {
            self.kyc.live_provider = provider("CARDPLANE_KYC_LIVE_PROVIDER", v)?;
        }
        if let Some(v) = get("CARDPLANE_KYC_HTTP_URL") {
            self.kyc.http_url = Some(v);
        }
        if let Some(v) = get("CARDPLANE_KYC_HTTP_TIMEOUT_MS") {
            self.kyc.http_timeout_ms = parsed("CARDPLANE_KYC_HTTP_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("CARDPLANE_KYC_HTTP_SECRET") {
            self.kyc.http_secret = Some(v);
        }
        self.webhooks.apply_env(&get)?;
        self.request_log.apply_env(&get)?;
        if let Some(v) = get("CARDPLANE_OPERATORS_SESSION_IDLE_SECS") {
            self.operators.session_idle_secs = parsed("CARDPLANE_OPERATORS_SESSION_IDLE_SECS", v)?;
        }
        if let Some(v) = get("CARDPLANE_OPERATORS_COOKIE_SECURE") {
            self.operators.cookie_secure = parsed("CARDPLANE_OPERATORS_COOKIE_SECURE", v)?;
        }
        if let Some(v) = get("CARDPLANE_OPERATORS_REQUIRE_MFA") {
            self.operators.require_mfa = parsed("CARDPLANE_OPERATORS_REQUIRE_MFA", v)?;
        }
        if let Some(v) = get("CARDPLANE_OPERATORS_DOCUMENTS_DIR") {
            self.operators.documents_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CARDPLANE_OPERATORS_DOCUMENT_MAX_BYTES") {
            self.operators.document_max_bytes = parsed("CARDPLANE_OPERATORS_DOCUMENT_MAX_BYTES", v)?;
        }
        if let Some(v) = get("CARDPLANE_PORTAL_SELF_SIGNUP") {
            self.portal.self_signup = parsed("CARDPLANE_PORTAL_SELF_SIGNUP", v)?;
        }
        if let Some(v) = get("CARDPLANE_PORTAL_REQUIRE_MFA") {
            self.portal.require_mfa = parsed("CARDPLANE_PORTAL_REQUIRE_MFA", v)?;
        }
        if let Some(v) = get("CARDPLANE_PORTAL_PUBLIC_URL") {
            self.portal.public_url = Some(v);
        }
        if let Some(v) = get("CARDPLANE_PORTAL_MAIL_DIR") {
            self.portal.mail_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CARDPLANE_PORTAL_INVITATION_TTL_HOURS") {
            self.portal.invitation_ttl_hours = parsed("CARDPLANE_PORTAL_INVITATION_TTL_HOURS", v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_defaults() {
        let mut c: Config = toml::from_str("listen = \"127.0.0.1:9000\"\n[kyc]\nminimum_age_years = 21\n").unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.kyc.minimum_age_years, 21);
        assert_eq!(c.database_url, "sqlite://cardplane.db");
        c.apply_env(|n| (n == "CARDPLANE_LISTEN").then(|| "127.0.0.1:9100".to_owned()))
            .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert!(
            c.apply_env(|n| (n == "CARDPLANE_LISTEN").then(|| "nope".to_owned()))
                .is_err()
        );
        assert!(toml::from_str::<Config>("unknown_key = 1").is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Config {
            kek: Some("supersecretkek".into()),
            database_url: "postgres://app:hunter2@db/cardplane".into(),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("supersecretkek"));
        assert!(!shown.contains("hunter2"));
    }

    /// Every environment variable Config reads.
    const ENV_NAMES: [&str; 35] = [
        "CARDPLANE_API_KEY_PEPPER",
        "CARDPLANE_AUTHORIZATION_BATCH_SIZE_MAX",
        "CARDPLANE_AUTHORIZATION_WRITERS",
        "CARDPLANE_AUTH_FAILURES_PER_MINUTE",
        "CARDPLANE_DATABASE_ACQUIRE_TIMEOUT_MS",
        "CARDPLANE_DATABASE_MAX_CONNECTIONS",
        "CARDPLANE_DATABASE_URL",
        "CARDPLANE_KEK",
        "CARDPLANE_KEY_FILE",
        "CARDPLANE_KYC_HTTP_SECRET",
        "CARDPLANE_KYC_HTTP_TIMEOUT_MS",
        "CARDPLANE_KYC_HTTP_URL",
        "CARDPLANE_KYC_LIVE_PROVIDER",
        "CARDPLANE_KYC_MINIMUM_AGE_YEARS",
        "CARDPLANE_KYC_SANDBOX_PROVIDER",
        "CARDPLANE_LISTEN",
        "CARDPLANE_LOG_FORMAT",
        "CARDPLANE_RATE_LIMIT_PER_SECOND",
        "CARDPLANE_REQUEST_BODY_LIMIT_BYTES",
        "CARDPLANE_REQUEST_HEADER_LIMIT_BYTES",
        "CARDPLANE_REQUEST_LOG_BATCH_MAX",
        "CARDPLANE_REQUEST_LOG_BODY_CAP_BYTES",
        "CARDPLANE_REQUEST_LOG_ENABLED",
        "CARDPLANE_REQUEST_LOG_FLUSH_INTERVAL_MS",
        "CARDPLANE_REQUEST_LOG_QUEUE_CAPACITY",
        "CARDPLANE_REQUEST_LOG_RETENTION_DAYS",
        "CARDPLANE_REQUEST_TIMEOUT_MS",
        "CARDPLANE_WEBHOOKS_ATTEMPT_TIMEOUT_MS",
        "CARDPLANE_WEBHOOKS_DISABLE_AFTER_FAILING_SECS",
        "CARDPLANE_WEBHOOKS_HISTORY_RETENTION_DAYS",
        "CARDPLANE_WEBHOOKS_LEASE_MARGIN_SECS",
        "CARDPLANE_WEBHOOKS_LIVE_ALLOWED_NETWORKS",
        "CARDPLANE_WEBHOOKS_POLL_INTERVAL_MS",
        "CARDPLANE_WEBHOOKS_SECRET_OVERLAP_SECS",
        "CARDPLANE_WEBHOOKS_WORKER",
    ];

    /// TOML keys (top level and per table) that Config knows.
    const TOML_KEYS: [&str; 20] = [
        "database_url",
        "database_max_connections",
        "database_acquire_timeout_ms",
        "listen",
        "key_file",
        "kek",
        "api_key_pepper",
        "request_body_limit_bytes",
        "request_header_limit_bytes",
        "request_timeout_ms",
        "log_format",
        "rate_limit_per_second",
        "auth_failures_per_minute",
        "custodian_breaker_failures",
        "custodian_breaker_open_ms",
        "minimum_age_years",
        "sandbox_provider",
        "http_timeout_ms",
        "poll_interval_ms",
        "live_allowed_networks",
    ];

    fn toml_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "-?[0-9]{1,30}",
            any::<f64>().prop_map(|f| format!("{f:?}")),
            any::<bool>().prop_map(|b| b.to_string()),
            "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
            Just("\"127.0.0.1:99999\"".to_owned()),
            Just("[\"10.0.0.0/8\", 3]".to_owned()),
            Just("{ a = 1 }".to_owned()),
        ]
    }

    proptest::proptest! {
        /// Config parsing never panics: arbitrary TOML text, TOML made of known keys with
        /// arbitrary values, and arbitrary environment values all end in `Ok` or a `ConfigError`.
        #[test]
        fn config_parsing_never_panics(
            text in "\\PC{0,200}",
            entries in proptest::collection::vec((proptest::sample::select(TOML_KEYS.to_vec()), toml_value()), 0..6),
            table in proptest::sample::select(vec!["", "[kyc]\n", "[webhooks]\n", "[nope]\n"]),
            env in proptest::collection::vec((proptest::sample::select(ENV_NAMES.to_vec()), "\\PC{0,30}|-?[0-9]{1,25}|true|json"), 0..8),
        ) {
            let _ = toml::from_str::<Config>(&text);
            let doc = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>();
            let _ = toml::from_str::<Config>(&format!("{table}{doc}"));
            let mut config = toml::from_str::<Config>(&doc).unwrap_or_default();
            let lookup = |name: &str| env.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
            if config.apply_env(lookup).is_ok() {
                // The secrets do not show in Debug: swapping them changes nothing printed.
                let mut other = config.clone();
                other.kek = other.kek.map(|_| "other".into());
                other.api_key_pepper = other.api_key_pepper.map(|_| "other".into());
                other.kyc.http_secret = other.kyc.http_secret.map(|_| "other".into());
                proptest::prop_assert_eq!(format!("{config:?}"), format!("{other:?}"));
            }
        }
    }
}
