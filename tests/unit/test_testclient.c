/*
 * test_testclient.c - testclient.c: what xz_test_* hands back (status,
 * meta, MIME type, a binary-safe body), the fake certificate, the query
 * encoding, the timeout, the hooks, and the plain transport on its own.
 */
#include <criterion/criterion.h>
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "xz_private.h"

static int
binary(struct xz_request *req, void *arg)
{
	static const unsigned char body[] = { 'a', 0, 'b', 0xff, '\n' };

	if (xz_reply(req, 20, "application/octet-stream; x=1") == XZ_OK)
		(void)xz_write(req, body, sizeof(body));
	xz_end(req);
	return XZ_OK;
}

static int
echo_cert(struct xz_request *req, void *arg)
{
	const char *hash = xz_request_cert_hash(req);

	return xz_gemtext(req, hash != NULL ? hash : "none");
}

static int
echo_input(struct xz_request *req, void *arg)
{
	const char *in = xz_request_input(req);
	char body[256];

	snprintf(body, sizeof(body), "%s|%s", xz_request_query(req),
	    in != NULL ? in : "(null)");
	return xz_gemtext(req, body);
}

static int
go_elsewhere(struct xz_request *req, void *arg)
{
	return xz_redirect(req, "/elsewhere", false);
}

static int
ask(struct xz_request *req, void *arg)
{
	return xz_input(req, "Your name?", false);
}

static int
need_cert(struct xz_request *req, void *arg)
{
	if (xz_require_cert(req))
		xz_gemtext(req, "welcome");
	return XZ_OK;
}

/* Never answers; notes its cancel. */
static void
silent_cancel(struct xz_request *req, void *arg)
{
	*(bool *)arg = true;
}

static int
silent(struct xz_request *req, void *arg)
{
	xz_request_on_cancel(req, silent_cancel, arg);
	return XZ_OK;
}

static bool silent_cancelled;

static struct xz_app *
make_app(void)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_route(app, "/bin", binary, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/cert", echo_cert, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/input", echo_input, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/moved", go_elsewhere, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/ask", ask, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/private", need_cert, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/silent", silent, &silent_cancelled),
	    XZ_OK);
	return app;
}

struct fixture {
	struct xz_app *app;
	struct xz_test_client *tc;
};

static struct fixture
open_client(void)
{
	struct fixture f;

	f.app = make_app();
	f.tc = xz_test_client_new(f.app);
	cr_assert_not_null(f.tc);
	return f;
}

static void
close_client(struct fixture *f)
{
	xz_test_client_free(f->tc);
	xz_app_free(f->app);
}

Test(testclient, binary_body_with_its_length_and_mime_type)
{
	static const unsigned char want[] = { 'a', 0, 'b', 0xff, '\n' };
	struct fixture f = open_client();
	struct xz_test_response *r = xz_test_get(f.tc, "/bin");

	cr_assert_not_null(r);
	cr_expect_eq(r->status, 20);
	cr_expect_str_eq(r->meta, "application/octet-stream; x=1");
	cr_expect_str_eq(r->mime_type, "application/octet-stream");
	cr_assert_eq(r->body_len, sizeof(want));
	cr_expect_eq(memcmp(r->body, want, sizeof(want)), 0);
	cr_expect_eq(r->body[r->body_len], '\0');
	cr_expect(xz_test_is_success(r));
	cr_expect_not(xz_test_is_error(r));
	xz_test_response_free(r);
	close_client(&f);
}

Test(testclient, not_found_is_an_error_without_body)
{
	struct fixture f = open_client();
	struct xz_test_response *r = xz_test_get(f.tc, "/nothing/here");

	cr_assert_not_null(r);
	cr_expect_eq(r->status, 51);
	cr_expect_str_eq(r->meta, "Not found");
	cr_expect_null(r->mime_type);
	cr_expect_eq(r->body_len, 0);
	cr_expect(xz_test_is_error(r));
	cr_expect_not(xz_test_is_certificate_required(r));
	cr_expect_null(xz_test_redirect_url(r));
	cr_expect_null(xz_test_input_prompt(r));
	xz_test_response_free(r);
	close_client(&f);
}

Test(testclient, redirect_and_input_helpers)
{
	struct fixture f = open_client();
	struct xz_test_response *r = xz_test_get(f.tc, "/moved");

	cr_expect(xz_test_is_redirect(r));
	cr_expect_str_eq(xz_test_redirect_url(r), "/elsewhere");
	xz_test_response_free(r);
	r = xz_test_get(f.tc, "/ask");
	cr_expect(xz_test_is_input_required(r));
	cr_expect_str_eq(xz_test_input_prompt(r), "Your name?");
	cr_expect_null(xz_test_redirect_url(r));
	xz_test_response_free(r);
	close_client(&f);
}

/* The query is percent-encoded on the way in, decoded by the request. */
Test(testclient, query_is_encoded)
{
	struct fixture f = open_client();
	struct xz_test_response *r =
	    xz_test_get_query(f.tc, "/input", "a b&c=d/é~");

	cr_assert_eq(r->status, 20);
	cr_expect_str_eq((char *)r->body, "a%20b%26c%3Dd%2F%C3%A9~|a b&c=d/é~");
	xz_test_response_free(r);
	close_client(&f);
}

/* The fake certificate: the hash the request sees, until it is unset. */
Test(testclient, fake_certificate)
{
	struct fixture f = open_client();
	struct xz_test_response *r = xz_test_get(f.tc, "/private");

	cr_expect_eq(r->status, 60);
	cr_expect(xz_test_is_certificate_required(r));
	xz_test_response_free(r);
	cr_assert_eq(xz_test_client_set_cert(f.tc, "SHA256:abc"), XZ_OK);
	r = xz_test_get(f.tc, "/cert");
	cr_expect_str_eq((char *)r->body, "SHA256:abc");
	xz_test_response_free(r);
	r = xz_test_get(f.tc, "/private");
	cr_expect_str_eq((char *)r->body, "welcome");
	xz_test_response_free(r);
	cr_assert_eq(xz_test_client_set_cert(f.tc, NULL), XZ_OK);
	r = xz_test_get(f.tc, "/cert");
	cr_expect_str_eq((char *)r->body, "none");
	xz_test_response_free(r);
	close_client(&f);
}

/* A raw line goes through the connection's own checks. */
Test(testclient, raw_lines)
{
	struct fixture f = open_client();
	struct xz_test_response *r;

	r = xz_test_request(f.tc, "gemini://example.org/bin");
	cr_expect_eq(r->status, 53);
	xz_test_response_free(r);
	r = xz_test_request(f.tc, "gemini://localhost");
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(xz_test_redirect_url(r), "/");
	xz_test_response_free(r);
	r = xz_test_request(f.tc, "not a url");
	cr_expect_eq(r->status, 59);
	xz_test_response_free(r);
	close_client(&f);
}

/* A handler that never answers: status 0 at the timeout, and cancelled. */
Test(testclient, timeout_gives_status_0_and_cancels)
{
	struct fixture f = open_client();
	struct xz_test_response *r;

	xz_test_client_set_timeout(f.tc, 0.2);
	r = xz_test_get(f.tc, "/silent");
	cr_assert_not_null(r);
	cr_expect_eq(r->status, 0);
	cr_expect_str_eq(r->meta, "test client timeout");
	cr_expect_not(xz_test_is_success(r));
	cr_expect_not(xz_test_is_error(r));
	cr_expect(silent_cancelled);
	xz_test_response_free(r);
	close_client(&f);
}

static int
count_hook(struct xz_app *app, void *arg)
{
	(*(int *)arg)++;
	return XZ_OK;
}

static int
failing_hook(struct xz_app *app, void *arg)
{
	return XZ_EIO;
}

Test(testclient, hooks_run_with_the_client)
{
	struct xz_app *app = make_app();
	struct xz_test_client *tc;
	int up = 0, down = 0;

	cr_assert_eq(xz_on_startup(app, count_hook, &up), XZ_OK);
	cr_assert_eq(xz_on_shutdown(app, count_hook, &down), XZ_OK);
	tc = xz_test_client_new(app);
	cr_assert_not_null(tc);
	cr_expect_eq(up, 1);
	cr_expect_eq(down, 0);
	xz_test_client_free(tc);
	cr_expect_eq(down, 1);
	cr_assert_eq(xz_on_startup(app, failing_hook, NULL), XZ_OK);
	cr_expect_null(xz_test_client_new(app));
	xz_test_client_free(NULL);
	xz_app_free(app);
}

/* The plain transport on its own, over a socketpair. */
Test(testclient, plain_transport)
{
	const struct conn_io *io = &test_client_io;
	struct xz_request req;
	char buf[16];
	void *t;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
	    0);
	t = io->open("SHA256:00", sv[0]);
	cr_assert_not_null(t);
	cr_expect_eq(io->handshake(t), TLS_DONE);
	cr_expect_eq(io->read(t, buf, sizeof(buf)), TLS_WANT_READ);
	cr_assert_eq(write(sv[1], "hi", 2), 2);
	cr_expect_eq(io->read(t, buf, sizeof(buf)), 2);
	cr_expect_eq(io->write(t, "yo", 2), 2);
	cr_assert_eq(read(sv[1], buf, sizeof(buf)), 2);
	memset(&req, 0, sizeof(req));
	cr_expect_eq(io->peer(t, &req), XZ_OK);
	cr_expect(req.cert.present);
	cr_expect_str_eq(req.cert.hash, "SHA256:00");
	cr_expect_null(req.tls_version);
	cr_expect_str_eq(io->strerror(t, "fallback"), "fallback");
	cr_expect_eq(io->bye(t), TLS_DONE);
	cr_expect_eq(read(sv[1], buf, sizeof(buf)), 0); /* our FIN */
	close(sv[1]);
	cr_expect_eq(io->read(t, buf, sizeof(buf)), TLS_EOF);
	cr_expect_eq(io->write(t, "x", 1), TLS_ERROR); /* EPIPE */
	cr_expect_neq(strcmp(io->strerror(t, "fallback"), "fallback"), 0);
	io->close(t);
	close(sv[0]);
	t = io->open(NULL, -1);
	cr_assert_not_null(t);
	memset(&req, 0, sizeof(req));
	cr_expect_eq(io->peer(t, &req), XZ_OK);
	cr_expect_not(req.cert.present);
	io->close(t);
}
