-- CreateView
-- Written by hand: Prisma does not generate views. It is mapped in the
-- schema as `view ProjectTaskSummary`.
CREATE VIEW "ProjectTaskSummary" AS
SELECT
    p."id" AS "projectId",
    p."organizationId",
    p."key",
    p."name",
    count(t."id")::INTEGER AS "total",
    (count(t."id") FILTER (WHERE t."status" = 'TODO'))::INTEGER AS "todo",
    (count(t."id") FILTER (WHERE t."status" = 'IN_PROGRESS'))::INTEGER AS "inProgress",
    (count(t."id") FILTER (WHERE t."status" = 'IN_REVIEW'))::INTEGER AS "inReview",
    (count(t."id") FILTER (WHERE t."status" = 'DONE'))::INTEGER AS "done",
    (count(t."id") FILTER (WHERE t."status" <> 'DONE' AND t."dueDate" < CURRENT_DATE))::INTEGER AS "overdue"
FROM "Project" AS p
LEFT JOIN "Task" AS t ON t."projectId" = p."id"
WHERE p."archivedAt" IS NULL
GROUP BY p."id";
