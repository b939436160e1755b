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
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "xz_private.h"

#define SCGI_STATUS 43 /* Gemini "proxy error" */
#define META_CONNECT "Failed to connect to SCGI backend"
#define META_CONNECT_TIMEOUT "SCGI connection timeout"
/* Upload bytes queued for the backend at most (beside the request's). */
#define SCGI_UPLOAD_CHUNK 65536

/* One backend: where it is and how to talk to it. Read-only once made. */
struct scgi_backend {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char where[128]; /* "127.0.0.1:4000", "unix:/run/app.sock": the log */
	char name[160];  /* "scgi 127.0.0.1:4000": relay_cfg.name */
	struct xz_backend_config cfg; /* a copy (backend.c) */
	struct relay_cfg relay;
};

/* One request's trip to the backend, until relay.c has taken it. */
struct scgi_call {
	const struct scgi_backend *b;
	struct xz_request *req;
	struct bufferevent *bev; /* until handed to the relay */
	struct evbuffer *hdr;    /* the request bytes not yet sent */
	struct event *ev_send;   /* waits for room for the rest of hdr */
	struct relay *relay;     /* once the request is sent */
	bool in_connect;         /* inside bufferevent_socket_connect() */
	bool connected;          /* sending: the request, then any upload */
	int connect_errno;       /* why it failed there */
};

static const struct backend_kind scgi_kind = {
	.defaults = xz_scgi_config_init,
	.error_status = SCGI_STATUS,
	.meta_timeout = "SCGI backend timeout",
	.meta_too_big = "SCGI response exceeds maximum size",
	.meta_bad = "SCGI backend error",
};

static void scgi_on_send(evutil_socket_t, short, void *);

static void
scgi_call_free(struct scgi_call *call)
{
	if (call->ev_send != NULL)
		event_free(call->ev_send);
	if (call->bev != NULL)
		bufferevent_free(call->bev);
	if (call->hdr != NULL)
		evbuffer_free(call->hdr);
	free(call);
}

/* Ends req with an error before anything reached the client. */
static void
scgi_fail(struct scgi_call *call, const char *meta)
{
	struct xz_request *req = call->req;

	xz_request_set_data(req, NULL);
	if (xz_request_is_upload(req))
		xz_upload_on_data(req, NULL, NULL); /* no more calls to call */
	scgi_call_free(call);
	xz_respond(req, SCGI_STATUS, meta);
}

/* The relay has answered and ended the request; req is no longer ours. */
static void
scgi_on_relay_done(enum relay_end how, void *arg)
{
	struct scgi_call *call = arg;

	call->relay = NULL;
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
	size_t len = evbuffer_get_length(call->hdr);
	struct timeval tv;
	ssize_t n;

	call->connected = true;
	if (xz_request_is_upload(req) && len < SCGI_UPLOAD_CHUNK)
		len += request_upload_take(req, call->hdr,
		    SCGI_UPLOAD_CHUNK - len);
	n = len == 0 ?
	        0 :
	        send(fd, evbuffer_pullup(call->hdr, -1), len, MSG_NOSIGNAL);
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		log_warn("%s: %s: sending the request", call->b->name,
		    xz_request_url(req));
		scgi_fail(call, call->b->relay.meta_bad);
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
	tv = xz_timeval(call->b->cfg.timeout);
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
		    xz_request_url(call->req), call->b->cfg.timeout);
		metrics_backend_failed(call->b->relay.backend_id,
		    METRICS_CONNECT_TIMEOUT);
		scgi_fail(call, META_CONNECT_TIMEOUT);
		return;
	}
	/* libevent restores the connect's errno for this callback. */
	log_warn("%s: %s: connect", call->b->name, xz_request_url(call->req));
	metrics_backend_failed(call->b->relay.backend_id, METRICS_CONNECT);
	scgi_fail(call, META_CONNECT);
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
	struct timeval tv = xz_timeval(b->cfg.timeout);
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
	    xz_request_path_info(req), &call->b->cfg);
	if (rc != XZ_OK)
		return rc;
	if ((call->hdr = evbuffer_new()) == NULL)
		rc = XZ_ENOMEM;
	else
		rc = cgienv_scgi_header(call->hdr, &env);
	cgienv_clear(&env);
	return rc;
}

static int
scgi_start(struct xz_request *req, void *state)
{
	struct scgi_call *call = calloc(1, sizeof(*call));
	bool now = false;
	int rc;

	if (call == NULL)
		return XZ_ENOMEM;
	call->b = state;
	call->req = req;
	if ((rc = scgi_build_header(call)) == XZ_OK)
		rc = scgi_connect(call, &now);
	if (rc == XZ_ENOMEM) {
		scgi_call_free(call);
		return rc; /* the client gets 40: the failure is ours */
	}
	xz_request_set_data(req, call);
	if (xz_request_is_upload(req))
		xz_upload_on_data(req, scgi_on_upload, call);
	if (rc != XZ_OK) {
		metrics_backend_failed(call->b->relay.backend_id,
		    METRICS_CONNECT);
		scgi_fail(call, META_CONNECT);
	} else if (now)
		scgi_send(call);
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
scgi_backend_free(struct scgi_backend *b)
{
	if (b == NULL)
		return;
	backend_config_clear(&b->cfg);
	free(b);
}

static void
scgi_dispose(void *state)
{
	scgi_backend_free(state);
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
 * A backend with cfg (NULL: the defaults) in *bp: XZ_OK, or XZ_EINVAL or
 * XZ_ENOMEM with *why.
 */
static int
scgi_backend_new(const struct xz_backend_config *cfg, struct scgi_backend **bp,
    const char **why)
{
	struct scgi_backend *b;
	int rc;

	*bp = NULL;
	*why = "out of memory";
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return XZ_ENOMEM;
	if ((rc = backend_config_copy(&b->cfg, cfg, &scgi_kind, why)) !=
	    XZ_OK) {
		scgi_backend_free(b);
		return rc;
	}
	*bp = b;
	return XZ_OK;
}

/* The relay's view of cfg, with the SCGI metas; after b->where is set. */
static void
scgi_backend_finish(struct scgi_backend *b)
{
	snprintf(b->name, sizeof(b->name), "scgi %s", b->where);
	backend_relay_cfg(&b->relay, &b->cfg, &scgi_kind, b->name);
	b->relay.backend_id = metrics_backend_id(b->where);
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

/* The handler for opts, or NULL with the reason in why. */
static struct xz_handler *
scgi_handler_new(const struct xz_scgi_opts *o, char *why, size_t whylen,
    int *rc)
{
	struct xz_backend_config cfg;
	struct scgi_backend *b;
	struct xz_handler *h;
	const char *reason;

	*rc = XZ_EINVAL;
	if (scgi_opts_check(o, why, whylen) != XZ_OK)
		return NULL;
	if ((*rc = scgi_backend_new(&o->config, &b, &reason)) != XZ_OK) {
		snprintf(why, whylen, "%s", reason);
		return NULL;
	}
	*rc = XZ_EINVAL;
	if ((o->socket_path != NULL ?
	            scgi_set_unix(b, o->socket_path, why, whylen) :
	            scgi_resolve(b, o->host, o->port, why, whylen)) != XZ_OK) {
		scgi_backend_free(b);
		return NULL;
	}
	scgi_backend_finish(b);
	*rc = XZ_ENOMEM;
	snprintf(why, whylen, "out of memory");
	cfg = b->cfg; /* b is disposed of on failure */
	h = xz_handler_new(&scgi_ops, b);
	backend_handler_titan(h, &cfg);
	return h;
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
