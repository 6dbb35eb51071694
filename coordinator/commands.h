/*
 * commands.h -- the ferry CLI's command groups, one file each.
 */
#ifndef FERRY_COORDINATOR_COMMANDS_H
#define FERRY_COORDINATOR_COMMANDS_H

int cmd_migrations(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_lint(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_agents(int argc, char **argv);
int cmd_dispatch(int argc, char **argv);
int cmd_work(int argc, char **argv);
int cmd_operators(int argc, char **argv);

#endif
