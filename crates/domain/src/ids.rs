//! Prefixed, time-ordered identifiers: `crdhldr_` + 32 lowercase hex digits of a UUIDv7.
//! Because the hex is fixed-length and the UUID starts with a millisecond timestamp (and is
//! monotonic within a process), string order is creation order, so cursors can sort by ID alone.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct IdParseError {
    pub kind: &'static str,
}

const HEX_LEN: usize = 32;

fn parse_prefixed(raw: &str, prefix: &str, kind: &'static str) -> Result<(), IdParseError> {
    let err = IdParseError { kind };
    let rest = raw
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(err.clone())?;
    if rest.len() != HEX_LEN || !rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(err);
    }
    Ok(())
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(fresh($prefix))
            }

            pub fn parse(raw: &str) -> Result<Self, IdParseError> {
                parse_prefixed(raw, $prefix, stringify!($name))?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

define_id!(
    /// A tenant: one fintech client ("custodian"). Shown as `corporation_id` like the Apto API.
    TenantId,
    "corp"
);
define_id!(ApiKeyId, "key");
define_id!(CardholderId, "crdhldr");
define_id!(KycCheckId, "kyc");
define_id!(EventId, "evt");
define_id!(CardOrderId, "cordr");
define_id!(DataKeyId, "dk");
define_id!(ProgramId, "prog");
define_id!(CardId, "card");
define_id!(AccountId, "acct");
define_id!(JournalId, "jrnl");
define_id!(LedgerEntryId, "entry");
define_id!(BalanceAdjustmentId, "badj");
define_id!(CardRevealId, "rvl");
define_id!(TransactionId, "txn");
define_id!(SpendControlId, "sc");
define_id!(NetworkCredentialId, "net");
define_id!(WebhookEndpointId, "we");
define_id!(WebhookAttemptId, "whatt");
define_id!(UserId, "usr");
define_id!(SessionId, "ses");
define_id!(CaseId, "case");
define_id!(CaseNoteId, "note");
define_id!(DocumentId, "doc");
define_id!(AuditEntryId, "aud");
define_id!(DisputeId, "dsp");
define_id!(DisputeNoteId, "dspnote");
define_id!(AuthorizationRuleId, "arule");
define_id!(BacktestId, "abt");
define_id!(AlertId, "alrt");
define_id!(InvitationId, "inv");
define_id!(
    /// One request in the developer portal's request log.
    RequestLogId,
    "reqlog"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_creation() {
        let ids: Vec<CardholderId> = (0..1000).map(|_| CardholderId::generate()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{:?} !< {:?}", w[0], w[1]);
        }
        assert_eq!(CardholderId::parse(ids[0].as_str()).unwrap(), ids[0]);
    }

    #[test]
    fn parse_rejects_wrong_prefix_charset_and_length() {
        let good = CardholderId::generate().to_string();
        assert!(TenantId::parse(&good).is_err());
        assert!(CardholderId::parse(&good.to_uppercase()).is_err());
        assert!(CardholderId::parse(&good[..good.len() - 1]).is_err());
        assert!(CardholderId::parse("crdhldr_").is_err());
        assert!(CardholderId::parse("crdhldr_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz").is_err());
    }
}
