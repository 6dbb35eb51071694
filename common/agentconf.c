/*
 * agentconf.c -- the agent's configuration file (INI, libinih).
 */
#include "agentconf.h"

#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_KEYS 64

struct ferry_agent_config {
	char *name;
	char *environment;
	char *project;
	char *state_dir;
	char *database_url;
	char *key_path;
	char *coordinator_url;
	struct ferry_pubkey coordinator_key;
	int has_coordinator_key;
	int64_t poll_hold_ms;
	struct ferry_pubkey bundle_keys[MAX_KEYS];
	size_t nbundle_keys;
	struct ferry_pubkey approvers[MAX_KEYS];
	size_t napprovers;
	int required;
	struct ferry_approval_policy policy;
	/* parse state */
	struct ferry_err perr;
};

static void
set_string(char **slot, const char *value)
{
	free(*slot);
	*slot = xstrdup(value);
}

static int
add_key(struct ferry_agent_config *c, struct ferry_pubkey *arr, size_t *n,
    const char *value, int is_file)
{
	struct ferry_pubkey k;
	size_t i;

	if (*n == MAX_KEYS) {
		ferry_errf(&c->perr, FERRY_EUSAGE, "more than %d keys",
		    MAX_KEYS);
		return 0;
	}
	if ((is_file ? ferry_pubkey_load(value, &k, &c->perr)
	             : ferry_pubkey_parse(value, &k, &c->perr)) != 0)
		return 0;
	for (i = 0; i < *n; i++)
		if (memcmp(arr[i].pk, k.pk, sizeof(k.pk)) == 0)
			return 1; /* listed twice: counted once */
	arr[(*n)++] = k;
	return 1;
}

/* inih callback: returns 0 to stop with an error at this line. */
static int
on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct ferry_agent_config *c = user;
	int64_t v;

	if (strcmp(section, "agent") == 0) {
		if (strcmp(name, "name") == 0)
			set_string(&c->name, value);
		else if (strcmp(name, "environment") == 0)
			set_string(&c->environment, value);
		else if (strcmp(name, "project") == 0)
			set_string(&c->project, value);
		else if (strcmp(name, "state_dir") == 0)
			set_string(&c->state_dir, value);
		else if (strcmp(name, "database_url") == 0)
			set_string(&c->database_url, value);
		else if (strcmp(name, "key") == 0)
			set_string(&c->key_path, value);
		else
			goto unknown;
		return 1;
	}
	if (strcmp(section, "coordinator") == 0) {
		if (strcmp(name, "url") == 0) {
			set_string(&c->coordinator_url, value);
			return 1;
		}
		if (strcmp(name, "public_key") == 0 ||
		    strcmp(name, "public_key_file") == 0) {
			if (c->has_coordinator_key) {
				ferry_errf(&c->perr, FERRY_EUSAGE,
				    "the coordinator's key is set twice");
				return 0;
			}
			if ((strcmp(name, "public_key") == 0
			            ? ferry_pubkey_parse(value,
			                  &c->coordinator_key, &c->perr)
			            : ferry_pubkey_load(value,
			                  &c->coordinator_key, &c->perr)) != 0)
				return 0;
			c->has_coordinator_key = 1;
			return 1;
		}
		if (strcmp(name, "poll_hold") == 0)
			return ferry_parse_duration_ms(value, "poll_hold",
			           &c->poll_hold_ms, &c->perr) == 0;
		goto unknown;
	}
	if (strcmp(section, "trust") == 0) {
		if (strcmp(name, "bundle_key") == 0)
			return add_key(c, c->bundle_keys, &c->nbundle_keys,
			    value, 0);
		if (strcmp(name, "bundle_key_file") == 0)
			return add_key(c, c->bundle_keys, &c->nbundle_keys,
			    value, 1);
		goto unknown;
	}
	if (strcmp(section, "approvals") == 0) {
		if (strcmp(name, "required") == 0) {
			if (ferry_parse_int64(value, 0, MAX_KEYS, &v) != 0) {
				ferry_errf(&c->perr, FERRY_EUSAGE,
				    "required = '%s': expected a number from 0 "
				    "to %d",
				    value, MAX_KEYS);
				return 0;
			}
			c->required = (int)v;
			return 1;
		}
		if (strcmp(name, "approver") == 0)
			return add_key(c, c->approvers, &c->napprovers, value,
			    0);
		if (strcmp(name, "approver_file") == 0)
			return add_key(c, c->approvers, &c->napprovers, value,
			    1);
		goto unknown;
	}
	ferry_errf(&c->perr, FERRY_EUSAGE, "unknown section [%s]", section);
	return 0;
unknown:
	ferry_errf(&c->perr, FERRY_EUSAGE, "unknown key '%s' in [%s]", name,
	    section);
	return 0;
}

int
ferry_agent_config_load(const char *path, struct ferry_agent_config **out,
    struct ferry_err *err)
{
	struct ferry_agent_config *c = xcalloc(1, sizeof(*c));
	int line, rc = 0;

	*out = NULL;
	ferry_err_clear(&c->perr);
	line = ini_parse(path, on_entry, c);
	if (line == -1) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "cannot open agent config '%s'", path);
		goto out;
	}
	if (line != 0) {
		rc = ferry_errf(err, FERRY_EUSAGE, "%s:%d: %s", path, line,
		    c->perr.code ? c->perr.msg : "syntax error");
		goto out;
	}
	if (c->environment == NULL || c->project == NULL ||
	    c->state_dir == NULL) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "agent config '%s' must set environment, project and "
		    "state_dir in [agent]",
		    path);
		goto out;
	}
	if (c->nbundle_keys == 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "agent config '%s' trusts no bundle key: add bundle_key "
		    "or bundle_key_file to [trust]",
		    path);
		goto out;
	}
	if ((size_t)c->required > c->napprovers) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "agent config '%s' requires %d approvals but lists %zu "
		    "approvers",
		    path, c->required, c->napprovers);
		goto out;
	}
	if (c->coordinator_url != NULL && !c->has_coordinator_key) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "agent config '%s' names a coordinator but not its key: "
		    "add public_key or public_key_file to [coordinator] (the "
		    "line 'ferry serve --init' printed)",
		    path);
		goto out;
	}
	if (c->poll_hold_ms <= 0)
		c->poll_hold_ms = 20000;
	if (c->name == NULL)
		c->name = xstrdup(c->environment);
	c->policy.environment = c->environment;
	c->policy.required = c->required;
	c->policy.approvers = c->approvers;
	c->policy.napprovers = c->napprovers;
	*out = c;
	c = NULL;
out:
	ferry_agent_config_free(c);
	return rc;
}

void
ferry_agent_config_free(struct ferry_agent_config *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free(c->environment);
	free(c->project);
	free(c->state_dir);
	free(c->database_url);
	free(c->key_path);
	free(c->coordinator_url);
	free(c);
}

const char *
ferry_agent_config_name(const struct ferry_agent_config *c)
{
	return c->name;
}

const char *
ferry_agent_config_environment(const struct ferry_agent_config *c)
{
	return c->environment;
}

const char *
ferry_agent_config_project(const struct ferry_agent_config *c)
{
	return c->project;
}

const char *
ferry_agent_config_state_dir(const struct ferry_agent_config *c)
{
	return c->state_dir;
}

const char *
ferry_agent_config_database_url(const struct ferry_agent_config *c)
{
	return c->database_url;
}

const struct ferry_pubkey *
ferry_agent_config_bundle_keys(const struct ferry_agent_config *c, size_t *n)
{
	*n = c->nbundle_keys;
	return c->bundle_keys;
}

const struct ferry_approval_policy *
ferry_agent_config_policy(const struct ferry_agent_config *c)
{
	return &c->policy;
}

const char *
ferry_agent_config_key_path(const struct ferry_agent_config *c)
{
	return c->key_path;
}

const char *
ferry_agent_config_coordinator_url(const struct ferry_agent_config *c)
{
	return c->coordinator_url;
}

const struct ferry_pubkey *
ferry_agent_config_coordinator_key(const struct ferry_agent_config *c)
{
	return c->has_coordinator_key ? &c->coordinator_key : NULL;
}

long
ferry_agent_config_poll_hold_ms(const struct ferry_agent_config *c)
{
	return (long)c->poll_hold_ms;
}
