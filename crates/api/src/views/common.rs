//! Response shapes: pieces every resource uses (money, list pages).

use serde::Serialize;
use utoipa::ToSchema;

use cardplane_domain::page::Page;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoneyView {
    #[schema(example = "USD")]
    pub currency: String,
    /// Minor units (cents for USD).
    #[schema(example = 200)]
    pub amount: i64,
}

/// Maps a page of domain objects to a list body.
pub fn page_items<T, V>(page: &Page<T>, f: impl Fn(&T) -> V) -> (Vec<V>, bool, i64) {
    (page.items.iter().map(f).collect(), page.has_more, page.total)
}
