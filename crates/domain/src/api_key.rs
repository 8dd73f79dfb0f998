//! API keys: HTTP basic auth with username = key id and password = secret. Only an HMAC of the
//! secret (keyed with a server pepper) is stored; verification is constant-time.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::environment::Environment;
use crate::ids::{ApiKeyId, TenantId};
use crate::time::Timestamp;

crate::wire_enum!(Permission {
    Reveal => "reveal",
});

/// An API secret in clear: only ever held transiently (at creation, or while authenticating).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(String);

const SECRET_RANDOM_BYTES: usize = 32;

impl ApiSecret {
    pub fn generate(environment: Environment) -> Self {
        let mut bytes = [0u8; SECRET_RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let prefix = match environment {
            Environment::Sandbox => "sk_test_",
            Environment::Live => "sk_live_",
        };
        let mut s = String::with_capacity(prefix.len() + 2 * SECRET_RANDOM_BYTES);
        s.push_str(prefix);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        ApiSecret(s)
    }

    pub fn from_presented(raw: &str) -> Self {
        ApiSecret(raw.to_owned())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> String {
        self.0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    /// HMAC-SHA256(pepper, secret), hex. Fast (microseconds) yet useless without the pepper.
    pub fn hash(&self, pepper: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper).expect("HMAC takes any key length");
        mac.update(self.0.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    pub fn verify(&self, pepper: &[u8], stored_hash: &str) -> bool {
        self.hash(pepper).as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiSecret(****{})", self.last4())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub name: String,
    pub secret_hash: String,
    pub secret_last4: String,
    pub permissions: Vec<Permission>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl ApiKey {
    /// A new key and its secret; the secret is returned once and never stored.
    pub fn issue(
        tenant_id: &TenantId,
        environment: Environment,
        name: String,
        permissions: Vec<Permission>,
        pepper: &[u8],
        now: Timestamp,
    ) -> (ApiKey, ApiSecret) {
        let secret = ApiSecret::generate(environment);
        let key = ApiKey {
            id: ApiKeyId::generate(),
            tenant_id: tenant_id.clone(),
            environment,
            name,
            secret_hash: secret.hash(pepper),
            secret_last4: secret.last4(),
            permissions,
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        (key, secret)
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_with_the_right_pepper_and_value() {
        let tenant = TenantId::generate();
        let (key, secret) = ApiKey::issue(
            &tenant,
            Environment::Sandbox,
            "k".into(),
            vec![],
            b"pepper",
            Timestamp::now(),
        );
        assert!(secret.expose().starts_with("sk_test_"));
        assert!(secret.verify(b"pepper", &key.secret_hash));
        assert!(!secret.verify(b"other", &key.secret_hash));
        assert!(!ApiSecret::from_presented("sk_test_nope").verify(b"pepper", &key.secret_hash));
        assert!(!format!("{secret:?}").contains(secret.expose()));
        assert_ne!(key.secret_hash, secret.expose());
    }
}
