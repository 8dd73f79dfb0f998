-- Card programs, cards (PAN vault), and the double-entry ledger with stored balances.

CREATE TABLE programs (
    id                     TEXT PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    environment            TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    program_id             TEXT NOT NULL,
    name                   TEXT NOT NULL,
    network                TEXT NOT NULL CHECK (network IN ('VISA', 'MASTERCARD')),
    bin                    TEXT NOT NULL,
    currency               TEXT NOT NULL,
    card_lifetime_years    BIGINT NOT NULL CHECK (card_lifetime_years BETWEEN 1 AND 10),
    form_factors           TEXT NOT NULL,
    design_keys            TEXT NOT NULL,
    funding_model          TEXT NOT NULL CHECK (funding_model IN ('stored_balance', 'custodian_authority')),
    spend_controls         TEXT NOT NULL,
    minimum_cardholder_age BIGINT NOT NULL,
    kyc_required           SMALLINT NOT NULL CHECK (kyc_required IN (0, 1)),
    status                 TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE UNIQUE INDEX programs_ref ON programs (tenant_id, environment, program_id);
CREATE INDEX programs_scope ON programs (tenant_id, environment, id);

-- One row per environment, updated by every program creation: it serialises the BIN-overlap
-- check on both backends (BIN ranges are platform-wide, not per tenant).
CREATE TABLE bin_registry_locks (
    environment TEXT PRIMARY KEY,
    version     BIGINT NOT NULL
);
INSERT INTO bin_registry_locks (environment, version) VALUES ('sandbox', 0);
INSERT INTO bin_registry_locks (environment, version) VALUES ('live', 0);

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    environment TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    program_id  TEXT NOT NULL REFERENCES programs (id),
    kind        TEXT NOT NULL CHECK (kind IN ('program_funding', 'program_settlement', 'program_fees', 'program_external', 'program_losses', 'card_balance')),
    currency    TEXT NOT NULL,
    floor       BIGINT,
    balance     BIGINT NOT NULL,
    held        BIGINT NOT NULL CHECK (held >= 0),
    created_at  BIGINT NOT NULL,
    -- Second line of defence behind the conditional updates: no balance below its floor.
    CHECK (floor IS NULL OR balance - held >= floor)
);
CREATE UNIQUE INDEX accounts_program_kind ON accounts (program_id, kind) WHERE kind <> 'card_balance';

CREATE TABLE journals (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE ledger_entries (
    id            TEXT PRIMARY KEY,
    journal_id    TEXT NOT NULL REFERENCES journals (id),
    tenant_id     TEXT NOT NULL,
    environment   TEXT NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    direction     TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount        BIGINT NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    balance_after BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE INDEX ledger_entries_journal ON ledger_entries (journal_id);

CREATE TABLE cards (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id),
    environment        TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    cardholder_id      TEXT NOT NULL REFERENCES cardholders (id),
    program_id         TEXT NOT NULL REFERENCES programs (id),
    program_ref        TEXT NOT NULL,
    network            TEXT NOT NULL,
    currency           TEXT NOT NULL,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    form_factor        TEXT NOT NULL CHECK (form_factor IN ('virtual', 'physical')),
    design_key         TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('CREATED', 'ACTIVE', 'INACTIVE', 'CANCELLED')),
    shipping_status    TEXT CHECK (shipping_status IS NULL OR shipping_status IN ('ordered', 'shipped', 'delivered')),
    bin                TEXT NOT NULL,
    last4              TEXT NOT NULL CHECK (length(last4) = 4),
    exp_month          BIGINT NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year           BIGINT NOT NULL,
    pan_sealed         TEXT NOT NULL,
    pan_hash           TEXT NOT NULL,
    replaces           TEXT,
    replacement_reason TEXT,
    replaced_by        TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL
);
CREATE UNIQUE INDEX cards_pan_hash ON cards (pan_hash);
CREATE INDEX cards_scope ON cards (tenant_id, environment, id);
CREATE INDEX cards_cardholder ON cards (cardholder_id, id);

CREATE TABLE balance_adjustments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    card_id     TEXT NOT NULL REFERENCES cards (id),
    direction   TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    description TEXT NOT NULL,
    journal_id  TEXT NOT NULL REFERENCES journals (id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX balance_adjustments_card ON balance_adjustments (card_id, id);

-- Every PAN reveal: who, when. Append-only.
CREATE TABLE card_reveals (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    card_id     TEXT NOT NULL REFERENCES cards (id),
    api_key_id  TEXT NOT NULL,
    request_id  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX card_reveals_card ON card_reveals (card_id, id);

-- Platform secrets (PAN lookup key, CVV key), sealed by the vault like any sensitive value.
CREATE TABLE vault_secrets (
    name       TEXT PRIMARY KEY,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

ALTER TABLE card_orders ADD COLUMN card_id TEXT;
ALTER TABLE card_orders ADD COLUMN failure_reason TEXT;
