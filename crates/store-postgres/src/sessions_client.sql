-- Logbook PostgreSQL schema, version 6: where each session's sign-in came from, so that a user
-- can tell their sessions apart (the address and user agent of the sign-in). Sessions from
-- before have neither.

ALTER TABLE sessions ADD COLUMN address TEXT, ADD COLUMN user_agent TEXT;
