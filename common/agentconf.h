/*
 * agentconf.h -- the agent's configuration file.
 *
 * One INI file (parsed with libinih), e.g. deploy/examples/agent.conf:
 *
 *   [agent]
 *   name = prod-eu-1              ; shown in reports
 *   environment = prod            ; approvals must name this environment
 *   project = acme                ; bundles of other projects are refused
 *   state_dir = /var/lib/ferry-agent
 *   database_url = postgresql://… ; optional: else DIRECT_URL, DATABASE_URL
 *   key = /var/lib/ferry-agent/agent.key ; optional (that default; made
 *                                 ; on first run by ferry-agent run)
 *
 *   [coordinator]                 ; for ferry-agent run
 *   url = tcp://coordinator:7450
 *   public_key = ferry-ed25519 <id> <base64> coordinator ; pinned, or
 *   public_key_file = /etc/ferry/coordinator.pub
 *   poll_hold = 20s               ; how long a poll may be held
 *
 *   [trust]
 *   bundle_key = ferry-ed25519 <id> <base64> <name>   ; repeatable
 *   bundle_key_file = /etc/ferry/release.pub          ; repeatable
 *
 *   [approvals]
 *   required = 2                  ; 0 (default): no approvals needed
 *   approver = ferry-ed25519 <id> <base64> alice      ; repeatable
 *   approver_file = /etc/ferry/approvers/bob.pub      ; repeatable
 *
 * Unknown sections or keys are errors naming the file and line, so a typo
 * never silently weakens a policy.
 */
#ifndef FERRY_AGENTCONF_H
#define FERRY_AGENTCONF_H

#include <stddef.h>

#include "approval.h"
#include "err.h"
#include "keys.h"

struct ferry_agent_config;

int ferry_agent_config_load(const char *path, struct ferry_agent_config **out,
    struct ferry_err *err);
void ferry_agent_config_free(struct ferry_agent_config *c);

const char *ferry_agent_config_name(const struct ferry_agent_config *c);
const char *ferry_agent_config_environment(const struct ferry_agent_config *c);
const char *ferry_agent_config_project(const struct ferry_agent_config *c);
const char *ferry_agent_config_state_dir(const struct ferry_agent_config *c);
/* NULL when the file sets none. */
const char *ferry_agent_config_database_url(const struct ferry_agent_config *c);
const struct ferry_pubkey *
ferry_agent_config_bundle_keys(const struct ferry_agent_config *c, size_t *n);
/* The agent's key file (NULL: STATE_DIR/agent.key). */
const char *ferry_agent_config_key_path(const struct ferry_agent_config *c);
/* [coordinator]: NULL when the file names none. */
const char *
ferry_agent_config_coordinator_url(const struct ferry_agent_config *c);
const struct ferry_pubkey *
ferry_agent_config_coordinator_key(const struct ferry_agent_config *c);
long ferry_agent_config_poll_hold_ms(const struct ferry_agent_config *c);
/* The approval policy for this agent's environment. */
const struct ferry_approval_policy *
ferry_agent_config_policy(const struct ferry_agent_config *c);

#endif
