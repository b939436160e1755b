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
 * SIGUSR1 meanwhile, serves on for stop_delay (a load balancer's checks
 * see the stop and send no more), then tells every worker to close its
 * listeners and to finish its connections within drain_timeout. A second
 * SIGTERM/SIGINT cuts the drain short, closing what is left as the drain
 * timeout would (CGI groups killed).
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

struct worker;

struct conn_entry {
	struct xz_conn *c;
	struct worker *w;
	struct admit_key key;
	TAILQ_ENTRY(conn_entry) link;
};

struct listener {
	struct worker *w;
	const struct conn_cfg *cfg;
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
	TAILQ_HEAD(, conn_entry) conns;
	size_t nconns;
	bool stopping;
};

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd; /* a socket passed to us (systemd), or -1 */
	struct conn_cfg cfg;
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
	struct xz_server_opts opts;
	struct tls_ctx *tls;
	struct site_set *sites; /* [0]: the default, opts.hostname and app */
	bool ran;               /* xz_server_run was called: sites are fixed */
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
	struct event *sigterm, *sigint, *sigusr1, *pipe_ev;
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

static void
server_conn_closed(struct xz_conn *c, void *arg)
{
	struct conn_entry *e = arg;
	struct worker *w = e->w;
	size_t i;

	TAILQ_REMOVE(&w->conns, e, link);
	admit_release(w->srv->admit, &e->key);
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
	if (!admit_take(w->srv->admit, l->cfg->proxy != PROXY_OFF ? NULL : sa,
	        &e->key)) {
		/* Over a limit: refused before any TLS work. */
		log_debug("accept: connection limit reached, dropped");
		free(e);
		close(fd);
		return;
	}
	e->w = w;
	TAILQ_INSERT_TAIL(&w->conns, e, link);
	w->nconns++;
	metrics_conn_opened(); /* before conn_new: its failure closes it */
	e->c = conn_new(w->base, fd, l->cfg, sa, server_conn_closed, e);
	if (e->c == NULL) {
		TAILQ_REMOVE(&w->conns, e, link);
		admit_release(w->srv->admit, &e->key);
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
			la->cfg.proxy = (enum proxy_mode)mode;
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

	la->cfg.proxy = PROXY_OFF;
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
	            evtimer_new(w->base, worker_on_drain_timeout, w)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	for (i = 0; i < srv->naddrs; i++) {
		struct listener *l = &w->listeners[i];

		if ((fd = server_bind(&srv->addrs[i], true, err, errlen)) == -1)
			return XZ_EIO;
		srv->addrs[i].cfg.port = server_addr_port(&srv->addrs[i].ss);
		l->w = w;
		l->cfg = &srv->addrs[i].cfg;
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
 * A site's certificate: cert_file and key_file, or, neither given, the
 * program's choice, certs/NAME.crt and certs/NAME.key under the working
 * directory (NAME the site's first name, a '*' written '_'), generated
 * when neither exists, so that a first program runs as is; a generated
 * certificate holds all the site's names. One file without the other is
 * a mistake worth naming.
 */
static struct tls_cert *
server_site_cert(const struct xz_server *srv, const char *names,
    const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	struct tls_opts topts = { .cert_file = cert_file,
		.key_file = key_file,
		.hostname = names,
		.ed25519 = srv->opts.key_ed25519 };
	char **list = strlist_split(names), *cpath = NULL, *kpath = NULL;
	struct tls_cert *cert = NULL;

	if (list == NULL || list[0] == NULL) {
		snprintf(err, errlen, "hostname: none given, or out of memory");
		goto out;
	}
	for (char *q = list[0]; *q != '\0'; q++)
		*q = *q == '*' ? '_' : (char)tolower((unsigned char)*q);
	if ((cert_file == NULL) != (key_file == NULL)) {
		snprintf(err, errlen,
		    "%s given without %s (give both, or neither "
		    "to use certs/%s.crt and .key)",
		    cert_file != NULL ? "cert_file" : "key_file",
		    cert_file != NULL ? "key_file" : "cert_file", list[0]);
		goto out;
	}
	if (cert_file == NULL &&
	    (strchr(list[0], '/') != NULL || list[0][0] == '.')) {
		snprintf(err, errlen,
		    "cert_file and key_file: none given, and "
		    "hostname '%s' cannot name them",
		    list[0]);
		goto out;
	}
	if (cert_file == NULL) {
		if (asprintf(&cpath, "certs/%s.crt", list[0]) == -1 ||
		    asprintf(&kpath, "certs/%s.key", list[0]) == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		topts.cert_file = cpath;
		topts.key_file = kpath;
		log_info("no cert_file given: using %s and %s (generated when "
		         "missing)",
		    cpath, kpath);
	}
	cert = tls_cert_new(&topts, err, errlen);
out:
	strlist_free(list);
	free(cpath);
	free(kpath);
	return cert;
}

/* Adds a site to srv->sites; the TLS layer picks among several by SNI. */
static int
server_add_site(struct xz_server *srv, const char *names, struct xz_app *app,
    const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	struct tls_cert *cert;
	const char *why;
	char bad[256];
	int rc;

	if (app == NULL) {
		snprintf(err, errlen, "site %s: no app", names ? names : "");
		return XZ_EINVAL;
	}
	if ((cert = server_site_cert(srv, names != NULL ? names : "", cert_file,
	         key_file, err, errlen)) == NULL)
		return XZ_EINVAL;
	if ((rc = site_set_add(srv->sites, names, app, cert, &why, bad,
	         sizeof(bad))) != XZ_OK) {
		snprintf(err, errlen, "hostname: %s%s%s%s", why,
		    bad[0] != '\0' ? " ('" : "", bad,
		    bad[0] != '\0' ? "')" : "");
		return rc;
	}
	tls_ctx_set_certs(srv->tls, site_set_get(srv->sites, 0)->cert,
	    site_set_count(srv->sites) > 1 ? site_pick_cert : NULL, srv->sites);
	return XZ_OK;
}

int
xz_server_add_site(struct xz_server *srv, struct xz_app *app,
    const struct xz_site_opts *opts, char *errbuf, size_t errlen)
{
	if (opts == NULL || opts->hostname == NULL) {
		snprintf(errbuf, errlen, "hostname: none given");
		return XZ_EINVAL;
	}
	if (srv->ran) {
		snprintf(errbuf, errlen, "site %s: the server runs already",
		    opts->hostname);
		return XZ_ESTATE;
	}
	return server_add_site(srv, opts->hostname, app, opts->cert_file,
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
		struct conn_cfg *cfg = &srv->addrs[i].cfg;

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
		cfg->sites = srv->sites;
		cfg->io = &conn_io_tls;
		cfg->io_ctx = srv->tls;
		cfg->public_port = srv->opts.public_port;
		cfg->request_timeout = srv->opts.request_timeout;
		cfg->write_timeout = srv->opts.write_timeout;
		cfg->send_min_rate = srv->opts.send_min_rate > 0 ?
		                         (size_t)srv->opts.send_min_rate :
		                         0;
		cfg->access_log = !srv->opts.quiet;
		cfg->proxied = server_conn_proxied;
	}
	return XZ_OK;
}

struct xz_server *
xz_server_new(struct xz_app *app, const struct xz_server_opts *opts, char *err,
    size_t errlen)
{
	struct xz_server *srv = calloc(1, sizeof(*srv));
	struct tls_opts topts = { 0 };
	int i;

	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	pthread_mutex_init(&srv->accept_failures.lock, NULL);
	srv->opts = *opts;
	server_defaults(&srv->opts);
	if (opts->sd_notify && getenv("NOTIFY_SOCKET") != NULL &&
	    (srv->notify_path = strdup(getenv("NOTIFY_SOCKET"))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (evthread_use_pthreads() == -1) {
		snprintf(err, errlen, "cannot set up libevent's locking");
		goto fail;
	}
	if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "stop pipe: %s", strerror(errno));
		goto fail;
	}
	if (srv->opts.public_port < 0 || srv->opts.public_port > 65535) {
		snprintf(err, errlen, "public_port %d out of range 1..65535",
		    srv->opts.public_port);
		goto fail;
	}
	/* The ticket key is the server's: every site's sessions resume. */
	topts.ticket_key_file = srv->opts.ticket_key_file;
	if ((srv->sites = site_set_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((srv->tls = tls_ctx_new(&topts, err, errlen)) == NULL ||
	    server_add_site(srv, srv->opts.hostname, app, srv->opts.cert_file,
	        srv->opts.key_file, err, errlen) != XZ_OK)
		goto fail;
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
	return srv->addrs[listener].cfg.port;
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
	memset(sw, 0, sizeof(*sw));
	sw->srv = srv;
	if ((sw->base = worker_base_new()) == NULL ||
	    (sw->sigterm = evsignal_new(sw->base, SIGTERM, server_on_signal,
	         sw)) == NULL ||
	    (sw->sigint = evsignal_new(sw->base, SIGINT, server_on_signal,
	         sw)) == NULL ||
	    (sw->sigusr1 = evsignal_new(sw->base, SIGUSR1, server_on_sigusr1,
	         sw)) == NULL ||
	    (sw->pipe_ev = event_new(sw->base, srv->stop_pipe[0],
	         EV_READ | EV_PERSIST, server_on_stop_pipe, sw)) == NULL ||
	    evsignal_add(sw->sigterm, NULL) == -1 ||
	    evsignal_add(sw->sigint, NULL) == -1 ||
	    evsignal_add(sw->sigusr1, NULL) == -1 ||
	    event_add(sw->pipe_ev, NULL) == -1) {
		stop_waiter_free(sw);
		return server_fail(srv, XZ_EIO,
		    "cannot set up SIGTERM and SIGINT handling (out of "
		    "memory or descriptors)");
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
		    ss->ss_family == AF_INET6 ? "]" : "",
		    srv->addrs[i].cfg.port,
		    server_proxy_name[srv->addrs[i].cfg.proxy], srv->nworkers,
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
	struct timeval tv = xz_timeval(srv->opts.stop_delay);
	struct event *ev;

	if (srv->opts.stop_delay <= 0)
		return;
	if ((ev = evtimer_new(sw->base, server_on_delay_end, sw)) == NULL ||
	    evtimer_add(ev, &tv) == -1) {
		log_warnx("stop_delay: out of memory, stopping at once");
		if (ev != NULL)
			event_free(ev);
		return;
	}
	log_info("closing the listeners in %g s (stop_delay)",
	    srv->opts.stop_delay);
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

/* Whether site i's app is an earlier site's too (its hooks ran then). */
static bool
server_app_seen(const struct xz_server *srv, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (site_set_get(srv->sites, j)->app ==
		    site_set_get(srv->sites, i)->app)
			return true;
	return false;
}

/* Shutdown hooks of the first n sites' apps, the last started first. */
static void
server_apps_shutdown(struct xz_server *srv, size_t n)
{
	while (n-- > 0)
		if (!server_app_seen(srv, n))
			app_shutdown(site_set_get(srv->sites, n)->app);
}

/* Each site's app's startup hooks, once an app; undone when one fails. */
static int
server_apps_startup(struct xz_server *srv)
{
	size_t i, n = site_set_count(srv->sites);
	int rc;

	for (i = 0; i < n; i++) {
		if (server_app_seen(srv, i))
			continue;
		if ((rc = app_startup(site_set_get(srv->sites, i)->app)) !=
		    XZ_OK) {
			server_apps_shutdown(srv, i);
			return rc;
		}
	}
	return XZ_OK;
}

/* Each site's names and certificate fingerprint, which TOFU clients pin. */
static void
server_log_sites(const struct xz_server *srv)
{
	const struct site *s;
	size_t i, j;
	char names[512];
	int len;

	for (i = 0; i < site_set_count(srv->sites); i++) {
		s = site_set_get(srv->sites, i);
		names[0] = '\0';
		for (j = 0, len = 0;
		     s->names[j] != NULL && (size_t)len < sizeof(names); j++)
			len +=
			    snprintf(names + len, sizeof(names) - (size_t)len,
			        "%s%s", j > 0 ? ", " : "", s->names[j]);
		log_info("site %s%s: certificate %s", names,
		    i == 0 ? " (default)" : "",
		    s->cert != NULL ? tls_cert_fingerprint(s->cert) : "none");
	}
}

int
xz_server_run(struct xz_server *srv)
{
	struct stop_waiter sw;
	int rc;

	srv->error[0] = '\0';
	srv->ran = true;
	if ((rc = server_drop_privileges(srv)) != XZ_OK) {
		server_close_listeners(srv);
		return server_fail(srv, rc, "cannot drop privileges: %s",
		    xz_strerror(rc));
	}
	if ((rc = stop_waiter_init(srv, &sw)) != XZ_OK) {
		server_close_listeners(srv);
		return rc;
	}
	if ((rc = metrics_start(srv->metrics, sw.base)) != XZ_OK) {
		stop_waiter_free(&sw);
		server_close_listeners(srv);
		return server_fail(srv, rc, "cannot serve metrics: %s",
		    xz_strerror(rc));
	}
	if ((rc = server_apps_startup(srv)) != XZ_OK) {
		stop_waiter_free(&sw);
		server_close_listeners(srv);
		return server_fail(srv, rc, "a startup hook failed: %s",
		    xz_strerror(rc));
	}
	if ((rc = server_start_workers(srv)) != XZ_OK) {
		stop_waiter_free(&sw);
		server_close_listeners(srv);
		/* the startup hooks ran */
		server_apps_shutdown(srv, site_set_count(srv->sites));
		return rc;
	}
	server_log_sites(srv);
	server_log_listening(srv);
	server_notify(srv, "READY=1\nSTATUS=serving");
	server_wait_and_drain(srv, &sw);
	stop_waiter_free(&sw);
	server_apps_shutdown(srv, site_set_count(srv->sites));
	log_info("stopped");
	return XZ_OK;
}

void
xz_server_free(struct xz_server *srv)
{
	int i;

	if (srv == NULL)
		return;
	for (i = 0; i < srv->nworkers; i++)
		worker_free(&srv->workers[i], srv->naddrs);
	free(srv->workers);
	free(srv->addrs);
	tls_ctx_free(srv->tls);
	site_set_free(srv->sites);
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
