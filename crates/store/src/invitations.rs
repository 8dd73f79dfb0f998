//! Portal invitations (sign-ups and teammates). Accepting one claims it and creates what it
//! promised (the tenant and its first keys, the person) with the audit entry in one
//! transaction, so a link can never be used twice and never half-works.

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::api_key::ApiKey;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{InvitationId, TenantId, UserId};
use cardplane_domain::invitation::{Invitation, InvitationKind};
use cardplane_domain::people::TenantRole;
use cardplane_domain::tenant::Tenant;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::append_audit;
use crate::people::{UserRecord, insert_user_row};
use crate::sql::opt_ts;
use crate::tenants::insert_tenant_rows;
use crate::{SqlStore, StoreError};

/// What accepting a sign-up creates besides the person: the tenant, its keys and their events.
pub struct NewTenant<'a> {
    pub tenant: &'a Tenant,
    pub keys: &'a [ApiKey],
    pub events: &'a [Event],
}

#[async_trait]
pub trait InvitationStore: Send + Sync {
    async fn insert_invitation(
        &self,
        invitation: &Invitation,
        token_hash: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<(), StoreError>;
    async fn find_invitation(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError>;
    /// A tenant's teammate invitations, newest first (at most `limit`).
    async fn list_invitations(&self, tenant: &TenantId, limit: u32) -> Result<Vec<Invitation>, StoreError>;
    /// Withdraws a pending invitation of this tenant; `NotFound` if there is none.
    async fn revoke_invitation(
        &self,
        tenant: &TenantId,
        id: &InvitationId,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Claims a usable invitation and creates the person (and for a sign-up the tenant):
    /// `NotFound` if it was used, withdrawn or expired meanwhile, `Conflict` if the email is taken.
    async fn accept_invitation(
        &self,
        id: &InvitationId,
        now: Timestamp,
        tenant: Option<NewTenant<'_>>,
        user: &UserRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
}

const COLUMNS: &str = "id, kind, email, tenant_id, role, company_name, invited_by, created_at, expires_at, \
     accepted_at, revoked_at";

fn invitation_from_row(row: &AnyRow) -> Result<Invitation, StoreError> {
    let corrupt = |what: &str| StoreError::corrupt(what);
    Ok(Invitation {
        id: InvitationId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        kind: InvitationKind::parse(&row.try_get::<String, _>("kind")?).ok_or_else(|| corrupt("invitation kind"))?,
        email: row.try_get("email")?,
        tenant_id: row
            .try_get::<Option<String>, _>("tenant_id")?
            .map(|t| TenantId::parse(&t).map_err(StoreError::other))
            .transpose()?,
        role: TenantRole::parse(&row.try_get::<String, _>("role")?).ok_or_else(|| corrupt("invitation role"))?,
        company_name: row.try_get("company_name")?,
        invited_by: row
            .try_get::<Option<String>, _>("invited_by")?
            .map(|u| UserId::parse(&u).map_err(StoreError::other))
            .transpose()?,
        created_at: Timestamp::from_micros(row.try_get("created_at")?),
        expires_at: Timestamp::from_micros(row.try_get("expires_at")?),
        accepted_at: opt_ts(row, "accepted_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

#[async_trait]
impl InvitationStore for SqlStore {
    async fn insert_invitation(
        &self,
        inv: &Invitation,
        token_hash: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "INSERT INTO portal_invitations (id, token_hash, kind, email, tenant_id, role, company_name, invited_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(inv.id.as_str())
        .bind(token_hash)
        .bind(inv.kind.as_str())
        .bind(inv.email.as_str())
        .bind(inv.tenant_id.as_ref().map(|t| t.as_str()))
        .bind(inv.role.as_str())
        .bind(inv.company_name.as_deref())
        .bind(inv.invited_by.as_ref().map(|u| u.as_str()))
        .bind(inv.created_at.as_micros())
        .bind(inv.expires_at.as_micros())
        .execute(&mut *tx)
        .await?;
        if let Some(audit) = audit {
            append_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_invitation(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM portal_invitations WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(self.db.writer())
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn list_invitations(&self, tenant: &TenantId, limit: u32) -> Result<Vec<Invitation>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM portal_invitations WHERE tenant_id = $1 AND kind = 'teammate' \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(tenant.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.db.reader())
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    async fn revoke_invitation(
        &self,
        tenant: &TenantId,
        id: &InvitationId,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE portal_invitations SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(tenant.as_str())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn accept_invitation(
        &self,
        id: &InvitationId,
        now: Timestamp,
        tenant: Option<NewTenant<'_>>,
        user: &UserRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let claimed = sqlx::query(
            "UPDATE portal_invitations SET accepted_at = $2 WHERE id = $1 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(id.as_str())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        if let Some(t) = tenant {
            insert_tenant_rows(&mut tx, t.tenant, t.keys, t.events).await?;
            // A sign-up's tenant exists only now: the invitation records which it became.
            sqlx::query("UPDATE portal_invitations SET tenant_id = $2 WHERE id = $1")
                .bind(id.as_str())
                .bind(t.tenant.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        insert_user_row(&mut tx, user).await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
