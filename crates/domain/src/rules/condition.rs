//! The condition language of `conditional_action` rules: an attribute of the authorization, an
//! operation and a value. Conditions are parsed and checked once per rule version (regexes
//! compiled, lists sorted) and then evaluated against the authorization's `Facts` with no I/O.

use regex::Regex;
use serde_json::Value;

use crate::error::FieldError;
use crate::rules::facts::{Attribute, Fact, Facts};

crate::wire_enum!(Operation {
    IsOneOf => "is_one_of",
    IsNotOneOf => "is_not_one_of",
    Equals => "equals",
    LessThan => "less_than",
    GreaterThan => "greater_than",
    Between => "between",
    Matches => "matches",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttributeType {
    Text,
    Integer,
    Boolean,
}

impl Attribute {
    fn value_type(self) -> AttributeType {
        match self {
            Attribute::Amount | Attribute::CardAgeDays | Attribute::HourOfDay | Attribute::RiskScore => {
                AttributeType::Integer
            }
            Attribute::IsRecurring => AttributeType::Boolean,
            _ => AttributeType::Text,
        }
    }
}

/// A checked condition, ready to evaluate.
#[derive(Debug, Clone)]
pub enum Test {
    TextIn {
        values: Vec<String>,
        negate: bool,
    },
    TextEquals(String),
    TextMatches(Regex),
    IntIn {
        values: Vec<i64>,
        negate: bool,
    },
    IntEquals(i64),
    LessThan(i64),
    GreaterThan(i64),
    /// Inclusive at both ends.
    Between(i64, i64),
    BoolEquals(bool),
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub attribute: Attribute,
    pub operation: Operation,
    pub test: Test,
}

const LIST_MAX: usize = 500;
const REGEX_SIZE_MAX: usize = 64 * 1024;

fn text(param: &str, v: &Value) -> Result<String, FieldError> {
    match v.as_str() {
        Some(s) if !s.is_empty() && s.len() <= 200 => Ok(s.to_owned()),
        _ => Err(FieldError::invalid(
            param,
            "must be a non-empty string of up to 200 characters",
        )),
    }
}

fn integer(param: &str, v: &Value) -> Result<i64, FieldError> {
    v.as_i64()
        .ok_or_else(|| FieldError::invalid(param, "must be an integer"))
}

fn list<T>(param: &str, v: &Value, each: impl Fn(&str, &Value) -> Result<T, FieldError>) -> Result<Vec<T>, FieldError> {
    let items = v
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= LIST_MAX)
        .ok_or_else(|| FieldError::invalid(param, format!("must be a list of 1 to {LIST_MAX} values")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| each(&format!("{param}[{i}]"), item))
        .collect()
}

impl Condition {
    /// Parses `{"attribute": ..., "operation": ..., "value": ...}` found at `param`.
    pub fn parse(param: &str, raw: &Value) -> Result<Condition, FieldError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| FieldError::invalid(param, "must be an object"))?;
        if let Some(extra) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "attribute" | "operation" | "value"))
        {
            return Err(FieldError::invalid(format!("{param}.{extra}"), "unknown field"));
        }
        let attr_param = format!("{param}.attribute");
        let attribute = obj
            .get("attribute")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::missing(&attr_param))?;
        let attribute = Attribute::parse(attribute).ok_or_else(|| {
            let all: Vec<&str> = Attribute::ALL.iter().map(|a| a.as_str()).collect();
            FieldError::invalid(&attr_param, format!("must be one of {}", all.join(", ")))
        })?;
        let op_param = format!("{param}.operation");
        let operation = obj
            .get("operation")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::missing(&op_param))?;
        let operation = Operation::parse(operation).ok_or_else(|| {
            let all: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
            FieldError::invalid(&op_param, format!("must be one of {}", all.join(", ")))
        })?;
        let value_param = format!("{param}.value");
        let value = obj.get("value").ok_or_else(|| FieldError::missing(&value_param))?;
        let test = test_for(attribute, operation, &value_param, value).map_err(|e| {
            if e.param == value_param && e.message.starts_with("not supported") {
                FieldError::invalid(&op_param, e.message)
            } else {
                e
            }
        })?;
        Ok(Condition {
            attribute,
            operation,
            test,
        })
    }

    pub fn holds(&self, facts: &Facts<'_>) -> bool {
        match (&self.test, facts.get(self.attribute)) {
            (Test::TextIn { values, negate }, Fact::Text(t)) => values.iter().any(|v| v == t) != *negate,
            (Test::TextEquals(v), Fact::Text(t)) => v == t,
            (Test::TextMatches(re), Fact::Text(t)) => re.is_match(t),
            (Test::IntIn { values, negate }, Fact::Integer(n)) => values.contains(&n) != *negate,
            (Test::IntEquals(v), Fact::Integer(n)) => n == *v,
            (Test::LessThan(v), Fact::Integer(n)) => n < *v,
            (Test::GreaterThan(v), Fact::Integer(n)) => n > *v,
            (Test::Between(lo, hi), Fact::Integer(n)) => (*lo..=*hi).contains(&n),
            (Test::BoolEquals(v), Fact::Boolean(b)) => b == *v,
            _ => false,
        }
    }

    /// `amount greater_than 50000` as the trace shows it.
    pub fn describe(&self, facts: &Facts<'_>) -> String {
        let actual = match facts.get(self.attribute) {
            Fact::Text(t) => t.to_owned(),
            Fact::Integer(n) => n.to_string(),
            Fact::Boolean(b) => b.to_string(),
        };
        format!("{} {} ({actual})", self.attribute.as_str(), self.operation.as_str())
    }
}

fn unsupported(param: &str, attribute: Attribute, operation: Operation) -> FieldError {
    FieldError::invalid(
        param,
        format!(
            "not supported: {} cannot be used with {}",
            operation.as_str(),
            attribute.as_str()
        ),
    )
}

fn test_for(attribute: Attribute, operation: Operation, param: &str, value: &Value) -> Result<Test, FieldError> {
    use AttributeType as T;
    use Operation as O;
    Ok(match (attribute.value_type(), operation) {
        (T::Text, O::IsOneOf | O::IsNotOneOf) => Test::TextIn {
            values: list(param, value, text)?,
            negate: operation == O::IsNotOneOf,
        },
        (T::Text, O::Equals) => Test::TextEquals(text(param, value)?),
        (T::Text, O::Matches) => {
            let pattern = text(param, value)?;
            let re = regex::RegexBuilder::new(&pattern)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_MAX)
                .build()
                .map_err(|_| FieldError::invalid(param, "must be a valid regular expression"))?;
            Test::TextMatches(re)
        }
        (T::Integer, O::IsOneOf | O::IsNotOneOf) => Test::IntIn {
            values: list(param, value, integer)?,
            negate: operation == O::IsNotOneOf,
        },
        (T::Integer, O::Equals) => Test::IntEquals(integer(param, value)?),
        (T::Integer, O::LessThan) => Test::LessThan(integer(param, value)?),
        (T::Integer, O::GreaterThan) => Test::GreaterThan(integer(param, value)?),
        (T::Integer, O::Between) => {
            let bounds = value
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| FieldError::invalid(param, "must be [low, high]"))?;
            let (lo, hi) = (
                integer(&format!("{param}[0]"), &bounds[0])?,
                integer(&format!("{param}[1]"), &bounds[1])?,
            );
            if lo > hi {
                return Err(FieldError::invalid(param, "low must not exceed high"));
            }
            Test::Between(lo, hi)
        }
        (T::Boolean, O::Equals) => Test::BoolEquals(
            value
                .as_bool()
                .ok_or_else(|| FieldError::invalid(param, "must be true or false"))?,
        ),
        _ => return Err(unsupported(param, attribute, operation)),
    })
}
