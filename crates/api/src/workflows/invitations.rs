//! Getting people into the developer portal: self-service sign-up (when the platform allows it)
//! creates a tenant once the email is proven; an owner (or an operator) invites teammates with a
//! role. Both are a link with a one-time token sent by mail; accepting it sets the person's name
//! and password and creates what the link promised in one transaction.

use axum::http::StatusCode;
use cardplane_domain::audit::{ActorKind, Outcome};
use cardplane_domain::ids::{InvitationId, TenantId, UserId};
use cardplane_domain::invitation::{Invitation, InvitationError, InvitationKind, parse_company_name};
use cardplane_domain::people::{Action, Person, Role, SignInGuard, TenantRole, normalize_email};
use cardplane_domain::{Environment, Timestamp};
use cardplane_store::StoreError;
use cardplane_store::invitations::NewTenant;

use super::admin::{TenantDraft, email_taken, new_user};
use crate::http::error::{ApiError, ApiResult, ErrorType};
use crate::http::people::{Origin, Staff, random_token, token_hash};
use crate::mail::Mail;
use crate::state::AppState;

const NAME_CHARS_MAX: usize = 100;

fn ttl_secs(state: &AppState) -> i64 {
    state.config.portal.invitation_ttl_hours.max(1) * 3600
}

fn link(state: &AppState, token: &str) -> String {
    format!("{}/portal/accept?token={token}", state.config.public_url())
}

fn parse_email(raw: &str) -> ApiResult<String> {
    normalize_email(raw)
        .map_err(|_| ApiError::invalid("parameter_invalid", "Enter an email address").with_param("email"))
}

async fn send(state: &AppState, mail: Mail) -> ApiResult<()> {
    state.mailer.send(&mail).await.map_err(ApiError::unavailable)
}

/// Someone asks for a tenant. The answer is the same whether or not the email already has an
/// account (which gets a reminder to sign in instead), so the form reveals nothing.
pub async fn request_signup(state: &AppState, origin: &Origin, email: &str, company: &str) -> ApiResult<()> {
    if !state.config.portal.self_signup {
        return Err(ApiError::forbidden(
            "signup_disabled",
            "Sign-up is by invitation on this platform: ask its operators for one.",
        ));
    }
    let email = parse_email(email)?;
    let company = parse_company_name(company).ok_or_else(|| {
        ApiError::invalid(
            "parameter_invalid",
            "Enter your company's name (at most 100 characters)",
        )
        .with_param("company_name")
    })?;
    if state.people.find_user_by_email(&email).await?.is_some() {
        let body = format!(
            "Somebody (perhaps you) asked to sign up for Cardplane with this address, which already has an \
             account. Sign in at {}/portal/login.",
            state.config.public_url()
        );
        return send(
            state,
            Mail {
                to: email,
                subject: "Your Cardplane account".into(),
                body,
            },
        )
        .await;
    }
    let invitation = Invitation::sign_up(email, company, Timestamp::now(), ttl_secs(state));
    let token = random_token();
    let audit = origin
        .record(
            ActorKind::System,
            Some("portal sign-up".into()),
            "invitation.signup_requested",
            Outcome::Success,
            200,
        )
        .on("invitation", invitation.id.as_str())
        .with_details(serde_json::json!({ "email": invitation.email }));
    state
        .invitations
        .insert_invitation(&invitation, &token_hash(&token), Some(&audit))
        .await?;
    let body = format!(
        "Welcome to Cardplane. Confirm your address and choose a password to create {}'s sandbox:\n\n{}\n\n\
         The link works once, for {} hours.",
        invitation.company_name.as_deref().unwrap_or_default(),
        link(state, &token),
        state.config.portal.invitation_ttl_hours
    );
    send(
        state,
        Mail {
            to: invitation.email,
            subject: "Confirm your email for Cardplane".into(),
            body,
        },
    )
    .await
}

/// Who invites: a signed-in person (an owner, or an operator), or the command line.
pub enum Inviter<'a> {
    Person(&'a Staff),
    Cli,
}

/// An invitation sent, and its link (for the command line to print; pages never show it).
pub struct Sent {
    pub invitation: Invitation,
    pub link: String,
}

/// Invites a teammate into `tenant` with a role; the link goes out by mail.
pub async fn invite_teammate(
    state: &AppState,
    inviter: Inviter<'_>,
    tenant: &TenantId,
    email: &str,
    role: &str,
) -> ApiResult<Sent> {
    if let Inviter::Person(staff) = inviter {
        staff.require_in(Action::ManageTenantUsers, tenant, "tenant")?;
    }
    let email = parse_email(email)?;
    let role = TenantRole::parse(role).ok_or_else(|| {
        ApiError::invalid("parameter_invalid", "role is owner, developer or viewer").with_param("role")
    })?;
    if state.people.find_user_by_email(&email).await?.is_some() {
        return Err(ApiError::conflict("email_taken", "Somebody already signs in with this email").with_param("email"));
    }
    let name = state.tenants.get_tenant(tenant).await?.name;
    let by = match inviter {
        Inviter::Person(staff) => Some(&staff.person),
        Inviter::Cli => None,
    };
    let invitation = Invitation::teammate(
        tenant.clone(),
        email,
        role,
        by.map(|p| p.id.clone()),
        Timestamp::now(),
        ttl_secs(state),
    );
    let details = serde_json::json!({ "email": invitation.email, "role": role.as_str(), "tenant_id": tenant.as_str() });
    let audit = match inviter {
        Inviter::Person(staff) => staff.audit("invitation.created", "invitation", invitation.id.as_str()),
        Inviter::Cli => Origin::default()
            .record(
                ActorKind::Cli,
                Some("cardplane tenant invite".into()),
                "invitation.created",
                Outcome::Success,
                200,
            )
            .on("invitation", invitation.id.as_str()),
    }
    .with_details(details);
    let token = random_token();
    state
        .invitations
        .insert_invitation(&invitation, &token_hash(&token), Some(&audit))
        .await?;
    let link = link(state, &token);
    let body = format!(
        "{} invited you to {} on Cardplane as {}. Choose a password to join:\n\n{}\n\nThe link works once, for {} hours.",
        by.map_or("The platform's operators", |p| p.name.as_str()),
        name,
        role.as_str(),
        link,
        state.config.portal.invitation_ttl_hours
    );
    send(
        state,
        Mail {
            to: invitation.email.clone(),
            subject: format!("Join {name} on Cardplane"),
            body,
        },
    )
    .await?;
    Ok(Sent { invitation, link })
}

fn unusable(e: InvitationError) -> ApiError {
    let code = match e {
        InvitationError::AlreadyAccepted => "invitation_used",
        InvitationError::Revoked => "invitation_revoked",
        InvitationError::Expired => "invitation_expired",
    };
    ApiError::new(StatusCode::GONE, ErrorType::InvalidRequestError, code, e.to_string())
}

/// The invitation behind a link, if it may still be used.
pub async fn open(state: &AppState, token: &str) -> ApiResult<Invitation> {
    let invitation = state
        .invitations
        .find_invitation(&token_hash(token))
        .await?
        .ok_or_else(|| ApiError::not_found("invitation"))?;
    invitation.check_usable(Timestamp::now()).map_err(unusable)?;
    Ok(invitation)
}

/// Who accepted, and for a sign-up the tenant created with its sandbox key (secret included,
/// for provisioning the sample sandbox; never shown).
pub struct Accepted {
    pub person: Person,
    pub tenant: Option<TenantDraft>,
}

fn parse_person_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
        return Err(
            ApiError::invalid("parameter_invalid", "Enter your name (at most 100 characters)").with_param("name"),
        );
    }
    Ok(name.to_owned())
}

/// Accepts the invitation behind `token`: the person (and for a sign-up, the tenant with a
/// sandbox key) exists afterwards, or nothing changed.
pub async fn accept(
    state: &AppState,
    origin: &Origin,
    token: &str,
    name: &str,
    password: String,
) -> ApiResult<Accepted> {
    let invitation = open(state, token).await?;
    let name = parse_person_name(name)?;
    let now = Timestamp::now();
    let tenant = match invitation.kind {
        InvitationKind::Signup => Some(TenantDraft::new(
            invitation.company_name.as_deref().unwrap_or("New tenant"),
            &[Environment::Sandbox],
            &[],
            None,
            &state.pepper,
            now,
        )),
        InvitationKind::Teammate => None,
    };
    let tenant_id = match (&tenant, &invitation.tenant_id) {
        (Some(draft), _) => draft.tenant.id.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => return Err(ApiError::internal("a teammate invitation without a tenant")),
    };
    let person = Person {
        id: UserId::generate(),
        email: invitation.email.clone(),
        name,
        role: Role::Tenant(invitation.role),
        tenant_id: Some(tenant_id.clone()),
        disabled: false,
        mfa_enabled: false,
        guard: SignInGuard::default(),
        created_at: now,
        last_login_at: None,
    };
    let user = new_user(person, password).await?;
    let audit = origin
        .record(
            ActorKind::User,
            Some(user.person.id.to_string()),
            "invitation.accepted",
            Outcome::Success,
            200,
        )
        .on("invitation", invitation.id.as_str())
        .with_details(serde_json::json!({
            "kind": invitation.kind.as_str(), "tenant_id": tenant_id.as_str(), "role": invitation.role.as_str(),
        }));
    let keys = tenant.as_ref().map(TenantDraft::key_rows).unwrap_or_default();
    let new_tenant = tenant.as_ref().map(|d| NewTenant {
        tenant: &d.tenant,
        keys: &keys,
        events: &d.events,
    });
    match state
        .invitations
        .accept_invitation(&invitation.id, now, new_tenant, &user, &audit)
        .await
    {
        Ok(()) => Ok(Accepted {
            person: user.person,
            tenant,
        }),
        Err(StoreError::NotFound) => Err(unusable(InvitationError::AlreadyAccepted)),
        Err(e) => Err(email_taken(e)),
    }
}

/// Withdraws a pending teammate invitation of `tenant`.
pub async fn revoke(state: &AppState, staff: &Staff, tenant: &TenantId, id: &str) -> ApiResult<()> {
    staff.require_in(Action::ManageTenantUsers, tenant, "tenant")?;
    let id = InvitationId::parse(id).map_err(|_| ApiError::not_found("invitation"))?;
    let audit = staff.audit("invitation.revoked", "invitation", id.as_str());
    state
        .invitations
        .revoke_invitation(tenant, &id, Timestamp::now(), &audit)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("invitation"),
            other => other.into(),
        })
}
