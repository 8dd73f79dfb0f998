use std::sync::Arc;
use std::time::Duration;

use cardplane_domain::vault::Vault;
use cardplane_engine::authorization::{Engine, EngineConfig, EngineDeps};
use cardplane_engine::delivery::Deliverer;
use cardplane_engine::documents::{DocumentStorage, FsDocuments};
use cardplane_engine::kyc::{HttpKyc, KycProvider, NoKyc, SandboxKyc};
use cardplane_store::SqlStore;
use cardplane_store::api_keys::ApiKeyStore;
use cardplane_store::cardholders::CardholderStore;
use cardplane_store::cards::CardStore;
use cardplane_store::events::EventStore;
use cardplane_store::idempotency::IdempotencyStore;
use cardplane_store::ledger::LedgerStore;
use cardplane_store::network::NetworkStore;
use cardplane_store::transactions::TransactionStore;

use cardplane_store::programs::ProgramStore;
use cardplane_store::tenants::TenantStore;
use cardplane_store::{Backend, Db};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{Config, KycProviderKind};
use crate::workflows::secrets::CardKeys;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::ids::{ApiKeyId, NetworkCredentialId};
use cardplane_domain::webhook::Network;
use cardplane_store::audit::AuditStore;
use cardplane_store::compliance::ComplianceStore;
use cardplane_store::health::HealthStore;
use cardplane_store::network::NetworkCredential;
use cardplane_store::people::PeopleStore;
use cardplane_store::webhooks::WebhookStore;

pub type LastUsed = std::sync::Mutex<std::collections::HashMap<ApiKeyId, Timestamp>>;

/// Network credentials recently read, with when (see `routes::network`).
pub type CredentialCache =
    std::sync::Mutex<std::collections::HashMap<NetworkCredentialId, (NetworkCredential, std::time::Instant)>>;

/// Everything a handler may use. Stores are narrow traits, so handlers cannot reach SQL. Cloned
/// for every request and middleware, so it is one shared pointer.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub config: Arc<Config>,
    /// Private: handlers reach data only through the narrow stores below.
    db: Db,
    pub tenants: Arc<dyn TenantStore>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub cardholders: Arc<dyn CardholderStore>,
    pub events: Arc<dyn EventStore>,
    pub programs: Arc<dyn ProgramStore>,
    pub cards: Arc<dyn CardStore>,
    pub ledger: Arc<dyn LedgerStore>,
    pub transactions: Arc<dyn TransactionStore>,
    pub network: Arc<dyn NetworkStore>,
    /// The authorization engine: every network message goes through it.
    pub engine: Engine,
    /// Disputes: filing, the network cycle, provisional credit and the Regulation E clock.
    pub disputes: cardplane_engine::disputes::DisputeDesk,
    /// Authorization rules: versions, shadow drafts, promotion, backtests.
    pub rules: cardplane_engine::rules::RuleDesk,
    /// Fraud alerts raised by the engine, worked by operators.
    pub alerts: Arc<dyn cardplane_store::alerts::AlertStore>,
    pub limits: Arc<crate::http::limits::Limits>,
    pub card_keys: Arc<CardKeys>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub vault: Arc<Vault>,
    pub pepper: Arc<[u8]>,
    pub kyc_sandbox: Arc<dyn KycProvider>,
    pub kyc_live: Arc<dyn KycProvider>,
    pub metrics: PrometheusHandle,
    pub last_used: Arc<LastUsed>,
    pub webhooks: Arc<dyn WebhookStore>,
    /// Networks live webhook endpoints may reach although internal (operator allowlist).
    pub webhook_allowlist: Arc<[Network]>,
    pub people: Arc<dyn PeopleStore>,
    /// Sign-ups and teammate invitations of the developer portal.
    pub invitations: Arc<dyn cardplane_store::invitations::InvitationStore>,
    pub mailer: Arc<dyn crate::mail::Mailer>,
    pub compliance: Arc<dyn ComplianceStore>,
    pub audit: Arc<dyn AuditStore>,
    /// Program health aggregates for the console (and the job that rolls them up).
    pub health: Arc<dyn HealthStore>,
    pub documents: Arc<dyn DocumentStorage>,
    /// Network credentials recently read (see `routes::network`).
    pub credentials: Arc<CredentialCache>,
    /// The developer portal's request log and usage figures.
    pub request_log: Arc<dyn cardplane_store::request_log::RequestLogStore>,
    /// Captured requests on their way to the request log's writer.
    pub request_log_queue: Arc<crate::http::request_log_queue::Queue>,
}

#[derive(Debug, thiserror::Error)]
pub enum KycConfigError {
    #[error("kyc provider `http` needs kyc.http_url (CARDPLANE_KYC_HTTP_URL)")]
    MissingUrl,
    #[error("the sandbox KYC provider may not be used for live mode")]
    SandboxInLive,
}

fn provider(kind: KycProviderKind, config: &Config, env: Environment) -> Result<Arc<dyn KycProvider>, KycConfigError> {
    Ok(match kind {
        KycProviderKind::Sandbox if env == Environment::Live => {
            return Err(KycConfigError::SandboxInLive);
        }
        KycProviderKind::Sandbox => Arc::new(SandboxKyc),
        KycProviderKind::None => Arc::new(NoKyc),
        KycProviderKind::Http => {
            let url = config.kyc.http_url.clone().ok_or(KycConfigError::MissingUrl)?;
            Arc::new(HttpKyc::new(
                url,
                Duration::from_millis(config.kyc.http_timeout_ms),
                config.kyc.http_secret.clone(),
            ))
        }
    })
}

impl AppState {
    pub fn new(
        config: Config,
        db: Db,
        vault: Vault,
        card_keys: CardKeys,
        pepper: Vec<u8>,
        metrics: PrometheusHandle,
    ) -> Result<Self, KycConfigError> {
        let store = Arc::new(SqlStore::new(db.clone()));
        let kyc_sandbox = provider(config.kyc.sandbox_provider, &config, Environment::Sandbox)?;
        let kyc_live = provider(config.kyc.live_provider, &config, Environment::Live)?;
        let limits = crate::http::limits::Limits::new(config.rate_limit_per_second, config.auth_failures_per_minute);
        let vault = Arc::new(vault);
        let card_keys = Arc::new(card_keys);
        let engine = Engine::start(
            EngineDeps {
                batches: store.clone(),
                cards: store.clone(),
                programs: store.clone(),
                network: store.clone(),
                pan_lookup_key: card_keys.pan_lookup.clone().into(),
                vault: vault.clone(),
                http: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("reqwest client builds with rustls"),
            },
            EngineConfig {
                batch_size_max: config.authorization_batch_size_max,
                writers: match db.backend() {
                    Backend::Sqlite => 1,
                    Backend::Postgres => config.authorization_writers,
                },
                breaker_failures: config.custodian_breaker_failures,
                breaker_open: Duration::from_millis(config.custodian_breaker_open_ms),
                ..EngineConfig::default()
            },
        );
        let config_webhooks = config.webhooks.clone();
        let documents_dir = config.operators.documents_dir.clone();
        let mailer = Arc::new(crate::mail::LocalMailer::new(config.portal.mail_dir.clone()));
        let request_log_queue = crate::http::request_log_queue::Queue::new(config.request_log.queue_capacity);
        Ok(AppState(Arc::new(Services {
            config: Arc::new(config),
            db,
            tenants: store.clone(),
            api_keys: store.clone(),
            cardholders: store.clone(),
            events: store.clone(),
            programs: store.clone(),
            cards: store.clone(),
            ledger: store.clone(),
            transactions: store.clone(),
            network: store.clone(),
            engine,
            disputes: cardplane_engine::disputes::DisputeDesk::new(
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
            ),
            rules: cardplane_engine::rules::RuleDesk::new(store.clone(), store.clone()),
            alerts: store.clone(),
            limits: Arc::new(limits),
            card_keys,
            idempotency: store.clone(),
            vault,
            pepper: pepper.into(),
            kyc_sandbox,
            kyc_live,
            metrics,
            last_used: Arc::default(),
            webhook_allowlist: config_webhooks.allowlist().unwrap_or_default().into(),
            documents: Arc::new(FsDocuments::new(documents_dir)),
            credentials: Arc::default(),
            people: store.clone(),
            invitations: store.clone(),
            mailer,
            compliance: store.clone(),
            audit: store.clone(),
            health: store.clone(),
            request_log: store.clone(),
            request_log_queue: Arc::new(request_log_queue),
            webhooks: store,
        })))
    }

    pub fn kyc(&self, env: Environment) -> &dyn KycProvider {
        match env {
            Environment::Sandbox => self.kyc_sandbox.as_ref(),
            Environment::Live => self.kyc_live.as_ref(),
        }
    }

    /// A multipart body carrying one document: the document's limit plus room for the form around it.
    pub fn document_body_limit(&self) -> usize {
        self.config.operators.document_max_bytes + 64 * 1024
    }

    /// The rule backtest job over this state's store.
    pub fn backtest_runner(&self) -> cardplane_engine::rules::backtests::BacktestRunner {
        cardplane_engine::rules::backtests::BacktestRunner::new(std::sync::Arc::new(SqlStore::new(self.db.clone())))
    }

    /// The webhook delivery worker over this state's store, vault and settings.
    pub fn deliverer(&self) -> Deliverer {
        Deliverer::new(
            self.webhooks.clone(),
            self.vault.clone(),
            self.config.webhooks.delivery(),
            self.webhook_allowlist.clone(),
        )
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Closes the database pool (shutdown and one-shot commands).
    pub async fn close_db(&self) {
        self.db.close().await;
    }

    /// Whether the database answers (readiness).
    pub async fn ping_db(&self) -> Result<(), cardplane_store::StoreError> {
        self.db.ping().await
    }

    /// A SQLite checkpoint beside the writer (a no-op on PostgreSQL).
    pub async fn checkpoint_db(&self) -> Result<(), cardplane_store::StoreError> {
        self.db.checkpoint().await
    }

    /// The whole SQL store, for operator commands that span aggregates (key rotation, bench
    /// provisioning); handlers use the narrow stores.
    pub fn sql_store(&self) -> SqlStore {
        SqlStore::new(self.db.clone())
    }
}
