-- Program health for the operations console: per-minute aggregates kept by a roll-up job, so the
-- console never scans transactions on a page view. One row per (tenant, environment, program,
-- minute, metric, dimension): e.g. ('authorizations', 'approved'), ('decline', 'insufficient_funds'),
-- ('latency_ms', '<=50'), ('cleared', 'USD'), ('webhook', 'success'). `program_id` is '' for
-- figures that belong to the tenant (webhook attempts).

CREATE TABLE health_rollups (
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    program_id  TEXT NOT NULL,
    minute      BIGINT NOT NULL,
    metric      TEXT NOT NULL,
    dim         TEXT NOT NULL,
    n           BIGINT NOT NULL CHECK (n >= 0),
    amount      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, environment, program_id, minute, metric, dim)
);
CREATE INDEX health_rollups_minute ON health_rollups (minute);

-- How far each source has been rolled up: the last row id taken (ids sort by creation time).
CREATE TABLE rollup_watermarks (
    source  TEXT PRIMARY KEY,
    last_id TEXT NOT NULL
);
INSERT INTO rollup_watermarks (source, last_id) VALUES ('transactions', ''), ('ledger_entries', ''), ('webhook_attempts', '');
