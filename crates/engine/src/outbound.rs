//! One signed outbound JSON call, the way custodian authorizations and the KYC vendor are asked:
//! the body signed with the Standard Webhooks signer (when there is a secret), sent with the
//! client's own timeout and redirect policy, and the answer read up to a size limit. Errors are
//! short texts for the log: never the URL, never the body.

use cardplane_domain::Timestamp;
use cardplane_domain::webhook::{sign, standard_headers};

/// How much of an answer is read at most.
pub const ANSWER_LEN_MAX: usize = 16 * 1024;

/// POSTs `body` as JSON to `url` and returns the answer's bytes when the status is a success.
/// `peer` names the other side in errors (`custodian`, `provider`).
pub async fn post_signed_json(
    client: &reqwest::Client,
    url: &str,
    secret: Option<&[u8]>,
    body: Vec<u8>,
    peer: &str,
) -> Result<Vec<u8>, String> {
    let mut request = client.post(url).header("content-type", "application/json");
    if let Some(secret) = secret {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let timestamp = Timestamp::now().unix_seconds();
        for (name, value) in standard_headers(&id, timestamp, sign(secret, &id, timestamp, &body)) {
            request = request.header(name, value);
        }
    }
    let mut response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{peer} answered {}", response.status()));
    }
    let mut raw = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", e.without_url()))?
    {
        raw.extend_from_slice(&chunk);
        if raw.len() > ANSWER_LEN_MAX {
            return Err(format!("{peer} answer too large"));
        }
    }
    Ok(raw)
}
