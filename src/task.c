/*
 * task.c - periodic background tasks (xz_every), the original's
 * @app.task(interval=...).
 *
 * All of an app's tasks share one thread with its own event loop: each
 * task is a one-shot timer armed again when its run returns, so a task
 * never runs beside itself (nor beside another task) and a slow run
 * delays its next one instead of piling runs up. The thread is the app's,
 * not a worker's, so a task never holds up a request.
 *
 * app_startup starts the thread once the startup hooks have run;
 * app_shutdown stops it (letting a running task finish) before the
 * shutdown hooks run. Both the server and the test client call them.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "xz_private.h"

struct task {
	struct tasks *owner;
	double seconds;
	xz_task_fn fn;
	void *arg;
	struct event *ev; /* while the thread runs */
};

struct tasks {
	struct xz_app *app;
	struct task *list;
	size_t n;
	unsigned starts; /* app_startup calls not yet stopped (test clients) */
	struct event_base *base;
	struct event *stop_ev;
	int stop_pipe[2];
	pthread_t thread;
};

int
task_add(struct tasks **tp, struct xz_app *app, double seconds, xz_task_fn fn,
    void *arg, const char **why)
{
	struct tasks *ts = *tp;
	struct task *grown;

	if (fn == NULL || !(seconds > 0) || !isfinite(seconds)) {
		*why = "a task needs a function and an interval over 0 seconds";
		return XZ_EINVAL;
	}
	if (ts == NULL) {
		if ((ts = calloc(1, sizeof(*ts))) == NULL)
			goto nomem;
		ts->app = app;
		ts->stop_pipe[0] = ts->stop_pipe[1] = -1;
		*tp = ts;
	}
	if (ts->base != NULL) {
		*why = "tasks are added before the app starts";
		return XZ_ESTATE;
	}
	if (ts->n + 1 > SIZE_MAX / sizeof(*grown) ||
	    (grown = realloc(ts->list, (ts->n + 1) * sizeof(*grown))) == NULL)
		goto nomem;
	ts->list = grown;
	ts->list[ts->n++] = (struct task){ ts, seconds, fn, arg, NULL };
	return XZ_OK;
nomem:
	*why = "out of memory";
	return XZ_ENOMEM;
}

static void
task_arm(struct task *t)
{
	struct timeval tv;
	double whole = floor(t->seconds);

	tv.tv_sec = (time_t)whole;
	tv.tv_usec = (suseconds_t)((t->seconds - whole) * 1e6);
	evtimer_add(t->ev, &tv);
}

/* A failing task is the log's business, never the server's. */
static void
task_run(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	int rc;

	if ((rc = t->fn(t->owner->app, t->arg)) != XZ_OK)
		log_warnx("task %zu (every %gs): failed: %s",
		    (size_t)(t - t->owner->list) + 1, t->seconds,
		    xz_strerror(rc));
	task_arm(t);
}

static void
task_on_stop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void *
task_main(void *arg)
{
	struct tasks *ts = arg;

	event_base_dispatch(ts->base);
	return NULL;
}

/* What task_start made, whatever it got to. */
static void
task_teardown(struct tasks *ts)
{
	size_t i;

	for (i = 0; i < ts->n; i++) {
		if (ts->list[i].ev != NULL)
			event_free(ts->list[i].ev);
		ts->list[i].ev = NULL;
	}
	if (ts->stop_ev != NULL)
		event_free(ts->stop_ev);
	ts->stop_ev = NULL;
	if (ts->base != NULL)
		event_base_free(ts->base);
	ts->base = NULL;
	for (i = 0; i < 2; i++) {
		if (ts->stop_pipe[i] != -1)
			close(ts->stop_pipe[i]);
		ts->stop_pipe[i] = -1;
	}
}

int
task_start(struct tasks *ts)
{
	sigset_t all, old;
	size_t i;
	int err;

	if (ts == NULL || ts->n == 0 || ts->starts++ > 0)
		return XZ_OK;
	if (pipe2(ts->stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_warn("tasks: stop pipe");
		goto fail;
	}
	if ((ts->base = event_base_new()) == NULL ||
	    (ts->stop_ev = event_new(ts->base, ts->stop_pipe[0], EV_READ,
	         task_on_stop, ts->base)) == NULL ||
	    event_add(ts->stop_ev, NULL) == -1)
		goto fail;
	for (i = 0; i < ts->n; i++) {
		ts->list[i].ev = evtimer_new(ts->base, task_run, &ts->list[i]);
		if (ts->list[i].ev == NULL)
			goto fail;
		task_arm(&ts->list[i]);
	}
	/* Signals are the main thread's, as for the workers. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&ts->thread, NULL, task_main, ts);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err == 0)
		return XZ_OK;
	log_warnx("tasks: cannot start a thread: %s", strerror(err));
fail:
	task_teardown(ts);
	ts->starts = 0;
	return XZ_EIO;
}

void
task_stop(struct tasks *ts)
{
	if (ts == NULL || ts->starts == 0 || --ts->starts > 0)
		return;
	/* A task still running finishes first: the loop breaks after it. */
	while (write(ts->stop_pipe[1], "x", 1) == -1 && errno == EINTR)
		;
	pthread_join(ts->thread, NULL);
	task_teardown(ts);
}

void
task_free(struct tasks *ts)
{
	if (ts == NULL)
		return;
	while (ts->starts > 0)
		task_stop(ts);
	free(ts->list);
	free(ts);
}
