-- Portable DDL for SQLite and PostgreSQL (see STACK.md): IDs as TEXT, instants as BIGINT epoch
-- microseconds, money as BIGINT minor units, JSON as TEXT, flags as SMALLINT.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    api_version TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    environment  TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    secret_last4 TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_scope ON api_keys (tenant_id, environment, id);

CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    kek_id     TEXT NOT NULL,
    wrapped    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE cardholders (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    environment         TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    custodian_uid       TEXT,
    first_name          TEXT NOT NULL,
    last_name           TEXT NOT NULL,
    email               TEXT NOT NULL,
    phone_number        TEXT NOT NULL,
    date_of_birth       TEXT NOT NULL,
    street_one          TEXT NOT NULL,
    street_two          TEXT,
    locality            TEXT NOT NULL,
    region              TEXT NOT NULL,
    postal_code         TEXT NOT NULL,
    country             TEXT NOT NULL,
    document_type       TEXT NOT NULL,
    document_last4      TEXT NOT NULL CHECK (length(document_last4) <= 4),
    document_sealed     TEXT NOT NULL,
    kyc_status          TEXT NOT NULL,
    kyc_identity_reason TEXT,
    kyc_address_reason  TEXT,
    kyc_file_reason     TEXT,
    kyc_passed_at       BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    version             BIGINT NOT NULL,
    CHECK (kyc_status <> 'PASSED' OR (kyc_identity_reason IS NULL AND kyc_address_reason IS NULL AND kyc_file_reason IS NULL))
);
CREATE UNIQUE INDEX cardholders_custodian_uid ON cardholders (tenant_id, environment, custodian_uid);
CREATE INDEX cardholders_scope ON cardholders (tenant_id, environment, id);

CREATE TABLE kyc_checks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    environment     TEXT NOT NULL,
    cardholder_id   TEXT NOT NULL REFERENCES cardholders (id),
    provider        TEXT NOT NULL,
    status          TEXT NOT NULL,
    identity_reason TEXT,
    address_reason  TEXT,
    file_reason     TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX kyc_checks_cardholder ON kyc_checks (cardholder_id, id);

CREATE TABLE card_orders (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    environment           TEXT NOT NULL,
    cardholder_id         TEXT NOT NULL REFERENCES cardholders (id),
    program_id            TEXT NOT NULL,
    design_key            TEXT,
    initial_load_currency TEXT,
    initial_load_amount   BIGINT CHECK (initial_load_amount IS NULL OR initial_load_amount > 0),
    status                TEXT NOT NULL CHECK (status IN ('awaiting_kyc', 'pending', 'fulfilled', 'failed')),
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX card_orders_cardholder ON card_orders (cardholder_id, id);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    type        TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_scope ON events (tenant_id, environment, id);

CREATE TABLE idempotency_keys (
    tenant_id       TEXT NOT NULL,
    environment     TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('in_flight', 'completed')),
    claim_token     TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    claimed_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, environment, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
