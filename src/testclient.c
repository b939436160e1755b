/*
 * testclient.c - the in-process test client.
 *
 * It runs the app's real dispatch path (conn.c and all) on its own
 * event_base, with a socketpair in place of TCP and, in place of TLS, the
 * plain transport below (test_io), whose client certificate is a fake
 * hash. Backends the
 * app reaches (SCGI over TCP or a Unix socket, CGI processes) are real.
 * Startup hooks run when the client is made, shutdown hooks when it is
 * freed, as in the Python original's context manager.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xz_private.h"

struct xz_test_client {
	struct xz_app *app;
	struct event_base *base;
	struct conn_cfg cfg;
	struct site_set *sites; /* one: localhost, the app */
	char *cert_hash;
	double timeout;
};

/*
 * The plain transport: bytes as they are on the socket, errno turned into
 * the codes conn.c knows (enum tls_result), no handshake, and a client
 * certificate that is only a hash (xz_test_client_set_cert).
 */
struct test_io {
	int fd;
	char *cert_hash; /* NULL: no certificate */
	int err;         /* errno of the last failure */
};

/* ctx: the certificate hash (a string, copied), or NULL for none. */
static void *
test_io_open(void *ctx, int fd)
{
	const char *hash = ctx;
	struct test_io *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->fd = fd;
	if (hash != NULL && (t->cert_hash = strdup(hash)) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

static void
test_io_close(void *arg)
{
	struct test_io *t = arg;

	free(t->cert_hash);
	free(t);
}

static int
test_io_handshake(void *t)
{
	return TLS_DONE;
}

static ssize_t
test_io_read(void *arg, void *buf, size_t len)
{
	struct test_io *t = arg;
	ssize_t n = read(t->fd, buf, len);

	if (n > 0)
		return n;
	if (n == 0)
		return TLS_EOF;
	if (errno == EAGAIN || errno == EINTR)
		return TLS_WANT_READ;
	t->err = errno;
	return errno == ECONNRESET ? TLS_EOF : TLS_ERROR;
}

static ssize_t
test_io_write(void *arg, const void *buf, size_t len)
{
	struct test_io *t = arg;
	ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EINTR)
		return TLS_WANT_WRITE;
	t->err = errno;
	return TLS_ERROR;
}

/* No close_notify: the FIN says the response is complete. */
static int
test_io_bye(void *arg)
{
	struct test_io *t = arg;

	(void)shutdown(t->fd, SHUT_WR);
	return TLS_DONE;
}

static int
test_io_peer(void *arg, struct xz_request *req)
{
	struct test_io *t = arg;

	if (t->cert_hash != NULL) {
		req->cert.present = true;
		snprintf(req->cert.hash, sizeof(req->cert.hash), "%s",
		    t->cert_hash);
	}
	return XZ_OK;
}

static const char *
test_io_strerror(void *arg, const char *fallback)
{
	struct test_io *t = arg;

	return t->err != 0 ? strerror(t->err) : fallback;
}

const struct conn_io test_client_io = {
	.open = test_io_open,
	.close = test_io_close,
	.handshake = test_io_handshake,
	.read = test_io_read,
	.write = test_io_write,
	.bye = test_io_bye,
	.peer = test_io_peer,
	.strerror = test_io_strerror,
};

struct test_exchange {
	struct xz_test_client *tc;
	struct evbuffer *in;
	struct xz_conn *c;
	struct event *ev;
	struct event *ev_body; /* writes the upload body as room comes */
	const unsigned char *body;
	size_t body_len, body_sent;
	bool conn_closed, eof, timed_out;
};

struct xz_test_client *
xz_test_client_new(struct xz_app *app)
{
	struct xz_test_client *tc = calloc(1, sizeof(*tc));
	const char *why;

	if (tc == NULL)
		return NULL;
	tc->app = app;
	tc->timeout = 60;
	tc->cfg.io = &test_client_io;
	tc->cfg.port = 1965;
	tc->cfg.request_timeout = 60;
	tc->cfg.write_timeout = 60;
	if ((tc->sites = site_set_new()) == NULL ||
	    site_set_add(tc->sites, "localhost", app, NULL, &why, NULL, 0) !=
	        XZ_OK ||
	    (tc->base = event_base_new()) == NULL ||
	    app_startup(app) != XZ_OK) {
		if (tc->base != NULL)
			event_base_free(tc->base);
		site_set_free(tc->sites);
		free(tc);
		return NULL;
	}
	tc->cfg.sites = tc->sites;
	return tc;
}

void
xz_test_client_free(struct xz_test_client *tc)
{
	if (tc == NULL)
		return;
	app_shutdown(tc->app);
	event_base_free(tc->base);
	site_set_free(tc->sites);
	free(tc->cert_hash);
	free(tc);
}

int
xz_test_client_set_cert(struct xz_test_client *tc, const char *hash)
{
	free(tc->cert_hash);
	tc->cert_hash = NULL;
	if (hash != NULL && (tc->cert_hash = strdup(hash)) == NULL)
		return XZ_ENOMEM;
	return XZ_OK;
}

void
xz_test_client_set_timeout(struct xz_test_client *tc, double seconds)
{
	tc->timeout = seconds > 0 ? seconds : 60;
}

struct event_base *
xz_test_client_base(const struct xz_test_client *tc)
{
	return tc->base;
}

static void
test_conn_closed(struct xz_conn *c, void *arg)
{
	struct test_exchange *x = arg;

	x->conn_closed = true;
	x->c = NULL;
}

static void
test_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct test_exchange *x = arg;
	int n;

	if (what & EV_TIMEOUT) {
		x->timed_out = true;
		return;
	}
	n = evbuffer_read(x->in, fd, 65536);
	if (n <= 0 && !(n == -1 && errno == EAGAIN))
		x->eof = true;
}

/* "text/gemini; charset=utf-8" -> "text/gemini" ("" stays ""). */
static char *
test_mime_type(const char *meta)
{
	size_t len = strcspn(meta, ";");

	while (len > 0 && (meta[len - 1] == ' ' || meta[len - 1] == '\t'))
		len--;
	return strndup(meta, len);
}

/* Splits "20 text/gemini\r\nbody" into a response. */
static struct xz_test_response *
test_parse(struct evbuffer *in, bool timed_out)
{
	struct xz_test_response *r = calloc(1, sizeof(*r));
	size_t len = evbuffer_get_length(in), hlen;
	char *all, *crlf;

	if (r == NULL)
		return NULL;
	all = (char *)evbuffer_pullup(in, -1);
	crlf = all != NULL ? memmem(all, len, "\r\n", 2) : NULL;
	if (timed_out || crlf == NULL || crlf - all < 2) {
		r->meta = strdup(
		    timed_out ? "test client timeout" : "no response header");
		return r;
	}
	hlen = (size_t)(crlf - all);
	if (all[0] >= '0' && all[0] <= '9' && all[1] >= '0' && all[1] <= '9')
		r->status = (all[0] - '0') * 10 + (all[1] - '0');
	r->meta = strndup(all + (hlen > 2 ? 3 : 2), hlen > 2 ? hlen - 3 : 0);
	if (r->status / 10 == 2 && r->meta != NULL)
		r->mime_type = test_mime_type(r->meta);
	r->body_len = len - hlen - 2;
	if ((r->body = malloc(r->body_len + 1)) != NULL) {
		memcpy(r->body, crlf + 2, r->body_len);
		r->body[r->body_len] = '\0';
	}
	return r;
}

/* The upload body, a socket buffer at a time, as the server reads it. */
static void
test_on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct test_exchange *x = arg;
	ssize_t n;

	n = send(fd, x->body + x->body_sent, x->body_len - x->body_sent,
	    MSG_NOSIGNAL);
	if (n > 0)
		x->body_sent += (size_t)n;
	else if (n == -1 && errno != EAGAIN && errno != EINTR)
		x->body_sent = x->body_len; /* the server closed: stop */
	if (x->body_sent == x->body_len)
		event_del(x->ev_body);
}

/*
 * Runs one exchange: the line goes in, then body (len bytes, may be
 * NULL) as the server takes it; the loop runs until both ends close.
 */
static struct xz_test_response *
test_exchange(struct xz_test_client *tc, const char *line, const void *body,
    size_t len)
{
	struct test_exchange x = { .tc = tc, .body = body, .body_len = len };
	struct xz_test_response *r = NULL;
	struct timeval tv;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		return NULL;
	x.in = evbuffer_new();
	tc->cfg.io_ctx = tc->cert_hash; /* read once, by conn_new */
	x.c = conn_new(tc->base, sv[0], &tc->cfg, NULL, test_conn_closed, &x);
	if (x.in == NULL || x.c == NULL) {
		close(sv[1]);
		goto out;
	}
	if (write(sv[1], line, strlen(line)) != (ssize_t)strlen(line) ||
	    write(sv[1], "\r\n", 2) != 2 ||
	    evutil_make_socket_nonblocking(sv[1]) == -1) {
		conn_close(x.c, "test client write failed");
		close(sv[1]);
		goto out;
	}
	x.ev =
	    event_new(tc->base, sv[1], EV_READ | EV_PERSIST, test_on_read, &x);
	x.ev_body = event_new(tc->base, sv[1], EV_WRITE | EV_PERSIST,
	    test_on_writable, &x);
	if (x.ev == NULL || x.ev_body == NULL) {
		conn_close(x.c, "test client out of memory");
		x.eof = true;
	}
	tv = xz_timeval(tc->timeout);
	if (x.ev != NULL)
		event_add(x.ev, &tv);
	if (x.ev_body != NULL && len > 0)
		event_add(x.ev_body, NULL);
	while (!x.eof && !x.timed_out)
		event_base_loop(tc->base, EVLOOP_ONCE);
	if (x.ev != NULL)
		event_free(x.ev);
	if (x.ev_body != NULL)
		event_free(x.ev_body);
	close(sv[1]);
	/* The server side may still hold the conn (e.g. a timeout). */
	if (!x.conn_closed && x.c != NULL)
		conn_close(x.c, "test client done");
	r = test_parse(x.in, x.timed_out);
out:
	if (x.in != NULL)
		evbuffer_free(x.in);
	return r;
}

struct xz_test_response *
xz_test_request(struct xz_test_client *tc, const char *line)
{
	return test_exchange(tc, line, NULL, 0);
}

static char *
test_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;
	const unsigned char *p;

	if (out == NULL)
		return NULL;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL) {
			*o++ = (char)*p;
			continue;
		}
		*o++ = '%';
		*o++ = hex[*p >> 4];
		*o++ = hex[*p & 15];
	}
	*o = '\0';
	return out;
}

struct xz_test_response *
xz_test_get_query(struct xz_test_client *tc, const char *path,
    const char *query)
{
	struct xz_test_response *r;
	char *line = NULL, *q = NULL;

	if (query != NULL && (q = test_encode(query)) == NULL)
		return NULL;
	if (asprintf(&line, "gemini://localhost%s%s%s", path, q ? "?" : "",
	        q ? q : "") == -1)
		line = NULL;
	free(q);
	if (line == NULL)
		return NULL;
	r = xz_test_request(tc, line);
	free(line);
	return r;
}

struct xz_test_response *
xz_test_get(struct xz_test_client *tc, const char *path)
{
	return xz_test_get_query(tc, path, NULL);
}

struct xz_test_response *
xz_test_upload(struct xz_test_client *tc, const char *path, const void *data,
    size_t len, const char *mime, const char *token)
{
	struct xz_test_response *r;
	char *line = NULL, *m = NULL, *t = NULL;

	if ((mime != NULL && (m = test_encode(mime)) == NULL) ||
	    (token != NULL && (t = test_encode(token)) == NULL) ||
	    asprintf(&line, "titan://localhost%s;size=%zu%s%s%s%s", path, len,
	        m ? ";mime=" : "", m ? m : "", t ? ";token=" : "",
	        t ? t : "") == -1)
		line = NULL;
	free(m);
	free(t);
	if (line == NULL)
		return NULL;
	r = test_exchange(tc, line, data, len);
	free(line);
	return r;
}

void
xz_test_response_free(struct xz_test_response *r)
{
	if (r == NULL)
		return;
	free(r->meta);
	free(r->body);
	free(r->mime_type);
	free(r);
}

bool
xz_test_is_success(const struct xz_test_response *r)
{
	return r->status >= 20 && r->status <= 29;
}

bool
xz_test_is_input_required(const struct xz_test_response *r)
{
	return r->status >= 10 && r->status <= 19;
}

bool
xz_test_is_redirect(const struct xz_test_response *r)
{
	return r->status >= 30 && r->status <= 39;
}

bool
xz_test_is_error(const struct xz_test_response *r)
{
	return r->status >= 40 && r->status <= 69;
}

bool
xz_test_is_certificate_required(const struct xz_test_response *r)
{
	return r->status >= 60 && r->status <= 69;
}

const char *
xz_test_redirect_url(const struct xz_test_response *r)
{
	return xz_test_is_redirect(r) ? r->meta : NULL;
}

const char *
xz_test_input_prompt(const struct xz_test_response *r)
{
	return xz_test_is_input_required(r) ? r->meta : NULL;
}
