-- Per-tenant override of the per-API-key request rate (NULL: the server's default).
ALTER TABLE tenants ADD COLUMN rate_limit_per_second BIGINT CHECK (rate_limit_per_second IS NULL OR rate_limit_per_second > 0);
