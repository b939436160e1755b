/*
 * test_titan.c - Titan uploads through the app and the connection: C
 * routes reading the body as it arrives or whole, tokens, deletes, the
 * 59s (not enabled here, too large, no size), and an upload cut short
 * (the client closes, or stalls past request_timeout) dropped with the
 * handler cancelled. The SCGI and CGI bodies are test_scgi's and
 * test_cgi's, over real backends, and the e2e tests'.
 */
#include <criterion/criterion.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xz_private.h"

/* What the streaming route saw. */
struct seen {
	size_t bytes;
	unsigned long sum; /* of the bytes, so that order and content count */
	size_t most_held;  /* the largest upload buffer it ever met */
	int calls, cancels;
};

static void
stream_cancel(struct xz_request *req, void *arg)
{
	((struct seen *)arg)->cancels++;
}

static void
stream_data(struct xz_request *req, void *arg)
{
	struct seen *s = arg;
	unsigned char buf[4096];
	char body[128];
	ssize_t n, i;

	s->calls++;
	if (req->upload != NULL &&
	    evbuffer_get_length(req->upload) > s->most_held)
		s->most_held = evbuffer_get_length(req->upload);
	while ((n = xz_upload_read(req, buf, sizeof(buf))) > 0) {
		s->bytes += (size_t)n;
		for (i = 0; i < n; i++)
			s->sum += buf[i];
	}
	if (n != 0)
		return; /* XZ_EAGAIN: the next bytes come to this callback */
	snprintf(body, sizeof(body), "%s %zu %lu %s %s", xz_param(req, "name"),
	    s->bytes, s->sum, xz_upload_mime(req),
	    xz_upload_token(req) ? xz_upload_token(req) : "-");
	xz_gemtext(req, body);
}

static int
stream_route(struct xz_request *req, void *arg)
{
	xz_request_on_cancel(req, stream_cancel, arg);
	xz_upload_on_data(req, stream_data, arg);
	stream_data(req, arg);
	return XZ_OK;
}

static int
whole_route(struct xz_request *req, void *arg)
{
	size_t len;
	const char *body = xz_upload_body(req, &len);
	char out[256];

	cr_assert_not_null(body);
	if (xz_upload_size(req) == 0)
		return xz_gemtext(req, "deleted");
	snprintf(out, sizeof(out), "%zu:%.*s", len, (int)len, body);
	return xz_gemtext(req, out);
}

static int
page(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "page");
}

static struct xz_app *
titan_app(struct seen *s)
{
	static const char *const tokens[] = { "s3cret", "other", NULL };
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_titan_route(app, "/up/{name}", stream_route, s), XZ_OK);
	cr_assert_eq(xz_titan_route_opts(app, "/whole",
	                 &(struct xz_titan_opts){ .max_upload_size = 100,
	                     .tokens = tokens,
	                     .whole = true },
	                 whole_route, NULL),
	    XZ_OK);
	cr_assert_eq(xz_route(app, "/whole", page, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/gemini-only", page, NULL), XZ_OK);
	return app;
}

static unsigned char *
pattern_bytes(size_t len, unsigned long *sum)
{
	unsigned char *b = malloc(len);
	size_t i;

	cr_assert_not_null(b);
	*sum = 0;
	for (i = 0; i < len; i++) {
		b[i] = (unsigned char)(i * 7 + i / 251);
		*sum += b[i];
	}
	return b;
}

Test(titan, streamed_route_gets_every_byte_in_a_bounded_window)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct xz_test_client *tc = xz_test_client_new(app);
	size_t len = 3 * 1024 * 1024 + 17;
	unsigned long sum;
	unsigned char *data = pattern_bytes(len, &sum);
	struct xz_test_response *r;
	char want[128];

	r = xz_test_upload(tc, "/up/a.bin", data, len, "application/x-t",
	    "tok en");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	snprintf(want, sizeof(want), "a.bin %zu %lu application/x-t tok en",
	    len, sum);
	cr_assert_str_eq((char *)r->body, want);
	cr_assert_leq(s.most_held, XZ_UPLOAD_WINDOW);
	cr_assert_gt(s.calls, 2); /* it came in pieces */
	cr_assert_eq(s.cancels, 0);
	xz_test_response_free(r);
	free(data);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan, mime_defaults_to_text_gemini)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r =
	    xz_test_upload(tc, "/up/x", "hi", 2, NULL, NULL);

	cr_assert_eq(r->status, 20);
	cr_assert_str_eq((char *)r->body, "x 2 209 text/gemini -");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan, whole_route_tokens_and_delete)
{
	struct xz_app *app = titan_app(NULL);
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r;

	r = xz_test_upload(tc, "/whole", "hello", 5, "text/plain", "s3cret");
	cr_assert_eq(r->status, 20);
	cr_assert_str_eq((char *)r->body, "5:hello");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", "hello", 5, NULL, NULL);
	cr_assert_eq(r->status, 60);
	cr_assert_str_eq(r->meta, "Token required");
	cr_assert(xz_test_is_certificate_required(r));
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", "hello", 5, NULL, "wrong");
	cr_assert_eq(r->status, 61);
	cr_assert_str_eq(r->meta, "Token not authorised");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", NULL, 0, NULL, "other");
	cr_assert_eq(r->status, 20);
	cr_assert_str_eq((char *)r->body, "deleted");
	xz_test_response_free(r);

	/* The same path still has its Gemini page. */
	r = xz_test_get(tc, "/whole");
	cr_assert_str_eq((char *)r->body, "page");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(titan, refusals_are_59_with_a_reason)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct xz_test_client *tc = xz_test_client_new(app);
	static char big[101];
	struct xz_test_response *r;

	r = xz_test_upload(tc, "/gemini-only", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Titan not accepted here");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/nowhere", "x", 1, NULL, NULL);
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Titan not accepted here");
	xz_test_response_free(r);

	r = xz_test_upload(tc, "/whole", big, sizeof(big), NULL, "s3cret");
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Upload larger than 100 bytes");
	xz_test_response_free(r);

	/* A Gemini request never meets a Titan route. */
	r = xz_test_get(tc, "/up/a");
	cr_assert_eq(r->status, 51);
	xz_test_response_free(r);

	r = xz_test_request(tc, "titan://localhost/up/a;mime=text/plain");
	cr_assert_eq(r->status, 59);
	cr_assert_str_eq(r->meta, "Bad request");
	xz_test_response_free(r);

	r = xz_test_request(tc, "titan://localhost/up/a;size=-1");
	cr_assert_eq(r->status, 59);
	xz_test_response_free(r);

	r = xz_test_request(tc, "titan://elsewhere/up/a;size=1");
	cr_assert_eq(r->status, 53);
	xz_test_response_free(r);
	cr_assert_eq(s.calls, 0);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* A connection of our own, to cut an upload short. */
static const char *const hosts[] = { "localhost", NULL };

static void
on_closed(struct xz_conn *c, void *arg)
{
	*(bool *)arg = true;
}

static void
run_cut_upload(bool stall)
{
	struct seen s = { 0 };
	struct xz_app *app = titan_app(&s);
	struct event_base *base = event_base_new();
	struct conn_cfg cfg = { .app = app,
		.io = &test_client_io,
		.hostnames = hosts,
		.port = 1965,
		.request_timeout = 0.3,
		.write_timeout = 5 };
	static const char req[] = "titan://localhost/up/cut;size=100000\r\n"
	                          "first bytes";
	bool closed = false;
	int sv[2], i;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_not_null(
	    conn_new(base, sv[0], &cfg, NULL, on_closed, &closed));
	cr_assert_eq(write(sv[1], req, sizeof(req) - 1),
	    (ssize_t)sizeof(req) - 1);
	for (i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	cr_assert_not(closed);
	cr_assert_eq(s.bytes, strlen("first bytes"));
	if (!stall)
		close(sv[1]);
	for (i = 0; i < 400 && !closed; i++)
		event_base_loop(base, EVLOOP_ONCE);
	cr_assert(closed, "the cut upload was dropped");
	cr_assert_eq(s.cancels, 1, "the handler was told");
	if (stall)
		close(sv[1]);
	event_base_free(base);
	xz_app_free(app);
}

Test(titan, client_closing_mid_upload_is_dropped)
{
	run_cut_upload(false);
}

Test(titan, client_stalling_past_request_timeout_is_dropped)
{
	run_cut_upload(true);
}
