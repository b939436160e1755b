/*
 * test_pool.c - pool.c alone: which backend a request gets (least
 * connections, round robin, the tried set), passive health (max_fails,
 * fail_timeout, recovery), max_conns and its queue (order, bound, a
 * woken waiter that leaves passing its turn on), the slots under four
 * threads at once, and the address strings. Time is the test's own
 * clock (ms), passed in.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <criterion/criterion.h>

#include "xz_private.h"

static struct pool *
pool(size_t n, struct xz_pool_config c)
{
	struct pool *p = pool_new(n, &c);

	cr_assert_not_null(p);
	return p;
}

static int
pick(struct pool *p, uint64_t tried, int64_t now)
{
	bool busy;

	return pool_pick(p, tried, now, &busy);
}

Test(pool, defaults)
{
	struct pool *p = pool_new(2, NULL);
	const struct xz_pool_config *c = pool_config(p);

	cr_assert_eq(c->max_fails, 1);
	cr_assert_eq(c->fail_timeout, 10);
	cr_assert_eq(c->queue_timeout, 10);
	cr_assert_eq(c->max_conns, 0);
	cr_assert_eq(c->queue_size, 0);
	cr_assert_eq(c->balance, XZ_LEAST_CONN);
	pool_free(p);
	cr_assert_null(pool_new(0, NULL));
	cr_assert_null(pool_new(POOL_MAX + 1, NULL));
}

Test(pool, invalid_configs)
{
	cr_assert_not_null(
	    pool_config_invalid(&(struct xz_pool_config){ .balance = 7 }));
	cr_assert_not_null(pool_config_invalid(
	    &(struct xz_pool_config){ .fail_timeout = -1 }));
	cr_assert_not_null(pool_config_invalid(
	    &(struct xz_pool_config){ .connect_timeout = -0.5 }));
	cr_assert_not_null(
	    pool_config_invalid(&(struct xz_pool_config){ .max_conns = -1 }));
	cr_assert_null(pool_config_invalid(&(struct xz_pool_config){ 0 }));
}

Test(pool, least_conn_goes_to_the_idlest)
{
	struct pool *p = pool(3, (struct xz_pool_config){ 0 });
	int i;

	/* Each of the first three picks finds a different idle member. */
	bool seen[3] = { false };
	for (i = 0; i < 3; i++)
		seen[pick(p, 0, 0)] = true;
	cr_assert(seen[0] && seen[1] && seen[2]);
	/* Member 1 finishes: it is the only one with none open. */
	pool_release(p, 1);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(pick(p, 0, 0), 1);
		pool_release(p, 1);
	}
	cr_assert_eq(pool_active(p, 0) + pool_active(p, 1) + pool_active(p, 2),
	    2);
	pool_free(p);
}

Test(pool, ties_are_taken_in_turn)
{
	struct pool *p = pool(4, (struct xz_pool_config){ 0 });
	int count[4] = { 0 }, i, m;

	for (i = 0; i < 400; i++) {
		m = pick(p, 0, 0);
		count[m]++;
		pool_release(p, (size_t)m);
	}
	for (i = 0; i < 4; i++)
		cr_assert_eq(count[i], 100, "member %d: %d", i, count[i]);
	pool_free(p);
}

Test(pool, round_robin_ignores_load)
{
	struct pool *p =
	    pool(2, (struct xz_pool_config){ .balance = XZ_ROUND_ROBIN });
	int count[2] = { 0 }, i;

	/* Nothing released: least-conn would alternate too, so hold 0's. */
	for (i = 0; i < 10; i++)
		count[pick(p, 0, 0)]++;
	cr_assert_eq(count[0], 5);
	cr_assert_eq(count[1], 5);
	pool_free(p);
}

Test(pool, tried_members_are_skipped_once_each)
{
	struct pool *p = pool(3, (struct xz_pool_config){ 0 });
	uint64_t tried = 0;
	bool busy;
	int i, m;

	for (i = 0; i < 3; i++) {
		m = pool_pick(p, tried, 0, &busy);
		cr_assert_geq(m, 0);
		cr_assert_eq((tried >> m) & 1, 0, "member %d again", m);
		tried |= (uint64_t)1 << m;
	}
	cr_assert_eq(pool_pick(p, tried, 0, &busy), -1);
	cr_assert_not(busy, "none left is not busy");
	pool_free(p);
}

Test(pool, a_failure_rests_a_member_for_fail_timeout)
{
	struct pool *p = pool(2, (struct xz_pool_config){ .fail_timeout = 5 });
	int i, m;

	m = pick(p, 0, 1000);
	pool_release(p, (size_t)m);
	cr_assert(pool_failed(p, (size_t)m, 1000), "max_fails 1: rests");
	cr_assert(pool_resting(p, (size_t)m, 1000));
	for (i = 0; i < 10; i++) { /* only the other until 6000 */
		cr_assert_eq(pick(p, 0, 5999), 1 - m);
		pool_release(p, (size_t)(1 - m));
	}
	cr_assert_not(pool_resting(p, (size_t)m, 6000));
	/* Rested: it gets requests again (recovery). */
	bool seen = false;
	for (i = 0; i < 4; i++) {
		int k = pick(p, 0, 6000);

		seen |= k == m;
		pool_release(p, (size_t)k);
	}
	cr_assert(seen);
	pool_free(p);
}

Test(pool, max_fails_counts_failures_in_a_row)
{
	struct pool *p = pool(2, (struct xz_pool_config){ .max_fails = 3 });

	cr_assert_not(pool_failed(p, 0, 0));
	cr_assert_not(pool_failed(p, 0, 0));
	pool_answered(p, 0); /* an answer between: the count starts over */
	cr_assert_not(pool_failed(p, 0, 0));
	cr_assert_not(pool_failed(p, 0, 0));
	cr_assert(pool_failed(p, 0, 0));
	cr_assert(pool_resting(p, 0, 9999));
	pool_free(p);
}

Test(pool, every_member_resting_is_no_backend)
{
	struct pool *p = pool(2, (struct xz_pool_config){ 0 });
	bool busy;

	pool_failed(p, 0, 0);
	pool_failed(p, 1, 0);
	cr_assert_eq(pool_pick(p, 0, 1, &busy), -1);
	cr_assert_not(busy);
	cr_assert_geq(pool_pick(p, 0, 10000, &busy), 0);
	pool_free(p);
}

Test(pool, one_member_or_max_fails_off_never_rests)
{
	struct pool *one = pool(1, (struct xz_pool_config){ 0 });
	struct pool *off = pool(2, (struct xz_pool_config){ .max_fails = -1 });
	int i;

	for (i = 0; i < 5; i++) {
		cr_assert_not(pool_failed(one, 0, 0));
		cr_assert_not(pool_failed(off, 0, 0));
	}
	cr_assert_eq(pick(one, 0, 1), 0);
	cr_assert_not(pool_resting(off, 0, 1));
	pool_free(one);
	pool_free(off);
}

static int woken[8], nwoken;

static void
wake(void *arg)
{
	woken[nwoken++] = (int)(intptr_t)arg;
}

Test(pool, max_conns_then_the_queue)
{
	struct pool *p =
	    pool(2, (struct xz_pool_config){ .max_conns = 1, .queue_size = 2 });
	struct pool_waiter w[3] = { { .wake = wake, .arg = (void *)1 },
		{ .wake = wake, .arg = (void *)2 },
		{ .wake = wake, .arg = (void *)3 } };
	bool busy;
	int a, b;

	nwoken = 0;
	a = pick(p, 0, 0);
	b = pick(p, 0, 0);
	cr_assert_neq(a, b);
	cr_assert_eq(pool_pick(p, 0, 0, &busy), -1);
	cr_assert(busy, "full, not gone");
	cr_assert_not(pool_has_room(p, 0, 0));
	cr_assert(pool_wait(p, &w[0], false));
	cr_assert(pool_wait(p, &w[1], false));
	cr_assert_not(pool_wait(p, &w[2], false), "queue_size 2");
	cr_assert_eq(pool_waiting(p), 2);
	/* A slot comes free: the first waiter is woken, and takes it. */
	pool_release(p, (size_t)a);
	cr_assert_eq(nwoken, 1);
	cr_assert_eq(woken[0], 1);
	cr_assert(pool_has_room(p, 0, 0));
	cr_assert_eq(pick(p, 0, 0), a);
	/* The second leaves before its turn: nobody is woken for it. */
	pool_unwait(p, &w[1], false);
	cr_assert_eq(pool_waiting(p), 0);
	pool_release(p, (size_t)b);
	cr_assert_eq(nwoken, 1);
	pool_free(p);
}

Test(pool, a_woken_waiter_that_leaves_passes_its_turn_on)
{
	struct pool *p =
	    pool(1, (struct xz_pool_config){ .max_conns = 1, .queue_size = 4 });
	struct pool_waiter w[2] = { { .wake = wake, .arg = (void *)1 },
		{ .wake = wake, .arg = (void *)2 } };

	nwoken = 0;
	cr_assert_eq(pick(p, 0, 0), 0);
	cr_assert(pool_wait(p, &w[0], false));
	cr_assert(pool_wait(p, &w[1], false));
	pool_release(p, 0);
	cr_assert_eq(nwoken, 1);
	/* Waiter 1 went away (its client left) before taking the slot. */
	pool_unwait(p, &w[0], true);
	cr_assert_eq(nwoken, 2);
	cr_assert_eq(woken[1], 2);
	/* Woken ones may queue again at the front. */
	cr_assert(pool_wait(p, &w[1], false));
	cr_assert(pool_wait(p, &w[0], true));
	cr_assert_eq(pick(p, 0, 0), 0);
	pool_release(p, 0);
	cr_assert_eq(woken[2], 1);
	pool_unwait(p, &w[1], false);
	pool_free(p);
}

/* Four threads take and give back slots; never over max_conns. */
struct hammer {
	struct pool *p;
	atomic_int over;
};

static void *
hammer(void *arg)
{
	struct hammer *h = arg;
	bool busy;
	int i, m;

	for (i = 0; i < 100000; i++) {
		if ((m = pool_pick(h->p, 0, 0, &busy)) < 0)
			continue;
		if (pool_active(h->p, (size_t)m) > 2)
			atomic_fetch_add(&h->over, 1);
		pool_release(h->p, (size_t)m);
	}
	return NULL;
}

Test(pool, slots_hold_under_threads)
{
	struct hammer h = { .p = pool(2,
		                (struct xz_pool_config){ .max_conns = 2 }) };
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &h), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&h.over), 0);
	cr_assert_eq(pool_active(h.p, 0), 0);
	cr_assert_eq(pool_active(h.p, 1), 0);
	pool_free(h.p);
}

Test(pool, addresses)
{
	struct pool_addr a;
	char why[256];

	cr_assert_eq(pool_addr_parse("127.0.0.1:4000", &a, why, sizeof(why)),
	    XZ_OK);
	cr_assert_str_eq(a.host, "127.0.0.1");
	cr_assert_eq(a.port, 4000);
	cr_assert_not(a.is_unix);
	cr_assert_eq(pool_addr_parse("[::1]:4001", &a, why, sizeof(why)),
	    XZ_OK);
	cr_assert_str_eq(a.host, "::1");
	cr_assert_eq(a.port, 4001);
	cr_assert_eq(pool_addr_parse("backend.example:9", &a, why, sizeof(why)),
	    XZ_OK);
	cr_assert_str_eq(a.host, "backend.example");
	cr_assert_eq(pool_addr_parse("unix:/run/a.sock", &a, why, sizeof(why)),
	    XZ_OK);
	cr_assert(a.is_unix);
	cr_assert_str_eq(a.path, "/run/a.sock");

	const char *bad[] = { "", "host", ":80", "host:", "host:0",
		"host:65536", "host:80x", "host:-1", "::1:80", "[::1]80",
		"[::1]:", "unix:", "a:b:80", NULL };
	for (int i = 0; bad[i] != NULL; i++) {
		why[0] = '\0';
		cr_assert_eq(pool_addr_parse(bad[i], &a, why, sizeof(why)),
		    XZ_EINVAL, "%s", bad[i]);
		cr_assert_not_null(strstr(why, "backend "), "%s", why);
	}
	char longpath[200];
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	memcpy(longpath, "unix:/", 6);
	cr_assert_eq(pool_addr_parse(longpath, &a, why, sizeof(why)),
	    XZ_EINVAL);
}
