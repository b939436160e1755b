/*
 * conn.c - one client connection's life: TLS handshake, the request line
 * (at most 1024 bytes + CRLF, under a timeout), the checks that belong to
 * this server (53 for another host, scheme or port; 31 for an empty path),
 * handing the request to the app, then flushing the response and ending
 * with close_notify and a short linger. A client that half-closes after
 * its request is still answered; one that reads too slowly is dropped
 * (write_timeout, send_min_rate).
 *
 * TLS runs on the socket itself, driven by libevent read/write events (as
 * gmid drives libtls); the response is queued in an evbuffer and taken out
 * a record (16 KiB) at a time. The transport is a table (struct conn_io):
 * conn_io_tls here; the test client brings one of plain bytes. The
 * request reaches its connection through conn_carrier, never by name.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <linux/sockios.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xz_private.h"

#define CONN_RECORD 16384 /* one TLS record's worth of plaintext */
/*
 * After close_notify, how long to read what the client still sends before
 * closing: data that reaches a closed socket makes the kernel answer with
 * a reset, which destroys whatever of the response is still queued for
 * the client (a client that half-closed with close_notify sends exactly
 * that). A client that closes in turn ends it at once.
 */
#define CONN_LINGER_SECONDS 2.0
/* How often a half-closed client, no longer read, is looked at for a reset. */
#define CONN_PROBE_SECONDS 1.0
/* The PROXY header is read into the request line's buffer. */
_Static_assert(PROXY_MAX <= XZ_MAX_URL + 2, "PROXY_MAX over the line");

enum conn_state {
	CONN_PROXY, /* reading a PROXY header (conn_cfg.proxy) */
	CONN_HANDSHAKE,
	CONN_READ_REQUEST,
	CONN_HANDLER, /* a handler owns the response */
	CONN_FLUSH,   /* response complete, draining output */
	CONN_BYE,     /* output drained, sending close_notify */
	CONN_LINGER,  /* close_notify sent: reading until the client closes */
	CONN_CLOSING,
};

static const char *const conn_state_name[] = { "proxy", "handshake",
	"read-request", "handler", "flush", "bye", "linger", "closing" };

struct xz_conn {
	unsigned id;
	int fd;
	enum conn_state state;
	const struct conn_cfg *cfg;
	const struct conn_io *io;
	void *t; /* the transport's session; NULL once it is done */
	struct event_base *base;
	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_timer;
	/* URL + CRLF; before it, the PROXY header's bytes taken so far */
	char line[XZ_MAX_URL + 2];
	size_t linelen;
	struct evbuffer *out;
	size_t bytes_sent;
	struct xz_request req;
	bool has_request;
	char addr[64]; /* the client's: the peer's, or the PROXY header's */
	int port;      /* the client's port */
	const char *abort_reason; /* set: close without close_notify */
	bool peer_done;           /* the client sent its FIN or close_notify */
	bool logged;              /* the access line is out */
	bool uploading;           /* reading a Titan body for the handler */
	/*
	 * While output waits for the client: what it had taken (conn_taken)
	 * when last seen to take any, and at the send_min_rate window's start.
	 */
	bool waiting;
	struct timespec progress_at, window_at;
	size_t taken, window_taken;
	struct timespec started;
	conn_closed_fn closed;
	void *closed_arg;
};

static void conn_on_read(evutil_socket_t, short, void *);
static void conn_on_write(evutil_socket_t, short, void *);
static void conn_on_timeout(evutil_socket_t, short, void *);
static void conn_flush(struct xz_conn *c);
static void conn_linger_read(struct xz_conn *c);
static void conn_idle_timer(struct xz_conn *c);
static void conn_watch_after_request(struct xz_conn *c);

static unsigned conn_next_id;

static void conn_set_state(struct xz_conn *c, enum conn_state next);

static struct evbuffer *
conn_output(void *arg)
{
	struct xz_conn *c = arg;

	return c->out;
}

/* Schedules a write: the socket is most likely writable already. */
static void
conn_kick(void *arg)
{
	struct xz_conn *c = arg;

	if (c->state != CONN_CLOSING)
		event_active(c->ev_write, EV_WRITE, 1);
}

static void
conn_end(void *arg)
{
	struct xz_conn *c = arg;

	if (c->state == CONN_HANDLER)
		conn_set_state(c, CONN_FLUSH);
	conn_kick(c);
}

/* Closed from the next write event: the caller may still hold c. */
static void
conn_abort(void *arg, const char *reason)
{
	struct xz_conn *c = arg;

	c->abort_reason = reason;
	conn_kick(c);
}

/* The handler has room for more of the upload: read from the next turn. */
static void
conn_resume(void *arg)
{
	struct xz_conn *c = arg;

	if (c->uploading && c->state == CONN_HANDLER)
		event_active(c->ev_read, EV_READ, 1);
}

/* What the request may ask of its connection (request.c). */
static const struct request_carrier conn_carrier = {
	.output = conn_output,
	.kick = conn_kick,
	.end = conn_end,
	.abort = conn_abort,
	.resume = conn_resume,
};

/*
 * The TLS transport: tls.c's session, as it is. A HelloRetryRequest is
 * worth a line in the debug log: the client sent no key share we take.
 */
static void *
tls_io_open(void *ctx, int fd)
{
	return tls_conn_new(ctx, fd);
}

static void
tls_io_close(void *t)
{
	tls_conn_free(t);
}

static int
tls_io_handshake(void *t)
{
	int rc = tls_conn_handshake(t);

	if (rc == TLS_DONE && tls_conn_retried(t))
		log_debug("HelloRetryRequest sent: no key share the server "
		          "takes");
	if (rc == TLS_DONE)
		metrics_handshake(tls_conn_resumed(t), tls_conn_retried(t));
	return rc;
}

static ssize_t
tls_io_read(void *t, void *buf, size_t len)
{
	return tls_conn_read(t, buf, len);
}

static ssize_t
tls_io_write(void *t, const void *buf, size_t len)
{
	return tls_conn_write(t, buf, len);
}

static void
tls_io_last(void *t)
{
	tls_conn_last(t);
}

static int
tls_io_bye(void *t)
{
	return tls_conn_bye(t);
}

static int
tls_io_peer(void *t, struct xz_request *req)
{
	req->tls_version = tls_conn_version(t);
	req->tls_cipher = tls_conn_cipher(t);
	return tls_conn_peer_cert(t, &req->cert);
}

static const char *
tls_io_sni(void *t, char *buf, size_t len)
{
	return tls_conn_sni(t, buf, len);
}

static const char *
tls_io_strerror(void *t, const char *fallback)
{
	const char *s = tls_conn_strerror(t);

	return s != NULL ? s : fallback;
}

const struct conn_io conn_io_tls = {
	.open = tls_io_open,
	.close = tls_io_close,
	.handshake = tls_io_handshake,
	.read = tls_io_read,
	.write = tls_io_write,
	.last = tls_io_last,
	.bye = tls_io_bye,
	.peer = tls_io_peer,
	.strerror = tls_io_strerror,
	.sni = tls_io_sni,
};

/* The transport's own words for the last failure, for the log. */
static const char *
conn_io_error(struct xz_conn *c, const char *fallback)
{
	return c->t != NULL ? c->io->strerror(c->t, fallback) : fallback;
}

static void
conn_set_state(struct xz_conn *c, enum conn_state next)
{
	log_debug("conn %u: %s -> %s", c->id, conn_state_name[c->state],
	    conn_state_name[next]);
	c->state = next;
}

static void
conn_arm_timer(struct xz_conn *c, double seconds)
{
	struct timeval tv = xz_timeval(seconds);

	event_add(c->ev_timer, &tv);
}

/* Waits for the socket to be ready in the direction a TLS call asked. */
static void
conn_want(struct xz_conn *c, int want)
{
	if (want == TLS_WANT_WRITE)
		event_add(c->ev_write, NULL);
	else
		event_add(c->ev_read, NULL);
}

static void
conn_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a;

	if (sa == NULL ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
		snprintf(buf, len, "local");
		return;
	}
	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (inet_ntop(sa->sa_family, a, buf, len) == NULL)
		snprintf(buf, len, "unknown");
}

static int
conn_addr_port(const struct sockaddr *sa)
{
	if (sa != NULL && sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa != NULL && sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

struct xz_conn *
conn_new(struct event_base *base, int fd, const struct conn_cfg *cfg,
    const struct sockaddr *sa, conn_closed_fn closed, void *arg)
{
	struct xz_conn *c;

	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return NULL;
	}
	c->id = __atomic_add_fetch(&conn_next_id, 1, __ATOMIC_RELAXED);
	c->fd = fd;
	c->cfg = cfg;
	c->base = base;
	c->closed = closed;
	c->closed_arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	conn_format_addr(sa, c->addr, sizeof(c->addr));
	c->port = conn_addr_port(sa);
	c->io = cfg->io;
	c->ev_read = event_new(base, fd, EV_READ, conn_on_read, c);
	c->ev_write = event_new(base, fd, EV_WRITE, conn_on_write, c);
	c->ev_timer = evtimer_new(base, conn_on_timeout, c);
	c->out = evbuffer_new();
	c->t = c->io->open(cfg->io_ctx, fd);
	if (c->ev_read == NULL || c->ev_write == NULL || c->ev_timer == NULL ||
	    c->out == NULL || c->t == NULL) {
		log_warnx("conn %u: out of memory", c->id);
		c->closed = NULL;
		conn_close(c, "out of memory");
		return NULL;
	}
	/* A transport without a handshake is done with it at once. */
	c->state = cfg->proxy != PROXY_OFF ? CONN_PROXY : CONN_HANDSHAKE;
	/* One bound for all before the request: header, handshake, line. */
	conn_arm_timer(c, cfg->request_timeout);
	/*
	 * The client speaks first: its ClientHello or its request line; the
	 * load balancer before it, its PROXY header.
	 */
	event_add(c->ev_read, NULL);
	return c;
}

static double
conn_elapsed_ms(const struct xz_conn *c)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - c->started.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - c->started.tv_nsec) / 1e6;
}

/* One line per request (log.c formats and escapes it). */
static void
conn_log_access(struct xz_conn *c, const char *reason)
{
	char sni[256];
	struct access_entry e = { .addr = c->addr,
		.url = c->req.url.raw,
		.status = c->req.status,
		.bytes = c->bytes_sent,
		.reason = reason };

	if (!c->cfg->access_log || !c->has_request || c->logged)
		return;
	c->logged = true;
	e.ms = conn_elapsed_ms(c);
	e.sni = c->io->sni != NULL && c->t != NULL ?
	            c->io->sni(c->t, sni, sizeof(sni)) :
	            NULL;
	e.cert_hash = c->req.cert.present ? c->req.cert.hash : NULL;
	log_access_entry(&e);
}

/* The worker's counters (metrics.c): status, mount, bytes, duration. */
static void
conn_count(const struct xz_conn *c)
{
	const struct xz_request *req = &c->req;

	metrics_request(req->status,
	    req->counted_as != NULL ? req->counted_as : "none", c->bytes_sent,
	    conn_elapsed_ms(c));
}

void
conn_close(struct xz_conn *c, const char *reason)
{
	if (c->state == CONN_CLOSING)
		return;
	conn_set_state(c, CONN_CLOSING);
	if (c->has_request && !c->req.ended)
		request_cancel(&c->req);
	conn_log_access(c, reason);
	if (c->has_request)
		conn_count(c);
	log_debug("conn %u: closed: %s", c->id, reason);
	if (c->has_request)
		request_clear(&c->req);
	if (c->t != NULL)
		c->io->close(c->t);
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	if (c->ev_timer != NULL)
		event_free(c->ev_timer);
	if (c->out != NULL)
		evbuffer_free(c->out);
	close(c->fd);
	if (c->closed != NULL)
		c->closed(c, c->closed_arg);
	free(c);
}

/* Answers a request the app never sees (53, 59, 31) and ends. */
static void
conn_answer(struct xz_conn *c, int status, const char *meta)
{
	c->req.status = status;
	c->req.replied = c->req.ended = true;
	evbuffer_add_printf(c->out, "%d %s\r\n", status, meta);
	conn_set_state(c, CONN_FLUSH);
	conn_kick(c);
}

/*
 * The site that answers: the one the request's host belongs to, which
 * must be the one whose certificate the handshake chose by SNI (no SNI:
 * the default site); NULL means another server's request (53).
 */
static const struct site *
conn_site(const struct xz_conn *c, const char *host)
{
	char sni[256];
	const char *name =
	    c->io->sni != NULL ? c->io->sni(c->t, sni, sizeof(sni)) : NULL;
	const struct site *s = site_for_name(c->cfg->sites, host);

	return s != NULL && s == site_for_sni(c->cfg->sites, name) ? s : NULL;
}

static void
conn_fill_request(struct xz_conn *c)
{
	struct xz_request *req = &c->req;

	req->port = c->cfg->port;
	snprintf(req->remote_addr, sizeof(req->remote_addr), "%s", c->addr);
	req->remote_port = c->port;
	if (c->io->peer(c->t, req) != XZ_OK)
		log_warnx("conn %u: client certificate unreadable", c->id);
}

/*
 * Titan: the app took the upload. Its first bytes may have come with the
 * line (c->line past CRLF); the rest is read as the handler takes them,
 * under request_timeout for each wait on the client.
 */
static void
conn_start_upload(struct xz_conn *c, size_t body_at)
{
	struct xz_request *req = &c->req;
	size_t have = c->linelen - body_at;

	if (have > req->url.size)
		have = req->url.size;
	c->uploading = true;
	if (request_upload_add(req, c->line + body_at, have) != XZ_OK) {
		conn_close(c, "out of memory");
		return;
	}
	conn_arm_timer(c, c->cfg->request_timeout);
	event_active(c->ev_read, EV_READ, 1);
}

/* Reads the upload while the handler has room; see conn_start_upload. */
static void
conn_read_upload(struct xz_conn *c)
{
	struct xz_request *req = &c->req;
	char buf[CONN_RECORD];
	size_t want;
	ssize_t n;

	while (c->state == CONN_HANDLER && !req->ended &&
	       req->upload_in < req->url.size) {
		if ((want = request_upload_room(req)) == 0)
			return; /* paused: conn_resume reads on */
		if (want > req->url.size - req->upload_in)
			want = req->url.size - req->upload_in;
		if (want > sizeof(buf))
			want = sizeof(buf);
		n = c->io->read(c->t, buf, want);
		if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
			conn_want(c, (int)n);
			return;
		}
		if (n <= 0) {
			log_warnx("conn %u: upload dropped: %zu of %zu bytes, "
			          "then %s",
			    c->id, req->upload_in, req->url.size,
			    n == TLS_EOF ? "the client closed" :
			                   conn_io_error(c, "a read error"));
			conn_close(c, "upload cut short");
			return;
		}
		if (request_upload_add(req, buf, (size_t)n) != XZ_OK) {
			conn_close(c, "out of memory");
			return;
		}
		if (!c->waiting)
			conn_arm_timer(c, c->cfg->request_timeout);
	}
	/* All in, or the handler answered first: the rest is dropped. */
	c->uploading = false;
	if (!c->waiting && c->state != CONN_CLOSING)
		conn_idle_timer(c);
	conn_watch_after_request(c);
}

/* No upload bytes for request_timeout while the handler had room. */
static void
conn_upload_timeout(struct xz_conn *c)
{
	if (request_upload_room(&c->req) == 0)
		return; /* the handler is slow, not the client */
	log_warnx("conn %u: upload dropped: %zu of %zu bytes within %gs", c->id,
	    c->req.upload_in, c->req.url.size, c->cfg->request_timeout);
	conn_close(c, "upload timeout");
}

/*
 * The request line is read: parse, apply the server's own rules, then
 * hand it to the app.
 */
static void
conn_start_request(struct xz_conn *c, size_t urllen)
{
	struct xz_request *req = &c->req;
	const struct site *site;
	const char *why = NULL;
	int rc;

	event_del(c->ev_timer);
	request_init(req, &conn_carrier, c, c->base);
	c->has_request = true;
	conn_set_state(c, CONN_HANDLER);
	rc = url_parse(&req->url, c->line, urllen, &why);
	if (rc != 0) {
		/* Keep the raw bytes for the log even when they are bad. */
		req->url.raw = strndup(c->line, urllen);
		log_warnx("conn %u: bad request: %s", c->id,
		    rc < 0 ? "out of memory" : why);
		conn_answer(c, rc < 0 ? 40 : 59,
		    rc < 0 ? "Server busy" : "Bad request");
		return;
	}
	/* Behind a proxy, URLs name the proxy's port (public_port). */
	if ((strcmp(req->url.scheme, "gemini") != 0 && !req->url.titan) ||
	    (site = conn_site(c, req->url.host)) == NULL ||
	    (req->url.port != -1 &&
	        req->url.port != (c->cfg->public_port > 0 ?
	                                 c->cfg->public_port :
	                                 c->cfg->port))) {
		conn_answer(c, 53, "Proxy request refused");
		return;
	}
	if (req->url.path[0] == '\0') {
		char *to = NULL;

		if (asprintf(&to, "/%s%s", req->url.query ? "?" : "",
		        req->url.query ? req->url.query : "") == -1)
			to = NULL;
		conn_answer(c, 31, to != NULL ? to : "/");
		free(to);
		return;
	}
	conn_fill_request(c);
	app_dispatch(site->app, req);
	if (req->upload_admitted && c->state == CONN_HANDLER)
		conn_start_upload(c, urllen + 2);
}

/* After the request line, a readable socket means the client left. */
static void
conn_watch_after_request(struct xz_conn *c)
{
	if (c->state == CONN_HANDLER || c->state == CONN_FLUSH)
		event_add(c->ev_read, NULL);
}

/* Looks for CRLF in what has come; a bare LF is not a line end. */
static void
conn_scan_line(struct xz_conn *c)
{
	char *lf;

	if (c->linelen >= 2 &&
	    (lf = memmem(c->line, c->linelen, "\r\n", 2)) != NULL) {
		conn_start_request(c, (size_t)(lf - c->line));
		return;
	}
	if (c->linelen == sizeof(c->line)) {
		c->has_request = true;
		request_init(&c->req, &conn_carrier, c, c->base);
		c->req.url.raw = strdup("(over 1024 bytes)");
		log_warnx("conn %u: request line over %d bytes", c->id,
		    XZ_MAX_URL);
		conn_set_state(c, CONN_HANDLER);
		event_del(c->ev_timer);
		conn_answer(c, 59, "Request line too long");
	}
}

static void
conn_read_request(struct xz_conn *c)
{
	ssize_t n;

	while (c->state == CONN_READ_REQUEST) {
		n = c->io->read(c->t, c->line + c->linelen,
		    sizeof(c->line) - c->linelen);
		if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
			conn_want(c, (int)n);
			return;
		}
		if (n <= 0) {
			conn_close(c, n == TLS_EOF ?
			                  "client closed before its request" :
			                  conn_io_error(c, "read error"));
			return;
		}
		c->linelen += (size_t)n;
		conn_scan_line(c);
	}
	conn_watch_after_request(c);
}

static void
conn_handshake(struct xz_conn *c)
{
	int rc = c->io->handshake(c->t);

	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
		conn_want(c, rc);
		return;
	}
	if (rc != TLS_DONE) {
		conn_close(c, conn_io_error(c, "handshake failed"));
		return;
	}
	conn_set_state(c, CONN_READ_REQUEST);
	conn_read_request(c);
}

/*
 * A connection without a valid PROXY header is closed with nothing
 * written (the proxy, or whoever it is, gets no answer to misread), and
 * logged once with its first 64 bytes: as text (the log escapes it)
 * when they are printable, else in hex (a v2 header, TLS).
 */
static void
conn_proxy_refuse(struct xz_conn *c, const char *why, size_t have)
{
	char shown[64 * 2 + 1];
	size_t n = have < 64 ? have : 64, i;
	bool text = true;

	for (i = 0; i < n; i++)
		if (c->line[i] < 0x20 && c->line[i] != '\r' &&
		    c->line[i] != '\n')
			text = false;
	if (text)
		snprintf(shown, sizeof(shown), "\"%.*s\"", (int)n, c->line);
	for (i = 0; !text && i < n; i++)
		snprintf(shown + 2 * i, 3, "%02x", (unsigned char)c->line[i]);
	if (n == 0)
		shown[0] = '\0';
	log_warnx("conn %u: from %s: bad PROXY header: %s (%zu byte%s%s%s%s)",
	    c->id, c->addr, why, have, have == 1 ? "" : "s", n > 0 ? ": " : "",
	    shown, have > n ? "..." : "");
	conn_close(c, "bad PROXY header");
}

/*
 * The header is read: its client is the connection's from now on (the
 * per-address limit, the logs, REMOTE_ADDR, rate limits); a header that
 * names none (v2 LOCAL, a health check; v1 UNKNOWN) leaves the peer's.
 * Then TLS, whose first bytes may be in the socket already.
 */
static void
conn_proxied(struct xz_conn *c, const struct proxy_hdr *h)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	const struct sockaddr *client = (const struct sockaddr *)&h->src;

	if (h->family == AF_UNSPEC) {
		log_debug("conn %u: PROXY v%d %s: the peer stays the client",
		    c->id, h->version, h->local ? "LOCAL" : "without address");
		client = (const struct sockaddr *)&peer;
		/* A health check may be gone already (its reset): quietly. */
		if (getpeername(c->fd, (struct sockaddr *)&peer, &len) == -1) {
			conn_close(c, "client went away");
			return;
		}
	}
	if (c->cfg->proxied != NULL &&
	    !c->cfg->proxied(client, c->closed_arg)) {
		log_debug("conn %u: connection limit reached for the PROXY "
		          "header's address, dropped",
		    c->id);
		conn_close(c, "connection limit reached");
		return;
	}
	if (h->family != AF_UNSPEC) {
		log_debug("conn %u: PROXY v%d: %s is the proxy's", c->id,
		    h->version, c->addr);
		conn_format_addr(client, c->addr, sizeof(c->addr));
		c->port = conn_addr_port(client);
	}
	c->linelen = 0;
	conn_set_state(c, CONN_HANDSHAKE);
	conn_handshake(c);
}

/*
 * The PROXY header: peeked at, and only its own bytes taken from the
 * socket, so that what follows (the ClientHello, often in the same
 * segment) stays there for TLS. c->line keeps the bytes taken so far;
 * the parser says when they cannot begin a header. Every byte taken is
 * the header's, so a socket that stays readable always has new bytes.
 */
static void
conn_read_proxy(struct xz_conn *c)
{
	struct proxy_hdr h;
	const char *why = "";
	size_t take;
	ssize_t n;
	int rc;

	n = recv(c->fd, c->line + c->linelen, PROXY_MAX - c->linelen,
	    MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		event_add(c->ev_read, NULL);
		return;
	}
	if (n <= 0 && c->linelen == 0) {
		/* Connected and closed: a TCP health check, no warning. */
		conn_close(c, "closed before a PROXY header");
		return;
	}
	if (n <= 0) {
		conn_proxy_refuse(c, n == 0 ? "cut short" : strerror(errno),
		    c->linelen);
		return;
	}
	rc = proxy_parse(c->line, c->linelen + (size_t)n, c->cfg->proxy, &h,
	    &why);
	if (rc == XZ_EPARSE) {
		conn_proxy_refuse(c, why, c->linelen + (size_t)n);
		return;
	}
	take = rc == XZ_OK ? h.len - c->linelen : (size_t)n;
	if (recv(c->fd, c->line + c->linelen, take, MSG_DONTWAIT) !=
	    (ssize_t)take) {
		conn_close(c, "read error");
		return;
	}
	c->linelen += take;
	if (rc == XZ_OK)
		conn_proxied(c, &h);
	else
		event_add(c->ev_read, NULL);
}

/*
 * The client is done sending (a FIN, or a TLS close_notify) but may still
 * read: RFC 8446, 6.1 lets the other side go on writing, and so does TCP.
 * Stop reading (a socket at EOF is always readable) and answer anyway; a
 * reset or a failed write is what ends the connection.
 */
static void
conn_half_closed(struct xz_conn *c, const char *how)
{
	log_debug("conn %u: client half-closed (%s): still answering", c->id,
	    how);
	c->peer_done = true;
	event_del(c->ev_read);
	if (!c->waiting)
		conn_arm_timer(c, CONN_PROBE_SECONDS);
}

/*
 * A half-closed client is not read any more, so its reset comes to no
 * event: look for it (SO_ERROR) while no wait on the client, which would
 * see it in a failed write, runs the timer.
 */
static void
conn_probe(struct xz_conn *c)
{
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
	    err != 0) {
		conn_close(c, "client went away (reset)");
		return;
	}
	conn_arm_timer(c, CONN_PROBE_SECONDS);
}

/* No wait on the client: its timer only probes a half-closed one. */
static void
conn_idle_timer(struct xz_conn *c)
{
	if (c->uploading)
		conn_arm_timer(c, c->cfg->request_timeout);
	else if (c->peer_done)
		conn_arm_timer(c, CONN_PROBE_SECONDS);
	else
		event_del(c->ev_timer);
}

/*
 * While a handler works, a readable socket means the client sent bytes
 * Gemini has no use for (dropped), half-closed, or went away. A peek tells
 * a FIN from a reset before the transport sees either: GnuTLS takes a FIN
 * with no close_notify for a truncation (an error), not for a half-close.
 */
static void
conn_watch_client(struct xz_conn *c)
{
	char scratch[512];
	ssize_t n;

	n = recv(c->fd, scratch, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0) {
		conn_half_closed(c, "FIN");
		return;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		conn_close(c, "client went away (reset)");
		return;
	}
	n = c->io->read(c->t, scratch, sizeof(scratch));
	if (n > 0 || n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
		event_add(c->ev_read, NULL);
		return;
	}
	/*
	 * The peek saw bytes, so an end now is the transport's own: TLS's
	 * close_notify (plain bytes would have shown the FIN above).
	 */
	if (n == TLS_EOF) {
		conn_half_closed(c, "close_notify");
		return;
	}
	conn_close(c, conn_io_error(c, "client went away"));
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct xz_conn *c = arg;

	switch (c->state) {
	case CONN_PROXY:
		conn_read_proxy(c);
		break;
	case CONN_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_READ_REQUEST:
		conn_read_request(c);
		break;
	case CONN_HANDLER:
	case CONN_FLUSH:
		if (c->uploading)
			conn_read_upload(c);
		else
			conn_watch_client(c);
		break;
	case CONN_BYE:
		conn_flush(c);
		break;
	case CONN_LINGER:
		conn_linger_read(c);
		break;
	case CONN_CLOSING:
		break;
	}
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct xz_conn *c = arg;

	if (c->abort_reason != NULL) {
		conn_close(c, c->abort_reason);
		return;
	}
	switch (c->state) {
	case CONN_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_READ_REQUEST:
		conn_read_request(c);
		break;
	case CONN_HANDLER:
	case CONN_FLUSH:
	case CONN_BYE:
		conn_flush(c);
		break;
	case CONN_PROXY:
	case CONN_LINGER:
	case CONN_CLOSING:
		break;
	}
}

static double
conn_since(const struct timespec *from, const struct timespec *now)
{
	return (double)(now->tv_sec - from->tv_sec) +
	       (double)(now->tv_nsec - from->tv_nsec) / 1e9;
}

/*
 * What the client has taken: the bytes handed to the kernel less those it
 * still holds, unsent or unacknowledged (SIOCOUTQ; TLS framing makes this
 * a slight underestimate). The kernel's own buffer grows to megabytes on
 * loopback: counting what went into it would let a client that takes
 * nothing look busy, and one that reads steadily look idle.
 */
static size_t
conn_taken(const struct xz_conn *c)
{
	int queued = 0;

	if (ioctl(c->fd, SIOCOUTQ, &queued) == -1 || queued < 0)
		queued = 0;
	return (size_t)queued < c->bytes_sent ? c->bytes_sent - (size_t)queued :
	                                        0;
}

/* How often a wait on the client is looked at. */
static double
conn_check_interval(const struct xz_conn *c)
{
	double t = c->cfg->write_timeout / 4;

	return t < 1.0 ? t : 1.0;
}

/*
 * Output waits for the client: from now on it must take a byte at least
 * every write_timeout (nginx's send_timeout), and, with send_min_rate,
 * send_min_rate bytes a second over each write_timeout-long window.
 */
static void
conn_wait_client(struct xz_conn *c)
{
	if (c->waiting)
		return;
	c->waiting = true;
	clock_gettime(CLOCK_MONOTONIC, &c->progress_at);
	c->window_at = c->progress_at;
	c->taken = c->window_taken = conn_taken(c);
	conn_arm_timer(c, conn_check_interval(c));
}

/* A wait on the client, looked at: too idle, too slow, or later again. */
static void
conn_check_client(struct xz_conn *c)
{
	const struct conn_cfg *cfg = c->cfg;
	double limit = cfg->write_timeout, span;
	size_t taken = conn_taken(c);
	struct timespec now;

	if (evbuffer_get_length(c->out) == 0 && taken >= c->bytes_sent) {
		c->waiting = false; /* caught up: the handler is slower */
		conn_idle_timer(c);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (taken > c->taken) {
		c->taken = taken;
		c->progress_at = now;
	}
	if (conn_since(&c->progress_at, &now) >= limit) {
		conn_close(c, "client took no bytes (write timeout)");
		return;
	}
	span = conn_since(&c->window_at, &now);
	if (cfg->send_min_rate > 0 && span >= limit) {
		if ((double)(c->taken - c->window_taken) <
		    (double)cfg->send_min_rate * span) {
			conn_close(c, "client below send_min_rate");
			return;
		}
		c->window_at = now;
		c->window_taken = c->taken;
	}
	conn_arm_timer(c, conn_check_interval(c));
}

static void
conn_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct xz_conn *c = arg;

	switch (c->state) {
	case CONN_PROXY:
		conn_proxy_refuse(c, "no whole header within request_timeout",
		    c->linelen);
		break;
	case CONN_HANDSHAKE:
	case CONN_READ_REQUEST:
		conn_close(c, "request timeout");
		break;
	case CONN_LINGER:
		conn_close(c, NULL);
		break;
	default:
		if (c->uploading && !c->waiting)
			conn_upload_timeout(c);
		else if (c->waiting)
			conn_check_client(c);
		else
			conn_probe(c);
		break;
	}
}

/*
 * The answer is out and close_notify sent: send our FIN too, then read
 * (and drop) what the client still sends until it closes or
 * CONN_LINGER_SECONDS pass, so that nothing it sends late resets the
 * connection while the end of the response is still on its way (costs a
 * wake-up per connection: measured ~4 us). A client that half-closed sends
 * nothing more: close at once. Nothing of TLS is needed now.
 */
static void
conn_linger(struct xz_conn *c)
{
	conn_log_access(c, NULL);
	if (c->peer_done) {
		conn_close(c, NULL);
		return;
	}
	(void)shutdown(c->fd, SHUT_WR);
	conn_set_state(c, CONN_LINGER);
	c->io->close(c->t);
	c->t = NULL;
	event_del(c->ev_write);
	event_add(c->ev_read, NULL);
	conn_arm_timer(c, CONN_LINGER_SECONDS);
}

static void
conn_linger_read(struct xz_conn *c)
{
	char scratch[4096];
	ssize_t n;
	int i;

	/* A bounded number of reads a turn: a flooding client waits. */
	for (i = 0; i < 16; i++) {
		n = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		conn_close(c, NULL); /* the client closed (or reset) */
		return;
	}
	event_add(c->ev_read, NULL);
}

/* Sends close_notify, then lingers. */
static void
conn_bye(struct xz_conn *c)
{
	int rc;

	conn_set_state(c, CONN_BYE);
	rc = c->io->bye(c->t);
	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
		conn_want(c, rc);
		conn_wait_client(c);
		return;
	}
	if (rc != TLS_DONE) {
		conn_close(c, "close_notify failed");
		return;
	}
	conn_linger(c);
}

/*
 * Writes what is queued, a record at a time, until the socket is full or
 * the queue empty; then tells the handler (drain callback) or, when the
 * response is complete, says goodbye.
 */
static void
conn_flush(struct xz_conn *c)
{
	size_t len, n;
	ssize_t w;

	if (c->state == CONN_BYE) {
		conn_bye(c);
		return;
	}
	if (c->state == CONN_FLUSH && c->io->last != NULL)
		c->io->last(c->t);
	while ((len = evbuffer_get_length(c->out)) > 0) {
		n = len < CONN_RECORD ? len : CONN_RECORD;
		w = c->io->write(c->t, evbuffer_pullup(c->out, (ssize_t)n), n);
		if (w == TLS_WANT_WRITE || w == TLS_WANT_READ) {
			conn_want(c, (int)w);
			conn_wait_client(c);
			if (c->state == CONN_HANDLER)
				request_drained(&c->req, len);
			return;
		}
		if (w <= 0) {
			conn_close(c, conn_io_error(c, "write error"));
			return;
		}
		evbuffer_drain(c->out, (size_t)w);
		c->bytes_sent += (size_t)w;
	}
	/*
	 * Ours is empty, but the kernel's may still hold much: the wait on
	 * the client ends only once it has taken everything.
	 */
	if (c->waiting && conn_taken(c) >= c->bytes_sent)
		c->waiting = false;
	if (!c->waiting)
		conn_idle_timer(c);
	if (c->state == CONN_HANDLER) {
		request_drained(&c->req, 0);
		return;
	}
	if (c->state == CONN_FLUSH)
		conn_bye(c);
}
