//! Idempotency keys (IETF draft "Idempotency-Key"; Stripe): the fingerprint of a request and the
//! rules for what a second request with the same key gets.

use sha2::{Digest, Sha256};

use crate::error::FieldError;

pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// Keys are kept at least 24 h (DOMAIN.md); we keep them 48 h.
pub const IDEMPOTENCY_TTL_SECS: i64 = 48 * 3600;
/// A claim not completed in this time belongs to a request that died (crash, kill -9): the key
/// may be taken over instead of answering 409 forever.
pub const IDEMPOTENCY_CLAIM_STALE_SECS: i64 = 60;

pub fn parse_key(raw: &str) -> Result<String, FieldError> {
    if raw.is_empty() || raw.len() > IDEMPOTENCY_KEY_LEN_MAX || !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(FieldError::new(
            "idempotency_key",
            "idempotency_key_invalid",
            format!("must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// SHA-256 over method, path and the canonical JSON of the body (object keys sorted, whitespace
/// dropped), so a re-serialised but equal request still matches.
pub fn fingerprint(method: &str, path: &str, canonical_body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(canonical_body);
    crate::api_key::hex(&h.finalize())
}

/// What the store found for a key when a request tried to claim it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the request.
    Acquired { token: String },
    /// Finished before: replay this response.
    Completed {
        fingerprint: String,
        status: u16,
        body: Vec<u8>,
    },
    /// Another request with this key is still running.
    InFlight { fingerprint: String },
}

/// A multipart body with its boundary (random per send in most clients) replaced by a constant, so
/// a retry that sends the same parts under a new boundary is the same request. `content_type` is
/// the request's Content-Type header.
pub fn canonical_multipart(body: &[u8], content_type: &str) -> Vec<u8> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .next()
        .unwrap_or_default()
        .as_bytes();
    if boundary.is_empty() {
        return body.to_vec();
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        if rest.starts_with(boundary) {
            out.extend_from_slice(b"boundary");
            rest = &rest[boundary.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// JSON with object keys sorted at every level and no whitespace, whatever order the client (or
/// `serde_json`'s map) used.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(serde_json::to_vec(k).unwrap_or_default());
                    out.push(b':');
                    write(&map[k.as_str()], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn multipart_bodies_compare_without_their_boundary() {
        let body =
            |b: &str| format!("--{b}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nselfie\r\n--{b}--\r\n");
        let one = super::canonical_multipart(body("abc123").as_bytes(), "multipart/form-data; boundary=abc123");
        let two = super::canonical_multipart(body("zz9").as_bytes(), "multipart/form-data; boundary=\"zz9\"");
        assert_eq!(one, two);
        let other = body("zz9").replace("selfie", "other");
        assert_ne!(
            one,
            super::canonical_multipart(other.as_bytes(), "multipart/form-data; boundary=zz9")
        );
        // No boundary parameter: the bytes as they are.
        assert_eq!(super::canonical_multipart(b"raw", "multipart/form-data"), b"raw");
    }

    use super::*;

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&b),
            br#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#.to_vec()
        );
    }

    #[test]
    fn keys_must_be_visible_ascii_up_to_255() {
        assert!(parse_key("order-1").is_ok());
        assert!(parse_key("").is_err());
        assert!(parse_key("has space").is_err());
        assert!(parse_key(&"x".repeat(256)).is_err());
        assert!(parse_key(&"x".repeat(255)).is_ok());
    }
}
