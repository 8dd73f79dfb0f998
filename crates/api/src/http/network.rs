//! What the network interface and the simulator share: the merchant of a request, its amount and
//! currency parsed into domain types, and how an engine answer goes back on the wire.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cardplane_domain::FieldError;
use cardplane_domain::authorization::Merchant;
use cardplane_domain::money::Currency;
use cardplane_engine::authorization::Answer;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantRequest {
    #[schema(example = "merchant_4821")]
    pub id: Option<String>,
    #[schema(example = "Corner Grocery")]
    pub name: Option<String>,
    /// 4 digits.
    #[schema(example = "5411")]
    pub mcc: Option<String>,
    /// ISO 3166-1 alpha-3 (alpha-2 accepted).
    #[schema(example = "USA")]
    pub country: Option<String>,
    #[schema(example = "New York")]
    pub city: Option<String>,
}

/// How the card was read (chip, contactless, ecommerce, recurring, ...): up to 32 letters, digits
/// or `_`; `default` when absent.
pub fn parse_entry_mode(raw: Option<&str>, default: &str) -> Result<String, FieldError> {
    match raw {
        None => Ok(default.to_owned()),
        Some(m) if !m.is_empty() && m.len() <= 32 && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            Ok(m.to_owned())
        }
        Some(_) => Err(FieldError::invalid("entry_mode", "up to 32 letters, digits or _")),
    }
}

pub fn parse_amount(raw: Option<i64>) -> Result<i64, FieldError> {
    cardplane_domain::money::parse_amount_minor("amount", raw)
}

pub fn parse_currency(raw: Option<&str>) -> Result<Currency, FieldError> {
    Currency::parse(raw.ok_or_else(|| FieldError::missing("currency"))?)
        .map_err(|_| FieldError::invalid("currency", "ISO 4217"))
}

pub fn parse_merchant(raw: Option<&MerchantRequest>) -> Result<Merchant, FieldError> {
    let m = raw.ok_or_else(|| FieldError::missing("merchant"))?;
    let text = |param: &str, v: &Option<String>, required: bool| -> Result<String, FieldError> {
        match v.as_deref().map(str::trim) {
            Some(s) if s.len() <= 100 && !s.chars().any(char::is_control) && (!s.is_empty() || !required) => {
                Ok(s.to_owned())
            }
            None | Some("") if required => Err(FieldError::missing(format!("merchant.{param}"))),
            None => Ok(String::new()),
            Some(_) => Err(FieldError::invalid(
                format!("merchant.{param}"),
                "at most 100 printable characters",
            )),
        }
    };
    let mcc = cardplane_domain::controls::parse_mcc(
        "merchant.mcc",
        m.mcc.as_deref().ok_or_else(|| FieldError::missing("merchant.mcc"))?,
    )?;
    let country = cardplane_domain::country::normalize_country(
        m.country
            .as_deref()
            .ok_or_else(|| FieldError::missing("merchant.country"))?,
    )
    .ok_or_else(|| FieldError::invalid("merchant.country", "ISO 3166-1"))?;
    Ok(Merchant {
        id: text("id", &m.id, true)?,
        name: text("name", &m.name, true)?,
        mcc,
        country: country.to_owned(),
        city: text("city", &m.city, false)?,
    })
}

pub fn answer_response(answer: Answer) -> Response {
    let mut r = (axum::http::StatusCode::OK, answer.body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if answer.replayed {
        r.headers_mut()
            .insert("network-replayed", HeaderValue::from_static("true"));
    }
    r
}
