-- Disputes: a cardholder's claim against a cleared purchase, its network cycle and Regulation E
-- clock. The journals behind it are ordinary ledger journals (kinds dispute_*), posted against the
-- program's disputes account (opened on first use) and the card's balance account.
CREATE TABLE dispute_policies (
    program_id                        TEXT PRIMARY KEY REFERENCES programs (id),
    filing_window_days                BIGINT NOT NULL,
    fraud_disputes_per_card_max       BIGINT NOT NULL,
    provisional_credit_business_days  BIGINT NOT NULL,
    resolution_days                   BIGINT NOT NULL,
    extended_resolution_days          BIGINT NOT NULL,
    provisional_credit                TEXT NOT NULL,
    updated_at                        BIGINT NOT NULL
);

CREATE TABLE disputes (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES tenants (id),
    environment                TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    transaction_id             TEXT NOT NULL REFERENCES transactions (id),
    card_id                    TEXT NOT NULL REFERENCES cards (id),
    cardholder_id              TEXT NOT NULL REFERENCES cardholders (id),
    program_id                 TEXT NOT NULL REFERENCES programs (id),
    account_id                 TEXT NOT NULL REFERENCES accounts (id),
    currency                   TEXT NOT NULL,
    amount                     BIGINT NOT NULL CHECK (amount > 0),
    reason                     TEXT NOT NULL,
    reason_family              TEXT NOT NULL,
    network_reason_code        TEXT NOT NULL,
    customer_note              TEXT,
    customer_filed_at          BIGINT NOT NULL,
    status                     TEXT NOT NULL CHECK (status IN ('new', 'pending_customer', 'submitted', 'representment', 'pre_arbitration', 'arbitration', 'closed')),
    disposition                TEXT CHECK (disposition IN ('won', 'lost', 'partially_won', 'withdrawn', 'denied')),
    recovered                  BIGINT,
    resolution_reason          TEXT,
    provisional_credit         BIGINT NOT NULL CHECK (provisional_credit >= 0 AND provisional_credit <= amount),
    provisional_credit_due_at  BIGINT NOT NULL,
    resolution_due_at          BIGINT NOT NULL,
    deadline_flagged_at        BIGINT,
    assignee_id                TEXT REFERENCES users (id),
    submitted_at               BIGINT,
    representment_at           BIGINT,
    pre_arbitration_at         BIGINT,
    arbitration_at             BIGINT,
    closed_at                  BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    version                    BIGINT NOT NULL,
    CHECK ((status = 'closed') = (disposition IS NOT NULL))
);
CREATE INDEX disputes_scope ON disputes (tenant_id, environment, id);
CREATE INDEX disputes_transaction ON disputes (transaction_id);
CREATE INDEX disputes_card ON disputes (card_id, reason_family);
-- The deadline job's two questions: open cases whose credit is due, and open cases near the end.
CREATE INDEX disputes_open_credit_due ON disputes (provisional_credit_due_at) WHERE status <> 'closed';
CREATE INDEX disputes_open_resolution_due ON disputes (resolution_due_at) WHERE status <> 'closed';

CREATE TABLE dispute_evidence (
    id           TEXT PRIMARY KEY,
    dispute_id   TEXT NOT NULL REFERENCES disputes (id),
    document_id  TEXT NOT NULL REFERENCES documents (id),
    -- custodian (the cardholder's side), merchant (a representment) or operator.
    submitted_by TEXT NOT NULL CHECK (submitted_by IN ('custodian', 'merchant', 'operator')),
    created_at   BIGINT NOT NULL
);
CREATE INDEX dispute_evidence_dispute ON dispute_evidence (dispute_id, id);

CREATE TABLE dispute_notes (
    id          TEXT PRIMARY KEY,
    dispute_id  TEXT NOT NULL REFERENCES disputes (id),
    author_id   TEXT REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX dispute_notes_dispute ON dispute_notes (dispute_id, id);
