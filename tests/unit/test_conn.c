/*
 * test_conn.c - conn.c: a real connection over a socketpair with the
 * plain transport (test_client_io), the test playing the client byte by
 * byte: request lines that come in pieces, the 1,024-byte limit, the
 * server's own answers (53, 59, 31), a client that leaves or half-closes
 * while a handler works, a streamed body that waits for the client
 * to drain, and a PROXY header before the request.
 */
#include <criterion/criterion.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xz_private.h"

/* Generous: these bound a hang, they never time a pass. */
#define WAIT_SECONDS 30.0

static double request_timeout = 60;
/* The listener's PROXY mode, and its per-address check (NULL: none). */
static enum proxy_mode proxy_mode = PROXY_OFF;
static bool (*proxied)(const struct sockaddr *, void *);

struct fixture {
	struct event_base *base;
	struct xz_app *app;
	struct conn_cfg cfg;
	struct site_set *sites;
	struct xz_conn *c;
	int peer; /* the client's end */
	bool closed;
};

static void
on_closed(struct xz_conn *c, void *arg)
{
	struct fixture *f = arg;

	f->closed = true;
	f->c = NULL;
}

static void
fixture_open(struct fixture *f, struct xz_app *app)
{
	const char *why;
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->app = app;
	cr_assert_not_null(f->base = event_base_new());
	cr_assert_not_null(f->sites = site_set_new());
	cr_assert_eq(
	    site_set_add(f->sites, "localhost", app, NULL, &why, NULL, 0),
	    XZ_OK);
	f->cfg.sites = f->sites;
	f->cfg.io = &test_client_io;
	f->cfg.port = 1965;
	f->cfg.request_timeout = request_timeout;
	f->cfg.write_timeout = 60;
	f->cfg.proxy = proxy_mode;
	f->cfg.proxied = proxied;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	f->peer = sv[1];
	f->c = conn_new(f->base, sv[0], &f->cfg, NULL, on_closed, f);
	cr_assert_not_null(f->c);
}

static void
fixture_close(struct fixture *f)
{
	if (f->c != NULL)
		conn_close(f->c, "test over");
	if (f->peer != -1)
		close(f->peer);
	event_base_free(f->base);
	site_set_free(f->sites);
	xz_app_free(f->app);
}

static void
send_str(struct fixture *f, const char *s)
{
	size_t len = strlen(s);

	cr_assert_eq(write(f->peer, s, len), (ssize_t)len);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop for a few turns without waiting. */
static void
spin(struct fixture *f)
{
	int i;

	for (i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* Reads what the server sent, the loop running, until EOF; NUL-ended. */
static char *
read_all(struct fixture *f, size_t *lenp)
{
	struct evbuffer *in = evbuffer_new();
	double deadline = now_s() + WAIT_SECONDS;
	char *all;
	size_t len;
	int n;

	for (;;) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		n = evbuffer_read(in, f->peer, 65536);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		if (n < 0) {
			cr_assert(now_s() < deadline, "no EOF from the server");
			usleep(1000);
		}
	}
	len = evbuffer_get_length(in);
	all = malloc(len + 1);
	evbuffer_remove(in, all, len);
	all[len] = '\0';
	evbuffer_free(in);
	if (lenp != NULL)
		*lenp = len;
	return all;
}

/* Runs the loop until the server has freed the connection. */
static void
wait_closed(struct fixture *f)
{
	double deadline = now_s() + WAIT_SECONDS;

	while (!f->closed) {
		cr_assert(now_s() < deadline, "the connection stayed open");
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static int
hello(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "hello\n");
}

static struct xz_app *
hello_app(void)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_route(app, "/", hello, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/{rest:path}", hello, NULL), XZ_OK);
	return app;
}

/* One whole exchange: line in, the whole answer out. */
static char *
exchange(const char *line)
{
	struct fixture f;
	char *got;

	fixture_open(&f, hello_app());
	send_str(&f, line);
	got = read_all(&f, NULL);
	wait_closed(&f);
	fixture_close(&f);
	return got;
}

static void
expect(const char *line, const char *answer)
{
	char *got = exchange(line);

	cr_expect_str_eq(got, answer, "%s", line);
	free(got);
}

Test(conn, whole_line)
{
	expect("gemini://localhost/\r\n", "20 text/gemini\r\nhello\n");
}

Test(conn, line_in_pieces)
{
	static const char *const parts[] = { "gem", "ini://loc", "alhost/a",
		"\r", "\n" };
	struct fixture f;
	char buf[64], *got;
	size_t i;

	fixture_open(&f, hello_app());
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		/* Nothing is answered before the CRLF is whole. */
		cr_assert_eq(read(f.peer, buf, sizeof(buf)), -1);
		cr_assert_eq(errno, EAGAIN);
		send_str(&f, parts[i]);
		spin(&f);
	}
	got = read_all(&f, NULL);
	cr_expect_str_eq(got, "20 text/gemini\r\nhello\n");
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}

/* A bare LF is no line end: the line goes on, and then is too long. */
Test(conn, bare_lf_is_not_a_line_end)
{
	struct fixture f;
	char line[1100], *got;

	fixture_open(&f, hello_app());
	send_str(&f, "gemini://localhost/\n");
	spin(&f);
	cr_assert_not(f.closed);
	memset(line, 'a', 1020);
	line[1020] = '\0';
	send_str(&f, line);
	got = read_all(&f, NULL);
	cr_expect_str_eq(got, "59 Request line too long\r\n");
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}

/* "gemini://localhost/" + path, len bytes of URL in all, + CRLF. */
static char *
url_of_len(size_t len)
{
	static const char head[] = "gemini://localhost/";
	char *s = malloc(len + 3);

	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'a', len - (sizeof(head) - 1));
	memcpy(s + len, "\r\n", 3);
	return s;
}

Test(conn, url_of_1024_bytes_is_served)
{
	char *line = url_of_len(1024);

	expect(line, "20 text/gemini\r\nhello\n");
	free(line);
}

Test(conn, url_of_1025_bytes_is_59)
{
	char *line = url_of_len(1025);

	expect(line, "59 Request line too long\r\n");
	free(line);
}

Test(conn, other_host_is_53)
{
	expect("gemini://example.org/\r\n", "53 Proxy request refused\r\n");
}

Test(conn, other_scheme_is_53)
{
	expect("https://localhost/\r\n", "53 Proxy request refused\r\n");
}

Test(conn, other_port_is_53)
{
	expect("gemini://localhost:1966/\r\n", "53 Proxy request refused\r\n");
}

Test(conn, our_port_and_root_label_are_ours)
{
	expect("gemini://localhost.:1965/\r\n", "20 text/gemini\r\nhello\n");
}

Test(conn, bad_url_is_59)
{
	expect("gemini://user@localhost/\r\n", "59 Bad request\r\n");
	expect("localhost/\r\n", "59 Bad request\r\n");
	expect("\r\n", "59 Bad request\r\n");
}

Test(conn, empty_path_is_31)
{
	expect("gemini://localhost\r\n", "31 /\r\n");
	expect("gemini://localhost?q=1\r\n", "31 /?q=1\r\n");
}

/* The client closes before its line is whole: nothing is answered. */
Test(conn, client_closes_before_its_line)
{
	struct fixture f;

	fixture_open(&f, hello_app());
	send_str(&f, "gemini://local");
	spin(&f);
	cr_assert_eq(shutdown(f.peer, SHUT_WR), 0);
	wait_closed(&f);
	fixture_close(&f);
}

/*
 * A route that answers its header at once and the rest only when told
 * (finish), noting whether it was cancelled.
 */
struct later {
	struct xz_request *req;
	bool cancelled;
};

static void
later_cancel(struct xz_request *req, void *arg)
{
	struct later *l = arg;

	l->cancelled = true;
	l->req = NULL;
}

static int
later_start(struct xz_request *req, void *arg)
{
	struct later *l = arg;

	l->req = req;
	xz_request_on_cancel(req, later_cancel, l);
	return xz_reply(req, 20, "text/plain");
}

static struct xz_app *
later_app(struct later *l)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_route(app, "/later", later_start, l), XZ_OK);
	return app;
}

/*
 * The client resets mid-handler (it closes with our header unread, which
 * a Unix socket turns into ECONNRESET): the connection ends and the
 * route hears of it through its cancel callback, once.
 */
Test(conn, client_leaving_mid_handler_cancels)
{
	struct later l = { 0 };
	struct fixture f;
	char c;

	fixture_open(&f, later_app(&l));
	send_str(&f, "gemini://localhost/later\r\n");
	spin(&f);
	cr_assert_not_null(l.req, "the route did not start");
	/* Wait for the header to reach the client's socket, unread. */
	while (recv(f.peer, &c, 1, MSG_PEEK) != 1)
		spin(&f);
	close(f.peer);
	f.peer = -1;
	wait_closed(&f);
	cr_expect(l.cancelled);
	cr_expect_null(l.req);
	fixture_close(&f);
}

/* A half-close (FIN) is not leaving: the answer still comes, whole. */
Test(conn, half_closed_client_is_answered)
{
	struct later l = { 0 };
	struct fixture f;
	char *got;

	fixture_open(&f, later_app(&l));
	send_str(&f, "gemini://localhost/later\r\n");
	spin(&f);
	cr_assert_not_null(l.req);
	cr_assert_eq(shutdown(f.peer, SHUT_WR), 0);
	spin(&f);
	cr_assert_not(f.closed);
	cr_assert_not(l.cancelled);
	cr_assert_eq(xz_puts(l.req, "late but whole\n"), XZ_OK);
	xz_end(l.req);
	got = read_all(&f, NULL);
	cr_expect_str_eq(got, "20 text/plain\r\nlate but whole\n");
	free(got);
	wait_closed(&f);
	cr_expect_not(l.cancelled);
	fixture_close(&f);
}

/* Closing a connection whose handler works cancels it, as a reset does. */
Test(conn, close_mid_handler_cancels)
{
	struct later l = { 0 };
	struct fixture f;

	fixture_open(&f, later_app(&l));
	send_str(&f, "gemini://localhost/later\r\n");
	spin(&f);
	cr_assert_not_null(l.req);
	conn_close(f.c, "server stopping");
	cr_expect(f.closed);
	cr_expect(l.cancelled);
	fixture_close(&f);
}

/*
 * Drain: a route streams 4 MiB in 64 KiB pieces, each written only when
 * xz_on_drain says the client has taken the queue down to 64 KiB; the
 * client reads slowly. What is queued never exceeds two pieces, and
 * every byte arrives in order.
 */
#define PIECE 65536
#define PIECES 64

struct stream {
	int sent;
	int drains;
	size_t max_pending;
	unsigned char piece[PIECE];
};

static void
stream_more(struct xz_request *req, void *arg)
{
	struct stream *s = arg;
	size_t pending;

	s->drains++;
	if (s->sent == PIECES) {
		xz_end(req);
		return;
	}
	memset(s->piece, 'a' + s->sent % 26, PIECE);
	cr_assert_eq(xz_write(req, s->piece, PIECE), XZ_OK);
	s->sent++;
	pending = xz_pending(req);
	if (pending > s->max_pending)
		s->max_pending = pending;
	xz_on_drain(req, PIECE, stream_more, s);
}

static int
stream_start(struct xz_request *req, void *arg)
{
	int rc = xz_reply(req, 20, "application/octet-stream");

	if (rc == XZ_OK)
		xz_on_drain(req, PIECE, stream_more, arg);
	return rc;
}

Test(conn, drain_paces_a_streamed_body)
{
	static struct stream s;
	struct fixture f;
	char *got;
	size_t len, hdr = strlen("20 application/octet-stream\r\n"), i;

	fixture_open(&f, xz_app_new());
	cr_assert_eq(xz_route(f.app, "/stream", stream_start, &s), XZ_OK);
	send_str(&f, "gemini://localhost/stream\r\n");
	got = read_all(&f, &len);
	cr_assert_eq(len, hdr + (size_t)PIECE * PIECES);
	cr_assert_eq(memcmp(got, "20 application/octet-stream\r\n", hdr), 0);
	for (i = 0; i < PIECES; i++)
		cr_assert_eq(got[hdr + i * PIECE], 'a' + (int)(i % 26));
	cr_expect_eq(s.sent, PIECES);
	cr_expect_geq(s.drains, PIECES + 1);
	cr_expect_leq(s.max_pending, 2 * PIECE);
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}

/* A request line that never ends is dropped unanswered at its timeout. */
Test(conn, request_timeout_drops_a_silent_client)
{
	struct fixture f;
	char *got;
	size_t len;

	request_timeout = 0.2;
	fixture_open(&f, hello_app());
	send_str(&f, "gemini://localhost/");
	got = read_all(&f, &len);
	cr_expect_eq(len, 0);
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}

static int
who(struct xz_request *req, void *arg)
{
	char body[128];

	snprintf(body, sizeof(body), "%s %d\n", xz_request_remote_addr(req),
	    req->remote_port);
	return xz_gemtext(req, body);
}

static struct xz_app *
who_app(void)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_route(app, "/", who, NULL), XZ_OK);
	return app;
}

/*
 * The header a byte at a time, then the request in the same write as its
 * last byte: the header's bytes alone are taken, the line is the
 * transport's, and the header's client is the request's.
 */
Test(conn, proxy_header_in_pieces_then_the_request)
{
	static const char hdr[] = "PROXY TCP6 2001:db8::5 ::1 4242 1965\r\n";
	struct fixture f;
	char buf[64], *got;
	size_t i;

	proxy_mode = PROXY_ANY;
	fixture_open(&f, who_app());
	for (i = 0; i + 1 < sizeof(hdr) - 1; i++) {
		cr_assert_eq(write(f.peer, hdr + i, 1), 1);
		spin(&f);
		cr_assert_eq(read(f.peer, buf, sizeof(buf)), -1);
		cr_assert_eq(errno, EAGAIN);
	}
	send_str(&f, "\ngemini://localhost/\r\n");
	got = read_all(&f, NULL);
	cr_expect_str_eq(got, "20 text/gemini\r\n2001:db8::5 4242\n");
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}

/* v2 LOCAL: the peer stays the client (a socketpair: "local"). */
Test(conn, proxy_v2_local_keeps_the_peer)
{
	static const char hdr[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"
	                          "gemini://localhost/\r\n";
	struct fixture f;
	char *got;

	proxy_mode = PROXY_V2;
	fixture_open(&f, who_app());
	cr_assert_eq(write(f.peer, hdr, sizeof(hdr) - 1),
	    (ssize_t)sizeof(hdr) - 1);
	got = read_all(&f, NULL);
	cr_expect_str_eq(got, "20 text/gemini\r\nlocal 0\n");
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}

/* A request line where a header must be: closed, nothing written. */
Test(conn, proxy_header_missing)
{
	char *got;

	proxy_mode = PROXY_V1;
	got = exchange("gemini://localhost/\r\n");

	cr_expect_str_eq(got, "");
	free(got);
}

static bool
refuse_all(const struct sockaddr *sa, void *arg)
{
	return sa->sa_family != AF_INET;
}

/* The per-address check refuses the header's client: closed, silent. */
Test(conn, proxy_client_refused)
{
	char *got;

	proxy_mode = PROXY_V1;
	proxied = refuse_all;
	got = exchange("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"
	               "gemini://localhost/\r\n");

	cr_expect_str_eq(got, "");
	free(got);
}

/* No header within request_timeout: closed. */
Test(conn, proxy_header_timeout)
{
	struct fixture f;
	char *got;
	double t0 = now_s();

	proxy_mode = PROXY_V2;
	request_timeout = 0.2;
	fixture_open(&f, who_app());
	send_str(&f, "\r\n\r\n");
	got = read_all(&f, NULL);
	cr_expect_str_eq(got, "");
	cr_expect_geq(now_s() - t0, 0.15);
	free(got);
	wait_closed(&f);
	fixture_close(&f);
}
