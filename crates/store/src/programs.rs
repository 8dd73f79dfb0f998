use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::controls::SpendLimit;
use cardplane_domain::event::Event;
use cardplane_domain::ids::ProgramId;
use cardplane_domain::ledger::{Account, AccountKind};
use cardplane_domain::page::{Page, PageRequest};
use cardplane_domain::program::MerchantRules;
use cardplane_domain::program::{CustodianConfig, Program, StandInPolicy};
use sqlx::{AnyConnection, Row};

use crate::effects::{insert_events, write_effect_records};
use crate::ledger::insert_account;
use crate::rows::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::rows::programs::{PROGRAM_COLUMNS, program_from_row};
use crate::sql::{ListSpec, list_page};
use crate::{EffectRecords, Scope, SqlStore, StoreError};

/// Why a program could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProgramWriteError {
    #[error("program_id is taken")]
    ProgramIdTaken,
    #[error("the BIN overlaps another program's")]
    BinOverlap,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProgramWriteError {
    fn from(e: sqlx::Error) -> Self {
        ProgramWriteError::Store(e.into())
    }
}

/// The console's program list: every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct ProgramSearch {
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    /// Cardplane's id (`prog_...`).
    pub id: Option<String>,
    /// Keyset cursor: programs older than this id.
    pub before_id: Option<String>,
}

/// A program with the stamp its authorization rules carry (moved by every rule change).
#[derive(Debug, Clone)]
pub struct ProgramListing {
    pub program: Program,
    pub rules_version: i64,
}

#[async_trait]
pub trait ProgramStore: Send + Sync {
    /// Creates a program with its ledger accounts, refusing a BIN that overlaps any program's in
    /// the same environment (BIN ranges are platform-wide).
    async fn insert_program(
        &self,
        scope: &Scope,
        program: &Program,
        accounts: &[Account],
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), ProgramWriteError>;
    async fn update_program(
        &self,
        scope: &Scope,
        program: &Program,
        expected_updated_at: Timestamp,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn get_program_by_ref(&self, scope: &Scope, program_id: &str) -> Result<Program, StoreError>;
    async fn get_program(&self, scope: &Scope, id: &ProgramId) -> Result<Program, StoreError>;
    async fn list_programs(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Program>, StoreError>;
    async fn program_account(&self, scope: &Scope, id: &ProgramId, kind: AccountKind) -> Result<Account, StoreError>;
    /// Across tenants, newest first, at most `limit`.
    async fn search_programs(&self, search: &ProgramSearch, limit: u32) -> Result<Vec<ProgramListing>, StoreError>;
}

fn rules_to_json(r: &MerchantRules) -> String {
    serde_json::json!({
        "allowed_mccs": r.allowed_mccs, "blocked_mccs": r.blocked_mccs,
        "allowed_countries": r.allowed_countries, "blocked_countries": r.blocked_countries,
    })
    .to_string()
}

fn custodian_to_json(c: &Option<CustodianConfig>) -> Option<String> {
    c.as_ref().map(|c| {
        let stand_in = match c.stand_in {
            StandInPolicy::Decline => serde_json::json!({"policy": "decline"}),
            StandInPolicy::ApproveUpTo(n) => serde_json::json!({"policy": "approve_up_to", "amount": n}),
        };
        serde_json::json!({"url": c.url, "secret_sealed": c.secret_sealed, "deadline_ms": c.deadline_ms, "stand_in": stand_in})
            .to_string()
    })
}

fn controls_to_json(controls: &[SpendLimit]) -> String {
    let list: Vec<serde_json::Value> = controls
        .iter()
        .map(|c| {
            serde_json::json!({
                "amount_limit": c.amount_limit,
                "count_limit": c.count_limit,
                "window": c.window.as_str(),
                "window_secs": c.window.trailing_secs(),
                "mccs": c.mccs,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

async fn bin_taken(conn: &mut AnyConnection, environment: Environment, bin: &str) -> Result<bool, StoreError> {
    // Overlap = one BIN is a prefix of the other. BINs are digits only, so LIKE has no wildcards to escape.
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM programs WHERE environment = $1 AND (bin LIKE $2 || '%' OR $2 LIKE bin || '%')",
    )
    .bind(environment.as_str())
    .bind(bin)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

#[async_trait]
impl ProgramStore for SqlStore {
    async fn insert_program(
        &self,
        scope: &Scope,
        p: &Program,
        accounts: &[Account],
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), ProgramWriteError> {
        let mut tx = self.db.writer().begin().await?;
        // Serialise BIN checks per environment across processes: this row lock is held to commit.
        sqlx::query("UPDATE bin_registry_locks SET version = version + 1 WHERE environment = $1")
            .bind(scope.environment.as_str())
            .execute(&mut *tx)
            .await?;
        if bin_taken(&mut tx, scope.environment, &p.bin).await? {
            return Err(ProgramWriteError::BinOverlap);
        }
        let form_factors: Vec<&str> = p.form_factors.iter().map(|f| f.as_str()).collect();
        let inserted = sqlx::query(
            "INSERT INTO programs (id, tenant_id, environment, program_id, name, network, bin, currency, card_lifetime_years, \
             form_factors, design_keys, funding_model, spend_controls, minimum_cardholder_age, kyc_required, status, created_at, updated_at, \
             merchant_rules, custodian, risk_alert_threshold) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(p.id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(p.program_id.as_str())
        .bind(p.name.as_str())
        .bind(p.network.as_str())
        .bind(p.bin.as_str())
        .bind(p.currency.code())
        .bind(i64::from(p.card_lifetime_years))
        .bind(form_factors.join(","))
        .bind(serde_json::to_string(&p.design_keys).unwrap_or_default())
        .bind(p.funding_model.as_str())
        .bind(controls_to_json(&p.spend_controls))
        .bind(i64::from(p.minimum_cardholder_age))
        .bind(i16::from(p.kyc_required))
        .bind(p.status.as_str())
        .bind(p.created_at.as_micros())
        .bind(p.updated_at.as_micros())
        .bind(rules_to_json(&p.merchant_rules))
        .bind(custodian_to_json(&p.custodian))
        .bind(p.risk_alert_threshold)
        .execute(&mut *tx)
        .await;
        match inserted.map_err(StoreError::from) {
            Err(e) if e.is_conflict_on("programs_ref", "program_id") => return Err(ProgramWriteError::ProgramIdTaken),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        for a in accounts {
            insert_account(&mut tx, a).await?;
        }
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_program(
        &self,
        scope: &Scope,
        p: &Program,
        expected_updated_at: Timestamp,
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        let form_factors: Vec<&str> = p.form_factors.iter().map(|f| f.as_str()).collect();
        let done = sqlx::query(
            "UPDATE programs SET name = $4, card_lifetime_years = $5, form_factors = $6, design_keys = $7, spend_controls = $8, \
             minimum_cardholder_age = $9, kyc_required = $10, status = $11, updated_at = $12, merchant_rules = $14, \
             custodian = $15, risk_alert_threshold = $16 WHERE tenant_id = $1 AND environment = $2 AND id = $3 AND updated_at = $13",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(p.id.as_str())
        .bind(p.name.as_str())
        .bind(i64::from(p.card_lifetime_years))
        .bind(form_factors.join(","))
        .bind(serde_json::to_string(&p.design_keys).unwrap_or_default())
        .bind(controls_to_json(&p.spend_controls))
        .bind(i64::from(p.minimum_cardholder_age))
        .bind(i16::from(p.kyc_required))
        .bind(p.status.as_str())
        .bind(p.updated_at.as_micros())
        .bind(expected_updated_at.as_micros())
        .bind(rules_to_json(&p.merchant_rules))
        .bind(custodian_to_json(&p.custodian))
        .bind(p.risk_alert_threshold)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict {
                constraint: "programs_version".into(),
            });
        }
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_program_by_ref(&self, scope: &Scope, program_id: &str) -> Result<Program, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROGRAM_COLUMNS} FROM programs WHERE tenant_id = $1 AND environment = $2 AND program_id = $3"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(program_id)
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        program_from_row(&row)
    }

    async fn get_program(&self, scope: &Scope, id: &ProgramId) -> Result<Program, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PROGRAM_COLUMNS} FROM programs WHERE tenant_id = $1 AND environment = $2 AND id = $3"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        program_from_row(&row)
    }

    async fn list_programs(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Program>, StoreError> {
        let spec = ListSpec {
            table: "programs",
            columns: PROGRAM_COLUMNS,
            filter: None,
        };
        list_page(self.db.reader(), spec, scope, page, program_from_row).await
    }

    async fn program_account(&self, scope: &Scope, id: &ProgramId, kind: AccountKind) -> Result<Account, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE tenant_id = $1 AND environment = $2 AND program_id = $3 AND kind = $4"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .bind(kind.as_str())
        .fetch_optional(self.db.writer())
        .await?
        .ok_or(StoreError::NotFound)?;
        account_from_row(&row)
    }

    async fn search_programs(&self, search: &ProgramSearch, limit: u32) -> Result<Vec<ProgramListing>, StoreError> {
        let mut f = crate::sql::Filters::default();
        for (clause, v) in [
            ("tenant_id = ?", &search.tenant_id),
            ("environment = ?", &search.environment),
            ("id = ?", &search.id),
            ("id < ?", &search.before_id),
        ] {
            if let Some(v) = v {
                f.add(clause, crate::sql::Bind::Text(v.clone()));
            }
        }
        let sql = format!(
            "SELECT {PROGRAM_COLUMNS}, rules_version FROM programs{} ORDER BY id DESC LIMIT {}",
            f.sql(),
            i64::from(limit)
        );
        f.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(|row| {
                Ok(ProgramListing {
                    program: program_from_row(row)?,
                    rules_version: row.try_get("rules_version")?,
                })
            })
            .collect()
    }
}
