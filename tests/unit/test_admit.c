/*
 * test_admit.c - the global and per-address connection limits.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <limits.h>
#include <string.h>

#include "xz_private.h"

static struct sockaddr_in
v4(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)port) };

	inet_pton(AF_INET, addr, &sin.sin_addr);
	return sin;
}

Test(admit, no_limits_admit_all)
{
	struct admit *a = admit_new(0, 0);
	struct sockaddr_in sin = v4("10.0.0.1", 1);
	struct admit_key k;
	int i;

	for (i = 0; i < 1000; i++)
		cr_assert(admit_take(a, (struct sockaddr *)&sin, &k));
	admit_free(a);
}

Test(admit, global_limit_and_release)
{
	struct admit *a = admit_new(3, 0);
	struct sockaddr_in sin = v4("10.0.0.1", 1);
	struct admit_key k[4];

	cr_assert(admit_take(a, (struct sockaddr *)&sin, &k[0]));
	cr_assert(admit_take(a, (struct sockaddr *)&sin, &k[1]));
	cr_assert(admit_take(a, (struct sockaddr *)&sin, &k[2]));
	cr_assert(!admit_take(a, (struct sockaddr *)&sin, &k[3]));
	admit_release(a, &k[0]);
	cr_assert(admit_take(a, (struct sockaddr *)&sin, &k[3]));
	admit_free(a);
}

Test(admit, per_address_ignores_the_port)
{
	struct admit *a = admit_new(0, 2);
	struct sockaddr_in a1 = v4("10.0.0.1", 1), a2 = v4("10.0.0.1", 2);
	struct sockaddr_in b = v4("10.0.0.2", 1);
	struct sockaddr_in6 six = { .sin6_family = AF_INET6 };
	struct admit_key k[6];

	inet_pton(AF_INET6, "::1", &six.sin6_addr);
	cr_assert(admit_take(a, (struct sockaddr *)&a1, &k[0]));
	cr_assert(admit_take(a, (struct sockaddr *)&a2, &k[1]));
	cr_assert(!admit_take(a, (struct sockaddr *)&a1, &k[2]));
	cr_assert(admit_take(a, (struct sockaddr *)&b, &k[3]));
	cr_assert(admit_take(a, (struct sockaddr *)&six, &k[4]));
	admit_release(a, &k[0]);
	cr_assert(admit_take(a, (struct sockaddr *)&a2, &k[5]));
	admit_release(a, &k[1]);
	admit_release(a, &k[3]);
	admit_release(a, &k[4]);
	admit_release(a, &k[5]);
	admit_free(a);
}

/* ::ffff:10.0.0.1 (dual stack, some PROXY headers) is 10.0.0.1. */
Test(admit, v4_mapped_is_the_v4_client)
{
	struct admit *a = admit_new(0, 2);
	struct sockaddr_in plain = v4("10.0.0.1", 1);
	struct sockaddr_in6 mapped = { .sin6_family = AF_INET6 };
	struct admit_key k[3];

	inet_pton(AF_INET6, "::ffff:10.0.0.1", &mapped.sin6_addr);
	cr_assert(admit_take(a, (struct sockaddr *)&plain, &k[0]));
	cr_assert(admit_take(a, (struct sockaddr *)&mapped, &k[1]));
	cr_assert(!admit_take(a, (struct sockaddr *)&mapped, &k[2]));
	cr_assert(!admit_take(a, (struct sockaddr *)&plain, &k[2]));
	admit_release(a, &k[1]);
	cr_assert(admit_take(a, (struct sockaddr *)&plain, &k[2]));
	admit_release(a, &k[0]);
	admit_release(a, &k[2]);
	admit_free(a);
}

Test(admit, default_max_from_the_descriptor_limit)
{
	/* (limit - open - 32) / 2 */
	cr_expect_eq(admit_default_max(64, 18), 7);
	cr_expect_eq(admit_default_max(20000, 20), 9974);
	cr_expect_eq(admit_default_max(1048576, 100), 524222);
	/* a limit too low for the reserve still serves one at a time */
	cr_expect_eq(admit_default_max(52, 18), 1);
	cr_expect_eq(admit_default_max(40, 18), 1);
	cr_expect_eq(admit_default_max(0, 0), 1);
	/* unlimited */
	cr_expect_eq(admit_default_max(ULONG_MAX, 20), UINT_MAX);
}

/*
 * A PROXY listener: the peer (the proxy) counts only in the total; the
 * header's client, once read, against its own address.
 */
Test(admit, proxied_connections_count_the_header_address)
{
	struct admit *a = admit_new(4, 2);
	struct sockaddr_in c1 = v4("192.0.2.1", 1), c2 = v4("192.0.2.2", 1);
	struct admit_key k[5];
	int i;

	for (i = 0; i < 4; i++)
		cr_assert(admit_take(a, NULL, &k[i]), "%d", i);
	cr_assert(!admit_take(a, NULL, &k[4]), "the total still holds");
	cr_assert(admit_address(a, (struct sockaddr *)&c1, &k[0]));
	cr_assert(admit_address(a, (struct sockaddr *)&c1, &k[1]));
	cr_assert(!admit_address(a, (struct sockaddr *)&c1, &k[2]),
	    "a third from c1");
	cr_assert(admit_address(a, (struct sockaddr *)&c2, &k[3]));
	/* Refused: the connection closes, releasing its total only. */
	admit_release(a, &k[2]);
	admit_release(a, &k[0]);
	cr_assert(admit_take(a, NULL, &k[4]));
	cr_assert(admit_address(a, (struct sockaddr *)&c1, &k[4]),
	    "c1's count went down");
	admit_release(a, &k[1]);
	admit_release(a, &k[3]);
	admit_release(a, &k[4]);
	for (i = 0; i < 2; i++)
		cr_assert(admit_take(a, (struct sockaddr *)&c1, &k[i]));
	cr_assert(!admit_take(a, (struct sockaddr *)&c1, &k[2]),
	    "every count back where it was");
	admit_free(a);
}
