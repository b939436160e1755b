/*
 * scgi.c - the SCGI handler: requests forwarded to a persistent backend
 * over TCP or a Unix socket (the SCGI protocol, python.ca/scgi/protocol).
 *
 * It owns the backend's address (resolved once, at registration), the
 * trip of one request to it (a non-blocking connect bounded by the
 * timeout, then the request header sent in one write), and the public
 * API of xitzin.h's SCGI section. What it shares with CGI lives apart:
 * the config and its checks in backend.c, the variable set in cgienv.c,
 * and the relay of the answer to the client in relay.c. Nothing here
 * ever blocks the worker.
 *
 * A failure the client sees is one of the five metas of DESIGN.md; the
 * address and errno behind it go to the log only, since an internal
 * address in a public error is a leak.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "xz_private.h"

#define SCGI_STATUS 43 /* Gemini "proxy error" */
#define META_CONNECT "Failed to connect to SCGI backend"
#define META_CONNECT_TIMEOUT "SCGI connection timeout"
/* A busy pool's 44s: one log line per mount per this many ms. */
#define SCGI_BUSY_LOG_MS 60000
/* Upload bytes queued for the backend at most (beside the request's). */
#define SCGI_UPLOAD_CHUNK 65536

/* One backend: where it is. Read-only once made. */
struct scgi_backend {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char where[128]; /* "127.0.0.1:4000", "unix:/run/app.sock": the log */
	char name[160];  /* "scgi 127.0.0.1:4000": relay_cfg.name */
	struct relay_cfg relay;
};

/*
 * A mount's backends (one, or a pool) and their shared config: the
 * handler's state. The pool's health and slots live here, so whatever
 * owns the mount owns them.
 */
struct scgi_pool {
	struct xz_backend_config cfg; /* a copy (backend.c) */
	double connect_timeout;
	double queue_timeout;
	struct pool *pool; /* which backend next (pool.c) */
	/* 44s answered and when the last line said so (any worker). */
	atomic_ulong busy_unlogged;
	atomic_llong busy_logged_ms; /* 0: never */
	size_t n;
	struct scgi_backend b[];
};

/* One request's trip to a backend, until relay.c has taken it. */
struct scgi_call {
	struct scgi_pool *p;
	const struct scgi_backend *b; /* the one tried now, or NULL */
	int idx;                      /* b's slot in the pool; -1: none */
	uint64_t tried;               /* bit i: p->b[i] was tried */
	const char *fail_meta;        /* the last failure's meta */
	struct xz_request *req;
	struct bufferevent *bev; /* until handed to the relay */
	struct evbuffer *hdr;    /* the request bytes not yet sent */
	struct event *ev_send;   /* waits for room for the rest of hdr */
	struct relay *relay;     /* once the request is sent */
	struct event *ev_wake;   /* a slot came free (any thread) */
	struct event *ev_queue;  /* queue_timeout */
	struct pool_waiter waiter;
	bool waiting;      /* queued, or woken and not yet run */
	bool in_connect;   /* inside bufferevent_socket_connect() */
	bool connected;    /* sending: the request, then any upload */
	bool upload_sent;  /* part of a Titan body left: no retry */
	int connect_errno; /* why it failed there */
};

static const struct backend_kind scgi_kind = {
	.defaults = xz_scgi_config_init,
	.error_status = SCGI_STATUS,
	.meta_timeout = "SCGI backend timeout",
	.meta_too_big = "SCGI response exceeds maximum size",
	.meta_bad = "SCGI backend error",
};

static void scgi_on_send(evutil_socket_t, short, void *);
static void scgi_attempt(struct scgi_call *);

/* The pool's clock: ms, monotonic. */
static int64_t
scgi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drops the attempt at call->b: its socket, its bytes, its slot. */
static void
scgi_detach(struct scgi_call *call)
{
	if (call->ev_send != NULL)
		event_free(call->ev_send);
	if (call->bev != NULL)
		bufferevent_free(call->bev);
	if (call->hdr != NULL)
		evbuffer_free(call->hdr);
	call->ev_send = NULL;
	call->bev = NULL;
	call->hdr = NULL;
	if (call->idx >= 0)
		pool_release(call->p->pool, (size_t)call->idx);
	call->idx = -1;
	call->b = NULL;
	call->connected = false;
	call->connect_errno = 0;
}

static void
scgi_call_free(struct scgi_call *call)
{
	if (call->waiting)
		pool_unwait(call->p->pool, &call->waiter, true);
	if (call->ev_wake != NULL)
		event_free(call->ev_wake);
	if (call->ev_queue != NULL)
		event_free(call->ev_queue);
	scgi_detach(call);
	free(call);
}

/* Ends req with an error before anything reached the client. */
static void
scgi_respond(struct scgi_call *call, int status, const char *meta)
{
	struct xz_request *req = call->req;

	xz_request_set_data(req, NULL);
	if (xz_request_is_upload(req))
		xz_upload_on_data(req, NULL, NULL); /* no more calls to call */
	scgi_call_free(call);
	xz_respond(req, status, meta);
}

static void
scgi_fail(struct scgi_call *call, const char *meta)
{
	scgi_respond(call, SCGI_STATUS, meta);
}

/*
 * Passive health: one more failure of the backend tried now, which rests
 * after max_fails of them in a row. Counted before any byte of answer
 * (scgi_note_failure) and after (the relay's RELAY_BACKEND_FAILED).
 */
static void
scgi_count_failure(struct scgi_call *call)
{
	if (pool_failed(call->p->pool, (size_t)call->idx, scgi_now_ms()))
		log_warnx("%s: resting for %gs after failures", call->b->name,
		    pool_config(call->p->pool)->fail_timeout);
}

/*
 * The backend tried now failed before any byte of its answer (a connect
 * refused or timed out, the request refused, a close or reset without a
 * word): counted (passive health, per-backend metrics), then the attempt
 * is dropped.
 */
static void
scgi_note_failure(struct scgi_call *call, const char *meta)
{
	if (strcmp(meta, META_CONNECT_TIMEOUT) == 0)
		metrics_backend_failed(call->b->relay.backend_id,
		    METRICS_CONNECT_TIMEOUT);
	else if (strcmp(meta, META_CONNECT) == 0)
		metrics_backend_failed(call->b->relay.backend_id,
		    METRICS_CONNECT);
	scgi_count_failure(call);
	call->fail_meta = meta;
	scgi_detach(call);
}

/*
 * The request goes on to the next backend when retry allows (nothing
 * of it is lost), or fails with meta.
 */
static void
scgi_backend_failed(struct scgi_call *call, const char *meta, bool retry)
{
	scgi_note_failure(call, meta);
	if (retry && !call->upload_sent)
		scgi_attempt(call);
	else
		scgi_fail(call, meta);
}

/* The relay has answered and ended the request, or (RELAY_UNANSWERED)
 * the backend left without a word and req is ours again. */
static void
scgi_on_relay_done(enum relay_end how, void *arg)
{
	struct scgi_call *call = arg;

	call->relay = NULL;
	if (how == RELAY_UNANSWERED) {
		scgi_backend_failed(call, call->b->relay.meta_bad, true);
		return;
	}
	if (how == RELAY_OK)
		pool_answered(call->p->pool, (size_t)call->idx);
	else if (how == RELAY_BACKEND_FAILED)
		/* Too late to try another (the client may have bytes), but
		 * the next requests go elsewhere for a while. */
		scgi_count_failure(call);
	scgi_call_free(call);
}

/* The whole request is with the backend: its answer goes to relay.c. */
static void
scgi_hand_over(struct scgi_call *call)
{
	struct bufferevent *bev = call->bev;

	call->bev = NULL;
	call->relay = relay_new(call->req, bev, &call->b->relay,
	    scgi_on_relay_done, call);
	if (call->relay == NULL) {
		log_warnx("%s: out of memory", call->b->name);
		xz_request_set_data(call->req, NULL);
		xz_end(call->req); /* 40: our failure, not the backend's */
		scgi_call_free(call);
	}
}

/*
 * Sends what is left of the request: its header, then (Titan) the
 * upload as the client's bytes come, never more than SCGI_UPLOAD_CHUNK
 * of it queued here, so that an upload of any size passes in constant
 * memory; the backend's reading paces the client's sending. The socket
 * is fresh, so a Gemini request's header normally goes in one send().
 * MSG_NOSIGNAL: a backend that closes early must not SIGPIPE the server.
 */
static void
scgi_send(struct scgi_call *call)
{
	evutil_socket_t fd = bufferevent_getfd(call->bev);
	struct xz_request *req = call->req;
	size_t len = evbuffer_get_length(call->hdr), got;
	struct timeval tv;
	ssize_t n;

	call->connected = true;
	if (xz_request_is_upload(req) && len < SCGI_UPLOAD_CHUNK) {
		got = request_upload_take(req, call->hdr,
		    SCGI_UPLOAD_CHUNK - len);
		call->upload_sent |= got > 0;
		len += got;
	}
	n = len == 0 ?
	        0 :
	        send(fd, evbuffer_pullup(call->hdr, -1), len, MSG_NOSIGNAL);
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		/* A reset from a listen queue, a backend gone: not read. */
		log_warn("%s: %s: sending the request", call->b->name,
		    xz_request_url(req));
		scgi_backend_failed(call, call->b->relay.meta_bad, true);
		return;
	}
	if (n > 0)
		evbuffer_drain(call->hdr, (size_t)n);
	if (evbuffer_get_length(call->hdr) == 0) {
		if (!xz_request_is_upload(req) || request_upload_done(req))
			scgi_hand_over(call);
		else if ((size_t)n == len && n > 0)
			scgi_send(call); /* more may be held already */
		/* else: the client's next bytes call scgi_on_upload */
		return;
	}
	if (call->ev_send == NULL &&
	    (call->ev_send = event_new(xz_request_base(req), fd, EV_WRITE,
	         scgi_on_send, call)) == NULL) {
		scgi_fail(call, call->b->relay.meta_bad);
		return;
	}
	tv = xz_timeval(call->p->cfg.timeout);
	event_add(call->ev_send, &tv);
}

/* Titan: more of the upload came; send it unless a send already waits. */
static void
scgi_on_upload(struct xz_request *req, void *arg)
{
	struct scgi_call *call = arg;

	if (!call->connected || call->relay != NULL ||
	    (call->ev_send != NULL &&
	        event_pending(call->ev_send, EV_WRITE, NULL)))
		return;
	scgi_send(call);
}

static void
scgi_on_send(evutil_socket_t fd, short what, void *arg)
{
	struct scgi_call *call = arg;

	if (what & EV_TIMEOUT) {
		/* Connected but stuck: no retry, it may be reading slowly. */
		log_warnx("%s: %s: took no request bytes within the timeout",
		    call->b->name, xz_request_url(call->req));
		metrics_backend_failed(call->b->relay.backend_id,
		    METRICS_TIMEOUT);
		scgi_fail(call, call->b->relay.meta_timeout);
		return;
	}
	scgi_send(call);
}

/* The connect's outcome (bufferevent events while connecting). */
static void
scgi_on_connect(struct bufferevent *bev, short what, void *arg)
{
	struct scgi_call *call = arg;

	if (call->in_connect) {
		/*
		 * libevent reports a connect that failed at once from inside
		 * bufferevent_socket_connect(): scgi_connect answers it.
		 */
		call->connect_errno = errno;
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		/* Nothing to read or write through bev until the relay. */
		bufferevent_disable(bev, EV_READ | EV_WRITE);
		scgi_send(call);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_warnx("%s: %s: connect timed out after %gs", call->b->name,
		    xz_request_url(call->req), call->p->connect_timeout);
		scgi_backend_failed(call, META_CONNECT_TIMEOUT, true);
		return;
	}
	/* libevent restores the connect's errno for this callback. */
	log_warn("%s: %s: connect", call->b->name, xz_request_url(call->req));
	scgi_backend_failed(call, META_CONNECT, true);
}

/* A non-blocking, close-on-exec socket (CGI children never inherit it). */
static int
scgi_socket(const struct scgi_backend *b)
{
	int fd, on = 1;

	fd = socket(b->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	/* One small request, then reads: Nagle would only add delay. */
	if (b->addr.ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	return fd;
}

/*
 * Starts the connect. XZ_OK when done at once (*now set: a Unix socket
 * whose backend listens always is) or under way (the outcome comes to
 * scgi_on_connect), XZ_EIO when it failed at once (errno logged),
 * XZ_ENOMEM. Connecting here rather than in libevent spares a connected
 * socket the wait for writability and the SO_ERROR check.
 */
static int
scgi_connect(struct scgi_call *call, bool *now)
{
	const struct scgi_backend *b = call->b;
	struct timeval tv = xz_timeval(call->p->connect_timeout);
	int fd, rc;

	if ((fd = scgi_socket(b)) == -1) {
		log_warn("%s: socket", b->name);
		return XZ_EIO;
	}
	call->bev = bufferevent_socket_new(xz_request_base(call->req), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (call->bev == NULL) {
		close(fd);
		return XZ_ENOMEM;
	}
	if (connect(fd, (const struct sockaddr *)&b->addr, b->addrlen) == 0) {
		*now = true;
		return XZ_OK;
	}
	if (errno != EINPROGRESS) {
		/* ENOENT, ECONNREFUSED, a full Unix socket backlog, ... */
		log_warn("%s: %s: connect", b->name, xz_request_url(call->req));
		return XZ_EIO;
	}
	/* While connecting, the write timeout bounds the connect. */
	bufferevent_set_timeouts(call->bev, NULL, &tv);
	bufferevent_setcb(call->bev, NULL, NULL, scgi_on_connect, call);
	call->in_connect = true;
	rc = bufferevent_socket_connect(call->bev, NULL, 0); /* wait for it */
	call->in_connect = false;
	if (rc == -1) {
		/* ENOENT, ECONNREFUSED, a full Unix socket backlog, ... */
		errno = call->connect_errno != 0 ? call->connect_errno : errno;
		log_warn("%s: %s: connect", b->name, xz_request_url(call->req));
		return XZ_EIO;
	}
	return XZ_OK;
}

/* The variable set of DESIGN.md, as an SCGI request header in call->hdr. */
static int
scgi_build_header(struct scgi_call *call)
{
	struct xz_request *req = call->req;
	struct cgienv env;
	int rc;

	rc = cgienv_request(&env, req, xz_request_mount(req),
	    xz_request_path_info(req), &call->p->cfg);
	if (rc != XZ_OK)
		return rc;
	if ((call->hdr = evbuffer_new()) == NULL)
		rc = XZ_ENOMEM;
	else
		rc = cgienv_scgi_header(call->hdr, &env);
	cgienv_clear(&env);
	return rc;
}

/*
 * An overload answers 44 to every request while it lasts: one line a
 * minute per mount says so, with the count, rather than one per request
 * (as rate limits do).
 */
static void
scgi_log_busy(struct scgi_call *call, const char *why)
{
	struct scgi_pool *p = call->p;
	long long now = scgi_now_ms(), last = atomic_load(&p->busy_logged_ms);
	unsigned long n = atomic_fetch_add(&p->busy_unlogged, 1) + 1;

	if ((last != 0 && now - last < SCGI_BUSY_LOG_MS) ||
	    !atomic_compare_exchange_strong(&p->busy_logged_ms, &last, now))
		return;
	n = atomic_exchange(&p->busy_unlogged, 0);
	log_warnx("scgi %s: %s: %s, answered 44 (%lu since the last such "
	          "line; logged once a minute)",
	    xz_request_mount(call->req), xz_request_url(call->req), why, n);
}

/*
 * Every live backend is at max_conns: 44 with the seconds to wait. Gemini
 * gives no better hint than a number; the queue's own bound is the
 * honest one.
 */
static void
scgi_busy(struct scgi_call *call, const char *why)
{
	char meta[24];
	double wait = ceil(call->p->queue_timeout);

	scgi_log_busy(call, why);
	snprintf(meta, sizeof(meta), "%.0f", wait < 1 ? 1 : wait);
	scgi_respond(call, 44, meta);
}

/* Any thread: a slot came free; the call's own loop takes it. */
static void
scgi_wake(void *arg)
{
	struct scgi_call *call = arg;

	event_active(call->ev_wake, EV_TIMEOUT, 0);
}

static void
scgi_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct scgi_call *call = arg;

	if (!call->waiting)
		return; /* it took a slot on its own meanwhile */
	/* Still queued when this wake is an old one: out first. */
	pool_unwait(call->p->pool, &call->waiter, false);
	call->waiting = false;
	scgi_attempt(call);
}

static void
scgi_on_queue_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct scgi_call *call = arg;

	scgi_busy(call, "waited queue_timeout for a free backend");
}

/*
 * Waits for a slot: in the pool's queue (at its front when woken once
 * already), under queue_timeout counted from the first wait.
 */
static void
scgi_queue(struct scgi_call *call)
{
	struct event_base *base = xz_request_base(call->req);
	struct scgi_pool *p = call->p;
	struct timeval tv;

	if (call->ev_wake == NULL) {
		call->ev_wake = event_new(base, -1, 0, scgi_on_wake, call);
		call->ev_queue = evtimer_new(base, scgi_on_queue_timeout, call);
		tv = xz_timeval(p->queue_timeout);
		if (call->ev_wake == NULL || call->ev_queue == NULL ||
		    evtimer_add(call->ev_queue, &tv) == -1) {
			scgi_busy(call, "out of memory to wait");
			return;
		}
		call->waiter.wake = scgi_wake;
		call->waiter.arg = call;
	} else if (!evtimer_pending(call->ev_queue, NULL)) {
		scgi_busy(call, "waited queue_timeout for a free backend");
		return;
	}
	if (!pool_wait(p->pool, &call->waiter, call->tried != 0)) {
		scgi_busy(call, "every backend at max_conns, queue full");
		return;
	}
	call->waiting = true;
	/* A slot freed between the pick and the wait woke nobody: look. */
	if (!pool_has_room(p->pool, call->tried, scgi_now_ms()))
		return;
	pool_unwait(p->pool, &call->waiter, false);
	call->waiting = false;
	scgi_attempt(call);
}

/*
 * Tries the backends the pool offers, one after the other while each
 * fails at once; a connect under way goes on in scgi_on_connect. None
 * left: the last failure's meta (or "Failed to connect" when all rest);
 * all full: the queue.
 */
static void
scgi_attempt(struct scgi_call *call)
{
	struct scgi_pool *p = call->p;
	bool busy, now;
	int i, rc;

	while (
	    (i = pool_pick(p->pool, call->tried, scgi_now_ms(), &busy)) >= 0) {
		call->idx = i;
		call->b = &p->b[i];
		call->tried |= (uint64_t)1 << i;
		now = false;
		if ((rc = scgi_build_header(call)) == XZ_OK)
			rc = scgi_connect(call, &now);
		if (rc == XZ_OK) {
			if (now)
				scgi_send(call);
			return;
		}
		if (rc == XZ_ENOMEM) {
			scgi_respond(call, 40, "Temporary failure");
			return;
		}
		scgi_note_failure(call, META_CONNECT);
	}
	if (busy)
		scgi_queue(call);
	else
		scgi_fail(call,
		    call->fail_meta != NULL ? call->fail_meta : META_CONNECT);
}

static int
scgi_start(struct xz_request *req, void *state)
{
	struct scgi_call *call = calloc(1, sizeof(*call));

	if (call == NULL)
		return XZ_ENOMEM; /* the client gets 40: the failure is ours */
	call->p = state;
	call->req = req;
	call->idx = -1;
	xz_request_set_data(req, call);
	if (xz_request_is_upload(req))
		xz_upload_on_data(req, scgi_on_upload, call);
	scgi_attempt(call);
	return XZ_OK;
}

/* The client went away: drop the backend connection at once. */
static void
scgi_cancel(struct xz_request *req, void *state)
{
	struct scgi_call *call = xz_request_data(req);

	if (call == NULL)
		return;
	xz_request_set_data(req, NULL);
	if (xz_request_is_upload(req))
		xz_upload_on_data(req, NULL, NULL);
	if (call->relay != NULL)
		relay_cancel(call->relay);
	call->relay = NULL;
	scgi_call_free(call);
}

static void
scgi_pool_free(struct scgi_pool *p)
{
	if (p == NULL)
		return;
	backend_config_clear(&p->cfg);
	pool_free(p->pool);
	free(p);
}

static void
scgi_dispose(void *state)
{
	scgi_pool_free(state);
}

static const struct xz_handler_ops scgi_ops = {
	.name = "scgi",
	.start = scgi_start,
	.cancel = scgi_cancel,
	.dispose = scgi_dispose,
};

/*
 * Registration.
 */

/*
 * A pool of n backends (addresses still to set) with cfg and pc (NULL:
 * the defaults) in *pp: XZ_OK, or XZ_EINVAL or XZ_ENOMEM with *why.
 */
static int
scgi_pool_new(size_t n, const struct xz_backend_config *cfg,
    const struct xz_pool_config *pc, struct scgi_pool **pp, const char **why)
{
	struct xz_pool_config d = { 0 };
	struct scgi_pool *p;
	int rc;

	*pp = NULL;
	if (pc == NULL)
		pc = &d;
	if (n == 0 || n > POOL_MAX) {
		*why = "give 1 to 64 backends";
		return XZ_EINVAL;
	}
	if ((*why = pool_config_invalid(pc)) != NULL)
		return XZ_EINVAL;
	*why = "out of memory";
	if ((p = calloc(1, sizeof(*p) + n * sizeof(p->b[0]))) == NULL)
		return XZ_ENOMEM;
	p->n = n;
	if ((rc = backend_config_copy(&p->cfg, cfg, &scgi_kind, why)) !=
	    XZ_OK) {
		scgi_pool_free(p);
		return rc;
	}
	if ((p->pool = pool_new(n, pc)) == NULL) {
		scgi_pool_free(p);
		return XZ_ENOMEM;
	}
	p->connect_timeout = pool_config(p->pool)->connect_timeout > 0 ?
	                         pool_config(p->pool)->connect_timeout :
	                         p->cfg.timeout;
	p->queue_timeout = pool_config(p->pool)->queue_timeout;
	*pp = p;
	return XZ_OK;
}

/* The relay's view of cfg, with the SCGI metas; after b->where is set. */
static void
scgi_backend_finish(struct scgi_backend *b, const struct xz_backend_config *cfg)
{
	char where[sizeof(b->where)];

	/* A copy: gcc -O2 with ASan cannot tell b->name from b->where. */
	memcpy(where, b->where, sizeof(where));
	snprintf(b->name, sizeof(b->name), "scgi %s", where);
	backend_relay_cfg(&b->relay, cfg, &scgi_kind, b->name);
	b->relay.backend_id = metrics_backend_id(where);
	b->relay.unanswered_returns = true; /* scgi_on_relay_done decides */
}

/*
 * Resolves host (a name or an IP literal, "[::1]" too) once, now: the
 * first address getaddrinfo gives. why gets the reason on failure.
 */
static int
scgi_resolve(struct scgi_backend *b, const char *host, int port, char *why,
    size_t whylen)
{
	struct addrinfo hints = { 0 }, *res;
	char name[200], serv[16];
	size_t len = strlen(host);
	int rc;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(name)) {
		snprintf(why, whylen, "host given without a name");
		return XZ_EINVAL;
	}
	memcpy(name, host, len);
	name[len] = '\0';
	snprintf(serv, sizeof(serv), "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(name, serv, &hints, &res)) != 0) {
		snprintf(why, whylen, "host %s does not resolve: %s", name,
		    gai_strerror(rc));
		return XZ_EINVAL;
	}
	memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
	b->addrlen = res->ai_addrlen;
	snprintf(b->where, sizeof(b->where),
	    res->ai_family == AF_INET6 ? "[%s]:%d" : "%s:%d", name, port);
	freeaddrinfo(res);
	return XZ_OK;
}

static int
scgi_set_unix(struct scgi_backend *b, const char *path, char *why,
    size_t whylen)
{
	struct sockaddr_un *su = (struct sockaddr_un *)&b->addr;
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(su->sun_path)) {
		snprintf(why, whylen, "socket path empty or over %zu bytes",
		    sizeof(su->sun_path) - 1);
		return XZ_EINVAL;
	}
	su->sun_family = AF_UNIX;
	memcpy(su->sun_path, path, len + 1);
	b->addrlen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	snprintf(b->where, sizeof(b->where), "unix:%s", path);
	return XZ_OK;
}

/* Where the backend is, from opts; why gets the reason for XZ_EINVAL. */
static int
scgi_opts_check(const struct xz_scgi_opts *o, char *why, size_t whylen)
{
	bool tcp = o->host != NULL || o->port != 0;

	if (tcp && o->socket_path != NULL)
		snprintf(why, whylen,
		    "give host and port, or socket, not both");
	else if (!tcp && o->socket_path == NULL)
		snprintf(why, whylen, "give host and port, or socket");
	else if (tcp && o->host == NULL)
		snprintf(why, whylen, "port given without host");
	else if (tcp && o->port == 0)
		snprintf(why, whylen, "host given without port");
	else if (tcp && (o->port < 1 || o->port > 65535))
		snprintf(why, whylen, "port %d out of range 1..65535", o->port);
	else
		return XZ_OK;
	return XZ_EINVAL;
}

/* Backend b at a (resolved now when a name). */
static int
scgi_set_addr(struct scgi_backend *b, const struct pool_addr *a, char *why,
    size_t whylen)
{
	if (a->is_unix)
		return scgi_set_unix(b, a->path, why, whylen);
	return scgi_resolve(b, a->host, a->port, why, whylen);
}

/* The handler for n addresses, or NULL with the reason in why. */
static struct xz_handler *
scgi_handler_make(const struct pool_addr *addrs, size_t n,
    const struct xz_pool_config *pc, const struct xz_backend_config *cfg,
    char *why, size_t whylen, int *rc)
{
	struct xz_backend_config copy;
	struct scgi_pool *p;
	struct xz_handler *h;
	const char *reason;
	size_t i;

	if ((*rc = scgi_pool_new(n, cfg, pc, &p, &reason)) != XZ_OK) {
		snprintf(why, whylen, "%s", reason);
		return NULL;
	}
	*rc = XZ_EINVAL;
	for (i = 0; i < n; i++) {
		if (scgi_set_addr(&p->b[i], &addrs[i], why, whylen) != XZ_OK) {
			scgi_pool_free(p);
			return NULL;
		}
		scgi_backend_finish(&p->b[i], &p->cfg);
	}
	*rc = XZ_ENOMEM;
	snprintf(why, whylen, "out of memory");
	copy = p->cfg; /* p is disposed of on failure */
	h = xz_handler_new(&scgi_ops, p);
	backend_handler_titan(h, &copy);
	return h;
}

/* The addresses of a NULL-ended list, parsed; NULL with why. */
static struct pool_addr *
scgi_parse_list(const char *const *list, size_t *np, char *why, size_t whylen,
    int *rc)
{
	struct pool_addr *a;
	size_t n = 0, i;

	while (list[n] != NULL)
		n++;
	*np = n;
	*rc = XZ_EINVAL;
	if (n == 0 || n > POOL_MAX) {
		snprintf(why, whylen, "give 1 to %d backends", POOL_MAX);
		return NULL;
	}
	*rc = XZ_ENOMEM;
	snprintf(why, whylen, "out of memory");
	if ((a = calloc(n, sizeof(*a))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if ((*rc = pool_addr_parse(list[i], &a[i], why, whylen)) !=
		    XZ_OK) {
			free(a);
			return NULL;
		}
	return a;
}

/* A pool's handler; the config copied, defaults for a NULL one. */
static struct xz_handler *
scgi_pool_handler(const char *const *list, const struct xz_pool_config *pc,
    const struct xz_backend_config *cfg, char *why, size_t whylen, int *rc)
{
	struct pool_addr *a;
	struct xz_handler *h;
	size_t n;

	if ((a = scgi_parse_list(list, &n, why, whylen, rc)) == NULL)
		return NULL;
	h = scgi_handler_make(a, n, pc, cfg, why, whylen, rc);
	free(a);
	return h;
}

/* The handler for opts, or NULL with the reason in why. */
static struct xz_handler *
scgi_handler_new(const struct xz_scgi_opts *o, char *why, size_t whylen,
    int *rc)
{
	struct pool_addr a = { 0 };

	*rc = XZ_EINVAL;
	if (o->backends != NULL) {
		if (o->host != NULL || o->port != 0 || o->socket_path != NULL) {
			snprintf(why, whylen,
			    "give backends, or host and port, or socket: "
			    "one of them");
			return NULL;
		}
		return scgi_pool_handler(o->backends, &o->pool, &o->config, why,
		    whylen, rc);
	}
	if (scgi_opts_check(o, why, whylen) != XZ_OK)
		return NULL;
	if (o->socket_path != NULL) {
		a.is_unix = true;
		if (strlen(o->socket_path) >= sizeof(a.path)) {
			snprintf(why, whylen,
			    "socket path empty or over %zu bytes",
			    sizeof(a.path) - 1);
			return NULL;
		}
		strcpy(a.path, o->socket_path);
	} else {
		if (strlen(o->host) >= sizeof(a.host)) {
			snprintf(why, whylen, "host name too long");
			return NULL;
		}
		strcpy(a.host, o->host);
		a.port = o->port;
	}
	return scgi_handler_make(&a, 1, &o->pool, &o->config, why, whylen, rc);
}

int
xz_scgi(struct xz_app *app, const char *prefix, const struct xz_scgi_opts *opts)
{
	struct xz_handler *h;
	char why[256];
	int rc;

	if (prefix == NULL || opts == NULL) {
		app_set_error(app, "scgi %s: no options",
		    prefix != NULL ? prefix : "(null)");
		return XZ_EINVAL;
	}
	if ((h = scgi_handler_new(opts, why, sizeof(why), &rc)) == NULL) {
		app_set_error(app, "scgi %s: %s", prefix, why);
		return rc;
	}
	return xz_mount(app, prefix, h);
}

struct xz_handler *
xz_scgi_tcp(const char *host, int port, const struct xz_backend_config *cfg)
{
	struct xz_scgi_opts o = { .host = host, .port = port };
	struct xz_handler *h;
	char why[256];
	int rc;

	if (cfg != NULL)
		o.config = *cfg;
	if (host == NULL) {
		handler_set_error(XZ_EINVAL, "scgi: no host");
		return NULL;
	}
	if ((h = scgi_handler_new(&o, why, sizeof(why), &rc)) == NULL)
		handler_set_error(rc, "scgi %s:%d: %s", host, port, why);
	return h;
}

struct xz_handler *
xz_scgi_unix(const char *socket_path, const struct xz_backend_config *cfg)
{
	struct xz_scgi_opts o = { .socket_path = socket_path };
	struct xz_handler *h;
	char why[256];
	int rc;

	if (cfg != NULL)
		o.config = *cfg;
	if (socket_path == NULL) {
		handler_set_error(XZ_EINVAL, "scgi: no socket path");
		return NULL;
	}
	if ((h = scgi_handler_new(&o, why, sizeof(why), &rc)) == NULL)
		handler_set_error(rc, "scgi unix:%s: %s", socket_path, why);
	return h;
}

struct xz_handler *
xz_scgi_pool(const char *const *backends, const struct xz_pool_config *pool,
    const struct xz_backend_config *cfg)
{
	struct xz_handler *h;
	char why[256];
	int rc;

	if (backends == NULL) {
		handler_set_error(XZ_EINVAL, "scgi: no backends");
		return NULL;
	}
	if ((h = scgi_pool_handler(backends, pool, cfg, why, sizeof(why),
	         &rc)) == NULL)
		handler_set_error(rc, "scgi pool: %s", why);
	return h;
}
