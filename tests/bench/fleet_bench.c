/*
 * fleet_bench.c -- N simulated agents in one process, for the fleet
 * benchmark (tests/bench/fleet_bench.sh, README.md).
 *
 * Each agent is a thread with its own Ed25519 key, its own NNG REQ socket
 * and TCP connection, and speaks the real protocol through
 * ferry_wire_client_*: REGISTER, then POLL in a loop; every work item is
 * answered with a REPORT "up-to-date" (a no-op: no database) under a fresh
 * report id, then it polls again. While its key is pending, an agent
 * probes with a poll that may not be held (hold 0) every --retry; the
 * first probe answered OK marks it "polling" and it switches to held
 * polls.
 *
 *   bench_fleet --url URL --coordinator-key FILE.pub [-n N] [--env ENV]
 *               [--prefix P] [--hold DURATION] [--retry DURATION]
 *
 * The driving script talks to it through stdin, one command a line, with
 * wall-clock times in microseconds since the epoch (bash $EPOCHREALTIME):
 *
 *   accept-start US   the operator began accepting the agents
 *   accepted US       the operator accepted the last one
 *   dispatch US       a dispatch round began (one work item per agent)
 *   quit              (or EOF) stop every agent and exit
 *
 * and reads logfmt events on stdout:
 *
 *   event=registered  every agent has its REGISTER answered
 *   event=polling     every agent holds a poll (after "accepted")
 *   event=round       every agent acknowledged its report of a round:
 *                     dispatch -> work received / report acknowledged,
 *                     last, p50, p99, max
 *   event=done        CPU time and RSS of this process, handshakes,
 *                     errors
 *
 * Exits 0, or 1 when an agent met a refusal or error it could not retry.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "err.h"
#include "ferry.pb-c.h"
#include "hash.h"
#include "history.h"
#include "keys.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define MAX_ROUNDS 64
#define STACK_SIZE (256 * 1024)

static const char usage[] =
    "usage: bench_fleet --url URL --coordinator-key FILE.pub [-n N]\n"
    "                   [--env ENV] [--prefix P] [--hold DURATION]\n"
    "                   [--retry DURATION]\n"
    "\n"
    "Runs N simulated agents (default 500), each with its own key, socket\n"
    "and connection, against a coordinator. Driven on stdin by\n"
    "tests/bench/fleet_bench.sh (see the comment in fleet_bench.c).\n";

struct opts {
	const char *url;
	const char *coordinator_key;
	const char *env;
	const char *prefix;
	size_t n;
	int64_t hold_ms;
	int64_t retry_ms;
};

struct agent {
	size_t idx;
	char id[64];
	struct ferry_seckey *key;
	struct ferry_wire_client *wc;
	pthread_t thr;
	int started;
	/* Wall-clock µs; 0 = not yet. Written under fleet.mu. */
	int64_t t_registered;
	int64_t t_polling;
	int64_t t_work[MAX_ROUNDS];
	int64_t t_ack[MAX_ROUNDS];
	unsigned nwork, nacks;
};

static struct {
	struct opts o;
	struct ferry_pubkey pinned;
	struct agent *agents;
	pthread_mutex_t mu;
	pthread_cond_t go_cv;
	int go;
	size_t nregistered, npending, npolling, nacks;
	unsigned errors;      /* calls that failed and were retried */
	unsigned fatal;       /* agents that gave up */
	unsigned duplicates;  /* reports acknowledged as already stored */
	unsigned extra_items; /* work items beyond one per round */
} fleet = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.go_cv = PTHREAD_COND_INITIALIZER,
};

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
count_error(void)
{
	pthread_mutex_lock(&fleet.mu);
	fleet.errors++;
	pthread_mutex_unlock(&fleet.mu);
}

static int
call(struct agent *a, enum ferry_op op, const ProtobufCMessage *req,
    long wait_ms, const ProtobufCMessageDescriptor *desc,
    ProtobufCMessage **reply, struct ferry_err *err)
{
	return ferry_wire_call_msg(a->wc, op, req, wait_ms, desc, reply, err);
}

/* REGISTER until answered; 0 with *accepted set, or a fatal status. */
static int
do_register(struct agent *a, int *accepted)
{
	Ferry__RegisterRequest rq = FERRY__REGISTER_REQUEST__INIT;
	Ferry__RegisterReply *r = NULL;
	int rc;

	rq.agent_id = a->id;
	rq.environment = (char *)fleet.o.env;
	rq.project = (char *)"bench";
	rq.version = (char *)FERRY_VERSION;
	rq.server_version = (char *)"none";
	while (!stop_flag) {
		struct ferry_err e = { 0 };
		rc = call(a, FERRY_OP_REGISTER, &rq.base, 0,
		    &ferry__register_reply__descriptor, (ProtobufCMessage **)&r,
		    &e);
		if (rc == 0)
			break;
		if (stop_flag)
			return FERRY_EOPER;
		if (rc == FERRY_EUSAGE || rc == FERRY_EFINDING) {
			ferry_log_error("register refused", "agent", a->id,
			    "error", e.msg);
			return rc;
		}
		count_error();
		ferry_sleep_ms(100, &stop_flag);
	}
	if (r == NULL)
		return FERRY_EOPER;
	*accepted = strcmp(r->state, "accepted") == 0;
	pthread_mutex_lock(&fleet.mu);
	a->t_registered = ferry_wall_us();
	fleet.nregistered++;
	if (strcmp(r->state, "pending") == 0)
		fleet.npending++;
	pthread_mutex_unlock(&fleet.mu);
	ferry__register_reply__free_unpacked(r, NULL);
	return 0;
}

/* Reports one work item as a no-op until acknowledged. */
static int
do_report(struct agent *a, const Ferry__WorkItem *w)
{
	Ferry__ReportRequest rq = FERRY__REPORT_REQUEST__INIT;
	Ferry__ReportReply *r = NULL;
	char rid[37];
	int64_t t0 = ferry_mono_us();
	int rc;

	ferry_uuid_v4(rid);
	rq.report_id = rid;
	rq.work_id = w->work_id;
	rq.outcome = (char *)"up-to-date";
	rq.detail = (char *)"bench_fleet: no-op";
	rq.started_unix_ms = ferry_wall_us() / 1000;
	rq.duration_us = ferry_mono_us() - t0;
	while (!stop_flag) {
		struct ferry_err e = { 0 };
		rc = call(a, FERRY_OP_REPORT, &rq.base, 0,
		    &ferry__report_reply__descriptor, (ProtobufCMessage **)&r,
		    &e);
		if (rc == 0)
			break;
		if (stop_flag)
			return FERRY_EOPER;
		if (rc == FERRY_EUSAGE || rc == FERRY_EFINDING) {
			ferry_log_error("report refused", "agent", a->id,
			    "work", w->work_id, "error", e.msg);
			return rc;
		}
		count_error();
		ferry_sleep_ms(100, &stop_flag);
	}
	if (r == NULL)
		return FERRY_EOPER;
	pthread_mutex_lock(&fleet.mu);
	if (a->nacks < MAX_ROUNDS)
		a->t_ack[a->nacks] = ferry_wall_us();
	a->nacks++;
	fleet.nacks++;
	if (r->duplicate)
		fleet.duplicates++;
	pthread_mutex_unlock(&fleet.mu);
	ferry__report_reply__free_unpacked(r, NULL);
	return 0;
}

static int
handle_items(struct agent *a, const Ferry__PollReply *r)
{
	size_t i;
	int rc;

	for (i = 0; i < r->n_items && !stop_flag; i++) {
		pthread_mutex_lock(&fleet.mu);
		if (a->nwork < MAX_ROUNDS)
			a->t_work[a->nwork] = ferry_wall_us();
		a->nwork++;
		pthread_mutex_unlock(&fleet.mu);
		if ((rc = do_report(a, r->items[i])) != 0)
			return rc;
	}
	return 0;
}

/* One agent: register, probe while pending, then hold polls. */
static void *
agent_main(void *arg)
{
	struct agent *a = arg;
	struct ferry_wire_opts wo = { 0 };
	struct ferry_err err = { 0 };
	unsigned seed = (unsigned)a->idx * 2654435761u;
	int accepted = 0, rc;

	pthread_mutex_lock(&fleet.mu);
	while (!fleet.go)
		pthread_cond_wait(&fleet.go_cv, &fleet.mu);
	pthread_mutex_unlock(&fleet.mu);
	if (stop_flag)
		return NULL;
	wo.url = fleet.o.url;
	wo.key = a->key;
	wo.pinned = &fleet.pinned;
	wo.call_timeout_ms = 10000;
	wo.stop = &stop_flag;
	if (ferry_wire_client_open(&wo, &a->wc, &err) != 0) {
		ferry_log_error("cannot open a client", "agent", a->id, "error",
		    err.msg);
		goto fatal;
	}
	if ((rc = do_register(a, &accepted)) != 0)
		goto fatal;
	if (accepted) {
		pthread_mutex_lock(&fleet.mu);
		a->t_polling = ferry_wall_us();
		fleet.npolling++;
		pthread_mutex_unlock(&fleet.mu);
	}
	while (!stop_flag) {
		Ferry__PollRequest pr = FERRY__POLL_REQUEST__INIT;
		Ferry__PollReply *r = NULL;
		struct ferry_err e = { 0 };
		long hold = accepted ? (long)fleet.o.hold_ms : 0;
		long jitter;

		pr.hold_ms = (uint32_t)hold;
		rc = call(a, FERRY_OP_POLL, &pr.base, hold,
		    &ferry__poll_reply__descriptor, (ProtobufCMessage **)&r,
		    &e);
		if (rc == FERRY_EFINDING && !accepted) {
			/* pending: probe again after --retry (± 20 %) */
			jitter = (long)(rand_r(&seed) % 41) - 20;
			ferry_sleep_ms((long)fleet.o.retry_ms * (100 + jitter) /
			        100,
			    &stop_flag);
			continue;
		}
		if (rc == FERRY_EFINDING || rc == FERRY_EUSAGE) {
			ferry_log_error("poll refused", "agent", a->id, "error",
			    e.msg);
			goto fatal;
		}
		if (rc != 0) {
			if (stop_flag)
				break;
			count_error();
			ferry_sleep_ms(100, &stop_flag);
			continue;
		}
		if (!accepted) {
			accepted = 1;
			pthread_mutex_lock(&fleet.mu);
			a->t_polling = ferry_wall_us();
			fleet.npolling++;
			pthread_mutex_unlock(&fleet.mu);
		}
		rc = handle_items(a, r);
		ferry__poll_reply__free_unpacked(r, NULL);
		if (rc != 0 && !stop_flag)
			goto fatal;
	}
	return NULL;
fatal:
	pthread_mutex_lock(&fleet.mu);
	fleet.fatal++;
	pthread_mutex_unlock(&fleet.mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* figures                                                             */

static int
cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return (a > b) - (a < b);
}

/* Nearest-rank percentile of sorted v[0..n). */
static int64_t
pct(const int64_t *v, size_t n, unsigned p)
{
	size_t k = (n * p + 99) / 100;

	return v[k > 0 ? k - 1 : 0];
}

static double
ms(int64_t us)
{
	return (double)us / 1000.0;
}

/* Prints "NAME_last_ms=.. NAME_p50_ms=.. NAME_p99_ms=.." of v (µs). */
static void
print_dist(const char *name, int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	printf(" %s_p50_ms=%.2f %s_p99_ms=%.2f %s_max_ms=%.2f", name,
	    ms(pct(v, n, 50)), name, ms(pct(v, n, 99)), name, ms(v[n - 1]));
}

/* Round r is complete: prints its latencies from the dispatch time. */
static void
print_round(unsigned r, int64_t dispatch_us)
{
	size_t n = fleet.o.n, i;
	int64_t *work = xcalloc(n, sizeof(*work));
	int64_t *ack = xcalloc(n, sizeof(*ack));

	pthread_mutex_lock(&fleet.mu);
	for (i = 0; i < n; i++) {
		work[i] = fleet.agents[i].t_work[r] - dispatch_us;
		ack[i] = fleet.agents[i].t_ack[r] - dispatch_us;
		if (fleet.agents[i].nwork > r + 1)
			fleet.extra_items++;
	}
	pthread_mutex_unlock(&fleet.mu);
	printf("event=round round=%u n=%zu", r + 1, n);
	print_dist("work", work, n);
	print_dist("ack", ack, n);
	printf(" dispatch_to_last_ack_ms=%.2f ratio_to_5s=%.3f\n",
	    ms(ack[n - 1]), ms(ack[n - 1]) / 5000.0);
	fflush(stdout);
	free(work);
	free(ack);
}

static void
print_polling(int64_t start_us, int64_t accept_start, int64_t accepted)
{
	size_t n = fleet.o.n, i;
	int64_t last = 0;

	pthread_mutex_lock(&fleet.mu);
	for (i = 0; i < n; i++)
		if (fleet.agents[i].t_polling > last)
			last = fleet.agents[i].t_polling;
	pthread_mutex_unlock(&fleet.mu);
	printf("event=polling n=%zu since_start_ms=%.1f "
	       "since_accept_start_ms=%.1f since_last_accept_ms=%.1f\n",
	    n, ms(last - start_us), ms(last - accept_start),
	    ms(last - accepted));
	fflush(stdout);
}

static void
print_registered(int64_t start_us)
{
	size_t n = fleet.o.n, i, pending;
	int64_t *v = xcalloc(n, sizeof(*v));

	pthread_mutex_lock(&fleet.mu);
	for (i = 0; i < n; i++)
		v[i] = fleet.agents[i].t_registered - start_us;
	pending = fleet.npending;
	pthread_mutex_unlock(&fleet.mu);
	qsort(v, n, sizeof(*v), cmp_i64);
	printf("event=registered n=%zu pending=%zu since_start_ms=%.1f "
	       "p50_ms=%.1f\n",
	    n, pending, ms(v[n - 1]), ms(pct(v, n, 50)));
	fflush(stdout);
	free(v);
}

static void
print_done(void)
{
	struct rusage ru;
	unsigned hs = 0;
	size_t i;

	getrusage(RUSAGE_SELF, &ru);
	for (i = 0; i < fleet.o.n; i++)
		if (fleet.agents[i].wc != NULL)
			hs += ferry_wire_client_handshakes(fleet.agents[i].wc);
	printf("event=done user_s=%.2f sys_s=%.2f maxrss_kb=%ld "
	       "handshakes=%u errors=%u fatal=%u duplicates=%u "
	       "extra_items=%u\n",
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	    ru.ru_maxrss, hs, fleet.errors, fleet.fatal, fleet.duplicates,
	    fleet.extra_items);
	fflush(stdout);
}

/* ------------------------------------------------------------------ */

/* Reads one command line from stdin if there is one; 1 at EOF. */
static int
read_command(char *line, size_t n, int timeout_ms)
{
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	size_t len = 0;
	char ch;
	ssize_t k;

	line[0] = '\0';
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	/* Commands are short and written whole: read up to the newline. */
	while (len + 1 < n) {
		k = read(0, &ch, 1);
		if (k == 0)
			return len == 0;
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (ch == '\n')
			break;
		line[len++] = ch;
	}
	line[len] = '\0';
	return 0;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "coordinator-key", required_argument, NULL, 'k' },
		{ "agents", required_argument, NULL, 'n' },
		{ "env", required_argument, NULL, 'e' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "hold", required_argument, NULL, 'H' },
		{ "retry", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ferry_err err = { 0 };
	char *end;
	int c;

	o->env = "bench";
	o->prefix = "bench";
	o->n = 500;
	o->hold_ms = 20000;
	o->retry_ms = 250;
	while ((c = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'k':
			o->coordinator_key = optarg;
			break;
		case 'n':
			o->n = strtoul(optarg, &end, 10);
			if (*end != '\0' || o->n == 0 || o->n > 20000) {
				fprintf(stderr,
				    "bench_fleet: -n must be "
				    "1..20000\n");
				return 2;
			}
			break;
		case 'e':
			o->env = optarg;
			break;
		case 'p':
			o->prefix = optarg;
			break;
		case 'H':
		case 'r':
			if (ferry_parse_duration_ms(optarg,
			        c == 'H' ? "--hold" : "--retry",
			        c == 'H' ? &o->hold_ms : &o->retry_ms,
			        &err) != 0) {
				fprintf(stderr, "bench_fleet: %s\n", err.msg);
				return 2;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc || o->url == NULL || o->coordinator_key == NULL) {
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct ferry_err err = { 0 };
	struct sigaction sa;
	pthread_attr_t attr;
	int64_t start_us, accept_start = 0, accepted = 0;
	int64_t dispatch_us[MAX_ROUNDS] = { 0 };
	unsigned ndispatch = 0, nrounds = 0;
	int printed_reg = 0, printed_poll = 0, eof = 0, rc;
	char line[128];
	size_t i, n;

	ferry_log_init_from_env();
	if ((rc = parse_opts(argc, argv, &fleet.o)) != 0)
		return rc;
	n = fleet.o.n;
	if (ferry_crypto_init() != 0) {
		fprintf(stderr, "bench_fleet: cannot initialise libsodium\n");
		return 3;
	}
	if (ferry_pubkey_load(fleet.o.coordinator_key, &fleet.pinned, &err) !=
	    0) {
		fprintf(stderr, "bench_fleet: %s\n", err.msg);
		return 3;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Keys and threads first, so the clock measures the protocol. */
	fleet.agents = xcalloc(n, sizeof(*fleet.agents));
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, STACK_SIZE);
	for (i = 0; i < n; i++) {
		struct agent *a = &fleet.agents[i];
		a->idx = i;
		snprintf(a->id, sizeof(a->id), "%s-%04zu", fleet.o.prefix, i);
		if (ferry_seckey_generate("agent", &a->key, &err) != 0) {
			fprintf(stderr, "bench_fleet: %s\n", err.msg);
			return 3;
		}
		if ((rc = pthread_create(&a->thr, &attr, agent_main, a)) != 0) {
			fprintf(stderr,
			    "bench_fleet: cannot start agent %zu: %s\n", i,
			    strerror(rc));
			stop_flag = 1;
			break;
		}
		a->started = 1;
	}
	pthread_attr_destroy(&attr);
	start_us = ferry_wall_us();
	printf("event=start n=%zu start_us=%" PRId64 "\n", n, start_us);
	fflush(stdout);
	pthread_mutex_lock(&fleet.mu);
	fleet.go = 1;
	pthread_cond_broadcast(&fleet.go_cv);
	pthread_mutex_unlock(&fleet.mu);

	while (!stop_flag && !eof) {
		size_t nreg, npoll, nacks;
		long long us;

		eof = read_command(line, sizeof(line), 20);
		if (sscanf(line, "accept-start %lld", &us) == 1)
			accept_start = us;
		else if (sscanf(line, "accepted %lld", &us) == 1)
			accepted = us;
		else if (sscanf(line, "dispatch %lld", &us) == 1 &&
		    ndispatch < MAX_ROUNDS)
			dispatch_us[ndispatch++] = us;
		else if (strcmp(line, "quit") == 0)
			break;
		else if (line[0] != '\0')
			fprintf(stderr, "bench_fleet: unknown command '%s'\n",
			    line);
		pthread_mutex_lock(&fleet.mu);
		nreg = fleet.nregistered;
		npoll = fleet.npolling;
		nacks = fleet.nacks;
		pthread_mutex_unlock(&fleet.mu);
		if (!printed_reg && nreg == n) {
			print_registered(start_us);
			printed_reg = 1;
		}
		if (!printed_poll && npoll == n && accepted != 0) {
			print_polling(start_us, accept_start, accepted);
			printed_poll = 1;
		}
		while (nrounds < ndispatch && nacks >= (nrounds + 1) * n) {
			print_round(nrounds, dispatch_us[nrounds]);
			nrounds++;
		}
	}
	stop_flag = 1;
	for (i = 0; i < n; i++)
		if (fleet.agents[i].started)
			pthread_join(fleet.agents[i].thr, NULL);
	print_done();
	for (i = 0; i < n; i++) {
		ferry_wire_client_close(fleet.agents[i].wc);
		ferry_seckey_free(fleet.agents[i].key);
	}
	rc = fleet.fatal > 0 ? 1 : 0;
	free(fleet.agents);
	return rc;
}
