//! The `KycProvider` port and its adapters: the deterministic sandbox provider, an HTTP provider
//! for a real identity-verification vendor, and `none`. A provider never fails the request: an
//! error or timeout is a TEMPORARY_ERROR verdict.

use std::time::Duration;

use async_trait::async_trait;
use cardplane_domain::kyc::{
    AddressReason, FileReason, IdentityReason, KycApplicant, KycResult, KycStatus, sandbox_verdict,
};
use serde::{Deserialize, Serialize};

#[async_trait]
pub trait KycProvider: Send + Sync {
    /// Recorded on each check (`sandbox`, `http`, `none`).
    fn name(&self) -> &'static str;
    async fn verify(&self, applicant: &KycApplicant) -> KycResult;
}

pub struct SandboxKyc;

#[async_trait]
impl KycProvider for SandboxKyc {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn verify(&self, applicant: &KycApplicant) -> KycResult {
        sandbox_verdict(applicant)
    }
}

pub struct NoKyc;

#[async_trait]
impl KycProvider for NoKyc {
    fn name(&self) -> &'static str {
        "none"
    }

    async fn verify(&self, _applicant: &KycApplicant) -> KycResult {
        KycResult::status_only(KycStatus::NotChecked)
    }
}

/// Posts the applicant as JSON to a vendor URL; the contract is in docs/API.md ("KYC provider").
pub struct HttpKyc {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
}

#[derive(Serialize)]
struct HttpApplicant<'a> {
    reference: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    email: &'a str,
    phone_number: &'a str,
    date_of_birth: String,
    address: HttpAddress<'a>,
    document: HttpDocument<'a>,
}

#[derive(Serialize)]
struct HttpAddress<'a> {
    street_one: &'a str,
    street_two: Option<&'a str>,
    locality: &'a str,
    region: &'a str,
    postal_code: &'a str,
    country: &'a str,
}

#[derive(Serialize)]
struct HttpDocument<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpVerdict {
    status: String,
    identity_reason: Option<String>,
    address_reason: Option<String>,
    file_reason: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    reference: Option<String>,
}

impl HttpKyc {
    pub fn new(url: String, timeout: Duration, secret: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client builds with rustls");
        Self { client, url, secret }
    }

    async fn call(&self, applicant: &KycApplicant) -> Result<KycResult, String> {
        let id = &applicant.identity;
        let a = &id.address;
        let payload = HttpApplicant {
            reference: &applicant.reference,
            first_name: &id.first_name,
            last_name: &id.last_name,
            email: &applicant.email,
            phone_number: &applicant.phone_number,
            date_of_birth: id.date_of_birth.to_iso(),
            address: HttpAddress {
                street_one: &a.street_one,
                street_two: a.street_two.as_deref(),
                locality: &a.locality,
                region: &a.region,
                postal_code: &a.postal_code,
                country: &a.country,
            },
            document: HttpDocument {
                kind: applicant.document.kind.as_str(),
                value: applicant.document.number.expose(),
            },
        };
        let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
        let secret = self.secret.as_deref().map(str::as_bytes);
        let raw = crate::outbound::post_signed_json(&self.client, &self.url, secret, body, "provider").await?;
        let verdict: HttpVerdict = serde_json::from_slice(&raw).map_err(|e| format!("malformed verdict: {e}"))?;
        parse_verdict(&verdict)
    }
}

fn parse_verdict(v: &HttpVerdict) -> Result<KycResult, String> {
    let status = KycStatus::parse(&v.status).ok_or_else(|| format!("unknown status {:?}", v.status))?;
    let identity = v
        .identity_reason
        .as_deref()
        .map(|r| IdentityReason::parse(r).ok_or("unknown identity_reason"))
        .transpose()?;
    let address = v
        .address_reason
        .as_deref()
        .map(|r| AddressReason::parse(r).ok_or("unknown address_reason"))
        .transpose()?;
    let file = v
        .file_reason
        .as_deref()
        .map(|r| FileReason::parse(r).ok_or("unknown file_reason"))
        .transpose()?;
    KycResult::new(status, identity, address, file).map_err(|e| e.to_string())
}

#[async_trait]
impl KycProvider for HttpKyc {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn verify(&self, applicant: &KycApplicant) -> KycResult {
        match self.call(applicant).await {
            Ok(result) => result,
            Err(reason) => {
                // The reason never contains applicant data: only transport or format problems.
                tracing::warn!(kyc.reference = %applicant.reference, reason, "KYC provider failed; recording TEMPORARY_ERROR");
                KycResult::temporary_error()
            }
        }
    }
}
