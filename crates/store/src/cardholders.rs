use async_trait::async_trait;
use cardplane_domain::Environment;
use cardplane_domain::Timestamp;
use cardplane_domain::card_order::{CardOrder, CardOrderStatus};
use cardplane_domain::cardholder::{
    Address, CardOrderRequest, Cardholder, DateOfBirth, DocumentType, Email, Identity, PhoneNumber,
};
use cardplane_domain::event::Event;
use cardplane_domain::ids::{CardId, CardOrderId, CardholderId, KycCheckId, TenantId};
use cardplane_domain::kyc::{AddressReason, FileReason, IdentityReason, KycCheck, KycResult, KycState, KycStatus};
use cardplane_domain::money::{Currency, Money};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::audit::append_audit;
use crate::cards::{CardIssue, write_card_issues};
use crate::compliance::{CaseChange, insert_case_row, write_case_change};
use crate::effects::{insert_events, write_effect_records};
use crate::ledger::PostError;
use crate::sql::{ListSpec, list_page, opt_ts, ts};
use crate::{EffectRecords, Scope, SqlStore, StoreError};
use cardplane_domain::audit::AuditRecord;
use cardplane_domain::compliance::Case;

/// Everything one cardholder change writes, committed together.
pub struct CardholderWrite<'a> {
    pub cardholder: &'a Cardholder,
    pub kyc_check: Option<&'a KycCheck>,
    /// New or changed card orders (upserted by id).
    pub card_orders: &'a [CardOrder],
    /// Cards issued with this change (orders fulfilled).
    pub card_issues: &'a [CardIssue],
    pub events: &'a [Event],
    pub response: Option<&'a EffectRecords>,
    /// Compliance work committed with the change: a case KYC opens, or a reviewer's decision.
    pub review: Option<ReviewWrite<'a>>,
}

/// The compliance side of a cardholder change.
#[derive(Default)]
pub struct ReviewWrite<'a> {
    /// Opened (with its audit entry) unless the cardholder already has an open case.
    pub open_case: Option<(&'a Case, &'a AuditRecord)>,
    pub change: Option<CaseChange<'a>>,
}

#[async_trait]
pub trait CardholderStore: Send + Sync {
    /// `Conflict` on `cardholders_custodian_uid` when the uid is taken in this scope.
    async fn insert_cardholder(
        &self,
        scope: &Scope,
        write: CardholderWrite<'_>,
        now: Timestamp,
    ) -> Result<(), PostError>;
    /// Optimistic: `Conflict` on `cardholders_version` when `expected_version` is stale.
    async fn update_cardholder(
        &self,
        scope: &Scope,
        write: CardholderWrite<'_>,
        expected_version: i64,
        now: Timestamp,
    ) -> Result<(), PostError>;
    async fn get_cardholder(&self, scope: &Scope, id: &CardholderId) -> Result<Cardholder, StoreError>;
    async fn find_cardholder_by_custodian_uid(
        &self,
        scope: &Scope,
        uid: &str,
    ) -> Result<Option<Cardholder>, StoreError>;
    async fn list_cardholders(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Cardholder>, StoreError>;
    async fn list_kyc_checks(
        &self,
        scope: &Scope,
        id: &CardholderId,
        page: &PageRequest,
    ) -> Result<Page<KycCheck>, StoreError>;
    async fn list_card_orders(&self, scope: &Scope, id: &CardholderId) -> Result<Vec<CardOrder>, StoreError>;
    /// Any tenant's cardholder by id (the operations console; callers check who may see it).
    async fn find_cardholder(&self, id: &CardholderId) -> Result<Cardholder, StoreError>;
    /// The console's cardholder search across tenants, newest first, `limit` rows after the cursor.
    async fn search_cardholders(&self, search: &CardholderSearch, limit: u32) -> Result<Vec<Cardholder>, StoreError>;
}

/// The console's cardholder search: every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct CardholderSearch {
    pub tenant_id: Option<String>,
    pub cardholder_id: Option<String>,
    pub custodian_uid: Option<String>,
    /// Exact, as stored (emails are stored normalised).
    pub email: Option<String>,
    /// The last name, case-insensitively.
    pub last_name: Option<String>,
    pub kyc_status: Option<String>,
    /// Keyset cursor: cardholders older than this id.
    pub before_id: Option<String>,
}

const COLUMNS: &str = "id, tenant_id, environment, custodian_uid, first_name, last_name, email, phone_number, \
    date_of_birth, street_one, street_two, locality, region, postal_code, country, document_type, document_last4, \
    document_sealed, kyc_status, kyc_identity_reason, kyc_address_reason, kyc_file_reason, kyc_passed_at, \
    created_at, updated_at, version";

fn corrupt(what: &str) -> StoreError {
    StoreError::corrupt(format!("stored {what} does not parse"))
}

fn kyc_result_from(
    row: &AnyRow,
    status: &str,
    identity: &str,
    address: &str,
    file: &str,
) -> Result<KycResult, StoreError> {
    let status = KycStatus::parse(&row.try_get::<String, _>(status)?).ok_or_else(|| corrupt("kyc status"))?;
    let identity = row
        .try_get::<Option<String>, _>(identity)?
        .map(|r| IdentityReason::parse(&r).ok_or_else(|| corrupt("reason")))
        .transpose()?;
    let address = row
        .try_get::<Option<String>, _>(address)?
        .map(|r| AddressReason::parse(&r).ok_or_else(|| corrupt("reason")))
        .transpose()?;
    let file = row
        .try_get::<Option<String>, _>(file)?
        .map(|r| FileReason::parse(&r).ok_or_else(|| corrupt("reason")))
        .transpose()?;
    KycResult::new(status, identity, address, file).map_err(StoreError::other)
}

fn cardholder_from_row(row: &AnyRow) -> Result<Cardholder, StoreError> {
    let env: String = row.try_get("environment")?;
    let dob: String = row.try_get("date_of_birth")?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let email: String = row.try_get("email")?;
    let phone: String = row.try_get("phone_number")?;
    let document_type: String = row.try_get("document_type")?;
    Ok(Cardholder {
        id: CardholderId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(StoreError::other)?,
        environment: Environment::parse(&env).ok_or_else(|| corrupt("environment"))?,
        custodian_uid: row.try_get("custodian_uid")?,
        email: Email::parse(Some(&email)).map_err(|_| corrupt("email"))?,
        phone: PhoneNumber::parse(Some(&phone)).map_err(|_| corrupt("phone"))?,
        identity: Identity {
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            date_of_birth: DateOfBirth::from_date(time::Date::parse(&dob, &fmt).map_err(|_| corrupt("date of birth"))?),
            address: Address {
                street_one: row.try_get("street_one")?,
                street_two: row.try_get("street_two")?,
                locality: row.try_get("locality")?,
                region: row.try_get("region")?,
                postal_code: row.try_get("postal_code")?,
                country: row.try_get("country")?,
            },
        },
        document_type: DocumentType::parse(&document_type).ok_or_else(|| corrupt("document type"))?,
        document_last4: row.try_get("document_last4")?,
        document_sealed: row.try_get("document_sealed")?,
        kyc: KycState {
            result: kyc_result_from(
                row,
                "kyc_status",
                "kyc_identity_reason",
                "kyc_address_reason",
                "kyc_file_reason",
            )?,
            passed_at: opt_ts(row, "kyc_passed_at")?,
        },
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

async fn write_related(
    conn: &mut AnyConnection,
    scope: &Scope,
    w: &CardholderWrite<'_>,
    now: Timestamp,
) -> Result<(), PostError> {
    write_card_issues(conn, scope, w.card_issues).await?;
    if let Some(check) = w.kyc_check {
        let r = &check.result;
        sqlx::query(
            "INSERT INTO kyc_checks (id, tenant_id, environment, cardholder_id, provider, status, identity_reason, \
             address_reason, file_reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(check.id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(check.cardholder_id.as_str())
        .bind(check.provider.as_str())
        .bind(r.status().as_str())
        .bind(r.identity_reason().map(|x| x.as_str()))
        .bind(r.address_reason().map(|x| x.as_str()))
        .bind(r.file_reason().map(|x| x.as_str()))
        .bind(check.created_at.as_micros())
        .execute(&mut *conn)
        .await?;
    }
    for order in w.card_orders {
        let load = order.request.initial_load;
        sqlx::query(
            "INSERT INTO card_orders (id, tenant_id, environment, cardholder_id, program_id, design_key, \
             initial_load_currency, initial_load_amount, status, created_at, updated_at, card_id, failure_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, \
             card_id = excluded.card_id, failure_reason = excluded.failure_reason",
        )
        .bind(order.id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(order.cardholder_id.as_str())
        .bind(order.request.program_id.as_str())
        .bind(order.request.design_key.as_deref())
        .bind(load.map(|m| m.currency().code().to_owned()))
        .bind(load.map(|m| m.minor()))
        .bind(order.status.as_str())
        .bind(order.created_at.as_micros())
        .bind(order.updated_at.as_micros())
        .bind(order.card_id.as_ref().map(|c| c.as_str()))
        .bind(order.failure_reason.as_deref())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(review) = &w.review {
        // The change first: a case it closes makes room for the one this write opens (a
        // cardholder has one open case at most).
        if let Some(change) = &review.change {
            write_case_change(conn, change).await?;
        }
        if let Some((case, audit)) = review.open_case
            && insert_case_row(conn, case).await?
        {
            append_audit(conn, audit).await?;
        }
    }
    insert_events(conn, w.events).await?;
    Ok(write_effect_records(conn, scope, w.response, now).await?)
}

fn bind_cardholder<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    c: &'q Cardholder,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let r = &c.kyc.result;
    let a = &c.identity.address;
    q.bind(c.custodian_uid.as_deref())
        .bind(c.identity.first_name.as_str())
        .bind(c.identity.last_name.as_str())
        .bind(c.email.as_str())
        .bind(c.phone.e164())
        .bind(c.identity.date_of_birth.to_iso())
        .bind(a.street_one.as_str())
        .bind(a.street_two.as_deref())
        .bind(a.locality.as_str())
        .bind(a.region.as_str())
        .bind(a.postal_code.as_str())
        .bind(a.country.as_str())
        .bind(c.document_type.as_str())
        .bind(c.document_last4.as_str())
        .bind(c.document_sealed.as_str())
        .bind(r.status().as_str())
        .bind(r.identity_reason().map(|x| x.as_str()))
        .bind(r.address_reason().map(|x| x.as_str()))
        .bind(r.file_reason().map(|x| x.as_str()))
        .bind(c.kyc.passed_at.map(Timestamp::as_micros))
        .bind(c.updated_at.as_micros())
        .bind(c.version)
}

#[async_trait]
impl CardholderStore for SqlStore {
    async fn insert_cardholder(&self, scope: &Scope, w: CardholderWrite<'_>, now: Timestamp) -> Result<(), PostError> {
        let c = w.cardholder;
        let mut tx = self.db.writer().begin().await?;
        let q = sqlx::query(
            "INSERT INTO cardholders (custodian_uid, first_name, last_name, email, phone_number, date_of_birth, \
             street_one, street_two, locality, region, postal_code, country, document_type, document_last4, \
             document_sealed, kyc_status, kyc_identity_reason, kyc_address_reason, kyc_file_reason, kyc_passed_at, \
             updated_at, version, id, tenant_id, environment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26)",
        );
        bind_cardholder(q, c)
            .bind(c.id.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(c.created_at.as_micros())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        write_related(&mut tx, scope, &w, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_cardholder(
        &self,
        scope: &Scope,
        w: CardholderWrite<'_>,
        expected_version: i64,
        now: Timestamp,
    ) -> Result<(), PostError> {
        let c = w.cardholder;
        let mut tx = self.db.writer().begin().await?;
        let q = sqlx::query(
            "UPDATE cardholders SET custodian_uid = $1, first_name = $2, last_name = $3, email = $4, phone_number = $5, \
             date_of_birth = $6, street_one = $7, street_two = $8, locality = $9, region = $10, postal_code = $11, \
             country = $12, document_type = $13, document_last4 = $14, document_sealed = $15, kyc_status = $16, \
             kyc_identity_reason = $17, kyc_address_reason = $18, kyc_file_reason = $19, kyc_passed_at = $20, \
             updated_at = $21, version = $22 \
             WHERE id = $23 AND tenant_id = $24 AND environment = $25 AND version = $26",
        );
        let done = bind_cardholder(q, c)
            .bind(c.id.as_str())
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(expected_version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict {
                constraint: "cardholders_version".into(),
            }
            .into());
        }
        write_related(&mut tx, scope, &w, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_cardholder(&self, scope: &Scope, id: &CardholderId) -> Result<Cardholder, StoreError> {
        let sql = "SELECT id, tenant_id, environment, custodian_uid, first_name, last_name, email, phone_number, \
            date_of_birth, street_one, street_two, locality, region, postal_code, country, document_type, document_last4, \
            document_sealed, kyc_status, kyc_identity_reason, kyc_address_reason, kyc_file_reason, kyc_passed_at, \
            created_at, updated_at, version FROM cardholders WHERE tenant_id = $1 AND environment = $2 AND id = $3";
        let row = sqlx::query(sql)
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(id.as_str())
            .fetch_optional(self.db.reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        cardholder_from_row(&row)
    }

    async fn find_cardholder_by_custodian_uid(
        &self,
        scope: &Scope,
        uid: &str,
    ) -> Result<Option<Cardholder>, StoreError> {
        let sql = "SELECT id, tenant_id, environment, custodian_uid, first_name, last_name, email, phone_number, \
            date_of_birth, street_one, street_two, locality, region, postal_code, country, document_type, document_last4, \
            document_sealed, kyc_status, kyc_identity_reason, kyc_address_reason, kyc_file_reason, kyc_passed_at, \
            created_at, updated_at, version FROM cardholders WHERE tenant_id = $1 AND environment = $2 AND custodian_uid = $3";
        // The writer sees the newest committed state on SQLite; on PostgreSQL it is the same pool.
        let row = sqlx::query(sql)
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str())
            .bind(uid)
            .fetch_optional(self.db.reader())
            .await?;
        row.as_ref().map(cardholder_from_row).transpose()
    }

    async fn list_cardholders(&self, scope: &Scope, page: &PageRequest) -> Result<Page<Cardholder>, StoreError> {
        let spec = ListSpec {
            table: "cardholders",
            columns: COLUMNS,
            filter: None,
        };
        list_page(self.db.reader(), spec, scope, page, cardholder_from_row).await
    }

    async fn find_cardholder(&self, id: &CardholderId) -> Result<Cardholder, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM cardholders WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        cardholder_from_row(&row)
    }

    async fn search_cardholders(&self, search: &CardholderSearch, limit: u32) -> Result<Vec<Cardholder>, StoreError> {
        let mut f = crate::sql::Filters::default();
        for (clause, v) in [
            ("tenant_id = ?", &search.tenant_id),
            ("id = ?", &search.cardholder_id),
            ("custodian_uid = ?", &search.custodian_uid),
            ("email = ?", &search.email),
            ("LOWER(last_name) = LOWER(?)", &search.last_name),
            ("kyc_status = ?", &search.kyc_status),
            ("id < ?", &search.before_id),
        ] {
            if let Some(v) = v {
                f.add(clause, crate::sql::Bind::Text(v.clone()));
            }
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM cardholders{} ORDER BY id DESC LIMIT {}",
            f.sql(),
            i64::from(limit)
        );
        f.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(cardholder_from_row)
            .collect()
    }

    async fn list_kyc_checks(
        &self,
        scope: &Scope,
        id: &CardholderId,
        page: &PageRequest,
    ) -> Result<Page<KycCheck>, StoreError> {
        let spec = ListSpec {
            table: "kyc_checks",
            columns: "id, cardholder_id, provider, status, identity_reason, address_reason, file_reason, created_at",
            filter: Some(("cardholder_id", id.as_str())),
        };
        list_page(self.db.reader(), spec, scope, page, |row| {
            Ok(KycCheck {
                id: KycCheckId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
                cardholder_id: CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?)
                    .map_err(StoreError::other)?,
                provider: row.try_get("provider")?,
                result: kyc_result_from(row, "status", "identity_reason", "address_reason", "file_reason")?,
                created_at: ts(row, "created_at")?,
            })
        })
        .await
    }

    async fn list_card_orders(&self, scope: &Scope, id: &CardholderId) -> Result<Vec<CardOrder>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, cardholder_id, program_id, design_key, initial_load_currency, initial_load_amount, status, \
             card_id, failure_reason, created_at, updated_at FROM card_orders WHERE tenant_id = $1 AND environment = $2 AND cardholder_id = $3 \
             ORDER BY id",
        )
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|row| {
                let currency: Option<String> = row.try_get("initial_load_currency")?;
                let amount: Option<i64> = row.try_get("initial_load_amount")?;
                let initial_load = match (currency, amount) {
                    (Some(c), Some(a)) => Some(Money::new(a, Currency::parse(&c).map_err(|_| corrupt("currency"))?)),
                    _ => None,
                };
                let status: String = row.try_get("status")?;
                Ok(CardOrder {
                    id: CardOrderId::parse(&row.try_get::<String, _>("id")?).map_err(StoreError::other)?,
                    cardholder_id: CardholderId::parse(&row.try_get::<String, _>("cardholder_id")?)
                        .map_err(StoreError::other)?,
                    request: CardOrderRequest {
                        program_id: row.try_get("program_id")?,
                        design_key: row.try_get("design_key")?,
                        initial_load,
                    },
                    status: CardOrderStatus::parse(&status).ok_or_else(|| corrupt("card order status"))?,
                    card_id: row
                        .try_get::<Option<String>, _>("card_id")?
                        .map(|c| CardId::parse(&c).map_err(StoreError::other))
                        .transpose()?,
                    failure_reason: row.try_get("failure_reason")?,
                    created_at: ts(row, "created_at")?,
                    updated_at: ts(row, "updated_at")?,
                })
            })
            .collect()
    }
}
