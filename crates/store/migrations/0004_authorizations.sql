-- Real-time authorization: network credentials, transactions (authorizations with their holds,
-- clearings, reversals; force posts; refunds), network message idempotency, spend controls.

CREATE TABLE network_credentials (
    id          TEXT PRIMARY KEY,
    environment TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

ALTER TABLE programs ADD COLUMN merchant_rules TEXT NOT NULL DEFAULT '{}';
ALTER TABLE programs ADD COLUMN custodian TEXT;

CREATE TABLE transactions (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL,
    environment            TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    card_id                TEXT NOT NULL REFERENCES cards (id),
    cardholder_id          TEXT NOT NULL,
    program_id             TEXT NOT NULL,
    account_id             TEXT NOT NULL REFERENCES accounts (id),
    kind                   TEXT NOT NULL CHECK (kind IN ('authorization', 'force_post', 'refund')),
    state                  TEXT NOT NULL CHECK (state IN ('PENDING', 'DECLINED', 'COMPLETE', 'REVERSED', 'EXPIRED')),
    network_transaction_id TEXT NOT NULL,
    currency               TEXT NOT NULL,
    requested_amount       BIGINT NOT NULL CHECK (requested_amount > 0),
    authorized_amount      BIGINT NOT NULL CHECK (authorized_amount >= 0),
    held_amount            BIGINT NOT NULL CHECK (held_amount >= 0),
    cleared_amount         BIGINT NOT NULL CHECK (cleared_amount >= 0),
    reversed_amount        BIGINT NOT NULL CHECK (reversed_amount >= 0),
    response_code          TEXT NOT NULL,
    decline_reason         TEXT,
    authorization_code     TEXT,
    merchant_id            TEXT NOT NULL,
    merchant_name          TEXT NOT NULL,
    mcc                    TEXT NOT NULL,
    merchant_country       TEXT NOT NULL,
    merchant_city          TEXT NOT NULL,
    entry_mode             TEXT NOT NULL,
    stand_in               SMALLINT NOT NULL CHECK (stand_in IN (0, 1)),
    decision_trace         TEXT NOT NULL,
    received_at            BIGINT NOT NULL,
    custodian_sent_at      BIGINT,
    custodian_answered_at  BIGINT,
    answered_at            BIGINT NOT NULL,
    expires_at             BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    CHECK (state = 'PENDING' OR held_amount = 0)
);
CREATE INDEX transactions_scope ON transactions (tenant_id, environment, id);
CREATE INDEX transactions_card ON transactions (card_id, created_at);
CREATE INDEX transactions_cardholder ON transactions (cardholder_id, created_at);
CREATE INDEX transactions_program ON transactions (program_id, created_at);
CREATE INDEX transactions_pending ON transactions (state, expires_at);
CREATE INDEX transactions_account ON transactions (account_id, state);
CREATE INDEX transactions_ntid ON transactions (environment, network_transaction_id);

-- One row per network message, keyed by its network transaction id: retries get the stored answer.
CREATE TABLE network_messages (
    environment            TEXT NOT NULL,
    network_transaction_id TEXT NOT NULL,
    kind                   TEXT NOT NULL,
    transaction_id         TEXT,
    response               TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    PRIMARY KEY (environment, network_transaction_id)
);

CREATE TABLE spend_controls (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    environment  TEXT NOT NULL,
    scope_kind   TEXT NOT NULL CHECK (scope_kind IN ('card', 'cardholder', 'program')),
    scope_id     TEXT NOT NULL,
    amount_limit BIGINT CHECK (amount_limit IS NULL OR amount_limit > 0),
    count_limit  BIGINT CHECK (count_limit IS NULL OR count_limit > 0),
    window_kind  TEXT NOT NULL,
    window_secs  BIGINT,
    mccs         TEXT NOT NULL,
    active       SMALLINT NOT NULL CHECK (active IN (0, 1)),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX spend_controls_scope ON spend_controls (tenant_id, environment, id);
CREATE INDEX spend_controls_target ON spend_controls (scope_id, active);

-- Approvals that share a cardholder- or program-wide control take its row lock first, so two
-- concurrent approvals can never together exceed the limit, across processes.
CREATE TABLE control_locks (
    lock_key TEXT PRIMARY KEY,
    version  BIGINT NOT NULL
);
