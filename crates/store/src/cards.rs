use async_trait::async_trait;
use cardplane_domain::Timestamp;
use cardplane_domain::card::Card;
use cardplane_domain::event::Event;
use cardplane_domain::ids::{AccountId, CardId, CardRevealId, CardholderId};
use cardplane_domain::ledger::{Account, BalanceAdjustment, Journal};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::effects::{insert_events, write_effect_records};
use crate::ledger::{BalanceAfter, PostError, write_journal};
use crate::rows::cards::{CARD_COLUMNS, card_from_row};
use crate::sql::{ListSpec, list_page};
use cardplane_domain::audit::AuditRecord;

use crate::{EffectRecords, Scope, SqlStore, StoreError};

/// A new card and what comes with it: its ledger account (absent for a replacement, which shares
/// its predecessor's) and an initial load.
#[derive(Debug, Clone)]
pub struct CardIssue {
    pub card: Card,
    pub new_account: Option<Account>,
    pub initial_load: Option<(BalanceAdjustment, Journal)>,
}

/// A change to an existing card, applied only if it is still at `expected_version`.
#[derive(Debug, Clone)]
pub struct CardChange {
    pub card: Card,
    pub expected_version: i64,
}

/// What a posted journal commits with it, built from the balances it produced.
#[derive(Debug, Clone, Default)]
pub struct Posted {
    pub events: Vec<Event>,
    pub response: Option<EffectRecords>,
    /// The response body, for the caller to send.
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct CardReveal {
    pub id: CardRevealId,
    pub card_id: CardId,
    pub api_key_id: String,
    pub request_id: Option<String>,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait CardStore: Send + Sync {
    /// Issues new cards and changes existing ones atomically (a replacement does both), with
    /// their events and the idempotent response. `Conflict` on `cards_pan_hash` means a PAN
    /// collided: generate another and retry.
    async fn write_cards(
        &self,
        scope: &Scope,
        issues: &[CardIssue],
        changes: &[CardChange],
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), PostError>;
    async fn get_card(&self, scope: &Scope, id: &CardId) -> Result<Card, StoreError>;
    /// Unscoped lookup by the keyed PAN hash (the network sends PANs).
    async fn find_card_by_pan_hash(&self, pan_hash: &str) -> Result<Option<Card>, StoreError>;
    /// Any tenant's card by id (the operations console; callers check who may see it).
    async fn find_card(&self, id: &CardId) -> Result<Card, StoreError>;
    /// The console's card search across tenants, newest first, `limit` rows after the cursor.
    async fn search_cards(&self, search: &CardSearch, limit: u32) -> Result<Vec<Card>, StoreError>;
    async fn list_cards(
        &self,
        scope: &Scope,
        cardholder: Option<&CardholderId>,
        page: &PageRequest,
    ) -> Result<Page<Card>, StoreError>;
    /// All cards of these cardholders, oldest first (for embedding in cardholder responses).
    async fn cards_of(&self, scope: &Scope, cardholders: &[CardholderId]) -> Result<Vec<Card>, StoreError>;
    /// Records a PAN reveal with its events and audit entry, before anything is shown.
    async fn record_reveal(
        &self,
        scope: &Scope,
        reveal: &CardReveal,
        events: &[Event],
        audit: Option<&AuditRecord>,
    ) -> Result<(), StoreError>;
    /// Posts a balance adjustment (or a program funding, with no adjustment row). `finish` sees
    /// the balances the journal produced, inside the transaction, and returns the events and the
    /// idempotent response to commit with it, so both describe what really happened.
    async fn post_adjustment(
        &self,
        scope: &Scope,
        journal: &Journal,
        adjustment: Option<&BalanceAdjustment>,
        finish: &(dyn for<'b> Fn(&'b [(AccountId, BalanceAfter)]) -> Posted + Send + Sync),
        now: Timestamp,
    ) -> Result<Posted, PostError>;
    /// Every card's sealed PAN, for key rotation checks and scans.
    async fn all_sealed_pans(&self) -> Result<Vec<(CardId, String)>, StoreError>;
}

/// The console's card search: every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct CardSearch {
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    pub card_id: Option<String>,
    pub last4: Option<String>,
    pub cardholder_id: Option<String>,
    pub program_id: Option<String>,
    pub state: Option<String>,
    /// Keyset cursor: cards older than this id.
    pub before_id: Option<String>,
}

async fn insert_adjustment(conn: &mut AnyConnection, scope: &Scope, a: &BalanceAdjustment) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO balance_adjustments (id, tenant_id, environment, card_id, direction, amount, currency, description, \
         journal_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(a.id.as_str())
    .bind(scope.tenant_id.as_str())
    .bind(scope.environment.as_str())
    .bind(a.card_id.as_str())
    .bind(a.direction.as_str())
    .bind(a.amount.minor())
    .bind(a.amount.currency().code())
    .bind(a.description.as_str())
    .bind(a.journal_id.as_str())
    .bind(a.created_at.as_micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows per multi-row INSERT: 25 columns x 200 rows stays far below both backends' parameter limits.
const BULK_ROWS: usize = 200;

fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (0..columns).map(|c| format!("${}", r * columns + c + 1)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_accounts(conn: &mut AnyConnection, accounts: &[&Account]) -> Result<(), StoreError> {
    for chunk in accounts.chunks(BULK_ROWS) {
        let sql = format!(
            "INSERT INTO accounts (id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at) VALUES {}",
            placeholders(chunk.len(), 10)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for a in chunk {
            q = q
                .bind(a.id.as_str())
                .bind(a.tenant_id.as_str())
                .bind(a.environment.as_str())
                .bind(a.program.as_str())
                .bind(a.kind.as_str())
                .bind(a.currency.code())
                .bind(a.floor)
                .bind(a.balance)
                .bind(a.held)
                .bind(a.created_at.as_micros());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_cards(conn: &mut AnyConnection, scope: &Scope, cards: &[&Card]) -> Result<(), StoreError> {
    for chunk in cards.chunks(BULK_ROWS) {
        let sql = format!(
            "INSERT INTO cards (id, tenant_id, environment, cardholder_id, program_id, account_id, form_factor, design_key, \
             state, shipping_status, bin, last4, exp_month, exp_year, pan_sealed, pan_hash, replaces, replacement_reason, \
             replaced_by, created_at, updated_at, version, program_ref, network, currency) VALUES {}",
            placeholders(chunk.len(), 25)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in chunk {
            q = q
                .bind(c.id.as_str())
                .bind(scope.tenant_id.as_str())
                .bind(scope.environment.as_str())
                .bind(c.cardholder_id.as_str())
                .bind(c.program.as_str())
                .bind(c.account_id.as_str())
                .bind(c.form_factor.as_str())
                .bind(c.design_key.as_str())
                .bind(c.state.as_str())
                .bind(c.shipping_status.map(|s| s.as_str()))
                .bind(c.bin.as_str())
                .bind(c.last4.as_str())
                .bind(i64::from(c.exp_month))
                .bind(i64::from(c.exp_year))
                .bind(c.pan_sealed.as_str())
                .bind(c.pan_hash.as_str())
                .bind(c.replaces.as_ref().map(|r| r.as_str()))
                .bind(c.replacement_reason.map(|r| r.as_str()))
                .bind(c.replaced_by.as_ref().map(|r| r.as_str()))
                .bind(c.created_at.as_micros())
                .bind(c.updated_at.as_micros())
                .bind(c.version)
                .bind(c.program_ref.as_str())
                .bind(c.network.as_str())
                .bind(c.currency.code());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes new cards inside the caller's transaction: accounts and cards with multi-row inserts
/// (bulk provisioning writes thousands at once), then each initial load as its own journal.
pub(crate) async fn write_card_issues(
    conn: &mut AnyConnection,
    scope: &Scope,
    issues: &[CardIssue],
) -> Result<(), PostError> {
    let accounts: Vec<&Account> = issues.iter().filter_map(|i| i.new_account.as_ref()).collect();
    insert_accounts(conn, &accounts).await?;
    let cards: Vec<&Card> = issues.iter().map(|i| &i.card).collect();
    insert_cards(conn, scope, &cards).await?;
    for (adjustment, journal) in issues.iter().filter_map(|i| i.initial_load.as_ref()) {
        write_journal(conn, journal).await?;
        insert_adjustment(conn, scope, adjustment).await?;
    }
    Ok(())
}

pub(crate) async fn write_card_change(
    conn: &mut AnyConnection,
    scope: &Scope,
    change: &CardChange,
) -> Result<(), StoreError> {
    let c = &change.card;
    let done = sqlx::query(
        "UPDATE cards SET state = $4, shipping_status = $5, replaced_by = $6, updated_at = $7, version = $8 \
         WHERE tenant_id = $1 AND environment = $2 AND id = $3 AND version = $9",
    )
    .bind(scope.tenant_id.as_str())
    .bind(scope.environment.as_str())
    .bind(c.id.as_str())
    .bind(c.state.as_str())
    .bind(c.shipping_status.map(|s| s.as_str()))
    .bind(c.replaced_by.as_ref().map(|r| r.as_str()))
    .bind(c.updated_at.as_micros())
    .bind(c.version)
    .bind(change.expected_version)
    .execute(conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            constraint: "cards_version".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl CardStore for SqlStore {
    async fn write_cards(
        &self,
        scope: &Scope,
        issues: &[CardIssue],
        changes: &[CardChange],
        events: &[Event],
        response: Option<&EffectRecords>,
        now: Timestamp,
    ) -> Result<(), PostError> {
        let mut tx = self.db.writer().begin().await?;
        for change in changes {
            write_card_change(&mut tx, scope, change).await?;
        }
        write_card_issues(&mut tx, scope, issues).await?;
        insert_events(&mut tx, events).await?;
        write_effect_records(&mut tx, scope, response, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_card(&self, scope: &Scope, id: &CardId) -> Result<Card, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CARD_COLUMNS} FROM cards WHERE tenant_id = $1 AND environment = $2 AND id = $3"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        card_from_row(&row)
    }

    async fn find_card_by_pan_hash(&self, pan_hash: &str) -> Result<Option<Card>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CARD_COLUMNS} FROM cards WHERE pan_hash = $1"
        )))
        .bind(pan_hash)
        .fetch_optional(self.db.reader())
        .await?;
        row.as_ref().map(card_from_row).transpose()
    }

    async fn find_card(&self, id: &CardId) -> Result<Card, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(self.db.reader())
            .await?
            .ok_or(StoreError::NotFound)?;
        card_from_row(&row)
    }

    async fn search_cards(&self, search: &CardSearch, limit: u32) -> Result<Vec<Card>, StoreError> {
        let mut f = crate::sql::Filters::default();
        for (clause, v) in [
            ("tenant_id = ?", &search.tenant_id),
            ("environment = ?", &search.environment),
            ("id = ?", &search.card_id),
            ("last4 = ?", &search.last4),
            ("cardholder_id = ?", &search.cardholder_id),
            ("program_id = ?", &search.program_id),
            ("state = ?", &search.state),
            ("id < ?", &search.before_id),
        ] {
            if let Some(v) = v {
                f.add(clause, crate::sql::Bind::Text(v.clone()));
            }
        }
        let sql = format!(
            "SELECT {CARD_COLUMNS} FROM cards{} ORDER BY id DESC LIMIT {}",
            f.sql(),
            i64::from(limit)
        );
        f.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(card_from_row)
            .collect()
    }

    async fn list_cards(
        &self,
        scope: &Scope,
        cardholder: Option<&CardholderId>,
        page: &PageRequest,
    ) -> Result<Page<Card>, StoreError> {
        let spec = ListSpec {
            table: "cards",
            columns: CARD_COLUMNS,
            filter: cardholder.map(|c| ("cardholder_id", c.as_str())),
        };
        list_page(self.db.reader(), spec, scope, page, card_from_row).await
    }

    async fn cards_of(&self, scope: &Scope, cardholders: &[CardholderId]) -> Result<Vec<Card>, StoreError> {
        if cardholders.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..cardholders.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT {CARD_COLUMNS} FROM cards WHERE tenant_id = $1 AND environment = $2 AND cardholder_id IN ({}) ORDER BY id",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(scope.tenant_id.as_str())
            .bind(scope.environment.as_str());
        for c in cardholders {
            q = q.bind(c.as_str());
        }
        q.fetch_all(self.db.reader()).await?.iter().map(card_from_row).collect()
    }

    async fn record_reveal(
        &self,
        scope: &Scope,
        reveal: &CardReveal,
        events: &[Event],
        audit: Option<&AuditRecord>,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.writer().begin().await?;
        sqlx::query(
            "INSERT INTO card_reveals (id, tenant_id, environment, card_id, api_key_id, request_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(reveal.id.as_str())
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(reveal.card_id.as_str())
        .bind(reveal.api_key_id.as_str())
        .bind(reveal.request_id.as_deref())
        .bind(reveal.created_at.as_micros())
        .execute(&mut *tx)
        .await?;
        insert_events(&mut tx, events).await?;
        if let Some(audit) = audit {
            crate::audit::append_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn post_adjustment(
        &self,
        scope: &Scope,
        journal: &Journal,
        adjustment: Option<&BalanceAdjustment>,
        finish: &(dyn for<'b> Fn(&'b [(AccountId, BalanceAfter)]) -> Posted + Send + Sync),
        now: Timestamp,
    ) -> Result<Posted, PostError> {
        let mut tx = self.db.writer().begin().await?;
        let balances = write_journal(&mut tx, journal).await?;
        if let Some(a) = adjustment {
            insert_adjustment(&mut tx, scope, a).await?;
        }
        let posted = finish(&balances);
        insert_events(&mut tx, &posted.events).await?;
        write_effect_records(&mut tx, scope, posted.response.as_ref(), now).await?;
        tx.commit().await?;
        Ok(posted)
    }

    async fn all_sealed_pans(&self) -> Result<Vec<(CardId, String)>, StoreError> {
        sqlx::query("SELECT id, pan_sealed FROM cards ORDER BY id")
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    CardId::parse(&r.try_get::<String, _>("id")?).map_err(StoreError::other)?,
                    r.try_get("pan_sealed")?,
                ))
            })
            .collect()
    }
}
