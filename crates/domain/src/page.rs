//! Cursor pagination as the Apto API defines it: `starting_after` / `ending_before` take object
//! IDs, `limit` defaults to 25 and may not exceed 50, results are newest first.

use crate::error::FieldError;

pub const PAGE_SIZE_DEFAULT: u32 = 25;
pub const PAGE_SIZE_MAX: u32 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// The newest page.
    Newest,
    /// Objects older than this ID (the next page when reading newest-first).
    After(String),
    /// Objects newer than this ID (the previous page).
    Before(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Cursor,
}

impl PageRequest {
    /// The newest `limit` objects (pages that show a short list whole).
    pub fn newest(limit: u32) -> Self {
        PageRequest {
            limit,
            cursor: Cursor::Newest,
        }
    }

    /// `id_ok` checks that a cursor is an ID of the listed kind.
    pub fn parse(
        limit: Option<&str>,
        starting_after: Option<&str>,
        ending_before: Option<&str>,
        id_ok: impl Fn(&str) -> bool,
    ) -> Result<Self, FieldError> {
        let limit = match limit {
            None => PAGE_SIZE_DEFAULT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=PAGE_SIZE_MAX).contains(n))
                .ok_or_else(|| FieldError::invalid("limit", format!("must be an integer from 1 to {PAGE_SIZE_MAX}")))?,
        };
        let check = |param: &str, id: &str| {
            if id_ok(id) {
                Ok(id.to_owned())
            } else {
                Err(FieldError::invalid(param, "must be the ID of an object in this list"))
            }
        };
        let cursor = match (starting_after, ending_before) {
            (Some(_), Some(_)) => {
                return Err(FieldError::invalid(
                    "ending_before",
                    "cannot be combined with starting_after",
                ));
            }
            (Some(id), None) => Cursor::After(check("starting_after", id)?),
            (None, Some(id)) => Cursor::Before(check("ending_before", id)?),
            (None, None) => Cursor::Newest,
        };
        Ok(PageRequest { limit, cursor })
    }
}

/// One page, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds_and_cursor_exclusivity() {
        let ok = |_: &str| true;
        assert_eq!(PageRequest::parse(None, None, None, ok).unwrap().limit, 25);
        assert_eq!(PageRequest::parse(Some("50"), None, None, ok).unwrap().limit, 50);
        for bad in ["0", "51", "-1", "ten", ""] {
            assert_eq!(
                PageRequest::parse(Some(bad), None, None, ok).unwrap_err().param,
                "limit"
            );
        }
        assert!(PageRequest::parse(None, Some("a"), Some("b"), ok).is_err());
        assert_eq!(
            PageRequest::parse(None, Some("x"), None, |_| false).unwrap_err().param,
            "starting_after"
        );
    }
}
