-- CreateIndex
-- Edited by hand to build the index CONCURRENTLY, so that writes to "Task"
-- are not blocked while it builds. CONCURRENTLY cannot run inside a
-- transaction block, hence this statement is alone in its migration.
CREATE INDEX CONCURRENTLY "Task_projectId_status_idx" ON "Task"("projectId", "status");
