/*
 * pool_cost.c - what choosing a backend costs: pool_pick + pool_release
 * (pool.c) in a loop, ns per request, for a pool of one and of two. The
 * server-CPU rows of `make bench` cannot see a difference this small
 * under their noise; this measures it alone.
 *
 *   cc -O2 -D_GNU_SOURCE -Iinclude -Isrc -o bench/build/pool_cost \
 *       bench/pool_cost.c build/libxitzin.a -lpthread
 *   bench/build/pool_cost
 */
#include <stdio.h>
#include <time.h>

#include "xz_private.h"

#define N 20000000

static double
ns_per_pick(size_t members, enum xz_balance balance)
{
	struct xz_pool_config c = { .balance = balance };
	struct pool *p = pool_new(members, &c);
	struct timespec a, b;
	bool busy;
	long i;
	int m;

	if (p == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < N; i++) {
		m = pool_pick(p, 0, 0, &busy);
		pool_release(p, (size_t)m);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	pool_free(p);
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 +
	           (double)(b.tv_nsec - a.tv_nsec)) /
	       N;
}

int
main(void)
{
	printf("pool of 1: %.1f ns per pick+release\n",
	    ns_per_pick(1, XZ_LEAST_CONN));
	printf("pool of 2, least_conn: %.1f ns\n",
	    ns_per_pick(2, XZ_LEAST_CONN));
	printf("pool of 2, round_robin: %.1f ns\n",
	    ns_per_pick(2, XZ_ROUND_ROBIN));
	return 0;
}
