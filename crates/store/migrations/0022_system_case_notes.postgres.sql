-- Notes the system writes (a case closed because a KYC re-run resolved it) have no author.
ALTER TABLE case_notes ALTER COLUMN author_id DROP NOT NULL;
