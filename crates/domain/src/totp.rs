//! Second factor: TOTP (RFC 6238, HMAC-SHA1, 30-second steps, 6 digits — what authenticator apps
//! speak) and one-time recovery codes.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps either side of now that still count: phones drift.
pub const SKEW_STEPS: i64 = 1;
pub const RECOVERY_CODES: usize = 10;
const SECRET_BYTES: usize = 20;

/// The shared secret, as raw bytes. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(****)")
    }
}

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill(&mut bytes[..]);
        Self(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Parses the base32 form people type (case and spaces ignored).
    pub fn from_base32(text: &str) -> Option<Self> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        data_encoding::BASE32_NOPAD.decode(cleaned.as_bytes()).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding: what people type into an authenticator app.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The `otpauth://` URI an app reads from a QR code.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            enc(issuer),
            enc(account),
            self.base32(),
            enc(issuer)
        )
    }

    /// The code for one time step (RFC 4226 dynamic truncation).
    pub fn code_at_step(&self, step: i64) -> u32 {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[19] & 0x0f);
        let binary = (u32::from(digest[offset]) & 0x7f) << 24
            | u32::from(digest[offset + 1]) << 16
            | u32::from(digest[offset + 2]) << 8
            | u32::from(digest[offset + 3]);
        binary % 10u32.pow(DIGITS)
    }

    pub fn code_at(&self, unix_seconds: i64) -> String {
        format!("{:06}", self.code_at_step(unix_seconds.div_euclid(STEP_SECS)))
    }

    /// The step a presented code matches, if it matches one near now that is newer than
    /// `last_used_step`: a code that was accepted once is never accepted again (replay).
    pub fn verify(&self, presented: &str, unix_seconds: i64, last_used_step: Option<i64>) -> TotpCheck {
        let presented = presented.trim();
        if presented.len() != DIGITS as usize || !presented.bytes().all(|b| b.is_ascii_digit()) {
            return TotpCheck::Wrong;
        }
        let now_step = unix_seconds.div_euclid(STEP_SECS);
        let mut replayed = false;
        for step in (now_step - SKEW_STEPS)..=(now_step + SKEW_STEPS) {
            if format!("{:06}", self.code_at_step(step)) == presented {
                if last_used_step.is_some_and(|last| step <= last) {
                    replayed = true;
                } else {
                    return TotpCheck::Valid { step };
                }
            }
        }
        if replayed {
            TotpCheck::Replayed
        } else {
            TotpCheck::Wrong
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    Valid { step: i64 },
    Replayed,
    Wrong,
}

/// Ten single-use recovery codes (`xxxxx-xxxxx`, base32 alphabet); shown once, stored hashed.
pub fn generate_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut s = String::with_capacity(11);
            for i in 0..10 {
                if i == 5 {
                    s.push('-');
                }
                s.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
            }
            s
        })
        .collect()
}

/// Recovery codes have 50 bits of entropy and are single use: a plain SHA-256 is enough, and
/// lets sign-in look one up without trying every stored hash.
pub fn recovery_code_hash(code: &str) -> String {
    let normalized: String = code
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    crate::api_key::hex(&Sha256::digest(normalized.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column (8 digits there; the last 6 are ours).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, expected8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code_at(time), expected8[2..], "t={time}");
        }
    }

    #[test]
    fn a_code_is_accepted_once_within_one_step_of_skew() {
        let s = TotpSecret::generate();
        let now = 1_700_000_000;
        let code = s.code_at(now);
        let TotpCheck::Valid { step } = s.verify(&code, now, None) else {
            panic!("fresh code refused")
        };
        assert_eq!(s.verify(&code, now, Some(step)), TotpCheck::Replayed);
        assert!(matches!(
            s.verify(&code, now + STEP_SECS, None),
            TotpCheck::Valid { .. }
        ));
        assert_eq!(s.verify(&code, now + 3 * STEP_SECS, None), TotpCheck::Wrong);
        assert_eq!(s.verify("12345", now, None), TotpCheck::Wrong);
        assert_eq!(s.verify("abcdef", now, None), TotpCheck::Wrong);
        // The next step's code is still fine after this one was used.
        let next = s.code_at(now + STEP_SECS);
        assert!(matches!(
            s.verify(&next, now + STEP_SECS, Some(step)),
            TotpCheck::Valid { .. }
        ));
    }

    #[test]
    fn base32_and_uri() {
        let s = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(s.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq"),
            Some(s.clone())
        );
        let uri = s.provisioning_uri("Cardplane", "ada@example.com");
        assert!(uri.starts_with("otpauth://totp/Cardplane:ada%40example.com?secret=GEZDGNBV"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_loosely() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(
            recovery_code_hash(c),
            recovery_code_hash(&c.to_uppercase().replace('-', " "))
        );
    }
}
