/*
 * cgi.c - the CGI handler (RFC 3875): a new process per request.
 *
 * It owns a mount's scripts (a directory, or one file), the life of one
 * script's process (spawn, stderr to the log, exit, kill, reap) and the
 * public API of xitzin.h's CGI section. What it shares with SCGI lives
 * apart: the config and its checks in backend.c (max_processes alone is
 * checked here), the variable set in cgienv.c, and the relay of the
 * answer to the client in relay.c; failures are 42 with the relay's
 * metas.
 *
 * Which file runs: the first path segment after a directory mount is
 * opened with openat2(RESOLVE_BENEATH) relative to the root's descriptor,
 * so neither ".." nor a symlink can lead out of the root, and the checks
 * (a regular file, executable) are made on that descriptor. The child
 * then runs that very descriptor, execveat(fd, "", AT_EMPTY_PATH): no
 * path is looked up again, so nothing can be swapped between check and
 * exec. The price: the kernel names an interpreted (#!) script
 * "/dev/fd/3" to its interpreter (so $0 says so, and the descriptor stays
 * open for the interpreter to read), since the script has no other name
 * the kernel could trust. Scripts find their directory as their working
 * directory.
 *
 * Processes never block a worker. The spawn is posix_spawn's own trick
 * (which cannot run a descriptor): clone(CLONE_VM | CLONE_VFORK) onto a
 * small stack of its own, so nothing of the multi-threaded server is
 * copied, as fork() would copy its page tables; the worker sleeps until
 * the child has exec'd. Between clone and exec, async-signal-safe calls
 * only. Stdout is read through a bufferevent by the relay, stderr by an
 * event, and the exit watched on a pidfd, never with SIGCHLD (workers are
 * threads; a handler would be process-wide). Each script leads its own
 * session and process group; when its request is over (answered, timed
 * out, or the client went away) the whole group is killed, and the leader
 * is reaped from its pidfd event: no zombie.
 *
 * A descendant that leaves the group (setsid, a daemon's double fork)
 * escapes that kill. So the process is a child subreaper (prctl
 * PR_SET_CHILD_SUBREAPER) once it has a CGI mount: such orphans become
 * our children, not init's, and whenever a script is reaped every child
 * we did not spawn ourselves and that is in a session other than ours is
 * killed with its group and reaped (cgi_sweep), until none is left. A
 * daemon is thus killed at the latest when its request ends, earlier if
 * another request ends first; nothing a script starts outlives it.
 *
 * A process outlives its request while it dies, briefly. Each mount keeps
 * its processes in a list so that one whose event loop has already gone
 * (the server stopped, or the test client was freed) is still killed and
 * reaped when the mount is disposed. Their events are embedded in the
 * process (event_assign) so that an event_base freed before them leaves
 * nothing to free.
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/openat2.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "xz_private.h"

#define CGI_STATUS 42 /* Gemini "CGI error" */
#define META_NOT_EXEC "CGI script not executable"
#define META_ERROR "CGI script error"
/* 44 SLOW DOWN: the meta is the seconds a client should wait. */
#define CGI_RETRY_AFTER "5"
#define CGI_ERR_LINE 1024 /* bytes of one stderr line logged */
#define CGI_SCRIPT_FD 3   /* where the child keeps its script */
/* The child's stack until exec: a few frames, and a sanitizer's. */
#define CGI_STACK_SIZE (64 * 1024)
#define CGI_SWEEP_MAX 256      /* children looked at per sweep round */
#define CGI_SWEEP_ROUNDS 64    /* generations of a process tree per sweep */
#define CGI_UPLOAD_CHUNK 65536 /* upload bytes queued for stdin at most */

struct cgi_proc;

/* A mount: where its scripts are, its limits, its live processes. */
struct cgi_mount {
	int dirfd;    /* the root, or the one script's directory */
	char *script; /* one-script mount: its name in dirfd; else NULL */
	int nullfd;   /* /dev/null, opened now: a chroot may lack it */
	char *name;   /* "cgi /srv/cgi-bin": the log */
	struct xz_backend_config cfg; /* a copy (backend.c) */
	struct relay_cfg relay;
	int running; /* scripts whose request is in flight (atomic) */
	pthread_mutex_t lock;
	TAILQ_HEAD(, cgi_proc) procs; /* spawned and not yet reaped */
};

/* One script's process, from fork to reap. */
struct cgi_proc {
	struct cgi_mount *m;
	struct relay *relay; /* while the request is in flight */
	char *script_name;   /* SCRIPT_NAME: the log's name for it */
	pid_t pid;           /* also its process group */
	int pidfd;
	int errfd; /* stderr's read end; -1 once closed */
	struct event ev_exit;
	struct event ev_err;
	bool err_armed, exit_armed;
	char errline[CGI_ERR_LINE + 1];
	size_t errlen;
	bool err_skip;     /* inside an over-long line: drop to its end */
	bool request_over; /* the relay is done, or the client went away */
	bool killed;       /* we sent SIGKILL */
	/*
	 * Titan: the upload goes to the script's stdin, a socket (send()
	 * with MSG_NOSIGNAL: a script that exits without reading must not
	 * SIGPIPE the server), as the client sends it; -1 when none.
	 */
	int infd;
	struct xz_request *req; /* while infd is open */
	struct evbuffer *inbuf;
	struct event ev_in;
	bool in_armed;
	TAILQ_ENTRY(cgi_proc) link;
	TAILQ_ENTRY(cgi_proc) spawned_link; /* in cgi_spawned.procs */
};

/*
 * Every script leader not yet reaped, of every mount: the children a
 * sweep must spare. While a clone is in flight (spawning > 0) a new
 * child may be visible before it is listed, so a sweep waits: the last
 * spawner runs it.
 */
static struct {
	pthread_mutex_t lock;
	TAILQ_HEAD(, cgi_proc) procs;
	int spawning;
	bool sweep_pending;
	bool subreaper; /* PR_SET_CHILD_SUBREAPER is on */
	pid_t sid;      /* our session: children in it are not a script's */
	int taskfd;     /* /proc/self/task, opened before any chroot */
} cgi_spawned = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.procs = TAILQ_HEAD_INITIALIZER(cgi_spawned.procs),
	.taskfd = -1,
};

/* What a request runs. */
struct cgi_target {
	int fd;            /* the script, opened for execveat() */
	char *script_name; /* SCRIPT_NAME */
	const char *path_info;
};

/* The child's side of a spawn: all prepared before fork. */
struct cgi_child {
	int nullfd, outfd, errfd, scriptfd, dirfd; /* nullfd: stdin */
	char *argv[2];
	char **envp;
	sigset_t mask; /* empty: a worker blocks every signal */
	struct sigaction dfl;
};

static void cgi_on_exit(evutil_socket_t, short, void *);
static void cgi_on_stderr(evutil_socket_t, short, void *);

static const struct backend_kind cgi_kind = {
	.defaults = xz_cgi_config_init,
	.error_status = CGI_STATUS,
	.meta_timeout = "CGI script timeout",
	.meta_too_big = "CGI response exceeds maximum size",
	.meta_bad = META_ERROR,
};

/*
 * The child, between clone and exec: async-signal-safe calls only (the
 * parent has threads whose locks may be held), and it runs in the
 * parent's memory, on a stack the sanitizers do not know. Never returns.
 */
__attribute__((no_sanitize("address"))) static int
cgi_child_exec(void *arg)
{
	struct cgi_child *ch = arg;
	static const char msg[] = "exec failed, errno ";
	int *fds[] = { &ch->nullfd, &ch->outfd, &ch->errfd, &ch->scriptfd };
	char num[16];
	int sig, i, e, n;

	/* Ignored signals stay ignored across exec (SIGPIPE is). */
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &ch->dfl, NULL);
	(void)sigprocmask(SIG_SETMASK, &ch->mask, NULL);
	(void)setsid();
	if (fchdir(ch->dirfd) == -1)
		_exit(127);
	/* No source may sit where a dup2 below would overwrite it. */
	for (i = 0; i < 4; i++)
		if (*fds[i] <= CGI_SCRIPT_FD &&
		    (*fds[i] = fcntl(*fds[i], F_DUPFD_CLOEXEC,
		         CGI_SCRIPT_FD + 1)) == -1)
			_exit(127);
	for (i = 0; i < 4; i++)
		if (dup2(*fds[i], i) == -1) /* dup2 clears close-on-exec */
			_exit(127);
	(void)close_range(CGI_SCRIPT_FD + 1, ~0U, 0);
	execveat(CGI_SCRIPT_FD, "", ch->argv, ch->envp, AT_EMPTY_PATH);
	e = errno;
	n = (int)sizeof(num);
	num[--n] = '\n';
	do {
		num[--n] = (char)('0' + e % 10);
		e /= 10;
	} while (e != 0 && n > 0);
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)!write(STDERR_FILENO, num + n, sizeof(num) - (size_t)n);
	_exit(127);
}

/*
 * Starts ch's child as glibc's posix_spawn does: in our memory, on a
 * stack of its own, while this thread sleeps until the child has exec'd
 * or exited. Every signal is blocked meanwhile, so that no handler of
 * ours runs in the child (it resets them, then unblocks). Returns the pid
 * with *pidfd set, or -1 with errno.
 */
static pid_t
cgi_clone(struct cgi_child *ch, int *pidfd)
{
	sigset_t all, old;
	void *stack;
	pid_t pid;
	int e;

	stack = mmap(NULL, CGI_STACK_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(cgi_child_exec, (char *)stack + CGI_STACK_SIZE,
	    CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, ch, pidfd);
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	munmap(stack, CGI_STACK_SIZE);
	errno = e;
	return pid;
}

/*
 * Orphans: what a script leaves behind outside its process group.
 */

/* Once a CGI mount exists: orphans of scripts become ours, not init's. */
static void
cgi_become_subreaper(void)
{
	pthread_mutex_lock(&cgi_spawned.lock);
	if (!cgi_spawned.subreaper) {
		cgi_spawned.sid = getsid(0);
		/* Before any chroot: /proc may not be there after it. */
		cgi_spawned.taskfd =
		    open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgi_spawned.taskfd == -1)
			log_warn("cgi: /proc/self/task: orphans of scripts "
			         "cannot be found");
		else if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1)
			log_warn("cgi: PR_SET_CHILD_SUBREAPER");
		else
			cgi_spawned.subreaper = true;
	}
	pthread_mutex_unlock(&cgi_spawned.lock);
}

/* Appends the pids in one /proc/self/task/TID/children file. */
static size_t
cgi_children_of(const char *tid, pid_t *out, size_t n, size_t max)
{
	char path[300], buf[8192], *p, *end;
	ssize_t len;
	long v;
	int fd;

	snprintf(path, sizeof(path), "%s/children", tid);
	if ((fd = openat(cgi_spawned.taskfd, path, O_RDONLY | O_CLOEXEC)) == -1)
		return n;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return n;
	buf[len] = '\0';
	/* A cut last number is skipped: the next round sees it. */
	for (p = buf; n < max && *p != '\0'; p = end) {
		v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (*end == ' ' || *end == '\n' ||
		    (size_t)len < sizeof(buf) - 1)
			out[n++] = (pid_t)v;
	}
	return n;
}

/* Our children, of every thread: at most max pids. */
static size_t
cgi_children(pid_t *out, size_t max)
{
	char buf[4096];
	struct dirent64 *d;
	size_t n = 0;
	ssize_t len, off;

	if (lseek(cgi_spawned.taskfd, 0, SEEK_SET) == -1)
		return 0;
	while ((len = getdents64(cgi_spawned.taskfd, buf, sizeof(buf))) > 0)
		for (off = 0; off < len; off += d->d_reclen) {
			d = (struct dirent64 *)(void *)(buf + off);
			if (d->d_name[0] != '.')
				n = cgi_children_of(d->d_name, out, n, max);
		}
	return n;
}

static bool
cgi_is_spawned(pid_t pid)
{
	struct cgi_proc *p;

	TAILQ_FOREACH(p, &cgi_spawned.procs, spawned_link)
	if (p->pid == pid)
		return true;
	return false;
}

/*
 * Kills and reaps every child we did not spawn that is in a session
 * other than ours: a script's orphan (every script leads a session of its
 * own, and its descendants can only found new ones). Killing one makes
 * its own children ours, hence the rounds. Each wait follows a SIGKILL,
 * so it is short. Under cgi_spawned.lock; only here are orphans reaped,
 * so none of the pids read can have been reused meanwhile.
 */
static void
cgi_sweep_locked(void)
{
	pid_t kids[CGI_SWEEP_MAX], victims[CGI_SWEEP_MAX];
	size_t nkids, nv, i, total = 0, leaders = 0;
	int round;
	pid_t sid;

	if (cgi_spawned.spawning > 0) {
		cgi_spawned.sweep_pending = true;
		return;
	}
	for (round = 0; round < CGI_SWEEP_ROUNDS; round++) {
		nkids = cgi_children(kids, CGI_SWEEP_MAX);
		for (i = nv = 0; i < nkids; i++) {
			sid = getsid(kids[i]);
			if (sid == cgi_spawned.sid || cgi_is_spawned(kids[i]))
				continue;
			victims[nv++] = kids[i];
			leaders += sid == kids[i];
		}
		if (nv == 0)
			break;
		for (i = 0; i < nv; i++) {
			(void)kill(-victims[i], SIGKILL); /* its own group */
			(void)kill(victims[i], SIGKILL);
		}
		for (i = 0; i < nv; i++)
			while (waitpid(victims[i], NULL, 0) == -1 &&
			       errno == EINTR)
				;
		total += nv;
	}
	/*
	 * A script's background child outlives its script by a moment: it
	 * is reaped here, but only one that founded a session of its own
	 * (setsid, to escape the group kill) is worth a warning.
	 */
	if (leaders > 0)
		log_warnx("cgi: killed %zu process(es) that scripts left "
		          "behind, %zu of them in a session of their own",
		    total, leaders);
	else if (total > 0)
		log_debug("cgi: reaped %zu process(es) of scripts", total);
}

static void
cgi_sweep(void)
{
	if (!cgi_spawned.subreaper)
		return;
	pthread_mutex_lock(&cgi_spawned.lock);
	cgi_sweep_locked();
	pthread_mutex_unlock(&cgi_spawned.lock);
}

/* A clone is about to start: sweeps wait for it. */
static void
cgi_spawn_begin(void)
{
	pthread_mutex_lock(&cgi_spawned.lock);
	cgi_spawned.spawning++;
	pthread_mutex_unlock(&cgi_spawned.lock);
}

/* The clone is over: p (if spawned) is listed; a waiting sweep runs. */
static void
cgi_spawn_end(struct cgi_proc *p)
{
	pthread_mutex_lock(&cgi_spawned.lock);
	if (p != NULL)
		TAILQ_INSERT_TAIL(&cgi_spawned.procs, p, spawned_link);
	if (--cgi_spawned.spawning == 0 && cgi_spawned.sweep_pending) {
		cgi_spawned.sweep_pending = false;
		cgi_sweep_locked();
	}
	pthread_mutex_unlock(&cgi_spawned.lock);
}

/* SIGKILL to the script and its process group; never after the reap. */
static void
cgi_kill(struct cgi_proc *p)
{
	/*
	 * The pidfd first: a child that has not reached setsid() yet has
	 * no group, but also no children. Until it is reaped its pid cannot
	 * be reused, so -pid names its group and nothing else.
	 */
	(void)pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
	(void)kill(-p->pid, SIGKILL);
	p->killed = true;
}

static void
cgi_err_emit(struct cgi_proc *p, bool truncated)
{
	if (p->errlen > 0 && p->errline[p->errlen - 1] == '\r')
		p->errlen--;
	p->errline[p->errlen] = '\0';
	log_warnx("cgi %s: %s%s", p->script_name, p->errline,
	    truncated ? "..." : "");
	p->errlen = 0;
}

/* Cuts stderr into log lines of at most CGI_ERR_LINE bytes. */
static void
cgi_err_feed(struct cgi_proc *p, const char *buf, size_t len)
{
	size_t i;
	char ch;

	for (i = 0; i < len; i++) {
		ch = buf[i];
		if (ch == '\n') {
			if (!p->err_skip)
				cgi_err_emit(p, false);
			p->errlen = 0;
			p->err_skip = false;
			continue;
		}
		if (p->err_skip)
			continue;
		if (p->errlen == CGI_ERR_LINE) {
			cgi_err_emit(p, true);
			p->err_skip = true;
			continue;
		}
		/* A script must not be able to forge log lines. */
		if ((unsigned char)ch < 0x20 && ch != '\t' && ch != '\r')
			ch = '?';
		p->errline[p->errlen++] = ch;
	}
}

static void
cgi_err_close(struct cgi_proc *p)
{
	if (p->errfd == -1)
		return;
	if (p->errlen > 0 && !p->err_skip)
		cgi_err_emit(p, false);
	if (p->err_armed)
		event_del(&p->ev_err);
	p->err_armed = false;
	close(p->errfd);
	p->errfd = -1;
}

/* Reads what stderr holds now; closes it at its end. */
static void
cgi_err_read(struct cgi_proc *p, bool until_empty)
{
	char buf[4096];
	ssize_t n;

	do {
		n = read(p->errfd, buf, sizeof(buf));
		if (n > 0)
			cgi_err_feed(p, buf, (size_t)n);
	} while (n > 0 && until_empty);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		cgi_err_close(p);
}

static void
cgi_on_stderr(evutil_socket_t fd, short what, void *arg)
{
	cgi_err_read(arg, false);
}

/* Logs how the script ended, unless it was our own SIGKILL. */
static void
cgi_log_exit(const struct cgi_proc *p, const siginfo_t *si)
{
	if (si->si_code == CLD_EXITED && si->si_status != 0)
		log_warnx("cgi %s: exited with status %d", p->script_name,
		    si->si_status);
	else if (si->si_code == CLD_EXITED)
		log_debug("cgi %s: exited", p->script_name);
	else if (p->killed && si->si_status == SIGKILL)
		log_debug("cgi %s: killed", p->script_name);
	else
		log_warnx("cgi %s: killed by signal %d (%s)", p->script_name,
		    si->si_status, strsignal(si->si_status));
}

static void
cgi_proc_free(struct cgi_proc *p)
{
	struct cgi_mount *m = p->m;

	pthread_mutex_lock(&m->lock);
	TAILQ_REMOVE(&m->procs, p, link);
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_lock(&cgi_spawned.lock);
	TAILQ_REMOVE(&cgi_spawned.procs, p, spawned_link);
	pthread_mutex_unlock(&cgi_spawned.lock);
	metrics_cgi_process(-1);
	if (p->exit_armed)
		event_del(&p->ev_exit);
	cgi_err_close(p);
	close(p->pidfd);
	free(p->script_name);
	free(p);
}

/*
 * The leader has exited and its request is over: sweep the group (a
 * background child may linger; the unreaped leader keeps its pgid from
 * being reused), reap, take the last of stderr, free; then whatever the
 * script left outside its group.
 */
static void
cgi_proc_finish(struct cgi_proc *p, int wflags)
{
	siginfo_t si;

	(void)kill(-p->pid, SIGKILL);
	memset(&si, 0, sizeof(si));
	while (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | wflags) == -1 &&
	       errno == EINTR)
		;
	if (si.si_pid != 0)
		cgi_log_exit(p, &si);
	if (p->errfd != -1)
		cgi_err_read(p, true);
	cgi_proc_free(p);
	cgi_sweep();
}

/* The pidfd is readable: the leader has exited (and is a zombie). */
static void
cgi_on_exit(evutil_socket_t fd, short what, void *arg)
{
	struct cgi_proc *p = arg;

	p->exit_armed = false; /* not persistent: it stays readable */
	if (p->request_over)
		cgi_proc_finish(p, WNOHANG);
}

static bool
cgi_has_exited(const struct cgi_proc *p)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PIDFD, (id_t)p->pidfd, &si,
	           WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid != 0;
}

/* The upload is over for the script: EOF on its stdin, or it left. */
static void
cgi_in_close(struct cgi_proc *p)
{
	if (p->in_armed)
		event_del(&p->ev_in);
	p->in_armed = false;
	if (p->infd != -1)
		close(p->infd);
	p->infd = -1;
	if (p->inbuf != NULL)
		evbuffer_free(p->inbuf);
	p->inbuf = NULL;
	/* p may be freed before the request: it must not call us back. */
	if (p->req != NULL && xz_request_is_upload(p->req))
		xz_upload_on_data(p->req, NULL, NULL);
	p->req = NULL;
}

/*
 * Titan: feeds the script's stdin what the client has sent, at most
 * CGI_UPLOAD_CHUNK queued here; a full socket waits for room (the
 * script's reading paces the client), the end closes stdin.
 */
static void
cgi_in_send(struct cgi_proc *p)
{
	size_t len;
	ssize_t n;

	if (p->infd == -1)
		return;
	if (p->inbuf == NULL && (p->inbuf = evbuffer_new()) == NULL) {
		cgi_in_close(p);
		return;
	}
	for (;;) {
		len = evbuffer_get_length(p->inbuf);
		if (len < CGI_UPLOAD_CHUNK)
			len += request_upload_take(p->req, p->inbuf,
			    CGI_UPLOAD_CHUNK - len);
		if (len == 0)
			break;
		n = send(p->infd, evbuffer_pullup(p->inbuf, -1), len,
		    MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			p->in_armed = event_add(&p->ev_in, NULL) == 0;
			return;
		}
		if (n == -1) { /* the script closed stdin: its answer counts */
			log_debug("cgi %s: stdin: %s", p->script_name,
			    strerror(errno));
			cgi_in_close(p);
			return;
		}
		evbuffer_drain(p->inbuf, (size_t)n);
	}
	if (request_upload_done(p->req))
		cgi_in_close(p);
	/* else: the client's next bytes come to cgi_on_upload */
}

static void
cgi_on_stdin(evutil_socket_t fd, short what, void *arg)
{
	struct cgi_proc *p = arg;

	p->in_armed = false;
	cgi_in_send(p);
}

static void
cgi_on_upload(struct xz_request *req, void *arg)
{
	struct cgi_proc *p = arg;

	if (!p->in_armed)
		cgi_in_send(p);
}

/* Starts feeding stdin (after the relay has the request). */
static void
cgi_in_start(struct cgi_proc *p, struct event_base *base)
{
	if (p->infd == -1)
		return;
	event_assign(&p->ev_in, base, p->infd, EV_WRITE, cgi_on_stdin, p);
	xz_upload_on_data(p->req, cgi_on_upload, p);
	cgi_in_send(p);
}

/*
 * The request is over, answered or not: the script has nothing left to
 * say, so its group is killed (when it has not exited already) and its
 * slot freed at once. The reap follows from the pidfd event.
 */
static void
cgi_request_over(struct cgi_proc *p)
{
	cgi_in_close(p);
	p->relay = NULL;
	p->request_over = true;
	__atomic_sub_fetch(&p->m->running, 1, __ATOMIC_RELAXED);
	if (cgi_has_exited(p)) {
		cgi_proc_finish(p, WNOHANG);
		return;
	}
	cgi_kill(p);
	/*
	 * Never watched (out of memory at spawn): the child just killed is
	 * reaped now, the one wait that may block, and only for the moment
	 * a SIGKILL takes.
	 */
	if (!p->exit_armed)
		cgi_proc_finish(p, 0);
}

/* The relay has answered and ended the request: req is not ours. */
static void
cgi_on_relay_done(enum relay_end how, void *arg)
{
	cgi_request_over(arg);
}

/* The client went away (or the server stops). */
static void
cgi_cancel(struct xz_request *req, void *state)
{
	struct cgi_proc *p = xz_request_data(req);

	if (p == NULL)
		return;
	xz_request_set_data(req, NULL);
	relay_cancel(p->relay);
	cgi_request_over(p);
}

/* A pipe with close-on-exec ends, the read end non-blocking. */
static int
cgi_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) == -1)
		return -1;
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	return 0;
}

/* stdout's pipe and stderr's, or neither. */
static int
cgi_pipes(struct cgi_proc *p, int out[2], int err[2])
{
	if (cgi_pipe(out) == -1) {
		log_warn("cgi %s: pipe", p->script_name);
		return XZ_EIO;
	}
	if (cgi_pipe(err) == -1) {
		log_warn("cgi %s: pipe", p->script_name);
		close(out[0]);
		close(out[1]);
		return XZ_EIO;
	}
	return XZ_OK;
}

/* Everything the child needs, made before fork (no malloc after it). */
static void
cgi_child_prepare(struct cgi_child *ch, const struct cgi_proc *p,
    const struct cgi_target *t, char **envp, int outfd, int errfd)
{
	memset(ch, 0, sizeof(*ch));
	ch->nullfd = p->infd != -1 ? p->infd : p->m->nullfd;
	ch->outfd = outfd;
	ch->errfd = errfd;
	ch->scriptfd = t->fd;
	ch->dirfd = p->m->dirfd;
	/* argv[0] is the file's own name; no query words (RFC 3875, 4.4). */
	ch->argv[0] = p->m->script != NULL ? p->m->script :
	                                     strrchr(p->script_name, '/') + 1;
	ch->envp = envp;
	sigemptyset(&ch->mask);
	ch->dfl.sa_handler = SIG_DFL;
}

/*
 * Spawns the child for t with envp; *outfd gets stdout's read end and
 * p->pid, p->pidfd, p->errfd are set. XZ_OK or XZ_EIO (logged).
 */
static int
cgi_fork(struct cgi_proc *p, const struct cgi_target *t, char **envp,
    int *outfd)
{
	struct cgi_child ch;
	int out[2], err[2];
	pid_t pid;

	int in[2] = { -1, -1 };

	if (cgi_pipes(p, out, err) != XZ_OK)
		return XZ_EIO;
	if (p->req != NULL &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) == -1) {
		log_warn("cgi %s: socketpair", p->script_name);
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		return XZ_EIO;
	}
	p->infd = in[0]; /* the child's end, until the child has it */
	cgi_child_prepare(&ch, p, t, envp, out[1], err[1]);
	cgi_spawn_begin();
	/* The pidfd comes with the child: no window where it is unwatched. */
	pid = cgi_clone(&ch, &p->pidfd);
	if (pid == -1)
		log_warn("cgi %s: clone", p->script_name);
	else
		p->pid = pid;
	cgi_spawn_end(pid == -1 ? NULL : p);
	if (pid != -1)
		metrics_cgi_process(1);
	close(out[1]);
	close(err[1]);
	if (in[0] != -1)
		close(in[0]);
	p->infd = in[1];
	if (pid == -1) {
		close(out[0]);
		close(err[0]);
		if (in[1] != -1)
			close(in[1]);
		p->infd = -1;
		return XZ_EIO;
	}
	if (p->infd != -1)
		(void)fcntl(p->infd, F_SETFL, O_NONBLOCK);
	p->errfd = err[0];
	*outfd = out[0];
	return XZ_OK;
}

/* The variable set of DESIGN.md as an execve() environment. */
static char **
cgi_envp(const struct cgi_mount *m, struct xz_request *req,
    const struct cgi_target *t)
{
	struct cgienv env;
	char **envp;

	if (cgienv_request(&env, req, t->script_name, t->path_info, &m->cfg) !=
	    XZ_OK)
		return NULL;
	envp = cgienv_envp(&env);
	cgienv_clear(&env);
	return envp;
}

/* Watches the new process: its exit and its stderr. */
static int
cgi_watch(struct cgi_proc *p, struct event_base *base)
{
	event_assign(&p->ev_exit, base, p->pidfd, EV_READ, cgi_on_exit, p);
	event_assign(&p->ev_err, base, p->errfd, EV_READ | EV_PERSIST,
	    cgi_on_stderr, p);
	if (event_add(&p->ev_exit, NULL) == -1)
		return XZ_ENOMEM;
	p->exit_armed = true;
	if (event_add(&p->ev_err, NULL) == -1)
		return XZ_ENOMEM;
	p->err_armed = true;
	return XZ_OK;
}

/* Hands the script's stdout (outfd, taken) to the relay for req. */
static bool
cgi_hand_over(struct cgi_proc *p, struct xz_request *req, int outfd)
{
	struct bufferevent *bev;

	if (cgi_watch(p, xz_request_base(req)) != XZ_OK ||
	    (bev = bufferevent_socket_new(xz_request_base(req), outfd,
	         BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(outfd);
		return false;
	}
	/* relay_new takes bev, even when it fails. */
	p->relay = relay_new(req, bev, &p->m->relay, cgi_on_relay_done, p);
	return p->relay != NULL;
}

/*
 * Runs t for req: spawns the process and hands its stdout to the relay.
 * The slot is taken; it is given back when the request is over, or, if
 * this fails before spawning, by the caller (nothing answered then).
 */
static int
cgi_run(struct cgi_mount *m, struct xz_request *req, struct cgi_target *t)
{
	struct cgi_proc *p;
	char **envp;
	int outfd, rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return XZ_ENOMEM;
	p->m = m;
	p->errfd = p->pidfd = p->infd = -1;
	if (xz_request_is_upload(req))
		p->req = req; /* cgi_fork makes stdin a socket for it */
	if ((envp = cgi_envp(m, req, t)) == NULL) {
		free(p);
		return XZ_ENOMEM;
	}
	p->script_name = t->script_name;
	t->script_name = NULL;
	rc = cgi_fork(p, t, envp, &outfd);
	cgienv_envp_free(envp);
	if (rc != XZ_OK) {
		free(p->script_name);
		free(p);
		return rc;
	}
	pthread_mutex_lock(&m->lock);
	TAILQ_INSERT_TAIL(&m->procs, p, link);
	pthread_mutex_unlock(&m->lock);
	if (!cgi_hand_over(p, req, outfd)) {
		log_warnx("%s: out of memory", m->name);
		xz_end(req); /* 40: our failure, not the script's */
		cgi_request_over(p);
		return XZ_OK;
	}
	xz_request_set_data(req, p);
	cgi_in_start(p, xz_request_base(req));
	return XZ_OK;
}

/*
 * Opens name under dirfd for execveat(): readable, because interpreters
 * read the script through the descriptor (perl reads /dev/fd/3 with no
 * reopen); O_PATH only for a binary we may run but not read. O_NONBLOCK:
 * opening a FIFO must not block the worker.
 */
static int
cgi_open_script(int dirfd, const char *name, bool beneath)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, fd;

	fd = beneath ? open_beneath(dirfd, name, flags) :
	               openat(dirfd, name, flags);
	if (fd == -1 && errno == EACCES)
		fd = beneath ? open_beneath(dirfd, name, O_PATH | O_CLOEXEC) :
		               openat(dirfd, name, O_PATH | O_CLOEXEC);
	return fd;
}

/*
 * A directory mount: the first segment after the mount names the script,
 * the rest is PATH_INFO. Returns 0 with t filled, or the status to
 * answer (*meta set).
 */
static int
cgi_resolve_dir(const struct cgi_mount *m, struct xz_request *req,
    struct cgi_target *t, const char **meta)
{
	const char *info = xz_request_path_info(req), *slash;
	char *name;

	*meta = "Not found";
	if (info[0] != '/' || info[1] == '\0' || info[1] == '/')
		return 51; /* the mount itself: no script named */
	slash = strchr(info + 1, '/');
	t->path_info = slash != NULL ? slash : "";
	if ((name = strndup(info + 1, slash != NULL ?
	                                  (size_t)(slash - info - 1) :
	                                  strlen(info + 1))) == NULL)
		return -1;
	/* url.c removed dot segments already; this holds regardless. */
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		free(name);
		*meta = "Bad request";
		return 59;
	}
	if (asprintf(&t->script_name, "%s/%s", xz_request_mount(req), name) ==
	    -1) {
		t->script_name = NULL;
		free(name);
		return -1;
	}
	t->fd = cgi_open_script(m->dirfd, name, true);
	free(name);
	if (t->fd != -1)
		return 0;
	if (errno == EXDEV) { /* a symlink out of the root */
		log_warnx("%s: %s leads out of the root", m->name,
		    t->script_name);
		*meta = "Bad request";
		return 59;
	}
	if (errno != ENOENT && errno != ENOTDIR)
		log_warn("%s: %s", m->name, t->script_name);
	return 51;
}

/* A one-script mount: SCRIPT_NAME is the mount, PATH_INFO the rest. */
static int
cgi_resolve_script(const struct cgi_mount *m, struct xz_request *req,
    struct cgi_target *t, const char **meta)
{
	*meta = "Not found";
	t->path_info = xz_request_path_info(req);
	if ((t->script_name = strdup(xz_request_mount(req))) == NULL)
		return -1;
	if ((t->fd = cgi_open_script(m->dirfd, m->script, false)) != -1)
		return 0;
	log_warn("%s", m->name);
	return 51;
}

/* Only a regular file we may execute runs. */
static bool
cgi_executable(const struct cgi_mount *m, const struct cgi_target *t)
{
	struct stat st;

	if (fstat(t->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		log_warnx("%s: %s is not a regular file", m->name,
		    t->script_name);
		return false;
	}
	if (faccessat(t->fd, "", X_OK, AT_EMPTY_PATH | AT_EACCESS) == -1) {
		log_warn("%s: %s", m->name, t->script_name);
		return false;
	}
	return true;
}

/* A slot among max_processes, or false when all are taken. */
static bool
cgi_take_slot(struct cgi_mount *m)
{
	if (__atomic_add_fetch(&m->running, 1, __ATOMIC_RELAXED) <=
	    m->cfg.max_processes)
		return true;
	__atomic_sub_fetch(&m->running, 1, __ATOMIC_RELAXED);
	return false;
}

static int
cgi_start(struct xz_request *req, void *state)
{
	struct cgi_mount *m = state;
	struct cgi_target t = { .fd = -1 };
	const char *meta;
	int status, rc;

	status = m->script != NULL ? cgi_resolve_script(m, req, &t, &meta) :
	                             cgi_resolve_dir(m, req, &t, &meta);
	if (status == 0 && !cgi_executable(m, &t)) {
		status = CGI_STATUS;
		meta = META_NOT_EXEC;
	}
	if (status == 0 && !cgi_take_slot(m)) {
		log_warnx("%s: %s: %d scripts running already", m->name,
		    t.script_name, m->cfg.max_processes);
		status = 44;
		meta = CGI_RETRY_AFTER;
	}
	rc = XZ_OK;
	if (status > 0)
		xz_respond(req, status, meta);
	else if (status < 0)
		rc = XZ_ENOMEM;
	else if ((rc = cgi_run(m, req, &t)) != XZ_OK)
		__atomic_sub_fetch(&m->running, 1, __ATOMIC_RELAXED);
	if (t.fd != -1)
		close(t.fd);
	free(t.script_name);
	return rc;
}

/*
 * Disposal comes after every event loop has stopped, or (a reloaded
 * app's) once cgi_busy says none has a process left: what is left is
 * killed and reaped here, waiting for each (a SIGKILL is quick).
 */
static void
cgi_dispose(void *state)
{
	struct cgi_mount *m = state;
	struct cgi_proc *p, *next;

	for (p = TAILQ_FIRST(&m->procs); p != NULL; p = next) {
		next = TAILQ_NEXT(p, link); /* p is freed below */
		/* Their event_base is gone: nothing to remove from it. */
		p->exit_armed = p->err_armed = false;
		if (!p->request_over) {
			log_warnx("%s: %s: request still in flight at dispose",
			    m->name, p->script_name);
			p->request_over = true;
		}
		if (!cgi_has_exited(p))
			cgi_kill(p);
		cgi_proc_finish(p, 0);
	}
	cgi_sweep(); /* also when no script of this mount was left */
	backend_config_clear(&m->cfg);
	if (m->dirfd != -1)
		close(m->dirfd);
	if (m->nullfd != -1)
		close(m->nullfd);
	pthread_mutex_destroy(&m->lock);
	free(m->script);
	free(m->name);
	free(m);
}

/*
 * Processes not yet reaped, their requests over: their events are on the
 * workers' loops, so a reload's old mount waits for them to go before
 * it is disposed of (app_busy).
 */
static bool
cgi_busy(void *state)
{
	struct cgi_mount *m = state;
	bool busy;

	pthread_mutex_lock(&m->lock);
	busy = !TAILQ_EMPTY(&m->procs);
	pthread_mutex_unlock(&m->lock);
	return busy;
}

static const struct xz_handler_ops cgi_ops = {
	.name = "cgi",
	.start = cgi_start,
	.cancel = cgi_cancel,
	.dispose = cgi_dispose,
};

/*
 * Registration.
 */

/* A mount with cfg (NULL: the defaults) and nothing opened yet. */
static struct cgi_mount *
cgi_mount_new(struct xz_app *app, const char *prefix, const char *path,
    const struct xz_backend_config *cfg, int *rc)
{
	struct cgi_mount *m;
	const char *why;

	*rc = XZ_ENOMEM;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->dirfd = m->nullfd = -1;
	TAILQ_INIT(&m->procs);
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	if (asprintf(&m->name, "cgi %s", path) == -1) {
		m->name = NULL;
		cgi_dispose(m);
		return NULL;
	}
	if ((*rc = backend_config_copy(&m->cfg, cfg, &cgi_kind, &why)) ==
	        XZ_OK &&
	    m->cfg.max_processes < 1) {
		why = "max_processes must be at least 1";
		*rc = XZ_EINVAL;
	}
	if (*rc != XZ_OK) {
		if (*rc == XZ_EINVAL)
			app_set_error(app, "cgi %s: %s", prefix, why);
		cgi_dispose(m);
		return NULL;
	}
	backend_relay_cfg(&m->relay, &m->cfg, &cgi_kind, m->name);
	cgi_become_subreaper();
	return m;
}

/* Opens dir and /dev/null; XZ_EINVAL (with the reason) when one fails. */
static int
cgi_mount_open(struct xz_app *app, const char *prefix, struct cgi_mount *m,
    const char *dir)
{
	m->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (m->dirfd == -1) {
		app_set_error(app, "cgi %s: %s: %s", prefix, dir,
		    strerror(errno));
		return XZ_EINVAL;
	}
	m->nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (m->nullfd == -1) {
		app_set_error(app, "cgi %s: /dev/null: %s", prefix,
		    strerror(errno));
		return XZ_EINVAL;
	}
	return XZ_OK;
}

/* XZ_EINVAL has its reason already; out of memory gets one here. */
static int
cgi_mount_failed(struct xz_app *app, const char *prefix, int rc)
{
	if (rc == XZ_ENOMEM)
		app_set_error(app, "cgi %s: out of memory", prefix);
	return rc;
}

static int
cgi_mount(struct xz_app *app, const char *prefix, struct cgi_mount *m)
{
	struct xz_backend_config cfg = m->cfg; /* m is gone on failure */
	struct xz_handler *h = xz_handler_new(&cgi_ops, m);

	if (h != NULL)
		h->busy = cgi_busy;
	backend_handler_titan(h, &cfg);
	return xz_mount(app, prefix, h);
}

int
xz_cgi(struct xz_app *app, const char *prefix, const char *dir,
    const struct xz_backend_config *cfg)
{
	struct cgi_mount *m;
	int rc;

	if (prefix == NULL || dir == NULL) {
		app_set_error(app, "cgi %s: no directory",
		    prefix != NULL ? prefix : "(null)");
		return XZ_EINVAL;
	}
	if ((m = cgi_mount_new(app, prefix, dir, cfg, &rc)) == NULL)
		return cgi_mount_failed(app, prefix, rc);
	if ((rc = cgi_mount_open(app, prefix, m, dir)) != XZ_OK) {
		cgi_dispose(m);
		return rc;
	}
	return cgi_mount(app, prefix, m);
}

/*
 * The script is looked up again for each request (so that a new version
 * replaces the old without a restart), from its directory opened now.
 */
int
xz_cgi_script(struct xz_app *app, const char *prefix, const char *script,
    const struct xz_backend_config *cfg)
{
	struct cgi_mount *m;
	char *dcopy = NULL, *bcopy = NULL;
	struct stat st;
	int rc;

	if (prefix == NULL || script == NULL) {
		app_set_error(app, "cgi %s: no script",
		    prefix != NULL ? prefix : "(null)");
		return XZ_EINVAL;
	}
	if ((m = cgi_mount_new(app, prefix, script, cfg, &rc)) == NULL)
		return cgi_mount_failed(app, prefix, rc);
	if ((dcopy = strdup(script)) == NULL ||
	    (bcopy = strdup(script)) == NULL ||
	    (m->script = strdup(basename(bcopy))) == NULL)
		rc = XZ_ENOMEM;
	else if ((rc = cgi_mount_open(app, prefix, m, dirname(dcopy))) ==
	             XZ_OK &&
	         fstatat(m->dirfd, m->script, &st, 0) == -1) {
		app_set_error(app, "cgi %s: %s: %s", prefix, script,
		    strerror(errno));
		rc = XZ_EINVAL;
	}
	free(dcopy);
	free(bcopy);
	if (rc != XZ_OK) {
		cgi_dispose(m);
		return cgi_mount_failed(app, prefix, rc);
	}
	return cgi_mount(app, prefix, m);
}
