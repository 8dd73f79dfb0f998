-- Webhooks: endpoints, their subscriptions, the delivery outbox and the attempt log.
-- Portable DDL (see 0001): TEXT ids, BIGINT epoch microseconds, SMALLINT flags.

-- Per-tenant, per-environment event sequence numbers, so receivers can order what they get.
ALTER TABLE events ADD COLUMN sequence BIGINT;

CREATE TABLE event_sequences (
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    last_value  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, environment)
);

CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES tenants (id),
    environment                TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    url                        TEXT NOT NULL,
    description                TEXT,
    all_events                 SMALLINT NOT NULL CHECK (all_events IN (0, 1)),
    enabled                    SMALLINT NOT NULL CHECK (enabled IN (0, 1)),
    disabled_reason            TEXT,
    secret_sealed              TEXT NOT NULL,
    previous_secret_sealed     TEXT,
    previous_secret_expires_at BIGINT,
    failing_since              BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_scope ON webhook_endpoints (tenant_id, environment, id);

-- The event types an endpoint subscribes to, when it does not take them all.
CREATE TABLE webhook_endpoint_events (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, event_type)
);

-- The outbox: one row per (endpoint, event), written in the event's own transaction. A worker
-- claims due rows with a lease; `attempts` counts attempts made.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    environment     TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL REFERENCES events (id),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT,
    lease_token     TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id);

-- Every attempt, for the delivery log.
CREATE TABLE webhook_attempts (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    environment     TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    attempt_number  BIGINT NOT NULL,
    attempted_at    BIGINT NOT NULL,
    status_code     BIGINT,
    latency_ms      BIGINT NOT NULL,
    error           TEXT,
    next_attempt_at BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (tenant_id, environment, endpoint_id, id);
