/*
 * metrics.c - counters for operators: the Prometheus text format (0.0.4)
 * and a health check, served over HTTP (libevent's evhttp) on the main
 * thread's loop, from the address metrics_listen names; off by default.
 *
 * Each worker thread owns one struct metrics_counters and is the only
 * writer of it: a bump is a relaxed load and store (a plain add on x86,
 * no lock prefix, no shared cache line). A scrape reads every worker's
 * counters with relaxed loads and sums them: a figure may be a request
 * behind, never torn. The request path finds its worker's counters
 * through a thread-local pointer (metrics_worker_enter), so the layers
 * that count (conn.c, relay.c, scgi.c, ratelimit.c) pass nothing around,
 * and outside a server's worker (the test client) every bump is a no-op.
 *
 * Mount and backend names are process-wide tables filled on first sight
 * (under a lock, once per name; looked up without one after that): a
 * name's slot in each worker's fixed arrays is its index. Names past the
 * tables' size are counted together under "other".
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "xz_private.h"

/* Upper bounds of the latency buckets, seconds (+Inf comes after). */
static const double metrics_bounds[METRICS_BUCKETS] = { 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

static const char *const metrics_fail_name[METRICS_NFAILS] = { "connect",
	"connect_timeout", "timeout" };

/* Index 0 of each table is "other": the names that did not fit. */
#define METRICS_NAME_LEN 128
struct metrics_names {
	pthread_mutex_t lock;
	int n; /* slots used, 1..; read with acquire */
	char name[METRICS_MAX_NAMES][METRICS_NAME_LEN];
};

static struct metrics_names metrics_mounts = { PTHREAD_MUTEX_INITIALIZER, 1,
	{ "other" } };
static struct metrics_names metrics_backends = { PTHREAD_MUTEX_INITIALIZER, 1,
	{ "other" } };

/* CGI scripts alive, across the process (they outlive a worker's view). */
static long metrics_cgi_running;

/* One worker's counters, written by that worker's thread only. */
struct metrics_counters {
	uint64_t requests[METRICS_MAX_NAMES][METRICS_STATUSES];
	uint64_t latency[METRICS_BUCKETS + 1]; /* per bucket, not cumulative */
	uint64_t latency_us;                   /* their sum */
	uint64_t bytes;
	uint64_t conns_opened, conns_closed;
	uint64_t handshakes_full, handshakes_resumed, hello_retries;
	uint64_t backend[METRICS_MAX_NAMES][METRICS_NFAILS];
	uint64_t rate_limited;
} __attribute__((aligned(64)));

struct metrics {
	int fd; /* the listening socket, until evhttp takes it */
	int port;
	struct evhttp *http;
	struct metrics_counters *workers;
	int nworkers;
	int stopping;          /* atomic */
	unsigned long reloads; /* atomic */
};

/* This thread's worker counters; NULL outside a server's worker. */
static __thread struct metrics_counters *metrics_mine
    __attribute__((tls_model("initial-exec")));

/* The owner's bump: no other thread writes p, a scrape only reads it. */
static inline void
metrics_add(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n,
	    __ATOMIC_RELAXED);
}

static inline uint64_t
metrics_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* name's slot in t, made on first sight; 0 ("other") when t is full. */
static int
metrics_name_id(struct metrics_names *t, const char *name)
{
	int i, n = __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);

	for (i = 1; i < n; i++)
		if (strncmp(t->name[i], name, METRICS_NAME_LEN - 1) == 0)
			return i;
	pthread_mutex_lock(&t->lock);
	for (i = n; i < t->n; i++) /* added since the look above */
		if (strncmp(t->name[i], name, METRICS_NAME_LEN - 1) == 0)
			break;
	if (i == t->n && t->n < METRICS_MAX_NAMES) {
		snprintf(t->name[i], METRICS_NAME_LEN, "%s", name);
		__atomic_store_n(&t->n, i + 1, __ATOMIC_RELEASE);
	} else if (i == t->n)
		i = 0;
	pthread_mutex_unlock(&t->lock);
	return i;
}

int
metrics_backend_id(const char *name)
{
	return metrics_name_id(&metrics_backends, name);
}

void
metrics_request(int status, const char *mount, size_t bytes, double ms)
{
	struct metrics_counters *m = metrics_mine;
	int b = 0;

	if (m == NULL)
		return;
	if (status < 10 || status > 69)
		status = 9; /* no answer: "none" */
	metrics_add(
	    &m->requests[metrics_name_id(&metrics_mounts, mount)][status - 9],
	    1);
	while (b < METRICS_BUCKETS && ms > metrics_bounds[b] * 1e3)
		b++;
	metrics_add(&m->latency[b], 1);
	metrics_add(&m->latency_us, ms > 0 ? (uint64_t)(ms * 1e3) : 0);
	metrics_add(&m->bytes, bytes);
}

void
metrics_conn_opened(void)
{
	if (metrics_mine != NULL)
		metrics_add(&metrics_mine->conns_opened, 1);
}

void
metrics_conn_closed(void)
{
	if (metrics_mine != NULL)
		metrics_add(&metrics_mine->conns_closed, 1);
}

void
metrics_handshake(bool resumed, bool retried)
{
	struct metrics_counters *m = metrics_mine;

	if (m == NULL)
		return;
	metrics_add(resumed ? &m->handshakes_resumed : &m->handshakes_full, 1);
	if (retried)
		metrics_add(&m->hello_retries, 1);
}

void
metrics_backend_failed(int backend, enum metrics_fail kind)
{
	if (metrics_mine == NULL || backend <= 0 ||
	    backend >= METRICS_MAX_NAMES || (unsigned)kind >= METRICS_NFAILS)
		return;
	metrics_add(&metrics_mine->backend[backend][kind], 1);
}

void
metrics_rate_limited(void)
{
	if (metrics_mine != NULL)
		metrics_add(&metrics_mine->rate_limited, 1);
}

void
metrics_cgi_process(int delta)
{
	__atomic_add_fetch(&metrics_cgi_running, delta, __ATOMIC_RELAXED);
}

void
metrics_reload(struct metrics *m)
{
	if (m != NULL)
		__atomic_add_fetch(&m->reloads, 1, __ATOMIC_RELAXED);
}

void
metrics_set_stopping(struct metrics *m)
{
	if (m != NULL)
		__atomic_store_n(&m->stopping, 1, __ATOMIC_RELAXED);
}

void
metrics_worker_enter(struct metrics *m, int worker)
{
	metrics_mine = m != NULL && worker >= 0 && worker < m->nworkers ?
	                   &m->workers[worker] :
	                   NULL;
}

void
metrics_worker_leave(void)
{
	metrics_mine = NULL;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool
metrics_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)
		                  ->sin_addr.s_addr) >>
		           24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* "HOST:PORT" or "[V6]:PORT" resolved; the caller frees *res. */
static int
metrics_resolve(const char *spec, struct addrinfo **res, char *err,
    size_t errlen)
{
	struct addrinfo hints = { 0 };
	const char *colon = strrchr(spec, ':');
	char host[256];
	size_t len;
	int rc;

	if (colon == NULL || colon == spec || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atoi(colon + 1) > 65535) {
		snprintf(err, errlen,
		    "metrics_listen %s: not HOST:PORT (127.0.0.1:9165)", spec);
		return XZ_EINVAL;
	}
	len = (size_t)(colon - spec);
	if (spec[0] == '[' && len >= 2 && spec[len - 1] == ']') {
		spec++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(host)) {
		snprintf(err, errlen, "metrics_listen: no host");
		return XZ_EINVAL;
	}
	memcpy(host, spec, len);
	host[len] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, colon + 1, &hints, res)) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", host,
		    gai_strerror(rc));
		return XZ_EINVAL;
	}
	return XZ_OK;
}

/*
 * Counters tell the world about traffic and backends (their addresses are
 * labels): only the local host may ask, unless the operator says so.
 */
static int
metrics_check_addr(const char *spec, const struct addrinfo *ai,
    bool allow_remote, char *err, size_t errlen)
{
	if (allow_remote || metrics_is_loopback(ai->ai_addr))
		return XZ_OK;
	snprintf(err, errlen,
	    "metrics_listen %s: not a loopback address (metrics would be "
	    "public; set metrics_allow_remote = true to allow it)",
	    spec);
	return XZ_EINVAL;
}

int
metrics_check_listen(const char *spec, bool allow_remote, char *err,
    size_t errlen)
{
	struct addrinfo *res;
	int rc;

	if ((rc = metrics_resolve(spec, &res, err, errlen)) != XZ_OK)
		return rc;
	rc = metrics_check_addr(spec, res, allow_remote, err, errlen);
	freeaddrinfo(res);
	return rc;
}

/* Without SO_REUSEPORT: a second instance on the address is refused. */
static int
metrics_bind(struct metrics *m, const char *spec, const struct addrinfo *ai,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int on = 1;

	m->fd = socket(ai->ai_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd == -1 ||
	    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) ==
	        -1 ||
	    bind(m->fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(m->fd, 64) == -1 ||
	    getsockname(m->fd, (struct sockaddr *)&ss, &sslen) == -1) {
		snprintf(err, errlen, "metrics_listen %s: %s", spec,
		    strerror(errno));
		return XZ_EIO;
	}
	m->port = ntohs(ss.ss_family == AF_INET6 ?
	                    ((struct sockaddr_in6 *)&ss)->sin6_port :
	                    ((struct sockaddr_in *)&ss)->sin_port);
	return XZ_OK;
}

struct metrics *
metrics_new(const char *spec, bool allow_remote, int nworkers, char *err,
    size_t errlen)
{
	struct metrics *m;
	struct addrinfo *res;
	int rc;

	if (metrics_resolve(spec, &res, err, errlen) != XZ_OK)
		return NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->workers = aligned_alloc(64,
	         sizeof(*m->workers) * (size_t)nworkers)) == NULL) {
		snprintf(err, errlen, "out of memory");
		freeaddrinfo(res);
		free(m);
		return NULL;
	}
	memset(m->workers, 0, sizeof(*m->workers) * (size_t)nworkers);
	m->nworkers = nworkers;
	m->fd = -1;
	if ((rc = metrics_check_addr(spec, res, allow_remote, err, errlen)) ==
	    XZ_OK)
		rc = metrics_bind(m, spec, res, err, errlen);
	freeaddrinfo(res);
	if (rc != XZ_OK) {
		metrics_free(m);
		return NULL;
	}
	return m;
}

int
metrics_port(const struct metrics *m)
{
	return m != NULL ? m->port : -1;
}

/* A label value: \ " and newline escaped (the text format's rule). */
static void
metrics_label(struct evbuffer *out, const char *v)
{
	for (; *v != '\0'; v++)
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(out, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
}

static void
metrics_head(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* Every worker's counters added up into sum. */
static void
metrics_sum(const struct metrics *m, struct metrics_counters *sum)
{
	const uint64_t *src;
	uint64_t *dst = (uint64_t *)sum;
	size_t i, n = sizeof(*sum) / sizeof(uint64_t);
	int w;

	memset(sum, 0, sizeof(*sum));
	for (w = 0; w < m->nworkers; w++) {
		src = (const uint64_t *)&m->workers[w];
		for (i = 0; i < n; i++)
			dst[i] += metrics_get(&src[i]);
	}
}

static void
metrics_write_requests(struct evbuffer *out, const struct metrics_counters *s)
{
	int i, st, n = __atomic_load_n(&metrics_mounts.n, __ATOMIC_ACQUIRE);

	metrics_head(out, "xitzin_requests_total", "counter",
	    "Requests answered, by mount (routes: C routes; none: answered "
	    "before any handler) and status (none: no answer).");
	for (i = 0; i < n; i++)
		for (st = 0; st < METRICS_STATUSES; st++) {
			if (s->requests[i][st] == 0)
				continue;
			evbuffer_add(out, "xitzin_requests_total{mount=\"", 29);
			metrics_label(out, metrics_mounts.name[i]);
			if (st == 0)
				evbuffer_add_printf(out, "\",status=\"none\"}");
			else
				evbuffer_add_printf(out, "\",status=\"%d\"}",
				    st + 9);
			evbuffer_add_printf(out, " %llu\n",
			    (unsigned long long)s->requests[i][st]);
		}
}

static void
metrics_write_latency(struct evbuffer *out, const struct metrics_counters *s)
{
	uint64_t cum = 0;
	int b;

	metrics_head(out, "xitzin_request_duration_seconds", "histogram",
	    "From accept to the end of the answer (TLS handshake included).");
	for (b = 0; b < METRICS_BUCKETS; b++) {
		cum += s->latency[b];
		evbuffer_add_printf(out,
		    "xitzin_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    metrics_bounds[b], (unsigned long long)cum);
	}
	cum += s->latency[METRICS_BUCKETS];
	evbuffer_add_printf(out,
	    "xitzin_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "xitzin_request_duration_seconds_sum %.6f\n"
	    "xitzin_request_duration_seconds_count %llu\n",
	    (unsigned long long)cum, (double)s->latency_us / 1e6,
	    (unsigned long long)cum);
}

static void
metrics_write_backends(struct evbuffer *out, const struct metrics_counters *s)
{
	int i, k, n = __atomic_load_n(&metrics_backends.n, __ATOMIC_ACQUIRE);

	metrics_head(out, "xitzin_backend_failures_total", "counter",
	    "SCGI backend failures: connect refused or failed, connect timed "
	    "out, silent past its timeout.");
	for (i = 1; i < n; i++)
		for (k = 0; k < METRICS_NFAILS; k++) {
			evbuffer_add(out,
			    "xitzin_backend_failures_total{backend=\"", 39);
			metrics_label(out, metrics_backends.name[i]);
			evbuffer_add_printf(out, "\",kind=\"%s\"} %llu\n",
			    metrics_fail_name[k],
			    (unsigned long long)s->backend[i][k]);
		}
}

/* One plain counter or gauge with its HELP and TYPE. */
static void
metrics_write_one(struct evbuffer *out, const char *name, const char *type,
    const char *help, unsigned long long v)
{
	metrics_head(out, name, type, help);
	evbuffer_add_printf(out, "%s %llu\n", name, v);
}

static void
metrics_write(const struct metrics *m, const struct metrics_counters *s,
    struct evbuffer *out)
{
	long cgi = __atomic_load_n(&metrics_cgi_running, __ATOMIC_RELAXED);

	metrics_write_requests(out, s);
	metrics_write_latency(out, s);
	metrics_write_one(out, "xitzin_response_bytes_total", "counter",
	    "Bytes of answers (headers and bodies) handed to TLS.", s->bytes);
	metrics_write_one(out, "xitzin_connections_open", "gauge",
	    "Client connections open now.",
	    s->conns_opened >= s->conns_closed ?
	        s->conns_opened - s->conns_closed :
	        0);
	metrics_write_one(out, "xitzin_connections_total", "counter",
	    "Client connections accepted.", s->conns_opened);
	metrics_head(out, "xitzin_tls_handshakes_total", "counter",
	    "TLS handshakes completed, full or resumed (a session ticket).");
	evbuffer_add_printf(out,
	    "xitzin_tls_handshakes_total{kind=\"full\"} %llu\n"
	    "xitzin_tls_handshakes_total{kind=\"resumed\"} %llu\n",
	    (unsigned long long)s->handshakes_full,
	    (unsigned long long)s->handshakes_resumed);
	metrics_write_one(out, "xitzin_tls_hello_retry_requests_total",
	    "counter",
	    "Handshakes that needed a HelloRetryRequest (no usable key share).",
	    s->hello_retries);
	metrics_write_backends(out, s);
	metrics_write_one(out, "xitzin_cgi_processes", "gauge",
	    "CGI scripts running (spawned, not yet reaped).",
	    cgi > 0 ? (unsigned long long)cgi : 0);
	metrics_write_one(out, "xitzin_rate_limited_total", "counter",
	    "Requests answered 44 by a rate limit.", s->rate_limited);
	metrics_write_one(out, "xitzin_reloads_total", "counter",
	    "Configuration reloads that took effect.",
	    __atomic_load_n(&m->reloads, __ATOMIC_RELAXED));
	metrics_write_one(out, "xitzin_stopping", "gauge",
	    "1 once a stop has begun (draining), else 0.",
	    (unsigned long long)__atomic_load_n(&m->stopping,
	        __ATOMIC_RELAXED));
}

static void
metrics_reply(struct evhttp_request *hr, int code, const char *reason,
    const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(hr);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(hr, code, reason, body);
}

/* GET /metrics, GET /health; anything else 404, other methods 405. */
static void
metrics_on_request(struct evhttp_request *hr, void *arg)
{
	struct metrics *m = arg;
	const char *uri = evhttp_request_get_uri(hr);
	size_t len = strcspn(uri, "?");
	struct evbuffer *body = evbuffer_new();
	struct metrics_counters *sum;

	if (body == NULL) {
		evhttp_send_error(hr, 500, "out of memory");
		return;
	}
	if (len == 8 && strncmp(uri, "/metrics", len) == 0) {
		if ((sum = aligned_alloc(64, sizeof(*sum))) == NULL) {
			evhttp_send_error(hr, 500, "out of memory");
			evbuffer_free(body);
			return;
		}
		metrics_sum(m, sum);
		metrics_write(m, sum, body);
		free(sum);
		metrics_reply(hr, 200, "OK", "text/plain; version=0.0.4", body);
	} else if (len == 7 && strncmp(uri, "/health", len) == 0) {
		bool stopping = __atomic_load_n(&m->stopping, __ATOMIC_RELAXED);

		evbuffer_add_printf(body, "%s\n", stopping ? "stopping" : "ok");
		metrics_reply(hr, stopping ? 503 : 200,
		    stopping ? "Service Unavailable" : "OK", "text/plain",
		    body);
	} else {
		evbuffer_add_printf(body,
		    "not found: try /metrics or /health\n");
		metrics_reply(hr, 404, "Not Found", "text/plain", body);
	}
	evbuffer_free(body);
}

int
metrics_start(struct metrics *m, struct event_base *base)
{
	if (m == NULL)
		return XZ_OK;
	if ((m->http = evhttp_new(base)) == NULL)
		return XZ_ENOMEM;
	/* Scrapers send a short GET: a slow or big one is not a scraper. */
	evhttp_set_timeout(m->http, 10);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, metrics_on_request, m);
	if (evhttp_accept_socket_with_handle(m->http, m->fd) == NULL) {
		log_warn("metrics: listening");
		return XZ_EIO;
	}
	m->fd = -1; /* the listener closes it */
	log_info("metrics on port %d (/metrics, /health)", m->port);
	return XZ_OK;
}

void
metrics_stop(struct metrics *m)
{
	if (m != NULL && m->http != NULL) {
		evhttp_free(m->http);
		m->http = NULL;
	}
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	metrics_stop(m);
	if (m->fd != -1)
		close(m->fd);
	free(m->workers);
	free(m);
}
