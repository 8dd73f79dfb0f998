//! The audit log: who did what, when, from where, to which object, and whether it worked. Each
//! entry's hash covers its fields and the previous entry's hash, so editing, deleting or
//! reordering any entry breaks the chain from that point on.

use sha2::{Digest, Sha256};

use crate::time::Timestamp;

/// The hash before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

crate::wire_enum!(ActorKind {
    ApiKey => "api_key",
    User => "user",
    System => "system",
    Cli => "cli",
});

crate::wire_enum!(Outcome {
    Success => "success",
    Failure => "failure",
});

/// One entry before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub occurred_at: Timestamp,
    pub actor_kind: ActorKind,
    /// The API key, user, or a name for the system actor; none for an unknown person (a failed
    /// sign-in for an email that has no account).
    pub actor_id: Option<String>,
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    /// `POST /cards/{card_id}/activate`, `session.login`, `case.decide`...
    pub action: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: Outcome,
    /// The HTTP status answered, when there was one.
    pub status: Option<u16>,
    pub origin_ip: Option<String>,
    pub request_id: Option<String>,
    /// A JSON object with specifics (a role change's before and after, a failure's code).
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// Who did what and how it went; the rest (tenant, object, origin, details) is filled in by
    /// the caller where it applies.
    pub fn new(
        occurred_at: Timestamp,
        actor_kind: ActorKind,
        actor_id: Option<String>,
        action: &str,
        outcome: Outcome,
    ) -> Self {
        Self {
            occurred_at,
            actor_kind,
            actor_id,
            tenant_id: None,
            environment: None,
            action: action.to_owned(),
            object_type: None,
            object_id: None,
            outcome,
            status: None,
            origin_ip: None,
            request_id: None,
            details: serde_json::json!({}),
        }
    }

    #[must_use]
    pub fn on(mut self, object_type: &str, object_id: &str) -> Self {
        self.object_type = Some(object_type.to_owned());
        self.object_id = Some(object_id.to_owned());
        self
    }

    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// An entry as stored: its place in the chain and the hashes that seal it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub id: String,
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

fn field(h: &mut Sha256, value: Option<&str>) {
    // Length-prefixed, with absence distinct from empty, so no two field lists hash alike.
    match value {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
    }
}

/// The hash sealing entry `seq` with `id` and `record` after `prev_hash`.
pub fn entry_hash(prev_hash: &str, seq: i64, id: &str, r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    field(&mut h, Some(prev_hash));
    h.update(seq.to_be_bytes());
    field(&mut h, Some(id));
    h.update(r.occurred_at.as_micros().to_be_bytes());
    field(&mut h, Some(r.actor_kind.as_str()));
    field(&mut h, r.actor_id.as_deref());
    field(&mut h, r.tenant_id.as_deref());
    field(&mut h, r.environment.as_deref());
    field(&mut h, Some(&r.action));
    field(&mut h, r.object_type.as_deref());
    field(&mut h, r.object_id.as_deref());
    field(&mut h, Some(r.outcome.as_str()));
    field(&mut h, r.status.map(|s| s.to_string()).as_deref());
    field(&mut h, r.origin_ip.as_deref());
    field(&mut h, r.request_id.as_deref());
    let details = crate::idempotency::canonical_json(&r.details);
    h.update((details.len() as u64).to_be_bytes());
    h.update(&details);
    crate::api_key::hex(&h.finalize())
}

/// Where a chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {expected} is missing (found {found} next): entries were deleted")]
    Gap { expected: i64, found: i64 },
    #[error("entry {seq} does not follow its predecessor's hash")]
    Link { seq: i64 },
    #[error("entry {seq} was altered: its hash does not match its contents")]
    Altered { seq: i64 },
    #[error("the chain head says {head_seq} entries but the log ends at {last_seq}: entries were removed from the end")]
    Truncated { head_seq: i64, last_seq: i64 },
    #[error("the chain head's hash does not match the last entry")]
    Head,
}

/// Checks entries in order, carrying the state between batches so the whole log never has to be
/// in memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if e.seq != self.next_seq {
            return Err(ChainBreak::Gap {
                expected: self.next_seq,
                found: e.seq,
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak::Link { seq: e.seq });
        }
        if entry_hash(&e.prev_hash, e.seq, &e.id, &e.record) != e.hash {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        self.next_seq += 1;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    /// Compares the end of the log with the head the writers keep.
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Result<i64, ChainBreak> {
        let last_seq = self.next_seq - 1;
        if head_seq != last_seq {
            return Err(ChainBreak::Truncated { head_seq, last_seq });
        }
        if head_hash != self.prev_hash {
            return Err(ChainBreak::Head);
        }
        Ok(last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str) -> AuditRecord {
        AuditRecord {
            occurred_at: Timestamp::from_micros(1_700_000_000_000_000),
            actor_kind: ActorKind::User,
            actor_id: Some("usr_1".into()),
            tenant_id: None,
            environment: None,
            action: action.into(),
            object_type: Some("case".into()),
            object_id: Some("case_1".into()),
            outcome: Outcome::Success,
            status: Some(200),
            origin_ip: Some("127.0.0.1".into()),
            request_id: None,
            details: serde_json::json!({"b": 1, "a": [1, 2]}),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let id = format!("aud_{seq}");
                let record = record(&format!("action.{seq}"));
                let hash = entry_hash(&prev, seq, &id, &record);
                let e = AuditEntry {
                    seq,
                    id,
                    record,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry], head_seq: i64, head_hash: &str) -> Result<i64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for e in entries {
            v.check(e)?;
        }
        v.finish(head_seq, head_hash)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, 5, &c[4].hash), Ok(5));
        assert_eq!(verify(&[], 0, GENESIS_HASH), Ok(0));
    }

    #[test]
    fn every_kind_of_tampering_is_detected() {
        let c = chain(5);
        let head = c[4].hash.clone();

        let mut edited = c.clone();
        edited[2].record.outcome = Outcome::Failure;
        assert_eq!(verify(&edited, 5, &head), Err(ChainBreak::Altered { seq: 3 }));

        let mut rehashed = c.clone();
        rehashed[2].record.action = "forged".into();
        rehashed[2].hash = entry_hash(&rehashed[2].prev_hash, 3, &rehashed[2].id, &rehashed[2].record);
        assert_eq!(verify(&rehashed, 5, &head), Err(ChainBreak::Link { seq: 4 }));

        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(
            verify(&deleted, 5, &head),
            Err(ChainBreak::Gap { expected: 2, found: 3 })
        );

        assert_eq!(
            verify(&c[..4], 5, &head),
            Err(ChainBreak::Truncated {
                head_seq: 5,
                last_seq: 4
            })
        );
        assert_eq!(verify(&c, 5, GENESIS_HASH), Err(ChainBreak::Head));
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let mut a = record("x");
        a.tenant_id = None;
        let mut b = a.clone();
        b.tenant_id = Some(String::new());
        assert_ne!(
            entry_hash(GENESIS_HASH, 1, "i", &a),
            entry_hash(GENESIS_HASH, 1, "i", &b)
        );
    }
}
