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

#endif
