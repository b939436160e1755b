/*
 * test_relay.c - relay.c on its own: a handler here hands the read end
 * of a socketpair to relay_new(), and a scripted backend on the test
 * client's loop writes the other end (in pieces, with pauses, then a
 * close, a reset or silence). Held answers (max_response_size) and
 * streamed ones, the limit at N and N + 1, the three header shapes cut
 * at every byte, failures before and after the header, the timeouts,
 * backpressure, and a client leaving mid-answer.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "xz_private.h"

/* What the scripted backend does at each step. */
enum step_op {
	STEP_WRITE,  /* data, len bytes (0: strlen) */
	STEP_STREAM, /* len patterned bytes, as fast as the relay reads */
	STEP_CLOSE,  /* a clean end of stream */
	STEP_RESET,  /* close with unread bytes: the relay reads ECONNRESET */
	STEP_SILENT, /* nothing more; the socket stays open */
};

struct step {
	enum step_op op;
	const char *data;
	size_t len;
	int delay_ms; /* before this step */
};

/* One test's backend: the relay's config, its script, what happened. */
struct backend {
	struct relay_cfg cfg;
	const struct step *steps;
	size_t nsteps;
	/* the backend's end of the socketpair and its progress */
	int fd;
	size_t at;
	size_t streamed;
	struct event *ev;
	struct xz_request *req;
	struct relay *relay;
	/* outcomes */
	int done_calls;
	enum relay_end how;
	int cancels;
	size_t peak_pending; /* xz_pending() seen while streaming */
	bool write_failed;
};

static const struct relay_cfg cfg_default = {
	.timeout = 30,
	.max_duration = 0,
	.max_response_size = 0,
	.buffer_size = 8192,
	.error_status = 43,
	.meta_timeout = "T timeout",
	.meta_too_big = "T too big",
	.meta_bad = "T bad",
	.name = "relay test",
};

/* Byte i of a streamed body: a pattern a shifted copy would break. */
static unsigned char
pattern(size_t i)
{
	return (unsigned char)((i * 7 + i / 251) & 0xff);
}

static void backend_next(evutil_socket_t, short, void *);

/*
 * The fake backend write()s to its socket: once the relay has closed its
 * end (an answer cut short on purpose), that write must fail with EPIPE,
 * not kill the test process.
 */
static void
ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(relay, .init = ignore_sigpipe);

static void
backend_close(struct backend *b)
{
	if (b->ev != NULL)
		event_free(b->ev);
	b->ev = NULL;
	if (b->fd != -1)
		close(b->fd);
	b->fd = -1;
}

/* Takes the relay's unread byte first, so that a close is a clean EOF
 * (on a pipe's write end the read fails at once: nothing to take). */
static void
backend_drain(struct backend *b)
{
	char buf[16];

	while (read(b->fd, buf, sizeof(buf)) > 0)
		;
}

static void
backend_schedule(struct backend *b, short what, int delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	if (b->ev != NULL)
		event_free(b->ev);
	b->ev =
	    event_new(xz_request_base(b->req), b->fd, what, backend_next, b);
	cr_assert_not_null(b->ev);
	cr_assert_eq(event_add(b->ev, what & EV_WRITE ? NULL : &tv), 0);
}

/* Writes what the socket takes of a STEP_STREAM; true once all is out. */
static bool
backend_stream(struct backend *b, const struct step *s)
{
	unsigned char chunk[16384];
	size_t n, i;
	ssize_t w;

	if (b->streamed > 0 && xz_pending(b->req) > b->peak_pending)
		b->peak_pending = xz_pending(b->req);
	while (b->streamed < s->len) {
		n = s->len - b->streamed;
		n = n < sizeof(chunk) ? n : sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = pattern(b->streamed + i);
		w = write(b->fd, chunk, n);
		if (w == -1 && errno == EAGAIN)
			return false;
		if (w <= 0) {
			b->write_failed = true;
			return true;
		}
		b->streamed += (size_t)w;
	}
	return true;
}

/* Runs the script: one step per call, then waits for the next one. */
static void
backend_next(evutil_socket_t fd, short what, void *arg)
{
	struct backend *b = arg;
	const struct step *s;
	size_t n;

	if (b->at >= b->nsteps)
		return;
	s = &b->steps[b->at];
	switch (s->op) {
	case STEP_WRITE:
		n = s->len > 0 ? s->len : strlen(s->data);
		if (write(b->fd, s->data, n) != (ssize_t)n)
			b->write_failed = true;
		break;
	case STEP_STREAM:
		if (!backend_stream(b, s)) {
			backend_schedule(b, EV_WRITE, 0);
			return;
		}
		break;
	case STEP_CLOSE:
		backend_drain(b);
		backend_close(b);
		b->at = b->nsteps;
		return;
	case STEP_RESET:
		backend_close(b);
		b->at = b->nsteps;
		return;
	case STEP_SILENT:
		b->at = b->nsteps;
		return;
	}
	b->at++;
	if (b->at < b->nsteps)
		backend_schedule(b, EV_TIMEOUT, b->steps[b->at].delay_ms);
}

static void
relay_done(enum relay_end how, void *arg)
{
	struct backend *b = arg;

	b->done_calls++;
	b->how = how;
	b->relay = NULL;
}

/* The backend is a pipe (as CGI's) rather than a socketpair (SCGI's). */
static bool use_pipe;

static int
test_start(struct xz_request *req, void *state)
{
	struct backend *b = state;
	struct bufferevent *bev;
	int sv[2];

	if (use_pipe) {
		/* CGI's shape: a script's stdout. */
		cr_assert_eq(pipe2(sv, O_NONBLOCK | O_CLOEXEC), 0);
	} else {
		cr_assert_eq(socketpair(AF_UNIX,
		                 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		                 sv),
		    0);
		/*
		 * A byte the backend never reads: closing its end with it
		 * unread is how an AF_UNIX socket says "reset" (ECONNRESET
		 * to the relay).
		 */
		cr_assert_eq(write(sv[0], "x", 1), 1);
	}
	b->fd = sv[1];
	b->req = req;
	bev = bufferevent_socket_new(xz_request_base(req), sv[0],
	    BEV_OPT_CLOSE_ON_FREE);
	cr_assert_not_null(bev);
	b->relay = relay_new(req, bev, &b->cfg, relay_done, b);
	cr_assert_not_null(b->relay);
	if (b->nsteps > 0)
		backend_schedule(b, EV_TIMEOUT, b->steps[0].delay_ms);
	return XZ_OK;
}

/* The client left: the relay goes, done never runs. */
static void
test_cancel(struct xz_request *req, void *state)
{
	struct backend *b = state;

	b->cancels++;
	relay_cancel(b->relay);
	b->relay = NULL;
}

static const struct xz_handler_ops test_ops = {
	.name = "relay-test",
	.start = test_start,
	.cancel = test_cancel,
};

/* Middleware for run()'s app, when a test sets it. */
static const struct xz_middleware *run_mw;

/* One GET through a relay fed by steps; b keeps the outcome. */
static struct xz_test_response *
run(struct backend *b, const struct step *steps, size_t nsteps,
    double client_timeout)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	b->steps = steps;
	b->nsteps = nsteps;
	b->fd = -1;
	cr_assert_not_null(app);
	if (run_mw != NULL)
		cr_assert_eq(xz_middleware(app, run_mw, NULL), XZ_OK);
	cr_assert_eq(xz_mount(app, "/r", xz_handler_new(&test_ops, b)), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	if (client_timeout > 0)
		xz_test_client_set_timeout(tc, client_timeout);
	r = xz_test_get(tc, "/r");
	cr_assert_not_null(r);
	backend_close(b);
	xz_test_client_free(tc);
	xz_app_free(app);
	cr_expect_not(b->write_failed, "the backend's write failed");
	return r;
}

#define NSTEPS(a) (sizeof(a) / sizeof((a)[0]))

static void
expect(struct xz_test_response *r, int status, const char *meta,
    const char *body)
{
	cr_expect_eq(r->status, status, "status %d %s", r->status, r->meta);
	cr_expect_str_eq(r->meta, meta);
	if (body != NULL) {
		cr_expect_eq(r->body_len, strlen(body), "body %zu bytes",
		    r->body_len);
		cr_expect_str_eq((const char *)r->body, body);
	}
}

/* ---- held and streamed answers ---- */

/* The header and body come in pieces, some loop turns apart. */
static const struct step pieces[] = {
	{ STEP_WRITE, "20 text/", 0, 0 },
	{ STEP_WRITE, "gemini\r\n# he", 0, 20 },
	{ STEP_WRITE, "llo\n", 0, 20 },
	{ STEP_CLOSE, NULL, 0, 20 },
};

Test(relay, held_answer_in_pieces)
{
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.max_response_size = 1024;
	r = run(&b, pieces, NSTEPS(pieces), 0);
	expect(r, 20, "text/gemini", "# hello\n");
	cr_expect_eq(b.done_calls, 1);
	cr_expect_eq(b.how, RELAY_OK);
	cr_expect_eq(b.cancels, 0);
	xz_test_response_free(r);
}

Test(relay, streamed_answer_in_pieces)
{
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	r = run(&b, pieces, NSTEPS(pieces), 0);
	expect(r, 20, "text/gemini", "# hello\n");
	cr_expect_eq(b.done_calls, 1);
	cr_expect_eq(b.how, RELAY_OK);
	xz_test_response_free(r);
}

/*
 * Held means held: the header came early, yet an answer that grows past
 * the limit still becomes an error status, never a cut 20.
 */
Test(relay, held_header_is_not_sent_before_the_end)
{
	static const struct step big[] = {
		{ STEP_WRITE, "20 text/plain\r\n", 0, 0 },
		{ STEP_WRITE, "0123456789", 0, 20 },
		{ STEP_WRITE, "0123456789", 0, 20 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.max_response_size = 30;
	r = run(&b, big, NSTEPS(big), 0);
	/* Over the limit while the backend still talks: no wait for EOF. */
	expect(r, 43, "T too big", "");
	cr_expect_eq(b.how, RELAY_FAILED);
	xz_test_response_free(r);
}

/* A body far larger than the relay's window, streamed intact. */
static void
stream_case(size_t limit, size_t buffer_size, size_t len)
{
	const struct step steps[] = {
		{ STEP_WRITE, "20 application/octet-stream\r\n", 0, 0 },
		{ STEP_STREAM, NULL, len, 0 },
		{ STEP_CLOSE, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;
	size_t i, bad = 0;

	b.cfg.max_response_size = limit;
	b.cfg.buffer_size = buffer_size;
	r = run(&b, steps, NSTEPS(steps), 0);
	expect(r, 20, "application/octet-stream", NULL);
	cr_assert_eq(r->body_len, len, "%zu of %zu bytes", r->body_len, len);
	for (i = 0; i < len; i++)
		bad += r->body[i] != pattern(i);
	cr_expect_eq(bad, 0, "%zu bytes differ", bad);
	cr_expect_eq(b.how, RELAY_OK);
	xz_test_response_free(r);
	/* Held: not a byte (header included) leaves before the end.
	 * Streamed: what waits for the client stays near the window. */
	if (limit > 0)
		cr_expect_eq(b.peak_pending, 0, "held, yet %zu bytes out",
		    b.peak_pending);
	else
		cr_expect_lt(b.peak_pending, 512 * 1024, "peak pending %zu",
		    b.peak_pending);
}

Test(relay, streams_eight_mebibytes_intact)
{
	stream_case(0, 8192, 8u << 20);
}

Test(relay, holds_a_mebibyte_intact)
{
	stream_case((1u << 20) + 29, 8192, 1u << 20);
}

Test(relay, any_buffer_size_reads_everything)
{
	stream_case(0, 1, 100000);
	stream_case(200000, 7, 100000);
}

/*
 * Backpressure: the backend writes as fast as the socket takes it, yet
 * what waits for the client stays near the relay's 64 KiB window (one
 * window moved plus one read), not the 8 MiB the backend had ready.
 */
Test(relay, backpressure_bounds_what_waits_for_the_client)
{
	const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\n", 0, 0 },
		{ STEP_STREAM, NULL, 8u << 20, 0 },
		{ STEP_CLOSE, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.buffer_size = 1 << 20;
	r = run(&b, steps, NSTEPS(steps), 0);
	cr_log_info("peak pending %zu", b.peak_pending);
	cr_expect_eq(r->status, 20);
	cr_expect_eq(r->body_len, 8u << 20);
	cr_expect_lt(b.peak_pending, 512 * 1024, "peak pending %zu",
	    b.peak_pending);
	/* One read of a full socket (buffer_size 1 MiB) goes past the 64
	 * KiB window: the relay paused, and it resumed, or the 8 MiB would
	 * not all be here. */
	cr_expect_gt(b.peak_pending, 64 * 1024, "the window never filled");
	xz_test_response_free(r);
}

static void
gone_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 20) {
		res->status = 51;
		res->meta = "Gone";
	}
}

/* Middleware turning the backend's 20 into 51: the body is dropped. */
Test(relay, middleware_error_drops_the_body)
{
	static const struct xz_middleware mw = { .after = gone_after };
	const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\nsecret", 0, 0 },
		{ STEP_WRITE, " more", 0, 10 },
		{ STEP_STREAM, NULL, 300000, 10 },
		{ STEP_CLOSE, NULL, 0, 0 },
	};
	struct backend b;
	struct xz_test_response *r;
	int held;

	run_mw = &mw;
	for (held = 0; held < 2; held++) {
		memset(&b, 0, sizeof(b));
		b.cfg = cfg_default;
		b.cfg.max_response_size = held ? 1 << 20 : 0;
		r = run(&b, steps, NSTEPS(steps), 0);
		expect(r, 51, "Gone", "");
		cr_expect_eq(b.how, RELAY_OK);
		xz_test_response_free(r);
	}
	run_mw = NULL;
}

/* ---- max_response_size at N and N + 1 (header included) ---- */

static void
limit_case(size_t limit, const char *answer, bool split, int status,
    const char *meta, const char *body)
{
	size_t len = strlen(answer), half = len / 2;
	const struct step whole[] = {
		{ STEP_WRITE, answer, len, 0 },
		{ STEP_CLOSE, NULL, 0, 10 },
	};
	const struct step parts[] = {
		{ STEP_WRITE, answer, half, 0 },
		{ STEP_WRITE, answer + half, len - half, 10 },
		{ STEP_CLOSE, NULL, 0, 10 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.max_response_size = limit;
	r = split ? run(&b, parts, NSTEPS(parts), 0) :
	            run(&b, whole, NSTEPS(whole), 0);
	expect(r, status, meta, body);
	cr_expect_eq(b.how, status == 43 ? RELAY_FAILED : RELAY_OK);
	xz_test_response_free(r);
}

Test(relay, limit_at_n_and_n_plus_one)
{
	const char *a = "20 text/plain\r\n0123456789"; /* 25 bytes */
	int split;

	for (split = 0; split < 2; split++) {
		limit_case(25, a, split, 20, "text/plain", "0123456789");
		limit_case(26, a, split, 20, "text/plain", "0123456789");
		limit_case(24, a, split, 43, "T too big", "");
		limit_case(1, a, split, 43, "T too big", "");
	}
}

/* A large N: the check holds across many reads, not only at EOF. */
Test(relay, large_limit_at_n_and_n_plus_one)
{
	size_t n = 300000, i;
	char *a = malloc(n + 1);

	cr_assert_not_null(a);
	memcpy(a, "20 text/plain\r\n", 15);
	for (i = 15; i < n; i++)
		a[i] = (char)('a' + i % 26);
	a[n] = '\0';
	limit_case(n, a, true, 20, "text/plain", a + 15);
	limit_case(n - 1, a, true, 43, "T too big", "");
	free(a);
}

/* ---- the three header shapes, cut at every byte ---- */

static const struct {
	const char *answer;
	int status;
	const char *meta;
	const char *body;
} shapes[] = {
	{ "20 text/gemini\r\n# G\n", 20, "text/gemini", "# G\n" },
	{ "Status: 20 text/gemini\r\nX-A: 1\r\n\r\n# C\n", 20, "text/gemini",
	    "# C\n" },
	{ "Content-Type: text/plain\r\n\r\nplain", 20, "text/plain", "plain" },
	{ "GEMINI 20 text/gemini\r\nX-A: 1\r\n\r\n# N\n", 20, "text/gemini",
	    "# N\n" },
	{ "20 text/gemini\n# LF\n", 20, "text/gemini", "# LF\n" },
	{ "30 gemini://example.org/\r\n", 30, "gemini://example.org/", "" },
	/* Not 2x: a body after the header is dropped. */
	{ "51 Gone\r\nnot for the client", 51, "Gone", "" },
	{ "Status: 51 Gone\r\n\r\nnot for the client", 51, "Gone", "" },
	/* malformed, never passed on */
	{ "hello\r\n\r\n", 43, "T bad", "" },
	{ "99 text/gemini\r\n", 43, "T bad", "" },
	{ "20  text/gemini\r\n", 43, "T bad", "" },
	{ "X-Only: 1\r\n\r\n", 43, "T bad", "" },
	/* the backend closed too soon */
	{ "", 43, "T bad", "" },
	{ "20 text/gem", 43, "T bad", "" },
	{ "Status: 20 text/gemini\r\n", 43, "T bad", "" },
};

/* The answer in two writes cut at byte cut, held or streamed. */
static void
shape_case(size_t i, size_t cut, size_t limit)
{
	const char *a = shapes[i].answer;
	size_t len = strlen(a);
	const struct step steps[] = {
		{ STEP_WRITE, a, cut, 0 },
		{ STEP_WRITE, a + cut, len - cut, 2 },
		{ STEP_CLOSE, NULL, 0, 2 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.max_response_size = limit;
	r = run(&b, steps, NSTEPS(steps), 0);
	cr_expect_eq(r->status, shapes[i].status, "%zu cut %zu limit %zu: %d",
	    i, cut, limit, r->status);
	cr_expect_str_eq(r->meta, shapes[i].meta, "%zu cut %zu", i, cut);
	cr_expect_str_eq((const char *)r->body, shapes[i].body,
	    "%zu cut %zu limit %zu", i, cut, limit);
	cr_expect_eq(b.done_calls, 1);
	xz_test_response_free(r);
}

Test(relay, three_shapes_cut_anywhere_held_and_streamed)
{
	size_t i, cut;

	/* From 1: a write of 0 bytes means strlen (the empty answer aside). */
	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		for (cut = shapes[i].answer[0] != '\0';
		     cut <= strlen(shapes[i].answer); cut++) {
			shape_case(i, cut, 0);
			shape_case(i, cut, 4096);
		}
}

/* A header longer than any valid one is refused without waiting. */
Test(relay, header_over_its_limit)
{
	char *a = malloc(XZ_MAX_BACKEND_HEADER + 64);
	const struct step steps[] = {
		{ STEP_WRITE, a, XZ_MAX_BACKEND_HEADER + 10, 0 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;
	int held;

	cr_assert_not_null(a);
	memcpy(a, "20 ", 3);
	memset(a + 3, 'm', XZ_MAX_BACKEND_HEADER + 61);
	for (held = 0; held < 2; held++) {
		memset(&b, 0, sizeof(b));
		b.cfg = cfg_default;
		b.cfg.max_response_size = held ? 1 << 20 : 0;
		r = run(&b, steps, NSTEPS(steps), 0);
		expect(r, 43, "T bad", "");
		xz_test_response_free(r);
	}
	free(a);
}

/* ---- failures before and after the header ---- */

Test(relay, reset_before_the_header_is_an_error_status)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/pl", 0, 0 },
		{ STEP_RESET, NULL, 0, 10 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	r = run(&b, steps, NSTEPS(steps), 0);
	expect(r, 43, "T bad", "");
	cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
	xz_test_response_free(r);
}

/* Held: a whole answer followed by a reset is no clean 20. */
Test(relay, reset_after_a_whole_held_answer_is_an_error_status)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\nall of it", 0, 0 },
		{ STEP_RESET, NULL, 0, 10 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.max_response_size = 1024;
	r = run(&b, steps, NSTEPS(steps), 0);
	expect(r, 43, "T bad", "");
	cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
	xz_test_response_free(r);
}

/*
 * Streamed: once the header is out only a cut is left. The client has
 * what came before (no more), and the relay reports the failure.
 */
Test(relay, reset_mid_stream_cuts_the_connection)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\nfirst part", 0, 0 },
		{ STEP_WRITE, ", second", 0, 20 },
		{ STEP_RESET, NULL, 0, 20 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	r = run(&b, steps, NSTEPS(steps), 0);
	expect(r, 20, "text/plain", "first part, second");
	cr_expect_eq(b.done_calls, 1);
	cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
	xz_test_response_free(r);
}

/* ---- timeouts ---- */

Test(relay, silent_before_the_header)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/", 0, 0 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;
	int held;

	for (held = 0; held < 2; held++) {
		memset(&b, 0, sizeof(b));
		b.cfg = cfg_default;
		b.cfg.timeout = 0.2;
		b.cfg.max_response_size = held ? 1024 : 0;
		r = run(&b, steps, NSTEPS(steps), 0);
		expect(r, 43, "T timeout", "");
		cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
		xz_test_response_free(r);
	}
}

/* Held: the header and part of the body came, then silence. */
Test(relay, silent_mid_answer_held_is_an_error_status)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\npart", 0, 0 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.timeout = 0.2;
	b.cfg.max_response_size = 1024;
	r = run(&b, steps, NSTEPS(steps), 0);
	expect(r, 43, "T timeout", "");
	xz_test_response_free(r);
}

/* Streamed: the same silence cuts what was already sent. */
Test(relay, silent_mid_stream_cuts_the_connection)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\npart", 0, 0 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;

	b.cfg.timeout = 0.2;
	r = run(&b, steps, NSTEPS(steps), 0);
	expect(r, 20, "text/plain", "part");
	cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
	xz_test_response_free(r);
}

/*
 * timeout is per wait: bytes every 100 ms keep a 1 s timeout from
 * firing; max_duration bounds the whole answer. The drip lasts far
 * longer (4 s) than max_duration (0.5 s), so only max_duration can end it.
 */
Test(relay, timeout_is_per_wait_and_max_duration_bounds_the_whole)
{
	struct step steps[42];
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;
	size_t i;
	int held;

	steps[0] = (struct step){ STEP_WRITE, "20 text/plain\r\n", 0, 0 };
	for (i = 1; i < 41; i++)
		steps[i] = (struct step){ STEP_WRITE, ".", 0, 100 };
	steps[41] = (struct step){ STEP_CLOSE, NULL, 0, 100 };

	/* No max_duration: the drip (~4 s, a 1 s timeout) is answered. */
	b.cfg.timeout = 1;
	r = run(&b, steps, NSTEPS(steps), 0);
	cr_expect_eq(r->status, 20);
	cr_expect_eq(r->body_len, 40);
	cr_expect_eq(b.how, RELAY_OK);
	xz_test_response_free(r);

	for (held = 0; held < 2; held++) {
		memset(&b, 0, sizeof(b));
		b.cfg = cfg_default;
		b.cfg.timeout = 1;
		b.cfg.max_duration = 0.5;
		b.cfg.max_response_size = held ? 1024 : 0;
		r = run(&b, steps, NSTEPS(steps), 0);
		if (held)
			expect(r, 43, "T timeout", "");
		else
			cr_expect_lt(r->body_len, 40, "not cut: %zu",
			    r->body_len);
		cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
		xz_test_response_free(r);
	}
}

/* ---- the client leaving ---- */

/*
 * The client gives up while the backend is silent: the handler's cancel
 * runs relay_cancel, done never runs, and the backend sees its socket
 * closed (the relay freed its end).
 */
static void
leave_case(bool held)
{
	static const struct step steps[] = {
		{ STEP_WRITE, "20 text/plain\r\nsome", 0, 0 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	struct backend b = { .cfg = cfg_default };
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	char buf[64];
	ssize_t n;

	b.cfg.max_response_size = held ? 1024 : 0;
	b.cfg.max_duration = 60; /* its timer goes with the relay */
	b.steps = steps;
	b.nsteps = NSTEPS(steps);
	b.fd = -1;
	cr_assert_eq(xz_mount(app, "/r", xz_handler_new(&test_ops, &b)), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	xz_test_client_set_timeout(tc, 0.3);
	cr_assert_not_null(r = xz_test_get(tc, "/r"));
	/* The test client reports its own timeout as status 0. */
	cr_expect_eq(r->status, 0, "%d %s", r->status, r->meta);
	cr_expect_eq(b.cancels, 1);
	cr_expect_eq(b.done_calls, 0);
	cr_expect_null(b.relay);
	cr_assert_neq(b.fd, -1);
	/* libevent closes a freed bufferevent's socket from the loop (a
	 * finalizer): give it that turn. */
	event_base_loop(xz_test_client_base(tc), EVLOOP_NONBLOCK);
	/* The relay's end is closed: what it left unread, then EOF. */
	while ((n = read(b.fd, buf, sizeof(buf))) > 0)
		;
	cr_expect_eq(n, 0, "read: %zd (%s)", n, n == -1 ? strerror(errno) : "");
	backend_close(&b);
	xz_test_client_free(tc);
	xz_app_free(app);
	xz_test_response_free(r);
}

Test(relay, client_leaving_cancels_the_relay)
{
	leave_case(false);
	leave_case(true);
}

/* ---- a pipe as the backend, as CGI's stdout ---- */

Test(relay, pipe_backend)
{
	static const struct step silent[] = {
		{ STEP_WRITE, "20 text/plain\r\npart", 0, 0 },
		{ STEP_SILENT, NULL, 0, 0 },
	};
	const char *a = "20 text/plain\r\n0123456789"; /* 25 bytes */
	struct backend b = { .cfg = cfg_default };
	struct xz_test_response *r;
	int held;

	use_pipe = true;
	for (held = 0; held < 2; held++) {
		memset(&b, 0, sizeof(b));
		b.cfg = cfg_default;
		b.cfg.max_response_size = held ? 1024 : 0;
		r = run(&b, pieces, NSTEPS(pieces), 0);
		expect(r, 20, "text/gemini", "# hello\n");
		cr_expect_eq(b.how, RELAY_OK);
		xz_test_response_free(r);

		memset(&b, 0, sizeof(b));
		b.cfg = cfg_default;
		b.cfg.timeout = 0.2;
		b.cfg.max_response_size = held ? 1024 : 0;
		r = run(&b, silent, NSTEPS(silent), 0);
		if (held)
			expect(r, 43, "T timeout", "");
		else
			expect(r, 20, "text/plain", "part");
		cr_expect_eq(b.how, RELAY_BACKEND_FAILED);
		xz_test_response_free(r);
	}
	stream_case(0, 8192, 8u << 20);
	stream_case((1u << 20) + 29, 4096, 1u << 20);
	limit_case(25, a, true, 20, "text/plain", "0123456789");
	limit_case(24, a, true, 43, "T too big", "");
	for (held = 0; held < 2; held++) {
		shape_case(1, 7, held ? 4096 : 0);
		shape_case(3, 20, held ? 4096 : 0);
	}
	use_pipe = false;
}
