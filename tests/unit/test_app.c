/*
 * test_app.c - mounts, routes, middleware, hooks and state, through the
 * in-process test client (the real dispatch path).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xz_private.h"

/* A handler that answers with its own name and what it was given. */
static int
echo_start(struct xz_request *req, void *state)
{
	char body[512];

	snprintf(body, sizeof(body), "%s|%s|%s", (const char *)state,
	    xz_request_mount(req), xz_request_path_info(req));
	return xz_gemtext(req, body);
}

static const struct xz_handler_ops echo_ops = { "echo", echo_start, NULL,
	NULL };

static void
mount_echo(struct xz_app *app, const char *prefix, const char *name)
{
	cr_assert_eq(
	    xz_mount(app, prefix, xz_handler_new(&echo_ops, (void *)name)),
	    XZ_OK);
}

static struct xz_test_response *
get(struct xz_app *app, const char *path)
{
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r;

	cr_assert_not_null(tc);
	r = xz_test_get(tc, path);
	cr_assert_not_null(r);
	xz_test_client_free(tc);
	return r;
}

static void
expect_body(struct xz_app *app, const char *path, const char *body)
{
	struct xz_test_response *r = get(app, path);

	cr_expect_eq(r->status, 20, "%s: status %d %s", path, r->status,
	    r->meta);
	cr_expect_str_eq((char *)r->body, body, "%s", path);
	xz_test_response_free(r);
}

static void
expect_status(struct xz_app *app, const char *path, int status)
{
	struct xz_test_response *r = get(app, path);

	cr_expect_eq(r->status, status, "%s: got %d %s", path, r->status,
	    r->meta);
	xz_test_response_free(r);
}

Test(mount, matches_by_segment)
{
	struct xz_app *app = xz_app_new();

	mount_echo(app, "/api", "api");
	expect_body(app, "/api", "api|/api|");
	expect_body(app, "/api/", "api|/api|/");
	expect_body(app, "/api/users/123", "api|/api|/users/123");
	expect_status(app, "/apiv2", 51);
	expect_status(app, "/ap", 51);
	xz_app_free(app);
}

Test(mount, prefix_is_normalised)
{
	struct xz_app *app = xz_app_new();

	mount_echo(app, "//api//", "api");
	expect_body(app, "/api/x", "api|/api|/x");
	cr_expect_eq(xz_mount(app, "api/", xz_handler_new(&echo_ops, "dup")),
	    XZ_EINVAL);
	xz_app_free(app);
}

Test(mount, longest_prefix_wins_whatever_the_order)
{
	struct xz_app *app = xz_app_new();

	mount_echo(app, "/", "root");
	mount_echo(app, "/a", "a");
	mount_echo(app, "/a/b/c", "abc");
	mount_echo(app, "/a/b", "ab");
	expect_body(app, "/a/b/c/d", "abc|/a/b/c|/d");
	expect_body(app, "/a/b/x", "ab|/a/b|/x");
	expect_body(app, "/a/bc", "a|/a|/bc");
	expect_body(app, "/z", "root||/z");
	xz_app_free(app);
}

static int
route_named(struct xz_request *req, void *arg)
{
	char body[256];
	const char *id = xz_param(req, "id"), *rest = xz_param(req, "rest");

	snprintf(body, sizeof(body), "%s id=%s rest=%s", (const char *)arg,
	    id ? id : "-", rest ? rest : "-");
	return xz_gemtext(req, body);
}

Test(route, mounts_win_over_routes)
{
	struct xz_app *app = xz_app_new();

	cr_assert_eq(xz_route(app, "/cgi-bin/{rest:path}", route_named, "r"),
	    XZ_OK);
	mount_echo(app, "/cgi-bin", "cgi");
	expect_body(app, "/cgi-bin/x.sh", "cgi|/cgi-bin|/x.sh");
	xz_app_free(app);
}

Test(route, patterns_and_parameters)
{
	struct xz_app *app = xz_app_new();

	cr_assert_eq(xz_route(app, "/", route_named, "home"), XZ_OK);
	cr_assert_eq(xz_route(app, "/users/{id}", route_named, "user"), XZ_OK);
	cr_assert_eq(xz_route(app, "/users/{id}/files/{rest:path}", route_named,
	                 "files"),
	    XZ_OK);
	cr_assert_eq(xz_route(app, "/users/me", route_named, "me"), XZ_OK);
	expect_body(app, "/", "home id=- rest=-");
	expect_body(app, "/users/42", "user id=42 rest=-");
	/* First registered wins among routes: {id} before "me". */
	expect_body(app, "/users/me", "user id=me rest=-");
	expect_body(app, "/users/7/files/a/b.txt", "files id=7 rest=a/b.txt");
	expect_body(app, "/users/caf%C3%A9", "user id=café rest=-");
	expect_status(app, "/users/", 51);
	expect_status(app, "/users/1/2", 51);
	expect_status(app, "/users/7/files/", 51);
	expect_status(app, "/nope", 51);
	xz_app_free(app);
}

Test(route, bad_patterns_are_refused)
{
	struct xz_app *app = xz_app_new();

	cr_expect_eq(xz_route(app, "nope", route_named, NULL), XZ_EINVAL);
	cr_expect_eq(xz_route(app, "/{a:path}/x", route_named, NULL),
	    XZ_EINVAL);
	cr_expect_eq(xz_route(app, "/a", NULL, NULL), XZ_EINVAL);
	xz_app_free(app);
}

static int
route_fails(struct xz_request *req, void *arg)
{
	return XZ_EIO;
}

static int
route_bad_status(struct xz_request *req, void *arg)
{
	return xz_respond(req, 99, "nonsense");
}

static int
route_forgets(struct xz_request *req, void *arg)
{
	xz_end(req);
	return XZ_OK;
}

Test(route, failures_become_40)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;

	xz_route(app, "/fail", route_fails, NULL);
	xz_route(app, "/bad", route_bad_status, NULL);
	xz_route(app, "/forgets", route_forgets, NULL);
	r = get(app, "/fail");
	cr_expect_eq(r->status, 40);
	cr_expect_str_eq(r->meta, "Handler error");
	xz_test_response_free(r);
	expect_status(app, "/bad", 40);
	expect_status(app, "/forgets", 40);
	xz_app_free(app);
}

Test(route, server_rules_apply_to_the_test_client)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r;

	r = xz_test_request(tc, "gemini://example.com/");
	cr_expect_eq(r->status, 53);
	xz_test_response_free(r);
	r = xz_test_request(tc, "gemini://localhost/../x");
	cr_expect_eq(r->status, 59);
	xz_test_response_free(r);
	r = xz_test_request(tc, "gemini://localhost");
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(r->meta, "/");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(testclient, binary_body_and_predicates)
{
	struct xz_test_response r = { .status = 20 };

	cr_expect(xz_test_is_success(&r));
	r.status = 10;
	cr_expect(xz_test_is_input_required(&r));
	r.status = 31;
	cr_expect(xz_test_is_redirect(&r));
	r.status = 43;
	cr_expect(xz_test_is_error(&r) && !xz_test_is_certificate_required(&r));
	r.status = 60;
	cr_expect(xz_test_is_error(&r) && xz_test_is_certificate_required(&r));
}

static int
route_binary(struct xz_request *req, void *arg)
{
	unsigned char all[256];
	int i;

	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	xz_reply(req, 20, "application/octet-stream; x=1");
	xz_write(req, all, sizeof(all));
	xz_end(req);
	return XZ_OK;
}

Test(testclient, binary_safe)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;
	int i;

	xz_route(app, "/bin", route_binary, NULL);
	r = get(app, "/bin");
	cr_expect_str_eq(r->mime_type, "application/octet-stream");
	cr_assert_eq(r->body_len, 256);
	for (i = 0; i < 256; i++)
		cr_assert_eq(r->body[i], i);
	xz_test_response_free(r);
	xz_app_free(app);
}

/* Middleware order: first.before, second.before, handler, second.after,
 * first.after. */
static char trace[256];

static int
mw_before(struct xz_request *req, void *arg)
{
	strcat(trace, (const char *)arg);
	strcat(trace, ".before ");
	return XZ_OK;
}

static void
mw_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	strcat(trace, (const char *)arg);
	strcat(trace, ".after ");
}

static int
route_traced(struct xz_request *req, void *arg)
{
	strcat(trace, "handler ");
	return xz_gemtext(req, "ok");
}

Test(middleware, order_is_first_outermost)
{
	static const struct xz_middleware mw = { mw_before, mw_after };
	struct xz_app *app = xz_app_new();

	trace[0] = '\0';
	xz_middleware(app, &mw, "first");
	xz_middleware(app, &mw, "second");
	xz_route(app, "/", route_traced, NULL);
	expect_status(app, "/", 20);
	cr_expect_str_eq(trace, "first.before second.before handler "
	                        "second.after first.after ");
	xz_app_free(app);
}

static int
mw_gate(struct xz_request *req, void *arg)
{
	strcat(trace, "gate.before ");
	if (xz_request_cert_hash(req) == NULL)
		return xz_respond(req, 60, "Certificate required");
	return XZ_OK;
}

static void
mw_gate_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	strcat(trace, "gate.after ");
}

Test(middleware, before_may_answer_early)
{
	static const struct xz_middleware outer = { mw_before, mw_after };
	static const struct xz_middleware gate = { mw_gate, mw_gate_after };
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	trace[0] = '\0';
	xz_middleware(app, &outer, "outer");
	xz_middleware(app, &gate, NULL);
	xz_route(app, "/", route_traced, NULL);
	expect_status(app, "/", 60);
	/* The gate's own after does not run; the outer one sees the 60. */
	cr_expect_str_eq(trace, "outer.before gate.before outer.after ");
	tc = xz_test_client_new(app);
	xz_test_client_set_cert(tc, "SHA256:abcd");
	r = xz_test_get(tc, "/");
	cr_expect_eq(r->status, 20);
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

static void
mw_rewrite_51(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 51) {
		res->status = 30;
		res->meta = "/elsewhere";
	}
}

Test(middleware, after_sees_mounts_and_may_replace)
{
	static const struct xz_middleware mw = { NULL, mw_rewrite_51 };
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;

	xz_middleware(app, &mw, NULL);
	r = get(app, "/missing");
	cr_expect_eq(r->status, 30);
	cr_expect_str_eq(r->meta, "/elsewhere");
	xz_test_response_free(r);
	xz_app_free(app);
}

/*
 * Answering instead: the document's handle_proxy_errors, "maybe try a
 * fallback", with a real fallback page. The SCGI backend is down (a port
 * bound and not listening refuses), so the handler's answer is the 43.
 */
static char proxy_error[256];
static int mw_data_freed;

static void
mw_data_free(void *p)
{
	mw_data_freed++;
	free(p);
}

static int
fallback_page(struct xz_request *req, void *arg)
{
	char body[512];

	snprintf(body, sizeof(body),
	    "# Temporarily unavailable\n\n%s is down; try again later.\n",
	    xz_request_path(req));
	return xz_gemtext(req, body);
}

/* Keeps the path it saw under its own key: per-request storage. */
static int
proxy_errors_before(struct xz_request *req, void *arg)
{
	char *seen = strdup(xz_request_path(req));

	cr_assert_not_null(seen);
	return xz_request_set_mw_data(req, arg, seen, mw_data_free);
}

static void
handle_proxy_errors(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status != 43)
		return;
	/* Log the error, maybe try a fallback: here, a page. */
	snprintf(proxy_error, sizeof(proxy_error), "Proxy error: %s (%s)",
	    res->meta, (const char *)xz_request_mw_data(req, arg));
	cr_assert_eq(xz_request_replace(req, fallback_page, NULL), XZ_OK);
	/* One answer instead per hook: the second call is refused. */
	cr_expect_eq(xz_request_replace(req, fallback_page, NULL), XZ_ESTATE);
}

static int
down_port(int *fd)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);

	/* Bound and not listening: the port is ours, and refuses. */
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(*fd, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(*fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

Test(middleware, proxy_errors_fall_back_to_a_page)
{
	static const struct xz_middleware outer = { mw_before, mw_after };
	static const struct xz_middleware proxy_errors = { proxy_errors_before,
		handle_proxy_errors };
	static const struct xz_middleware inner = { mw_before, mw_after };
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;
	int fd, port = down_port(&fd);

	trace[0] = proxy_error[0] = '\0';
	mw_data_freed = 0;
	xz_middleware(app, &outer, "outer");
	xz_middleware(app, &proxy_errors, (void *)&proxy_errors);
	xz_middleware(app, &inner, "inner");
	cr_assert_eq(
	    xz_scgi(app, "/api",
	        &(struct xz_scgi_opts){ .host = "127.0.0.1", .port = port }),
	    XZ_OK);
	r = get(app, "/api/users/123");
	cr_expect_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_expect_str_eq(r->meta, "text/gemini");
	cr_expect_str_eq((char *)r->body,
	    "# Temporarily unavailable\n\n/api/users/123 is down; try again "
	    "later.\n");
	cr_expect_str_eq(proxy_error,
	    "Proxy error: Failed to connect to SCGI backend (/api/users/123)");
	/* The inner after saw the 43; only the outer one sees the page. */
	cr_expect_str_eq(trace,
	    "outer.before inner.before inner.after outer.after ");
	cr_expect_eq(mw_data_freed, 1);
	xz_test_response_free(r);
	xz_app_free(app);
	close(fd);
}

/* The fallback is another handler, here one the middleware keeps. */
static void
fall_back_to_handler(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status / 10 == 4)
		cr_assert_eq(xz_request_replace_handler(req, arg), XZ_OK);
}

Test(middleware, proxy_errors_fall_back_to_another_handler)
{
	static const struct xz_middleware mw = { NULL, fall_back_to_handler };
	struct xz_handler *fallback = xz_handler_new(&echo_ops, "fallback");
	struct xz_app *app = xz_app_new();
	int fd, port = down_port(&fd);

	xz_middleware(app, &mw, fallback);
	cr_assert_eq(
	    xz_scgi(app, "/api",
	        &(struct xz_scgi_opts){ .host = "127.0.0.1", .port = port }),
	    XZ_OK);
	/* The fallback sees the request as it came: mount and path info. */
	expect_body(app, "/api/users/123", "fallback|/api|/users/123");
	xz_app_free(app);
	xz_handler_free(fallback);
	close(fd);
}

/*
 * A route that streams later (a timer writes and ends): when its answer
 * is replaced, the route is cancelled as if the client had left, and
 * none of its bytes reach the client.
 */
struct streamer {
	struct event *ev;
	struct xz_request *req;
	bool cancelled;
};

static void
streamer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct streamer *st = arg;

	xz_request_on_cancel(st->req, NULL, NULL);
	xz_puts(st->req, "streamed\n");
	xz_end(st->req);
}

static void
streamer_cancel(struct xz_request *req, void *arg)
{
	struct streamer *st = arg;

	event_del(st->ev);
	st->cancelled = true;
}

static int
route_streamer(struct xz_request *req, void *arg)
{
	struct streamer *st = arg;
	struct timeval tv = { 0, 100000 };

	st->req = req;
	st->ev = evtimer_new(xz_request_base(req), streamer_fire, st);
	cr_assert_not_null(st->ev);
	xz_request_on_cancel(req, streamer_cancel, st);
	cr_assert_eq(xz_reply(req, 20, "text/plain"), XZ_OK);
	/* Dropped: the answer was discarded inside xz_reply. */
	cr_expect_eq(xz_puts(req, "first bytes\n"), XZ_OK);
	evtimer_add(st->ev, &tv);
	return XZ_OK;
}

static void
replace_text_plain(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (strcmp(res->meta, "text/plain") == 0)
		cr_assert_eq(xz_request_replace(req, fallback_page, NULL),
		    XZ_OK);
}

Test(middleware, replaced_route_is_cancelled_and_its_bytes_dropped)
{
	static const struct xz_middleware mw = { NULL, replace_text_plain };
	struct xz_app *app = xz_app_new();
	struct streamer st = { 0 };

	xz_middleware(app, &mw, NULL);
	xz_route(app, "/stream", route_streamer, &st);
	expect_body(app, "/stream",
	    "# Temporarily unavailable\n\n/stream is down; try again later.\n");
	cr_expect(st.cancelled);
	event_free(st.ev);
	xz_app_free(app);
}

/* A static file's answer (4 MiB, streamed from the file) replaced. */
Test(middleware, replaced_static_file)
{
	static const struct xz_middleware mw = { NULL, replace_text_plain };
	struct xz_app *app = xz_app_new();
	char root[] = "/tmp/xz_mw_XXXXXX", path[64];
	static char chunk[65536];
	FILE *f;
	int i;

	cr_assert_not_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/big.txt", root);
	cr_assert_not_null(f = fopen(path, "w"));
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 64; i++)
		cr_assert_eq(fwrite(chunk, 1, sizeof(chunk), f), sizeof(chunk));
	fclose(f);
	xz_middleware(app, &mw, NULL);
	cr_assert_eq(xz_static(app, "/files", root), XZ_OK);
	expect_body(app, "/files/big.txt",
	    "# Temporarily unavailable\n\n/files/big.txt is down; try again "
	    "later.\n");
	xz_app_free(app);
	unlink(path);
	rmdir(root);
}

/*
 * Replacements nest like call_next: each replaced answer goes to the
 * middlewares outside the one that replaced it, which may replace it
 * again; a fallback that fails gives 40; an early answer from a before
 * hook may be replaced by an outer middleware.
 */
static int
fallback_fails(struct xz_request *req, void *arg)
{
	return XZ_EIO;
}

static int
fallback_51(struct xz_request *req, void *arg)
{
	return xz_respond(req, 51, "Gone");
}

static void
mw_replace_with(struct xz_request *req, struct xz_response *res, void *arg)
{
	strcat(trace, "replace ");
	cr_expect_eq(xz_request_replace(req, (xz_route_fn)arg, NULL), XZ_OK);
}

static void
mw_replace_51(struct xz_request *req, struct xz_response *res, void *arg)
{
	strcat(trace, "outer.after ");
	if (res->status == 51)
		cr_expect_eq(xz_request_replace(req, fallback_page, NULL),
		    XZ_OK);
}

Test(middleware, replacements_nest_like_call_next)
{
	static const struct xz_middleware outer = { NULL, mw_replace_51 };
	static const struct xz_middleware inner = { NULL, mw_replace_with };
	static const struct xz_middleware fails = { NULL, mw_replace_with };
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;

	trace[0] = '\0';
	xz_middleware(app, &outer, NULL);
	xz_middleware(app, &inner, (void *)fallback_51);
	xz_route(app, "/", route_traced, NULL);
	expect_body(app, "/",
	    "# Temporarily unavailable\n\n/ is down; try again later.\n");
	/*
	 * The inner hook replaces the 20 with a 51, which only the outer
	 * hook sees; it replaces that with the page, which no hook sees.
	 */
	cr_expect_str_eq(trace, "handler replace outer.after ");
	xz_app_free(app);

	app = xz_app_new();
	xz_middleware(app, &fails, (void *)fallback_fails);
	xz_route(app, "/", route_traced, NULL);
	r = get(app, "/");
	cr_expect_eq(r->status, 40);
	cr_expect_str_eq(r->meta, "Handler error");
	xz_test_response_free(r);
	xz_app_free(app);
}

Test(middleware, an_early_answer_may_be_replaced)
{
	static const struct xz_middleware outer = { NULL, mw_replace_51 };
	static const struct xz_middleware gate = { mw_gate, NULL };
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;

	trace[0] = '\0';
	xz_middleware(app, &outer, NULL);
	xz_middleware(app, &gate, NULL);
	xz_route(app, "/", route_traced, NULL);
	r = get(app, "/");
	cr_expect_eq(r->status, 60); /* not a 51: left as it was */
	xz_test_response_free(r);
	xz_app_free(app);
}

/*
 * The client leaves while the answer given instead is still being made:
 * that answer is cancelled (its xz_request_on_cancel), the discarded one
 * was cancelled before it, and the middleware's data is freed.
 */
static bool fallback_cancelled;

static void
fallback_never_cancel(struct xz_request *req, void *arg)
{
	fallback_cancelled = true;
}

static int
fallback_never(struct xz_request *req, void *arg)
{
	xz_request_on_cancel(req, fallback_never_cancel, NULL);
	return XZ_OK;
}

static void
mw_replace_never(struct xz_request *req, struct xz_response *res, void *arg)
{
	cr_assert_eq(
	    xz_request_set_mw_data(req, arg, strdup("x"), mw_data_free), XZ_OK);
	cr_assert_eq(xz_request_replace(req, fallback_never, NULL), XZ_OK);
}

Test(middleware, client_gone_while_answering_instead)
{
	static const struct xz_middleware mw = { NULL, mw_replace_never };
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	struct streamer st = { 0 };

	fallback_cancelled = false;
	mw_data_freed = 0;
	xz_middleware(app, &mw, (void *)&mw);
	xz_route(app, "/stream", route_streamer, &st);
	tc = xz_test_client_new(app);
	xz_test_client_set_timeout(tc, 0.3);
	r = xz_test_get(tc, "/stream");
	cr_expect_eq(r->status, 0); /* the client gave up */
	xz_test_response_free(r);
	xz_test_client_free(tc);
	cr_expect(st.cancelled);
	cr_expect(fallback_cancelled);
	cr_expect_eq(mw_data_freed, 1);
	event_free(st.ev);
	xz_app_free(app);
}

/* Outside an after hook there is nothing to replace. */
static int
mw_replace_too_early(struct xz_request *req, void *arg)
{
	cr_expect_eq(xz_request_replace(req, fallback_page, NULL), XZ_ESTATE);
	return XZ_OK;
}

static int
route_replace_in_handler(struct xz_request *req, void *arg)
{
	cr_expect_eq(xz_request_replace(req, fallback_page, NULL), XZ_ESTATE);
	cr_expect_eq(xz_request_replace(req, NULL, NULL), XZ_EINVAL);
	cr_expect_eq(xz_request_replace_handler(req, NULL), XZ_EINVAL);
	return xz_gemtext(req, "ok");
}

Test(middleware, replace_only_from_an_after_hook)
{
	static const struct xz_middleware mw = { mw_replace_too_early, NULL };
	struct xz_app *app = xz_app_new();

	xz_middleware(app, &mw, NULL);
	xz_route(app, "/", route_replace_in_handler, NULL);
	expect_body(app, "/", "ok");
	xz_app_free(app);
}

/* Per-request storage: one slot per key, replaced, freed at the end. */
static int
mw_data_twice(struct xz_request *req, void *arg)
{
	static const int other_key;

	cr_expect_eq(xz_request_set_mw_data(req, NULL, NULL, NULL), XZ_EINVAL);
	cr_expect_null(xz_request_mw_data(req, arg));
	cr_assert_eq(
	    xz_request_set_mw_data(req, arg, strdup("one"), mw_data_free),
	    XZ_OK);
	cr_assert_eq(
	    xz_request_set_mw_data(req, arg, strdup("two"), mw_data_free),
	    XZ_OK);
	cr_expect_eq(mw_data_freed, 1); /* "one", replaced */
	cr_assert_eq(
	    xz_request_set_mw_data(req, &other_key, (void *)"static", NULL),
	    XZ_OK);
	return XZ_OK;
}

static void
mw_data_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	static const char *seen;

	seen = xz_request_mw_data(req, arg);
	cr_expect_str_eq(seen, "two");
}

static int
route_mw_data(struct xz_request *req, void *arg)
{
	/* Another middleware's key holds nothing here. */
	cr_expect_null(xz_request_mw_data(req, "not a key"));
	return xz_gemtext(req, "ok");
}

Test(middleware, per_request_storage)
{
	static const struct xz_middleware mw = { mw_data_twice, mw_data_after };
	struct xz_app *app = xz_app_new();

	mw_data_freed = 0;
	xz_middleware(app, &mw, (void *)&mw);
	xz_route(app, "/", route_mw_data, NULL);
	expect_body(app, "/", "ok");
	cr_expect_eq(mw_data_freed, 2);
	xz_app_free(app);
}

static int
hook_trace(struct xz_app *app, void *arg)
{
	strcat(trace, (const char *)arg);
	strcat(trace, " ");
	return XZ_OK;
}

static int
hook_set_state(struct xz_app *app, void *arg)
{
	return xz_state_set(app, "db_url", "postgres://localhost/mydb");
}

static int
route_state(struct xz_request *req, void *arg)
{
	const char *v = xz_state_get(xz_request_app(req), "db_url");

	return xz_gemtext(req, v ? v : "(unset)");
}

Test(hooks, startup_in_order_shutdown_in_reverse_and_state)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	trace[0] = '\0';
	xz_on_startup(app, hook_trace, "start1");
	xz_on_startup(app, hook_trace, "start2");
	xz_on_startup(app, hook_set_state, NULL);
	xz_on_shutdown(app, hook_trace, "stop1");
	xz_on_shutdown(app, hook_trace, "stop2");
	xz_route(app, "/", route_state, NULL);
	tc = xz_test_client_new(app);
	cr_expect_str_eq(trace, "start1 start2 ");
	r = xz_test_get(tc, "/");
	cr_expect_str_eq((char *)r->body, "postgres://localhost/mydb");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	cr_expect_str_eq(trace, "start1 start2 stop2 stop1 ");
	xz_app_free(app);
}

/*
 * A request reads "k", then (from a timer, as another worker or an admin
 * route would) the key is set again while it is in flight: the value it
 * holds must stay intact until it ends, and be freed then.
 */
struct state_reader {
	struct xz_request *req;
	struct event *ev;
	const char *held;
	size_t graves_in_flight;
};

static void
state_replace_then_answer(evutil_socket_t fd, short what, void *arg)
{
	struct state_reader *sr = arg;
	struct xz_app *app = xz_request_app(sr->req);

	cr_assert_eq(xz_state_set(app, "k", "two"), XZ_OK);
	cr_assert_eq(xz_state_set(app, "k", "three"), XZ_OK);
	sr->graves_in_flight = app_state_graves(app);
	cr_expect_str_eq(xz_state_get(app, "k"), "three");
	xz_gemtext(sr->req, sr->held); /* ASan: a use after free if freed */
	event_free(sr->ev);
}

static int
route_state_reader(struct xz_request *req, void *arg)
{
	struct state_reader *sr = arg;
	struct timeval tv = { 0, 20 * 1000 };

	sr->req = req;
	sr->held = xz_state_get(xz_request_app(req), "k");
	sr->ev =
	    evtimer_new(xz_request_base(req), state_replace_then_answer, sr);
	cr_assert_not_null(sr->ev);
	evtimer_add(sr->ev, &tv);
	return XZ_OK;
}

Test(state, replaced_value_lives_until_its_readers_end)
{
	struct xz_app *app = xz_app_new();
	struct state_reader sr = { 0 };
	struct xz_test_client *tc;
	struct xz_test_response *r;

	cr_assert_eq(xz_state_set(app, "k", "one"), XZ_OK);
	xz_route(app, "/", route_state_reader, &sr);
	tc = xz_test_client_new(app);
	r = xz_test_get(tc, "/");
	cr_expect_eq(r->status, 20);
	cr_expect_str_eq((char *)r->body, "one", "the value read was intact");
	cr_expect_eq(sr.graves_in_flight, 2, "both wait for the request");
	cr_expect_eq(app_state_graves(app), 0, "freed when it ended");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(state, updates_do_not_grow_memory)
{
	struct xz_app *app = xz_app_new();
	char v[32];
	int i;

	cr_expect_null(xz_state_get(app, "k"));
	for (i = 0; i < 10000; i++) {
		snprintf(v, sizeof(v), "value %d", i);
		cr_assert_eq(xz_state_set(app, "k", v), XZ_OK);
	}
	cr_expect_eq(app_state_graves(app), 0, "no request: freed at once");
	cr_expect_str_eq(xz_state_get(app, "k"), "value 9999");
	cr_expect_eq(xz_state_set(app, NULL, "x"), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app),
	    "state: a key and a value are needed");
	xz_app_free(app);
}

/* Periods: a value replaced while two generations of requests overlap. */
Test(state, graves_follow_the_requests_that_could_read_them)
{
	struct xz_app *app = xz_app_new();
	unsigned long a, b, c;

	cr_assert_eq(xz_state_set(app, "k", "1"), XZ_OK);
	a = app_state_enter(app);                         /* may read "1" */
	cr_assert_eq(xz_state_set(app, "k", "2"), XZ_OK); /* "1" waits for a */
	b = app_state_enter(app);                         /* may read "2" */
	cr_assert_eq(xz_state_set(app, "k", "3"), XZ_OK); /* "2": a and b */
	cr_expect_eq(app_state_graves(app), 2);
	app_state_leave(app, a);
	cr_expect_eq(app_state_graves(app), 1, "\"1\" went with a");
	c = app_state_enter(app); /* may read "3" only */
	app_state_leave(app, b);
	cr_expect_eq(app_state_graves(app), 0, "\"2\" went with b; c holds 3");
	cr_assert_eq(xz_state_set(app, "k", "4"), XZ_OK); /* "3" waits for c */
	cr_expect_eq(app_state_graves(app), 1);
	app_state_leave(app, c);
	cr_expect_eq(app_state_graves(app), 0);
	xz_app_free(app);
}

static int
route_greet(struct xz_request *req, void *arg)
{
	char body[256];

	snprintf(body, sizeof(body), "Hello, %s!", xz_request_input(req));
	return xz_gemtext(req, body);
}

Test(helpers, input_route_prompts_then_gets_decoded_query)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	cr_assert_eq(xz_input_route(app, "/name", "Enter your name:", false,
	                 route_greet, NULL),
	    XZ_OK);
	cr_assert_eq(xz_input_route(app, "/secret", "Password:", true,
	                 route_greet, NULL),
	    XZ_OK);
	cr_expect_eq(
	    xz_input_route(app, "/bad", "a\r\nb", false, route_greet, NULL),
	    XZ_EINVAL);
	tc = xz_test_client_new(app);
	r = xz_test_get(tc, "/name");
	cr_expect(xz_test_is_input_required(r));
	cr_expect_eq(r->status, 10);
	cr_expect_str_eq(xz_test_input_prompt(r), "Enter your name:");
	cr_expect_str_eq(r->meta, "Enter your name:");
	xz_test_response_free(r);
	r = xz_test_get(tc, "/secret");
	cr_expect_eq(r->status, 11);
	xz_test_response_free(r);
	r = xz_test_get_query(tc, "/name", "José Ünïcode & co");
	cr_expect_eq(r->status, 20);
	cr_expect_str_eq((char *)r->body, "Hello, José Ünïcode & co!");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

static int
route_moved(struct xz_request *req, void *arg)
{
	return xz_redirect(req, "gemini://example.com/new", arg != NULL);
}

Test(helpers, redirects)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_response *r;

	xz_route(app, "/temp", route_moved, NULL);
	xz_route(app, "/perm", route_moved, "yes");
	r = get(app, "/temp");
	cr_expect(xz_test_is_redirect(r));
	cr_expect_str_eq(xz_test_redirect_url(r), "gemini://example.com/new");
	cr_expect_null(xz_test_input_prompt(r));
	cr_expect_null(r->mime_type);
	cr_expect_eq(r->status, 30);
	cr_expect_str_eq(r->meta, "gemini://example.com/new");
	xz_test_response_free(r);
	expect_status(app, "/perm", 31);
	xz_app_free(app);
}

static const char *const allowed[] = { "SHA256:aaaa", "SHA256:bbbb", NULL };

static int
route_private(struct xz_request *req, void *arg)
{
	if (!xz_require_cert_in(req, allowed))
		return XZ_OK;
	return xz_gemtext(req, xz_request_cert_hash(req));
}

static int
route_members(struct xz_request *req, void *arg)
{
	if (!xz_require_cert(req))
		return XZ_OK;
	return xz_gemtext(req, "welcome");
}

Test(helpers, certificates_required_and_allow_listed)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	xz_route(app, "/private", route_private, NULL);
	xz_route(app, "/members", route_members, NULL);
	tc = xz_test_client_new(app);
	r = xz_test_get(tc, "/members");
	cr_expect(xz_test_is_certificate_required(r));
	cr_expect_eq(r->status, 60);
	cr_expect_str_eq(r->meta, "Certificate required");
	xz_test_response_free(r);
	xz_test_client_set_cert(tc, "SHA256:cccc");
	r = xz_test_get(tc, "/members");
	cr_expect_eq(r->status, 20);
	xz_test_response_free(r);
	r = xz_test_get(tc, "/private");
	cr_expect_eq(r->status, 61);
	cr_expect_str_eq(r->meta, "Certificate not authorised");
	xz_test_response_free(r);
	xz_test_client_set_cert(tc, "SHA256:bbbb");
	r = xz_test_get(tc, "/private");
	cr_expect_eq(r->status, 20);
	cr_expect_str_eq((char *)r->body, "SHA256:bbbb");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* An asynchronous route: answers from a timer, or is told it is gone. */
struct later {
	struct event *ev;
	bool cancelled;
};

static void
later_fire(evutil_socket_t fd, short what, void *arg)
{
	struct xz_request *req = arg;

	xz_gemtext(req, "later");
}

static void
later_cancel(struct xz_request *req, void *arg)
{
	struct later *l = arg;

	event_del(l->ev);
	l->cancelled = true;
}

static int
route_later(struct xz_request *req, void *arg)
{
	struct later *l = arg;
	struct timeval tv = { 0, 50000 };

	l->cancelled = false;
	if (l->ev != NULL)
		event_free(l->ev);
	l->ev = evtimer_new(xz_request_base(req), later_fire, req);
	xz_request_on_cancel(req, later_cancel, l);
	if (strcmp(xz_request_path(req), "/slow") == 0)
		tv.tv_sec = 60;
	evtimer_add(l->ev, &tv);
	return XZ_OK;
}

Test(route, answers_later_or_is_cancelled)
{
	struct xz_app *app = xz_app_new();
	struct later l = { 0 };
	struct xz_test_client *tc;
	struct xz_test_response *r;

	xz_route(app, "/later", route_later, &l);
	xz_route(app, "/slow", route_later, &l);
	tc = xz_test_client_new(app);
	r = xz_test_get(tc, "/later");
	cr_expect_eq(r->status, 20);
	cr_expect_str_eq((char *)r->body, "later");
	cr_expect(!l.cancelled);
	xz_test_response_free(r);
	xz_test_client_set_timeout(tc, 0.2);
	r = xz_test_get(tc, "/slow");
	cr_expect_eq(r->status, 0); /* the client gave up ... */
	cr_expect(l.cancelled);     /* ... and the route was told */
	xz_test_response_free(r);
	xz_test_client_free(tc);
	event_free(l.ev);
	xz_app_free(app);
}

/*
 * Registration errors: every call says why in xz_app_error; a handler
 * constructor, which has no app, says why in xz_handler_error, and
 * xz_mount(app, prefix, NULL) passes its reason and code on.
 */
static void
expect_error(struct xz_app *app, int rc, int want, const char *msg)
{
	cr_expect_eq(rc, want, "%s: %d", msg, rc);
	cr_expect_str_eq(xz_app_error(app), msg);
}

static int
route_nop(struct xz_request *req, void *arg)
{
	return xz_respond(req, 51, "Not found");
}

Test(errors, static_says_why)
{
	struct xz_app *app = xz_app_new();

	expect_error(app, xz_static(app, "/", "/nonexistent/dir"), XZ_EINVAL,
	    "static /: root /nonexistent/dir: No such file or directory");
	expect_error(app, xz_static(app, "/f", "/etc/passwd"), XZ_EINVAL,
	    "static /f: root /etc/passwd: Not a directory");
	expect_error(app, xz_static(app, "/n", NULL), XZ_EINVAL,
	    "static /n: no root");
	cr_expect_eq(xz_static(app, "/", "/tmp"), XZ_OK);
	expect_error(app, xz_static(app, "//", "/tmp"), XZ_EINVAL,
	    "mount /: already mounted");
	xz_app_free(app);
}

Test(errors, scgi_handlers_keep_their_reason_until_mounted)
{
	struct xz_app *app = xz_app_new();
	struct xz_backend_config cfg;
	char longpath[200];

	cr_expect_null(xz_scgi_tcp("127.0.0.1", 0, NULL));
	cr_expect_str_eq(xz_handler_error(),
	    "scgi 127.0.0.1:0: host given without port");
	expect_error(app,
	    xz_mount(app, "/api", xz_scgi_tcp("127.0.0.1", 70000, NULL)),
	    XZ_EINVAL,
	    "mount /api: scgi 127.0.0.1:70000: port 70000 out of range "
	    "1..65535");
	cr_expect_str_eq(xz_handler_error(), "", "consumed by xz_mount");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	cr_expect_null(xz_scgi_unix(longpath, NULL));
	cr_expect_not_null(
	    strstr(xz_handler_error(), "socket path empty or over"), "%s",
	    xz_handler_error());
	xz_scgi_config_init(&cfg);
	cfg.timeout = -1;
	expect_error(app, xz_mount(app, "/u", xz_scgi_unix("/tmp/s", &cfg)),
	    XZ_EINVAL,
	    "mount /u: scgi unix:/tmp/s: timeout must be greater than 0 (or 0: "
	    "the default, 30)");
	expect_error(app, xz_mount(app, "/n", xz_scgi_unix(NULL, NULL)),
	    XZ_EINVAL, "mount /n: scgi: no socket path");
	expect_error(app, xz_mount(app, "/n", NULL), XZ_EINVAL,
	    "mount /n: no handler");
	cr_expect_null(xz_scgi_unix("", NULL));
	cr_expect_neq(xz_handler_error()[0], '\0');
	cr_expect_eq(xz_mount(app, "/ok", xz_scgi_unix("/tmp/s", NULL)), XZ_OK);
	cr_expect_str_eq(xz_handler_error(), "", "a success clears it");
	xz_app_free(app);
}

Test(errors, every_registration_call_says_why)
{
	struct xz_app *app = xz_app_new();
	struct xz_scgi_opts o = { 0 };
	struct xz_middleware none = { NULL, NULL };
	static const struct xz_handler_ops no_start = { "x", NULL, NULL, NULL };

	o.host = "127.0.0.1";
	expect_error(app, xz_scgi(app, "/api", &o), XZ_EINVAL,
	    "scgi /api: host given without port");
	expect_error(app, xz_cgi(app, "/c", "/nonexistent", NULL), XZ_EINVAL,
	    "cgi /c: /nonexistent: No such file or directory");
	expect_error(app,
	    xz_cgi_script(app, "/s", "/tmp/nonexistent.cgi", NULL), XZ_EINVAL,
	    "cgi /s: /tmp/nonexistent.cgi: No such file or directory");
	expect_error(app, xz_route(app, "nope", route_nop, NULL), XZ_EINVAL,
	    "route nope: a pattern starts with '/' and needs a function");
	expect_error(app,
	    xz_input_route(app, "/q", "a\r\nb", false, route_nop, NULL),
	    XZ_EINVAL, "route /q: the prompt must be a valid meta");
	expect_error(app, xz_middleware(app, &none, NULL), XZ_EINVAL,
	    "middleware: neither before nor after");
	expect_error(app, xz_middleware(app, NULL, NULL), XZ_EINVAL,
	    "middleware: neither before nor after");
	expect_error(app, xz_on_startup(app, NULL, NULL), XZ_EINVAL,
	    "startup hook: no function");
	expect_error(app, xz_on_shutdown(app, NULL, NULL), XZ_EINVAL,
	    "shutdown hook: no function");
	expect_error(app, xz_mount(app, NULL, xz_scgi_unix("/tmp/s", NULL)),
	    XZ_EINVAL, "mount: no prefix");
	cr_expect_null(xz_handler_new(&no_start, NULL));
	expect_error(app, xz_mount(app, "/h", NULL), XZ_EINVAL,
	    "mount /h: handler: no ops, or no start");
	cr_expect_eq(xz_route(app, "/ok", route_nop, NULL), XZ_OK);
	cr_expect_str_eq(xz_app_error(app),
	    "mount /h: handler: no ops, or no start",
	    "a success leaves the last reason");
	xz_app_free(app);
}

/*
 * Readers on several threads (as workers' requests) while another sets
 * the key over and over: each value a reader got stays intact until it
 * leaves (ASan reports any use after free), and nothing is kept after.
 */
struct state_stress {
	struct xz_app *app;
	atomic_int bad;
};

static void *
state_stress_reader(void *arg)
{
	struct state_stress *st = arg;
	unsigned long period;
	const char *v;
	int i;

	for (i = 0; i < 20000; i++) {
		period = app_state_enter(st->app);
		v = xz_state_get(st->app, "k");
		sched_yield();
		if (v == NULL || strncmp(v, "value ", 6) != 0 ||
		    strlen(v) != 6 + 5)
			atomic_fetch_add(&st->bad, 1);
		app_state_leave(st->app, period);
	}
	return NULL;
}

Test(state, concurrent_readers_and_updates)
{
	struct state_stress st = { xz_app_new(), 0 };
	pthread_t readers[4];
	char v[32];
	int i;

	cr_assert_eq(xz_state_set(st.app, "k", "value 00000"), XZ_OK);
	for (i = 0; i < 4; i++)
		cr_assert_eq(
		    pthread_create(&readers[i], NULL, state_stress_reader, &st),
		    0);
	for (i = 0; i < 20000; i++) {
		snprintf(v, sizeof(v), "value %05d", i);
		cr_assert_eq(xz_state_set(st.app, "k", v), XZ_OK);
	}
	for (i = 0; i < 4; i++)
		pthread_join(readers[i], NULL);
	cr_expect_eq(atomic_load(&st.bad), 0);
	cr_expect_eq(app_state_graves(st.app), 0, "all freed once read");
	xz_app_free(st.app);
}

static int disposed;

static void
count_dispose(void *state)
{
	disposed++;
	free(state);
}

/*
 * The document's "Timeouts" and "Limit" blocks make handlers that a
 * program may never mount: xz_handler_free gives them back (ASan's leak
 * check sees the rest).
 */
Test(handlers, an_unmounted_handler_is_freed)
{
	static const struct xz_handler_ops ops = { "counted", route_nop, NULL,
		count_dispose };
	struct xz_handler *h;

	xz_handler_free(xz_scgi_tcp("127.0.0.1", 4000,
	    &(struct xz_backend_config){ .timeout = 60.0 }));
	xz_handler_free(xz_scgi_unix("/tmp/myapp.sock",
	    &(struct xz_backend_config){
	        .max_response_size = 5 * 1024 * 1024 }));
	xz_handler_free(NULL);
	disposed = 0;
	cr_assert_not_null(h = xz_handler_new(&ops, malloc(16)));
	xz_handler_free(h);
	cr_expect_eq(disposed, 1);
}
