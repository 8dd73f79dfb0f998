//! Primary account numbers. A `Pan` masks itself (first 6 / last 4 at most) and is not
//! `Serialize`: it leaves the process only sealed, as a keyed hash, or through an audited reveal.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

pub const PAN_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct Pan(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PanError {
    #[error("card numbers are 12 to 19 digits")]
    Length,
    #[error("card numbers are digits only")]
    NotDigits,
    #[error("the check digit is wrong")]
    Luhn,
}

/// The Luhn check digit for `payload` (all digits but the last).
pub fn luhn_check_digit(payload: &str) -> u8 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    u8::try_from((10 - sum % 10) % 10).expect("a digit")
}

pub fn luhn_valid(number: &str) -> bool {
    number.len() >= 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && luhn_check_digit(&number[..number.len() - 1]) == number.as_bytes()[number.len() - 1] - b'0'
}

impl Pan {
    pub fn parse(raw: &str) -> Result<Pan, PanError> {
        if !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PanError::NotDigits);
        }
        if !(12..=19).contains(&raw.len()) {
            return Err(PanError::Length);
        }
        if !luhn_valid(raw) {
            return Err(PanError::Luhn);
        }
        Ok(Pan(raw.to_owned()))
    }

    /// BIN + random account digits + Luhn digit, `PAN_LEN` long.
    pub fn generate(bin: &str, rng: &mut impl Rng) -> Pan {
        let mut payload = String::with_capacity(PAN_LEN);
        payload.push_str(bin);
        while payload.len() < PAN_LEN - 1 {
            payload.push(char::from(b'0' + rng.random_range(0..10u8)));
        }
        let check = luhn_check_digit(&payload);
        payload.push(char::from(b'0' + check));
        Pan(payload)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    pub fn starts_with(&self, bin: &str) -> bool {
        self.0.starts_with(bin)
    }

    /// A keyed hash for exact lookup by PAN (the network sends PANs); useless without the key.
    pub fn lookup_hash(&self, key: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(self.0.as_bytes());
        crate::api_key::hex(&mac.finalize().into_bytes())
    }

    /// CVV2 derived on demand from PAN and expiry with a keyed function, so it is never stored.
    pub fn cvv(&self, key: &[u8], exp_month: u8, exp_year: u16) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(self.0.as_bytes());
        mac.update(format!("|{exp_year:04}-{exp_month:02}").as_bytes());
        let bytes = mac.finalize().into_bytes();
        let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 1000;
        format!("{n:03}")
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({}******{})", &self.0[..6], self.last4())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}******{}", &self.0[..6], self.last4())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_known_numbers() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5555555555554444"));
        assert!(!luhn_valid("4111111111111112"));
        assert_eq!(Pan::parse("4111111111111112"), Err(PanError::Luhn));
    }

    #[test]
    fn generated_pans_pass_luhn_and_keep_their_bin() {
        let mut rng = rand::rng();
        for bin in ["411111", "52345678"] {
            for _ in 0..1000 {
                let pan = Pan::generate(bin, &mut rng);
                assert_eq!(pan.expose().len(), PAN_LEN);
                assert!(pan.starts_with(bin));
                assert!(luhn_valid(pan.expose()));
            }
        }
    }

    #[test]
    fn pans_mask_themselves_and_cvv_is_stable() {
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(format!("{pan:?}"), "Pan(411111******1111)");
        assert_eq!(pan.to_string(), "411111******1111");
        let cvv = pan.cvv(b"k", 11, 2029);
        assert_eq!(cvv.len(), 3);
        assert_eq!(cvv, pan.cvv(b"k", 11, 2029));
        assert_ne!(pan.lookup_hash(b"k"), pan.lookup_hash(b"other"));
    }
}
