-- Authorization rules with immutable versions, the velocity counters they keep, each card's risk
-- profile, fraud alerts, and rule backtests.

-- Every rule change moves the stamp of its tenant's programs (under a lock that waits for the
-- batches deciding with the old rules), so the engine reloads rules exactly when they changed.
ALTER TABLE programs ADD COLUMN rules_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE programs ADD COLUMN risk_alert_threshold BIGINT NOT NULL DEFAULT 800;

CREATE TABLE authorization_rules (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    environment     TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    scope_kind      TEXT NOT NULL CHECK (scope_kind IN ('program', 'cardholder', 'card')),
    scope_id        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('conditional_action', 'velocity_limit', 'merchant_lock')),
    active_version  BIGINT,
    draft_version   BIGINT,
    latest_version  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX authorization_rules_by_tenant ON authorization_rules (tenant_id, environment, id);

CREATE TABLE authorization_rule_versions (
    rule_id      TEXT NOT NULL REFERENCES authorization_rules (id),
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('draft', 'active', 'superseded', 'discarded')),
    definition   TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    promoted_by  TEXT,
    promoted_at  BIGINT,
    retired_at   BIGINT,
    PRIMARY KEY (rule_id, version)
);

-- One bucket of one counter (see domain `rules::velocity`).
CREATE TABLE velocity_counters (
    counter   TEXT NOT NULL,
    scope_id  TEXT NOT NULL,
    bucket    BIGINT NOT NULL,
    amount    BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (counter, scope_id, bucket)
);

CREATE TABLE card_risk_profiles (
    card_id     TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    environment      TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    kind             TEXT NOT NULL CHECK (kind IN ('rule_review', 'risk_score', 'card_testing')),
    status           TEXT NOT NULL CHECK (status IN ('open', 'assigned', 'resolved')),
    card_id          TEXT NOT NULL,
    cardholder_id    TEXT NOT NULL,
    program_id       TEXT NOT NULL,
    transaction_id   TEXT NOT NULL,
    rule_id          TEXT,
    rule_version     BIGINT,
    risk_score       BIGINT NOT NULL,
    detail           TEXT NOT NULL,
    assignee_id      TEXT,
    resolution       TEXT CHECK (resolution IN ('fraud', 'not_fraud')),
    resolution_note  TEXT,
    card_frozen      BIGINT NOT NULL DEFAULT 0,
    resolved_by      TEXT,
    resolved_at      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    version          BIGINT NOT NULL
);
CREATE INDEX alerts_by_tenant ON alerts (tenant_id, environment, id);
CREATE INDEX alerts_queue ON alerts (status, id);

CREATE TABLE rule_backtests (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    environment     TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    rule_id         TEXT NOT NULL REFERENCES authorization_rules (id),
    draft_version   BIGINT,
    active_version  BIGINT,
    window_start    BIGINT NOT NULL,
    window_end      BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    processed       BIGINT NOT NULL DEFAULT 0,
    total           BIGINT NOT NULL DEFAULT 0,
    result          TEXT,
    error           TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    completed_at    BIGINT
);
CREATE INDEX rule_backtests_queue ON rule_backtests (status, created_at);
