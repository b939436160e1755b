/*
 * ratelimit.c - per-client request rate limits (xz_rate_limit): a token
 * bucket per client address, per rule (the whole app, or the paths under
 * a prefix), as Molly Brown and Jetforce do: over the limit a request is
 * answered 44 with the seconds to wait, before any handler runs.
 *
 * Memory is bounded whatever the number of addresses: each rule has a
 * fixed table of RL_SLOTS buckets, RL_WAYS to a set (a set-associative
 * cache, as a CPU's). An address hashes, with a key drawn at start (so a
 * client cannot aim at one set), to one set. A new address takes an empty
 * slot, else one whose bucket has refilled to the brim (forgetting it
 * changes nothing: a new bucket starts full), else the least recently
 * used one. Only the last case forgets something, and only when RL_WAYS
 * clients, all over their rate, meet in one set: the one forgotten gets a
 * full bucket again, which a client with that many addresses could get
 * anyway by using its other addresses.
 *
 * The workers share the tables: one mutex per rule, held for a lookup of
 * RL_WAYS slots.
 */
#include <sys/random.h>

#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xz_private.h"

#define RL_WAYS 8
#define RL_MAX 1e6            /* rate (a second) and burst */
#define RL_LOG_EVERY_MS 60000 /* one log line per client per minute */

/* 32 bytes: RL_SLOTS of them are a table. */
struct rl_slot {
	unsigned char addr[16]; /* IPv4 as v4-mapped IPv6 */
	uint64_t seen_ms;       /* last request, ratelimit's clock; 0: empty */
	float tokens;           /* as of seen_ms */
	uint32_t logged_s;      /* last log line, seconds + 1; 0: never */
};

struct rl_rule {
	char *prefix; /* "" for the whole app */
	size_t plen;
	double rate; /* tokens a second; 0: no limit under prefix */
	double burst;
	pthread_mutex_t lock;
	struct rl_slot *slots; /* RL_SLOTS, NULL when rate is 0 */
	uint64_t seed[2];
};

struct ratelimit {
	struct rl_rule **rules;
	size_t n;
};

/* ceil() for 0 <= x < 2^53, without libm. */
static double
rl_ceil(double x)
{
	double t = (double)(uint64_t)x;

	return t < x ? t + 1 : t;
}

static uint64_t
rl_mix(uint64_t x)
{
	/* splitmix64's finaliser: each bit of x moves about half the bits. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static size_t
rl_set(const struct rl_rule *r, const unsigned char addr[16])
{
	uint64_t a, b;

	memcpy(&a, addr, 8);
	memcpy(&b, addr + 8, 8);
	return (size_t)(rl_mix(rl_mix(a ^ r->seed[0]) ^ b ^ r->seed[1]) %
	                (RL_SLOTS / RL_WAYS));
}

void
ratelimit_key(const char *addr, unsigned char key[16])
{
	struct in_addr v4;

	memset(key, 0, 16);
	if (inet_pton(AF_INET6, addr, key) == 1)
		return;
	if (inet_pton(AF_INET, addr, &v4) == 1) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &v4, 4);
		return;
	}
	/* Not an address (the test client's ""): its first bytes. */
	memcpy(key, addr, strnlen(addr, 16));
}

static float
rl_refill(const struct rl_rule *r, const struct rl_slot *s, uint64_t now_ms)
{
	/* Workers read the clock before the lock: now may be a bit behind. */
	uint64_t ms = now_ms > s->seen_ms ? now_ms - s->seen_ms : 0;
	double t = s->tokens + (double)ms / 1000 * r->rate;

	return (float)(t < r->burst ? t : r->burst);
}

/* The slot for addr: its own, or the one it takes over (see the top). */
static struct rl_slot *
rl_find(struct rl_rule *r, const unsigned char addr[16], uint64_t now_ms)
{
	struct rl_slot *set = &r->slots[rl_set(r, addr) * RL_WAYS], *pick;
	size_t i;

	pick = &set[0];
	for (i = 0; i < RL_WAYS; i++)
		if (set[i].seen_ms != 0 && memcmp(set[i].addr, addr, 16) == 0)
			return &set[i];
	for (i = 0; i < RL_WAYS; i++) {
		if (set[i].seen_ms == 0 ||
		    rl_refill(r, &set[i], now_ms) >= r->burst) {
			pick = &set[i];
			break;
		}
		if (set[i].seen_ms < pick->seen_ms)
			pick = &set[i];
	}
	memcpy(pick->addr, addr, 16);
	pick->seen_ms = now_ms;
	pick->tokens = (float)r->burst;
	pick->logged_s = 0;
	return pick;
}

double
ratelimit_take(struct rl_rule *r, const unsigned char addr[16], uint64_t now_ms,
    bool *log)
{
	struct rl_slot *s;
	double wait = 0;
	uint32_t now_s;

	*log = false;
	if (r->slots == NULL)
		return 0;
	now_ms++; /* 0 marks an empty slot */
	now_s = (uint32_t)(now_ms / 1000) + 1;
	pthread_mutex_lock(&r->lock);
	s = rl_find(r, addr, now_ms);
	s->tokens = rl_refill(r, s, now_ms);
	s->seen_ms = now_ms;
	if (s->tokens >= 1) {
		s->tokens -= 1;
	} else {
		wait = (1 - s->tokens) / r->rate;
		if (s->logged_s == 0 ||
		    now_s - s->logged_s >= RL_LOG_EVERY_MS / 1000) {
			s->logged_s = now_s;
			*log = true;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return wait;
}

static uint64_t
rl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The rule for path: the longest prefix that matches by segment. */
static struct rl_rule *
rl_rule_for(const struct ratelimit *rl, const char *path)
{
	struct rl_rule *best = NULL;
	size_t i;

	for (i = 0; i < rl->n; i++) {
		struct rl_rule *r = rl->rules[i];

		if (strncmp(path, r->prefix, r->plen) != 0 ||
		    (path[r->plen] != '\0' && path[r->plen] != '/'))
			continue;
		if (best == NULL || r->plen > best->plen)
			best = r;
	}
	return best;
}

static int
rl_before(struct xz_request *req, void *arg)
{
	struct rl_rule *r = rl_rule_for(arg, xz_request_path(req));
	const char *addr = xz_request_remote_addr(req);
	unsigned char key[16];
	char meta[24];
	double wait;
	bool log;

	if (r == NULL || r->slots == NULL)
		return XZ_OK;
	ratelimit_key(addr, key);
	if ((wait = ratelimit_take(r, key, rl_now_ms(), &log)) == 0)
		return XZ_OK;
	if (log)
		log_warnx("rate limit: %s over %g/s (burst %g) under %s, "
		          "answered 44 (logged once a minute)",
		    addr, r->rate, r->burst, r->plen ? r->prefix : "/");
	metrics_rate_limited();
	/* Gemini's 44: the meta is the whole seconds to wait. */
	snprintf(meta, sizeof(meta), "%.0f", rl_ceil(wait));
	return xz_respond(req, 44, meta);
}

static const struct xz_middleware rl_middleware = { rl_before, NULL };

static void
rl_rule_free(struct rl_rule *r)
{
	if (r == NULL)
		return;
	free(r->prefix);
	free(r->slots);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

struct rl_rule *
ratelimit_rule_new(const char *prefix, double rate, double burst)
{
	struct rl_rule *r = calloc(1, sizeof(*r));
	size_t plen = strlen(prefix);

	if (r == NULL)
		return NULL;
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--; /* "/" and "/api/" are "" and "/api" */
	pthread_mutex_init(&r->lock, NULL);
	r->rate = rate;
	r->burst = burst;
	r->plen = plen;
	if ((r->prefix = strndup(prefix, plen)) == NULL)
		goto fail;
	if (rate > 0 &&
	    (r->slots = calloc(RL_SLOTS, sizeof(*r->slots))) == NULL)
		goto fail;
	if (getrandom(r->seed, sizeof(r->seed), 0) != sizeof(r->seed))
		r->seed[0] = rl_mix((uintptr_t)r ^ rl_now_ms());
	return r;
fail:
	rl_rule_free(r);
	return NULL;
}

void
ratelimit_rule_free(struct rl_rule *r)
{
	rl_rule_free(r);
}

size_t
ratelimit_rule_bytes(const struct rl_rule *r)
{
	return sizeof(*r) + r->plen + 1 +
	       (r->slots != NULL ? RL_SLOTS * sizeof(struct rl_slot) : 0);
}

static void ratelimit_free_arg(void *rl);

static int
ratelimit_add(struct xz_app *app, const char *prefix, double rate, double burst,
    const char **why)
{
	struct ratelimit *rl = app_middleware_arg(app, &rl_middleware);
	struct rl_rule **grown, *r;
	size_t i;

	if (prefix == NULL)
		prefix = "/";
	if (rate > 0 && burst == 0)
		burst = 2 * rate < 1 ? 1 : rl_ceil(2 * rate); /* documented */
	if (prefix[0] != '/' || !(rate >= 0) || !isfinite(rate) ||
	    rate > RL_MAX || !(burst >= 0) || burst > RL_MAX ||
	    (rate > 0 && burst < 1)) {
		*why = "needs a prefix starting with '/', a rate from 0 (no "
		       "limit) to 1000000 a second and a burst from 1 to "
		       "1000000";
		return XZ_EINVAL;
	}
	if (rl == NULL) {
		/* The app frees rl (app_adopt), which app.c never calls. */
		if ((rl = calloc(1, sizeof(*rl))) == NULL ||
		    app_adopt(app, rl, ratelimit_free_arg) != XZ_OK ||
		    xz_middleware(app, &rl_middleware, rl) != XZ_OK)
			goto nomem;
	}
	if ((r = ratelimit_rule_new(prefix, rate, burst)) == NULL)
		goto nomem;
	for (i = 0; i < rl->n; i++)
		if (strcmp(rl->rules[i]->prefix, r->prefix) == 0) {
			rl_rule_free(r);
			*why = "already limited";
			return XZ_EINVAL;
		}
	if ((grown = realloc(rl->rules, (rl->n + 1) * sizeof(*grown))) ==
	    NULL) {
		rl_rule_free(r);
		goto nomem;
	}
	rl->rules = grown;
	rl->rules[rl->n++] = r;
	return XZ_OK;
nomem:
	*why = "out of memory";
	return XZ_ENOMEM;
}

int
xz_rate_limit(struct xz_app *app, const char *prefix, double rate, double burst)
{
	const char *why;
	int rc;

	rc = ratelimit_add(app, prefix, rate, burst, &why);
	if (rc != XZ_OK)
		app_set_error(app, "rate limit %s: %s", prefix ? prefix : "/",
		    why);
	return rc;
}

static void
ratelimit_free_arg(void *arg)
{
	ratelimit_free(arg);
}

void
ratelimit_free(struct ratelimit *rl)
{
	size_t i;

	if (rl == NULL)
		return;
	for (i = 0; i < rl->n; i++)
		rl_rule_free(rl->rules[i]);
	free(rl->rules);
	free(rl);
}
