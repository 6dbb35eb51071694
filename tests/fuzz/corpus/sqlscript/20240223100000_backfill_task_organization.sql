-- AlterTable
-- Added as nullable first, filled from the task's project, then made
-- required: a NOT NULL column without a default cannot be added to a table
-- that already has rows.
ALTER TABLE "Task" ADD COLUMN     "organizationId" INTEGER;

-- Backfill
UPDATE "Task" AS t
SET "organizationId" = p."organizationId"
FROM "Project" AS p
WHERE p."id" = t."projectId" AND t."organizationId" IS NULL;

-- AlterTable
ALTER TABLE "Task" ALTER COLUMN "organizationId" SET NOT NULL;

-- CreateIndex
CREATE INDEX "Task_organizationId_status_idx" ON "Task"("organizationId", "status");

-- AddForeignKey
ALTER TABLE "Task" ADD CONSTRAINT "Task_organizationId_fkey" FOREIGN KEY ("organizationId") REFERENCES "Organization"("id") ON DELETE CASCADE ON UPDATE CASCADE;
