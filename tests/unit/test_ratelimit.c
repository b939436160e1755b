/*
 * test_ratelimit.c - ratelimit.c: token buckets on an explicit clock, the
 * fixed table under 100,000 addresses, the log once a minute, rules by
 * prefix through the app (test client), and bad arguments.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "xz_private.h"

static void
key_of(const char *addr, unsigned char key[16])
{
	ratelimit_key(addr, key);
}

/* Takes n at now_ms: how many went through. */
static int
take_n(struct rl_rule *r, const char *addr, uint64_t now_ms, int n)
{
	unsigned char key[16];
	bool log;
	int ok = 0;

	key_of(addr, key);
	while (n-- > 0)
		ok += ratelimit_take(r, key, now_ms, &log) == 0;
	return ok;
}

static double
take(struct rl_rule *r, const char *addr, uint64_t now_ms, bool *log)
{
	unsigned char key[16];

	key_of(addr, key);
	return ratelimit_take(r, key, now_ms, log);
}

Test(ratelimit, burst_then_rate)
{
	struct rl_rule *r = ratelimit_rule_new("/", 10, 20);
	double wait;
	bool log;

	cr_assert_not_null(r);
	cr_expect_eq(take_n(r, "192.0.2.1", 1000, 20), 20);
	wait = take(r, "192.0.2.1", 1000, &log);
	cr_expect_float_eq(wait, 0.1, 1e-6);
	cr_expect(log, "the first refusal is logged");
	/* 100 ms later one token has come back, and only one. */
	cr_expect_eq(take_n(r, "192.0.2.1", 1100, 5), 1);
	/* A long rest fills the bucket to the brim, not beyond. */
	cr_expect_eq(take_n(r, "192.0.2.1", 3600000, 100), 20);
	ratelimit_rule_free(r);
}

Test(ratelimit, wait_is_the_time_to_one_token)
{
	struct rl_rule *r = ratelimit_rule_new("/", 0.1, 1);
	double wait;
	bool log;

	cr_assert_eq(take_n(r, "2001:db8::1", 0, 1), 1);
	wait = take(r, "2001:db8::1", 0, &log);
	cr_expect_float_eq(wait, 10, 1e-6);
	wait = take(r, "2001:db8::1", 2500, &log);
	cr_expect_float_eq(wait, 7.5, 1e-4);
	ratelimit_rule_free(r);
}

/* Threads read the clock before taking the lock: time may step back. */
Test(ratelimit, an_earlier_clock_refills_nothing)
{
	struct rl_rule *r = ratelimit_rule_new("/", 1, 2);

	cr_expect_eq(take_n(r, "192.0.2.3", 5000, 2), 2);
	cr_expect_eq(take_n(r, "192.0.2.3", 4999, 3), 0);
	cr_expect_eq(take_n(r, "192.0.2.3", 6000, 3), 1);
	ratelimit_rule_free(r);
}

Test(ratelimit, addresses_have_their_own_buckets)
{
	struct rl_rule *r = ratelimit_rule_new("/", 1, 2);

	cr_expect_eq(take_n(r, "192.0.2.1", 0, 5), 2);
	cr_expect_eq(take_n(r, "192.0.2.2", 0, 5), 2);
	cr_expect_eq(take_n(r, "2001:db8::1", 0, 5), 2);
	/* The same IPv4 client, v4-mapped or not, is one client. */
	cr_expect_eq(take_n(r, "::ffff:192.0.2.1", 0, 5), 0);
	ratelimit_rule_free(r);
}

Test(ratelimit, refusals_are_logged_once_a_minute)
{
	struct rl_rule *r = ratelimit_rule_new("/", 1, 1);
	bool log;

	take_n(r, "192.0.2.9", 0, 1);
	take(r, "192.0.2.9", 0, &log);
	cr_expect(log);
	take(r, "192.0.2.9", 10, &log);
	cr_expect_not(log);
	take_n(r, "192.0.2.9", 59000, 1); /* one through, the bucket empty */
	take(r, "192.0.2.9", 59000, &log);
	cr_expect_not(log, "59 s after the last line");
	take_n(r, "192.0.2.9", 61000, 1);
	take(r, "192.0.2.9", 61000, &log);
	cr_expect(log, "61 s after the last line");
	take(r, "192.0.2.9", 61000, &log);
	cr_expect_not(log);
	/* Another client is its own. */
	take_n(r, "192.0.2.10", 61000, 1);
	take(r, "192.0.2.10", 61000, &log);
	cr_expect(log);
	ratelimit_rule_free(r);
}

/*
 * 100,000 addresses, 10,000 a second, each making one request, while one
 * client keeps asking every 10 ms over its limit: the table does not grow
 * (not one byte allocated), every newcomer gets its burst, and the
 * limited client is never forgotten (which would give it a new burst).
 */
Test(ratelimit, memory_is_fixed_at_100000_addresses)
{
	struct rl_rule *r = ratelimit_rule_new("/", 10, 20);
	size_t before, after, bytes = ratelimit_rule_bytes(r);
	int i, through = 0, victim = 0, asked = 0;
	char addr[64];

	cr_assert_eq(take_n(r, "198.51.100.7", 0, 20), 20);
	before = mallinfo2().uordblks;
	for (i = 0; i < 100000; i++) {
		uint64_t now = (uint64_t)i / 10; /* ten a millisecond */

		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		through += take_n(r, addr, now, 1);
		if (i % 100 == 0) {
			victim += take_n(r, "198.51.100.7", now, 1);
			asked++;
		}
	}
	after = mallinfo2().uordblks;
	cr_expect_eq(through, 100000);
	cr_expect_eq(after, before, "%zu bytes more", after - before);
	cr_expect_eq(ratelimit_rule_bytes(r), bytes);
	cr_expect_lt(bytes, (size_t)RL_SLOTS * 32 + 4096);
	/* 10 s at 10/s: 100 tokens came back, at most one more at the end. */
	cr_expect_leq(victim, 101, "%d of %d through", victim, asked);
	cr_expect_geq(victim, 99, "%d of %d through", victim, asked);
	ratelimit_rule_free(r);
}

/*
 * A flood of new addresses all at once (no bucket refills): the table is
 * full of clients over nothing, so the least recently seen are forgotten;
 * still nothing grows.
 */
Test(ratelimit, a_burst_of_new_addresses_evicts_the_oldest)
{
	struct rl_rule *r = ratelimit_rule_new("/", 1, 2);
	size_t before = mallinfo2().uordblks;
	char addr[64];
	int i, through = 0;

	for (i = 0; i < 200000; i++) {
		snprintf(addr, sizeof(addr), "2001:db8::%x:%x", i >> 16,
		    i & 0xffff);
		through += take_n(r, addr, 5, 1);
	}
	cr_expect_eq(through, 200000);
	cr_expect_eq(mallinfo2().uordblks, before);
	ratelimit_rule_free(r);
}

struct hammer {
	struct rl_rule *r;
	int through;
};

static void *
hammer(void *arg)
{
	struct hammer *h = arg;

	h->through = take_n(h->r, "192.0.2.77", 42, 20000);
	return NULL;
}

/* Workers share a rule: four threads at once get exactly the burst. */
Test(ratelimit, threads_share_one_bucket)
{
	struct hammer h[4];
	pthread_t t[4];
	int i, sum = 0;
	struct rl_rule *r = ratelimit_rule_new("/", 1, 50);

	for (i = 0; i < 4; i++) {
		h[i].r = r;
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		sum += h[i].through;
	}
	cr_expect_eq(sum, 50);
	ratelimit_rule_free(r);
}

static int
hello(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "hi\n");
}

static void
expect_get(struct xz_test_client *tc, const char *path, int status,
    const char *meta)
{
	struct xz_test_response *res = xz_test_get(tc, path);

	cr_assert_not_null(res);
	cr_expect_eq(res->status, status, "%s: %d %s", path, res->status,
	    res->meta);
	cr_expect_str_eq(res->meta, meta, "%s", path);
	xz_test_response_free(res);
}

/*
 * Through the app: the server-wide rule, a mount's own (longer prefix
 * wins, matched by segment), and a prefix with no limit. The test
 * client's requests all come from one address.
 */
Test(ratelimit, rules_by_prefix_through_the_app)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	int i;

	cr_redirect_stderr();
	cr_assert_eq(xz_rate_limit(app, NULL, 0.01, 2), XZ_OK);
	cr_assert_eq(xz_rate_limit(app, "/api/", 0.5, 1), XZ_OK);
	cr_assert_eq(xz_rate_limit(app, "/free", 0, 0), XZ_OK);
	cr_assert_eq(xz_route(app, "/", hello, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/apix", hello, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/api/x", hello, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/free/x", hello, NULL), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/", 20, "text/gemini");
	expect_get(tc, "/apix", 20, "text/gemini"); /* not under /api */
	expect_get(tc, "/", 44, "100");
	expect_get(tc, "/api/x", 20, "text/gemini");
	expect_get(tc, "/api/x", 44, "2");
	expect_get(tc, "/api", 44, "2");
	for (i = 0; i < 50; i++)
		expect_get(tc, "/free/x", 20, "text/gemini");
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(ratelimit, refusal_is_logged_with_the_address)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	char line[256];
	int lines = 0, i;
	FILE *err;

	cr_redirect_stderr();
	xz_log_enable(false);
	cr_assert_eq(xz_rate_limit(app, "/", 0.001, 1), XZ_OK);
	cr_assert_eq(xz_route(app, "/", hello, NULL), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/", 20, "text/gemini");
	for (i = 0; i < 5; i++)
		expect_get(tc, "/", 44, "1000");
	xz_test_client_free(tc);
	xz_app_free(app);
	fflush(stderr);
	err = cr_get_redirected_stderr();
	while (fgets(line, sizeof(line), err) != NULL)
		lines +=
		    strstr(line, "rate limit: local over 0.001/s (burst 1) "
		                 "under /, answered 44") != NULL;
	cr_expect_eq(lines, 1);
}

Test(ratelimit, bad_arguments_say_why)
{
	struct xz_app *app = xz_app_new();

	cr_expect_eq(xz_rate_limit(app, "api", 1, 1), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app),
	    "rate limit api: needs a prefix starting with '/', a rate from 0 "
	    "(no limit) to 1000000 a second and a burst from 1 to 1000000");
	cr_expect_eq(xz_rate_limit(app, "/", -1, 1), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", NAN, 1), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", INFINITY, 1), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", 2e6, 1), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", 1, 0.5), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", 1, -1), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", 1, NAN), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/", 1, 2e6), XZ_EINVAL);
	cr_expect_eq(xz_rate_limit(app, "/a", 1, 0), XZ_OK); /* burst 2 */
	cr_expect_eq(xz_rate_limit(app, "/a/", 5, 0), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app), "rate limit /a/: already limited");
	cr_expect_eq(xz_rate_limit(app, NULL, 1, 1), XZ_OK);
	cr_expect_eq(xz_rate_limit(app, "/", 1, 1), XZ_EINVAL);
	xz_app_free(app);
}

Test(ratelimit, default_burst_is_twice_the_rate)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	int i;

	cr_redirect_stderr();
	cr_assert_eq(xz_rate_limit(app, "/", 0.01, 0), XZ_OK); /* burst 1 */
	cr_assert_eq(xz_rate_limit(app, "/b", 1.5, 0), XZ_OK); /* burst 3 */
	cr_assert_eq(xz_route(app, "/", hello, NULL), XZ_OK);
	cr_assert_eq(xz_route(app, "/b", hello, NULL), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/", 20, "text/gemini");
	expect_get(tc, "/", 44, "100");
	for (i = 0; i < 3; i++)
		expect_get(tc, "/b", 20, "text/gemini");
	expect_get(tc, "/b", 44, "1");
	xz_test_client_free(tc);
	xz_app_free(app);
}
