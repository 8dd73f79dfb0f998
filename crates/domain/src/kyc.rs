//! KYC statuses and reasons exactly as the Apto Core API lists them, the rules that tie them
//! together (all reasons null when PASSED), and the deterministic sandbox provider.

use crate::identity::{Document, Identity};
use crate::time::Timestamp;

wire_enum!(KycStatus {
    ResubmitDetails => "RESUBMIT_DETAILS",
    UploadFile => "UPLOAD_FILE",
    UnderReview => "UNDER_REVIEW",
    Passed => "PASSED",
    Rejected => "REJECTED",
    TemporaryError => "TEMPORARY_ERROR",
    NotChecked => "NOT_CHECKED",
});

wire_enum!(IdentityReason {
    WatchlistMatch => "WATCHLIST_MATCH",
    SsnMismatch => "SSN_MISMATCH",
    SsnInvalid => "SSN_INVALID",
});

wire_enum!(AddressReason {
    Commercial => "ADDRESS_COMMERCIAL",
    PoBox => "ADDRESS_PO_BOX",
    Risky => "ADDRESS_RISKY",
});

wire_enum!(FileReason {
    UnrelatedFile => "UNRELATED_FILE",
    WrongFile => "WRONG_FILE",
    Blurry => "BLURRY",
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KycError {
    #[error("a PASSED result cannot carry a reason")]
    ReasonOnPassed,
}

/// One verdict from a KYC provider. The constructor enforces the seed's rule that every reason
/// is null when the status is PASSED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KycResult {
    status: KycStatus,
    identity_reason: Option<IdentityReason>,
    address_reason: Option<AddressReason>,
    file_reason: Option<FileReason>,
}

impl KycResult {
    pub fn new(
        status: KycStatus,
        identity_reason: Option<IdentityReason>,
        address_reason: Option<AddressReason>,
        file_reason: Option<FileReason>,
    ) -> Result<Self, KycError> {
        let any_reason = identity_reason.is_some() || address_reason.is_some() || file_reason.is_some();
        if status == KycStatus::Passed && any_reason {
            return Err(KycError::ReasonOnPassed);
        }
        Ok(Self {
            status,
            identity_reason,
            address_reason,
            file_reason,
        })
    }

    pub fn status_only(status: KycStatus) -> Self {
        Self {
            status,
            identity_reason: None,
            address_reason: None,
            file_reason: None,
        }
    }

    pub fn passed() -> Self {
        Self::status_only(KycStatus::Passed)
    }

    pub fn temporary_error() -> Self {
        Self::status_only(KycStatus::TemporaryError)
    }

    pub fn status(&self) -> KycStatus {
        self.status
    }
    pub fn identity_reason(&self) -> Option<IdentityReason> {
        self.identity_reason
    }
    pub fn address_reason(&self) -> Option<AddressReason> {
        self.address_reason
    }
    pub fn file_reason(&self) -> Option<FileReason> {
        self.file_reason
    }
}

/// A cardholder's current KYC position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KycState {
    pub result: KycResult,
    pub passed_at: Option<Timestamp>,
}

impl KycState {
    pub fn not_checked() -> Self {
        Self {
            result: KycResult::status_only(KycStatus::NotChecked),
            passed_at: None,
        }
    }

    /// Applies a provider verdict. `passed_at` is the first time KYC passed and is kept after.
    #[must_use]
    pub fn record(self, result: KycResult, at: Timestamp) -> Self {
        let passed_at = match result.status() {
            KycStatus::Passed => Some(self.passed_at.unwrap_or(at)),
            _ => self.passed_at,
        };
        Self { result, passed_at }
    }

    /// Whether a change to the cardholder's identity should be checked again. REJECTED is final
    /// and UNDER_REVIEW is with a human: neither is re-run automatically.
    pub fn rerun_on_identity_change(&self) -> bool {
        match self.result.status() {
            KycStatus::ResubmitDetails
            | KycStatus::UploadFile
            | KycStatus::TemporaryError
            | KycStatus::NotChecked
            | KycStatus::Passed => true,
            KycStatus::UnderReview | KycStatus::Rejected => false,
        }
    }

    pub fn passed(&self) -> bool {
        self.result.status() == KycStatus::Passed
    }
}

/// What a KYC provider is asked to verify.
#[derive(Debug, Clone)]
pub struct KycApplicant {
    pub reference: String,
    pub identity: Identity,
    pub email: String,
    pub phone_number: String,
    pub document: Document,
}

/// The sandbox provider: the verdict is a pure function of the document number's last four
/// digits, so integrators can produce every status and reason on purpose (table in the README).
pub fn sandbox_verdict(applicant: &KycApplicant) -> KycResult {
    use AddressReason as A;
    use FileReason as F;
    use IdentityReason as I;
    use KycStatus as S;
    let (status, identity, address, file) = match applicant.document.number.last4().as_str() {
        "0001" => (S::Rejected, Some(I::WatchlistMatch), None, None),
        "0002" => (S::ResubmitDetails, Some(I::SsnMismatch), None, None),
        "0003" => (S::ResubmitDetails, Some(I::SsnInvalid), None, None),
        "0004" => (S::ResubmitDetails, None, Some(A::PoBox), None),
        "0005" => (S::UnderReview, None, Some(A::Commercial), None),
        "0006" => (S::UnderReview, None, Some(A::Risky), None),
        "0007" => (S::UploadFile, None, None, None),
        "0008" => (S::UploadFile, None, None, Some(F::Blurry)),
        "0009" => (S::UploadFile, None, None, Some(F::WrongFile)),
        "0010" => (S::UploadFile, None, None, Some(F::UnrelatedFile)),
        "0011" => (S::TemporaryError, None, None, None),
        "0012" => (S::UnderReview, Some(I::WatchlistMatch), None, None),
        "0013" => (S::NotChecked, None, None, None),
        _ => (S::Passed, None, None, None),
    };
    KycResult::new(status, identity, address, file).expect("sandbox table never puts a reason on PASSED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_cannot_carry_reasons() {
        assert_eq!(
            KycResult::new(KycStatus::Passed, Some(IdentityReason::SsnInvalid), None, None),
            Err(KycError::ReasonOnPassed)
        );
        assert!(KycResult::new(KycStatus::Rejected, Some(IdentityReason::SsnInvalid), None, None).is_ok());
    }

    #[test]
    fn passed_at_is_the_first_pass() {
        let t1 = Timestamp::from_micros(1);
        let t2 = Timestamp::from_micros(2);
        let s = KycState::not_checked()
            .record(KycResult::passed(), t1)
            .record(KycResult::passed(), t2);
        assert_eq!(s.passed_at, Some(t1));
        let again = s.record(KycResult::temporary_error(), t2);
        assert_eq!(again.passed_at, Some(t1));
    }

    #[test]
    fn wire_names_round_trip() {
        for s in KycStatus::ALL {
            assert_eq!(KycStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(serde_json::to_string(&FileReason::Blurry).unwrap(), "\"BLURRY\"");
    }
}

/// One run of a KYC provider, kept as history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KycCheck {
    pub id: crate::ids::KycCheckId,
    pub cardholder_id: crate::ids::CardholderId,
    /// `sandbox`, `http` or `none`.
    pub provider: String,
    pub result: KycResult,
    pub created_at: Timestamp,
}
