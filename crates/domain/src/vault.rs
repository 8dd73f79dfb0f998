//! Envelope encryption for sensitive values (document numbers now, PANs later): each value is
//! sealed with AES-256-GCM under a data key with a fresh random nonce; data keys are stored only
//! wrapped (AES-256-GCM) under a key-encryption key (KEK) that comes from config, env or a file.
//! Rotating the KEK re-wraps data keys; sealed values never change.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::ids::DataKeyId;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("key material must be 32 bytes, base64 or hex encoded")]
    BadKeyMaterial,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("unknown data key {0}")]
    UnknownDataKey(String),
    #[error("authentication failed: wrong key or tampered value")]
    Tampered,
}

/// The key-encryption key. Its `id` is a fingerprint, so a wrapped key records which KEK wraps it.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; KEY_LEN],
}

impl Kek {
    pub fn from_bytes(key: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(key);
        let id = crate::api_key::hex(&digest[..4]);
        Kek {
            id: format!("kek_{id}"),
            key,
        }
    }

    /// Accepts 32 bytes as base64 (44 chars) or hex (64 chars).
    pub fn parse(encoded: &str) -> Result<Self, VaultError> {
        let encoded = encoded.trim();
        let bytes = if encoded.len() == 2 * KEY_LEN && encoded.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..KEY_LEN)
                .map(|i| u8::from_str_radix(&encoded[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| VaultError::BadKeyMaterial)?
        } else {
            B64.decode(encoded).map_err(|_| VaultError::BadKeyMaterial)?
        };
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| VaultError::BadKeyMaterial)?;
        Ok(Kek::from_bytes(key))
    }

    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        Kek::from_bytes(key)
    }

    pub fn encode(&self) -> String {
        B64.encode(self.key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

fn seal_raw(key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of in-memory data cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn open_raw(key: &[u8; KEY_LEN], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN {
        return Err(VaultError::Malformed);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| VaultError::Tampered)
}

/// A data key in clear, in memory only.
#[derive(Clone)]
pub struct DataKey {
    id: DataKeyId,
    key: [u8; KEY_LEN],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

/// A data key as stored: wrapped under a KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub id: DataKeyId,
    pub kek_id: String,
    pub wrapped: String,
}

impl DataKey {
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        DataKey {
            id: DataKeyId::generate(),
            key,
        }
    }

    pub fn id(&self) -> &DataKeyId {
        &self.id
    }

    pub fn wrap(&self, kek: &Kek) -> WrappedDataKey {
        let wrapped = seal_raw(&kek.key, &self.key, self.id.as_str().as_bytes());
        WrappedDataKey {
            id: self.id.clone(),
            kek_id: kek.id.clone(),
            wrapped: B64.encode(wrapped),
        }
    }

    pub fn unwrap(stored: &WrappedDataKey, kek: &Kek) -> Result<Self, VaultError> {
        let raw = B64.decode(&stored.wrapped).map_err(|_| VaultError::Malformed)?;
        let key = open_raw(&kek.key, &raw, stored.id.as_str().as_bytes())?;
        let key: [u8; KEY_LEN] = key.try_into().map_err(|_| VaultError::Malformed)?;
        Ok(DataKey {
            id: stored.id.clone(),
            key,
        })
    }
}

/// The unwrapped data keys of this process; seals with the active one, opens with any.
#[derive(Debug, Clone)]
pub struct Vault {
    active: DataKeyId,
    keys: HashMap<DataKeyId, DataKey>,
}

impl Vault {
    pub fn new(active: DataKey, others: impl IntoIterator<Item = DataKey>) -> Self {
        let mut keys: HashMap<_, _> = others.into_iter().map(|k| (k.id.clone(), k)).collect();
        let active_id = active.id.clone();
        keys.insert(active_id.clone(), active);
        Vault {
            active: active_id,
            keys,
        }
    }

    /// `"<data key id>.<base64(nonce || ciphertext || tag)>"`. `context` is bound as associated
    /// data (e.g. `cardholder.document:<id>`), so a sealed value cannot be moved to another row.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let key = &self.keys[&self.active];
        format!(
            "{}.{}",
            key.id,
            B64.encode(seal_raw(&key.key, plaintext, context.as_bytes()))
        )
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, VaultError> {
        let (id, body) = sealed.split_once('.').ok_or(VaultError::Malformed)?;
        let id = DataKeyId::parse(id).map_err(|_| VaultError::Malformed)?;
        let key = self
            .keys
            .get(&id)
            .ok_or_else(|| VaultError::UnknownDataKey(id.to_string()))?;
        let raw = B64.decode(body).map_err(|_| VaultError::Malformed)?;
        open_raw(&key.key, &raw, context.as_bytes())
    }

    pub fn knows(&self, id: &DataKeyId) -> bool {
        self.keys.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_context() {
        let vault = Vault::new(DataKey::generate(), []);
        let sealed = vault.seal(b"490940000", "doc:1");
        assert!(!sealed.contains("490940000"));
        assert_eq!(vault.open(&sealed, "doc:1").unwrap(), b"490940000");
        assert_eq!(vault.open(&sealed, "doc:2"), Err(VaultError::Tampered));
        assert_ne!(vault.seal(b"490940000", "doc:1"), sealed, "nonces are fresh");
    }

    #[test]
    fn rewrapping_under_a_new_kek_keeps_values_readable() {
        let (old, new) = (Kek::generate(), Kek::generate());
        let dk = DataKey::generate();
        let sealed = Vault::new(dk.clone(), []).seal(b"secret", "c");
        let wrapped_old = dk.wrap(&old);
        let rewrapped = DataKey::unwrap(&wrapped_old, &old).unwrap().wrap(&new);
        assert!(DataKey::unwrap(&rewrapped, &old).is_err());
        let vault = Vault::new(DataKey::unwrap(&rewrapped, &new).unwrap(), []);
        assert_eq!(vault.open(&sealed, "c").unwrap(), b"secret");
    }

    #[test]
    fn kek_parses_hex_and_base64() {
        let k = Kek::generate();
        assert_eq!(Kek::parse(&k.encode()).unwrap().id(), k.id());
        assert_eq!(
            Kek::parse(&"ab".repeat(32)).unwrap().id(),
            Kek::from_bytes([0xab; 32]).id()
        );
        assert!(Kek::parse("short").is_err());
    }
}
