//! Many rows as one statement parameter. sqlx `Any` has no array binds, so a batch's rows travel
//! as one JSON text parameter that the database expands into a table: `json_to_recordset` on
//! PostgreSQL, `json_each` on SQLite. The SQL text depends only on the columns, so each statement
//! is prepared once whatever the batch size.

use std::fmt::Write;

use crate::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Text,
    Int,
}

/// The shape of the rows one statement takes.
pub(crate) struct RecordSet {
    pub columns: &'static [(&'static str, Col)],
}

impl RecordSet {
    /// A `FROM` item over the parameter `param` (`$1`, ...) whose rows are named `alias`.
    pub fn source(&self, backend: Backend, param: &str, alias: &str) -> String {
        match backend {
            Backend::Postgres => {
                let defs: Vec<String> = self
                    .columns
                    .iter()
                    .map(|(name, col)| {
                        let ty = match col {
                            Col::Text => "text",
                            Col::Int => "bigint",
                        };
                        format!("{name} {ty}")
                    })
                    .collect();
                format!("json_to_recordset({param}::json) AS {alias}({})", defs.join(", "))
            }
            Backend::Sqlite => {
                let fields: Vec<String> = self
                    .columns
                    .iter()
                    .map(|(name, _)| format!("value ->> '{name}' AS {name}"))
                    .collect();
                format!("(SELECT {} FROM jsonb_each({param})) AS {alias}", fields.join(", "))
            }
        }
    }

    pub fn rows(&'static self) -> JsonRows {
        JsonRows {
            set: self,
            buf: String::from("["),
            count: 0,
        }
    }
}

/// One value of a row, in column order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum V<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
}

/// A JSON array of row objects, written directly (no intermediate values).
pub(crate) struct JsonRows {
    set: &'static RecordSet,
    buf: String,
    count: usize,
}

impl JsonRows {
    pub fn row(&mut self, values: &[V<'_>]) {
        assert_eq!(values.len(), self.set.columns.len(), "a row has a value per column");
        if self.count > 0 {
            self.buf.push(',');
        }
        self.buf.push('{');
        for (i, ((name, col), value)) in self.set.columns.iter().zip(values).enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            self.buf.push('"');
            self.buf.push_str(name);
            self.buf.push_str("\":");
            match (col, value) {
                (Col::Text, V::Text(t) | V::OptText(Some(t))) => push_string(&mut self.buf, t),
                (Col::Int, V::Int(n) | V::OptInt(Some(n))) => {
                    let _ = write!(self.buf, "{n}");
                }
                (_, V::OptText(None) | V::OptInt(None)) => self.buf.push_str("null"),
                _ => panic!("column {name} given a value of the wrong kind"),
            }
        }
        self.buf.push('}');
        self.count += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn finish(mut self) -> String {
        self.buf.push(']');
        self.buf
    }
}

fn push_string(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", u32::from(c));
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

/// A plain JSON array of strings, for `IN (...)` lists.
pub(crate) fn text_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut buf = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            buf.push(',');
        }
        push_string(&mut buf, item);
    }
    buf.push(']');
    buf
}

/// A `FROM` item over a JSON array of strings in parameter `$param`, one column `value`.
pub(crate) fn text_list(backend: Backend, param: usize, alias: &str) -> String {
    match backend {
        Backend::Postgres => format!("json_array_elements_text(${param}::json) AS {alias}(value)"),
        Backend::Sqlite => format!("(SELECT value FROM json_each(${param})) AS {alias}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SET: RecordSet = RecordSet {
        columns: &[("id", Col::Text), ("n", Col::Int), ("note", Col::Text)],
    };

    #[test]
    fn rows_are_valid_json_whatever_the_text() {
        let mut rows = SET.rows();
        rows.row(&[V::Text("a\"b\\c\n\u{1}é"), V::Int(-5), V::OptText(None)]);
        rows.row(&[V::Text(""), V::OptInt(Some(i64::MAX)), V::OptText(Some("x"))]);
        let parsed: serde_json::Value = serde_json::from_str(&rows.finish()).unwrap();
        assert_eq!(parsed[0]["id"], "a\"b\\c\n\u{1}é");
        assert_eq!(parsed[0]["n"], -5);
        assert!(parsed[0]["note"].is_null());
        assert_eq!(parsed[1]["n"], i64::MAX);
        let list: Vec<String> = serde_json::from_str(&text_array(["x\"", "y"])).unwrap();
        assert_eq!(list, ["x\"", "y"]);
    }
}
