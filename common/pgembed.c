/*
 * pgembed.c -- a private PostgreSQL cluster in a data directory, run with
 * the system's initdb and pg_ctl.
 *
 * Programs run through fork + execv (never a shell), in a session of their
 * own, with every descriptor above stderr closed and default signal
 * dispositions: the postmaster must neither die with our process group nor
 * hold on to the caller's sockets. Their output is read through a pipe, so
 * pg_ctl's chatter never reaches the caller's stdout and its complaints can
 * go into error messages.
 *
 * A new cluster is made in DIR/pgdata.init and renamed into place once
 * initdb and our configuration are complete, so DIR/pgdata is either a
 * whole cluster or absent. Start and stop hold DIR/pgembed.lock (flock) so
 * two processes never initdb or start the same directory at once.
 *
 * The settings that depend on where DIR lives (the socket directory) are in
 * DIR/pgdata/ferry.conf, included by postgresql.conf and rewritten on every
 * start, so the directory can be moved while the server is down.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "pgembed.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "util.h"

#define START_TIMEOUT_S 60
#define STOP_TIMEOUT_S 60
#define INITDB_TIMEOUT_S 300
#define PG_PORT "5432"
#define SOCKET_NAME "/.s.PGSQL." PG_PORT
/* How much of a program's output or of the server log is kept. */
#define OUTPUT_KEEP 4096
/* Room for a log tail inside struct ferry_err's 512 bytes. */
#define TAIL_MIN 120

struct ferry_pgembed {
	char *dir;      /* absolute */
	char *pgdata;   /* DIR/pgdata */
	char *rundir;   /* DIR/pgrun: the socket directory */
	char *logdir;   /* DIR/pgdata/log */
	char *bindir;   /* holds initdb and pg_ctl */
	char *user;     /* OS user = database superuser */
	char *conninfo; /* database "ferry" */
	char *admin;    /* database "postgres", for setup and pings */
	long pid;
};

/* What the newest server log looked like before a start attempt. */
struct logmark {
	char *path;
	long long size;
};

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Milliseconds left until deadline (monotonic µs), at least 0. */
static long
left_ms(int64_t deadline)
{
	int64_t now = ferry_mono_us();

	return now >= deadline ? 0 : (long)((deadline - now) / 1000);
}

/* Quotes a libpq conninfo value: 'a\'b'. */
static char *
conn_quote(const char *s)
{
	size_t n = strlen(s), i, j = 0;
	char *q = xmalloc(2 * n + 3);

	q[j++] = '\'';
	for (i = 0; i < n; i++) {
		if (s[i] == '\'' || s[i] == '\\')
			q[j++] = '\\';
		q[j++] = s[i];
	}
	q[j++] = '\'';
	q[j] = '\0';
	return q;
}

/* Quotes a postgresql.conf string value: 'a''b'. */
static char *
conf_quote(const char *s)
{
	size_t n = strlen(s), i, j = 0;
	char *q = xmalloc(2 * n + 3);

	q[j++] = '\'';
	for (i = 0; i < n; i++) {
		if (s[i] == '\'' || s[i] == '\\')
			q[j++] = s[i];
		q[j++] = s[i];
	}
	q[j++] = '\'';
	q[j] = '\0';
	return q;
}

/*
 * Length of a server log line's prefix ("2026-11-24 14:30:17.002 UTC
 * [30970] ", the default log_line_prefix) at line, or 0 if there is none.
 */
static size_t
log_prefix_len(const char *line)
{
	size_t i;

	if (*line < '0' || *line > '9')
		return 0;
	for (i = 0; i < 64 && line[i] != '\0' && line[i] != '\n'; i++) {
		if (line[i] == ']' && line[i + 1] == ' ')
			return i + 2;
	}
	return 0;
}

/*
 * Joins the lines of text with " | " into at most max bytes, without the
 * server log's line prefixes. Starts at the last FATAL or PANIC line when
 * there is one (what follows it, DETAIL and HINT, says why), else keeps the
 * end: the last lines say what finally went wrong.
 */
static char *
flatten_tail(const char *text, size_t max)
{
	const char *p, *from = text, *eol;
	size_t n = strlen(text), j = 0, skip, start;
	char *flat = xmalloc(3 * n + 1), *out;

	for (p = text; *p != '\0'; p = *eol == '\0' ? eol : eol + 1) {
		eol = p + strcspn(p, "\n");
		skip = log_prefix_len(p);
		if (ferry_starts_with(p + skip, "FATAL:") ||
		    ferry_starts_with(p + skip, "PANIC:"))
			from = p;
	}
	for (p = from; *p != '\0'; p = *eol == '\0' ? eol : eol + 1) {
		eol = p + strcspn(p, "\n");
		p += log_prefix_len(p);
		while (p < eol && (*p == '\r' || *p == ' ' || *p == '\t'))
			p++;
		if (p == eol)
			continue;
		if (j > 0) {
			memcpy(flat + j, " | ", 3);
			j += 3;
		}
		for (; p < eol; p++)
			flat[j++] = (*p == '\t' || *p == '\r') ? ' ' : *p;
	}
	flat[j] = '\0';
	if (j <= max || max < 4)
		return flat;
	start = j - (max - 3);
	out = xasprintf("...%s", flat + start);
	free(flat);
	return out;
}

/* Reads the last OUTPUT_KEEP bytes of path; NULL if it cannot be read. */
static char *
read_tail(const char *path)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	if (st.st_size > OUTPUT_KEEP)
		lseek(fd, st.st_size - OUTPUT_KEEP, SEEK_SET);
	buf = xmalloc(OUTPUT_KEEP + 1);
	while (len < OUTPUT_KEEP) {
		n = read(fd, buf + len, OUTPUT_KEEP - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* Sets mark to the most recently written file in logdir (path NULL if none). */
static void
logmark_take(const char *logdir, struct logmark *mark)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	char *path;
	struct timespec best = { 0, 0 };

	mark->path = NULL;
	mark->size = -1;
	d = opendir(logdir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", logdir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
		    (mark->path != NULL &&
		        (st.st_mtim.tv_sec < best.tv_sec ||
		            (st.st_mtim.tv_sec == best.tv_sec &&
		                st.st_mtim.tv_nsec <= best.tv_nsec)))) {
			free(path);
			continue;
		}
		free(mark->path);
		mark->path = path;
		mark->size = (long long)st.st_size;
		best = st.st_mtim;
	}
	closedir(d);
}

static void
logmark_release(struct logmark *mark)
{
	free(mark->path);
	mark->path = NULL;
}

/* Moves descriptor fd above 2 so that dup2 onto 0-2 cannot clobber it. */
static int
fd_above_stdio(int fd)
{
	int moved;

	if (fd > 2)
		return fd;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return moved;
}

/* In the child after fork: async-signal-safe calls only (we may be threaded). */
static void
close_from(int lowfd)
{
	struct rlimit rl;
	long fd, max = 65536;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0U) == 0)
		return;
#endif
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max = (long)rl.rlim_cur;
	for (fd = lowfd; fd < max; fd++)
		close((int)fd);
}

static void
child_exec(char *const argv[], const char *cwd, int outfd,
    const struct sigaction *dfl, const sigset_t *none)
{
	static const char msg[] = "cannot execute program\n";
	int fd, sig;

	/* Our own session: a signal to the caller's group must not reach the
	 * postmaster, and it gets no controlling terminal. */
	setsid();
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	dup2(outfd, 1);
	dup2(outfd, 2);
	close_from(3);
	/* Ignored signals and the signal mask survive exec: reset them. */
	for (sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, dfl, NULL);
	}
	sigprocmask(SIG_SETMASK, none, NULL);
	if (chdir(cwd) != 0)
		_exit(126);
	execv(argv[0], argv);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(127);
	_exit(127);
}

/* Describes a wait status: "exited 1", "was killed by signal 9". */
static void
describe_status(int status, char *buf, size_t bufsz)
{
	if (WIFEXITED(status))
		snprintf(buf, bufsz, "exited %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, bufsz, "was killed by signal %d",
		    WTERMSIG(status));
	else
		snprintf(buf, bufsz, "ended with status %d", status);
}

/*
 * Runs argv (argv[0] an absolute path) in cwd and waits for it, up to
 * timeout_ms, after which its process group is killed. Sets *status to the
 * wait status and *output to the end of what it wrote on stdout and stderr
 * (caller frees). Returns 0 if it ran and ended, else an error.
 */
static int
run(char *const argv[], const char *cwd, long timeout_ms, int *status,
    char **output, struct ferry_err *err)
{
	int64_t deadline = ferry_mono_us() + (int64_t)timeout_ms * 1000;
	const char *name = strrchr(argv[0], '/') + 1;
	struct sigaction dfl;
	sigset_t none;
	struct pollfd pfd;
	char *buf = xmalloc(2 * OUTPUT_KEEP + 1);
	size_t len = 0;
	ssize_t n;
	int fds[2] = { -1, -1 }, rc = 0, timed_out = 0, r;
	pid_t pid, w;

	*output = NULL;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigemptyset(&none);
	if (pipe(fds) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot run %s: pipe", name);
		goto out;
	}
	fds[0] = fd_above_stdio(fds[0]);
	fds[1] = fd_above_stdio(fds[1]);
	if (fds[0] < 0 || fds[1] < 0 ||
	    fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot run %s: pipe", name);
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot run %s: fork", name);
		goto out;
	}
	if (pid == 0)
		child_exec(argv, cwd, fds[1], &dfl, &none);
	close(fds[1]);
	fds[1] = -1;

	pfd.fd = fds[0];
	pfd.events = POLLIN;
	for (;;) {
		r = poll(&pfd, 1, (int)left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			timed_out = 1;
			break;
		}
		if (r < 0)
			break;
		n = read(fds[0], buf + len, 2 * OUTPUT_KEEP - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > OUTPUT_KEEP) {
			memmove(buf, buf + len - OUTPUT_KEEP, OUTPUT_KEEP);
			len = OUTPUT_KEEP;
		}
	}
	/* Output closed: the program is ending, but give it no longer than
	 * the deadline either. */
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	for (;;) {
		w = waitpid(pid, status, timed_out ? 0 : WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot wait for %s", name);
			goto out;
		}
		if (left_ms(deadline) == 0) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			continue;
		}
		sleep_ms(10);
	}
	buf[len] = '\0';
	if (timed_out) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "%s did not finish within %ld s and was killed", name,
		    timeout_ms / 1000);
		goto out;
	}
	*output = buf;
	buf = NULL;
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	free(buf);
	return rc;
}

/* Sets *name to the name of the effective user. */
static int
current_user(char **name, struct ferry_err *err)
{
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	char *buf;
	int e;

	if (sz < 1024)
		sz = 16384;
	buf = xmalloc((size_t)sz);
	e = getpwuid_r(geteuid(), &pw, buf, (size_t)sz, &res);
	if (res == NULL) {
		free(buf);
		if (e != 0)
			return ferry_errf_errno(err, FERRY_EOPER, e,
			    "cannot look up user ID %ld", (long)geteuid());
		return ferry_errf(err, FERRY_EOPER,
		    "user ID %ld has no name in the user database",
		    (long)geteuid());
	}
	*name = xstrdup(pw.pw_name);
	free(buf);
	return 0;
}

static int
has_programs(const char *dir)
{
	char *a = xasprintf("%s/pg_ctl", dir), *b = xasprintf("%s/initdb", dir);
	int ok = access(a, X_OK) == 0 && access(b, X_OK) == 0;

	free(a);
	free(b);
	return ok;
}

/* Orders PostgreSQL version directory names ("9.6" < "15" < "16"). */
static int
version_less(const char *a, const char *b)
{
	char *ea, *eb;
	long ma = strtol(a, &ea, 10), mb = strtol(b, &eb, 10);

	if (ma != mb)
		return ma < mb;
	ma = *ea == '.' ? strtol(ea + 1, NULL, 10) : 0;
	mb = *eb == '.' ? strtol(eb + 1, NULL, 10) : 0;
	return ma < mb;
}

/*
 * Sets pg->bindir: $FERRY_PG_BINDIR, else the version that made the cluster
 * (PG_VERSION) when installed, else the highest installed.
 */
static int
find_bindir(struct ferry_pgembed *pg, struct ferry_err *err)
{
	const char *env = getenv("FERRY_PG_BINDIR");
	char *path = NULL, *ver = NULL, *best = NULL, *cand;
	struct dirent *de;
	DIR *d;

	if (env != NULL && env[0] != '\0') {
		if (!has_programs(env))
			return ferry_errf(err, FERRY_EUSAGE,
			    "FERRY_PG_BINDIR '%s' holds no executable pg_ctl "
			    "and initdb",
			    env);
		/* Programs run in DIR: a relative path would not do. */
		pg->bindir = realpath(env, NULL);
		if (pg->bindir == NULL)
			return ferry_errf_errno(err, FERRY_EUSAGE, errno,
			    "cannot resolve FERRY_PG_BINDIR '%s'", env);
		return 0;
	}
	path = xasprintf("%s/PG_VERSION", pg->pgdata);
	ver = read_tail(path);
	free(path);
	if (ver != NULL) {
		ver[strcspn(ver, "\r\n")] = '\0';
		cand = xasprintf("/usr/lib/postgresql/%s/bin", ver);
		free(ver);
		if (has_programs(cand)) {
			pg->bindir = cand;
			return 0;
		}
		free(cand);
	}
	d = opendir("/usr/lib/postgresql");
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (best != NULL && !version_less(best, de->d_name))
			continue;
		cand = xasprintf("/usr/lib/postgresql/%s/bin", de->d_name);
		if (has_programs(cand)) {
			free(best);
			best = xstrdup(de->d_name);
		}
		free(cand);
	}
	if (d != NULL)
		closedir(d);
	if (best == NULL)
		return ferry_errf(err, FERRY_EOPER,
		    "cannot find the PostgreSQL server programs: no "
		    "/usr/lib/postgresql/*/bin/pg_ctl (set FERRY_PG_BINDIR)");
	pg->bindir = xasprintf("/usr/lib/postgresql/%s/bin", best);
	free(best);
	return 0;
}

/* Reads the PID on the first line of a PostgreSQL lock file; 0 if none. */
static long
lockfile_pid(const char *path)
{
	char *text = read_tail(path);
	char *end;
	long pid = 0;

	if (text == NULL)
		return 0;
	errno = 0;
	pid = strtol(text, &end, 10);
	/* A negative PID is a single-user backend: it holds the directory
	 * all the same. */
	if (errno != 0 || end == text || (*end != '\n' && *end != '\0'))
		pid = 0;
	free(text);
	return pid < 0 ? -pid : pid;
}

/* The postmaster PID from DIR/pgdata/postmaster.pid; 0 if none. */
static long
pidfile_pid(const struct ferry_pgembed *pg)
{
	char *path = xasprintf("%s/postmaster.pid", pg->pgdata);
	long pid = lockfile_pid(path);

	free(path);
	return pid;
}

/* Reads /proc/PID/FILE into buf; 0, or -1 with errno set. */
static int
read_proc(long pid, const char *file, char *buf, size_t bufsz)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, bufsz - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* 1 if process pid has exited but not been reaped. */
static int
is_zombie(long pid)
{
	char stat[512], *p;

	if (pid <= 0 || read_proc(pid, "stat", stat, sizeof(stat)) != 0)
		return 0;
	p = strrchr(stat, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

/*
 * 1 if process pid exists and has not exited. A zombie has exited: when it
 * is a postgres that is our child (we may be a container's PID 1), it is
 * reaped here.
 */
static int
pid_alive(long pid)
{
	char comm[64];
	int st;

	if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
		return 0;
	if (!is_zombie(pid))
		return 1;
	if (read_proc(pid, "comm", comm, sizeof(comm)) == 0 &&
	    strcmp(comm, "postgres\n") == 0)
		waitpid((pid_t)pid, &st, WNOHANG);
	return 0;
}

/*
 * PostgreSQL takes the PID in a lock file for a running server as long as
 * kill(pid, 0) succeeds, and it does for a zombie: a postmaster killed
 * under an init that does not reap orphans (a container's PID 1 often
 * does not) would keep its cluster from ever starting again. A zombie runs
 * nothing, so lock files naming one are removed.
 */
static void
clear_zombie_locks(const struct ferry_pgembed *pg)
{
	char *paths[2];
	char num[32];
	size_t i;
	long pid;

	paths[0] = xasprintf("%s/postmaster.pid", pg->pgdata);
	paths[1] = xasprintf("%s" SOCKET_NAME ".lock", pg->rundir);
	for (i = 0; i < FERRY_NELEM(paths); i++) {
		pid = lockfile_pid(paths[i]);
		if (pid > 0 && is_zombie(pid) && unlink(paths[i]) == 0) {
			snprintf(num, sizeof(num), "%ld", pid);
			ferry_log_warn("removed a lock file of an exited "
			               "postmaster",
			    "file", paths[i], "pid", num);
		}
		free(paths[i]);
	}
}

/*
 * 1 if live process pid is the postmaster of pg's data directory: it runs
 * in that directory (a postmaster chdirs there). A PID recycled by another
 * program, or one of another user, is not.
 */
static int
is_our_postmaster(const struct ferry_pgembed *pg, long pid)
{
	char path[64], cwd[PATH_MAX], *real = NULL;
	ssize_t n;
	int ours;

	snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
	n = readlink(path, cwd, sizeof(cwd) - 1);
	if (n < 0)
		return 0;
	cwd[n] = '\0';
	real = realpath(pg->pgdata, NULL);
	ours = real != NULL && strcmp(real, cwd) == 0;
	free(real);
	return ours;
}

/* The server's answer to a connection attempt over the socket. */
static PGPing
ping(const struct ferry_pgembed *pg)
{
	char *ci = xasprintf("%s connect_timeout=5", pg->admin);
	PGPing r = PQping(ci);

	free(ci);
	return r;
}

/*
 * Looks for a running postmaster of this cluster. Returns 0 with
 * *running = 1 and pg->pid set once it accepts connections, or
 * *running = 0 when there is none (or it went away while we waited).
 */
static int
find_running(struct ferry_pgembed *pg, int64_t deadline, int *running,
    struct ferry_err *err)
{
	long pid = pidfile_pid(pg);
	PGPing r = PQPING_NO_RESPONSE;

	*running = 0;
	/* A stale file naming our own PID (a container restarted): PostgreSQL
	 * knows its grandparent and clears it. */
	if (!pid_alive(pid) || pid == (long)getpid())
		return 0;
	if (!is_our_postmaster(pg, pid))
		return ferry_errf(err, FERRY_EOPER,
		    "'%s/postmaster.pid' names PID %ld, which is running but "
		    "is not this cluster's postmaster; remove the file if no "
		    "server uses the directory",
		    pg->pgdata, pid);
	/* It may be starting up or shutting down: wait for either. */
	for (;;) {
		r = ping(pg);
		if (r == PQPING_OK) {
			pg->pid = pid;
			*running = 1;
			return 0;
		}
		if (r == PQPING_NO_ATTEMPT)
			break;
		if (!pid_alive(pid))
			return 0;
		if (left_ms(deadline) == 0)
			break;
		sleep_ms(100);
	}
	return ferry_errf(err, FERRY_EOPER,
	    "the postmaster of '%s' (PID %ld) is running but does not accept "
	    "connections on '%s' within %d s",
	    pg->pgdata, pid, pg->rundir, START_TIMEOUT_S);
}

/* Writes DIR/pgdata/ferry.conf (included by postgresql.conf). */
static int
write_conf(const char *pgdata, const char *rundir, struct ferry_err *err)
{
	char *sock = conf_quote(rundir);
	char *path = xasprintf("%s/ferry.conf", pgdata);
	char *text = xasprintf(
	    "# Written by ferry on every start of the embedded state store:\n"
	    "# edits here are lost. Add settings to postgresql.conf.\n"
	    "listen_addresses = ''\n"
	    "port = " PG_PORT "\n"
	    "unix_socket_directories = %s\n"
	    "unix_socket_permissions = 0700\n"
	    "logging_collector = on\n"
	    "log_directory = 'log'\n"
	    "log_filename = 'postgresql-%%a.log'\n"
	    "log_truncate_on_rotation = on\n"
	    "log_rotation_age = 1d\n"
	    "log_rotation_size = 0\n",
	    sock);
	int rc;

	rc = ferry_write_file_atomic(path, text, strlen(text), 0600, err);
	free(sock);
	free(path);
	free(text);
	return rc;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/*
 * Makes a new cluster: initdb into DIR/pgdata.init (removing what an
 * interrupted attempt left), our settings, then rename to DIR/pgdata.
 */
static int
create_cluster(struct ferry_pgembed *pg, struct ferry_err *err)
{
	char *init = xasprintf("%s/pgdata.init", pg->dir);
	char *initdb = xasprintf("%s/initdb", pg->bindir);
	char *conf = NULL, *out = NULL, *flat = NULL, *logdir = NULL;
	char how[64];
	char *argv[] = { initdb, "-D", init, "-U", pg->user,
		"--auth-local=trust", "--auth-host=reject", "--encoding=UTF8",
		"--locale=C", "--data-checksums", NULL };
	FILE *f = NULL;
	int status = 0, rc;

	ferry_log_info("creating the embedded state store", "dir", pg->pgdata);
	if (nftw(init, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 &&
	    errno != ENOENT) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "initdb: cannot remove the leftover '%s'", init);
		goto out;
	}
	rc = run(argv, pg->dir, INITDB_TIMEOUT_S * 1000L, &status, &out, err);
	if (rc != 0)
		goto out;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		describe_status(status, how, sizeof(how));
		flat = flatten_tail(out, 300);
		rc = ferry_errf(err, FERRY_EOPER, "initdb of '%s' %s: %s", init,
		    how, flat);
		goto out;
	}
	conf = xasprintf("%s/postgresql.conf", init);
	f = fopen(conf, "a");
	if (f == NULL ||
	    fputs("\n# The embedded state store's settings (ferry).\n"
	          "include = 'ferry.conf'\n",
	        f) == EOF) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "initdb: cannot append to '%s'", conf);
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "initdb: cannot write '%s'", conf);
		goto out;
	}
	f = NULL;
	logdir = xasprintf("%s/log", init);
	if (mkdir(logdir, 0700) != 0 && errno != EEXIST) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "initdb: cannot create '%s'", logdir);
		goto out;
	}
	rc = write_conf(init, pg->rundir, err);
	if (rc != 0)
		goto out;
	if (rename(init, pg->pgdata) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "initdb: cannot rename '%s' to '%s'", init, pg->pgdata);
		goto out;
	}
out:
	if (f != NULL)
		fclose(f);
	free(init);
	free(initdb);
	free(conf);
	free(out);
	free(flat);
	free(logdir);
	return rc;
}

/*
 * Records a start failure: what happened, then the end of the server log
 * if this attempt wrote to it, else what pg_ctl said.
 */
static int
start_failed(const struct ferry_pgembed *pg, const char *what,
    const char *pgctl_out, const struct logmark *before, struct ferry_err *err)
{
	struct logmark after;
	char *head = NULL, *text = NULL, *flat = NULL;
	size_t room;
	int rc;

	logmark_take(pg->logdir, &after);
	if (after.path != NULL &&
	    (before->path == NULL || strcmp(after.path, before->path) != 0 ||
	        after.size != before->size))
		text = read_tail(after.path);
	if (text != NULL) {
		head =
		    xasprintf("%s; server log '%s' ends: ", what, after.path);
		ferry_log_error("embedded postgresql did not start", "log",
		    after.path, "tail", text);
	} else {
		head = xasprintf("%s: ", what);
		text = xstrdup(pgctl_out != NULL ? pgctl_out : "");
	}
	room = strlen(head) + TAIL_MIN < 511 ? 511 - strlen(head) : TAIL_MIN;
	flat = flatten_tail(text, room);
	rc = ferry_errf(err, FERRY_EOPER, "%s%s", head, flat);
	free(head);
	free(text);
	free(flat);
	logmark_release(&after);
	return rc;
}

/*
 * pg_ctl start -w, retried while the shared memory of a postmaster that
 * was killed is still held by its exiting children. Sets pg->pid.
 */
static int
start_server(struct ferry_pgembed *pg, int64_t deadline, struct ferry_err *err)
{
	char *pgctl = xasprintf("%s/pg_ctl", pg->bindir);
	char *startlog = xasprintf("%s/startup.log", pg->logdir);
	char *out = NULL, *what = NULL, *tail = NULL;
	char secs[24], how[64];
	char *argv[] = { pgctl, "start", "-D", pg->pgdata, "-l", startlog, "-w",
		"-t", secs, "-s", NULL };
	struct logmark before = { NULL, -1 }, now;
	long left;
	int status = 0, rc = 0;

	for (;;) {
		left = left_ms(deadline) / 1000;
		if (left < 1)
			left = 1;
		snprintf(secs, sizeof(secs), "%ld", left);
		logmark_release(&before);
		logmark_take(pg->logdir, &before);
		free(out);
		out = NULL;
		rc =
		    run(argv, pg->dir, left * 1000 + 10000, &status, &out, err);
		if (rc != 0)
			goto out;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			break;
		free(tail);
		tail = NULL;
		logmark_take(pg->logdir, &now);
		if (now.path != NULL)
			tail = read_tail(now.path);
		logmark_release(&now);
		if (tail != NULL && strstr(tail, "is still in use") != NULL &&
		    left_ms(deadline) > 500) {
			ferry_log_info("old server processes still hold the "
			               "shared memory; retrying",
			    "dir", pg->pgdata);
			sleep_ms(250);
			continue;
		}
		describe_status(status, how, sizeof(how));
		what = xasprintf("cannot start PostgreSQL in '%s': pg_ctl "
		                 "start %s",
		    pg->pgdata, how);
		rc = start_failed(pg, what, out, &before, err);
		goto out;
	}
	pg->pid = pidfile_pid(pg);
	if (!pid_alive(pg->pid)) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "PostgreSQL in '%s' exited right after starting",
		    pg->pgdata);
		goto out;
	}
out:
	logmark_release(&before);
	free(pgctl);
	free(startlog);
	free(out);
	free(what);
	free(tail);
	return rc;
}

/* Creates database "ferry" unless it exists. */
static int
ensure_database(const struct ferry_pgembed *pg, struct ferry_err *err)
{
	char *ci = xasprintf("%s connect_timeout=10", pg->admin);
	PGconn *conn = NULL;
	PGresult *res = NULL;
	const char *state;
	int rc = 0;

	conn = PQconnectdb(ci);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot connect to the embedded server on '%s': %s",
		    pg->rundir,
		    conn != NULL ? PQerrorMessage(conn) : "out of memory");
		goto out;
	}
	res = PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = 'ferry'");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot list the databases of the embedded server: %s",
		    PQerrorMessage(conn));
		goto out;
	}
	if (PQntuples(res) == 1)
		goto out;
	PQclear(res);
	res = PQexec(conn, "CREATE DATABASE ferry");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* 42P04: someone else made it meanwhile. */
		if (state != NULL && strcmp(state, "42P04") == 0)
			goto out;
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot create database \"ferry\" in the embedded server: "
		    "%s",
		    PQerrorMessage(conn));
		goto out;
	}
	ferry_log_info("created database ferry", "dir", pg->pgdata);
out:
	PQclear(res);
	PQfinish(conn);
	free(ci);
	return rc;
}

/* Takes DIR/pgembed.lock, waiting until deadline. Sets *fd. */
static int
lock_dir(const char *dir, int64_t deadline, int *fd, struct ferry_err *err)
{
	char *path = xasprintf("%s/pgembed.lock", dir);
	int rc = 0;

	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot open the lock file '%s'", path);
		goto out;
	}
	while (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot lock '%s'", path);
			goto out;
		}
		if (left_ms(deadline) == 0) {
			rc = ferry_errf(err, FERRY_EOPER,
			    "'%s' stayed locked by another process", path);
			goto out;
		}
		sleep_ms(100);
	}
out:
	if (rc != 0 && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	free(path);
	return rc;
}

/* Fills in the paths and connection strings for absolute directory dir. */
static int
pgembed_init(struct ferry_pgembed *pg, const char *dir, struct ferry_err *err)
{
	char *host = NULL, *user = NULL;
	size_t sunmax = sizeof(((struct sockaddr_un *)NULL)->sun_path);

	pg->dir = xstrdup(dir);
	pg->pgdata = xasprintf("%s/pgdata", dir);
	pg->rundir = xasprintf("%s/pgrun", dir);
	pg->logdir = xasprintf("%s/log", pg->pgdata);
	if (strlen(pg->rundir) + strlen(SOCKET_NAME) >= sunmax)
		return ferry_errf(err, FERRY_EUSAGE,
		    "directory '%s' is too long a path for a unix socket in it "
		    "(at most %zu characters)",
		    dir, sunmax - 1 - strlen(SOCKET_NAME) - strlen("/pgrun"));
	if (current_user(&pg->user, err) != 0)
		return err->code;
	host = conn_quote(pg->rundir);
	user = conn_quote(pg->user);
	pg->conninfo =
	    xasprintf("host=%s port=" PG_PORT " dbname=ferry user=%s", host,
	        user);
	pg->admin =
	    xasprintf("host=%s port=" PG_PORT " dbname=postgres user=%s", host,
	        user);
	free(host);
	free(user);
	return 0;
}

int
ferry_pgembed_start(const char *dir, struct ferry_pgembed **out, int *adopted,
    struct ferry_err *err)
{
	int64_t deadline = ferry_mono_us() + START_TIMEOUT_S * 1000000LL;
	struct ferry_pgembed *pg = NULL;
	char *abs = NULL, *version = NULL;
	struct stat st;
	int lockfd = -1, running = 0, rc = 0;

	assert(out != NULL);
	*out = NULL;
	if (adopted != NULL)
		*adopted = 0;
	if (geteuid() == 0)
		return ferry_errf(err, FERRY_EUSAGE,
		    "PostgreSQL refuses to run as root: pass --user NAME to "
		    "run "
		    "the embedded state store as that unprivileged user");
	if (dir == NULL || dir[0] == '\0')
		return ferry_errf(err, FERRY_EUSAGE,
		    "no directory for the embedded state store");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot create the state directory '%s'", dir);
	abs = realpath(dir, NULL);
	if (abs == NULL)
		return ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot resolve the state directory '%s'", dir);
	pg = xcalloc(1, sizeof(*pg));
	rc = pgembed_init(pg, abs, err);
	if (rc != 0)
		goto out;
	rc = lock_dir(pg->dir, deadline, &lockfd, err);
	if (rc != 0)
		goto out;
	if (stat(pg->pgdata, &st) != 0 && errno != ENOENT) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot access the data directory '%s'", pg->pgdata);
		goto out;
	}
	rc = find_bindir(pg, err);
	if (rc != 0)
		goto out;
	if (mkdir(pg->rundir, 0700) != 0 && errno != EEXIST) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot create the socket directory '%s'", pg->rundir);
		goto out;
	}
	if (access(pg->pgdata, F_OK) != 0) {
		rc = create_cluster(pg, err);
		if (rc != 0)
			goto out;
	} else {
		version = xasprintf("%s/PG_VERSION", pg->pgdata);
		if (access(version, R_OK) != 0) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot start PostgreSQL: '%s' is not a usable "
			    "data directory (no readable PG_VERSION)",
			    pg->pgdata);
			goto out;
		}
		rc = find_running(pg, deadline, &running, err);
		if (rc != 0)
			goto out;
	}
	if (!running) {
		if (mkdir(pg->logdir, 0700) != 0 && errno != EEXIST) {
			rc = ferry_errf_errno(err, FERRY_EOPER, errno,
			    "cannot create the server log directory '%s'",
			    pg->logdir);
			goto out;
		}
		rc = write_conf(pg->pgdata, pg->rundir, err);
		if (rc != 0)
			goto out;
		clear_zombie_locks(pg);
		rc = start_server(pg, deadline, err);
		if (rc != 0)
			goto out;
		ferry_log_info("started the embedded state store", "dir",
		    pg->pgdata);
	} else {
		ferry_log_info("adopted the running embedded state store",
		    "dir", pg->pgdata);
	}
	rc = ensure_database(pg, err);
	if (rc != 0)
		goto out;
	if (adopted != NULL)
		*adopted = running;
	*out = pg;
	pg = NULL;
out:
	if (lockfd >= 0)
		close(lockfd);
	ferry_pgembed_free(pg);
	free(abs);
	free(version);
	return rc;
}

const char *
ferry_pgembed_conninfo(const struct ferry_pgembed *pg)
{
	return pg->conninfo;
}

long
ferry_pgembed_pid(const struct ferry_pgembed *pg)
{
	return pg->pid;
}

int
ferry_pgembed_stop(struct ferry_pgembed *pg, struct ferry_err *err)
{
	int64_t deadline = ferry_mono_us() + STOP_TIMEOUT_S * 1000000LL;
	char *pgctl = xasprintf("%s/pg_ctl", pg->bindir);
	char *out = NULL, *flat = NULL;
	char secs[24], how[64];
	char *argv[] = { pgctl, "stop", "-D", pg->pgdata, "-m", "fast", "-w",
		"-t", secs, "-s", NULL };
	long pid;
	int lockfd = -1, status = 0, rc;

	snprintf(secs, sizeof(secs), "%d", STOP_TIMEOUT_S);
	rc = lock_dir(pg->dir, deadline, &lockfd, err);
	if (rc != 0)
		goto out;
	pid = pidfile_pid(pg);
	if (!pid_alive(pid) || !is_our_postmaster(pg, pid))
		goto out;
	rc = run(argv, pg->dir, STOP_TIMEOUT_S * 1000L + 10000, &status, &out,
	    err);
	if (rc != 0)
		goto out;
	/* pg_ctl fails if the server went away meanwhile: that is a stop. */
	if ((!WIFEXITED(status) || WEXITSTATUS(status) != 0) &&
	    pid_alive(pid)) {
		describe_status(status, how, sizeof(how));
		flat = flatten_tail(out, 300);
		rc = ferry_errf(err, FERRY_EOPER,
		    "cannot stop PostgreSQL in '%s': pg_ctl stop %s: %s",
		    pg->pgdata, how, flat);
		goto out;
	}
	ferry_log_info("stopped the embedded state store", "dir", pg->pgdata);
out:
	if (lockfd >= 0)
		close(lockfd);
	free(pgctl);
	free(out);
	free(flat);
	return rc;
}

void
ferry_pgembed_free(struct ferry_pgembed *pg)
{
	if (pg == NULL)
		return;
	free(pg->dir);
	free(pg->pgdata);
	free(pg->rundir);
	free(pg->logdir);
	free(pg->bindir);
	free(pg->user);
	free(pg->conninfo);
	free(pg->admin);
	free(pg);
}

int
ferry_drop_privileges(const char *user, struct ferry_err *err)
{
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	char *buf = NULL;
	uid_t uid;
	gid_t gid;
	int e, rc = 0;

	if (sz < 1024)
		sz = 16384;
	buf = xmalloc((size_t)sz);
	e = getpwnam_r(user, &pw, buf, (size_t)sz, &res);
	if (res == NULL) {
		if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF &&
		    e != EPERM)
			rc = ferry_errf_errno(err, FERRY_EOPER, e,
			    "cannot look up user '%s'", user);
		else
			rc = ferry_errf(err, FERRY_EUSAGE,
			    "user '%s' does not exist", user);
		goto out;
	}
	uid = pw.pw_uid;
	gid = pw.pw_gid;
	if (uid == 0) {
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "user '%s' is root: name an unprivileged user", user);
		goto out;
	}
	if (geteuid() != 0) {
		/* Already that user: nothing to give up. */
		if (geteuid() == uid && getuid() == uid)
			goto env;
		rc = ferry_errf(err, FERRY_EUSAGE,
		    "cannot switch to user '%s': not running as root", user);
		goto out;
	}
	if (initgroups(pw.pw_name, gid) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot set the groups of user '%s'", user);
		goto out;
	}
	if (setgid(gid) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot switch to group %ld of user '%s'", (long)gid, user);
		goto out;
	}
	if (setuid(uid) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot switch to user '%s'", user);
		goto out;
	}
	if (setuid(0) != -1 || getuid() != uid || geteuid() != uid ||
	    getgid() != gid || getegid() != gid) {
		/* Half-dropped privileges are worse than none: stop here. */
		rc = ferry_errf(err, FERRY_EOPER,
		    "switching to user '%s' left root privileges behind", user);
		goto out;
	}
env:
	if (setenv("HOME", pw.pw_dir, 1) != 0 ||
	    setenv("USER", pw.pw_name, 1) != 0 ||
	    setenv("LOGNAME", pw.pw_name, 1) != 0) {
		rc = ferry_errf_errno(err, FERRY_EOPER, errno,
		    "cannot set the environment of user '%s'", user);
		goto out;
	}
out:
	free(buf);
	return rc;
}
