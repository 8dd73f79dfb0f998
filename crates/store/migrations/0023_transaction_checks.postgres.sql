-- A transaction's card and account are checked by the authorization engine, the only writer of
-- transactions: it inserts one only for a card it has just read with its account locked, in the
-- same database transaction, and cards and accounts are never deleted. On PostgreSQL each of
-- these two foreign keys cost a row-lock check per authorization (the card's FOR KEY SHARE lock
-- writes WAL and dirties its page): measured at a fifth of a batch's write statement. SQLite
-- checks a foreign key with an index probe and keeps them.
ALTER TABLE transactions DROP CONSTRAINT IF EXISTS transactions_card_id_fkey;
ALTER TABLE transactions DROP CONSTRAINT IF EXISTS transactions_account_id_fkey;
