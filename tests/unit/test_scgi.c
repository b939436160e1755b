/*
 * test_scgi.c - the SCGI handler through the in-process test client,
 * against real backends: a mock SCGI server listening on loopback or a
 * Unix socket, run on the test client's own event loop (it serves while
 * the client waits for its answer). Every row of the error table, the
 * three answer shapes, the size limit at and past its edge, streaming,
 * registration errors, and the request the backend received, decoded
 * strictly here rather than by the code under test.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "xz_private.h"
#include "scgi_pairs.h"

/* What the mock backend does once it has read a whole request. */
enum mock_mode {
	MOCK_ANSWER, /* writes answer, then closes */
	MOCK_SILENT, /* says nothing and keeps the connection open */
	MOCK_STREAM, /* writes a header, then stream_len patterned bytes */
};

struct mock_conn;

struct mock {
	struct evconnlistener *lev;
	enum mock_mode mode;
	const char *answer;
	size_t answer_len;
	size_t stream_len;
	int port;
	char path[108];           /* a Unix socket, or "" */
	struct evbuffer *request; /* the bytes of the last request */
	int connections;
	int eofs; /* connections the server side closed first */
	LIST_HEAD(, mock_conn) conns; /* still open: freed by mock_free */
};

struct mock_conn {
	struct mock *m;
	struct bufferevent *bev;
	bool answered;
	size_t streamed;
	LIST_ENTRY(mock_conn) entry;
};

/* Byte i of a streamed body: a pattern a shifted copy would break. */
static unsigned char
pattern(size_t i)
{
	return (unsigned char)((i * 7 + i / 251) & 0xff);
}

static void
mock_conn_free(struct mock_conn *mc)
{
	LIST_REMOVE(mc, entry);
	bufferevent_free(mc->bev);
	free(mc);
}

/*
 * True once in holds one whole netstring: "len:" + len bytes + ",".
 * Strictness is left to decode_request(); this only frames.
 */
static bool
request_complete(struct evbuffer *in)
{
	size_t len = evbuffer_get_length(in), n = 0, i;
	const char *p = (const char *)evbuffer_pullup(in, -1);

	for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++)
		n = n * 10 + (size_t)(p[i] - '0');
	return i < len && p[i] == ':' && len >= i + 1 + n + 1;
}

static void
mock_stream_more(struct mock_conn *mc)
{
	struct evbuffer *out = bufferevent_get_output(mc->bev);
	unsigned char chunk[16384];
	size_t n, i;

	while (mc->streamed < mc->m->stream_len &&
	       evbuffer_get_length(out) < 65536) {
		n = mc->m->stream_len - mc->streamed;
		n = n < sizeof(chunk) ? n : sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = pattern(mc->streamed + i);
		evbuffer_add(out, chunk, n);
		mc->streamed += n;
	}
}

/* Output drained: stream more, or close once all is out. */
static void
mock_on_write(struct bufferevent *bev, void *arg)
{
	struct mock_conn *mc = arg;

	if (!mc->answered)
		return;
	if (mc->m->mode == MOCK_STREAM && mc->streamed < mc->m->stream_len) {
		mock_stream_more(mc);
		return;
	}
	mock_conn_free(mc);
}

static void
mock_on_read(struct bufferevent *bev, void *arg)
{
	struct mock_conn *mc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);

	if (mc->answered || !request_complete(in))
		return;
	evbuffer_drain(mc->m->request, evbuffer_get_length(mc->m->request));
	evbuffer_add_buffer(mc->m->request, in);
	if (mc->m->mode == MOCK_SILENT)
		return;
	mc->answered = true;
	evbuffer_add(out, mc->m->answer, mc->m->answer_len);
	if (mc->m->mode == MOCK_STREAM)
		mock_stream_more(mc);
	if (evbuffer_get_length(out) == 0)
		mock_conn_free(mc); /* nothing to say: close at once */
}

static void
mock_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct mock_conn *mc = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		mc->m->eofs++;
		mock_conn_free(mc);
	}
}

static void
mock_on_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct mock *m = arg;
	struct mock_conn *mc = calloc(1, sizeof(*mc));

	cr_assert_not_null(mc);
	mc->m = m;
	mc->bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	cr_assert_not_null(mc->bev);
	bufferevent_setcb(mc->bev, mock_on_read, mock_on_write, mock_on_event,
	    mc);
	bufferevent_enable(mc->bev, EV_READ | EV_WRITE);
	LIST_INSERT_HEAD(&m->conns, mc, entry);
	m->connections++;
}

static struct mock *
mock_alloc(enum mock_mode mode, const char *answer)
{
	struct mock *m = calloc(1, sizeof(*m));

	cr_assert_not_null(m);
	m->mode = mode;
	m->answer = answer != NULL ? answer : "";
	m->answer_len = strlen(m->answer);
	m->request = evbuffer_new();
	cr_assert_not_null(m->request);
	return m;
}

/* A mock backend on 127.0.0.1 (a port of the kernel's choosing). */
static struct mock *
mock_tcp(struct xz_test_client *tc, enum mock_mode mode, const char *answer)
{
	struct mock *m = mock_alloc(mode, answer);
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	m->lev = evconnlistener_new_bind(xz_test_client_base(tc),
	    mock_on_accept, m, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	cr_assert_not_null(m->lev);
	cr_assert_eq(getsockname(evconnlistener_get_fd(m->lev),
	                 (struct sockaddr *)&sin, &len),
	    0);
	m->port = ntohs(sin.sin_port);
	return m;
}

/* A mock backend on a Unix socket in a new temporary directory. */
static struct mock *
mock_unix(struct xz_test_client *tc, enum mock_mode mode, const char *answer)
{
	struct mock *m = mock_alloc(mode, answer);
	struct sockaddr_un sun = { 0 };
	char dir[] = "/tmp/xz-scgi-XXXXXX";

	cr_assert_not_null(mkdtemp(dir));
	snprintf(m->path, sizeof(m->path), "%s/backend.sock", dir);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", m->path);
	m->lev = evconnlistener_new_bind(xz_test_client_base(tc),
	    mock_on_accept, m, LEV_OPT_CLOSE_ON_FREE, 16,
	    (struct sockaddr *)&sun, sizeof(sun));
	cr_assert_not_null(m->lev);
	return m;
}

/* Before xz_test_client_free(): the mock's events live on its loop. */
static void
mock_free(struct mock *m)
{
	char *slash;

	while (!LIST_EMPTY(&m->conns))
		mock_conn_free(LIST_FIRST(&m->conns));
	evconnlistener_free(m->lev);
	evbuffer_free(m->request);
	if (m->path[0] != '\0') {
		unlink(m->path);
		if ((slash = strrchr(m->path, '/')) != NULL) {
			*slash = '\0';
			rmdir(m->path);
		}
	}
	free(m);
}

/* Runs the loop briefly: lets the mock see what the server did last. */
static void
settle(struct xz_test_client *tc)
{
	struct timeval tv = { 0, 100000 };

	event_base_loopexit(xz_test_client_base(tc), &tv);
	event_base_dispatch(xz_test_client_base(tc));
}

/* An app with the test client made first, for a mock on its loop. */
static struct xz_test_client *
client(struct xz_app **app)
{
	struct xz_test_client *tc;

	*app = xz_app_new();
	cr_assert_not_null(*app);
	tc = xz_test_client_new(*app);
	cr_assert_not_null(tc);
	xz_test_client_set_timeout(tc, 20);
	return tc;
}

static void
mount_tcp(struct xz_app *app, const char *prefix, int port,
    const struct xz_backend_config *cfg)
{
	struct xz_scgi_opts o = { .host = "127.0.0.1", .port = port };

	if (cfg != NULL)
		o.config = *cfg;

	cr_assert_eq(xz_scgi(app, prefix, &o), XZ_OK, "%s", xz_app_error(app));
}

static struct xz_test_response *
get(struct xz_test_client *tc, const char *path)
{
	struct xz_test_response *r = xz_test_get(tc, path);

	cr_assert_not_null(r);
	return r;
}

static void
expect(struct xz_test_response *r, int status, const char *meta)
{
	cr_expect_eq(r->status, status, "status %d (%s), want %d (%s)",
	    r->status, r->meta, status, meta);
	cr_expect_str_eq(r->meta, meta);
}

/*
 * The document's "Test SCGI Integration", in C.
 */
Test(scgi, document_integration_example)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m =
	    mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\n# Mock Response\n");
	struct xz_test_response *r;

	mount_tcp(app, "/api", m->port, NULL);
	r = get(tc, "/api/test");
	cr_assert(xz_test_is_success(r), "%d %s", r->status, r->meta);
	cr_assert_not_null(strstr((char *)r->body, "Mock Response"));
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/*
 * The error table, row by row.
 */

Test(scgi_errors, refused)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);
	struct xz_test_response *r;
	int fd;

	/* Bound and not listening: the port is ours, and refuses. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	mount_tcp(app, "/api", ntohs(sin.sin_port), NULL);
	r = get(tc, "/api/x");
	expect(r, 43, "Failed to connect to SCGI backend");
	cr_expect_eq(r->body_len, 0);
	xz_test_response_free(r);
	xz_test_client_free(tc);
	close(fd);
	xz_app_free(app);
}

Test(scgi_errors, unix_socket_missing)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct xz_scgi_opts o = { .socket_path =
		                      "/nonexistent/xz/backend.sock" };
	struct xz_test_response *r;

	cr_assert_eq(xz_scgi(app, "/app", &o), XZ_OK);
	r = get(tc, "/app/");
	expect(r, 43, "Failed to connect to SCGI backend");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/*
 * A listener whose accept queue is full and that never accepts: the
 * kernel drops further SYNs, so a connect to it hangs in SYN_SENT. This
 * works offline, on loopback. The queue is filled with connects of our
 * own until one stays pending. Returns the listener; *fillers are closed
 * by the caller.
 */
static int
full_listener(int *port, int *fillers, size_t *nfillers, size_t max)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);
	struct pollfd pfd;
	int lfd, fd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	for (*nfillers = 0; *nfillers < max;) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		fillers[(*nfillers)++] = fd;
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			continue;
		cr_assert_eq(errno, EINPROGRESS);
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 300) == 0)
			return lfd; /* this one hangs: the queue is full */
	}
	cr_assert_fail("the accept queue never filled");
	return -1;
}

Test(scgi_errors, connect_timeout)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct xz_backend_config cfg;
	struct xz_test_response *r;
	int fillers[16], port, lfd;
	size_t n, i;

	lfd = full_listener(&port, fillers, &n, 16);
	xz_scgi_config_init(&cfg);
	cfg.timeout = 0.3;
	mount_tcp(app, "/api", port, &cfg);
	r = get(tc, "/api/x");
	expect(r, 43, "SCGI connection timeout");
	xz_test_response_free(r);
	for (i = 0; i < n; i++)
		close(fillers[i]);
	close(lfd);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi_errors, backend_silent_past_timeout)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_tcp(tc, MOCK_SILENT, NULL);
	struct xz_backend_config cfg;
	struct xz_test_response *r;

	xz_scgi_config_init(&cfg);
	cfg.timeout = 0.3;
	mount_tcp(app, "/api", m->port, &cfg);
	r = get(tc, "/api/slow");
	expect(r, 43, "SCGI backend timeout");
	xz_test_response_free(r);
	settle(tc);
	cr_expect_eq(m->eofs, 1, "the backend connection was closed");
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* An answer of exactly len bytes, header included. */
static char *
answer_of(size_t len)
{
	static const char head[] = "20 text/plain\r\n";
	char *a = malloc(len + 1);

	cr_assert_not_null(a);
	memcpy(a, head, sizeof(head) - 1);
	memset(a + sizeof(head) - 1, 'x', len - (sizeof(head) - 1));
	a[len] = '\0';
	return a;
}

static void
size_case(size_t limit, size_t len, int status, const char *meta)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	char *answer = answer_of(len);
	struct mock *m = mock_tcp(tc, MOCK_ANSWER, answer);
	struct xz_backend_config cfg;
	struct xz_test_response *r;

	xz_scgi_config_init(&cfg);
	cfg.max_response_size = limit;
	mount_tcp(app, "/api", m->port, &cfg);
	r = get(tc, "/api/big");
	expect(r, status, meta);
	if (status == 20)
		cr_expect_eq(r->body_len, len - strlen("20 text/plain\r\n"));
	else
		cr_expect_eq(r->body_len, 0);
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	free(answer);
	xz_app_free(app);
}

/* The limit counts every byte the backend sends, header included. */
Test(scgi_errors, size_limit_exactly)
{
	size_case(1000, 1000, 20, "text/plain");
}

Test(scgi_errors, size_limit_one_past)
{
	size_case(1000, 1001, 43, "SCGI response exceeds maximum size");
}

Test(scgi_errors, size_limit_default_is_one_mebibyte)
{
	size_case(1048576, 1048576, 20, "text/plain");
	size_case(1048576, 1048577, 43, "SCGI response exceeds maximum size");
}

static void
answer_case(size_t limit, const char *answer, int status, const char *meta,
    const char *body)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_tcp(tc, MOCK_ANSWER, answer);
	struct xz_backend_config cfg;
	struct xz_test_response *r;

	xz_scgi_config_init(&cfg);
	cfg.max_response_size = limit;
	mount_tcp(app, "/api", m->port, &cfg);
	r = get(tc, "/api/");
	cr_expect_eq(r->status, status, "answer \"%s\" (limit %zu): got %d %s",
	    answer, limit, r->status, r->meta);
	cr_expect_str_eq(r->meta, meta, "answer \"%s\"", answer);
	cr_expect_str_eq((char *)r->body, body, "answer \"%s\"", answer);
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

static const struct {
	const char *answer;
	int status;
	const char *meta;
	const char *body;
} answers[] = {
	/* the three shapes */
	{ "20 text/gemini\r\n# Gemini line\n", 20, "text/gemini",
	    "# Gemini line\n" },
	{ "Status: 20 text/gemini\r\nX-Powered-By: test\r\n\r\n# CGI\n", 20,
	    "text/gemini", "# CGI\n" },
	{ "Content-Type: text/plain\r\n\r\nplain", 20, "text/plain", "plain" },
	{ "GEMINI 20 text/gemini\r\n\r\n# NPH\n", 20, "text/gemini",
	    "# NPH\n" },
	/* bare LF, normalised */
	{ "20 text/gemini\n# LF\n", 20, "text/gemini", "# LF\n" },
	{ "Status: 20 text/gemini\n\n# CGI LF\n", 20, "text/gemini",
	    "# CGI LF\n" },
	/* the document's and the reference's vectors, verbatim */
	{ "30 gemini://example.com/new\r\n", 30, "gemini://example.com/new",
	    "" },
	{ "30 gemini://example.com/new-location\r\n", 30,
	    "gemini://example.com/new-location", "" },
	{ "10 Enter your name:\r\n", 10, "Enter your name:", "" },
	{ "51 Not found\r\n", 51, "Not found", "" },
	{ "20 text/gemini\r\n# Hello World", 20, "text/gemini",
	    "# Hello World" },
	/* malformed: never passed on */
	{ "", 43, "SCGI backend error", "" },
	{ "hello\r\n\r\n", 43, "SCGI backend error", "" },
	{ "2 text/gemini\r\n", 43, "SCGI backend error", "" },
	{ "99 text/gemini\r\n", 43, "SCGI backend error", "" },
	{ "20  text/gemini\r\n", 43, "SCGI backend error", "" },
	{ "20 text/gemini", 43, "SCGI backend error", "" },
	{ "20 text/gemini\rbody", 43, "SCGI backend error", "" },
	{ "30\r\n", 43, "SCGI backend error", "" },
	{ "X-Only: 1\r\n\r\n", 43, "SCGI backend error", "" },
};

/* Held (a size limit) and streamed (none): the same answers. */
Test(scgi, shapes_statuses_and_bad_headers)
{
	size_t i;

	for (i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		answer_case(1048576, answers[i].answer, answers[i].status,
		    answers[i].meta, answers[i].body);
		answer_case(0, answers[i].answer, answers[i].status,
		    answers[i].meta, answers[i].body);
	}
}

Test(scgi, meta_over_1024_bytes_is_a_backend_error)
{
	char answer[1100];

	snprintf(answer, sizeof(answer), "20 %01030d\r\n", 0);
	answer_case(0, answer, 43, "SCGI backend error", "");
	answer_case(1048576, answer, 43, "SCGI backend error", "");
}

/*
 * The document's handle_proxy_errors: a middleware after the handler sees
 * the 43 as an ordinary response.
 */
static int seen_status;
static char seen_meta[128];

static void
handle_proxy_errors(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 43) {
		seen_status = res->status;
		snprintf(seen_meta, sizeof(seen_meta), "%s", res->meta);
	}
}

Test(scgi, middleware_after_sees_the_43)
{
	static const struct xz_middleware mw = { NULL, handle_proxy_errors };
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct xz_test_response *r;
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	xz_middleware(app, &mw, NULL);
	mount_tcp(app, "/api", ntohs(sin.sin_port), NULL);
	r = get(tc, "/api/x");
	expect(r, 43, "Failed to connect to SCGI backend");
	cr_expect_eq(seen_status, 43);
	cr_expect_str_eq(seen_meta, "Failed to connect to SCGI backend");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	close(fd);
	xz_app_free(app);
}

/*
 * Registration errors, each with its message.
 */
static void
expect_refused(const struct xz_scgi_opts *o, const char *msg)
{
	struct xz_app *app = xz_app_new();

	cr_assert_eq(xz_scgi(app, "/api", o), XZ_EINVAL, "%s", msg);
	cr_expect_str_eq(xz_app_error(app), msg);
	xz_app_free(app);
}

/* The resolver's own words follow the prefix; they vary by libc. */
static void
expect_unresolvable(const struct xz_scgi_opts *o)
{
	static const char want[] =
	    "scgi /api: host nosuchhost.invalid does not resolve: ";
	struct xz_app *app = xz_app_new();

	cr_assert_eq(xz_scgi(app, "/api", o), XZ_EINVAL);
	cr_expect(strncmp(xz_app_error(app), want, strlen(want)) == 0, "%s",
	    xz_app_error(app));
	xz_app_free(app);
}

Test(scgi_register, bad_options)
{
	struct xz_scgi_opts both = { .host = "127.0.0.1",
		.port = 4000,
		.socket_path = "/tmp/x.sock" };
	struct xz_scgi_opts neither = { 0 };
	struct xz_scgi_opts no_port = { .host = "127.0.0.1" };
	struct xz_scgi_opts no_host = { .port = 4000 };
	struct xz_scgi_opts big_port = { .host = "127.0.0.1", .port = 65536 };
	struct xz_scgi_opts neg_port = { .host = "127.0.0.1", .port = -1 };
	struct xz_scgi_opts nowhere = { .host = "nosuchhost.invalid",
		.port = 4000 };
	struct xz_scgi_opts o = { .host = "127.0.0.1", .port = 4000 };

	expect_refused(&both,
	    "scgi /api: give host and port, or socket, not both");
	expect_refused(&neither, "scgi /api: give host and port, or socket");
	expect_refused(&no_port, "scgi /api: host given without port");
	expect_refused(&no_host, "scgi /api: port given without host");
	expect_refused(&big_port,
	    "scgi /api: port 65536 out of range 1..65535");
	expect_refused(&neg_port, "scgi /api: port -1 out of range 1..65535");
	o.timeout = -1;
	expect_refused(&o, "scgi /api: timeout must be greater than 0 (or 0: "
	                   "the default, 30)");
	o.timeout = 0;
	o.max_duration = -1;
	expect_refused(&o, "scgi /api: max_duration must be 0 (off) or more");
	expect_unresolvable(&nowhere);
}

Test(scgi_register, defaults_and_good_options)
{
	struct xz_backend_config cfg;
	struct xz_scgi_opts v6 = { .host = "::1", .port = 4000 };
	struct xz_scgi_opts v6b = { .host = "[::1]", .port = 4001 };
	struct xz_scgi_opts name = { .host = "localhost", .port = 4002 };
	struct xz_scgi_opts sock = { .socket_path = "/tmp/xz-app.sock" };
	struct xz_scgi_opts dup = { .host = "127.0.0.1", .port = 4000 };
	struct xz_app *app = xz_app_new();

	xz_scgi_config_init(&cfg);
	cr_expect(cfg.timeout == 30.0);
	cr_expect_eq(cfg.max_response_size, 1048576);
	cr_expect_eq(cfg.buffer_size, 8192);
	cr_expect(!cfg.no_inherit_environment);
	cr_expect_null(cfg.app_state_keys);
	cr_expect_eq(xz_scgi(app, "/v6", &v6), XZ_OK, "%s", xz_app_error(app));
	cr_expect_eq(xz_scgi(app, "/v6b", &v6b), XZ_OK, "%s",
	    xz_app_error(app));
	cr_expect_eq(xz_scgi(app, "/name", &name), XZ_OK, "%s",
	    xz_app_error(app));
	cr_expect_eq(xz_scgi(app, "/sock", &sock), XZ_OK);
	cr_expect_eq(xz_scgi(app, "/v6/", &dup), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app), "mount /v6: already mounted");
	cr_expect_null(xz_scgi_tcp("127.0.0.1", 0, NULL));
	cr_expect_null(xz_scgi_tcp(NULL, 4000, NULL));
	cr_expect_null(xz_scgi_unix(NULL, NULL));
	cr_expect_null(xz_scgi_unix("", NULL));
	xz_app_free(app);
}

/* The request the backend received, decoded strictly (scgi_pairs.h). */
static void
decode_request(struct evbuffer *req, struct pairs *p)
{
	size_t len = evbuffer_get_length(req);

	scgi_decode((const char *)evbuffer_pullup(req, -1), len, p);
}

static int
set_app_state(struct xz_app *app, void *arg)
{
	xz_state_set(app, "db_url", "postgres://localhost/mydb");
	xz_state_set(app, "api_key", "secret123");
	return XZ_OK;
}

/* The request a backend gets for line, with cfg, through a TCP mount. */
static void
request_for(const char *line, const struct xz_backend_config *cfg,
    const char *cert, struct pairs *p)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	struct mock *m;

	xz_on_startup(app, set_app_state, NULL);
	tc = xz_test_client_new(app);
	cr_assert_not_null(tc);
	if (cert != NULL)
		xz_test_client_set_cert(tc, cert);
	m = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	mount_tcp(app, "/api", m->port, cfg);
	r = xz_test_request(tc, line);
	cr_assert_not_null(r);
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	decode_request(m->request, p);
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi_request, the_variable_set)
{
	static const char *const keys[] = { "db_url", "api_key", "unset_key",
		NULL };
	struct xz_backend_config cfg;
	struct pairs p;

	xz_scgi_config_init(&cfg);
	cfg.app_state_keys = keys;
	request_for("gemini://localhost/api/users/123?search=hello%20world&x",
	    &cfg, NULL, &p);
	cr_expect_str_eq(pairs_get(&p, "GATEWAY_INTERFACE"), "CGI/1.1");
	cr_expect_str_eq(pairs_get(&p, "SERVER_PROTOCOL"), "GEMINI");
	cr_expect_str_eq(pairs_get(&p, "SERVER_SOFTWARE"),
	    "xitzin/" XITZIN_VERSION);
	cr_expect_str_eq(pairs_get(&p, "SERVER_NAME"), "localhost");
	cr_expect_str_eq(pairs_get(&p, "SERVER_PORT"), "1965");
	cr_expect_str_eq(pairs_get(&p, "SCRIPT_NAME"), "/api");
	cr_expect_str_eq(pairs_get(&p, "PATH_INFO"), "/users/123");
	cr_expect_str_eq(pairs_get(&p, "QUERY_STRING"),
	    "search=hello%20world&x");
	cr_expect_str_eq(pairs_get(&p, "GEMINI_URL"),
	    "gemini://localhost/api/users/123?search=hello%20world&x");
	cr_expect_not_null(pairs_get(&p, "REMOTE_ADDR"));
	cr_expect_str_eq(pairs_get(&p, "TLS_CLIENT_AUTHORISED"), "0");
	cr_expect_null(pairs_get(&p, "TLS_CLIENT_HASH"));
	cr_expect_null(pairs_get(&p, "AUTH_TYPE"));
	cr_expect_null(pairs_get(&p, "REMOTE_USER"));
	cr_expect_str_eq(pairs_get(&p, "XITZIN_DB_URL"),
	    "postgres://localhost/mydb");
	cr_expect_str_eq(pairs_get(&p, "XITZIN_API_KEY"), "secret123");
	cr_expect_null(pairs_get(&p, "XITZIN_UNSET_KEY"));
	pairs_free(&p);
}

Test(scgi_request, decoded_path_info_and_the_mount_itself)
{
	struct pairs p;

	request_for("gemini://localhost/api/caf%C3%A9/a%2Fb", NULL, NULL, &p);
	cr_expect_str_eq(pairs_get(&p, "PATH_INFO"), "/café/a/b");
	cr_expect_str_eq(pairs_get(&p, "SCRIPT_NAME"), "/api");
	cr_expect_null(pairs_get(&p, "QUERY_STRING"), "empty: left out");
	pairs_free(&p);
	request_for("gemini://localhost/api", NULL, NULL, &p);
	cr_expect_null(pairs_get(&p, "PATH_INFO"),
	    "\"\" for the mount: left out");
	cr_expect_str_eq(pairs_get(&p, "SCRIPT_NAME"), "/api");
	pairs_free(&p);
	request_for("gemini://localhost/api/", NULL, NULL, &p);
	cr_expect_str_eq(pairs_get(&p, "PATH_INFO"), "/");
	pairs_free(&p);
}

Test(scgi_request, client_certificate)
{
	static const char hash[] = "SHA256:"
	                           "0123456789abcdef0123456789abcdef"
	                           "0123456789abcdef0123456789abcdef";
	struct pairs p;

	request_for("gemini://localhost/api/me", NULL, hash, &p);
	cr_expect_str_eq(pairs_get(&p, "TLS_CLIENT_AUTHORISED"), "1");
	cr_expect_str_eq(pairs_get(&p, "TLS_CLIENT_HASH"), hash);
	cr_expect_str_eq(pairs_get(&p, "AUTH_TYPE"), "CERTIFICATE");
	pairs_free(&p);
}

Test(scgi_request, inherit_environment)
{
	struct xz_backend_config cfg;
	struct pairs p;

	setenv("XZ_TEST_INHERITED", "from-the-parent", 1);
	setenv("REMOTE_USER", "mallory", 1); /* never overrides the request */
	request_for("gemini://localhost/api/", NULL, NULL, &p);
	cr_expect_str_eq(pairs_get(&p, "XZ_TEST_INHERITED"), "from-the-parent");
	cr_expect_null(pairs_get(&p, "REMOTE_USER"));
	pairs_free(&p);
	xz_scgi_config_init(&cfg);
	cfg.no_inherit_environment = true;
	request_for("gemini://localhost/api/", &cfg, NULL, &p);
	cr_expect_null(pairs_get(&p, "XZ_TEST_INHERITED"));
	cr_expect_null(pairs_get(&p, "PATH"));
	pairs_free(&p);
}

/* The keys are copied at registration: the caller's array may go. */
Test(scgi_request, state_keys_are_copied)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	struct xz_backend_config cfg;
	struct mock *m;
	struct pairs p;
	char *key = strdup("db_url");
	const char **keys = calloc(2, sizeof(char *));

	xz_on_startup(app, set_app_state, NULL);
	tc = xz_test_client_new(app);
	m = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	keys[0] = key;
	xz_scgi_config_init(&cfg);
	cfg.app_state_keys = keys;
	mount_tcp(app, "/api", m->port, &cfg);
	free(key);
	free(keys);
	r = get(tc, "/api/");
	cr_assert_eq(r->status, 20);
	decode_request(m->request, &p);
	cr_expect_str_eq(pairs_get(&p, "XITZIN_DB_URL"),
	    "postgres://localhost/mydb");
	pairs_free(&p);
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/*
 * Transports and streaming.
 */
Test(scgi, unix_socket_backend)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m =
	    mock_unix(tc, MOCK_ANSWER, "20 text/gemini\r\n# Over a socket\n");
	struct xz_scgi_opts o = { .socket_path = m->path };
	struct xz_test_response *r;
	struct pairs p;

	cr_assert_eq(xz_scgi(app, "/app", &o), XZ_OK, "%s", xz_app_error(app));
	r = get(tc, "/app/page?q=1");
	expect(r, 20, "text/gemini");
	cr_expect_str_eq((char *)r->body, "# Over a socket\n");
	decode_request(m->request, &p);
	cr_expect_str_eq(pairs_get(&p, "SCRIPT_NAME"), "/app");
	cr_expect_str_eq(pairs_get(&p, "PATH_INFO"), "/page");
	cr_expect_str_eq(pairs_get(&p, "QUERY_STRING"), "q=1");
	pairs_free(&p);
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* SCGIHandler / SCGIApp + app.mount: the explicit handlers. */
Test(scgi, explicit_handlers_and_mount)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *t = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\ntcp");
	struct mock *u = mock_unix(tc, MOCK_ANSWER, "20 text/gemini\r\nunix");
	struct xz_backend_config cfg;
	struct xz_test_response *r;

	xz_scgi_config_init(&cfg);
	cfg.timeout = 60.0;
	cfg.max_response_size = 10 * 1024 * 1024;
	cr_assert_eq(
	    xz_mount(app, "/api", xz_scgi_tcp("127.0.0.1", t->port, &cfg)),
	    XZ_OK);
	cr_assert_eq(xz_mount(app, "/app", xz_scgi_unix(u->path, &cfg)), XZ_OK);
	r = get(tc, "/api/x");
	cr_expect_str_eq((char *)r->body, "tcp");
	xz_test_response_free(r);
	r = get(tc, "/app/x");
	cr_expect_str_eq((char *)r->body, "unix");
	xz_test_response_free(r);
	mock_free(t);
	mock_free(u);
	xz_test_client_free(tc);
	xz_app_free(app);
}

static void
stream_case(size_t len, size_t buffer_size)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m =
	    mock_tcp(tc, MOCK_STREAM, "20 application/octet-stream\r\n");
	struct xz_backend_config cfg;
	struct xz_test_response *r;
	size_t i, bad = 0;

	m->stream_len = len;
	xz_scgi_config_init(&cfg);
	cfg.max_response_size = XZ_UNLIMITED;
	cfg.buffer_size = buffer_size;
	mount_tcp(app, "/api", m->port, &cfg);
	r = get(tc, "/api/big");
	expect(r, 20, "application/octet-stream");
	cr_assert_eq(r->body_len, len);
	for (i = 0; i < len; i++)
		bad += r->body[i] != pattern(i);
	cr_expect_eq(bad, 0, "%zu bytes differ", bad);
	xz_test_response_free(r);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi, unlimited_streaming_keeps_every_byte)
{
	stream_case(8 * 1024 * 1024 + 3, 8192);
	stream_case(100000, 1); /* one byte per read still adds up */
}

/*
 * A middleware answers instead of the backend (xz_request_replace):
 * a held answer's body and a streamed one's are both dropped, and the
 * streamed one's backend connection is closed (the relay is cancelled)
 * rather than read to its end.
 */
static int
instead_page(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "instead\n");
}

static void
instead_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 20)
		cr_assert_eq(xz_request_replace(req, instead_page, NULL),
		    XZ_OK);
}

static void
instead_case(enum mock_mode mode, const char *answer, size_t stream_len,
    size_t max_response_size)
{
	static const struct xz_middleware mw = { NULL, instead_after };
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_tcp(tc, mode, answer);
	struct xz_backend_config cfg = { .max_response_size =
		                             max_response_size };
	struct xz_test_response *r;

	m->stream_len = stream_len;
	cr_assert_eq(xz_middleware(app, &mw, NULL), XZ_OK);
	mount_tcp(app, "/api", m->port, &cfg);
	r = get(tc, "/api/x");
	expect(r, 20, "text/gemini");
	cr_expect_str_eq((char *)r->body, "instead\n");
	xz_test_response_free(r);
	settle(tc);
	cr_expect_eq(m->connections, 1);
	if (mode == MOCK_STREAM)
		cr_expect_eq(m->eofs, 1,
		    "the backend saw its connection close");
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi, middleware_answers_instead)
{
	instead_case(MOCK_ANSWER, "20 text/plain\r\nheld body\n", 0, 0);
	instead_case(MOCK_STREAM, "20 application/octet-stream\r\n",
	    64 * 1024 * 1024, XZ_UNLIMITED);
}

/* The client leaves: the backend connection is closed at once. */
Test(scgi, client_gone_closes_the_backend)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_tcp(tc, MOCK_SILENT, NULL);
	struct xz_test_response *r;

	mount_tcp(app, "/api", m->port, NULL); /* timeout 30 s */
	xz_test_client_set_timeout(tc, 0.3);
	r = get(tc, "/api/x");
	cr_expect_eq(r->status, 0, "the test client gave up first");
	xz_test_response_free(r);
	settle(tc);
	cr_expect_eq(m->connections, 1);
	cr_expect_eq(m->eofs, 1, "the backend saw its connection close");
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* The client leaves while the connect is still under way. */
Test(scgi, client_gone_while_connecting)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct xz_test_response *r;
	int fillers[16], port, lfd;
	size_t n, i;

	lfd = full_listener(&port, fillers, &n, 16);
	mount_tcp(app, "/api", port, NULL);
	xz_test_client_set_timeout(tc, 0.3);
	r = get(tc, "/api/x");
	cr_expect_eq(r->status, 0);
	xz_test_response_free(r);
	for (i = 0; i < n; i++)
		close(fillers[i]);
	close(lfd);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* Requests one after another reuse nothing: each gets its own trip. */
Test(scgi, many_requests_in_a_row)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	struct xz_test_response *r;
	int i;

	mount_tcp(app, "/api", m->port, NULL);
	for (i = 0; i < 50; i++) {
		r = get(tc, "/api/n");
		cr_assert_eq(r->status, 20);
		xz_test_response_free(r);
	}
	cr_expect_eq(m->connections, 50);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/*
 * Pools: failover before any byte reached the client.
 */

/* A TCP port bound and not listening: it refuses (fd kept by caller). */
static int
refusing_port(int *fd)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);

	*fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(*fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void
mount_pool(struct xz_app *app, const char *a, const char *b,
    const struct xz_pool_config *pc, double timeout)
{
	const char *list[] = { a, b, NULL };
	struct xz_scgi_opts o = { .backends = list, .timeout = timeout };

	if (pc != NULL)
		o.pool = *pc;
	cr_assert_eq(xz_scgi(app, "/api", &o), XZ_OK, "%s", xz_app_error(app));
}

Test(scgi_pool, a_refused_backend_fails_over_then_rests)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_unix(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	struct xz_test_response *r;
	char dead[64], live[160];
	int fd, i;

	snprintf(dead, sizeof(dead), "127.0.0.1:%d", refusing_port(&fd));
	snprintf(live, sizeof(live), "unix:%s", m->path);
	mount_pool(app, dead, live, NULL, 0);
	/* Whichever goes first, every request is answered by the live one;
	 * after the first refusal the dead one rests: no second try. */
	for (i = 0; i < 6; i++) {
		r = get(tc, "/api/x");
		expect(r, 20, "text/gemini");
		xz_test_response_free(r);
	}
	cr_expect_eq(m->connections, 6);
	mock_free(m);
	xz_test_client_free(tc);
	close(fd);
	xz_app_free(app);
}

Test(scgi_pool, every_backend_down_is_failed_to_connect)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct xz_test_response *r;
	char a[64], b[64];
	int fa, fb, i;

	snprintf(a, sizeof(a), "127.0.0.1:%d", refusing_port(&fa));
	snprintf(b, sizeof(b), "127.0.0.1:%d", refusing_port(&fb));
	mount_pool(app, a, b, NULL, 0);
	for (i = 0; i < 3; i++) { /* tried, then both resting */
		r = get(tc, "/api/x");
		expect(r, 43, "Failed to connect to SCGI backend");
		xz_test_response_free(r);
	}
	xz_test_client_free(tc);
	close(fa);
	close(fb);
	xz_app_free(app);
}

Test(scgi_pool, a_hanging_connect_fails_over_after_connect_timeout)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	struct mock *m = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	struct xz_pool_config pc = { .connect_timeout = 0.3,
		.balance = XZ_ROUND_ROBIN };
	struct xz_test_response *r;
	int fillers[16], port, lfd, i;
	char hang[64], live[64];
	size_t n, k;

	lfd = full_listener(&port, fillers, &n, 16);
	snprintf(hang, sizeof(hang), "127.0.0.1:%d", port);
	snprintf(live, sizeof(live), "127.0.0.1:%d", m->port);
	/* timeout 20: only connect_timeout can have ended the wait. */
	mount_pool(app, hang, live, &pc, 20);
	for (i = 0; i < 2; i++) {
		r = get(tc, "/api/x");
		expect(r, 20, "text/gemini");
		xz_test_response_free(r);
	}
	cr_expect_eq(m->connections, 2);
	mock_free(m);
	for (k = 0; k < n; k++)
		close(fillers[k]);
	close(lfd);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi_pool, closed_without_a_word_goes_to_the_next)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	/* Reads the request, then closes without answering. */
	struct mock *mute = mock_tcp(tc, MOCK_ANSWER, "");
	struct mock *m = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	struct xz_pool_config pc = { .max_fails = -1 };
	struct xz_test_response *r;
	char a[64], b[64];
	int i;

	snprintf(a, sizeof(a), "127.0.0.1:%d", mute->port);
	snprintf(b, sizeof(b), "127.0.0.1:%d", m->port);
	mount_pool(app, a, b, &pc, 0);
	for (i = 0; i < 4; i++) {
		r = get(tc, "/api/x");
		expect(r, 20, "text/gemini");
		xz_test_response_free(r);
	}
	cr_expect_eq(m->connections, 4);
	cr_expect_geq(mute->connections, 1, "never tried");
	mock_free(mute);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi_pool, a_partial_answer_is_never_retried)
{
	struct xz_app *app;
	struct xz_test_client *tc = client(&app);
	/* Half a header, then the close: the answer began. */
	struct mock *bad = mock_tcp(tc, MOCK_ANSWER, "20 text/gem");
	struct mock *m = mock_tcp(tc, MOCK_ANSWER, "20 text/gemini\r\nok");
	struct xz_pool_config pc = { .max_fails = -1 };
	struct xz_test_response *r;
	char a[64], b[64];
	int i, errors = 0;

	snprintf(a, sizeof(a), "127.0.0.1:%d", bad->port);
	snprintf(b, sizeof(b), "127.0.0.1:%d", m->port);
	mount_pool(app, a, b, &pc, 0);
	for (i = 0; i < 4; i++) {
		r = get(tc, "/api/x");
		if (r->status == 43) {
			expect(r, 43, "SCGI backend error");
			errors++;
		}
		xz_test_response_free(r);
	}
	cr_expect_eq(errors, bad->connections);
	cr_expect_eq(errors + m->connections, 4);
	mock_free(bad);
	mock_free(m);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(scgi_pool, registration_errors)
{
	struct xz_app *app = xz_app_new();
	const char *bad[] = { "127.0.0.1:4000", "nocolon", NULL };
	const char *none[] = { NULL };
	const char *one[] = { "unix:/tmp/x.sock", NULL };
	struct xz_scgi_opts o = { .backends = bad };

	cr_assert_eq(xz_scgi(app, "/a", &o), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "backend nocolon"), "%s",
	    xz_app_error(app));
	o.backends = none;
	cr_assert_eq(xz_scgi(app, "/b", &o), XZ_EINVAL);
	o = (struct xz_scgi_opts){ .backends = one,
		.host = "127.0.0.1",
		.port = 4000 };
	cr_assert_eq(xz_scgi(app, "/c", &o), XZ_EINVAL);
	o = (struct xz_scgi_opts){ .backends = one,
		.pool = { .max_conns = -1 } };
	cr_assert_eq(xz_scgi(app, "/d", &o), XZ_EINVAL);
	cr_assert_null(xz_scgi_pool(bad, NULL, NULL));
	cr_expect_not_null(strstr(xz_handler_error(), "nocolon"));
	cr_assert_eq(xz_mount(app, "/e", xz_scgi_pool(one, NULL, NULL)), XZ_OK);
	xz_app_free(app);
}
