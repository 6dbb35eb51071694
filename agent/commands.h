/*
 * commands.h -- ferry-agent's commands.
 */
#ifndef FERRY_AGENT_COMMANDS_H
#define FERRY_AGENT_COMMANDS_H

int cmd_apply(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_resolve(int argc, char **argv);
int cmd_baseline(int argc, char **argv);
int cmd_introspect(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_shadow(int argc, char **argv);
int cmd_drift(int argc, char **argv);
int cmd_run(int argc, char **argv);

/*
 * apply --expected REPORT (cmd_shadow.c). Before applying: loads the
 * report, checks it was made from migs and that the database has not
 * drifted; returns 0 and *out, or an exit status after printing why.
 * After applying: checks the new prefix's digest and frees rep; returns 0
 * or an exit status ("post-apply verification failed").
 */
struct ferry_db;
struct ferry_migrations;
struct ferry_shadow_report;
int
shadow_expect_before(const char *prog, const char *path, struct ferry_db *db,
    const struct ferry_migrations *migs, struct ferry_shadow_report **out);
int shadow_expect_after(const char *prog, struct ferry_db *db,
    struct ferry_shadow_report *rep, int quiet);

#endif
