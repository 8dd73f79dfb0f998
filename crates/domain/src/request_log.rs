//! What the request log may keep of a request: bodies and query strings with card numbers, card
//! security codes, identity numbers and secrets masked *before* anything is stored (PCI DSS: no
//! full PAN, CVV or secret at rest in clear; the developer portal shows these rows to people).
//!
//! Three rules, applied together:
//! - by field name: security codes, PINs and secrets are replaced whole; identity numbers (and the
//!   `value` of a cardholder `document`) keep at most their last four characters; a `pan` keeps
//!   its last four whatever it looks like;
//! - by shape, in every string, key and number: a run of digits (single spaces or dashes allowed
//!   between groups) holding a Luhn-valid 13–19 digit card number keeps only its last four digits;
//!   `NNN-NN-NNNN` and a free-standing 9-digit number (SSN shapes) keep their last four;
//! - by type: only JSON is kept; any other body is recorded as its content type and length.

use serde_json::{Map, Value};

use crate::ids::{ApiKeyId, RequestLogId, TenantId};
use crate::pan::luhn_valid;
use crate::{Environment, Timestamp};

/// Appended to a body cut at the configured cap.
pub const TRUNCATION_MARKER: &str = "…[truncated]";
/// The replacement for a value that is never shown at all.
pub const REDACTED: &str = "[redacted]";

/// How a field's value is masked, decided by its name (and, for `code`, its siblings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldRule {
    /// Only the shape rules apply.
    Shapes,
    /// Replaced whole: security codes, PINs, secrets, passwords, one-time codes.
    Redact,
    /// At most the last four characters stay: identity numbers, card numbers by name.
    LastFour,
}

/// Names compared after lower-casing and dropping `_`, `-` and spaces.
const REDACTED_NAMES: [&str; 14] = [
    "cvv",
    "cvc",
    "cvv2",
    "cvc2",
    "cvn",
    "cid",
    "securitycode",
    "cardsecuritycode",
    "pin",
    "pinblock",
    "totp",
    "totpcode",
    "otp",
    "recoverycodes",
];
/// Any name ending in one of these is a credential (`secret`, `signing_secret`, `new_password`...).
const REDACTED_SUFFIXES: [&str; 3] = ["secret", "password", "token"];
const LAST_FOUR_NAMES: [&str; 14] = [
    "ssn",
    "taxid",
    "tin",
    "itin",
    "idnumber",
    "documentnumber",
    "passportnumber",
    "nationalid",
    "driverslicense",
    "driverslicensenumber",
    "pan",
    "cardnumber",
    "primaryaccountnumber",
    "accountnumber",
];
/// In an auth body (one with a password or TOTP beside it) a `code` is a one-time code.
const AUTH_SIBLINGS: [&str; 3] = ["password", "totp", "email"];

fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The rule for a field by its [`normalized`] name.
fn field_rule(n: &str, in_document: bool, auth_body: bool) -> FieldRule {
    if REDACTED_NAMES.contains(&n) || REDACTED_SUFFIXES.iter().any(|s| n.ends_with(s)) {
        return FieldRule::Redact;
    }
    if auth_body && n == "code" {
        return FieldRule::Redact;
    }
    if LAST_FOUR_NAMES.contains(&n) || (in_document && matches!(n, "value" | "number")) {
        return FieldRule::LastFour;
    }
    FieldRule::Shapes
}

/// Whether a field (by its [`normalized`] name) holds an identity document (its `value`/`number`
/// keep only their last four).
fn is_document_field(n: &str) -> bool {
    n.contains("document") || n == "identity" || n == "identification"
}

/// `****1234`: the last four characters of `raw` (fewer if it is shorter than eight), the rest
/// as stars, so a short value is never shown nearly whole.
pub fn keep_last_four(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let keep = if chars.len() >= 8 { 4 } else { chars.len() / 2 };
    let stars = "*".repeat(chars.len() - keep);
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{stars}{tail}")
}

/// Masks a JSON document in place (see the module comment for the rules).
pub fn mask_json(value: &mut Value) {
    mask_value(value, false);
}

/// Numbers below this have at most eight digits: too short for a card number or an SSN.
const SHORTEST_MASKED_NUMBER: u64 = 100_000_000;

fn mask_value(value: &mut Value, in_document: bool) {
    match value {
        Value::Object(map) => mask_object(map, in_document),
        Value::Array(items) => items.iter_mut().for_each(|v| mask_value(v, in_document)),
        Value::String(s) => {
            if let Some(masked) = masked_shapes(s, in_document) {
                *s = masked;
            }
        }
        Value::Number(n) => {
            let short = n.as_i64().is_some_and(|i| i.unsigned_abs() < SHORTEST_MASKED_NUMBER);
            if let Some(masked) = (!short).then(|| masked_shapes(&n.to_string(), false)).flatten() {
                *value = Value::String(masked);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn mask_object(map: &mut Map<String, Value>, in_document: bool) {
    let names: Vec<String> = map.keys().map(|k| normalized(k)).collect();
    let auth_body = names.iter().any(|n| AUTH_SIBLINGS.contains(&n.as_str())) && names.iter().any(|n| n == "code");
    for ((_, v), name) in map.iter_mut().zip(&names) {
        match field_rule(name, in_document, auth_body) {
            FieldRule::Redact if !v.is_null() => *v = Value::String(REDACTED.to_owned()),
            FieldRule::LastFour => mask_last_four(v),
            FieldRule::Redact | FieldRule::Shapes => mask_value(v, in_document || is_document_field(name)),
        }
    }
    // Keys are rebuilt only when one holds a shape (rare: a card number used as a key).
    if map.keys().any(|k| may_hold_shape(k)) {
        let entries = std::mem::take(map);
        for (key, v) in entries {
            map.insert(masked_shapes(&key, false).unwrap_or(key), v);
        }
    }
}

fn mask_last_four(value: &mut Value) {
    match value {
        Value::String(s) => *s = keep_last_four(s),
        Value::Number(n) => *value = Value::String(keep_last_four(&n.to_string())),
        Value::Object(_) | Value::Array(_) => mask_value(value, true),
        Value::Bool(_) | Value::Null => {}
    }
}

/// `text` with every card number and SSN shape masked (free text: paths, query values, ids).
pub fn mask_text(text: &str) -> String {
    masked_shapes(text, false).unwrap_or_else(|| text.to_owned())
}

/// A run of digits in `text`, possibly with single separators between groups.
struct DigitRun {
    start: usize,
    end: usize,
    digits: String,
    /// The digit group sizes (`[3, 2, 4]` for `123-45-6789`).
    groups: Vec<usize>,
}

fn digit_runs(text: &str) -> Vec<DigitRun> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut run = DigitRun {
            start,
            end: start,
            digits: String::new(),
            groups: vec![0],
        };
        loop {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                run.digits.push(char::from(bytes[i]));
                *run.groups.last_mut().expect("one group") += 1;
                i += 1;
            }
            let separated = i + 1 < bytes.len() && matches!(bytes[i], b' ' | b'-') && bytes[i + 1].is_ascii_digit();
            if !separated {
                break;
            }
            run.groups.push(0);
            i += 1;
        }
        run.end = i;
        runs.push(run);
    }
    runs
}

/// Whether some 13–19 digit window of `digits` is a Luhn-valid card number.
fn holds_card_number(digits: &str) -> bool {
    (13..=19.min(digits.len())).any(|len| (0..=digits.len() - len).any(|at| luhn_valid(&digits[at..at + len])))
}

/// Whether a group of `len` digits at `group` of `run` is a bare 9-digit number that may be an
/// SSN: in a document always; elsewhere only when it is not part of an identifier such as
/// `card_123456789abc` (a group beside a separator counts as standing alone).
fn bare_nine(run: &DigitRun, group: usize, text: &str, in_document: bool) -> bool {
    if run.groups[group] != 9 {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let first = group == 0 && word(text[..run.start].chars().next_back());
    let last = group + 1 == run.groups.len() && word(text[run.end..].chars().next());
    in_document || !(first || last)
}

/// Which digits of `run` are starred: all but the last four of a run holding a card number;
/// otherwise the first five of each SSN shape in it (`NNN-NN-NNNN`, or a bare nine digits).
fn starred_digits(run: &DigitRun, text: &str, in_document: bool) -> Vec<bool> {
    let n = run.digits.len();
    if n >= 13 && holds_card_number(&run.digits) {
        return (0..n).map(|i| i < n - 4).collect();
    }
    let mut star = vec![false; n];
    let mut offset = 0;
    for (g, len) in run.groups.iter().enumerate() {
        let triple = run.groups.get(g..g + 3) == Some(&[3, 2, 4][..]);
        if triple || bare_nine(run, g, text, in_document) {
            star[offset..offset + 5].iter_mut().for_each(|s| *s = true);
        }
        offset += len;
    }
    star
}

/// Whether `text` has a digit run (single spaces or dashes allowed between groups, as in
/// [`digit_runs`]) of at least nine digits, the fewest a card number or an SSN shape has. Most
/// strings (ids, names, amounts) have none, and this answers without allocating.
fn may_hold_shape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut digits = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits >= 9 {
                return true;
            }
        } else {
            let joins = matches!(b, b' ' | b'-')
                && i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !joins {
                digits = 0;
            }
        }
    }
    false
}

/// `text` with card numbers and SSN shapes starred (separators kept), or `None` if it has none.
fn masked_shapes(text: &str, in_document: bool) -> Option<String> {
    if !may_hold_shape(text) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut changed = false;
    for run in digit_runs(text) {
        let star = starred_digits(&run, text, in_document);
        if !star.contains(&true) {
            continue;
        }
        changed = true;
        out.push_str(&text[at..run.start]);
        let mut digit = 0;
        for c in text[run.start..run.end].chars() {
            if c.is_ascii_digit() {
                out.push(if star[digit] { '*' } else { c });
                digit += 1;
            } else {
                out.push(c);
            }
        }
        at = run.end;
    }
    if !changed {
        return None;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// A query string (`a=1&b=2`), decoded for display, with each value masked by its name and shape.
pub fn mask_query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (percent_decoded(name), percent_decoded(value));
            let value = match field_rule(&normalized(&name), false, false) {
                FieldRule::Redact => REDACTED.to_owned(),
                FieldRule::LastFour => keep_last_four(&value),
                FieldRule::Shapes => mask_text(&value),
            };
            format!("{}={value}", mask_text(&name))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `%41` and `+` decoded; a malformed escape is kept as written (this is for display only).
fn percent_decoded(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).expect("two hex digits fit a byte"));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A body as the request log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedBody {
    pub content_type: Option<String>,
    /// The masked JSON text (cut at the cap, with [`TRUNCATION_MARKER`]); `None` for an empty or
    /// non-JSON body, of which only the type and length are kept.
    pub text: Option<String>,
    /// The body's length in bytes as sent.
    pub length_bytes: usize,
}

/// The JSON a body holds, if its type allows JSON and it parses.
fn json_body(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    let json = content_type.is_none_or(|t| t.contains("json"));
    (json && !body.is_empty())
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten()
}

fn masked_body(content_type: Option<&str>, json: Option<Value>, length_bytes: usize, cap_bytes: usize) -> MaskedBody {
    MaskedBody {
        content_type: content_type.map(str::to_owned),
        text: json.map(|mut v| {
            mask_json(&mut v);
            truncated(v.to_string(), cap_bytes)
        }),
        length_bytes,
    }
}

/// Masks a body for the log: JSON is parsed, masked, written back compactly and cut at
/// `cap_bytes`; anything else (including JSON that does not parse) keeps no content.
pub fn mask_body(content_type: Option<&str>, body: &[u8], cap_bytes: usize) -> MaskedBody {
    masked_body(content_type, json_body(content_type, body), body.len(), cap_bytes)
}

/// `text` cut to at most `cap_bytes` (on a character boundary) plus the marker when it was longer.
pub fn truncated(mut text: String, cap_bytes: usize) -> String {
    if text.len() <= cap_bytes {
        return text;
    }
    let mut cut = cap_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(TRUNCATION_MARKER);
    text
}

/// What the capture layer saw of one request, before masking.
pub struct Exchange<'a> {
    pub api_key_id: ApiKeyId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub received_at: Timestamp,
    pub method: &'a str,
    /// The matched route template (`/cards/{card_id}`): never holds caller data.
    pub route: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub status: u16,
    pub latency_us: i64,
    pub request_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub request_content_type: Option<&'a str>,
    pub request_body: &'a [u8],
    pub response_content_type: Option<&'a str>,
    /// `None` when the response was not kept (larger than the cap, or streamed).
    pub response_body: Option<&'a [u8]>,
    pub response_length_bytes: usize,
}

/// One request log row, every caller-supplied text already masked. Built only by
/// [`RequestLogEntry::capture`], so nothing unmasked reaches the store through it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestLogEntry {
    pub id: RequestLogId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub api_key_id: ApiKeyId,
    pub received_at: Timestamp,
    pub method: String,
    pub route: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_us: i64,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request: MaskedBody,
    pub response: MaskedBody,
}

impl RequestLogEntry {
    /// Masks everything the caller could have typed (path, query, ids, bodies) and cuts bodies at
    /// `body_cap_bytes`.
    pub fn capture(x: Exchange<'_>, body_cap_bytes: usize) -> RequestLogEntry {
        let request = json_body(x.request_content_type, x.request_body);
        // The key may come in the body instead of the header (as the idempotency layer allows).
        let body_key = request
            .as_ref()
            .and_then(|v| v.get("idempotency_key"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let idempotency_key = x.idempotency_key.map(str::to_owned).or(body_key);
        let response = match x.response_body {
            Some(body) => mask_body(x.response_content_type, body, body_cap_bytes),
            None => MaskedBody {
                content_type: x.response_content_type.map(str::to_owned),
                text: None,
                length_bytes: x.response_length_bytes,
            },
        };
        RequestLogEntry {
            id: RequestLogId::generate(),
            tenant_id: x.tenant_id,
            environment: x.environment,
            api_key_id: x.api_key_id,
            received_at: x.received_at,
            method: x.method.to_owned(),
            route: x.route.to_owned(),
            // Decoded first: `%20` between digit groups must not hide a card number from the mask.
            path: truncated(mask_text(&percent_decoded(x.path)), body_cap_bytes),
            query: x
                .query
                .filter(|q| !q.is_empty())
                .map(|q| truncated(mask_query(q), body_cap_bytes)),
            status: x.status,
            latency_us: x.latency_us.max(0),
            request_id: x.request_id.map(|r| truncated(mask_text(r), 255)),
            idempotency_key: idempotency_key.map(|k| truncated(mask_text(&k), 255)),
            request: masked_body(x.request_content_type, request, x.request_body.len(), body_cap_bytes),
            response,
        }
    }

    /// The UTC day (days since 1970-01-01) the request counts in for usage.
    pub fn day(&self) -> i64 {
        day_of(self.received_at)
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 (UTC) of an instant: the usage rollup's day key.
pub fn day_of(at: Timestamp) -> i64 {
    at.as_micros().div_euclid(MICROS_PER_DAY)
}

/// The first instant of a rollup day.
pub fn day_start(day: i64) -> Timestamp {
    Timestamp::from_micros(day.saturating_mul(MICROS_PER_DAY))
}

/// Buckets of the usage rollup's latency histogram: bucket `i` counts latencies up to
/// `2^(7+i)` µs (128 µs, 256 µs … ~2.1 s); the last one everything slower. Log-scale, so p50
/// and p99 are known within a factor of two from 16 counters per endpoint and day.
pub const LATENCY_BUCKETS: usize = 16;

/// The histogram bucket of a latency.
pub fn latency_bucket(latency_us: i64) -> usize {
    (0..LATENCY_BUCKETS - 1)
        .find(|&i| latency_us <= 1i64 << (7 + i))
        .unwrap_or(LATENCY_BUCKETS - 1)
}

/// The latency below which `per_mille`/1000 of the requests fell, estimated from the histogram
/// (linear within the bucket); `None` without requests.
pub fn latency_quantile_us(buckets: &[i64; LATENCY_BUCKETS], per_mille: i64) -> Option<i64> {
    let total: i64 = buckets.iter().sum();
    if total <= 0 {
        return None;
    }
    // The rank of the request at the quantile, 1-based, rounded up.
    let rank = (total * per_mille.clamp(0, 1000) + 999) / 1000;
    let rank = rank.max(1);
    let mut before = 0;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && before + n >= rank {
            let lower = if i == 0 { 0 } else { 1i64 << (6 + i) };
            if i == LATENCY_BUCKETS - 1 {
                return Some(lower);
            }
            let upper = 1i64 << (7 + i);
            return Some(lower + (upper - lower) * (rank - before) / n);
        }
        before += n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        #[test]
        fn the_quick_check_never_misses_a_run_long_enough_to_mask(text in "[0-9a-z _-]{0,40}") {
            let longest = digit_runs(&text).iter().map(|r| r.digits.len()).max().unwrap_or(0);
            proptest::prop_assert_eq!(may_hold_shape(&text), longest >= 9);
        }
    }

    #[test]
    fn short_numbers_stay_numbers_and_long_ones_are_checked() {
        let v = masked(json!({"amount": 12_345_678, "n": 4_111_111_111_111_111_u64, "ssn_like": 123_456_789}));
        assert_eq!(v["amount"], 12_345_678);
        assert_eq!(v["n"], "************1111");
        assert_eq!(v["ssn_like"], "*****6789");
    }

    fn masked(v: Value) -> Value {
        let mut v = v;
        mask_json(&mut v);
        v
    }

    #[test]
    fn a_revealed_card_keeps_only_the_last_four_digits_and_no_cvv() {
        let v = masked(json!({"card_id": "card_1", "pan": "4111111111111111", "cvv": "123", "expiration": "2029-04"}));
        assert_eq!(v["pan"], "************1111");
        assert_eq!(v["cvv"], REDACTED);
        assert_eq!(v["expiration"], "2029-04");
        assert_eq!(v["card_id"], "card_1");
    }

    #[test]
    fn card_numbers_are_masked_anywhere_in_any_format() {
        let v = masked(json!({
            "first_name": "Pay 4111 1111 1111 1111 now",
            "notes": ["4111-1111-1111-1111"],
            "amount": 4_111_111_111_111_111_u64,
            "4111111111111111": true,
        }));
        let text = v.to_string();
        assert!(!text.contains("4111111111111111"), "{text}");
        assert!(!text.contains("4111 1111 1111 1111"), "{text}");
        assert!(!text.contains("4111-1111-1111-1111"), "{text}");
        assert_eq!(v["amount"], "************1111");
        assert_eq!(v["first_name"], "Pay **** **** **** 1111 now");
    }

    #[test]
    fn numbers_that_are_not_card_numbers_stay() {
        let v = masked(
            json!({"amount": 1500, "id": "card_0193a1b2c3d4", "phone_number": "+16508881111", "n": "411111111111"}),
        );
        assert_eq!(v["amount"], 1500);
        assert_eq!(v["phone_number"], "+16508881111");
        assert_eq!(v["n"], "411111111111", "twelve digits are too few for a card number");
    }

    #[test]
    fn a_cardholder_document_keeps_only_its_last_four_characters() {
        let v = masked(json!({"document": {"type": "ssn", "value": "490940000"}}));
        assert_eq!(v["document"]["value"], "*****0000");
        assert_eq!(v["document"]["type"], "ssn");
        let v = masked(json!({"document": {"type": "passport", "value": "X1234567"}}));
        assert_eq!(v["document"]["value"], "****4567");
    }

    #[test]
    fn identity_numbers_are_masked_by_name_and_by_shape() {
        let v = masked(
            json!({"ssn": "123-45-6789", "tax_id": 987654321, "passport_number": "AB12",
                              "first_name": "my ssn is 123-45-6789", "last_name": "123456789"}),
        );
        assert_eq!(v["ssn"], "*******6789");
        assert_eq!(v["tax_id"], "*****4321");
        assert_eq!(v["passport_number"], "**12");
        assert_eq!(v["first_name"], "my ssn is ***-**-6789");
        assert_eq!(v["last_name"], "*****6789");
    }

    #[test]
    fn nine_digits_inside_an_identifier_are_left_alone() {
        assert_eq!(mask_text("crdhldr_123456789abc"), "crdhldr_123456789abc");
    }

    #[test]
    fn secrets_are_replaced_whole() {
        let v = masked(
            json!({"secret": "sk_abc", "signing_secret": "whsec_x", "password": "hunter2hunter2",
                              "api_secret": "s", "new_password": "p", "pin": "1234", "security_code": "999",
                              "cvc": 123, "optional": null}),
        );
        for k in [
            "secret",
            "signing_secret",
            "password",
            "api_secret",
            "new_password",
            "pin",
            "security_code",
            "cvc",
        ] {
            assert_eq!(v[k], REDACTED, "{k}");
        }
        assert!(v["optional"].is_null());
    }

    #[test]
    fn a_one_time_code_is_masked_only_in_an_auth_body() {
        let v = masked(json!({"email": "a@b.c", "password": "x", "code": "123456"}));
        assert_eq!(v["code"], REDACTED);
        let v = masked(json!({"error": {"code": "parameter_invalid"}}));
        assert_eq!(v["error"]["code"], "parameter_invalid");
        assert_eq!(masked(json!({"totp": "123456"}))["totp"], REDACTED);
    }

    #[test]
    fn query_strings_are_decoded_and_masked() {
        assert_eq!(
            mask_query("limit=10&pan=4111111111111111"),
            "limit=10&pan=************1111"
        );
        assert_eq!(
            mask_query("q=4111%201111%201111%201111&cvv=123"),
            "q=**** **** **** 1111&cvv=[redacted]"
        );
        assert_eq!(mask_query("q=4111+1111+1111+1111&x=%zz"), "q=**** **** **** 1111&x=%zz");
    }

    #[test]
    fn a_non_json_body_keeps_only_its_type_and_length() {
        let body = mask_body(Some("multipart/form-data; boundary=x"), b"--x 4111111111111111", 100);
        assert_eq!(body.text, None);
        assert_eq!(body.length_bytes, 20);
        let broken = mask_body(Some("application/json"), b"{\"pan\": 4111111111111111", 100);
        assert_eq!(broken.text, None);
    }

    #[test]
    fn a_long_body_is_cut_at_the_cap_with_a_marker() {
        let big = json!({"items": vec!["abcdef"; 100]}).to_string();
        let body = mask_body(Some("application/json"), big.as_bytes(), 64);
        let text = body.text.unwrap();
        assert!(text.ends_with(TRUNCATION_MARKER));
        assert_eq!(text.len(), 64 + TRUNCATION_MARKER.len());
        assert_eq!(truncated("héllo".into(), 2), format!("h{TRUNCATION_MARKER}"));
    }

    #[test]
    fn latencies_fall_in_log_scale_buckets() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(128), 0);
        assert_eq!(latency_bucket(129), 1);
        assert_eq!(latency_bucket(1_000), 3);
        assert_eq!(latency_bucket(i64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_estimated_within_their_bucket() {
        let mut buckets = [0i64; LATENCY_BUCKETS];
        assert_eq!(latency_quantile_us(&buckets, 500), None);
        buckets[latency_bucket(1_000)] = 99; // 512..1024 µs
        buckets[latency_bucket(100_000)] = 1; // 65536..131072 µs
        let p50 = latency_quantile_us(&buckets, 500).unwrap();
        assert!((512..=1024).contains(&p50), "{p50}");
        assert!(latency_quantile_us(&buckets, 990).unwrap() <= 1024);
        assert!(latency_quantile_us(&buckets, 1000).unwrap() > 65_536);
    }
}
