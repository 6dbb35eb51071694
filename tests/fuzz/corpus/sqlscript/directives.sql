-- ferry:no-transaction
-- ferry:lock_timeout=3s
-- ferry:statement_timeout=2m
CREATE INDEX CONCURRENTLY i ON s.t (a);
DROP INDEX CONCURRENTLY IF EXISTS j;
VACUUM ANALYZE t;
