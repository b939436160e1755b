/*
 * admit.c - admission control: the global connection limit and the
 * per-address one, shared by every worker thread.
 *
 * A connection over a limit is closed as soon as it is accepted, before
 * any TLS work: an attacker holding many connections costs us one
 * accept(2) and one close(2) each. The per-address counts live in a
 * small hash table behind one mutex, touched twice per connection.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

#define ADMIT_BUCKETS 4096

/*
 * Descriptors kept out of the default connection count: the ones opened
 * for a moment (a CGI script and its child's pipe ends while it is
 * spawned, a log reopened) and anything opened later by the app itself.
 */
#define ADMIT_FD_RESERVE 32

struct admit_count {
	struct admit_key key;
	unsigned count;
	struct admit_count *next;
};

struct admit {
	unsigned max_total, max_per_addr;
	unsigned total;
	pthread_mutex_t lock;
	struct admit_count *buckets[ADMIT_BUCKETS];
};

struct admit *
admit_new(unsigned max_total, unsigned max_per_addr)
{
	struct admit *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->max_total = max_total;
	a->max_per_addr = max_per_addr;
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void
admit_free(struct admit *a)
{
	struct admit_count *n, *next;
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < ADMIT_BUCKETS; i++)
		for (n = a->buckets[i]; n != NULL; n = next) {
			next = n->next;
			free(n);
		}
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/*
 * Half of what the limit leaves, as HAProxy derives its default maxconn:
 * a connection holds its socket and, while its handler runs, about one
 * more (the file it sends, the backend's socket). A CGI script holds
 * three (its output, its errors, its pidfd); should a burst of them still
 * run the process dry, accept pauses (server.c) and the spawn answers 42.
 */
unsigned
admit_default_max(unsigned long fd_limit, unsigned long fds_open)
{
	unsigned long spare;

	if (fd_limit < fds_open + ADMIT_FD_RESERVE + 2)
		return 1; /* a limit that low: one at a time, still served */
	spare = (fd_limit - fds_open - ADMIT_FD_RESERVE) / 2;
	return spare > UINT_MAX ? UINT_MAX : (unsigned)spare;
}

/*
 * The address alone (no port): IPv4 as its 4 bytes, IPv6 as 16. An IPv4
 * client seen as ::ffff:a.b.c.d (a dual-stack listener, a PROXY header
 * that writes it so) is the same client as a.b.c.d: one count.
 */
static void
admit_key_of(const struct sockaddr *sa, struct admit_key *k)
{
	const struct in6_addr *a6;

	memset(k, 0, sizeof(*k));
	if (sa == NULL)
		return;
	k->family = sa->sa_family;
	if (sa->sa_family == AF_INET)
		memcpy(k->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6) {
		a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			k->family = AF_INET;
			memcpy(k->addr, &a6->s6_addr[12], 4);
		} else
			memcpy(k->addr, a6, 16);
	}
}

static size_t
admit_hash(const struct admit_key *k)
{
	size_t h = 2166136261u, i; /* FNV-1a */

	for (i = 0; i < sizeof(k->addr); i++)
		h = (h ^ k->addr[i]) * 16777619u;
	return h % ADMIT_BUCKETS;
}

static struct admit_count **
admit_find(struct admit *a, const struct admit_key *k)
{
	struct admit_count **p = &a->buckets[admit_hash(k)];

	while (*p != NULL && memcmp(&(*p)->key, k, sizeof(*k)) != 0)
		p = &(*p)->next;
	return p;
}

/* Counts the connection in, or says no (nothing counted). */
static bool
admit_take_locked(struct admit *a, const struct admit_key *k)
{
	struct admit_count **p;

	if (a->max_total > 0 && a->total >= a->max_total)
		return false;
	if (a->max_per_addr > 0 && k->family != AF_UNSPEC) {
		p = admit_find(a, k);
		if (*p == NULL) {
			if ((*p = calloc(1, sizeof(**p))) == NULL)
				return false;
			(*p)->key = *k;
		}
		if ((*p)->count >= a->max_per_addr)
			return false;
		(*p)->count++;
	}
	a->total++;
	return true;
}

bool
admit_take(struct admit *a, const struct sockaddr *sa, struct admit_key *k)
{
	bool ok;

	admit_key_of(sa, k);
	if (a->max_total == 0 && a->max_per_addr == 0)
		return true;
	pthread_mutex_lock(&a->lock);
	ok = admit_take_locked(a, k);
	pthread_mutex_unlock(&a->lock);
	return ok;
}

void
admit_release(struct admit *a, const struct admit_key *k)
{
	struct admit_count **p, *gone;

	if (a->max_total == 0 && a->max_per_addr == 0)
		return;
	pthread_mutex_lock(&a->lock);
	a->total--;
	if (a->max_per_addr > 0 && k->family != AF_UNSPEC &&
	    *(p = admit_find(a, k)) != NULL && --(*p)->count == 0) {
		gone = *p;
		*p = gone->next;
		free(gone);
	}
	pthread_mutex_unlock(&a->lock);
}

bool
admit_address(struct admit *a, const struct sockaddr *sa, struct admit_key *k)
{
	struct admit_key nk;
	struct admit_count **p;
	bool ok = true;

	admit_key_of(sa, &nk);
	if (a->max_per_addr == 0 || nk.family == AF_UNSPEC) {
		*k = nk;
		return true;
	}
	pthread_mutex_lock(&a->lock);
	p = admit_find(a, &nk);
	if (*p == NULL && (*p = calloc(1, sizeof(**p))) != NULL)
		(*p)->key = nk;
	if (*p == NULL || (*p)->count >= a->max_per_addr)
		ok = false;
	else
		(*p)->count++;
	pthread_mutex_unlock(&a->lock);
	if (ok)
		*k = nk;
	return ok;
}
