/*
 * pool.c - the choice among a mount's backends: which one a request
 * tries next, which ones are resting after failures (passive health),
 * how many connections each has (max_conns), and the bounded queue of
 * requests waiting for a free one. It knows no socket: scgi.c connects,
 * and reports back each failure (pool_failed) and each answer
 * (pool_answered). Also the one parser of a backend's address string
 * ("unix:/run/a.sock", "127.0.0.1:4000", "[::1]:4000").
 *
 * A pool is shared by every worker thread of the mount that owns it (its
 * state lives in the handler, so a configuration generation owns it with
 * the mount). On the request path everything is an atomic: a choice
 * reads each member's count and rest time and takes a slot with one
 * compare-and-swap. Only the queue, used when every live backend is at
 * max_conns, takes a mutex.
 *
 * Least connections by default: each request goes to the live backend
 * with the fewest connections open, ties broken round robin. With one
 * slow backend beside a fast one, round robin sends each half of the
 * requests and the slow one's queue grows; least connections sends the
 * slow one only what it keeps up with (bench/RESULTS.md, "pool").
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

struct pool_member {
	atomic_int active;         /* connections open now */
	atomic_int fails;          /* failures since the last answer */
	atomic_llong resting_till; /* ms (pool clock) it is skipped until */
};

struct pool {
	size_t n;
	struct xz_pool_config cfg; /* defaults filled in */
	atomic_uint next;          /* round robin; ties of least-conn */
	pthread_mutex_t lock;      /* the queue only */
	struct pool_waiter *head, *tail;
	atomic_int nwaiting;
	struct pool_member m[];
};

void
pool_config_fill(struct xz_pool_config *cfg)
{
	if (cfg->max_fails == 0)
		cfg->max_fails = 1;
	if (cfg->fail_timeout == 0)
		cfg->fail_timeout = 10;
	if (cfg->queue_timeout == 0)
		cfg->queue_timeout = 10;
}

const char *
pool_config_invalid(const struct xz_pool_config *cfg)
{
	if (cfg->balance != XZ_LEAST_CONN && cfg->balance != XZ_ROUND_ROBIN)
		return "balance must be least_conn or round_robin";
	if (!(cfg->fail_timeout >= 0) || cfg->fail_timeout > 1e6)
		return "fail_timeout must be 0 (the default, 10) or more";
	if (!(cfg->connect_timeout >= 0) || cfg->connect_timeout > 1e6)
		return "connect_timeout must be 0 (the timeout) or more";
	if (!(cfg->queue_timeout >= 0) || cfg->queue_timeout > 1e6)
		return "queue_timeout must be 0 (the default, 10) or more";
	if (cfg->max_conns < 0 || cfg->queue_size < 0)
		return "max_conns and queue_size must be 0 or more";
	return NULL;
}

struct pool *
pool_new(size_t n, const struct xz_pool_config *cfg)
{
	struct pool *p;

	if (n == 0 || n > POOL_MAX)
		return NULL;
	if ((p = calloc(1, sizeof(*p) + n * sizeof(p->m[0]))) == NULL)
		return NULL;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return NULL;
	}
	p->n = n;
	if (cfg != NULL)
		p->cfg = *cfg;
	pool_config_fill(&p->cfg);
	/* One backend is never rested: there would be nothing to try. */
	if (n == 1)
		p->cfg.max_fails = -1;
	return p;
}

void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

size_t
pool_size(const struct pool *p)
{
	return p->n;
}

const struct xz_pool_config *
pool_config(const struct pool *p)
{
	return &p->cfg;
}

int
pool_active(struct pool *p, size_t i)
{
	return atomic_load_explicit(&p->m[i].active, memory_order_relaxed);
}

bool
pool_resting(struct pool *p, size_t i, int64_t now)
{
	return atomic_load_explicit(&p->m[i].resting_till,
	           memory_order_relaxed) > now;
}

/* Takes a slot of member i unless it is full: one CAS, retried on a race. */
static bool
pool_take(struct pool *p, size_t i)
{
	atomic_int *a = &p->m[i].active;
	int cur = atomic_load_explicit(a, memory_order_relaxed);

	do {
		if (p->cfg.max_conns > 0 && cur >= p->cfg.max_conns)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(a, &cur, cur + 1,
	    memory_order_acq_rel, memory_order_relaxed));
	return true;
}

/* The eligible member to try first, or -1; *busy: one was only full. */
static int
pool_choose(struct pool *p, uint64_t tried, int64_t now, bool *busy)
{
	size_t start =
	    atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed) % p->n;
	int best = -1, best_active = 0;
	size_t k;

	for (k = 0; k < p->n; k++) {
		size_t i = (start + k) % p->n;
		int active;

		if ((tried >> i) & 1 || pool_resting(p, i, now))
			continue;
		active = pool_active(p, i);
		if (p->cfg.max_conns > 0 && active >= p->cfg.max_conns) {
			*busy = true;
			continue;
		}
		if (p->cfg.balance == XZ_ROUND_ROBIN)
			return (int)i;
		if (best == -1 || active < best_active) {
			best = (int)i;
			best_active = active;
		}
	}
	return best;
}

int
pool_pick(struct pool *p, uint64_t tried, int64_t now, bool *busy)
{
	int i, tries;

	*busy = false;
	/* Another thread may fill the chosen one between look and take. */
	for (tries = 0; tries < 8; tries++) {
		if ((i = pool_choose(p, tried, now, busy)) == -1)
			return -1;
		if (pool_take(p, (size_t)i))
			return i;
		*busy = true;
	}
	return -1;
}

bool
pool_has_room(struct pool *p, uint64_t tried, int64_t now)
{
	bool busy = false;

	return pool_choose(p, tried, now, &busy) != -1;
}

void
pool_release(struct pool *p, size_t i)
{
	struct pool_waiter *w;

	atomic_fetch_sub_explicit(&p->m[i].active, 1, memory_order_acq_rel);
	if (atomic_load_explicit(&p->nwaiting, memory_order_acquire) == 0)
		return;
	pthread_mutex_lock(&p->lock);
	if ((w = p->head) != NULL) {
		p->head = w->next;
		if (p->head == NULL)
			p->tail = NULL;
		w->queued = false;
		atomic_fetch_sub_explicit(&p->nwaiting, 1,
		    memory_order_acq_rel);
		/* Under the lock: pool_unwait cannot free w meanwhile. */
		w->wake(w->arg);
	}
	pthread_mutex_unlock(&p->lock);
}

bool
pool_failed(struct pool *p, size_t i, int64_t now)
{
	struct pool_member *m = &p->m[i];

	if (p->cfg.max_fails < 0)
		return false;
	if (atomic_fetch_add_explicit(&m->fails, 1, memory_order_acq_rel) + 1 <
	    p->cfg.max_fails)
		return false;
	atomic_store_explicit(&m->fails, 0, memory_order_relaxed);
	atomic_store_explicit(&m->resting_till,
	    now + (int64_t)(p->cfg.fail_timeout * 1000), memory_order_relaxed);
	return true;
}

void
pool_answered(struct pool *p, size_t i)
{
	if (atomic_load_explicit(&p->m[i].fails, memory_order_relaxed) != 0)
		atomic_store_explicit(&p->m[i].fails, 0, memory_order_relaxed);
}

bool
pool_wait(struct pool *p, struct pool_waiter *w, bool front)
{
	bool ok = false;

	pthread_mutex_lock(&p->lock);
	if (atomic_load_explicit(&p->nwaiting, memory_order_relaxed) <
	    p->cfg.queue_size) {
		w->queued = true;
		w->next = NULL;
		if (front) {
			w->next = p->head;
			p->head = w;
			if (p->tail == NULL)
				p->tail = w;
		} else {
			if (p->tail != NULL)
				p->tail->next = w;
			else
				p->head = w;
			p->tail = w;
		}
		atomic_fetch_add_explicit(&p->nwaiting, 1,
		    memory_order_acq_rel);
		ok = true;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void
pool_unwait(struct pool *p, struct pool_waiter *w, bool woken)
{
	struct pool_waiter **pp, *prev = NULL, *next;

	pthread_mutex_lock(&p->lock);
	if (w->queued) {
		for (pp = &p->head; *pp != NULL; prev = *pp, pp = &(*pp)->next)
			if (*pp == w) {
				*pp = w->next;
				if (p->tail == w)
					p->tail = prev;
				break;
			}
		w->queued = false;
		atomic_fetch_sub_explicit(&p->nwaiting, 1,
		    memory_order_acq_rel);
	} else if (woken && (next = p->head) != NULL) {
		/* w was given a free slot it will not use: pass it on. */
		p->head = next->next;
		if (p->head == NULL)
			p->tail = NULL;
		next->queued = false;
		atomic_fetch_sub_explicit(&p->nwaiting, 1,
		    memory_order_acq_rel);
		next->wake(next->arg);
	}
	pthread_mutex_unlock(&p->lock);
}

int
pool_waiting(struct pool *p)
{
	return atomic_load_explicit(&p->nwaiting, memory_order_relaxed);
}

/*
 * Addresses.
 */

static int
pool_addr_error(char *why, size_t whylen, const char *what, const char *spec)
{
	snprintf(why, whylen, "backend %s: %s", spec, what);
	return XZ_EINVAL;
}

int
pool_addr_parse(const char *spec, struct pool_addr *a, char *why, size_t whylen)
{
	const char *colon, *host = spec;
	size_t hlen;
	char *end;
	long port;

	memset(a, 0, sizeof(*a));
	if (strncmp(spec, "unix:", 5) == 0) {
		if (spec[5] == '\0' || strlen(spec + 5) >= sizeof(a->path))
			return pool_addr_error(why, whylen,
			    "socket path empty or too long", spec);
		a->is_unix = true;
		strcpy(a->path, spec + 5);
		return XZ_OK;
	}
	if (spec[0] == '[') { /* [v6]:port */
		if ((colon = strstr(spec, "]:")) == NULL)
			return pool_addr_error(why, whylen,
			    "not [address]:port", spec);
		host = spec + 1;
		hlen = (size_t)(colon - host);
		colon++;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL ||
		    memchr(spec, ':', (size_t)(colon - spec)) != NULL)
			return pool_addr_error(why, whylen,
			    "not host:port, [address]:port or unix:PATH", spec);
		hlen = (size_t)(colon - spec);
	}
	if (hlen == 0 || hlen >= sizeof(a->host))
		return pool_addr_error(why, whylen, "host empty or too long",
		    spec);
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port < 1 ||
	    port > 65535)
		return pool_addr_error(why, whylen, "port not in 1..65535",
		    spec);
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = (int)port;
	return XZ_OK;
}
