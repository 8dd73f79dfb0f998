//! The team: a tenant's users with their roles and last sign-in, and teammate invitations. Owners
//! invite (by email, with a role) and withdraw pending invitations; everyone else reads.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use cardplane_domain::Timestamp;
use cardplane_domain::people::{Action, TenantRole};
use serde::Deserialize;

use super::{chrome, tenant_of};
use crate::http::people::Staff;
use crate::state::AppState;
use crate::web::{Chrome, PageError, PageResult, RefusalCode, page, when};
use crate::workflows::invitations;

/// Invitations shown: the newest; older ones are history in the audit log.
const INVITATIONS_SHOWN_MAX: u32 = 50;

pub struct MemberRow {
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub status: &'static str,
    pub last_sign_in: String,
}

pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub state: &'static str,
    pub pending: bool,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "portal/team.html")]
struct TeamPage {
    chrome: Chrome,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    can_invite: bool,
    roles: Vec<&'static str>,
    email: String,
    role: String,
    error: Option<String>,
    invited: Option<String>,
}

async fn team_page(state: &AppState, staff: &Staff) -> Result<TeamPage, PageError> {
    staff.require(Action::ViewTenantUsers)?;
    let tenant = tenant_of(staff)?;
    let now = Timestamp::now();
    let members = state.people.list_users(Some(&tenant)).await?;
    let invitations = state
        .invitations
        .list_invitations(&tenant, INVITATIONS_SHOWN_MAX)
        .await?;
    Ok(TeamPage {
        chrome: chrome(staff, "team", None),
        members: members
            .iter()
            .map(|p| MemberRow {
                name: p.name.clone(),
                email: p.email.clone(),
                role: p.role.as_str(),
                status: if p.disabled { "disabled" } else { "active" },
                last_sign_in: p.last_login_at.map(when).unwrap_or_else(|| "never".to_owned()),
            })
            .collect(),
        invitations: invitations
            .iter()
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                email: i.email.clone(),
                role: i.role.as_str(),
                state: i.state(now).as_str(),
                pending: i.check_usable(now).is_ok(),
                expires: when(i.expires_at),
            })
            .collect(),
        can_invite: staff.person.can(Action::ManageTenantUsers),
        roles: TenantRole::ALL.iter().map(|r| r.as_str()).collect(),
        email: String::new(),
        role: TenantRole::Developer.as_str().to_owned(),
        error: None,
        invited: None,
    })
}

pub async fn show(State(state): State<AppState>, staff: Staff) -> PageResult {
    page(&team_page(&state, &staff).await?)
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn invite(State(state): State<AppState>, staff: Staff, Form(form): Form<InviteForm>) -> PageResult {
    let tenant = tenant_of(&staff)?;
    let inviter = invitations::Inviter::Person(&staff);
    match invitations::invite_teammate(&state, inviter, &tenant, &form.email, &form.role).await {
        Ok(sent) => {
            let mut view = team_page(&state, &staff).await?;
            view.invited = Some(sent.invitation.email);
            page(&view)
        }
        Err(e) if e.status.is_client_error() && e.status.as_u16() != 403 => {
            let mut view = team_page(&state, &staff).await?;
            view.error = Some(e.body.message.clone());
            view.email = form.email;
            view.role = form.role;
            let mut r = page(&view)?;
            *r.status_mut() = e.status;
            r.extensions_mut().insert(RefusalCode(e.body.code));
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke(State(state): State<AppState>, staff: Staff, Path(id): Path<String>) -> PageResult {
    let tenant = tenant_of(&staff)?;
    invitations::revoke(&state, &staff, &tenant, &id).await?;
    Ok(Redirect::to("/portal/team").into_response())
}
