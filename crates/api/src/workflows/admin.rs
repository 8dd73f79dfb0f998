//! Operations run from the CLI (and by tests) rather than through the tenant API.

use cardplane_domain::api_key::{ApiKey, ApiSecret, Permission};
use cardplane_domain::event::{Event, EventType};
use cardplane_domain::ids::TenantId;
use cardplane_domain::tenant::Tenant;
use cardplane_domain::version::ApiVersion;
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::tenants::TenantStore;
use serde::Serialize;

use cardplane_domain::people::{Person, check_password};
use cardplane_store::people::UserRecord;

use crate::http::error::{ApiError, ApiResult};
use crate::http::people::{hash_password, password_error};
use crate::views::ApiKeyView;

#[derive(Debug, Serialize)]
pub struct IssuedKey {
    pub id: String,
    pub secret: String,
}

/// What `cardplane tenant create --json` prints.
#[derive(Debug, Serialize)]
pub struct ProvisionedTenant {
    pub tenant_id: String,
    pub name: String,
    pub sandbox_key: IssuedKey,
    pub live_key: IssuedKey,
}

fn issued(key: &ApiKey, secret: &ApiSecret) -> IssuedKey {
    IssuedKey {
        id: key.id.to_string(),
        secret: secret.expose().to_owned(),
    }
}

/// A tenant about to be created with one key per environment given (secrets returned once) and
/// the events announcing the keys.
pub struct TenantDraft {
    pub tenant: Tenant,
    pub keys: Vec<(ApiKey, ApiSecret)>,
    pub events: Vec<Event>,
}

impl TenantDraft {
    pub fn new(
        name: &str,
        environments: &[Environment],
        permissions: &[Permission],
        rate_limit_per_second: Option<u32>,
        pepper: &[u8],
        now: Timestamp,
    ) -> Self {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: name.to_owned(),
            api_version: ApiVersion::current(),
            rate_limit_per_second,
            created_at: now,
        };
        let keys: Vec<(ApiKey, ApiSecret)> = environments
            .iter()
            .map(|env| {
                let name = format!("Default {} key", env.as_str());
                ApiKey::issue(&tenant.id, *env, name, permissions.to_vec(), pepper, now)
            })
            .collect();
        let events = keys
            .iter()
            .map(|(k, _)| {
                let data = serde_json::to_value(ApiKeyView::from(k)).unwrap_or_default();
                Event::new(
                    &tenant.id,
                    k.environment,
                    EventType::ApiKeyCreated,
                    k.id.as_str(),
                    data,
                    now,
                )
            })
            .collect();
        TenantDraft { tenant, keys, events }
    }

    pub fn key_rows(&self) -> Vec<ApiKey> {
        self.keys.iter().map(|(k, _)| k.clone()).collect()
    }

    fn issued(&self, env: Environment) -> Option<IssuedKey> {
        self.keys
            .iter()
            .find(|(k, _)| k.environment == env)
            .map(|(k, s)| issued(k, s))
    }
}

/// Creates a tenant with one sandbox and one live key. The secrets are returned once.
pub async fn create_tenant(
    store: &dyn TenantStore,
    pepper: &[u8],
    name: &str,
    permissions: &[Permission],
    rate_limit_per_second: Option<u32>,
) -> Result<ProvisionedTenant, StoreError> {
    let draft = TenantDraft::new(
        name,
        &[Environment::Sandbox, Environment::Live],
        permissions,
        rate_limit_per_second,
        pepper,
        Timestamp::now(),
    );
    store
        .create_tenant(&draft.tenant, &draft.key_rows(), &draft.events)
        .await?;
    let missing = || StoreError::other(std::io::Error::other("a default key was not issued"));
    Ok(ProvisionedTenant {
        tenant_id: draft.tenant.id.to_string(),
        name: draft.tenant.name.clone(),
        sandbox_key: draft.issued(Environment::Sandbox).ok_or_else(missing)?,
        live_key: draft.issued(Environment::Live).ok_or_else(missing)?,
    })
}

/// What `cardplane network create-credential --json` prints.
#[derive(Debug, Serialize)]
pub struct IssuedNetworkCredential {
    pub id: String,
    pub secret: String,
    pub environment: String,
}

/// A credential for the card network's messages (`/network/*`) in one environment.
pub async fn create_network_credential(
    store: &dyn cardplane_store::network::NetworkStore,
    pepper: &[u8],
    environment: Environment,
    name: &str,
) -> Result<IssuedNetworkCredential, StoreError> {
    let secret = ApiSecret::generate(environment);
    let credential = cardplane_store::network::NetworkCredential {
        id: cardplane_domain::ids::NetworkCredentialId::generate(),
        environment,
        name: name.to_owned(),
        secret_hash: secret.hash(pepper),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    store.insert_network_credential(&credential).await?;
    Ok(IssuedNetworkCredential {
        id: credential.id.to_string(),
        secret: secret.expose().to_owned(),
        environment: environment.as_str().to_owned(),
    })
}

/// `cardplane operator create`: the first administrator (or any operator) without signing in.
/// Audited as the command line.
pub async fn create_operator(
    state: &crate::state::AppState,
    email: &str,
    name: &str,
    role: cardplane_domain::people::OperatorRole,
    password: String,
) -> anyhow::Result<cardplane_domain::people::Person> {
    use cardplane_domain::audit::{ActorKind, AuditRecord, Outcome};
    use cardplane_domain::people::{Person, Role, SignInGuard, normalize_email};
    let email = normalize_email(email).map_err(|_| anyhow::anyhow!("--email is not an email address"))?;
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 100,
        "--name needs 1 to 100 characters"
    );
    let person = Person {
        id: cardplane_domain::ids::UserId::generate(),
        email,
        name: name.to_owned(),
        role: Role::Operator(role),
        tenant_id: None,
        disabled: false,
        mfa_enabled: false,
        guard: SignInGuard::default(),
        created_at: Timestamp::now(),
        last_login_at: None,
    };
    let user = new_user(person, password)
        .await
        .map_err(|e| anyhow::anyhow!(e.body.message))?;
    let audit = AuditRecord::new(
        Timestamp::now(),
        ActorKind::Cli,
        Some("cardplane operator create".into()),
        "user.created",
        Outcome::Success,
    )
    .on("user", user.person.id.as_str())
    .with_details(serde_json::json!({ "email": user.person.email, "role": role.as_str() }));
    state.people.insert_user(&user, &audit).await.map_err(|e| {
        if e.is_conflict_on("users_email", "email") {
            anyhow::anyhow!("somebody already signs in with this email")
        } else {
            anyhow::anyhow!(e)
        }
    })?;
    Ok(user.person)
}

/// An audit entry for something done from the command line (a person at the server's shell).
pub async fn audit_cli(
    state: &crate::state::AppState,
    command: &str,
    action: &str,
    object: (&str, &str),
    details: serde_json::Value,
) -> Result<(), StoreError> {
    use cardplane_domain::audit::{ActorKind, AuditRecord, Outcome};
    let record = AuditRecord::new(
        Timestamp::now(),
        ActorKind::Cli,
        Some(command.to_owned()),
        action,
        Outcome::Success,
    )
    .on(object.0, object.1)
    .with_details(details);
    state.audit.append_audit(&record).await.map(|_| ())
}

/// A new person's record (hashing their password).
pub async fn new_user(person: Person, password: String) -> ApiResult<UserRecord> {
    check_password(&password).map_err(|e| password_error(e, "password"))?;
    Ok(UserRecord {
        person,
        password_hash: hash_password(password).await?,
        totp_sealed: None,
        totp_pending: None,
        totp_last_step: None,
    })
}

pub fn email_taken(e: StoreError) -> ApiError {
    if e.is_conflict_on("users_email", "email") {
        ApiError::conflict("email_taken", "Somebody already signs in with this email").with_param("email")
    } else {
        e.into()
    }
}
