/*
 * test_task.c - periodic tasks (xz_every): when they run relative to the
 * hooks, one run at a time, failures that do not stop them, and the
 * server that runs them. Bounds are generous: a test waits for a count
 * of runs, never for a time.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xz_private.h"

/* What happened, in order: S startup, T task, D shutdown. */
static char trace[4096];
static size_t ntrace;
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int runs, in_flight, most_in_flight;

static void
note(char c)
{
	pthread_mutex_lock(&trace_lock);
	if (ntrace + 1 < sizeof(trace))
		trace[ntrace++] = c;
	pthread_mutex_unlock(&trace_lock);
}

static int
on_startup(struct xz_app *app, void *arg)
{
	note('S');
	return arg != NULL ? XZ_EIO : XZ_OK;
}

static int
on_shutdown(struct xz_app *app, void *arg)
{
	note('D');
	return XZ_OK;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Notes its run, and stays a while when arg asks (ms). */
static int
task(struct xz_app *app, void *arg)
{
	int now = atomic_fetch_add(&in_flight, 1) + 1, most;

	while (now > (most = atomic_load(&most_in_flight)) &&
	       !atomic_compare_exchange_weak(&most_in_flight, &most, now))
		;
	note('T');
	if (arg != NULL)
		sleep_ms((long)(intptr_t)arg);
	atomic_fetch_sub(&in_flight, 1);
	atomic_fetch_add(&runs, 1);
	return XZ_OK;
}

static int
failing_task(struct xz_app *app, void *arg)
{
	atomic_fetch_add(&runs, 1);
	return XZ_EIO;
}

/* Waits (up to a minute: never a timing failure) for n runs. */
static void
wait_for_runs(int n)
{
	int i;

	for (i = 0; i < 60000 && atomic_load(&runs) < n; i++)
		sleep_ms(1);
	cr_assert_geq(atomic_load(&runs), n, "%d runs in a minute",
	    atomic_load(&runs));
}

static void
reset(void)
{
	ntrace = 0;
	memset(trace, 0, sizeof(trace));
	atomic_store(&runs, 0);
	atomic_store(&in_flight, 0);
	atomic_store(&most_in_flight, 0);
}

TestSuite(task, .init = reset);

static struct xz_app *
app_with(xz_task_fn fn, double seconds, void *arg, bool startup_fails)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(
	    xz_on_startup(app, on_startup, startup_fails ? (void *)1 : NULL),
	    XZ_OK);
	cr_assert_eq(xz_on_shutdown(app, on_shutdown, NULL), XZ_OK);
	cr_assert_eq(xz_every(app, seconds, fn, arg), XZ_OK, "%s",
	    xz_app_error(app));
	return app;
}

/* Startup hooks, then runs, then (runs stopped) the shutdown hooks. */
Test(task, runs_between_the_hooks_with_the_test_client)
{
	struct xz_app *app = app_with(task, 0.01, NULL, false);
	struct xz_test_client *tc;
	int after;

	cr_assert_not_null(tc = xz_test_client_new(app));
	wait_for_runs(3);
	xz_test_client_free(tc);
	after = atomic_load(&runs);
	sleep_ms(100); /* ten intervals: none may run now */
	cr_expect_eq(atomic_load(&runs), after);
	cr_expect_eq(trace[0], 'S');
	cr_expect_eq(strspn(trace + 1, "T"), ntrace - 2, "%s", trace);
	cr_expect_eq(trace[ntrace - 1], 'D', "%s", trace);
	/* A second client starts them again. */
	cr_assert_not_null(tc = xz_test_client_new(app));
	wait_for_runs(after + 2);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* A run that outlasts its interval delays the next: never two at once. */
Test(task, never_runs_beside_itself_or_another_task)
{
	struct xz_app *app = app_with(task, 0.001, (void *)(intptr_t)20, false);
	struct xz_test_client *tc;

	cr_assert_eq(xz_every(app, 0.001, task, (void *)(intptr_t)20), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	wait_for_runs(10);
	xz_test_client_free(tc);
	cr_expect_eq(atomic_load(&most_in_flight), 1);
	xz_app_free(app);
}

/* A failing task is logged and keeps its schedule. */
Test(task, a_failing_task_runs_again)
{
	struct xz_app *app = app_with(failing_task, 0.01, NULL, false);
	struct xz_test_client *tc;
	char line[256];
	bool logged = false;
	FILE *err;

	cr_redirect_stderr();
	xz_log_enable(false);
	cr_assert_not_null(tc = xz_test_client_new(app));
	wait_for_runs(3);
	xz_test_client_free(tc);
	xz_app_free(app);
	fflush(stderr);
	err = cr_get_redirected_stderr();
	while (fgets(line, sizeof(line), err) != NULL)
		logged |= strstr(line, "task 1 (every 0.01s): failed: I/O "
		                       "error") != NULL;
	cr_expect(logged);
}

Test(task, no_runs_when_a_startup_hook_fails)
{
	struct xz_app *app = app_with(task, 0.001, NULL, true);

	cr_expect_null(xz_test_client_new(app));
	sleep_ms(50);
	cr_expect_eq(atomic_load(&runs), 0);
	cr_expect_str_eq(trace, "S");
	xz_app_free(app);
}

Test(task, bad_arguments_say_why)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;

	cr_expect_eq(xz_every(app, 0, task, NULL), XZ_EINVAL);
	cr_expect_str_eq(xz_app_error(app), "every 0s: a task needs a function "
	                                    "and an interval over 0 seconds");
	cr_expect_eq(xz_every(app, -1, task, NULL), XZ_EINVAL);
	cr_expect_eq(xz_every(app, NAN, task, NULL), XZ_EINVAL);
	cr_expect_eq(xz_every(app, INFINITY, task, NULL), XZ_EINVAL);
	cr_expect_eq(xz_every(app, 1, NULL, NULL), XZ_EINVAL);
	cr_expect_eq(xz_every(app, 3600, task, NULL), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	cr_expect_eq(xz_every(app, 1, task, NULL), XZ_ESTATE);
	cr_expect_str_eq(xz_app_error(app),
	    "every 1s: tasks are added before the app starts");
	xz_test_client_free(tc); /* an hour early: stopped, not waited for */
	cr_expect_eq(atomic_load(&runs), 0);
	cr_expect_eq(xz_every(app, 1, task, NULL), XZ_OK);
	xz_app_free(app);
}

/* The real server: a task stops it; the shutdown hook comes after. */
static struct xz_server *the_server;

static int
stopping_task(struct xz_app *app, void *arg)
{
	note('T');
	if (atomic_fetch_add(&runs, 1) + 1 == 3)
		xz_server_stop(the_server);
	return XZ_OK;
}

Test(task, the_server_runs_them_between_its_hooks)
{
	static const char *const listen[] = { "127.0.0.1:0", NULL };
	char dir[] = "/tmp/xz_test_task_XXXXXX", cert[64], key[64];
	struct xz_app *app = app_with(stopping_task, 0.01, NULL, false);
	struct xz_server_opts o = { .listen = listen, .workers = 1 };
	char err[256] = "";

	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/c.crt", dir);
	snprintf(key, sizeof(key), "%s/c.key", dir);
	o.cert_file = cert;
	o.key_file = key;
	the_server = xz_server_new(app, &o, err, sizeof(err));
	cr_assert_not_null(the_server, "%s", err);
	cr_assert_eq(xz_server_run(the_server), XZ_OK, "%s",
	    xz_server_error(the_server));
	cr_expect_geq(atomic_load(&runs), 3);
	cr_expect_eq(trace[0], 'S');
	cr_expect_eq(strspn(trace + 1, "T"), ntrace - 2, "%s", trace);
	cr_expect_eq(trace[ntrace - 1], 'D', "%s", trace);
	xz_server_free(the_server);
	xz_app_free(app);
	remove(cert);
	remove(key);
	remove(dir);
}
