-- Programs get a disputes account (provisional credit is paid from it, chargebacks settle it).
-- SQLite cannot change a CHECK in place: the accounts table is rebuilt by the documented
-- twelve-step procedure (foreign keys off outside the transaction, so the tables that reference
-- accounts keep their rows; checked before commit), which is why this migration runs outside
-- the migrator's transaction.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE accounts_rebuilt (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    environment TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    program_id  TEXT NOT NULL REFERENCES programs (id),
    kind        TEXT NOT NULL CHECK (kind IN ('program_funding', 'program_settlement', 'program_fees', 'program_external', 'program_losses', 'program_disputes', 'card_balance')),
    currency    TEXT NOT NULL,
    floor       BIGINT,
    balance     BIGINT NOT NULL,
    held        BIGINT NOT NULL CHECK (held >= 0),
    created_at  BIGINT NOT NULL,
    CHECK (floor IS NULL OR balance - held >= floor)
);
INSERT INTO accounts_rebuilt (id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at)
    SELECT id, tenant_id, environment, program_id, kind, currency, floor, balance, held, created_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_rebuilt RENAME TO accounts;
CREATE UNIQUE INDEX accounts_program_kind ON accounts (program_id, kind) WHERE kind <> 'card_balance';
CREATE TRIGGER dispute_notes_no_update BEFORE UPDATE ON dispute_notes
BEGIN SELECT RAISE(ABORT, 'dispute notes are append-only'); END;
CREATE TRIGGER dispute_notes_no_delete BEFORE DELETE ON dispute_notes
BEGIN SELECT RAISE(ABORT, 'dispute notes are append-only'); END;
CREATE TRIGGER dispute_evidence_no_update BEFORE UPDATE ON dispute_evidence
BEGIN SELECT RAISE(ABORT, 'dispute evidence is append-only'); END;
CREATE TRIGGER dispute_evidence_no_delete BEFORE DELETE ON dispute_evidence
BEGIN SELECT RAISE(ABORT, 'dispute evidence is append-only'); END;
COMMIT;
PRAGMA foreign_keys = ON;
