//! Webhooks (Standard Webhooks 1.0): endpoint secrets, signatures, the retry schedule and what an
//! attempt's outcome means, and which network addresses an endpoint may point at. Pure: time,
//! randomness (jitter) and resolved addresses are passed in.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::environment::Environment;
use crate::event::EventType;
use crate::ids::{TenantId, WebhookEndpointId};
use crate::time::Timestamp;

pub const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;
const SECRET_BYTES_MIN: usize = 24;
const SECRET_BYTES_MAX: usize = 64;
/// Receivers accept a `webhook-timestamp` this far from their clock (either way).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// Delays after each failed attempt (DOMAIN.md): the first attempt is immediate, then 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about 75 h in all): ten attempts.
pub const RETRY_DELAYS_SECS: [i64; 9] = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];
/// The most attempts one delivery gets.
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 10;
/// Jitter input range: 0..=1000 thousandths of the maximum jitter, which is 10% of the delay.
pub const JITTER_PERMILLE_MAX: u32 = 1000;
/// A `Retry-After` longer than this is capped (a receiver must not park a delivery for ever).
pub const RETRY_AFTER_SECS_MAX: i64 = 86_400;

/// An endpoint's signing secret: `whsec_` + base64 of its key bytes. Masks itself in `Debug`
/// and `Display`, and is not `Serialize`: it is shown once, explicitly, through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret is `whsec_` followed by base64 of 24 to 64 bytes")]
    Malformed,
}

impl WebhookSecret {
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        WebhookSecret(key)
    }

    /// Accepts `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let encoded = raw.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = B64.decode(encoded).map_err(|_| SecretError::Malformed)?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(SecretError::Malformed);
        }
        Ok(WebhookSecret(key))
    }

    pub fn from_bytes(key: Vec<u8>) -> Result<Self, SecretError> {
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(SecretError::Malformed);
        }
        Ok(WebhookSecret(key))
    }

    /// The raw key bytes (what the vault seals).
    pub fn key_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_...` form, for the one response that shows it.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        sign(&self.0, msg_id, timestamp_secs, body)
    }

    fn mac(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> Vec<u8> {
        mac(&self.0, msg_id, timestamp_secs, body)
    }
}

fn mac(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The Standard Webhooks signature, `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`: the
/// one signer for webhooks, custodian calls and the KYC adapter.
pub fn sign(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    format!("v1,{}", B64.encode(mac(key, msg_id, timestamp_secs, body)))
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(whsec_***)")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_***")
    }
}

/// The three Standard Webhooks headers of one signed request (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`): webhook deliveries, custodian calls and the KYC adapter all send these.
pub fn standard_headers(msg_id: &str, timestamp_secs: i64, signature: String) -> [(&'static str, String); 3] {
    [
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", timestamp_secs.to_string()),
        ("webhook-signature", signature),
    ]
}

/// The `webhook-signature` header: one `v1,...` per secret, space-separated (several while a
/// rotation overlaps).
pub fn signature_header(secrets: &[WebhookSecret], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a number")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the allowed skew")]
    TimestampOutOfRange,
    #[error("no signature matches")]
    NoMatch,
}

/// A receiver's check: the timestamp is within tolerance of `now` and one of the signatures in
/// the header is ours (constant-time comparison).
pub fn verify(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now.unix_seconds() - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(VerifyError::TimestampOutOfRange);
    }
    let expected = secret.mac(msg_id, ts, body);
    let matched = signature_header
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| B64.decode(sig).ok())
        .any(|sig| bool::from(sig.ct_eq(&expected)));
    if matched { Ok(()) } else { Err(VerifyError::NoMatch) }
}

/// The delay before the next attempt after `attempts_made` failed attempts, or `None` when the
/// schedule is exhausted. `jitter_permille` (0..=1000, drawn by the caller) adds up to 10% so
/// that endpoints that failed together do not all retry in the same second.
pub fn retry_delay_micros(attempts_made: u32, jitter_permille: u32) -> Option<i64> {
    let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
    let base = RETRY_DELAYS_SECS.get(index)? * 1_000_000;
    let jitter = i64::from(jitter_permille.min(JITTER_PERMILLE_MAX));
    Some(base + base / 10 * jitter / 1000)
}

/// What one attempt's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// 2xx.
    Delivered,
    /// 410 Gone: the receiver asks us to stop; the endpoint is disabled.
    Gone,
    /// Anything else (other statuses, timeouts, connection errors, redirects): try again, not
    /// before `not_before_secs` when the receiver sent a `Retry-After` we honour.
    Failed { not_before_secs: Option<i64> },
}

/// Classifies an answer. `status` is `None` when no HTTP answer came back.
pub fn judge(status: Option<u16>, retry_after_secs: Option<i64>) -> AttemptVerdict {
    match status {
        Some(200..=299) => AttemptVerdict::Delivered,
        Some(410) => AttemptVerdict::Gone,
        Some(429 | 502 | 503 | 504) => AttemptVerdict::Failed {
            not_before_secs: retry_after_secs.map(|s| s.clamp(0, RETRY_AFTER_SECS_MAX)),
        },
        _ => AttemptVerdict::Failed { not_before_secs: None },
    }
}

/// The next step for a delivery after a failed attempt: when to retry (never earlier than our
/// schedule nor than the receiver's `Retry-After`), or give up.
pub fn next_attempt_at(
    attempted_at: Timestamp,
    attempts_made: u32,
    not_before_secs: Option<i64>,
    jitter_permille: u32,
) -> Option<Timestamp> {
    let scheduled = retry_delay_micros(attempts_made, jitter_permille)?;
    let asked = not_before_secs.map(|s| s * 1_000_000).unwrap_or(0);
    Some(Timestamp::from_micros(
        attempted_at.as_micros().saturating_add(scheduled.max(asked)),
    ))
}

/// `Retry-After`: delay-seconds or an HTTP-date.
pub fn parse_retry_after(raw: &str, now: Timestamp) -> Option<i64> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<i64>() {
        return Some(secs.max(0));
    }
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc2822).ok()?;
    Some((at.unix_timestamp() - now.unix_seconds()).max(0))
}

/// The event types an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnabledEvents {
    All,
    Only(Vec<EventType>),
}

impl EnabledEvents {
    /// `["*"]` is every type; otherwise known type names, at least one.
    pub fn parse(raw: &[String]) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("enabled_events needs at least one event type, or \"*\"".into());
        }
        if raw.iter().any(|r| r == "*") {
            return if raw.len() == 1 {
                Ok(EnabledEvents::All)
            } else {
                Err("\"*\" cannot be combined with other event types".into())
            };
        }
        let mut types = Vec::new();
        for r in raw {
            let t = EventType::parse(r).ok_or_else(|| format!("unknown event type `{r}`"))?;
            if !types.contains(&t) {
                types.push(t);
            }
        }
        Ok(EnabledEvents::Only(types))
    }

    pub fn names(&self) -> Vec<String> {
        match self {
            EnabledEvents::All => vec!["*".to_owned()],
            EnabledEvents::Only(types) => types.iter().map(|t| t.as_str().to_owned()).collect(),
        }
    }

    pub fn matches(&self, t: EventType) -> bool {
        match self {
            EnabledEvents::All => true,
            EnabledEvents::Only(types) => types.contains(&t),
        }
    }
}

// Why an endpoint stopped receiving deliveries.
crate::wire_enum!(DisabledReason {
    Manual => "manual",
    Gone => "gone",
    Failing => "failing",
});

/// An endpoint. Secrets are held only sealed (vault); the current one signs, the previous one
/// also signs until `previous_secret_expires_at` (rotation overlap).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub tenant_id: TenantId,
    pub environment: Environment,
    pub url: String,
    pub description: Option<String>,
    pub enabled_events: EnabledEvents,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    /// When the current run of failed attempts began; cleared by a success.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether the previous secret still signs at `now`.
    pub fn rotation_active(&self, now: Timestamp) -> bool {
        self.previous_secret_sealed.is_some() && self.previous_secret_expires_at.is_some_and(|t| t > now)
    }
}

/// Whether a run of failures that began at `failing_since` has lasted long enough to disable the
/// endpoint.
pub fn failing_too_long(failing_since: Option<Timestamp>, now: Timestamp, disable_after_secs: i64) -> bool {
    failing_since.is_some_and(|since| now.as_micros() - since.as_micros() >= disable_after_secs * 1_000_000)
}

/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `::1/128`; a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{raw}` is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max),
            None => Some(max),
        }
        .ok_or_else(|| format!("`{raw}` has an invalid prefix length"))?;
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 { 0 } else { bits >> (width - prefix) }
        }
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(n)), self.prefix, 32) == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(ip)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Never a destination: unspecified, multicast, broadcast, link-local (cloud metadata lives at
/// 169.254.169.254).
fn is_never_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Private, shared (CGNAT), unique-local and similar internal ranges.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) || o[0] == 0 || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// May an endpoint in `environment` receive deliveries at `ip`? Live refuses loopback, private
/// and link-local addresses unless the operator's allowlist contains them; sandbox allows
/// loopback and private networks (so a local receiver works) but never link-local.
pub fn address_allowed(ip: IpAddr, environment: Environment, allowlist: &[Network]) -> bool {
    let ip = canonical(ip);
    if allowlist.iter().any(|n| n.contains(ip)) {
        return true;
    }
    if is_never_routable(ip) {
        return false;
    }
    match environment {
        Environment::Sandbox => true,
        Environment::Live => !is_loopback(ip) && !is_internal(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trips_and_masks_itself() {
        let s = WebhookSecret::generate();
        let shown = s.expose();
        assert!(shown.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&shown).unwrap(), s);
        assert!(!format!("{s:?}").contains(&shown[6..]));
        assert!(!format!("{s}").contains(&shown[6..]));
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification's reference tests.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verify_accepts_any_listed_signature_and_rejects_tampering_and_skew() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        let now = Timestamp::from_micros(1_700_000_000_000_000);
        let ts = now.unix_seconds();
        let header = signature_header(&[a.clone(), b.clone()], "evt_1", ts, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&a, "evt_1", &ts.to_string(), &header, b"{}", now).is_ok());
        assert!(verify(&b, "evt_1", &ts.to_string(), &header, b"{}", now).is_ok());
        assert_eq!(
            verify(&a, "evt_1", &ts.to_string(), &header, b"{ }", now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(
                &WebhookSecret::generate(),
                "evt_1",
                &ts.to_string(),
                &header,
                b"{}",
                now
            ),
            Err(VerifyError::NoMatch)
        );
        let late = now.plus_secs(TIMESTAMP_TOLERANCE_SECS + 1);
        assert_eq!(
            verify(&a, "evt_1", &ts.to_string(), &header, b"{}", late),
            Err(VerifyError::TimestampOutOfRange)
        );
    }

    #[test]
    fn retry_schedule_follows_domain_md_with_bounded_jitter() {
        assert_eq!(retry_delay_micros(0, 0), None);
        assert_eq!(retry_delay_micros(1, 0), Some(5_000_000));
        assert_eq!(retry_delay_micros(1, 1000), Some(5_500_000));
        assert_eq!(retry_delay_micros(2, 0), Some(300_000_000));
        assert_eq!(retry_delay_micros(9, 0), Some(86_400_000_000));
        assert_eq!(retry_delay_micros(WEBHOOK_ATTEMPTS_MAX, 0), None);
        let total: i64 = RETRY_DELAYS_SECS.iter().sum();
        assert!((74 * 3600..76 * 3600).contains(&total));
        for attempts in 1..WEBHOOK_ATTEMPTS_MAX {
            for jitter in [0, 1, 500, 999, 1000, 5000] {
                let d = retry_delay_micros(attempts, jitter).unwrap();
                let base = retry_delay_micros(attempts, 0).unwrap();
                assert!(d >= base && d <= base + base / 10);
            }
        }
    }

    #[test]
    fn only_2xx_delivers_410_disables_and_retry_after_is_honoured() {
        assert_eq!(judge(Some(204), None), AttemptVerdict::Delivered);
        assert_eq!(judge(Some(410), None), AttemptVerdict::Gone);
        assert_eq!(judge(Some(301), None), AttemptVerdict::Failed { not_before_secs: None });
        assert_eq!(judge(None, None), AttemptVerdict::Failed { not_before_secs: None });
        assert_eq!(
            judge(Some(500), Some(60)),
            AttemptVerdict::Failed { not_before_secs: None }
        );
        assert_eq!(
            judge(Some(429), Some(120)),
            AttemptVerdict::Failed {
                not_before_secs: Some(120)
            }
        );
        let t = Timestamp::from_micros(0);
        assert_eq!(next_attempt_at(t, 1, Some(120), 0), Some(t.plus_secs(120)));
        assert_eq!(next_attempt_at(t, 1, Some(1), 0), Some(t.plus_secs(5)));
        assert_eq!(next_attempt_at(t, WEBHOOK_ATTEMPTS_MAX, Some(1), 0), None);
        assert_eq!(parse_retry_after("30", t), Some(30));
    }

    #[test]
    fn live_refuses_internal_addresses_unless_allowlisted() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "::1",
            "fd00::1",
            "100.64.0.1",
        ] {
            assert!(!address_allowed(ip(internal), Environment::Live, &[]), "{internal}");
        }
        for never in ["169.254.169.254", "0.0.0.0", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(!address_allowed(ip(never), Environment::Live, &[]), "{never}");
            assert!(!address_allowed(ip(never), Environment::Sandbox, &[]), "{never}");
        }
        assert!(address_allowed(ip("93.184.216.34"), Environment::Live, &[]));
        assert!(address_allowed(ip("127.0.0.1"), Environment::Sandbox, &[]));
        assert!(!address_allowed(ip("::ffff:127.0.0.1"), Environment::Live, &[]));
        let allow = [
            Network::parse("127.0.0.0/8").unwrap(),
            Network::parse("10.0.0.5").unwrap(),
        ];
        assert!(address_allowed(ip("127.0.0.1"), Environment::Live, &allow));
        assert!(address_allowed(ip("10.0.0.5"), Environment::Live, &allow));
        assert!(!address_allowed(ip("10.0.0.6"), Environment::Live, &allow));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope").is_err());
    }

    #[test]
    fn enabled_events_parse_star_or_known_types() {
        assert_eq!(EnabledEvents::parse(&["*".into()]).unwrap(), EnabledEvents::All);
        assert!(EnabledEvents::parse(&[]).is_err());
        assert!(EnabledEvents::parse(&["*".into(), "card.created".into()]).is_err());
        assert!(EnabledEvents::parse(&["nope".into()]).is_err());
        let only = EnabledEvents::parse(&["card.created".into()]).unwrap();
        assert!(only.matches(EventType::CardCreated));
        assert!(!only.matches(EventType::CardUpdated));
    }
}
