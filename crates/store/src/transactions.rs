//! Card transactions as read by the API. They are written only by the authorization engine's
//! batches (`network_batch`).

use async_trait::async_trait;
use cardplane_domain::authorization::Transaction;
use cardplane_domain::ids::{CardId, CardholderId, TransactionId};
use cardplane_domain::page::{Page, PageRequest};
use sqlx::AssertSqlSafe;

use crate::rows::transactions::{COLUMNS, transaction_from_row};
use crate::sql::{ListSpec, list_page};
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
}
