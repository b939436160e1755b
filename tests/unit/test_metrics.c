/*
 * test_metrics.c - metrics.c on its own: two worker threads bumping their
 * own counters at once, summed by a real scrape over HTTP (a socket to
 * the evhttp listener); the address checks; the name tables' overflow
 * into "other"; label escaping; /health before and after a stop.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "xz_private.h"

#define BUMPS 100000

struct bumper {
	struct metrics *m;
	int worker;
	int backend;
};

static void *
bump(void *arg)
{
	struct bumper *b = arg;
	int i;

	metrics_worker_enter(b->m, b->worker);
	for (i = 0; i < BUMPS; i++) {
		metrics_conn_opened();
		metrics_handshake(i % 2 == 0, false);
		metrics_request(20, "/sum", 10, 1.0);
		metrics_conn_closed();
	}
	metrics_backend_failed(b->backend, METRICS_CONNECT);
	metrics_worker_leave();
	return NULL;
}

struct fetch {
	int port;
	const char *path;
	struct event_base *base;
	char reply[262144];
};

/* The client side, on its own thread while the test's loop serves. */
static void *
fetch_main(void *arg)
{
	struct fetch *f = arg;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char req[256];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_port = htons((uint16_t)f->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		snprintf(req, sizeof(req),
		    "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		    f->path);
		(void)!write(fd, req, strlen(req));
		while (got < sizeof(f->reply) - 1 &&
		       (n = read(fd, f->reply + got,
		            sizeof(f->reply) - 1 - got)) > 0)
			got += (size_t)n;
	}
	f->reply[got] = '\0';
	close(fd);
	event_base_loopbreak(f->base);
	return NULL;
}

/* The test's loop, serving m (as the main thread's does). */
static struct event_base *
serve(struct metrics *m)
{
	struct event_base *base = event_base_new();

	cr_assert_not_null(base);
	cr_assert_eq(metrics_start(m, base), XZ_OK);
	return base;
}

static void
unserve(struct metrics *m, struct event_base *base)
{
	metrics_stop(m);
	event_base_free(base);
}

/* GET path from m, served on base here meanwhile; reply in f->reply. */
static void
get(struct metrics *m, struct event_base *base, const char *path,
    struct fetch *f)
{
	pthread_t t;

	f->port = metrics_port(m);
	f->path = path;
	f->base = base;
	cr_assert_eq(pthread_create(&t, NULL, fetch_main, f), 0);
	event_base_dispatch(base);
	pthread_join(t, NULL);
}

Test(metrics, two_workers_summed_by_a_scrape)
{
	char err[256];
	struct metrics *m;
	struct bumper b[2];
	pthread_t t[2];
	struct fetch *f = calloc(1, sizeof(*f));
	char want[256];
	int i, id = metrics_backend_id("unix:/run/sum.sock");
	struct event_base *base;

	cr_assert_eq(evthread_use_pthreads(), 0);
	m = metrics_new("127.0.0.1:0", false, 2, err, sizeof(err));
	cr_assert_not_null(m, "%s", err);
	cr_assert_gt(metrics_port(m), 0);
	for (i = 0; i < 2; i++) {
		b[i] = (struct bumper){ m, i, id };
		cr_assert_eq(pthread_create(&t[i], NULL, bump, &b[i]), 0);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	metrics_reload(m);
	base = serve(m);
	get(m, base, "/metrics", f);
	cr_assert_not_null(strstr(f->reply, "HTTP/1.1 200 OK\r\n"));
	cr_assert_not_null(
	    strstr(f->reply, "Content-Type: text/plain; version=0.0.4\r\n"));
	snprintf(want, sizeof(want),
	    "xitzin_requests_total{mount=\"/sum\",status=\"20\"} %d\n",
	    2 * BUMPS);
	cr_assert_not_null(strstr(f->reply, want), "%s", f->reply);
	snprintf(want, sizeof(want), "xitzin_response_bytes_total %d\n",
	    20 * BUMPS);
	cr_assert_not_null(strstr(f->reply, want));
	snprintf(want, sizeof(want),
	    "xitzin_tls_handshakes_total{kind=\"full\"} %d\n", BUMPS);
	cr_assert_not_null(strstr(f->reply, want));
	cr_assert_not_null(strstr(f->reply, "xitzin_connections_open 0\n"));
	cr_assert_not_null(strstr(f->reply,
	    "xitzin_backend_failures_total{backend=\"unix:/run/sum.sock\","
	    "kind=\"connect\"} 2\n"));
	/* 1 ms is in the 5 ms bucket and every one above it. */
	snprintf(want, sizeof(want),
	    "xitzin_request_duration_seconds_bucket{le=\"0.005\"} %d\n",
	    2 * BUMPS);
	cr_assert_not_null(strstr(f->reply, want));
	cr_assert_not_null(strstr(f->reply, "xitzin_reloads_total 1\n"));
	cr_assert_not_null(strstr(f->reply, "# TYPE xitzin_requests_total "
	                                    "counter\n"));
	metrics_free(m);
	free(f);
}

Test(metrics, health_then_stopping)
{
	char err[256];
	struct metrics *m;
	struct fetch *f = calloc(1, sizeof(*f));
	struct event_base *base;

	cr_assert_eq(evthread_use_pthreads(), 0);
	m = metrics_new("127.0.0.1:0", false, 1, err, sizeof(err));
	cr_assert_not_null(m, "%s", err);
	base = serve(m);
	get(m, base, "/health", f);
	cr_assert_not_null(strstr(f->reply, "HTTP/1.1 200 OK\r\n"));
	cr_assert_not_null(strstr(f->reply, "\r\n\r\nok\n"));
	metrics_set_stopping(m);
	get(m, base, "/health", f);
	cr_assert_not_null(strstr(f->reply, "HTTP/1.1 503 "));
	cr_assert_not_null(strstr(f->reply, "\r\n\r\nstopping\n"));
	get(m, base, "/nothing", f);
	cr_assert_not_null(strstr(f->reply, "HTTP/1.1 404 "));
	unserve(m, base);
	metrics_free(m);
	free(f);
}

Test(metrics, listen_checks)
{
	char err[256];
	static const struct {
		const char *spec;
		bool allow, ok;
	} cases[] = {
		{ "127.0.0.1:9165", false, true },
		{ "127.1.2.3:9165", false, true },
		{ "[::1]:9165", false, true },
		{ "localhost:9165", false, true },
		{ "0.0.0.0:9165", false, false },
		{ "0.0.0.0:9165", true, true },
		{ "[::]:9165", false, false },
		{ "[::ffff:127.0.0.1]:9165", false, true },
		{ "127.0.0.1", false, false },
		{ "127.0.0.1:", false, false },
		{ "127.0.0.1:65536", false, false },
		{ "127.0.0.1:12x", false, false },
		{ ":9165", false, false },
		{ "[]:9165", false, false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = metrics_check_listen(cases[i].spec, cases[i].allow,
		    err, sizeof(err));

		cr_expect_eq(rc == XZ_OK, cases[i].ok, "%s: %s", cases[i].spec,
		    err);
	}
	cr_assert_null(metrics_new("0.0.0.0:0", false, 1, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "not a loopback address"));
}

Test(metrics, names_overflow_into_other_and_are_escaped)
{
	char err[256], name[64];
	struct metrics *m;
	struct fetch *f = calloc(1, sizeof(*f));
	struct event_base *base;
	int i, id = 0;

	cr_assert_eq(evthread_use_pthreads(), 0);
	m = metrics_new("127.0.0.1:0", false, 1, err, sizeof(err));
	cr_assert_not_null(m, "%s", err);
	metrics_worker_enter(m, 0);
	metrics_request(20, "/q\"u\\o\nte", 1, 0.5);
	for (i = 0; i < METRICS_MAX_NAMES + 5; i++) {
		snprintf(name, sizeof(name), "127.0.0.1:%d", 10000 + i);
		id = metrics_backend_id(name);
		snprintf(name, sizeof(name), "/m%d", i);
		metrics_request(51, name, 1, 0.5);
	}
	cr_assert_eq(id, 0); /* the table is full: "other" */
	metrics_backend_failed(id, METRICS_TIMEOUT); /* not counted */
	metrics_request(0, "/m0", 0, 0.5);           /* no answer */
	metrics_worker_leave();
	metrics_request(20, "/m0", 1, 0.5); /* not a worker: a no-op */
	base = serve(m);
	get(m, base, "/metrics", f);
	cr_assert_not_null(strstr(f->reply, "xitzin_requests_total{mount=\"/"
	                                    "q\\\"u\\\\o\\nte\",status=\"20\"} "
	                                    "1\n"),
	    "%s", f->reply);
	cr_assert_not_null(strstr(f->reply,
	    "xitzin_requests_total{mount=\"/m0\",status=\"51\"} 1\n"));
	cr_assert_not_null(strstr(f->reply,
	    "xitzin_requests_total{mount=\"/m0\",status=\"none\"} 1\n"));
	cr_assert_not_null(strstr(f->reply,
	    "xitzin_requests_total{mount=\"other\",status=\"51\"}"));
	cr_assert_null(strstr(f->reply, "mount=\"/m70\""));
	unserve(m, base);
	metrics_free(m);
	free(f);
}
