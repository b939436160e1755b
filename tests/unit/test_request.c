/*
 * test_request.c - request.c on its own: a request carried by a stand-in
 * carrier (an evbuffer and counters) and owned by a stand-in owner, no
 * connection and no app: answering, the states that refuse a body,
 * drain, cancel, abort, parameters and input.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "xz_private.h"

struct carrier {
	struct evbuffer *out;
	int kicks, ends, aborts;
	const char *abort_reason;
};

static struct evbuffer *
c_output(void *arg)
{
	return ((struct carrier *)arg)->out;
}

static void
c_kick(void *arg)
{
	((struct carrier *)arg)->kicks++;
}

static void
c_end(void *arg)
{
	((struct carrier *)arg)->ends++;
}

static void
c_abort(void *arg, const char *reason)
{
	struct carrier *c = arg;

	c->aborts++;
	c->abort_reason = reason;
}

static const struct request_carrier carrier_ops = { .output = c_output,
	.kick = c_kick,
	.end = c_end,
	.abort = c_abort };

static struct carrier car;
static struct xz_request req;

static void
setup(void)
{
	memset(&car, 0, sizeof(car));
	cr_assert_not_null(car.out = evbuffer_new());
	request_init(&req, &carrier_ops, &car, NULL);
	req.url.raw = strdup("gemini://localhost/x?a%20b");
	req.url.path = strdup("/x");
	req.url.query = strdup("a%20b");
}

static void
teardown(void)
{
	request_clear(&req);
	evbuffer_free(car.out);
}

/* What the carrier got, as a string (drained). */
static char *
sent(void)
{
	size_t len = evbuffer_get_length(car.out);
	char *s = malloc(len + 1);

	evbuffer_remove(car.out, s, len);
	s[len] = '\0';
	return s;
}

static void
expect_sent(const char *want)
{
	char *got = sent();

	cr_expect_str_eq(got, want);
	free(got);
}

TestSuite(request, .init = setup, .fini = teardown);

Test(request, reply_write_end)
{
	cr_assert_eq(xz_reply(&req, 20, "text/gemini"), XZ_OK);
	cr_assert_eq(xz_puts(&req, "hi\n"), XZ_OK);
	cr_expect_eq(xz_pending(&req), strlen("20 text/gemini\r\nhi\n"));
	xz_end(&req);
	xz_end(&req); /* once */
	expect_sent("20 text/gemini\r\nhi\n");
	cr_expect_eq(car.kicks, 2);
	cr_expect_eq(car.ends, 1);
	cr_expect_eq(xz_write(&req, "x", 1), XZ_ESTATE);
	cr_expect_eq(xz_reply(&req, 20, "text/plain"), XZ_ESTATE);
	cr_expect_eq(evbuffer_get_length(car.out), 0);
}

Test(request, no_body_before_the_header_or_outside_2x)
{
	cr_expect_eq(xz_write(&req, "x", 1), XZ_ESTATE);
	cr_assert_eq(xz_reply(&req, 30, "/elsewhere"), XZ_OK);
	cr_expect_eq(xz_write(&req, "x", 1), XZ_ESTATE);
	xz_end(&req);
	expect_sent("30 /elsewhere\r\n");
}

Test(request, invalid_meta_becomes_40)
{
	cr_assert_eq(xz_reply(&req, 20, "bad\r\nmeta"), XZ_OK);
	xz_end(&req);
	expect_sent("40 Handler error\r\n");
	cr_expect_eq(req.status, 40);
}

Test(request, end_without_reply_is_40)
{
	xz_end(&req);
	expect_sent("40 Handler error\r\n");
	cr_expect_eq(car.ends, 1);
}

Test(request, respond_and_gemtext)
{
	cr_assert_eq(xz_gemtext(&req, "# Hi\n"), XZ_OK);
	expect_sent("20 text/gemini\r\n# Hi\n");
	cr_expect(req.ended);
}

Test(request, write_buffer_moves_or_refuses)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, "body", 4);
	cr_expect_eq(request_write_buffer(&req, b), XZ_ESTATE);
	cr_expect_eq(evbuffer_get_length(b), 4); /* left as it was */
	cr_assert_eq(xz_reply(&req, 20, "text/plain"), XZ_OK);
	cr_expect_eq(request_write_buffer(&req, b), XZ_OK);
	cr_expect_eq(evbuffer_get_length(b), 0);
	xz_end(&req);
	expect_sent("20 text/plain\r\nbody");
	evbuffer_free(b);
}

Test(request, read_file_into_the_body)
{
	char path[] = "/tmp/test_request_XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(write(fd, "0123456789", 10), 10);
	cr_expect_eq(request_read_file(&req, fd, 0, 4), XZ_ESTATE);
	cr_assert_eq(xz_reply(&req, 20, "text/plain"), XZ_OK);
	cr_expect_eq(request_read_file(&req, fd, 2, 4), 4);
	cr_expect_eq(request_read_file(&req, fd, 8, 100), 2); /* the end */
	close(fd);
	xz_end(&req);
	expect_sent("20 text/plain\r\n234589");
}

/* An owner: replaces 20 with 21 on the way out, and hears the end. */
static int leaves;

static int
owner_after(struct xz_request *r, int *status, char **meta)
{
	char *m = strdup("text/x-after");

	if (m == NULL)
		return XZ_ENOMEM;
	free(*meta);
	*meta = m;
	*status = 21;
	return XZ_OK;
}

static void
owner_leave(struct xz_request *r)
{
	leaves++;
}

static const struct request_owner owner = { owner_after, owner_leave };

Test(request, owner_after_and_leave)
{
	req.owner = &owner;
	cr_assert_eq(xz_reply(&req, 20, "text/gemini"), XZ_OK);
	xz_end(&req);
	expect_sent("21 text/x-after\r\n");
	cr_expect_eq(req.status, 21);
	request_clear(&req);
	cr_expect_eq(leaves, 1);
	request_init(&req, &carrier_ops, &car, NULL); /* for teardown */
}

/* A handler with a cancel op: run once, and never after xz_end. */
static int cancels;

static int
h_start(struct xz_request *r, void *state)
{
	return XZ_OK;
}

static void
h_cancel(struct xz_request *r, void *state)
{
	cancels++;
}

static const struct xz_handler_ops h_ops = { .name = "t",
	.start = h_start,
	.cancel = h_cancel };
static struct xz_handler handler = { .ops = &h_ops };

Test(request, cancel_reaches_the_handler_once)
{
	req.handler = &handler;
	request_cancel(&req);
	request_cancel(&req);
	cr_expect_eq(cancels, 1);
	cr_expect(req.ended);
	cr_expect_eq(xz_reply(&req, 20, "text/plain"), XZ_ESTATE);
}

Test(request, no_cancel_after_end)
{
	req.handler = &handler;
	xz_end(&req);
	cr_expect_null(req.handler);
	request_cancel(&req);
	cr_expect_eq(cancels, 0);
}

static int route_cancels;

static void
route_cancel(struct xz_request *r, void *arg)
{
	route_cancels += *(int *)arg;
}

Test(request, on_cancel_runs_once)
{
	int by = 5;

	xz_request_on_cancel(&req, route_cancel, &by);
	request_run_on_cancel(&req);
	request_run_on_cancel(&req);
	cr_expect_eq(route_cancels, 5);
}

Test(request, abort_goes_to_the_carrier)
{
	cr_assert_eq(xz_reply(&req, 20, "text/plain"), XZ_OK);
	request_abort(&req, "backend died");
	request_abort(&req, "again");
	cr_expect_eq(car.aborts, 1);
	cr_expect_str_eq(car.abort_reason, "backend died");
	cr_expect_eq(car.ends, 0);
	cr_expect(req.ended);
	xz_end(&req); /* ended already: nothing */
	cr_expect_eq(car.ends, 0);
}

static int drains;

static void
on_drain(struct xz_request *r, void *arg)
{
	drains++;
}

Test(request, drain_once_when_low_enough)
{
	cr_assert_eq(xz_reply(&req, 20, "text/plain"), XZ_OK);
	car.kicks = 0;
	xz_on_drain(&req, 1, on_drain, NULL);
	cr_expect_eq(car.kicks, 0); /* the header is more than 1 byte */
	request_drained(&req, 100);
	cr_expect_eq(drains, 0);
	request_drained(&req, 1);
	request_drained(&req, 0);
	cr_expect_eq(drains, 1);
	evbuffer_drain(car.out, evbuffer_get_length(car.out));
	xz_on_drain(&req, 1, on_drain, NULL);
	cr_expect_eq(car.kicks, 1); /* due now: the carrier's next flush */
	xz_end(&req);
	request_drained(&req, 0); /* ended: no callback */
	cr_expect_eq(drains, 1);
}

Test(request, params_and_input)
{
	char name[] = "{id}", rest[] = "{rest:path}";

	cr_assert_eq(request_add_param(&req, name, "42/x", 2), XZ_OK);
	cr_assert_eq(request_add_param(&req, rest, "a/b", 3), XZ_OK);
	cr_expect_str_eq(xz_param(&req, "id"), "42");
	cr_expect_str_eq(xz_param(&req, "rest"), "a/b");
	cr_expect_null(xz_param(&req, "i"));
	cr_expect_null(xz_param(&req, "other"));
	request_drop_params(&req);
	cr_expect_null(xz_param(&req, "id"));
	cr_expect_str_eq(xz_request_query(&req), "a%20b");
	cr_expect_str_eq(xz_request_input(&req), "a b");
	cr_expect_str_eq(xz_request_mount(&req), "");
	cr_expect_str_eq(xz_request_path_info(&req), "/x");
	cr_expect_null(xz_request_cert_hash(&req));
	cr_expect_null(xz_request_app(&req));
}
