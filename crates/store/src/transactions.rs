//! Card transactions as read by the API. They are written only by the authorization engine's
//! batches (`network_batch`).

use async_trait::async_trait;
use cardplane_domain::authorization::Transaction;
use cardplane_domain::ids::{CardId, CardholderId, TransactionId};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::AssertSqlSafe;

use crate::rows::transactions::{COLUMNS, transaction_from_row};
use crate::sql::{Bind, Filters, ListSpec, list_page};
use crate::{Scope, SqlStore, StoreError};

#[async_trait]
pub trait TransactionStore: Send + Sync {
    async fn get_transaction(&self, scope: &Scope, id: &TransactionId) -> Result<Transaction, StoreError>;
    async fn list_transactions(
        &self,
        scope: &Scope,
        filter: TransactionFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, StoreError>;
    /// Any tenant's transaction by id (the operations console; callers check who may see it).
    async fn find_transaction(&self, id: &TransactionId) -> Result<Transaction, StoreError>;
    /// The console's search across tenants, newest first, `limit` rows after the cursor.
    async fn search_transactions(&self, search: &TransactionSearch, limit: u32)
    -> Result<Vec<Transaction>, StoreError>;
}

/// The console's transaction search: every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct TransactionSearch {
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    pub card_id: Option<String>,
    /// The card's last four digits (through the cards table; never a full PAN).
    pub last4: Option<String>,
    pub cardholder_id: Option<String>,
    pub program_id: Option<String>,
    pub state: Option<String>,
    pub decline_reason: Option<String>,
    pub mcc: Option<String>,
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
    /// Creation time bounds, epoch microseconds, `since` inclusive, `until` exclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Keyset cursor: transactions older than this id.
    pub before_id: Option<String>,
}

/// Which transactions a list holds: the column it filters on is the store's business.
#[derive(Debug, Clone, Copy)]
pub enum TransactionFilter<'a> {
    All,
    Card(&'a CardId),
    Cardholder(&'a CardholderId),
}

impl TransactionFilter<'_> {
    fn column(&self) -> Option<(&'static str, &str)> {
        match self {
            TransactionFilter::All => None,
            TransactionFilter::Card(id) => Some(("card_id", id.as_str())),
            TransactionFilter::Cardholder(id) => Some(("cardholder_id", id.as_str())),
        }
    }
}

#[async_trait]
impl TransactionStore for SqlStore {
    async fn get_transaction(&self, scope: &Scope, id: &TransactionId) -> Result<Transaction, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transactions WHERE tenant_id = $1 AND environment = $2 AND id = $3"
        )))
        .bind(scope.tenant_id.as_str())
        .bind(scope.environment.as_str())
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        transaction_from_row(&row)
    }

    async fn list_transactions(
        &self,
        scope: &Scope,
        filter: TransactionFilter<'_>,
        page: &PageRequest,
    ) -> Result<Page<Transaction>, StoreError> {
        let spec = ListSpec {
            table: "transactions",
            columns: COLUMNS,
            filter: filter.column(),
        };
        list_page(self.db.reader(), spec, scope, page, transaction_from_row).await
    }

    async fn find_transaction(&self, id: &TransactionId) -> Result<Transaction, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM transactions WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(self.db.reader())
        .await?
        .ok_or(StoreError::NotFound)?;
        transaction_from_row(&row)
    }

    async fn search_transactions(
        &self,
        search: &TransactionSearch,
        limit: u32,
    ) -> Result<Vec<Transaction>, StoreError> {
        let mut f = Filters::default();
        let text = |f: &mut Filters, clause: &str, v: &Option<String>| {
            if let Some(v) = v {
                f.add(clause, Bind::Text(v.clone()));
            }
        };
        text(&mut f, "tenant_id = ?", &search.tenant_id);
        text(&mut f, "environment = ?", &search.environment);
        text(&mut f, "card_id = ?", &search.card_id);
        if let Some(last4) = &search.last4 {
            // The cards first: with one card the (card_id, created_at) index gives the order.
            let cards = self.cards_with_last4(last4, search.tenant_id.as_deref()).await?;
            match cards.as_slice() {
                [] => return Ok(Vec::new()),
                [one] => f.add("card_id = ?", Bind::Text(one.clone())),
                many => {
                    let list: Vec<String> = many.iter().map(|c| format!("'{}'", c.replace('\'', ""))).collect();
                    f.raw(format!("card_id IN ({})", list.join(", ")));
                }
            }
        }
        text(&mut f, "cardholder_id = ?", &search.cardholder_id);
        text(&mut f, "program_id = ?", &search.program_id);
        // `state` has five values: walking the primary key (newest first) finds a page of any
        // common one sooner than reading all its rows through the (state, expires_at) index and
        // sorting them, which SQLite's planner would otherwise choose. `|| ''` keeps the index out.
        text(&mut f, "state || '' = ?", &search.state);
        text(&mut f, "decline_reason = ?", &search.decline_reason);
        text(&mut f, "mcc = ?", &search.mcc);
        // Narrowed to a card, cardholder or program, the (…, created_at) indexes give the order
        // without sorting the owner's whole history; otherwise the primary key does (ids sort by
        // creation time). The cursor is the last id either way.
        let by_time = search.card_id.is_some()
            || search.last4.is_some()
            || search.cardholder_id.is_some()
            || search.program_id.is_some();
        if by_time {
            text(
                &mut f,
                "(created_at, id) < ((SELECT created_at FROM transactions WHERE id = ?), ?)",
                &search.before_id,
            );
        } else {
            text(&mut f, "id < ?", &search.before_id);
        }
        for (clause, v) in [
            ("requested_amount >= ?", search.amount_min),
            ("requested_amount <= ?", search.amount_max),
            ("created_at >= ?", search.since),
            ("created_at < ?", search.until),
        ] {
            if let Some(v) = v {
                f.add(clause, Bind::Int(v));
            }
        }
        let order = if by_time { "created_at DESC, id DESC" } else { "id DESC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM transactions{} ORDER BY {order} LIMIT {}",
            f.sql(),
            i64::from(limit)
        );
        f.fetch_all(self.db.reader(), sql)
            .await?
            .iter()
            .map(transaction_from_row)
            .collect()
    }
}

/// At most this many cards are searched by their last four digits.
const LAST4_CARDS_MAX: i64 = 100;

impl SqlStore {
    /// The ids of cards ending in `last4`, read from the database and parsed before they go into
    /// an IN list.
    async fn cards_with_last4(&self, last4: &str, tenant_id: Option<&str>) -> Result<Vec<String>, StoreError> {
        let tenant = if tenant_id.is_some() { " AND tenant_id = $2" } else { "" };
        let sql = format!("SELECT id FROM cards WHERE last4 = $1{tenant} ORDER BY id LIMIT {LAST4_CARDS_MAX}");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(last4);
        if let Some(t) = tenant_id {
            q = q.bind(t);
        }
        let rows = q.fetch_all(self.db.reader()).await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = sqlx::Row::try_get(&row, "id")?;
            CardId::parse(&id).map_err(StoreError::other)?;
            ids.push(id);
        }
        Ok(ids)
    }
}
