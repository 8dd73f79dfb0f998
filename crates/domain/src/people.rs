//! People who sign in: the platform's operators and a tenant's own users. Their roles, the one
//! permission matrix every `/ops` endpoint consults, the password policy, lockout and the session
//! idle rule. Pure: hashing and storage live at the edges.

use crate::ids::TenantId;
use crate::time::Timestamp;

crate::wire_enum!(OperatorRole {
    Admin => "admin",
    ComplianceOfficer => "compliance_officer",
    Operations => "operations",
    Support => "support",
    ReadOnly => "read_only",
});

crate::wire_enum!(TenantRole {
    Owner => "owner",
    Developer => "developer",
    Viewer => "viewer",
});

/// A person's role: operators work across tenants, tenant users only inside their own tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Operator(OperatorRole),
    Tenant(TenantRole),
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Operator(OperatorRole::Admin),
        Role::Operator(OperatorRole::ComplianceOfficer),
        Role::Operator(OperatorRole::Operations),
        Role::Operator(OperatorRole::Support),
        Role::Operator(OperatorRole::ReadOnly),
        Role::Tenant(TenantRole::Owner),
        Role::Tenant(TenantRole::Developer),
        Role::Tenant(TenantRole::Viewer),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator(r) => r.as_str(),
            Role::Tenant(r) => r.as_str(),
        }
    }

    pub fn is_operator(self) -> bool {
        matches!(self, Role::Operator(_))
    }
}

crate::wire_enum!(Action {
    ViewOperators => "operators.read",
    ManageOperators => "operators.write",
    ViewTenants => "tenants.read",
    ViewTenantUsers => "tenant_users.read",
    ManageTenantUsers => "tenant_users.write",
    ViewApiKeys => "api_keys.read",
    ManageApiKeys => "api_keys.write",
    ViewCases => "cases.read",
    WorkCases => "cases.write",
    DecideCases => "cases.decide",
    ViewDocuments => "documents.read",
    ViewApprovalChains => "approval_chains.read",
    ManageApprovalChains => "approval_chains.write",
    ViewAudit => "audit.read",
    ExportAudit => "audit.export",
    ViewDisputes => "disputes.read",
    WorkDisputes => "disputes.write",
    ViewTransactions => "transactions.read",
    ViewCards => "cards.read",
    ManageCards => "cards.write",
    ViewAlerts => "alerts.read",
    WorkAlerts => "alerts.write",
    ViewIntegration => "integration.read",
    ManageWebhooks => "webhooks.write",
    UseSimulator => "simulator.use",
    ViewPrograms => "programs.read",
    ManagePrograms => "programs.write",
});

/// The permission matrix: the only place that says who may do what. Tenant users' actions are
/// further limited to their own tenant by the caller.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    use OperatorRole as O;
    use TenantRole as T;
    match role {
        Role::Operator(O::Admin) => true,
        Role::Operator(O::ComplianceOfficer) => matches!(
            action,
            ViewTransactions
                | ViewCards
                | ManageCards
                | ViewTenants
                | ViewCases
                | WorkCases
                | DecideCases
                | ViewDocuments
                | ViewApprovalChains
                | ViewAudit
                | ExportAudit
                | ViewDisputes
                | WorkDisputes
                | ViewAlerts
                | WorkAlerts
                | ViewPrograms
        ),
        Role::Operator(O::Operations) => matches!(
            action,
            ViewTransactions
                | ViewCards
                | ManageCards
                | ViewTenants
                | ViewTenantUsers
                | ManageTenantUsers
                | ViewApiKeys
                | ManageApiKeys
                | ViewCases
                | WorkCases
                | ViewApprovalChains
                | ViewDisputes
                | WorkDisputes
                | ViewAlerts
                | WorkAlerts
                | ViewIntegration
                | ManageWebhooks
                | ViewPrograms
                | ManagePrograms
        ),
        Role::Operator(O::Support) => matches!(
            action,
            ViewTransactions
                | ViewCards
                | ViewTenants
                | ViewTenantUsers
                | ViewApiKeys
                | ViewCases
                | ViewApprovalChains
                | ViewDisputes
                | ViewAlerts
                | ViewIntegration
                | ViewPrograms
        ),
        Role::Operator(O::ReadOnly) => matches!(
            action,
            ViewTransactions
                | ViewCards
                | ViewOperators
                | ViewTenants
                | ViewTenantUsers
                | ViewApiKeys
                | ViewCases
                | ViewApprovalChains
                | ViewAudit
                | ViewDisputes
                | ViewAlerts
                | ViewIntegration
                | ViewPrograms
        ),
        Role::Tenant(T::Owner) => matches!(
            action,
            ViewTransactions
                | ViewCards
                | ManageCards
                | ViewTenants
                | ViewTenantUsers
                | ManageTenantUsers
                | ViewApiKeys
                | ManageApiKeys
                | ViewIntegration
                | ManageWebhooks
                | UseSimulator
                | ViewPrograms
                | ManagePrograms
        ),
        Role::Tenant(T::Developer) => matches!(
            action,
            ViewTransactions
                | ViewCards
                | ViewTenants
                | ViewTenantUsers
                | ViewApiKeys
                | ManageApiKeys
                | ViewIntegration
                | ManageWebhooks
                | UseSimulator
                | ViewPrograms
        ),
        Role::Tenant(T::Viewer) => matches!(
            action,
            ViewTransactions | ViewCards | ViewTenants | ViewTenantUsers | ViewApiKeys | ViewIntegration | ViewPrograms
        ),
    }
}

pub const PASSWORD_MIN_CHARS: usize = 12;
/// Argon2 takes any length; the cap keeps a login request from buying seconds of CPU.
pub const PASSWORD_MAX_CHARS: usize = 256;
pub const LOCKOUT_AFTER_FAILURES: i64 = 10;
pub const LOCKOUT_SECS: i64 = 30 * 60;
pub const SESSION_IDLE_SECS: i64 = 15 * 60;
/// A session ends after this long however active it is.
pub const SESSION_MAX_SECS: i64 = 12 * 60 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("passwords need at least {PASSWORD_MIN_CHARS} characters")]
    TooShort,
    #[error("passwords may have at most {PASSWORD_MAX_CHARS} characters")]
    TooLong,
}

/// Length is the rule that matters (NIST SP 800-63B); composition rules are not imposed.
pub fn check_password(candidate: &str) -> Result<(), PasswordError> {
    let chars = candidate.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        Err(PasswordError::TooShort)
    } else if chars > PASSWORD_MAX_CHARS {
        Err(PasswordError::TooLong)
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("not an email address")]
    Invalid,
}

/// Emails identify people at sign-in: trimmed and lower-cased so one person has one account.
pub fn normalize_email(raw: &str) -> Result<String, EmailError> {
    let e = raw.trim().to_ascii_lowercase();
    let (local, domain) = e.split_once('@').ok_or(EmailError::Invalid)?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    if ok { Ok(e) } else { Err(EmailError::Invalid) }
}

/// Where a person stands with sign-in failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInGuard {
    pub failed_attempts: i64,
    pub locked_until: Option<Timestamp>,
}

impl SignInGuard {
    pub fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| *until > now)
    }

    /// A failed password or second factor: the tenth consecutive one locks for 30 minutes.
    #[must_use]
    pub fn failed(self, now: Timestamp) -> Self {
        // A lock that has run out starts a fresh count.
        let previous = if self.locked_until.is_some_and(|u| u <= now) {
            0
        } else {
            self.failed_attempts
        };
        let failed_attempts = previous + 1;
        let locked_until = if failed_attempts >= LOCKOUT_AFTER_FAILURES {
            Some(now.plus_secs(LOCKOUT_SECS))
        } else {
            self.locked_until
        };
        Self {
            failed_attempts,
            locked_until,
        }
    }

    #[must_use]
    pub fn succeeded(self) -> Self {
        Self::default()
    }
}

/// Who a person is and where they may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: crate::ids::UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Set for tenant users; operators have none.
    pub tenant_id: Option<TenantId>,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub guard: SignInGuard,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

impl Person {
    pub fn can(&self, action: Action) -> bool {
        !self.disabled && allows(self.role, action)
    }

    /// Whether this person may act on objects of `tenant` at all.
    pub fn reaches(&self, tenant: &TenantId) -> bool {
        match &self.tenant_id {
            None => self.role.is_operator(),
            Some(own) => own == tenant,
        }
    }
}

/// A signed-in session: idle for 15 minutes, or older than 12 hours, and it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClock {
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

impl SessionClock {
    pub fn expired(&self, now: Timestamp, idle_secs: i64) -> bool {
        now.as_micros() - self.last_seen_at.as_micros() > idle_secs * 1_000_000
            || now.as_micros() - self.created_at.as_micros() > SESSION_MAX_SECS * 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole matrix spelled out: a change to `allows` must change this table too.
    #[test]
    fn permission_matrix_is_exactly_as_documented() {
        use Action::*;
        #[rustfmt::skip]
        let table: &[(Action, [bool; 8])] = &[
            //                     admin  co     ops    supp   ro     owner  dev    viewer
            (ViewOperators,        [true, false, false, false, true,  false, false, false]),
            (ManageOperators,      [true, false, false, false, false, false, false, false]),
            (ViewTenants,          [true, true,  true,  true,  true,  true,  true,  true ]),
            (ViewTenantUsers,      [true, false, true,  true,  true,  true,  true,  true ]),
            (ManageTenantUsers,    [true, false, true,  false, false, true,  false, false]),
            (ViewApiKeys,          [true, false, true,  true,  true,  true,  true,  true ]),
            (ManageApiKeys,        [true, false, true,  false, false, true,  true,  false]),
            (ViewCases,            [true, true,  true,  true,  true,  false, false, false]),
            (WorkCases,            [true, true,  true,  false, false, false, false, false]),
            (DecideCases,          [true, true,  false, false, false, false, false, false]),
            (ViewDocuments,        [true, true,  false, false, false, false, false, false]),
            (ViewApprovalChains,   [true, true,  true,  true,  true,  false, false, false]),
            (ManageApprovalChains, [true, false, false, false, false, false, false, false]),
            (ViewAudit,            [true, true,  false, false, true,  false, false, false]),
            (ExportAudit,          [true, true,  false, false, false, false, false, false]),
            (ViewDisputes,         [true, true,  true,  true,  true,  false, false, false]),
            (WorkDisputes,         [true, true,  true,  false, false, false, false, false]),
            (ViewTransactions,     [true, true,  true,  true,  true,  true,  true,  true ]),
            (ViewCards,            [true, true,  true,  true,  true,  true,  true,  true ]),
            (ManageCards,          [true, true,  true,  false, false, true,  false, false]),
            (ViewAlerts,           [true, true,  true,  true,  true,  false, false, false]),
            (WorkAlerts,           [true, true,  true,  false, false, false, false, false]),
            (ViewIntegration,      [true, false, true,  true,  true,  true,  true,  true ]),
            (ManageWebhooks,       [true, false, true,  false, false, true,  true,  false]),
            (UseSimulator,         [true, false, false, false, false, true,  true,  false]),
            (ViewPrograms,         [true, true,  true,  true,  true,  true,  true,  true ]),
            (ManagePrograms,       [true, false, true,  false, false, true,  false, false]),
        ];
        assert_eq!(table.len(), Action::ALL.len(), "every action has a row");
        for (action, row) in table {
            for (role, expected) in Role::ALL.iter().zip(row) {
                assert_eq!(
                    allows(*role, *action),
                    *expected,
                    "{} / {}",
                    role.as_str(),
                    action.as_str()
                );
            }
        }
    }

    #[test]
    fn tenant_roles_never_reach_compliance_or_audit() {
        for role in Role::ALL.iter().filter(|r| !r.is_operator()) {
            for a in [
                Action::ViewCases,
                Action::DecideCases,
                Action::ViewAudit,
                Action::ManageOperators,
            ] {
                assert!(!allows(*role, a));
            }
        }
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert_eq!(check_password("elevenchars"), Err(PasswordError::TooShort));
        assert_eq!(check_password("twelve chars"), Ok(()));
        // Characters, not bytes.
        assert_eq!(check_password("ééééééééééé"), Err(PasswordError::TooShort));
        assert_eq!(check_password(&"x".repeat(257)), Err(PasswordError::TooLong));
    }

    #[test]
    fn ten_failures_lock_for_thirty_minutes_then_the_count_restarts() {
        let t0 = Timestamp::from_micros(1_000_000_000);
        let mut g = SignInGuard::default();
        for i in 1..LOCKOUT_AFTER_FAILURES {
            g = g.failed(t0);
            assert_eq!(g.failed_attempts, i);
            assert_eq!(g.locked_at(t0), None);
        }
        g = g.failed(t0);
        assert_eq!(g.locked_at(t0), Some(t0.plus_secs(LOCKOUT_SECS)));
        assert!(g.locked_at(t0.plus_secs(LOCKOUT_SECS - 1)).is_some());
        let later = t0.plus_secs(LOCKOUT_SECS);
        assert_eq!(g.locked_at(later), None);
        let g = g.failed(later);
        assert_eq!(g.failed_attempts, 1);
        assert_eq!(g.succeeded(), SignInGuard::default());
    }

    #[test]
    fn sessions_expire_after_fifteen_idle_minutes() {
        let t0 = Timestamp::from_micros(5_000_000_000);
        let s = SessionClock {
            created_at: t0,
            last_seen_at: t0,
        };
        assert!(!s.expired(t0.plus_secs(SESSION_IDLE_SECS), SESSION_IDLE_SECS));
        assert!(s.expired(t0.plus_secs(SESSION_IDLE_SECS + 1), SESSION_IDLE_SECS));
        let busy = SessionClock {
            created_at: t0,
            last_seen_at: t0.plus_secs(SESSION_MAX_SECS),
        };
        assert!(busy.expired(t0.plus_secs(SESSION_MAX_SECS + 1), SESSION_IDLE_SECS));
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "ada@.com",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
