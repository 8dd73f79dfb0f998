-- The developer portal's request log: one row per tenant API request of an authenticated key,
-- every caller-supplied text masked before it gets here (cardplane_domain::request_log). Rows
-- live for request_log.retention_days; the portal lists them per tenant and environment, newest
-- first, and per key.
CREATE TABLE request_log (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    environment           TEXT NOT NULL,
    api_key_id            TEXT NOT NULL,
    received_at           BIGINT NOT NULL,
    method                TEXT NOT NULL,
    route                 TEXT NOT NULL,
    path                  TEXT NOT NULL,
    query                 TEXT,
    status                BIGINT NOT NULL CHECK (status BETWEEN 100 AND 999),
    latency_us            BIGINT NOT NULL CHECK (latency_us >= 0),
    request_id            TEXT,
    idempotency_key       TEXT,
    request_content_type  TEXT,
    request_body          TEXT,
    request_bytes         BIGINT NOT NULL,
    response_content_type TEXT,
    response_body         TEXT,
    response_bytes        BIGINT NOT NULL
);
CREATE INDEX request_log_scope_time ON request_log (tenant_id, environment, received_at DESC, id DESC);
CREATE INDEX request_log_key_time ON request_log (api_key_id, received_at DESC, id DESC);
CREATE INDEX request_log_received ON request_log (received_at);

-- Usage per UTC day, key and endpoint, kept by the same batched write as the log, so the
-- portal's charts (requests per day and key, error rate, p50/p99 per endpoint) never scan the
-- log. lat_00..lat_15 are a log-scale latency histogram: bucket i counts requests of at most
-- 2^(7+i) microseconds, lat_15 everything slower (cardplane_domain::request_log::latency_bucket).
CREATE TABLE request_usage_daily (
    tenant_id   TEXT NOT NULL,
    environment TEXT NOT NULL,
    day         BIGINT NOT NULL,
    api_key_id  TEXT NOT NULL,
    method      TEXT NOT NULL,
    route       TEXT NOT NULL,
    requests    BIGINT NOT NULL CHECK (requests >= 0),
    errors_4xx  BIGINT NOT NULL CHECK (errors_4xx >= 0),
    errors_5xx  BIGINT NOT NULL CHECK (errors_5xx >= 0),
    latency_us_total BIGINT NOT NULL,
    lat_00 BIGINT NOT NULL, lat_01 BIGINT NOT NULL, lat_02 BIGINT NOT NULL, lat_03 BIGINT NOT NULL,
    lat_04 BIGINT NOT NULL, lat_05 BIGINT NOT NULL, lat_06 BIGINT NOT NULL, lat_07 BIGINT NOT NULL,
    lat_08 BIGINT NOT NULL, lat_09 BIGINT NOT NULL, lat_10 BIGINT NOT NULL, lat_11 BIGINT NOT NULL,
    lat_12 BIGINT NOT NULL, lat_13 BIGINT NOT NULL, lat_14 BIGINT NOT NULL, lat_15 BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, environment, day, api_key_id, method, route)
);
CREATE INDEX request_usage_daily_day ON request_usage_daily (day);
