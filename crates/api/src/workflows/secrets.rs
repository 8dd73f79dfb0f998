//! Server secrets: the key-encryption key and the API-secret pepper. From config/env when given;
//! otherwise from a key file that is generated (mode 0600) on first start, so the embedded
//! default runs with no setup. Production should pass them through the environment.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cardplane_domain::Timestamp;
use cardplane_domain::vault::{DataKey, Kek, Vault, VaultError};
use cardplane_store::StoreError;
use cardplane_store::vault::VaultStore;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kek: String,
    api_key_pepper: String,
}

pub struct Secrets {
    pub kek: Kek,
    pub pepper: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("KEK: {0}")]
    Kek(#[from] VaultError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("no stored data key opens with this KEK ({0}); is CARDPLANE_KEK the one this database was created with?")]
    WrongKek(String),
}

fn key_file_error(path: &Path, message: impl ToString) -> SecretsError {
    SecretsError::KeyFile {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn load_or_create_key_file(path: &Path) -> Result<KeyFile, SecretsError> {
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| key_file_error(path, e))?;
        return toml::from_str(&text).map_err(|e| key_file_error(path, e.message()));
    }
    let mut pepper = [0u8; 32];
    rand::rng().fill_bytes(&mut pepper);
    let file = KeyFile {
        kek: Kek::generate().encode(),
        api_key_pepper: B64.encode(pepper),
    };
    let text = toml::to_string(&file).map_err(|e| key_file_error(path, e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| key_file_error(path, e))?;
    f.write_all(b"# Cardplane server secrets. Losing this file makes API keys and encrypted data unusable.\n")
        .and_then(|_| f.write_all(text.as_bytes()))
        .map_err(|e| key_file_error(path, e))?;
    tracing::warn!(path = %path.display(), "generated a new key file; back it up, or set CARDPLANE_KEK and CARDPLANE_API_KEY_PEPPER");
    Ok(file)
}

impl Secrets {
    pub fn load(config: &Config) -> Result<Secrets, SecretsError> {
        let file = if config.kek.is_none() || config.api_key_pepper.is_none() {
            Some(load_or_create_key_file(&config.key_file)?)
        } else {
            None
        };
        let kek_text = config
            .kek
            .clone()
            .or_else(|| file.as_ref().map(|f| f.kek.clone()))
            .unwrap_or_default();
        let pepper_text = config
            .api_key_pepper
            .clone()
            .or_else(|| file.as_ref().map(|f| f.api_key_pepper.clone()))
            .unwrap_or_default();
        let pepper = B64
            .decode(pepper_text.trim())
            .unwrap_or_else(|_| pepper_text.into_bytes());
        Ok(Secrets {
            kek: Kek::parse(&kek_text)?,
            pepper,
        })
    }
}

/// After a KEK rotation: when the KEK lives in the key file (not in config/env), write the new one
/// there so the next start opens the vault. Returns whether the file was updated.
pub fn store_rotated_kek(config: &Config, new: &Kek) -> Result<bool, SecretsError> {
    if config.kek.is_some() {
        return Ok(false);
    }
    let path = &config.key_file;
    let mut file = load_or_create_key_file(path)?;
    file.kek = new.encode();
    let text = toml::to_string(&file).map_err(|e| key_file_error(path, e))?;
    let tmp = path.with_extension("keys.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(|e| key_file_error(path, e))?;
    f.write_all(b"# Cardplane server secrets. Losing this file makes API keys and encrypted data unusable.\n")
        .and_then(|_| f.write_all(text.as_bytes()))
        .and_then(|_| f.sync_all())
        .map_err(|e| key_file_error(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| key_file_error(path, e))?;
    Ok(true)
}

/// Unwraps every stored data key with the KEK, creating the first data key on a fresh database.
pub async fn open_vault(store: &dyn VaultStore, kek: &Kek) -> Result<Vault, SecretsError> {
    let wrapped = store.list_data_keys().await?;
    if wrapped.is_empty() {
        let key = DataKey::generate();
        store.insert_data_key(&key.wrap(kek), Timestamp::now()).await?;
        return Ok(Vault::new(key, []));
    }
    let mut keys = Vec::with_capacity(wrapped.len());
    for w in &wrapped {
        keys.push(DataKey::unwrap(w, kek).map_err(|_| SecretsError::WrongKek(kek.id().to_owned()))?);
    }
    let active = keys.pop().expect("non-empty");
    Ok(Vault::new(active, keys))
}

/// Keys for card numbers, generated once per installation and kept sealed in the database: the
/// PAN lookup-hash key and the CVV derivation key. They survive KEK rotation unchanged.
pub struct CardKeys {
    pub pan_lookup: Vec<u8>,
    pub cvv: Vec<u8>,
}

impl std::fmt::Debug for CardKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKeys(****)")
    }
}

async fn vault_secret(store: &dyn VaultStore, vault: &Vault, name: &str) -> Result<Vec<u8>, SecretsError> {
    let context = format!("vault_secret:{name}");
    let sealed = match store.get_vault_secret(name).await? {
        Some(s) => s,
        None => {
            let mut fresh = [0u8; 32];
            rand::rng().fill_bytes(&mut fresh);
            // Another process may win the race; then its secret is the one everyone uses.
            store
                .put_vault_secret(name, &vault.seal(&fresh, &context), Timestamp::now())
                .await?
        }
    };
    vault.open(&sealed, &context).map_err(SecretsError::Kek)
}

pub async fn card_keys(store: &dyn VaultStore, vault: &Vault) -> Result<CardKeys, SecretsError> {
    Ok(CardKeys {
        pan_lookup: vault_secret(store, vault, "pan_lookup").await?,
        cvv: vault_secret(store, vault, "cvv").await?,
    })
}

/// Re-wraps every data key under `new`, atomically. Nothing sealed changes, so every PAN and
/// document stays readable; afterwards only `new` opens the vault.
pub async fn rotate_kek(store: &dyn VaultStore, old: &Kek, new: &Kek) -> Result<usize, SecretsError> {
    let wrapped = store.list_data_keys().await?;
    let mut rewrapped = Vec::with_capacity(wrapped.len());
    for w in &wrapped {
        if w.kek_id == new.id() {
            rewrapped.push(w.clone());
            continue;
        }
        let key = DataKey::unwrap(w, old).map_err(|_| SecretsError::WrongKek(old.id().to_owned()))?;
        rewrapped.push(key.wrap(new));
    }
    store.rewrap_data_keys(&rewrapped).await?;
    Ok(rewrapped.len())
}
