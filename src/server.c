/*
 * server.c - listeners, worker threads, signals and the graceful stop.
 *
 * Each worker thread has its own event_base and its own listening socket
 * per listen address (SO_REUSEPORT: the kernel spreads connections, no
 * lock is shared on accept). SO_REUSEPORT would also let a second xitzin
 * join the group and take half the clients: a probe bound without it
 * first fails with "Address already in use" when anyone listens there.
 * Sockets passed by systemd (socket activation) are shared instead: each
 * worker listens on its own dup() of the one socket.
 *
 * The main thread waits for SIGTERM/SIGINT or xz_server_stop() (a
 * self-pipe, so a signal handler may call it), reopening the log files on
 * SIGUSR1 and reloading on SIGHUP meanwhile, serves on for stop_delay (a
 * load balancer's checks see the stop and send no more), then tells every
 * worker to close its listeners and to finish its connections within
 * drain_timeout. A second SIGTERM/SIGINT cuts the drain short, closing
 * what is left as the drain timeout would (CGI groups killed).
 *
 * Reload: what the configuration says lives in a generation
 * (generation.c). The main thread builds the new one (reading the
 * certificates, running the new app's startup hooks) while the workers
 * serve; then each worker is handed a reference through an atomic slot
 * and an event, and takes it up between two callbacks. A connection
 * keeps the generation it was accepted under to its end; the old one is
 * freed on the main thread once its last connection has closed and its
 * app's processes are reaped (app_busy), after its shutdown hooks. The
 * request path takes no lock: accept reads the worker's own pointer.
 * The listening sockets stay: listen changes need a restart.
 */
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <grp.h>
#include <pwd.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "xz_private.h"

/*
 * The kernel caps the backlog at net.core.somaxconn; asking for more
 * costs nothing, and a burst of handshakes then never waits on SYN
 * retries (gmid's 16 gives multi-second tails).
 */
#define SERVER_BACKLOG 65535

/*
 * libevent accepts until the queue is empty. From a deep backlog a burst
 * would become thousands of connections set up at once, their memory all
 * held together, while the ones already open wait: after this many the
 * listener pauses until the loop has served what else is ready.
 */
#define SERVER_ACCEPT_BATCH 32

/*
 * When accept(2) fails (out of descriptors: EMFILE, ENFILE; or out of
 * memory), the connection stays in the backlog and the listener stays
 * readable: left enabled, libevent would call us again at once, forever
 * (both workers at 100% CPU, millions of log lines a minute). The
 * listener pauses instead, and tries again after this back-off or as soon
 * as one of its worker's connections ends, whichever comes first.
 *
 * Not the reserve-descriptor trick (close a spare, accept, close the
 * connection, reopen the spare): the workers share one descriptor table,
 * so the freed slot can go to another thread's accept or open and the
 * spare be lost; it does nothing for ENFILE; and it would cut off clients
 * that, waiting in the backlog, get served once descriptors come free.
 * Refusing early is the default max_connections' job (admit.c).
 */
#define SERVER_ACCEPT_BACKOFF 0.1 /* seconds */
/* Failing accepts log one line per interval, with a count. */
#define SERVER_ACCEPT_LOG_INTERVAL 10 /* seconds */
/*
 * A replaced configuration whose last connection is over, but whose CGI
 * processes are still being reaped, is looked at again after this.
 */
#define SERVER_REAP_RETRY 0.05 /* seconds */

struct worker;
struct xz_server;

static void server_notify(const struct xz_server *srv, const char *state);

struct conn_entry {
	struct xz_conn *c;
	struct worker *w;
	struct generation *gen; /* a reference, to the connection's end */
	struct admit_key key;
	TAILQ_ENTRY(conn_entry) link;
};

struct listener {
	struct worker *w;
	size_t index; /* in srv->addrs and each generation's cfgs */
	struct evconnlistener *evl;
	struct event *ev_resume;  /* re-enables evl after a full batch */
	struct event *ev_backoff; /* re-enables evl after a failed accept */
	unsigned batch;           /* accepted since the last pause */
	bool backing_off;         /* ev_backoff is pending */
};

struct worker {
	struct xz_server *srv;
	pthread_t thread;
	bool started;
	struct event_base *base;
	struct listener *listeners; /* one per listen address */
	struct event *ev_stop;
	struct event *ev_drain_timeout;
	/*
	 * What new connections get: a reference of the worker's own, read
	 * at accept without a lock. The main thread leaves the next one in
	 * next_gen (a reference too) and activates ev_reload.
	 */
	struct generation *gen;
	struct generation *next_gen; /* atomic */
	struct event *ev_reload;
	TAILQ_HEAD(, conn_entry) conns;
	size_t nconns;
	bool stopping;
};

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd;                /* a socket passed to us (systemd), or -1 */
	int port;              /* once bound */
	enum proxy_mode proxy; /* the PROXY header its connections open with */
};

/* Failed accepts across the workers, for a log that cannot flood. */
struct accept_failures {
	pthread_mutex_t lock;
	atomic_bool failing; /* since the last accept that worked */
	bool reported;       /* the last line logged was a failure */
	unsigned long count; /* failures not yet in a line */
	bool logged;         /* a failure line, ever */
	time_t logged_at;    /* when the last one was, CLOCK_MONOTONIC */
};

struct xz_server {
	/* As given, defaulted: the first generation's, and the restart-only. */
	struct xz_server_opts opts;
	struct generation *gen; /* the current one (main thread) */
	/* Made by xz_server_reload in the reload callback, not yet serving. */
	struct generation *staged;
	bool in_reload; /* the reload callback runs */
	/* Replaced, waiting for their connections to end (main thread). */
	TAILQ_HEAD(, generation) retired;
	unsigned long ngens;   /* generations made: the next one's id - 1 */
	unsigned long reloads; /* reloads that took effect (for metrics) */
	bool ran;              /* xz_server_run was called: sites are fixed */
	bool running;          /* the startup hooks ran: reloads run theirs */
	bool finished;         /* xz_server_run has returned */
	unsigned max_connections_given; /* opts' own, before the default */
	xz_reload_fn reload_fn;
	void *reload_arg;
	struct event *ev_reap;     /* main loop: a generation may be unused */
	struct event *ev_watchdog; /* main loop: WATCHDOG=1 */
	long watchdog_usec;        /* $WATCHDOG_USEC, with opts.sd_notify */
	struct listen_addr *addrs;
	size_t naddrs;
	struct worker *workers;
	int nworkers;
	int stop_pipe[2];
	int nrunning; /* workers whose thread has not returned (atomic) */
	struct admit *admit;
	struct accept_failures accept_failures;
	char error[256];   /* why xz_server_run failed (xz_server_error) */
	char *notify_path; /* $NOTIFY_SOCKET, with opts.sd_notify */
	struct metrics *metrics; /* opts.metrics_listen; NULL: off */
};

/*
 * What the main thread waits on: SIGTERM, SIGINT, xz_server_stop(); then,
 * while draining, the workers' ends (each writes to the stop pipe) and a
 * second signal.
 */
struct stop_waiter {
	struct xz_server *srv;
	struct event_base *base;
	struct event *sigterm, *sigint, *sigusr1, *sighup, *pipe_ev;
	bool delaying; /* in stop_delay */
	bool draining;
};

/* The back-off after a failed accept is over: try again. */
static void
server_on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	l->backing_off = false;
	if (!l->w->stopping)
		evconnlistener_enable(l->evl);
}

/*
 * Drops a reference to g, from any thread; the last one wakes the main
 * thread, which frees g unless it is still the current one.
 */
static void
server_gen_unref(struct xz_server *srv, struct generation *g)
{
	if (g != NULL && generation_unref(g) && srv->ev_reap != NULL)
		event_active(srv->ev_reap, EV_TIMEOUT, 1);
}

static void
server_conn_closed(struct xz_conn *c, void *arg)
{
	struct conn_entry *e = arg;
	struct worker *w = e->w;
	size_t i;

	TAILQ_REMOVE(&w->conns, e, link);
	admit_release(w->srv->admit, &e->key);
	server_gen_unref(w->srv, e->gen);
	free(e);
	metrics_conn_closed();
	/* A descriptor came free: a paused listener need not wait. */
	for (i = 0; i < w->srv->naddrs; i++)
		if (w->listeners[i].backing_off) {
			evtimer_del(w->listeners[i].ev_backoff);
			server_on_backoff(-1, EV_TIMEOUT, &w->listeners[i]);
		}
	if (--w->nconns == 0 && w->stopping)
		event_base_loopexit(w->base, NULL);
}

/* For the log: which PROXY header a listener's connections open with. */
static const char *const server_proxy_name[] = { "", "PROXY v1 header, ",
	"PROXY v2 header, ", "PROXY v1 or v2 header, " };

/* The PROXY header named the client: count it against its address. */
static bool
server_conn_proxied(const struct sockaddr *client, void *arg)
{
	struct conn_entry *e = arg;

	return admit_address(e->w->srv->admit, client, &e->key);
}

/* Runs once the events that were ready with the batch have been served. */
static void
server_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	l->batch = 0;
	if (!l->w->stopping && !l->backing_off)
		evconnlistener_enable(l->evl);
}

/*
 * At most one failure line per SERVER_ACCEPT_LOG_INTERVAL, across the
 * workers, with the failures counted since the line before.
 */
static void
server_accept_failed(struct xz_server *srv, int err)
{
	struct accept_failures *f = &srv->accept_failures;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&f->lock);
	atomic_store(&f->failing, true);
	f->count++;
	if (!f->logged ||
	    ts.tv_sec - f->logged_at >= SERVER_ACCEPT_LOG_INTERVAL) {
		errno = err;
		log_warn("accept (%lu failure%s since the last report; "
		         "paused, retried every %d ms)",
		    f->count, f->count == 1 ? "" : "s",
		    (int)(SERVER_ACCEPT_BACKOFF * 1000));
		f->count = 0;
		f->logged = f->reported = true;
		f->logged_at = ts.tv_sec;
	}
	pthread_mutex_unlock(&f->lock);
}

/* An accept worked: after a reported failure, say so (once). */
static void
server_accept_worked(struct xz_server *srv)
{
	struct accept_failures *f = &srv->accept_failures;

	if (!atomic_load_explicit(&f->failing, memory_order_relaxed))
		return;
	pthread_mutex_lock(&f->lock);
	if (atomic_exchange(&f->failing, false) && f->reported) {
		log_info("accept: working again (%lu more failure%s)", f->count,
		    f->count == 1 ? "" : "s");
		f->count = 0;
		f->reported = false;
	}
	pthread_mutex_unlock(&f->lock);
}

static void
server_on_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct worker *w = l->w;
	struct conn_entry *e;

	server_accept_worked(w->srv);
	if (++l->batch == SERVER_ACCEPT_BATCH) {
		/* libevent's accept loop stops when its listener is disabled.
		 */
		evconnlistener_disable(evl);
		event_active(l->ev_resume, EV_TIMEOUT, 1);
	}

	/* TCP_NODELAY came from the listener (server_bind): no syscall. */
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		log_warnx("accept: out of memory");
		close(fd);
		return;
	}
	/*
	 * Behind a proxy the peer is the proxy: the per-address count waits
	 * for the header's client (server_conn_proxied).
	 */
	if (!admit_take(w->srv->admit,
	        w->srv->addrs[l->index].proxy != PROXY_OFF ? NULL : sa,
	        &e->key)) {
		/* Over a limit: refused before any TLS work. */
		log_debug("accept: connection limit reached, dropped");
		free(e);
		close(fd);
		return;
	}
	e->w = w;
	e->gen = w->gen;
	generation_ref(e->gen);
	TAILQ_INSERT_TAIL(&w->conns, e, link);
	w->nconns++;
	metrics_conn_opened(); /* before conn_new: its failure closes it */
	e->c = conn_new(w->base, fd, &e->gen->cfgs[l->index], sa,
	    server_conn_closed, e);
	if (e->c == NULL) {
		TAILQ_REMOVE(&w->conns, e, link);
		admit_release(w->srv->admit, &e->key);
		server_gen_unref(w->srv, e->gen);
		w->nconns--;
		free(e);
		metrics_conn_closed();
	}
}

/* libevent retries EINTR, EAGAIN and ECONNABORTED itself: not here. */
static void
server_on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;
	int err = errno;
	struct timeval tv = xz_timeval(SERVER_ACCEPT_BACKOFF);

	evconnlistener_disable(evl);
	l->backing_off = true;
	evtimer_add(l->ev_backoff, &tv);
	server_accept_failed(l->w->srv, err);
}

static void
worker_close_all(struct worker *w)
{
	struct conn_entry *e;

	while ((e = TAILQ_FIRST(&w->conns)) != NULL)
		conn_close(e->c, "server stopping");
}

static void
worker_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_info("drain timeout: closing %zu connection(s)", w->nconns);
	worker_close_all(w);
	event_base_loopexit(w->base, NULL);
}

/*
 * Closes a listener, taking first what the kernel has queued on it: a
 * connection left in the backlog would be reset by the close, after a
 * TCP proxy had sent it a request it cannot retry. Once closed, the port
 * refuses connections, which a proxy retries elsewhere. One that comes
 * between the last accept and the close is still reset: stop_delay lets
 * the balancer stop sending first.
 */
static void
worker_close_listener(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, lfd;

	if (l->evl == NULL)
		return;
	evconnlistener_disable(l->evl);
	lfd = evconnlistener_get_fd(l->evl);
	while ((fd = accept4(lfd, (struct sockaddr *)&ss, &len,
	            SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		server_on_accept(l->evl, fd, (struct sockaddr *)&ss, (int)len,
		    l);
		len = sizeof(ss);
	}
	evconnlistener_free(l->evl);
	l->evl = NULL;
}

/* Runs in the worker: stop accepting, finish what is in flight. */
static void
worker_on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval tv;
	size_t i;
	double t = w->srv->opts.drain_timeout;

	w->stopping = true;
	for (i = 0; i < w->srv->naddrs; i++)
		worker_close_listener(&w->listeners[i]);
	if (w->nconns == 0) {
		event_base_loopexit(w->base, NULL);
		return;
	}
	/*
	 * A second signal may have fired the drain timer before this ran:
	 * adding it again would cancel that and drain after all.
	 */
	if (event_pending(w->ev_drain_timeout, EV_TIMEOUT, NULL))
		return;
	tv = xz_timeval(t);
	evtimer_add(w->ev_drain_timeout, &tv);
}

/* Runs in the worker: new connections get the generation left for it. */
static void
worker_on_reload(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct generation *g, *old;

	g = __atomic_exchange_n(&w->next_gen, NULL, __ATOMIC_ACQ_REL);
	if (g == NULL)
		return;
	old = w->gen;
	w->gen = g;
	server_gen_unref(w->srv, old);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	metrics_worker_enter(w->srv->metrics, (int)(w - w->srv->workers));
	event_base_dispatch(w->base);
	/* Stopped: anything left (the drain timed out) is closed here. */
	worker_close_all(w);
	metrics_worker_leave();
	/* The main thread waits on the stop pipe for the last worker. */
	__atomic_sub_fetch(&w->srv->nrunning, 1, __ATOMIC_RELEASE);
	xz_server_stop(w->srv);
	return NULL;
}

/*
 * What may follow a listen address, one space apart: for now
 * "proxy_protocol=v1|v2|any", the PROXY header its connections open with.
 */
static int
server_listen_options(const char *spec, const char *opts,
    struct listen_addr *la, char *err, size_t errlen)
{
	char **words = strlist_split(opts), **w;
	int mode, rc = XZ_OK;

	if (words == NULL) {
		snprintf(err, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	for (w = words; *w != NULL && rc == XZ_OK; w++) {
		if (strncmp(*w, "proxy_protocol=", 15) == 0 &&
		    (mode = proxy_mode_parse(*w + 15)) != -1) {
			la->proxy = (enum proxy_mode)mode;
			continue;
		}
		snprintf(err, errlen,
		    "listen %s: '%s': expected proxy_protocol=v1, v2 or any",
		    spec, *w);
		rc = XZ_EINVAL;
	}
	strlist_free(words);
	return rc;
}

/*
 * "0.0.0.0:1965", "[::1]:1965", "localhost:1965" -> the first address;
 * options may follow ("127.0.0.1:1966 proxy_protocol=v2").
 */
static int
server_parse_listen(const char *whole, struct listen_addr *la, char *err,
    size_t errlen)
{
	struct addrinfo hints = { 0 }, *res;
	char host[256], spec[300];
	const char *colon, *port;
	size_t speclen = strcspn(whole, " \t");
	int rc;

	la->proxy = PROXY_OFF;
	if (whole[speclen] != '\0' &&
	    server_listen_options(whole, whole + speclen, la, err, errlen) !=
	        XZ_OK)
		return XZ_EINVAL;
	if (speclen >= sizeof(spec))
		goto bad;
	memcpy(spec, whole, speclen);
	spec[speclen] = '\0';

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(close - spec - 1),
		    spec + 1);
		port = close + 2;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		port = colon + 1;
	}
	/* getaddrinfo takes 99999 and wraps it to 34463: not ours. */
	if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || atoi(port) > 65535) {
		snprintf(err, errlen, "listen %s: port '%s' not in 0..65535",
		    spec, port);
		return XZ_EINVAL;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "listen %s: %s", spec, gai_strerror(rc));
		return XZ_EINVAL;
	}
	memcpy(&la->ss, res->ai_addr, res->ai_addrlen);
	la->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return XZ_OK;
bad:
	snprintf(err, errlen, "listen %s: expected HOST:PORT or [IPV6]:PORT",
	    whole);
	return XZ_EINVAL;
}

int
server_check_listen(const char *spec, char *err, size_t errlen)
{
	struct listen_addr la = { 0 };

	return server_parse_listen(spec, &la, err, errlen);
}

static int
server_addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void
server_set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/*
 * A listening socket for la. With port 0 the first bind picks a port,
 * which la then keeps so that every worker shares it. Without reuseport
 * it is the probe: bind fails if any socket listens there, ours or
 * another process's (SO_REUSEADDR only lets TIME_WAIT through).
 */
static int
server_bind(struct listen_addr *la, bool reuseport, char *err, size_t errlen)
{
	int fd, one = 1;
	struct sockaddr_storage got;
	socklen_t gotlen = sizeof(got);
	char name[INET6_ADDRSTRLEN] = "?";

	if (la->fd != -1) {
		if ((fd = fcntl(la->fd, F_DUPFD_CLOEXEC, 0)) == -1)
			goto fail;
		return fd;
	}
	fd = socket(la->ss.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	/*
	 * Accepted sockets inherit TCP_NODELAY from the listener (Linux
	 * copies it at accept), which saves a setsockopt per connection.
	 * No Nagle: a response's last record must not wait for an ACK.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	                      sizeof(one)) == -1) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		goto fail;
	if (la->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (struct sockaddr *)&la->ss, la->sslen) == -1 ||
	    (reuseport && listen(fd, SERVER_BACKLOG) == -1))
		goto fail;
	if (getsockname(fd, (struct sockaddr *)&got, &gotlen) == 0)
		server_set_port(&la->ss, server_addr_port(&got));
	return fd;
fail:
	if (la->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((struct sockaddr_in6 *)&la->ss)->sin6_addr, name,
		    sizeof(name));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&la->ss)->sin_addr,
		    name, sizeof(name));
	snprintf(err, errlen, "listen %s port %d: %s", name,
	    server_addr_port(&la->ss), strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * With the epoll changelist, libevent batches event changes until the
 * next epoll_wait: a connection's read event, deleted as it fires and
 * added again by its callback, then costs one epoll_ctl or none rather
 * than two. (Its caveat, descriptors cloned by dup(), doesn't arise.)
 * epoll or nothing: when epoll_create fails (out of descriptors) libevent
 * would fall back to poll, whose setup exit()s the process when its
 * signal socketpair fails too; without a fallback the base is NULL and
 * the caller fails cleanly.
 */
static struct event_base *
worker_base_new(void)
{
	struct event_config *ec;
	struct event_base *base = NULL;

	if ((ec = event_config_new()) == NULL)
		return NULL;
	if (event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) ==
	        0 &&
	    event_config_avoid_method(ec, "poll") == 0 &&
	    event_config_avoid_method(ec, "select") == 0)
		base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

static int
worker_init(struct xz_server *srv, struct worker *w, char *err, size_t errlen)
{
	size_t i;
	int fd;

	w->srv = srv;
	TAILQ_INIT(&w->conns);
	if ((w->base = worker_base_new()) == NULL) {
		snprintf(err, errlen,
		    "cannot create an event loop (out of "
		    "memory or descriptors)");
		return XZ_EIO;
	}
	if ((w->listeners = calloc(srv->naddrs, sizeof(*w->listeners))) ==
	        NULL ||
	    (w->ev_stop = event_new(w->base, -1, 0, worker_on_stop, w)) ==
	        NULL ||
	    (w->ev_drain_timeout =
	            evtimer_new(w->base, worker_on_drain_timeout, w)) == NULL ||
	    (w->ev_reload = event_new(w->base, -1, 0, worker_on_reload, w)) ==
	        NULL) {
		snprintf(err, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	for (i = 0; i < srv->naddrs; i++) {
		struct listener *l = &w->listeners[i];

		if ((fd = server_bind(&srv->addrs[i], true, err, errlen)) == -1)
			return XZ_EIO;
		srv->addrs[i].port = server_addr_port(&srv->addrs[i].ss);
		l->w = w;
		l->index = i;
		if ((l->ev_resume = event_new(w->base, -1, 0, server_on_resume,
		         l)) == NULL ||
		    (l->ev_backoff = evtimer_new(w->base, server_on_backoff,
		         l)) == NULL) {
			close(fd);
			snprintf(err, errlen, "out of memory");
			return XZ_ENOMEM;
		}
		/*
		 * Backlog 0: the socket listens already, with SERVER_BACKLOG.
		 * -1 would make libevent listen() again with 128, and at 256
		 * concurrent handshakes SYNs would be dropped (1 s retries).
		 */
		l->evl = evconnlistener_new(w->base, server_on_accept, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
		if (l->evl == NULL) {
			close(fd);
			snprintf(err, errlen, "out of memory");
			return XZ_ENOMEM;
		}
		evconnlistener_set_error_cb(l->evl, server_on_accept_error);
	}
	return XZ_OK;
}

static void
worker_free(struct worker *w, size_t naddrs)
{
	size_t i;

	if (w->listeners != NULL)
		for (i = 0; i < naddrs; i++) {
			if (w->listeners[i].evl != NULL)
				evconnlistener_free(w->listeners[i].evl);
			if (w->listeners[i].ev_resume != NULL)
				event_free(w->listeners[i].ev_resume);
			if (w->listeners[i].ev_backoff != NULL)
				event_free(w->listeners[i].ev_backoff);
		}
	free(w->listeners);
	if (w->ev_stop != NULL)
		event_free(w->ev_stop);
	if (w->ev_drain_timeout != NULL)
		event_free(w->ev_drain_timeout);
	if (w->ev_reload != NULL)
		event_free(w->ev_reload);
	if (w->base != NULL)
		event_base_free(w->base);
}

static void
server_defaults(struct xz_server_opts *o)
{
	if (o->hostname == NULL)
		o->hostname = "localhost";
	if (o->request_timeout <= 0)
		o->request_timeout = 10;
	if (o->write_timeout <= 0)
		o->write_timeout = 60;
	if (o->send_min_rate == 0)
		o->send_min_rate = 1024;
	if (o->drain_timeout <= 0)
		o->drain_timeout = 10;
	if (o->workers <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		o->workers = n > 0 ? (int)n : 1;
	}
}

/*
 * Before the run, to the first generation; in the reload callback, after
 * xz_server_reload, to the one staged.
 */
int
xz_server_add_site(struct xz_server *srv, struct xz_app *app,
    const struct xz_site_opts *opts, char *errbuf, size_t errlen)
{
	struct generation *g = srv->in_reload ? srv->staged : srv->gen;

	if (opts == NULL || opts->hostname == NULL) {
		snprintf(errbuf, errlen, "hostname: none given");
		return XZ_EINVAL;
	}
	if (g == NULL || (srv->ran && !srv->in_reload)) {
		snprintf(errbuf, errlen, "site %s: the server runs already%s",
		    opts->hostname,
		    srv->in_reload ? " (xz_server_reload first)" : "");
		return XZ_ESTATE;
	}
	return generation_add_site(g, opts->hostname, app, opts->cert_file,
	    opts->key_file, errbuf, errlen);
}

/* Descriptors open now, which connections cannot have. */
static unsigned long
server_fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned long n = 0;
	int fd;

	if (d != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		return n > 0 ? n - 1 : 0; /* less d's own */
	}
	for (fd = 0; fd < 1024; fd++) /* no /proc: the low ones will do */
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/*
 * max_connections 0 means "derived from the descriptor limit", so that
 * the server refuses connections at accept before it runs out of
 * descriptors (admit_default_max). Counted once everything opened at
 * start (listeners, event bases, mounted directories) is open.
 */
static void
server_set_max_connections(struct xz_server *srv)
{
	struct rlimit rl;
	unsigned long limit = ULONG_MAX, nopen = server_fds_open();
	unsigned dflt;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		limit = (unsigned long)rl.rlim_cur;
	dflt = admit_default_max(limit, nopen);
	if (srv->opts.max_connections == 0) {
		srv->opts.max_connections =
		    dflt; /* server_log_listening says */
		log_debug("max_connections %u: descriptor limit %lu, %lu open "
		          "at start",
		    dflt, limit, nopen);
	} else if (srv->opts.max_connections > dflt) {
		log_warnx("max_connections %u: more than %lu descriptors "
		          "allow (%u); accepting will pause when they run out",
		    srv->opts.max_connections, limit, dflt);
	}
}

/*
 * A socket systemd passed (LISTEN_FDS): a listening TCP socket, whose
 * address is then the listener's.
 */
static int
server_take_fd(int fd, struct listen_addr *la, char *err, size_t errlen)
{
	int type = 0, acc = 0;
	socklen_t len = sizeof(type), alen = sizeof(acc);

	la->sslen = sizeof(la->ss);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) == -1 ||
	    getsockname(fd, (struct sockaddr *)&la->ss, &la->sslen) == -1 ||
	    type != SOCK_STREAM || !acc ||
	    (la->ss.ss_family != AF_INET && la->ss.ss_family != AF_INET6)) {
		snprintf(err, errlen,
		    "passed socket %d: not a listening TCP socket", fd);
		return XZ_EINVAL;
	}
	/*
	 * Blocking, the workers woken for one connection would all but one
	 * sleep in accept(2). The flag belongs to the open file, shared by
	 * every dup. TCP_NODELAY as server_bind sets it.
	 */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
	        sizeof(int)) == -1) {
		snprintf(err, errlen, "passed socket %d: %s", fd,
		    strerror(errno));
		return XZ_EIO;
	}
	la->fd = fd;
	return XZ_OK;
}

/* Each address is probed (server_bind) before any worker binds it. */
static int
server_setup_addrs(struct xz_server *srv, char *err, size_t errlen)
{
	static const char *const dflt[] = { "localhost:1965", NULL };
	const char *const *l = srv->opts.listen ? srv->opts.listen : dflt;
	size_t i, n = 0;
	int fd;

	if (srv->opts.nlisten_fds > 0)
		n = srv->opts.nlisten_fds;
	else
		while (l[n] != NULL)
			n++;
	if ((srv->addrs = calloc(n, sizeof(*srv->addrs))) == NULL)
		return XZ_ENOMEM;
	srv->naddrs = n;
	for (i = 0; i < n; i++) {
		srv->addrs[i].fd = -1;
		if (srv->opts.nlisten_fds > 0) {
			if (server_take_fd(srv->opts.listen_fds[i],
			        &srv->addrs[i], err, errlen) != XZ_OK)
				return XZ_EINVAL; /* err says which */
		} else if (server_parse_listen(l[i], &srv->addrs[i], err,
		               errlen) != XZ_OK)
			return XZ_EINVAL;
		else if ((fd = server_bind(&srv->addrs[i], false, err,
		              errlen)) == -1)
			return XZ_EIO;
		else
			close(fd);
	}
	return XZ_OK;
}

/* A generation for app and o (defaulted) on the bound listeners. */
static struct generation *
server_gen_new(struct xz_server *srv, const struct xz_server_opts *o,
    struct xz_app *app, char *err, size_t errlen)
{
	struct generation *g;
	int *ports;
	size_t i;

	if ((ports = calloc(srv->naddrs, sizeof(*ports))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < srv->naddrs; i++)
		ports[i] = srv->addrs[i].port;
	g = generation_new(o, app, ports, srv->naddrs, err, errlen);
	free(ports);
	/* The listeners' own, the same in every generation. */
	for (i = 0; g != NULL && i < srv->naddrs; i++) {
		g->cfgs[i].proxy = srv->addrs[i].proxy;
		g->cfgs[i].proxied = server_conn_proxied;
	}
	return g;
}

/*
 * $WATCHDOG_USEC when the watchdog is ours ($WATCHDOG_PID unset or our
 * pid, as sd_watchdog_enabled(3)); else 0.
 */
static long
server_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end;
	long v;

	if (usec == NULL ||
	    (pid != NULL && strtol(pid, &end, 10) != (long)getpid()))
		return 0;
	v = strtol(usec, &end, 10);
	return *end == '\0' && v > 0 ? v : 0;
}

struct xz_server *
xz_server_new(struct xz_app *app, const struct xz_server_opts *opts, char *err,
    size_t errlen)
{
	struct xz_server *srv = calloc(1, sizeof(*srv));
	int i;

	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	pthread_mutex_init(&srv->accept_failures.lock, NULL);
	TAILQ_INIT(&srv->retired);
	srv->opts = *opts;
	srv->max_connections_given = opts->max_connections;
	server_defaults(&srv->opts);
	if (opts->sd_notify && getenv("NOTIFY_SOCKET") != NULL &&
	    (srv->notify_path = strdup(getenv("NOTIFY_SOCKET"))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (opts->sd_notify)
		srv->watchdog_usec = server_watchdog_usec();
	if (evthread_use_pthreads() == -1) {
		snprintf(err, errlen, "cannot set up libevent's locking");
		goto fail;
	}
	if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "stop pipe: %s", strerror(errno));
		goto fail;
	}
	if (server_setup_addrs(srv, err, errlen) != XZ_OK)
		goto fail;
	srv->workers = calloc((size_t)srv->opts.workers, sizeof(*srv->workers));
	if (srv->workers == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	srv->nworkers = srv->opts.workers;
	for (i = 0; i < srv->nworkers; i++)
		if (worker_init(srv, &srv->workers[i], err, errlen) != XZ_OK)
			goto fail;
	/* The caller's app: freed by the caller (no release). */
	if ((srv->gen = server_gen_new(srv, &srv->opts, app, err, errlen)) ==
	    NULL)
		goto fail;
	srv->gen->id = ++srv->ngens;
	for (i = 0; i < srv->nworkers; i++) {
		generation_ref(srv->gen);
		srv->workers[i].gen = srv->gen;
	}
	if (srv->opts.metrics_listen != NULL &&
	    (srv->metrics = metrics_new(srv->opts.metrics_listen,
	         srv->opts.metrics_allow_remote, srv->nworkers, err, errlen)) ==
	        NULL)
		goto fail;
	server_set_max_connections(srv);
	srv->admit = admit_new(srv->opts.max_connections,
	    srv->opts.max_connections_per_address);
	if (srv->admit == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return srv;
fail:
	xz_server_free(srv);
	return NULL;
}

int
xz_ticket_key_new(const char *path, char *errbuf, size_t errlen)
{
	return tls_ticket_key_write(path, errbuf, errlen) == 0 ? XZ_OK : XZ_EIO;
}

int
xz_server_metrics_port(const struct xz_server *srv)
{
	return srv != NULL ? metrics_port(srv->metrics) : -1;
}

int
xz_server_port(const struct xz_server *srv, size_t listener)
{
	if (srv == NULL || listener >= srv->naddrs)
		return -1;
	return srv->addrs[listener].port;
}

void
xz_server_stop(struct xz_server *srv)
{
	char b = 1;

	/* write(2) is async-signal-safe: a signal handler may call this. */
	(void)!write(srv->stop_pipe[1], &b, 1);
}

/*
 * A second SIGTERM or SIGINT while draining: each worker's drain timer
 * fires now, so every connection is closed and every CGI process group
 * killed, as when the drain times out; the process still exits cleanly.
 */
static void
server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct stop_waiter *sw = arg;
	int i;

	if (!sw->draining) {
		log_info("%s%s", strsignal((int)sig),
		    sw->delaying ? " again: skipping the stop delay" :
		                   ": stopping");
		event_base_loopbreak(sw->base);
		return;
	}
	log_info("%s again: skipping the drain", strsignal((int)sig));
	for (i = 0; i < sw->srv->nworkers; i++)
		if (sw->srv->workers[i].started)
			event_active(sw->srv->workers[i].ev_drain_timeout,
			    EV_TIMEOUT, 1);
}

/* SIGUSR1: logrotate has moved the log files; write to new ones. */
static void
server_on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
	(void)xz_log_reopen();
}

/* Every WATCHDOG_USEC / 2: the main loop still turns. */
static void
server_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	server_notify(arg, "WATCHDOG=1");
}

/*
 * Frees the retired generations nothing holds any more, on the main
 * thread: their app's shutdown hooks first (which also stop its tasks),
 * then, once its handlers have nothing left on the workers' loops
 * (app_busy: CGI processes not yet reaped), the app with the rest. A
 * busy one is looked at again shortly.
 */
static void
server_reap(struct xz_server *srv)
{
	struct generation *g, *next;
	struct timeval tv = xz_timeval(SERVER_REAP_RETRY);
	bool busy = false;

	for (g = TAILQ_FIRST(&srv->retired); g != NULL; g = next) {
		next = TAILQ_NEXT(g, link);
		if (!generation_unused(g))
			continue;
		generation_shutdown(g);
		/* Its release frees the apps: not while processes are left. */
		if (g->release != NULL && generation_busy(g)) {
			busy = true;
			continue;
		}
		TAILQ_REMOVE(&srv->retired, g, link);
		log_debug("configuration %lu: its last connection is over, "
		          "released",
		    g->id);
		generation_free(g);
	}
	if (busy && srv->ev_reap != NULL)
		evtimer_add(srv->ev_reap, &tv);
}

static void
server_on_reap(evutil_socket_t fd, short what, void *arg)
{
	server_reap(arg);
}

static bool
server_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
server_same_listen(const char *const *a, const char *const *b)
{
	static const char *const dflt[] = { "localhost:1965", NULL };

	a = a != NULL ? a : dflt;
	b = b != NULL ? b : dflt;
	for (; *a != NULL && *b != NULL; a++, b++)
		if (strcmp(*a, *b) != 0)
			return false;
	return *a == NULL && *b == NULL;
}

/*
 * What a reload cannot change: the listening sockets (kept, so that no
 * connection is refused meanwhile), the workers, the privileges, the
 * connection limits. Said once a reload, each; the old values stay.
 */
static void
server_restart_only(const struct xz_server *srv, const struct xz_server_opts *o)
{
	const struct xz_server_opts *s = &srv->opts;
	const char *what[7];
	size_t n = 0, i;

	if (s->nlisten_fds == 0 && !server_same_listen(o->listen, s->listen))
		what[n++] = "listen";
	if (o->workers != s->workers)
		what[n++] = "workers";
	if (!server_same_str(o->user, s->user))
		what[n++] = "user";
	if (!server_same_str(o->chroot_dir, s->chroot_dir))
		what[n++] = "chroot";
	if (o->max_connections != srv->max_connections_given ||
	    o->max_connections_per_address != s->max_connections_per_address)
		what[n++] = "max_connections";
	if (o->drain_timeout != s->drain_timeout)
		what[n++] = "drain_timeout";
	if (!server_same_str(o->metrics_listen, s->metrics_listen) ||
	    o->metrics_allow_remote != s->metrics_allow_remote)
		what[n++] = "metrics_listen";
	for (i = 0; i < n; i++)
		log_warnx("reload: %s changed: it needs a restart (the old "
		          "value stays)",
		    what[i]);
}

/*
 * The staged generation takes over: its app's startup hooks (when the
 * server runs), then each worker is handed it; the current one retires.
 */
static int
server_commit(struct xz_server *srv, char *err, size_t errlen)
{
	struct generation *cur = srv->gen, *g = srv->staged;
	int i, rc;

	srv->staged = NULL;
	if (generation_app(g) != generation_app(cur)) {
		if (srv->running && (rc = generation_startup(g)) != XZ_OK) {
			snprintf(err, errlen, "a startup hook failed: %s",
			    xz_strerror(rc));
			generation_free(g);
			return rc;
		}
	} else {
		/* One app, one life: its hooks ran, and run once at the end. */
		g->started = cur->started;
		g->release = cur->release;
		g->release_arg = cur->release_arg;
		cur->started = false;
		cur->release = NULL;
	}
	g->id = ++srv->ngens;
	for (i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];

		generation_ref(g);
		/* One not taken up yet (two reloads in a row) is dropped. */
		server_gen_unref(srv,
		    __atomic_exchange_n(&w->next_gen, g, __ATOMIC_ACQ_REL));
		event_active(w->ev_reload, EV_READ, 1);
	}
	TAILQ_INSERT_TAIL(&srv->retired, cur, link);
	srv->gen = g;
	server_gen_unref(srv, cur);
	srv->reloads++;
	metrics_reload(srv->metrics);
	log_info("reloaded: configuration %lu for new connections", g->id);
	generation_log_sites(g);
	return XZ_OK;
}

int
xz_server_reload(struct xz_server *srv, struct xz_app *app,
    const struct xz_server_opts *opts, void (*release)(void *arg), void *arg,
    char *err, size_t errlen)
{
	struct generation *cur = srv->gen, *g;
	struct xz_server_opts o = opts != NULL ? *opts : cur->opts;
	bool same = app == NULL || app == generation_app(cur);
	size_t i;

	if (same && release != NULL) {
		/* Not run: it would free the app that serves. */
		snprintf(err, errlen, "the app serving now cannot be released");
		return XZ_EINVAL;
	}
	if (srv->finished || srv->staged != NULL) {
		snprintf(err, errlen, "%s",
		    srv->finished ? "the server has stopped" :
		                    "a reload is staged already");
		if (release != NULL)
			release(arg);
		return XZ_ESTATE;
	}
	server_defaults(&o);
	if (opts != NULL)
		server_restart_only(srv, &o);
	if ((g = server_gen_new(srv, &o, same ? generation_app(cur) : app, err,
	         errlen)) == NULL) {
		if (release != NULL)
			release(arg);
		return XZ_EINVAL;
	}
	/* The same apps: the same sites, their certificates read again. */
	for (i = 1; same && i < cur->nspecs; i++)
		if (generation_add_site(g, cur->specs[i].names,
		        cur->specs[i].app, cur->specs[i].cert_file,
		        cur->specs[i].key_file, err, errlen) != XZ_OK) {
			generation_free(g);
			return XZ_EINVAL;
		}
	g->release = release;
	g->release_arg = arg;
	srv->staged = g;
	/* In the reload callback, it takes over when the callback returns. */
	return srv->in_reload ? XZ_OK : server_commit(srv, err, errlen);
}

void
xz_server_on_reload(struct xz_server *srv, xz_reload_fn fn, void *arg)
{
	srv->reload_fn = fn;
	srv->reload_arg = arg;
}

/*
 * SIGHUP: the program's reload callback builds a new app from its
 * configuration and hands it over (xz_server_reload); without one, the
 * certificates and ticket key are read again for the same app. A failure
 * is logged line by line ("xitzin.conf:12: ...") and the configuration
 * before keeps serving. systemd hears RELOADING=1 and then READY=1.
 */
static void
server_reload_now(struct xz_server *srv)
{
	char err[8192] = "", msg[96], *line, *save = NULL;
	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	        (unsigned long long)ts.tv_nsec / 1000);
	server_notify(srv, msg);
	srv->in_reload = true;
	if (srv->reload_fn != NULL)
		rc = srv->reload_fn(srv, err, sizeof(err), srv->reload_arg);
	else
		rc = xz_server_reload(srv, NULL, NULL, NULL, NULL, err,
		    sizeof(err));
	srv->in_reload = false;
	if (rc != XZ_OK && srv->staged != NULL) {
		generation_free(srv->staged); /* its release runs */
		srv->staged = NULL;
	} else if (srv->staged != NULL) {
		rc = server_commit(srv, err, sizeof(err));
	}
	if (rc != XZ_OK && err[0] == '\0')
		snprintf(err, sizeof(err), "%s", xz_strerror(rc));
	/* The reasons of a failure, or the warnings of a success. */
	for (line = strtok_r(err, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		log_warnx("reload: %s", line);
	if (rc == XZ_OK) {
		server_notify(srv, "READY=1\nSTATUS=serving");
		return;
	}
	log_warnx("reload failed: configuration %lu keeps serving",
	    srv->gen->id);
	server_notify(srv,
	    "READY=1\nSTATUS=reload failed: the previous configuration "
	    "serves (see the log)");
}

static void
server_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct stop_waiter *sw = arg;

	if (sw->draining || sw->delaying) {
		log_info("SIGHUP while stopping: no reload");
		return;
	}
	log_info("SIGHUP: reloading");
	server_reload_now(sw->srv);
}

/* xz_server_stop(), or a worker has returned (while draining). */
static void
server_on_stop_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct stop_waiter *sw = arg;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (!sw->draining ||
	    __atomic_load_n(&sw->srv->nrunning, __ATOMIC_ACQUIRE) == 0)
		event_base_loopbreak(sw->base);
}

/* Records why xz_server_run failed (xz_server_error), logs it, returns rc. */
static int
server_fail(struct xz_server *srv, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(srv->error, sizeof(srv->error), fmt, ap);
	va_end(ap);
	log_warnx("%s", srv->error);
	return rc;
}

const char *
xz_server_error(const struct xz_server *srv)
{
	return srv->error;
}

static void
stop_waiter_free(struct stop_waiter *sw)
{
	if (sw->srv != NULL)
		metrics_stop(sw->srv->metrics); /* it runs on sw->base */
	if (sw->sigterm != NULL)
		event_free(sw->sigterm);
	if (sw->sigint != NULL)
		event_free(sw->sigint);
	if (sw->sigusr1 != NULL)
		event_free(sw->sigusr1);
	if (sw->sighup != NULL)
		event_free(sw->sighup);
	if (sw->srv != NULL && sw->srv->ev_reap != NULL) {
		event_free(sw->srv->ev_reap);
		sw->srv->ev_reap = NULL;
	}
	if (sw->srv != NULL && sw->srv->ev_watchdog != NULL) {
		event_free(sw->srv->ev_watchdog);
		sw->srv->ev_watchdog = NULL;
	}
	if (sw->pipe_ev != NULL)
		event_free(sw->pipe_ev);
	if (sw->base != NULL)
		event_base_free(sw->base);
	memset(sw, 0, sizeof(*sw));
}

/*
 * Before any worker runs: a server that could not be stopped by SIGTERM
 * must not start (it would run until killed, and skip the drain).
 */
static int
stop_waiter_init(struct xz_server *srv, struct stop_waiter *sw)
{
	struct timeval watchdog = xz_timeval((double)srv->watchdog_usec / 2e6);

	memset(sw, 0, sizeof(*sw));
	sw->srv = srv;
	if ((sw->base = worker_base_new()) == NULL ||
	    (sw->sigterm = evsignal_new(sw->base, SIGTERM, server_on_signal,
	         sw)) == NULL ||
	    (sw->sigint = evsignal_new(sw->base, SIGINT, server_on_signal,
	         sw)) == NULL ||
	    (sw->sigusr1 = evsignal_new(sw->base, SIGUSR1, server_on_sigusr1,
	         sw)) == NULL ||
	    (sw->sighup = evsignal_new(sw->base, SIGHUP, server_on_sighup,
	         sw)) == NULL ||
	    (srv->ev_reap = evtimer_new(sw->base, server_on_reap, srv)) ==
	        NULL ||
	    (srv->watchdog_usec > 0 &&
	        ((srv->ev_watchdog = event_new(sw->base, -1, EV_PERSIST,
	              server_on_watchdog, srv)) == NULL ||
	            evtimer_add(srv->ev_watchdog, &watchdog) == -1)) ||
	    (sw->pipe_ev = event_new(sw->base, srv->stop_pipe[0],
	         EV_READ | EV_PERSIST, server_on_stop_pipe, sw)) == NULL ||
	    evsignal_add(sw->sigterm, NULL) == -1 ||
	    evsignal_add(sw->sigint, NULL) == -1 ||
	    evsignal_add(sw->sigusr1, NULL) == -1 ||
	    evsignal_add(sw->sighup, NULL) == -1 ||
	    event_add(sw->pipe_ev, NULL) == -1) {
		stop_waiter_free(sw);
		return server_fail(srv, XZ_EIO,
		    "cannot set up SIGTERM, SIGINT and SIGHUP handling (out "
		    "of memory or descriptors)");
	}
	return XZ_OK;
}

static void
server_log_listening(const struct xz_server *srv)
{
	char name[INET6_ADDRSTRLEN];
	size_t i;

	for (i = 0; i < srv->naddrs; i++) {
		const struct sockaddr_storage *ss = &srv->addrs[i].ss;

		if (ss->ss_family == AF_INET6)
			inet_ntop(AF_INET6,
			    &((const struct sockaddr_in6 *)ss)->sin6_addr, name,
			    sizeof(name));
		else
			inet_ntop(AF_INET,
			    &((const struct sockaddr_in *)ss)->sin_addr, name,
			    sizeof(name));
		log_info("listening on %s%s%s port %d (%s%d workers, at most "
		         "%u connections)",
		    ss->ss_family == AF_INET6 ? "[" : "", name,
		    ss->ss_family == AF_INET6 ? "]" : "", srv->addrs[i].port,
		    server_proxy_name[srv->addrs[i].proxy], srv->nworkers,
		    srv->opts.max_connections);
	}
}

/*
 * Root is needed only to bind low ports and read the keys, both done by
 * now. Order matters: look the user up while /etc/passwd is reachable,
 * chroot while still root, drop groups before the gid, the gid before the
 * uid, then make sure root cannot be had back.
 */
static int
server_drop_privileges(const struct xz_server *srv)
{
	const char *user = srv->opts.user, *dir = srv->opts.chroot_dir;
	struct passwd *pw = NULL;

	if (geteuid() != 0) {
		if (user != NULL || dir != NULL)
			log_warnx("not root: user and chroot are ignored");
		return XZ_OK;
	}
	if (user == NULL) {
		log_warnx("running as root: set user in [server] to drop "
		          "privileges");
		if (dir != NULL && (chroot(dir) == -1 || chdir("/") == -1)) {
			log_warn("chroot %s", dir);
			return XZ_EIO;
		}
		return XZ_OK;
	}
	if ((pw = getpwnam(user)) == NULL) {
		log_warnx("user %s: no such user", user);
		return XZ_EINVAL;
	}
	if (dir != NULL && (chroot(dir) == -1 || chdir("/") == -1)) {
		log_warn("chroot %s", dir);
		return XZ_EIO;
	}
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		log_warn("dropping privileges to %s", user);
		return XZ_EIO;
	}
	if (setuid(0) != -1) {
		log_warnx("dropped to %s but root came back", user);
		return XZ_EIO;
	}
	log_info("running as %s%s%s", user, dir ? " in " : "", dir ? dir : "");
	return XZ_OK;
}

/* No worker takes connections any more: the kernel then refuses them. */
static void
server_close_listeners(struct xz_server *srv)
{
	size_t j;
	int i;

	for (i = 0; i < srv->nworkers; i++)
		for (j = 0; j < srv->naddrs; j++) {
			struct listener *l = &srv->workers[i].listeners[j];

			if (l->evl != NULL)
				evconnlistener_free(l->evl);
			l->evl = NULL;
		}
}

/* Tells each running worker to stop: finish what is in flight. */
static void
server_signal_workers(struct xz_server *srv)
{
	int i;

	for (i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].started)
			event_active(srv->workers[i].ev_stop, EV_READ, 1);
}

static void
server_join_workers(struct xz_server *srv)
{
	int i;

	for (i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].started) {
			pthread_join(srv->workers[i].thread, NULL);
			srv->workers[i].started = false;
		}
}

/*
 * sd_notify(3) by hand, the documented protocol: one datagram of
 * "KEY=VALUE" lines to the AF_UNIX socket named by $NOTIFY_SOCKET ('@'
 * for the abstract namespace). Ten lines rather than a libsystemd
 * dependency for every user of the library. Best effort: a service
 * manager that cannot be told is logged, never fatal.
 */
static void
server_notify(const struct xz_server *srv, const char *state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (srv->notify_path == NULL)
		return;
	len = strlen(srv->notify_path);
	if (len == 0 || len >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, srv->notify_path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	        (struct sockaddr *)&sun,
	        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) ==
	        -1)
		log_warn("notify %s", srv->notify_path);
	if (fd != -1)
		close(fd);
}

static void
server_on_delay_end(evutil_socket_t fd, short what, void *arg)
{
	struct stop_waiter *sw = arg;

	event_base_loopbreak(sw->base);
}

/*
 * stop_delay: the listeners stay open and the workers serve on while
 * whoever balances the load sees the stop (STOPPING=1, the health check)
 * and sends no more. Closing at once would reset the connections the
 * kernel has queued in the listen backlog, whose requests a TCP proxy
 * has already sent and cannot retry. A signal or xz_server_stop() ends
 * the delay early (the loop breaks on either).
 */
static void
server_stop_delay(struct xz_server *srv, struct stop_waiter *sw)
{
	double delay = srv->gen->opts.stop_delay; /* a reload may change it */
	struct timeval tv = xz_timeval(delay);
	struct event *ev;

	if (delay <= 0)
		return;
	if ((ev = evtimer_new(sw->base, server_on_delay_end, sw)) == NULL ||
	    evtimer_add(ev, &tv) == -1) {
		log_warnx("stop_delay: out of memory, stopping at once");
		if (ev != NULL)
			event_free(ev);
		return;
	}
	log_info("closing the listeners in %g s (stop_delay)", delay);
	sw->delaying = true;
	event_base_dispatch(sw->base);
	sw->delaying = false;
	event_free(ev);
}

/*
 * The main thread: wait for a signal or xz_server_stop(), tell the
 * workers to stop, then wait for them with the signals still caught (a
 * second one must not kill the process with its scripts still running:
 * it cuts the drain short instead).
 */
static void
server_wait_and_drain(struct xz_server *srv, struct stop_waiter *sw)
{
	event_base_dispatch(sw->base);
	/* /health says 503 from now: balancers stop sending clients. */
	metrics_set_stopping(srv->metrics);
	server_notify(srv, "STOPPING=1");
	server_stop_delay(srv, sw);
	sw->draining = true;
	server_signal_workers(srv);
	if (__atomic_load_n(&srv->nrunning, __ATOMIC_ACQUIRE) > 0)
		event_base_dispatch(sw->base);
	server_join_workers(srv);
}

/*
 * All or none: each worker's listening sockets take connections from the
 * kernel already, so a worker whose thread cannot start would leave its
 * share of them waiting forever. Workers never take signals: the main
 * thread handles them.
 */
static int
server_start_workers(struct xz_server *srv)
{
	sigset_t all, old;
	int i, err = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < srv->nworkers; i++) {
		__atomic_add_fetch(&srv->nrunning, 1, __ATOMIC_RELEASE);
		err = pthread_create(&srv->workers[i].thread, NULL, worker_main,
		    &srv->workers[i]);
		if (err != 0) {
			__atomic_sub_fetch(&srv->nrunning, 1, __ATOMIC_RELEASE);
			break;
		}
		srv->workers[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err == 0)
		return XZ_OK;
	server_signal_workers(srv);
	server_join_workers(srv);
	return server_fail(srv, XZ_EIO,
	    "worker %d of %d: cannot start a thread: %s", i + 1, srv->nworkers,
	    strerror(err));
}

/*
 * The workers have returned: no connection is left. Each app whose
 * startup hooks ran has its shutdown hooks run, the oldest first; the
 * generations themselves are freed with the server (after the workers'
 * loops, which CGI's disposal needs gone).
 */
static void
server_shutdown_apps(struct xz_server *srv)
{
	struct generation *g;
	int i;

	srv->finished = true;
	for (i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];

		server_gen_unref(srv, w->gen);
		server_gen_unref(srv,
		    __atomic_exchange_n(&w->next_gen, NULL, __ATOMIC_ACQ_REL));
		w->gen = NULL;
	}
	TAILQ_FOREACH(g, &srv->retired, link)
	generation_shutdown(g);
	generation_shutdown(srv->gen);
}

int
xz_server_run(struct xz_server *srv)
{
	struct stop_waiter sw;
	int rc;

	srv->error[0] = '\0';
	if (srv->finished)
		return server_fail(srv, XZ_ESTATE,
		    "the server has run already");
	srv->ran = true;
	if ((rc = server_drop_privileges(srv)) != XZ_OK) {
		server_close_listeners(srv);
		srv->finished = true;
		return server_fail(srv, rc, "cannot drop privileges: %s",
		    xz_strerror(rc));
	}
	if ((rc = stop_waiter_init(srv, &sw)) != XZ_OK) {
		server_close_listeners(srv);
		srv->finished = true;
		return rc;
	}
	if ((rc = metrics_start(srv->metrics, sw.base)) != XZ_OK) {
		stop_waiter_free(&sw);
		server_close_listeners(srv);
		srv->finished = true;
		return server_fail(srv, rc, "cannot serve metrics: %s",
		    xz_strerror(rc));
	}
	if ((rc = generation_startup(srv->gen)) != XZ_OK) {
		stop_waiter_free(&sw);
		server_close_listeners(srv);
		srv->finished = true;
		return server_fail(srv, rc, "a startup hook failed: %s",
		    xz_strerror(rc));
	}
	srv->running = true;
	if ((rc = server_start_workers(srv)) != XZ_OK) {
		stop_waiter_free(&sw);
		server_close_listeners(srv);
		server_shutdown_apps(srv); /* the startup hooks ran */
		return rc;
	}
	generation_log_sites(srv->gen);
	server_log_listening(srv);
	server_notify(srv, "READY=1\nSTATUS=serving");
	server_wait_and_drain(srv, &sw);
	server_shutdown_apps(srv);
	stop_waiter_free(&sw);
	log_info("stopped");
	return XZ_OK;
}

void
xz_server_free(struct xz_server *srv)
{
	struct generation *g;
	int i;

	if (srv == NULL)
		return;
	for (i = 0; i < srv->nworkers; i++)
		worker_free(&srv->workers[i], srv->naddrs);
	free(srv->workers);
	free(srv->addrs);
	/* After the loops: every generation is the current or a retired one. */
	while ((g = TAILQ_FIRST(&srv->retired)) != NULL) {
		TAILQ_REMOVE(&srv->retired, g, link);
		generation_free(g);
	}
	generation_free(srv->staged);
	generation_free(srv->gen);
	free(srv->notify_path);
	admit_free(srv->admit);
	metrics_free(srv->metrics);
	if (srv->stop_pipe[0] != -1)
		close(srv->stop_pipe[0]);
	if (srv->stop_pipe[1] != -1)
		close(srv->stop_pipe[1]);
	pthread_mutex_destroy(&srv->accept_failures.lock);
	free(srv);
}
