/*
 * test_server.c - server.c's failures at start: a worker thread that
 * cannot start, signal handling that cannot be set up, a startup hook
 * that fails. Each must return an error with its reason, close the
 * listeners (the port then refuses connections) and free everything.
 *
 * pthread_create is interposed here, in the test program (which links
 * the static library, so server.c calls this one): armed, it makes the
 * Nth call fail with EAGAIN, the error glibc returns when the system is
 * out of threads; unarmed it is the real one. Descriptors run out for
 * real (RLIMIT_NOFILE), which is how the signal setup fails.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "xz_private.h"

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *,
    void *(*)(void *), void *);

static atomic_int thread_calls;
static atomic_int thread_fail_at; /* 0: never */

int
pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
    void *arg)
{
	static pthread_create_fn real;

	if (real == NULL)
		real = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
	if (atomic_load(&thread_fail_at) > 0 &&
	    atomic_fetch_add(&thread_calls, 1) + 1 ==
	        atomic_load(&thread_fail_at))
		return EAGAIN;
	return real(t, attr, fn, arg);
}

static char dir[64]; /* this test's certificate, removed afterwards */
static char cert[128], key[128];
static int startups, shutdowns;

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/xz_test_server_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/c.crt", dir);
	snprintf(key, sizeof(key), "%s/c.key", dir);
}

static void
teardown(void)
{
	remove(cert);
	remove(key);
	remove(dir);
}

static int
on_startup(struct xz_app *app, void *arg)
{
	startups++;
	return arg != NULL ? XZ_EIO : XZ_OK;
}

static int
on_shutdown(struct xz_app *app, void *arg)
{
	shutdowns++;
	return XZ_OK;
}

static struct xz_server *
server_new(struct xz_app *app, int workers)
{
	static const char *const listen[] = { "127.0.0.1:0", NULL };
	struct xz_server_opts o = { 0 };
	struct xz_server *srv;
	char err[256] = "";

	o.listen = listen;
	o.cert_file = cert;
	o.key_file = key;
	o.workers = workers;
	o.quiet = true;
	srv = xz_server_new(app, &o, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	return srv;
}

/* connect(2) to 127.0.0.1:port: 0, or the errno it failed with. */
static int
try_connect(int port)
{
	struct sockaddr_in sin = { 0 };
	int fd, rc;

	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

static struct xz_app *
app_with_hooks(bool startup_fails)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(
	    xz_on_startup(app, on_startup, startup_fails ? (void *)1 : NULL),
	    XZ_OK);
	cr_assert_eq(xz_on_shutdown(app, on_shutdown, NULL), XZ_OK);
	return app;
}

TestSuite(server, .init = setup, .fini = teardown);

Test(server, worker_that_cannot_start_fails_the_run)
{
	struct xz_app *app = app_with_hooks(false);
	struct xz_server *srv = server_new(app, 3);
	int port = xz_server_port(srv, 0);

	cr_assert_eq(try_connect(port), 0, "the listeners take connections");
	atomic_store(&thread_fail_at, 2); /* worker 1 starts, 2 cannot */
	cr_assert_eq(xz_server_run(srv), XZ_EIO);
	atomic_store(&thread_fail_at, 0);
	cr_expect_eq(atomic_load(&thread_calls), 2, "no third attempt");
	cr_expect_str_eq(xz_server_error(srv),
	    "worker 2 of 3: cannot start a thread: Resource temporarily "
	    "unavailable");
	cr_expect_eq(try_connect(port), ECONNREFUSED,
	    "no listener is left for the kernel to queue connections on");
	cr_expect_eq(startups, 1);
	cr_expect_eq(shutdowns, 1, "the startup hooks ran: so do these");
	xz_server_free(srv);
	xz_app_free(app);
}

Test(server, first_worker_that_cannot_start)
{
	struct xz_app *app = app_with_hooks(false);
	struct xz_server *srv = server_new(app, 1);
	int port = xz_server_port(srv, 0);

	atomic_store(&thread_fail_at, 1);
	cr_assert_eq(xz_server_run(srv), XZ_EIO);
	atomic_store(&thread_fail_at, 0);
	cr_expect_str_eq(xz_server_error(srv),
	    "worker 1 of 1: cannot start a thread: Resource temporarily "
	    "unavailable");
	cr_expect_eq(try_connect(port), ECONNREFUSED);
	cr_expect_eq(shutdowns, 1);
	xz_server_free(srv);
	xz_app_free(app);
}

/* Fills every free descriptor under a limit of (highest open + 1). */
static int
exhaust_descriptors(int *fillers, int max, struct rlimit *saved)
{
	struct rlimit rl;
	DIR *d;
	struct dirent *de;
	int n = 0, fd, highest = 0;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, saved), 0);
	cr_assert_not_null(d = opendir("/proc/self/fd"));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && atoi(de->d_name) > highest)
			highest = atoi(de->d_name);
	closedir(d);
	rl = *saved;
	rl.rlim_cur = (rlim_t)highest + 1;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (n < max && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) != -1)
		fillers[n++] = fd;
	cr_assert_eq(errno, EMFILE);
	return n;
}

Test(server, signals_that_cannot_be_set_up_fail_the_run)
{
	struct xz_app *app = app_with_hooks(false);
	struct xz_server *srv = server_new(app, 2);
	int port = xz_server_port(srv, 0), fillers[1024], n, i, rc;
	struct rlimit saved;

	n = exhaust_descriptors(fillers, 1024, &saved);
	rc = xz_server_run(srv);
	for (i = 0; i < n; i++)
		close(fillers[i]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	cr_assert_eq(rc, XZ_EIO);
	cr_expect_str_eq(xz_server_error(srv),
	    "cannot set up SIGTERM, SIGINT and SIGHUP handling (out of "
	    "memory or descriptors)");
	cr_expect_eq(atomic_load(&thread_calls), 0, "no worker started");
	cr_expect_eq(startups, 0, "nothing ran");
	cr_expect_eq(shutdowns, 0);
	cr_expect_eq(try_connect(port), ECONNREFUSED);
	xz_server_free(srv);
	xz_app_free(app);
}

Test(server, failing_startup_hook_closes_the_listeners)
{
	struct xz_app *app = app_with_hooks(true);
	struct xz_server *srv = server_new(app, 2);
	int port = xz_server_port(srv, 0);

	cr_assert_eq(xz_server_run(srv), XZ_EIO);
	cr_expect_str_eq(xz_server_error(srv),
	    "a startup hook failed: I/O error");
	cr_expect_eq(startups, 1);
	cr_expect_eq(shutdowns, 0, "shutdown hooks pair with a startup");
	cr_expect_eq(atomic_load(&thread_calls), 0, "no worker started");
	cr_expect_eq(try_connect(port), ECONNREFUSED);
	xz_server_free(srv);
	xz_app_free(app);
}

/* The same server runs and stops normally: the interposer is harmless. */
static void *
stop_soon(void *arg)
{
	usleep(200 * 1000);
	xz_server_stop(arg);
	return NULL;
}

Test(server, runs_and_stops_when_nothing_fails)
{
	struct xz_app *app = app_with_hooks(false);
	struct xz_server *srv = server_new(app, 2);
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, stop_soon, srv), 0);
	cr_assert_eq(xz_server_run(srv), XZ_OK);
	pthread_join(t, NULL);
	cr_expect_str_eq(xz_server_error(srv), "");
	cr_expect_eq(startups, 1);
	cr_expect_eq(shutdowns, 1);
	xz_server_free(srv);
	xz_app_free(app);
}

/*
 * stop_delay: after the first xz_server_stop() the listener still takes
 * connections; the second ends the delay, and the run returns with the
 * port closed.
 */
static int delayed_port, accepted_in_delay = -1;

static void *
stop_twice(void *arg)
{
	usleep(200 * 1000);
	xz_server_stop(arg);
	usleep(200 * 1000);
	accepted_in_delay = try_connect(delayed_port);
	xz_server_stop(arg);
	return NULL;
}

Test(server, stop_delay_accepts_until_a_second_stop)
{
	static const char *const listen[] = { "127.0.0.1:0", NULL };
	struct xz_server_opts o = { .listen = listen,
		.cert_file = cert,
		.key_file = key,
		.workers = 1,
		.quiet = true,
		.stop_delay = 3600 };
	struct xz_app *app = app_with_hooks(false);
	struct xz_server *srv;
	char err[256] = "";
	pthread_t t;

	srv = xz_server_new(app, &o, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	delayed_port = xz_server_port(srv, 0);
	cr_assert_eq(pthread_create(&t, NULL, stop_twice, srv), 0);
	cr_assert_eq(xz_server_run(srv), XZ_OK);
	pthread_join(t, NULL);
	cr_expect_eq(accepted_in_delay, 0, "refused during the delay: %s",
	    strerror(accepted_in_delay));
	cr_expect_eq(try_connect(delayed_port), ECONNREFUSED);
	cr_expect_eq(shutdowns, 1);
	xz_server_free(srv);
	xz_app_free(app);
}

/* A free TCP port on 127.0.0.1 (bound once, then closed). */
static int
free_port(void)
{
	struct sockaddr_in sin = { 0 };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/*
 * xz_server_new binds the first address, then the second is taken (by a
 * socket without SO_REUSEPORT): NULL with the reason, and the first
 * listener is closed again.
 */
Test(server, new_closes_what_it_bound_when_a_listener_fails)
{
	struct xz_app *app = xz_app_new();
	struct xz_server_opts o = { 0 };
	struct sockaddr_in sin = { 0 };
	char a[64], b[64], want[128], err[256] = "";
	const char *addrs[] = { a, b, NULL };
	socklen_t len = sizeof(sin);
	int port_a = free_port(), busy;

	busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(busy, 1), 0);
	cr_assert_eq(getsockname(busy, (struct sockaddr *)&sin, &len), 0);
	snprintf(a, sizeof(a), "127.0.0.1:%d", port_a);
	snprintf(b, sizeof(b), "127.0.0.1:%d", ntohs(sin.sin_port));
	o.listen = addrs;
	o.cert_file = cert;
	o.key_file = key;
	o.workers = 2;
	cr_assert_null(xz_server_new(app, &o, err, sizeof(err)));
	snprintf(want, sizeof(want),
	    "listen 127.0.0.1 port %d: Address "
	    "already in use",
	    ntohs(sin.sin_port));
	cr_expect_str_eq(err, want);
	cr_expect_eq(try_connect(port_a), ECONNREFUSED);
	close(busy);
	xz_app_free(app);
}

/* Not a descriptor to spare: NULL with the reason, nothing leaked. */
Test(server, new_fails_cleanly_without_descriptors)
{
	static const char *const listen[] = { "127.0.0.1:0", NULL };
	struct xz_app *app = xz_app_new();
	struct xz_server_opts o = { 0 };
	struct xz_server *srv;
	struct rlimit saved;
	char err[256] = "";
	int fillers[1024], n, i;

	o.listen = listen;
	o.cert_file = cert;
	o.key_file = key;
	n = exhaust_descriptors(fillers, 1024, &saved);
	srv = xz_server_new(app, &o, err, sizeof(err));
	for (i = 0; i < n; i++)
		close(fillers[i]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	cr_expect_null(srv);
	cr_expect_str_eq(err, "stop pipe: Too many open files");
	xz_app_free(app);
}

/* One of the pair without the other is named; neither is the default. */
Test(server, one_certificate_file_without_the_other_is_named)
{
	static const char *const listen[] = { "127.0.0.1:0", NULL };
	struct xz_app *app = xz_app_new();
	struct xz_server_opts o = { .listen = listen, .cert_file = cert };
	char err[256] = "";

	cr_expect_null(xz_server_new(app, &o, err, sizeof(err)));
	cr_expect_str_eq(err,
	    "cert_file given without key_file (give both, or neither to use "
	    "certs/localhost.crt and .key)");
	o.cert_file = NULL;
	o.key_file = key;
	o.hostname = "example.org";
	cr_expect_null(xz_server_new(app, &o, err, sizeof(err)));
	cr_expect_str_eq(err,
	    "key_file given without cert_file (give both, or neither to use "
	    "certs/example.org.crt and .key)");
	o.key_file = NULL;
	o.hostname = "../etc";
	cr_expect_null(xz_server_new(app, &o, err, sizeof(err)));
	cr_expect_str_eq(err,
	    "cert_file and key_file: none given, and hostname '../etc' cannot "
	    "name them");
	xz_app_free(app);
}

/*
 * Reload through the library: SIGHUP runs the program's callback on the
 * server's main thread, which hands over a new app (xz_server_reload).
 */
struct hook_count {
	int startups, shutdowns;
	bool fail;
};

static int
count_startup(struct xz_app *app, void *arg)
{
	struct hook_count *n = arg;

	n->startups++;
	return n->fail ? XZ_EIO : XZ_OK;
}

static int
count_shutdown(struct xz_app *app, void *arg)
{
	((struct hook_count *)arg)->shutdowns++;
	return XZ_OK;
}

static struct xz_app *
counted_app(struct hook_count *n)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_on_startup(app, count_startup, n), XZ_OK);
	cr_assert_eq(xz_on_shutdown(app, count_shutdown, n), XZ_OK);
	return app;
}

struct reload_test {
	struct xz_server *srv;
	struct hook_count first, failing, second;
	atomic_int calls;
	int rc[3];
	char err[3][256];
	int released;          /* apps released (freed) by the server */
	int released_at[3];    /* released when call i began */
	int first_shutdowns_1; /* the first app's, when call 1 began */
};

static struct reload_test *the_test;

static void
release_app(void *arg)
{
	xz_app_free(arg);
	the_test->released++;
}

/*
 * The new app is staged here and takes over once this returns: its
 * startup hooks run then (the first one's fail: that reload does).
 */
static int
reload_cb(struct xz_server *srv, char *err, size_t errlen, void *arg)
{
	struct reload_test *t = arg;
	int i = atomic_load(&t->calls), rc;
	struct xz_app *app;

	t->released_at[i] = t->released;
	if (i == 0) {
		app = counted_app(&t->failing);
		rc = xz_server_reload(srv, app, NULL, release_app, app, err,
		    errlen);
	} else if (i == 1) {
		t->first_shutdowns_1 = t->first.shutdowns;
		app = counted_app(&t->second);
		rc = xz_server_reload(srv, app, NULL, release_app, app, err,
		    errlen);
	} else { /* the same app: certificates read again, no hook runs */
		rc = xz_server_reload(srv, NULL, NULL, NULL, NULL, err, errlen);
	}
	t->rc[i] = rc;
	snprintf(t->err[i], sizeof(t->err[i]), "%s", err);
	atomic_fetch_add(&t->calls, 1);
	return rc;
}

/* SIGHUP once the server runs (its startup hooks have), thrice. */
static void *
reload_driver(void *arg)
{
	struct reload_test *t = arg;
	int i, waited;

	for (waited = 0;
	     __atomic_load_n(&t->first.startups, __ATOMIC_ACQUIRE) == 0 &&
	     waited < 10000;
	     waited++)
		usleep(1000);
	for (i = 0; i < 3; i++) {
		kill(getpid(), SIGHUP);
		for (waited = 0; atomic_load(&t->calls) == i && waited < 10000;
		     waited++)
			usleep(1000);
	}
	xz_server_stop(t->srv);
	return NULL;
}

Test(server, reload_hands_over_a_new_app)
{
	struct reload_test t = { .failing.fail = true };
	struct xz_app *app = counted_app(&t.first);
	pthread_t driver;

	the_test = &t;
	t.srv = server_new(app, 2);
	xz_server_on_reload(t.srv, reload_cb, &t);
	cr_assert_eq(pthread_create(&driver, NULL, reload_driver, &t), 0);
	cr_assert_eq(xz_server_run(t.srv), XZ_OK);
	pthread_join(driver, NULL);
	cr_assert_eq(atomic_load(&t.calls), 3);
	cr_expect_eq(t.rc[0], XZ_OK, "%s", t.err[0]);
	cr_expect_eq(t.rc[1], XZ_OK, "%s", t.err[1]);
	cr_expect_eq(t.rc[2], XZ_OK, "%s", t.err[2]);
	cr_expect_eq(t.failing.startups, 1);
	cr_expect_eq(t.failing.shutdowns, 0, "its startup failed");
	cr_expect_eq(t.released_at[1], 1, "the failed one released at once");
	cr_expect_eq(t.first_shutdowns_1, 0, "the first kept serving");
	cr_expect_eq(t.first.startups, 1);
	cr_expect_eq(t.first.shutdowns, 1, "replaced: its shutdown hooks ran");
	cr_expect_eq(t.second.startups, 1, "once, though reloaded again");
	cr_expect_eq(t.second.shutdowns, 1);
	cr_expect_eq(t.released, 1, "the second serves to the end");
	cr_expect_eq(xz_server_reload(t.srv, NULL, NULL, release_app, app,
	                 t.err[0], sizeof(t.err[0])),
	    XZ_EINVAL, "the serving app with a release");
	cr_expect_eq(t.released, 1, "not released: it serves");
	cr_expect_eq(xz_server_reload(t.srv, NULL, NULL, NULL, NULL, t.err[0],
	                 sizeof(t.err[0])),
	    XZ_ESTATE, "not once stopped");
	xz_server_free(t.srv); /* releases the second app */
	cr_expect_eq(t.released, 2);
	xz_app_free(app); /* the first stays ours */
}

/*
 * Sites (xz_server_add_site): each app's hooks run once however many
 * sites it serves; bad names and a second site for a name are refused
 * with the reason; no site may join once the server has run.
 */
Test(server, sites_run_each_apps_hooks_once)
{
	struct xz_app *app = app_with_hooks(false);
	struct xz_app *other = app_with_hooks(false);
	struct xz_server *srv = server_new(app, 1);
	char c2[160], k2[160], err[256] = "";
	struct xz_site_opts so = { .hostname = "a.example, *.a.example",
		.cert_file = c2,
		.key_file = k2 };
	pthread_t t;

	snprintf(c2, sizeof(c2), "%s/a.crt", dir);
	snprintf(k2, sizeof(k2), "%s/a.key", dir);
	cr_assert_eq(xz_server_add_site(srv, other, &so, err, sizeof(err)),
	    XZ_OK, "%s", err);
	so.hostname = "b.example";
	so.cert_file = cert;
	so.key_file = key;
	cr_assert_eq(xz_server_add_site(srv, app, &so, err, sizeof(err)), XZ_OK,
	    "%s", err);
	so.hostname = "B.example.";
	cr_expect_eq(xz_server_add_site(srv, other, &so, err, sizeof(err)),
	    XZ_EINVAL);
	cr_expect_str_eq(err, "hostname: a name is in two sites ('b.example')");
	so.hostname = "x.*.example";
	cr_expect_eq(xz_server_add_site(srv, other, &so, err, sizeof(err)),
	    XZ_EINVAL);
	cr_expect_str_eq(err,
	    "hostname: a wildcard is '*.' and a name (one label) "
	    "('x.*.example')");
	cr_assert_eq(pthread_create(&t, NULL, stop_soon, srv), 0);
	cr_assert_eq(xz_server_run(srv), XZ_OK);
	pthread_join(t, NULL);
	cr_expect_eq(startups, 2, "one per app, not per site");
	cr_expect_eq(shutdowns, 2);
	so.hostname = "late.example";
	cr_expect_eq(xz_server_add_site(srv, other, &so, err, sizeof(err)),
	    XZ_ESTATE);
	xz_server_free(srv);
	xz_app_free(app);
	xz_app_free(other);
	remove(c2);
	remove(k2);
}

/*
 * metrics_listen through the library: a non-loopback address is refused
 * by xz_server_new unless allowed; a loopback one is bound at once (its
 * port known before xz_server_run), and closed by xz_server_free.
 */
Test(server, metrics_listen_checked_and_bound)
{
	static const char *const listen[] = { "127.0.0.1:0", NULL };
	struct xz_app *app = xz_app_new();
	struct xz_server_opts o = { 0 };
	struct xz_server *srv;
	char err[256] = "";
	int port;

	o.listen = listen;
	o.cert_file = cert;
	o.key_file = key;
	o.workers = 2;
	o.quiet = true;
	o.metrics_listen = "0.0.0.0:0";
	cr_assert_null(xz_server_new(app, &o, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "not a loopback address"), "%s", err);
	o.metrics_listen = "127.0.0.1:0";
	srv = xz_server_new(app, &o, err, sizeof(err));
	cr_assert_not_null(srv, "%s", err);
	port = xz_server_metrics_port(srv);
	cr_assert_gt(port, 0);
	cr_assert_eq(try_connect(port), 0);
	xz_server_free(srv);
	cr_assert_eq(try_connect(port), ECONNREFUSED);
	srv = server_new(app, 1);
	cr_assert_eq(xz_server_metrics_port(srv), -1); /* off */
	xz_server_free(srv);
	xz_app_free(app);
}

/*
 * SIGHUP without a reload callback: the same apps on the same sites,
 * every certificate read again (a second site's, removed, is generated
 * anew, as at start), and no hook runs again.
 */
struct sighup_test {
	struct xz_server *srv;
	const char *crt, *key;
	atomic_bool regenerated;
};

static void *
sighup_driver(void *arg)
{
	struct sighup_test *t = arg;
	int waited;

	for (waited = 0;
	     __atomic_load_n(&startups, __ATOMIC_ACQUIRE) < 2 && waited < 10000;
	     waited++)
		usleep(1000);
	remove(t->crt);
	remove(t->key);
	kill(getpid(), SIGHUP);
	for (waited = 0; access(t->crt, F_OK) != 0 && waited < 10000; waited++)
		usleep(1000);
	atomic_store(&t->regenerated, access(t->crt, F_OK) == 0);
	xz_server_stop(t->srv);
	return NULL;
}

Test(server, sighup_without_a_callback_rereads_every_sites_certificate)
{
	struct xz_app *app = app_with_hooks(false);
	struct xz_app *other = app_with_hooks(false);
	char c2[160], k2[160], err[256] = "";
	struct sighup_test t = { .srv = server_new(app, 1),
		.crt = c2,
		.key = k2 };
	struct xz_site_opts so = { .hostname = "a.example",
		.cert_file = c2,
		.key_file = k2 };
	pthread_t driver;

	snprintf(c2, sizeof(c2), "%s/a.crt", dir);
	snprintf(k2, sizeof(k2), "%s/a.key", dir);
	cr_assert_eq(xz_server_add_site(t.srv, other, &so, err, sizeof(err)),
	    XZ_OK, "%s", err);
	cr_assert_eq(pthread_create(&driver, NULL, sighup_driver, &t), 0);
	cr_assert_eq(xz_server_run(t.srv), XZ_OK);
	pthread_join(driver, NULL);
	cr_expect(atomic_load(&t.regenerated), "site a.example's reloaded");
	cr_expect_eq(startups, 2, "not again at the reload");
	cr_expect_eq(shutdowns, 2, "once each, at the end");
	xz_server_free(t.srv);
	xz_app_free(app);
	xz_app_free(other);
	remove(c2);
	remove(k2);
}
