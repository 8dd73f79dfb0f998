-- On PostgreSQL event sequence numbers come from one sequence: no row lock held until commit, so
-- a tenant's event-writing transactions (every authorization) no longer queue behind each other.
CREATE SEQUENCE event_sequence;
SELECT setval('event_sequence', GREATEST((SELECT COALESCE(MAX(sequence), 0) FROM events), 1));
