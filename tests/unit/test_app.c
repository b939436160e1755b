/*
 * test_app.c - mounts, routes, middleware, hooks and state, through the
 * in-process test client (the real dispatch path).
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

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

Test(state, values_outlive_replacement)
{
	struct xz_app *app = xz_app_new();
	const char *old;

	cr_expect_null(xz_state_get(app, "k"));
	xz_state_set(app, "k", "one");
	old = xz_state_get(app, "k");
	xz_state_set(app, "k", "two");
	cr_expect_str_eq(old, "one");
	cr_expect_str_eq(xz_state_get(app, "k"), "two");
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
