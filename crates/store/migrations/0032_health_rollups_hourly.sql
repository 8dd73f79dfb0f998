-- The same aggregates per hour (`minute` = the hour's first minute), kept beside the per-minute
-- ones by the roll-up job, so a week of program health is ~170 rows per series instead of ~10,000.
CREATE TABLE health_rollups_hourly (
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
CREATE INDEX health_rollups_hourly_minute ON health_rollups_hourly (minute);
INSERT INTO health_rollups_hourly (tenant_id, environment, program_id, minute, metric, dim, n, amount)
SELECT tenant_id, environment, program_id, (minute / 60) * 60, metric, dim, CAST(SUM(n) AS BIGINT), CAST(SUM(amount) AS BIGINT)
FROM health_rollups GROUP BY tenant_id, environment, program_id, (minute / 60) * 60, metric, dim;
