//! Operators, tenant users and their sessions. Every change that matters to security is written
//! with its audit entry in one transaction.

use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::ids::{SessionId, TenantId, UserId};
use cardplane_domain::people::{OperatorRole, Person, Role, SignInGuard, TenantRole};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::append_audit;
use crate::sql::{opt_ts, ts};
use crate::{SqlStore, StoreError};

/// A person with the secrets sign-in needs (never rendered).
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub person: Person,
    pub password_hash: String,
    /// The TOTP secret, sealed by the vault; set once enrolment is confirmed.
    pub totp_sealed: Option<String>,
    /// A secret handed out for enrolment and not confirmed yet.
    pub totp_pending: Option<String>,
    pub totp_last_step: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub csrf_hash: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
}

/// A successful sign-in: the second factor it consumed and the session it opens.
pub struct SignIn<'a> {
    pub user_id: &'a UserId,
    pub totp_step: Option<i64>,
    pub recovery_code_hash: Option<&'a str>,
    pub token_hash: &'a str,
    pub session: &'a SessionRecord,
    pub origin_ip: Option<&'a str>,
    pub audit: &'a AuditRecord,
}

/// What an administrator may change about a person.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub name: Option<String>,
}

#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// `Conflict` on `users_email` when the email is taken.
    async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> Result<(), StoreError>;
    async fn get_user(&self, id: &UserId) -> Result<UserRecord, StoreError>;
    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Operators when `tenant` is `None`, else that tenant's users; oldest first.
    async fn list_users(&self, tenant: Option<&TenantId>) -> Result<Vec<Person>, StoreError>;
    /// Applies `change`; disabling or a role change ends the person's sessions.
    async fn update_user(
        &self,
        id: &UserId,
        change: &UserChange,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<Person, StoreError>;
    async fn record_failed_sign_in(
        &self,
        id: Option<&UserId>,
        guard: SignInGuard,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// `Conflict` on `totp_replay` or `recovery_code_used` when the factor was consumed meanwhile.
    async fn record_sign_in(&self, sign_in: SignIn<'_>, now: Timestamp) -> Result<(), StoreError>;
    async fn set_pending_totp(&self, id: &UserId, sealed: &str, now: Timestamp) -> Result<(), StoreError>;
    async fn enable_totp(
        &self,
        id: &UserId,
        sealed: &str,
        step: i64,
        recovery_code_hashes: &[String],
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Sets a new password hash and ends every other session of the person.
    async fn set_password(
        &self,
        id: &UserId,
        hash: &str,
        keep_session: Option<&SessionId>,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// An administrator's reset: a new password, the lock lifted, the second factor and recovery
    /// codes removed (the person enrols again), every session ended.
    async fn reset_credentials(
        &self,
        id: &UserId,
        hash: &str,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    async fn find_session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    async fn touch_session(&self, token_hash: &str, now: Timestamp) -> Result<(), StoreError>;
    async fn delete_session(&self, token_hash: &str, audit: Option<&AuditRecord>) -> Result<(), StoreError>;
    async fn count_unused_recovery_codes(&self, id: &UserId) -> Result<i64, StoreError>;
}

const USER_COLUMNS: &str = "id, tenant_id, email, name, role, password_hash, totp_sealed, totp_pending, \
     totp_last_step, failed_attempts, locked_until, disabled, created_at, updated_at, last_login_at";

pub fn role_from(raw: &str, tenant: bool) -> Option<Role> {
    if tenant {
        TenantRole::parse(raw).map(Role::Tenant)
    } else {
        OperatorRole::parse(raw).map(Role::Operator)
    }
}

fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    let tenant: Option<String> = row.try_get("tenant_id")?;
    let tenant_id = tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(StoreError::other)?;
    let role = role_from(&row.try_get::<String, _>("role")?, tenant_id.is_some())
        .ok_or_else(|| StoreError::corrupt("user role"))?;
    let totp_sealed: Option<String> = row.try_get("totp_sealed")?;
    Ok(UserRecord {
        person: Person {
            id: UserId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            role,
            tenant_id,
            disabled: row.try_get::<i16, _>("disabled")? != 0,
            mfa_enabled: totp_sealed.is_some(),
            guard: SignInGuard {
                failed_attempts: row.try_get("failed_attempts")?,
                locked_until: opt_ts(row, "locked_until")?,
            },
            created_at: ts(row, "created_at")?,
            last_login_at: opt_ts(row, "last_login_at")?,
        },
        password_hash: row.try_get("password_hash")?,
        totp_sealed,
        totp_pending: row.try_get("totp_pending")?,
        totp_last_step: row.try_get("totp_last_step")?,
    })
}

fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: SessionId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        user_id: UserId::parse(&row.try_get::<String, _>("user_id")?).map_err(StoreError::other)?,
        csrf_hash: row.try_get("csrf_hash")?,
        created_at: ts(row, "created_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
    })
}

/// A new person, inside the caller's transaction; `Conflict` when the email is taken.
pub(crate) async fn insert_user_row(conn: &mut sqlx::AnyConnection, user: &UserRecord) -> Result<(), StoreError> {
    let p = &user.person;
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, name, role, password_hash, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(p.id.as_str())
    .bind(p.tenant_id.as_ref().map(|t| t.as_str()))
    .bind(p.email.as_str())
    .bind(p.name.as_str())
    .bind(p.role.as_str())
    .bind(user.password_hash.as_str())
    .bind(i16::from(p.disabled))
    .bind(p.created_at.as_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl PeopleStore for SqlStore {
    async fn insert_user(&self, user: &UserRecord, audit: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        insert_user_row(&mut tx, user).await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, id: &UserId) -> Result<UserRecord, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.db.writer())
        .await?
        .ok_or(StoreError::NotFound)?;
        user_from_row(&row)
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        // The writer: sign-in must see the failure count the previous attempt just wrote.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        )))
        .bind(email)
        .fetch_optional(self.db.writer())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, tenant: Option<&TenantId>) -> Result<Vec<Person>, StoreError> {
        let rows = match tenant {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE tenant_id IS NULL ORDER BY id"
                )))
                .fetch_all(self.db.reader())
                .await?
            }
            Some(t) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY id"
                )))
                .bind(t.as_str())
                .fetch_all(self.db.reader())
                .await?
            }
        };
        rows.iter().map(|r| user_from_row(r).map(|u| u.person)).collect()
    }

    async fn update_user(
        &self,
        id: &UserId,
        change: &UserChange,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<Person, StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
             name = COALESCE($4, name), updated_at = $5 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(change.role.map(Role::as_str))
        .bind(change.disabled.map(i16::from))
        .bind(change.name.as_deref())
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        if change.role.is_some() || change.disabled == Some(true) {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        append_audit(&mut tx, audit).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let person = user_from_row(&row)?.person;
        tx.commit().await?;
        Ok(person)
    }

    async fn record_failed_sign_in(
        &self,
        id: Option<&UserId>,
        guard: SignInGuard,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        if let Some(id) = id {
            sqlx::query("UPDATE users SET failed_attempts = $2, locked_until = $3 WHERE id = $1")
                .bind(id.as_str())
                .bind(guard.failed_attempts)
                .bind(guard.locked_until.map(Timestamp::as_micros))
                .execute(&mut *tx)
                .await?;
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_sign_in(&self, s: SignIn<'_>, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        if let Some(step) = s.totp_step {
            // Conditional: two sign-ins racing with one code cannot both win.
            let done = sqlx::query(
                "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            )
            .bind(s.user_id.as_str())
            .bind(step)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict {
                    constraint: "totp_replay".into(),
                });
            }
        }
        if let Some(hash) = s.recovery_code_hash {
            let done = sqlx::query(
                "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            )
            .bind(s.user_id.as_str())
            .bind(hash)
            .bind(now.as_micros())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict {
                    constraint: "recovery_code_used".into(),
                });
            }
        }
        sqlx::query("UPDATE users SET failed_attempts = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1")
            .bind(s.user_id.as_str())
            .bind(now.as_micros())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, id, user_id, csrf_hash, origin_ip, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.token_hash)
        .bind(s.session.id.as_str())
        .bind(s.user_id.as_str())
        .bind(s.session.csrf_hash.as_str())
        .bind(s.origin_ip)
        .bind(s.session.created_at.as_micros())
        .bind(s.session.last_seen_at.as_micros())
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, s.audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_pending_totp(&self, id: &UserId, sealed: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET totp_pending = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(sealed)
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn enable_totp(
        &self,
        id: &UserId,
        sealed: &str,
        step: i64,
        recovery_code_hashes: &[String],
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "UPDATE users SET totp_sealed = $2, totp_pending = NULL, totp_last_step = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(sealed)
        .bind(step)
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        for hash in recovery_code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(id.as_str())
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?;
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_password(
        &self,
        id: &UserId,
        hash: &str,
        keep_session: Option<&SessionId>,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $2, failed_attempts = 0, locked_until = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(hash)
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(id.as_str())
            .bind(keep_session.map(|s| s.as_str()).unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn reset_credentials(
        &self,
        id: &UserId,
        hash: &str,
        now: Timestamp,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let done = sqlx::query(
            "UPDATE users SET password_hash = $2, failed_attempts = 0, locked_until = NULL, totp_sealed = NULL, \
             totp_pending = NULL, totp_last_step = NULL, updated_at = $3 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(hash)
        .bind(now.as_micros())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        for sql in [
            "DELETE FROM recovery_codes WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await?;
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row =
            sqlx::query("SELECT id, user_id, csrf_hash, created_at, last_seen_at FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.db.writer())
                .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(&self, token_hash: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2")
            .bind(token_hash)
            .bind(now.as_micros())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str, audit: Option<&AuditRecord>) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        if let Some(a) = audit {
            append_audit(&mut tx, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn count_unused_recovery_codes(&self, id: &UserId) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(id.as_str())
                .fetch_one(self.db.reader())
                .await?
                .try_get("n")?,
        )
    }
}
