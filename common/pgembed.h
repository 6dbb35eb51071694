/*
 * pgembed.h -- a private PostgreSQL cluster kept in a data directory: the
 * coordinator's embedded state store when no --state-url is given.
 *
 * Layout under DIR (the directory passed in):
 *   DIR/pgdata/      the cluster (initdb from the system's PostgreSQL)
 *   DIR/pgrun/       its unix socket directory (listen_addresses = '')
 *   DIR/pgdata/log/  the server log (logging_collector)
 *
 * The server binaries are found under /usr/lib/postgresql/<major>/bin
 * (highest major first) unless FERRY_PG_BINDIR names a directory. The
 * process must not be root (PostgreSQL refuses): the coordinator drops
 * privileges (ferry_drop_privileges) before calling in here.
 *
 * The postmaster is started with pg_ctl, so it survives a kill -9 of the
 * coordinator. On the next start a running postmaster of this data
 * directory is adopted when it answers; a stale postmaster.pid is left
 * for PostgreSQL itself to clear.
 */
#ifndef FERRY_PGEMBED_H
#define FERRY_PGEMBED_H

#include "err.h"

struct ferry_pgembed;

/*
 * Creates the cluster if DIR/pgdata does not exist yet (initdb, no
 * network listener, trust auth over the socket for the owner only,
 * database "ferry"), then starts it or adopts the one already running, and
 * waits until it accepts connections (bounded: 60 s). *adopted says which
 * (may be NULL). Errors name the step and include the tail of the server
 * log.
 */
int ferry_pgembed_start(const char *dir, struct ferry_pgembed **out,
    int *adopted, struct ferry_err *err);

/* A libpq conninfo string for the cluster's "ferry" database. */
const char *ferry_pgembed_conninfo(const struct ferry_pgembed *pg);

/* PID of the postmaster. */
long ferry_pgembed_pid(const struct ferry_pgembed *pg);

/* pg_ctl stop -m fast, waiting for it (bounded). Idempotent. */
int ferry_pgembed_stop(struct ferry_pgembed *pg, struct ferry_err *err);

/* Frees without stopping the server. NULL is a no-op. */
void ferry_pgembed_free(struct ferry_pgembed *pg);

/*
 * Switches the process to user NAME (initgroups, setgid, setuid; checks
 * that root cannot be regained). Called by root only; FERRY_EUSAGE naming
 * the user when it does not exist.
 */
int ferry_drop_privileges(const char *user, struct ferry_err *err);

#endif
