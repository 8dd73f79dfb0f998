//! Invitations into the developer portal: a sign-up (someone asks for a new tenant and proves
//! they read their email) or a teammate invited into an existing tenant with a role. Either is a
//! link with a secret token that works once, until it expires. Pure: tokens are generated and
//! hashed at the edges.

use crate::ids::{InvitationId, TenantId, UserId};
use crate::people::TenantRole;
use crate::time::Timestamp;

// `signup`: a new tenant, whose owner is the person who signed up; `teammate`: someone joining
// an existing tenant.
crate::wire_enum!(InvitationKind {
    Signup => "signup",
    Teammate => "teammate",
});

/// Where an invitation stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationState {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationState::Pending => "pending",
            InvitationState::Accepted => "accepted",
            InvitationState::Revoked => "revoked",
            InvitationState::Expired => "expired",
        }
    }
}

pub const COMPANY_NAME_CHARS_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub kind: InvitationKind,
    pub email: String,
    /// The tenant a teammate joins; a sign-up has none until it is accepted.
    pub tenant_id: Option<TenantId>,
    pub role: TenantRole,
    /// A sign-up's company: the new tenant's name.
    pub company_name: Option<String>,
    pub invited_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    #[error("this link was already used")]
    AlreadyAccepted,
    #[error("this invitation was withdrawn")]
    Revoked,
    #[error("this link has expired; ask for a new one")]
    Expired,
}

impl Invitation {
    pub fn sign_up(email: String, company_name: String, now: Timestamp, ttl_secs: i64) -> Self {
        Invitation {
            id: InvitationId::generate(),
            kind: InvitationKind::Signup,
            email,
            tenant_id: None,
            role: TenantRole::Owner,
            company_name: Some(company_name),
            invited_by: None,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
            accepted_at: None,
            revoked_at: None,
        }
    }

    pub fn teammate(
        tenant_id: TenantId,
        email: String,
        role: TenantRole,
        invited_by: Option<UserId>,
        now: Timestamp,
        ttl_secs: i64,
    ) -> Self {
        Invitation {
            id: InvitationId::generate(),
            kind: InvitationKind::Teammate,
            email,
            tenant_id: Some(tenant_id),
            role,
            company_name: None,
            invited_by,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
            accepted_at: None,
            revoked_at: None,
        }
    }

    pub fn state(&self, now: Timestamp) -> InvitationState {
        if self.accepted_at.is_some() {
            InvitationState::Accepted
        } else if self.revoked_at.is_some() {
            InvitationState::Revoked
        } else if now >= self.expires_at {
            InvitationState::Expired
        } else {
            InvitationState::Pending
        }
    }

    /// Whether the link may be used now.
    pub fn check_usable(&self, now: Timestamp) -> Result<(), InvitationError> {
        match self.state(now) {
            InvitationState::Pending => Ok(()),
            InvitationState::Accepted => Err(InvitationError::AlreadyAccepted),
            InvitationState::Revoked => Err(InvitationError::Revoked),
            InvitationState::Expired => Err(InvitationError::Expired),
        }
    }
}

/// A sign-up's company name: trimmed, 1 to 100 characters.
pub fn parse_company_name(raw: &str) -> Option<String> {
    let name = raw.trim();
    let chars = name.chars().count();
    (1..=COMPANY_NAME_CHARS_MAX).contains(&chars).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once_until_it_expires_or_is_withdrawn() {
        let now = Timestamp::from_micros(1_000_000_000_000);
        let mut inv = Invitation::sign_up("a@example.com".into(), "Acme".into(), now, 3600);
        assert_eq!(inv.state(now), InvitationState::Pending);
        assert!(inv.check_usable(now.plus_secs(3599)).is_ok());
        assert_eq!(inv.check_usable(now.plus_secs(3600)), Err(InvitationError::Expired));
        inv.revoked_at = Some(now);
        assert_eq!(inv.check_usable(now), Err(InvitationError::Revoked));
        inv.accepted_at = Some(now);
        assert_eq!(inv.check_usable(now), Err(InvitationError::AlreadyAccepted));
    }

    #[test]
    fn company_names_are_trimmed_and_bounded() {
        assert_eq!(parse_company_name("  Acme  ").as_deref(), Some("Acme"));
        assert_eq!(parse_company_name("   "), None);
        assert_eq!(parse_company_name(&"x".repeat(101)), None);
        assert!(parse_company_name(&"é".repeat(100)).is_some());
    }
}
