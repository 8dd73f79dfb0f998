//! Operators and tenants administration: the platform's operators (create with a role, change
//! role, disable, reset credentials), the tenants, and a tenant's users and API keys (revoke
//! with a reason). Every change goes through the same workflow as `/ops/operators*` and
//! `/ops/tenants/*` (`workflows::people`), so it is audited the same way. A new or reset
//! person's password is generated here and shown once, never stored in clear.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::ids::TenantId;
use cardplane_domain::people::{Action, Person};
use serde::Deserialize;

use super::{Chrome, ConsoleError, PageResult, RefusalCode, page, when};
use crate::http::error::ApiError;
use crate::http::people::{Staff, random_token};
use crate::state::AppState;
use crate::web::DoneQuery;
use crate::workflows::people::{
    CreatePersonRequest, ResetRequest, UpdatePersonRequest, create_person, load_operator, load_tenant,
    load_tenant_user, reset_person, revoke_tenant_api_key, role_names, tenant_api_keys, update_person,
};

/// A reason is a sentence for the audit log, not an essay.
const REASON_CHARS_MAX: usize = 500;

pub struct PersonRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: &'static str,
    pub disabled: bool,
    pub mfa: bool,
    pub locked: bool,
    pub last_login: String,
}

impl From<&Person> for PersonRow {
    fn from(p: &Person) -> Self {
        PersonRow {
            id: p.id.to_string(),
            email: p.email.clone(),
            name: p.name.clone(),
            role: p.role.as_str(),
            disabled: p.disabled,
            mfa: p.mfa_enabled,
            locked: p.guard.locked_at(cardplane_domain::Timestamp::now()).is_some(),
            last_login: p.last_login_at.map(when).unwrap_or_default(),
        }
    }
}

/// A table of people with, for those who may manage them, a form per row and a form to add one.
#[derive(Default)]
pub struct PeopleTable {
    pub rows: Vec<PersonRow>,
    pub roles: Vec<&'static str>,
    pub can_manage: bool,
    /// Where the forms post: `{base}` creates, `{base}/{user_id}/{update|reset}` changes.
    pub base: String,
    pub can_reset: bool,
    /// A refused change: (user id or "new", message).
    pub error: Option<(String, String)>,
    /// What the add form held when it was refused.
    pub draft: (String, String, String),
    /// A password just set: (email, password), shown once.
    pub issued: Option<(String, String)>,
}

impl PeopleTable {
    fn error_for(&self, id: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(who, _)| who == id)
            .map(|(_, m)| m.as_str())
    }
}

#[derive(Template)]
#[template(path = "console/operators.html")]
struct OperatorsPage {
    chrome: Chrome,
    people: PeopleTable,
}

async fn operators_page(state: &AppState, staff: &Staff, table: PeopleTable) -> PageResult {
    let rows = state.people.list_users(None).await?;
    page(&OperatorsPage {
        chrome: Chrome::new(staff, "people"),
        people: PeopleTable {
            rows: rows.iter().map(PersonRow::from).collect(),
            roles: role_names(false),
            can_manage: staff.person.can(Action::ManageOperators),
            base: "/console/operators".into(),
            can_reset: true,
            ..table
        },
    })
}

/// `GET /console/operators`.
pub async fn operators(State(state): State<AppState>, staff: Staff) -> PageResult {
    staff.require(Action::ViewOperators)?;
    operators_page(&state, &staff, PeopleTable::default()).await
}

#[derive(Debug, Deserialize)]
pub struct NewPersonForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// A refused form: the page again with the message where the change was asked, and the status
/// and code of the API's answer (for the person and for the audit log).
fn refused(mut r: axum::response::Response, e: &ApiError) -> PageResult {
    *r.status_mut() = e.status;
    r.extensions_mut().insert(RefusalCode(e.body.code.clone()));
    Ok(r)
}

/// Creates a person with a generated password; the page shows it once.
async fn add_person(
    state: &AppState,
    staff: &Staff,
    tenant: Option<&TenantId>,
    form: NewPersonForm,
) -> Result<PeopleTable, (PeopleTable, ApiError)> {
    let password = random_token();
    let req = CreatePersonRequest {
        email: form.email.clone(),
        name: form.name.clone(),
        role: form.role.clone(),
        password: password.clone(),
    };
    match create_person(state, staff, tenant, req).await {
        Ok(person) => Ok(PeopleTable {
            issued: Some((person.email, password)),
            ..PeopleTable::default()
        }),
        Err(e) if e.status.is_client_error() => {
            let table = PeopleTable {
                error: Some(("new".into(), e.body.message.clone())),
                draft: (form.email, form.name, form.role),
                ..PeopleTable::default()
            };
            Err((table, e))
        }
        Err(e) => Err((PeopleTable::default(), e)),
    }
}

/// `POST /console/operators`: a new operator with a role.
pub async fn create_operator(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<NewPersonForm>,
) -> PageResult {
    staff.require(Action::ManageOperators)?;
    match add_person(&state, &staff, None, form).await {
        Ok(table) => operators_page(&state, &staff, table).await,
        Err((table, e)) if table.error.is_some() => refused(operators_page(&state, &staff, table).await?, &e),
        Err((_, e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    role: Option<String>,
    /// `active` or `disabled`.
    #[serde(default)]
    access: Option<String>,
}

/// Applies a row's change or reset to `target`: Ok(a password to show once, for a reset).
async fn change_person(
    state: &AppState,
    staff: &Staff,
    target: &Person,
    action: &str,
    form: ChangeForm,
) -> Result<Option<(String, String)>, ApiError> {
    match action {
        "update" => {
            let disabled = match form.access.as_deref() {
                None => None,
                Some("active") => Some(false),
                Some("disabled") => Some(true),
                Some(_) => {
                    return Err(
                        ApiError::invalid("parameter_invalid", "access is active or disabled").with_param("access")
                    );
                }
            };
            let req = UpdatePersonRequest {
                role: form.role,
                disabled,
                name: None,
            };
            update_person(state, staff, target, req).await.map(|_| None)
        }
        "reset" => {
            let password = random_token();
            let req = ResetRequest {
                password: password.clone(),
            };
            let person = reset_person(state, staff, target, req).await?;
            Ok(Some((person.email, password)))
        }
        _ => Err(ApiError::not_found("person action")),
    }
}

/// `POST /console/operators/{user_id}/{update|reset}`.
pub async fn change_operator(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> PageResult {
    staff.require(Action::ManageOperators)?;
    let target = load_operator(&state, &id).await?;
    match change_person(&state, &staff, &target, &action, form).await {
        Ok(issued) => {
            let table = PeopleTable {
                issued,
                ..PeopleTable::default()
            };
            operators_page(&state, &staff, table).await
        }
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let table = PeopleTable {
                error: Some((target.id.to_string(), e.body.message.clone())),
                ..PeopleTable::default()
            };
            refused(operators_page(&state, &staff, table).await?, &e)
        }
        Err(e) => Err(e.into()),
    }
}

pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub api_version: String,
    pub rate_limit: String,
    pub created: String,
}

impl From<&cardplane_domain::tenant::Tenant> for TenantRow {
    fn from(t: &cardplane_domain::tenant::Tenant) -> Self {
        TenantRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            api_version: t.api_version.as_str().to_owned(),
            rate_limit: t.rate_limit_per_second.map(|n| n.to_string()).unwrap_or_default(),
            created: when(t.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    chrome: Chrome,
    rows: Vec<TenantRow>,
}

/// `GET /console/tenants`: the tenants this person reaches.
pub async fn tenants(State(state): State<AppState>, staff: Staff) -> PageResult {
    staff.require(Action::ViewTenants)?;
    let all = state.tenants.list_tenants().await?;
    page(&TenantsPage {
        chrome: Chrome::new(&staff, "people"),
        rows: all
            .iter()
            .filter(|t| staff.person.reaches(&t.id))
            .map(TenantRow::from)
            .collect(),
    })
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub environment: &'static str,
    pub last4: String,
    pub created: String,
    pub last_used: String,
    pub revoked: String,
    pub active: bool,
}

impl From<&ApiKey> for KeyRow {
    fn from(k: &ApiKey) -> Self {
        KeyRow {
            id: k.id.to_string(),
            name: k.name.clone(),
            environment: k.environment.as_str(),
            last4: k.secret_last4.clone(),
            created: when(k.created_at),
            last_used: k.last_used_at.map(when).unwrap_or_default(),
            revoked: k.revoked_at.map(when).unwrap_or_default(),
            active: k.is_active(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/tenant.html")]
struct TenantPage {
    chrome: Chrome,
    tenant: TenantRow,
    people: Option<PeopleTable>,
    keys: Option<Vec<KeyRow>>,
    can_revoke: bool,
    /// A refused revocation: (key id, message).
    key_error: Option<(String, String)>,
    notice: Option<&'static str>,
}

impl TenantPage {
    fn key_error_for(&self, id: &str) -> Option<&str> {
        self.key_error
            .as_ref()
            .filter(|(k, _)| k == id)
            .map(|(_, m)| m.as_str())
    }
}

async fn tenant_page(
    state: &AppState,
    staff: &Staff,
    id: &TenantId,
    table: PeopleTable,
    key_error: Option<(String, String)>,
) -> Result<TenantPage, ConsoleError> {
    let tenant = state.tenants.get_tenant(id).await?;
    let people = if staff.person.can(Action::ViewTenantUsers) {
        let rows = state.people.list_users(Some(id)).await?;
        Some(PeopleTable {
            rows: rows.iter().map(PersonRow::from).collect(),
            roles: role_names(true),
            can_manage: staff.person.can(Action::ManageTenantUsers),
            base: format!("/console/tenants/{id}/users"),
            can_reset: false,
            ..table
        })
    } else {
        None
    };
    let keys = if staff.person.can(Action::ViewApiKeys) {
        Some(tenant_api_keys(state, id).await?.iter().map(KeyRow::from).collect())
    } else {
        None
    };
    Ok(TenantPage {
        chrome: Chrome::new(staff, "people"),
        tenant: TenantRow::from(&tenant),
        people,
        keys,
        can_revoke: staff.person.can(Action::ManageApiKeys),
        key_error,
        notice: None,
    })
}

/// `GET /console/tenants/{tenant_id}`.
pub async fn tenant(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let id = load_tenant(&state, &staff, Action::ViewTenants, &id).await?;
    let mut p = tenant_page(&state, &staff, &id, PeopleTable::default(), None).await?;
    p.notice = q.notice(&[
        ("revoked", "The API key is revoked."),
        ("updated", "The user is updated."),
    ]);
    page(&p)
}

/// `POST /console/tenants/{tenant_id}/users`: a new user of the tenant with a role.
pub async fn create_tenant_user(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<NewPersonForm>,
) -> PageResult {
    let id = load_tenant(&state, &staff, Action::ManageTenantUsers, &id).await?;
    match add_person(&state, &staff, Some(&id), form).await {
        Ok(table) => page(&tenant_page(&state, &staff, &id, table, None).await?),
        Err((table, e)) if table.error.is_some() => {
            refused(page(&tenant_page(&state, &staff, &id, table, None).await?)?, &e)
        }
        Err((_, e)) => Err(e.into()),
    }
}

/// `POST /console/tenants/{tenant_id}/users/{user_id}/update`: role or access.
pub async fn change_tenant_user(
    State(state): State<AppState>,
    staff: Staff,
    Path((tenant, user, action)): Path<(String, String, String)>,
    Form(form): Form<ChangeForm>,
) -> PageResult {
    if action != "update" {
        return Err(ApiError::not_found("user action").into());
    }
    let tenant = load_tenant(&state, &staff, Action::ManageTenantUsers, &tenant).await?;
    let target = load_tenant_user(&state, &tenant, &user).await?;
    match change_person(&state, &staff, &target, &action, form).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/tenants/{tenant}?done=updated")).into_response()),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let table = PeopleTable {
                error: Some((target.id.to_string(), e.body.message.clone())),
                ..PeopleTable::default()
            };
            refused(page(&tenant_page(&state, &staff, &tenant, table, None).await?)?, &e)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    reason: String,
}

/// `POST /console/tenants/{tenant_id}/api_keys/{api_key_id}/revoke` with a reason.
pub async fn revoke_key(
    State(state): State<AppState>,
    staff: Staff,
    Path((tenant, key)): Path<(String, String)>,
    Form(form): Form<RevokeForm>,
) -> PageResult {
    let tenant = load_tenant(&state, &staff, Action::ManageApiKeys, &tenant).await?;
    let reason = form.reason.trim();
    let problem = if reason.is_empty() {
        Some(ApiError::invalid("reason_required", "Give a reason: it goes into the audit log.").with_param("reason"))
    } else if reason.chars().count() > REASON_CHARS_MAX {
        Some(
            ApiError::invalid(
                "reason_too_long",
                format!("Keep the reason under {REASON_CHARS_MAX} characters."),
            )
            .with_param("reason"),
        )
    } else {
        None
    };
    let outcome = match problem {
        Some(e) => Err(e),
        None => revoke_tenant_api_key(&state, &staff, &tenant, &key, Some(reason)).await,
    };
    match outcome {
        Ok(_) => Ok(Redirect::to(&format!("/console/tenants/{tenant}?done=revoked")).into_response()),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let error = Some((key.clone(), e.body.message.clone()));
            let p = tenant_page(&state, &staff, &tenant, PeopleTable::default(), error).await?;
            refused(page(&p)?, &e)
        }
        Err(e) => Err(e.into()),
    }
}
