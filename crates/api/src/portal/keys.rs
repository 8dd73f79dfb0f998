//! API keys in the portal: the keys of one environment with when each was last used, a form to
//! create one (the secret is shown once, with a copy button), and revocation. Live keys only
//! once the tenant has a live program. The rules are the API's (`workflows::api_keys`).

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::Environment;
use cardplane_domain::api_key::{ApiKey, Permission};
use cardplane_domain::ids::ApiKeyId;
use cardplane_domain::page::PageRequest;
use cardplane_domain::people::Action;
use cardplane_store::EffectRecords;
use serde::Deserialize;

use super::{Workspace, chrome};
use crate::http::error::ApiError;
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageError, PageResult, RefusalCode, page, when};
use crate::workflows::api_keys;

/// Keys are few; one page shows them all.
const KEYS_SHOWN_MAX: u32 = 100;

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub permissions: String,
    pub secret_last4: String,
    pub created: String,
    pub last_used: String,
    pub revoked: Option<String>,
}

impl From<&ApiKey> for KeyRow {
    fn from(k: &ApiKey) -> Self {
        KeyRow {
            id: k.id.to_string(),
            name: k.name.clone(),
            permissions: k.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            secret_last4: k.secret_last4.clone(),
            created: when(k.created_at),
            last_used: k.last_used_at.map(when).unwrap_or_else(|| "never".to_owned()),
            revoked: k.revoked_at.map(when),
        }
    }
}

#[derive(Template)]
#[template(path = "portal/api_keys.html")]
struct KeysPage {
    chrome: Chrome,
    env: &'static str,
    keys: Vec<KeyRow>,
    can_manage: bool,
    /// Why keys cannot be created here, when they cannot.
    locked: Option<&'static str>,
    error: Option<String>,
    name: String,
    /// Just created: the key's id and its secret, shown this once.
    created: Option<(String, String)>,
}

/// Every key's name by id (a request-log or usage row names its key).
pub(super) async fn key_names(state: &AppState, ws: &Workspace) -> Result<BTreeMap<String, String>, PageError> {
    let keys = state
        .api_keys
        .list_api_keys(&ws.scope(), &PageRequest::newest(KEYS_SHOWN_MAX))
        .await?;
    Ok(keys.items.into_iter().map(|k| (k.id.to_string(), k.name)).collect())
}

async fn keys_page(state: &AppState, staff: &Staff, ws: &Workspace) -> Result<KeysPage, PageError> {
    let first = PageRequest::newest(KEYS_SHOWN_MAX);
    let keys = state.api_keys.list_api_keys(&ws.scope(), &first).await?;
    Ok(KeysPage {
        chrome: chrome(staff, "api_keys", Some(ws)),
        env: ws.env(),
        keys: keys.items.iter().map(KeyRow::from).collect(),
        can_manage: staff.person.can(Action::ManageApiKeys),
        locked: live_lock(state, ws).await?,
        error: None,
        name: String::new(),
        created: None,
    })
}

/// Live keys move real money: they are issued once the tenant has a live program.
async fn live_lock(state: &AppState, ws: &Workspace) -> Result<Option<&'static str>, PageError> {
    if ws.environment != Environment::Live {
        return Ok(None);
    }
    let programs = state
        .programs
        .list_programs(&ws.scope(), &PageRequest::newest(1))
        .await?;
    Ok(programs.items.is_empty().then_some(
        "Live keys are issued once your tenant has a live program. Build and test in the sandbox; \
         the platform's operators set up your live program with you.",
    ))
}

pub async fn list(State(state): State<AppState>, staff: Staff, Path(env): Path<String>) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ViewApiKeys)?;
    page(&keys_page(&state, &staff, &ws).await?)
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    /// The checkbox for the `reveal` permission.
    reveal: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Path(env): Path<String>,
    Form(form): Form<CreateForm>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageApiKeys)?;
    let mut view = keys_page(&state, &staff, &ws).await?;
    if let Some(why) = view.locked {
        return Err(ApiError::forbidden("live_program_required", why).into());
    }
    let permissions: Vec<String> = form
        .reveal
        .iter()
        .map(|_| Permission::Reveal.as_str().to_owned())
        .collect();
    let issued = match api_keys::parse_new_key(Some(form.name.trim()), &permissions, |_| true) {
        Ok(new) => {
            api_keys::issue(&state, &ws.scope(), new, |key, _| {
                Ok(Some(EffectRecords {
                    replay: None,
                    audit: Some(staff.audit("api_key.create", "api_key", key.id.as_str())),
                }))
            })
            .await
        }
        Err(e) => Err(e),
    };
    match issued {
        Ok((key, secret)) => {
            let mut view = keys_page(&state, &staff, &ws).await?;
            view.created = Some((key.id.to_string(), secret.expose().to_owned()));
            page(&view)
        }
        Err(e) if e.status.is_client_error() => {
            view.error = Some(e.body.message.clone());
            view.name = form.name;
            let mut r = page(&view)?;
            *r.status_mut() = e.status;
            r.extensions_mut().insert(RefusalCode(e.body.code));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    staff: Staff,
    Path((env, id)): Path<(String, String)>,
) -> PageResult {
    let ws = Workspace::of(&staff, &env)?;
    staff.require(Action::ManageApiKeys)?;
    let id = ApiKeyId::parse(&id).map_err(|_| ApiError::not_found("api_key"))?;
    api_keys::revoke(&state, &ws.scope(), &id, |key| {
        Ok(Some(EffectRecords {
            replay: None,
            audit: Some(staff.audit("api_key.revoke", "api_key", key.id.as_str())),
        }))
    })
    .await?;
    Ok(Redirect::to(&format!("/portal/{}/api_keys", ws.env())).into_response())
}
