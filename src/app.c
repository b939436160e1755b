/*
 * app.c - the application: mounts, routes, middleware, state and hooks,
 * and the path every request takes through them:
 *
 *   middleware.before ... -> mount (longest prefix) | routes (| 51)
 *   xz_reply -> middleware.after (innermost first) -> header -> body
 *
 * An after hook may answer instead (xz_request_replace): then no header
 * is written, and from the loop the handler is dropped and the new
 * answer starts, seen only by the after hooks outside that one.
 *
 * The C routes are one more handler (app_routes_ops), so a request meets
 * exactly one handler. The request itself, and answering it, is
 * request.c's; the app reaches back into a request only through the
 * request_owner table it hands over in app_dispatch.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "xz_private.h"

struct mount {
	char *prefix; /* normalised: "/api", or "" for the root */
	size_t len;
	struct xz_handler *handler;
};

struct route {
	char *pattern;
	char *prompt; /* input routes: asked when there is no query */
	bool sensitive;
	char **segs; /* the pattern split at '/', leading '/' dropped */
	size_t nsegs;
	xz_route_fn fn;
	void *arg;
	bool titan; /* answers Titan uploads only */
	bool whole; /* fn runs once the whole body has come */
	size_t max_upload_size;
	char **tokens; /* NULL-ended; NULL: any */
};

struct middleware {
	struct xz_middleware mw;
	void *arg;
};

struct hook {
	xz_hook_fn fn;
	void *arg;
};

/* A state value; while replaced and maybe still read, in a grave list. */
struct state_value {
	struct state_value *next;
	char s[];
};

struct state_entry {
	char *key;
	struct state_value *value;
};

struct xz_app {
	struct mount *mounts;
	size_t nmounts;
	struct route *routes;
	size_t nroutes;
	struct middleware *mws;
	size_t nmws;
	struct hook *startup, *shutdown;
	size_t nstartup, nshutdown;
	struct tasks *tasks; /* xz_every's, in task.c */
	pthread_rwlock_t state_lock;
	struct state_entry *state;
	size_t nstate;
	/*
	 * Replaced values wait until no request that could have read them
	 * is in flight (state_reap). A request counts as a reader in the
	 * period it started in; only two periods ever have readers.
	 */
	pthread_mutex_t grave_lock;
	unsigned long period;
	size_t readers[2];             /* requests in flight, by period & 1 */
	struct state_value *graves[2]; /* replaced during period & 1 */
	char error[512]; /* the last registration error (xz_app_error) */
	struct xz_handler routes_handler; /* the C routes, as a handler */
	struct adopted {
		void *p;
		void (*free_fn)(void *);
	} * adopted; /* app_adopt: freed with the app */
	size_t nadopted;
};

static const struct xz_handler_ops app_routes_ops;

void
app_set_error(struct xz_app *app, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(app->error, sizeof(app->error), fmt, ap);
	va_end(ap);
}

const char *
xz_app_error(const struct xz_app *app)
{
	return app->error;
}

/*
 * Why the last handler constructor failed on this thread: the handlers
 * have no app to write to until xz_mount() takes them (and it takes NULL
 * for a failed one, so that the reason can travel there).
 */
static _Thread_local struct {
	int code; /* XZ_EINVAL, XZ_ENOMEM; 0: none pending */
	char why[256];
} handler_error;

void
handler_set_error(int code, const char *fmt, ...)
{
	va_list ap;

	handler_error.code = code;
	va_start(ap, fmt);
	vsnprintf(handler_error.why, sizeof(handler_error.why), fmt, ap);
	va_end(ap);
}

const char *
xz_handler_error(void)
{
	return handler_error.why;
}

/* Grows *arr (of *len elements of size each) by one; NULL on failure. */
static void *
app_grow(void *arrp, size_t *len, size_t size)
{
	void **arr = arrp;
	void *n = realloc(*arr, (*len + 1) * size);

	if (n == NULL)
		return NULL;
	*arr = n;
	memset((char *)n + *len * size, 0, size);
	return (char *)n + (*len)++ * size;
}

struct xz_app *
xz_app_new(void)
{
	struct xz_app *app = calloc(1, sizeof(*app));

	if (app == NULL)
		return NULL;
	if (pthread_rwlock_init(&app->state_lock, NULL) != 0) {
		free(app);
		return NULL;
	}
	if (pthread_mutex_init(&app->grave_lock, NULL) != 0) {
		pthread_rwlock_destroy(&app->state_lock);
		free(app);
		return NULL;
	}
	app->routes_handler.ops = &app_routes_ops;
	app->routes_handler.state = app;
	return app;
}

void
xz_handler_free(struct xz_handler *h)
{
	if (h == NULL)
		return;
	if (h->ops->dispose != NULL)
		h->ops->dispose(h->state);
	free(h);
}

static void
state_free_list(struct state_value *v)
{
	struct state_value *next;

	for (; v != NULL; v = next) {
		next = v->next;
		free(v);
	}
}

static void
route_free(struct route *r)
{
	size_t i;

	for (i = 0; i < r->nsegs; i++)
		free(r->segs[i]);
	free(r->segs);
	free(r->pattern);
	free(r->prompt);
	strlist_free(r->tokens);
}

void
xz_app_free(struct xz_app *app)
{
	size_t i;

	if (app == NULL)
		return;
	for (i = 0; i < app->nmounts; i++) {
		free(app->mounts[i].prefix);
		xz_handler_free(app->mounts[i].handler);
	}
	for (i = 0; i < app->nroutes; i++)
		route_free(&app->routes[i]);
	for (i = 0; i < app->nstate; i++) {
		free(app->state[i].key);
		free(app->state[i].value);
	}
	state_free_list(app->graves[0]);
	state_free_list(app->graves[1]);
	free(app->mounts);
	free(app->routes);
	free(app->mws);
	free(app->startup);
	free(app->shutdown);
	task_free(app->tasks);
	for (i = 0; i < app->nadopted; i++)
		app->adopted[i].free_fn(app->adopted[i].p);
	free(app->adopted);
	free(app->state);
	pthread_mutex_destroy(&app->grave_lock);
	pthread_rwlock_destroy(&app->state_lock);
	free(app);
}

int
app_adopt(struct xz_app *app, void *p, void (*free_fn)(void *))
{
	struct adopted *a;

	a = realloc(app->adopted, (app->nadopted + 1) * sizeof(*a));
	if (a == NULL) {
		free_fn(p);
		return XZ_ENOMEM;
	}
	app->adopted = a;
	a[app->nadopted].p = p;
	a[app->nadopted++].free_fn = free_fn;
	return XZ_OK;
}

struct xz_handler *
xz_handler_new(const struct xz_handler_ops *ops, void *state)
{
	struct xz_handler *h;

	if (ops == NULL || ops->start == NULL) {
		handler_set_error(XZ_EINVAL, "handler: no ops, or no start");
		if (ops != NULL && ops->dispose != NULL)
			ops->dispose(state);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		handler_set_error(XZ_ENOMEM, "handler %s: out of memory",
		    ops->name != NULL ? ops->name : "(unnamed)");
		if (ops->dispose != NULL)
			ops->dispose(state);
		return NULL;
	}
	handler_error.code = 0;
	handler_error.why[0] = '\0';
	h->ops = ops;
	h->state = state;
	return h;
}

/* "api", "/api/", "//api//" -> "/api"; "", "/" -> "" (the root). */
static char *
app_normalise_prefix(const char *prefix)
{
	size_t len;
	char *p;

	while (*prefix == '/')
		prefix++;
	len = strlen(prefix);
	while (len > 0 && prefix[len - 1] == '/')
		len--;
	if ((p = malloc(len + 2)) == NULL)
		return NULL;
	if (len == 0) {
		p[0] = '\0';
		return p;
	}
	p[0] = '/';
	memcpy(p + 1, prefix, len);
	p[len + 1] = '\0';
	return p;
}

int
xz_mount(struct xz_app *app, const char *prefix, struct xz_handler *handler)
{
	struct mount *m;
	char *norm;
	size_t i;
	int rc;

	if (handler == NULL) {
		/* The constructor failed: its reason becomes the app's. */
		rc = handler_error.code != 0 ? handler_error.code : XZ_EINVAL;
		app_set_error(app, "mount %s: %s", prefix ? prefix : "(null)",
		    handler_error.code != 0 ? handler_error.why : "no handler");
		handler_error.code = 0;
		handler_error.why[0] = '\0';
		return rc;
	}
	if (prefix == NULL) {
		app_set_error(app, "mount: no prefix");
		xz_handler_free(handler);
		return XZ_EINVAL;
	}
	if ((norm = app_normalise_prefix(prefix)) == NULL) {
		app_set_error(app, "mount %s: out of memory", prefix);
		xz_handler_free(handler);
		return XZ_ENOMEM;
	}
	for (i = 0; i < app->nmounts; i++) {
		if (strcmp(app->mounts[i].prefix, norm) == 0) {
			app_set_error(app, "mount %s: already mounted",
			    norm[0] ? norm : "/");
			free(norm);
			xz_handler_free(handler);
			return XZ_EINVAL;
		}
	}
	if ((m = app_grow(&app->mounts, &app->nmounts, sizeof(*m))) == NULL) {
		app_set_error(app, "mount %s: out of memory", norm);
		free(norm);
		xz_handler_free(handler);
		return XZ_ENOMEM;
	}
	m->prefix = norm;
	m->len = strlen(norm);
	m->handler = handler;
	return XZ_OK;
}

/* Splits "/users/{id}" into "users", "{id}". */
static int
route_split(struct route *r, const char *pattern)
{
	const char *p = pattern, *slash;
	char **segs;

	while (*p == '/')
		p++;
	while (*p != '\0') {
		slash = strchr(p, '/');
		if (slash == NULL)
			slash = p + strlen(p);
		segs = realloc(r->segs, (r->nsegs + 1) * sizeof(*segs));
		if (segs == NULL)
			return XZ_ENOMEM;
		r->segs = segs;
		if ((segs[r->nsegs] = strndup(p, (size_t)(slash - p))) == NULL)
			return XZ_ENOMEM;
		r->nsegs++;
		p = *slash == '/' ? slash + 1 : slash;
	}
	return XZ_OK;
}

static bool
seg_is_param(const char *seg)
{
	size_t len = strlen(seg);

	return len >= 3 && seg[0] == '{' && seg[len - 1] == '}';
}

static bool
seg_is_rest(const char *seg)
{
	size_t len = strlen(seg);

	return seg_is_param(seg) && len > 7 &&
	       strcmp(seg + len - 6, ":path}") == 0;
}

/* A {name:path} parameter may only close the pattern. */
static bool
route_valid(const struct route *r)
{
	size_t i;

	for (i = 0; i + 1 < r->nsegs; i++)
		if (seg_is_rest(r->segs[i]))
			return false;
	for (i = 0; i < r->nsegs; i++)
		if (r->segs[i][0] == '\0' && i + 1 != r->nsegs)
			return false;
	return true;
}

static struct route *
app_add_route(struct xz_app *app, const char *pattern, xz_route_fn fn,
    void *arg, int *rc)
{
	struct route r = { 0 }, *slot;

	*rc = XZ_EINVAL;
	if (pattern == NULL || pattern[0] != '/' || fn == NULL) {
		app_set_error(app,
		    "route %s: a pattern starts with '/' and needs a function",
		    pattern ? pattern : "(null)");
		return NULL;
	}
	*rc = XZ_ENOMEM;
	if ((r.pattern = strdup(pattern)) == NULL ||
	    route_split(&r, pattern) != XZ_OK) {
		app_set_error(app, "route %s: out of memory", pattern);
		route_free(&r);
		return NULL;
	}
	if (!route_valid(&r)) {
		app_set_error(app,
		    "route %s: {name:path} only last, no empty segments",
		    pattern);
		route_free(&r);
		*rc = XZ_EINVAL;
		return NULL;
	}
	r.fn = fn;
	r.arg = arg;
	if ((slot = app_grow(&app->routes, &app->nroutes, sizeof(r))) == NULL) {
		app_set_error(app, "route %s: out of memory", pattern);
		route_free(&r);
		return NULL;
	}
	*slot = r;
	*rc = XZ_OK;
	return slot;
}

int
xz_route(struct xz_app *app, const char *pattern, xz_route_fn fn, void *arg)
{
	int rc;

	(void)app_add_route(app, pattern, fn, arg, &rc);
	return rc;
}

int
xz_input_route(struct xz_app *app, const char *pattern, const char *prompt,
    bool sensitive, xz_route_fn fn, void *arg)
{
	struct route *r;
	int rc;

	if (prompt == NULL || !response_valid(10, prompt, strlen(prompt))) {
		app_set_error(app, "route %s: the prompt must be a valid meta",
		    pattern ? pattern : "(null)");
		return XZ_EINVAL;
	}
	if ((r = app_add_route(app, pattern, fn, arg, &rc)) == NULL)
		return rc;
	if ((r->prompt = strdup(prompt)) == NULL) {
		app_set_error(app, "route %s: out of memory", pattern);
		route_free(r);
		app->nroutes--;
		return XZ_ENOMEM;
	}
	r->sensitive = sensitive;
	return XZ_OK;
}

/* A NULL-ended copy of list; *out NULL for NULL. */
static int
app_copy_list(const char *const *list, char ***out)
{
	size_t n = 0, i;

	*out = NULL;
	if (list == NULL)
		return XZ_OK;
	while (list[n] != NULL)
		n++;
	if ((*out = calloc(n + 1, sizeof(char *))) == NULL)
		return XZ_ENOMEM;
	for (i = 0; i < n; i++)
		if (((*out)[i] = strdup(list[i])) == NULL)
			return XZ_ENOMEM; /* strlist_free frees what was made */
	return XZ_OK;
}

int
xz_titan_route_opts(struct xz_app *app, const char *pattern,
    const struct xz_titan_opts *opts, xz_route_fn fn, void *arg)
{
	static const struct xz_titan_opts defaults;
	struct route *r;
	int rc;

	if (opts == NULL)
		opts = &defaults;
	if ((r = app_add_route(app, pattern, fn, arg, &rc)) == NULL)
		return rc;
	r->titan = true;
	r->whole = opts->whole;
	r->max_upload_size = opts->max_upload_size ? opts->max_upload_size :
	                                             XZ_DEFAULT_MAX_UPLOAD;
	if (app_copy_list(opts->tokens, &r->tokens) != XZ_OK) {
		app_set_error(app, "titan route %s: out of memory", pattern);
		route_free(r);
		app->nroutes--;
		return XZ_ENOMEM;
	}
	return XZ_OK;
}

int
xz_titan_route(struct xz_app *app, const char *pattern, xz_route_fn fn,
    void *arg)
{
	return xz_titan_route_opts(app, pattern, NULL, fn, arg);
}

int
xz_middleware(struct xz_app *app, const struct xz_middleware *mw, void *arg)
{
	struct middleware *m;

	if (mw == NULL || (mw->before == NULL && mw->after == NULL)) {
		app_set_error(app, "middleware: neither before nor after");
		return XZ_EINVAL;
	}
	if ((m = app_grow(&app->mws, &app->nmws, sizeof(*m))) == NULL) {
		app_set_error(app, "middleware: out of memory");
		return XZ_ENOMEM;
	}
	m->mw = *mw;
	m->arg = arg;
	return XZ_OK;
}

/* The arg of the first middleware registered with mw's hooks, or NULL. */
void *
app_middleware_arg(const struct xz_app *app, const struct xz_middleware *mw)
{
	size_t i;

	for (i = 0; i < app->nmws; i++)
		if (app->mws[i].mw.before == mw->before &&
		    app->mws[i].mw.after == mw->after)
			return app->mws[i].arg;
	return NULL;
}

static int
app_add_hook(struct xz_app *app, const char *kind, struct hook **hooks,
    size_t *n, xz_hook_fn fn, void *arg)
{
	struct hook *h;

	if (fn == NULL) {
		app_set_error(app, "%s hook: no function", kind);
		return XZ_EINVAL;
	}
	if ((h = app_grow(hooks, n, sizeof(*h))) == NULL) {
		app_set_error(app, "%s hook: out of memory", kind);
		return XZ_ENOMEM;
	}
	h->fn = fn;
	h->arg = arg;
	return XZ_OK;
}

int
xz_on_startup(struct xz_app *app, xz_hook_fn fn, void *arg)
{
	return app_add_hook(app, "startup", &app->startup, &app->nstartup, fn,
	    arg);
}

int
xz_on_shutdown(struct xz_app *app, xz_hook_fn fn, void *arg)
{
	return app_add_hook(app, "shutdown", &app->shutdown, &app->nshutdown,
	    fn, arg);
}

int
xz_every(struct xz_app *app, double seconds, xz_task_fn fn, void *arg)
{
	const char *why;
	int rc;

	if ((rc = task_add(&app->tasks, app, seconds, fn, arg, &why)) != XZ_OK)
		app_set_error(app, "every %gs: %s", seconds, why);
	return rc;
}

static void
app_run_shutdown_hooks(struct xz_app *app)
{
	size_t i;

	for (i = app->nshutdown; i > 0; i--)
		(void)app->shutdown[i - 1].fn(app, app->shutdown[i - 1].arg);
}

int
app_startup(struct xz_app *app)
{
	size_t i;
	int rc;

	for (i = 0; i < app->nstartup; i++)
		if ((rc = app->startup[i].fn(app, app->startup[i].arg)) !=
		    XZ_OK)
			return rc;
	/* The hooks ran: without tasks, the app stops as it would after. */
	if ((rc = task_start(app->tasks)) != XZ_OK)
		app_run_shutdown_hooks(app);
	return rc;
}

void
app_shutdown(struct xz_app *app)
{
	task_stop(app->tasks); /* before the hooks free what tasks use */
	app_run_shutdown_hooks(app);
}

bool
app_busy(const struct xz_app *app)
{
	size_t i;

	for (i = 0; i < app->nmounts; i++) {
		const struct xz_handler *h = app->mounts[i].handler;

		if (h->busy != NULL && h->busy(h->state))
			return true;
	}
	return false;
}

static struct state_entry *
state_find(struct xz_app *app, const char *key)
{
	size_t i;

	for (i = 0; i < app->nstate; i++)
		if (strcmp(app->state[i].key, key) == 0)
			return &app->state[i];
	return NULL;
}

/*
 * Frees the replaced values no request in flight can hold. With the
 * current period P, requests started in P or P - 1 are in flight (the
 * period only advances once P - 1 has none left). A value replaced during
 * P - 1 may be held by requests of P - 1 only: those of P started after
 * it was replaced, so it goes once P - 1 has no reader left. Then, if
 * values were replaced during P, the period advances, and they wait in
 * turn for P's readers. Called with grave_lock held.
 */
static void
state_reap(struct xz_app *app)
{
	unsigned cur = app->period & 1, old = cur ^ 1;

	while (app->readers[old] == 0) {
		state_free_list(app->graves[old]);
		app->graves[old] = NULL;
		if (app->graves[cur] == NULL)
			break;
		app->period++;
		cur = old;
		old = cur ^ 1;
	}
}

unsigned long
app_state_enter(struct xz_app *app)
{
	unsigned long period;

	pthread_mutex_lock(&app->grave_lock);
	period = app->period;
	app->readers[period & 1]++;
	pthread_mutex_unlock(&app->grave_lock);
	return period;
}

void
app_state_leave(struct xz_app *app, unsigned long period)
{
	pthread_mutex_lock(&app->grave_lock);
	app->readers[period & 1]--;
	state_reap(app);
	pthread_mutex_unlock(&app->grave_lock);
}

size_t
app_state_graves(struct xz_app *app)
{
	struct state_value *v;
	size_t n = 0;
	int i;

	pthread_mutex_lock(&app->grave_lock);
	for (i = 0; i < 2; i++)
		for (v = app->graves[i]; v != NULL; v = v->next)
			n++;
	pthread_mutex_unlock(&app->grave_lock);
	return n;
}

/* A replaced value: freed now, or once its possible readers are gone. */
static void
state_bury(struct xz_app *app, struct state_value *old)
{
	pthread_mutex_lock(&app->grave_lock);
	old->next = app->graves[app->period & 1];
	app->graves[app->period & 1] = old;
	state_reap(app);
	pthread_mutex_unlock(&app->grave_lock);
}

static int
state_set_locked(struct xz_app *app, const char *key, struct state_value *value)
{
	struct state_entry *e = state_find(app, key);

	if (e != NULL) {
		state_bury(app, e->value);
		e->value = value;
		return XZ_OK;
	}
	if ((e = app_grow(&app->state, &app->nstate, sizeof(*e))) == NULL)
		return XZ_ENOMEM;
	if ((e->key = strdup(key)) == NULL) {
		app->nstate--;
		return XZ_ENOMEM;
	}
	e->value = value;
	return XZ_OK;
}

int
xz_state_set(struct xz_app *app, const char *key, const char *value)
{
	struct state_value *copy;
	size_t len;
	int rc;

	if (key == NULL || value == NULL) {
		app_set_error(app, "state: a key and a value are needed");
		return XZ_EINVAL;
	}
	len = strlen(value);
	if ((copy = malloc(sizeof(*copy) + len + 1)) == NULL) {
		app_set_error(app, "state %s: out of memory", key);
		return XZ_ENOMEM;
	}
	copy->next = NULL;
	memcpy(copy->s, value, len + 1);
	pthread_rwlock_wrlock(&app->state_lock);
	rc = state_set_locked(app, key, copy);
	pthread_rwlock_unlock(&app->state_lock);
	if (rc != XZ_OK) {
		app_set_error(app, "state %s: out of memory", key);
		free(copy);
	}
	return rc;
}

const char *
xz_state_get(struct xz_app *app, const char *key)
{
	struct state_entry *e;
	const char *v;

	pthread_rwlock_rdlock(&app->state_lock);
	e = state_find(app, key);
	v = e != NULL ? e->value->s : NULL;
	pthread_rwlock_unlock(&app->state_lock);
	return v;
}

/*
 * Dispatch: the path every request takes through the app.
 */

/* Matches a mount: the prefix itself or anything under prefix + "/". */
static const struct mount *
app_find_mount(const struct xz_app *app, const char *path)
{
	const struct mount *best = NULL;
	size_t i;

	for (i = 0; i < app->nmounts; i++) {
		const struct mount *m = &app->mounts[i];

		if (strncmp(path, m->prefix, m->len) != 0 ||
		    (path[m->len] != '\0' && path[m->len] != '/'))
			continue;
		if (best == NULL || m->len > best->len)
			best = m;
	}
	return best;
}

/*
 * Matches path against r, recording parameters: {x} takes one non-empty
 * segment, {x:path} the (non-empty) rest; literal segments match exactly.
 */
static bool
route_match(struct xz_request *req, struct route *r, const char *path)
{
	const char *p = path + 1, *end;
	size_t i, len;

	for (i = 0; i < r->nsegs; i++) {
		const char *seg = r->segs[i];

		if (p == NULL)
			return false;
		if (seg_is_rest(seg)) {
			if (*p == '\0')
				return false;
			return request_add_param(req, (char *)seg, p,
			           strlen(p)) == XZ_OK;
		}
		end = strchr(p, '/');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (seg_is_param(seg)) {
			if (len == 0 || request_add_param(req, (char *)seg, p,
			                    len) != XZ_OK)
				return false;
		} else if (strlen(seg) != len || memcmp(seg, p, len) != 0) {
			return false;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return p == NULL || (r->nsegs == 0 && *p == '\0');
}

static struct route *
app_find_route(struct xz_app *app, struct xz_request *req)
{
	size_t i;

	for (i = 0; i < app->nroutes; i++) {
		if (app->routes[i].titan != req->url.titan)
			continue;
		if (route_match(req, &app->routes[i], req->url.path))
			return &app->routes[i];
		request_drop_params(req);
	}
	return NULL;
}

/* A handler or route that failed before answering: 40, never a crash. */
static void
request_fail(struct xz_request *req, const char *meta)
{
	if (!req->replied)
		(void)xz_reply(req, 40, meta);
	xz_end(req);
}

/*
 * The app's C routes, as a handler like the mounted ones: the one place a
 * route is looked up, asked for its input, or given its cancel callback.
 */
/*
 * A Titan upload where enabled is admitted when its size fits: from then
 * on the carrier reads its body. Otherwise 59, before any body byte.
 */
static bool
app_admit_upload(struct xz_request *req, bool enabled, size_t max)
{
	char meta[64];

	if (!enabled) {
		(void)xz_respond(req, 59, "Titan not accepted here");
		return false;
	}
	if (req->url.size > max) {
		log_warnx("upload of %zu bytes over %zu refused: %s",
		    req->url.size, max, req->url.raw);
		snprintf(meta, sizeof(meta), "Upload larger than %zu bytes",
		    max);
		(void)xz_respond(req, 59, meta);
		return false;
	}
	req->upload_admitted = true;
	return true;
}

/* A route's token list: 60 without a token, 61 for one not in it. */
static bool
route_token_ok(struct xz_request *req, const struct route *r)
{
	char *const *t;

	if (r->tokens == NULL)
		return true;
	if (req->url.token == NULL) {
		(void)xz_respond(req, 60, "Token required");
		return false;
	}
	for (t = r->tokens; *t != NULL; t++)
		if (strcmp(*t, req->url.token) == 0)
			return true;
	(void)xz_respond(req, 61, "Token not authorised");
	return false;
}

/* A .whole Titan route: fn runs once the body is all here. */
static void
route_whole_data(struct xz_request *req, void *arg)
{
	struct route *r = arg;

	if (req->upload_in != req->url.size)
		return;
	xz_upload_on_data(req, NULL, NULL);
	if (r->fn(req, r->arg) != XZ_OK) {
		log_warnx("route %s failed on %s", r->pattern, req->url.raw);
		request_fail(req, "Handler error");
	}
}

/* A Titan route, its checks passed: fn now or with the whole body. */
static int
route_start_upload(struct xz_request *req, struct route *r)
{
	if (!route_token_ok(req, r) ||
	    !app_admit_upload(req, true, r->max_upload_size))
		return XZ_OK;
	if (!r->whole)
		return r->fn(req, r->arg);
	req->upload_window = r->max_upload_size; /* never pause it */
	xz_upload_on_data(req, route_whole_data, r);
	route_whole_data(req, r);
	return XZ_OK;
}

static int
routes_start(struct xz_request *req, void *state)
{
	struct xz_app *app = state;
	struct route *r;
	int rc;

	if ((r = app_find_route(app, req)) == NULL) {
		if (req->url.titan)
			(void)xz_respond(req, 59, "Titan not accepted here");
		else
			(void)xz_respond(req, 51, "Not found");
		return XZ_OK;
	}
	if (r->titan) {
		if ((rc = route_start_upload(req, r)) != XZ_OK)
			log_warnx("route %s failed on %s", r->pattern,
			    req->url.raw);
		return rc;
	}
	if (r->prompt != NULL && xz_request_query(req) == NULL) {
		(void)xz_input(req, r->prompt, r->sensitive);
		return XZ_OK;
	}
	if ((rc = r->fn(req, r->arg)) != XZ_OK)
		log_warnx("route %s failed on %s", r->pattern, req->url.raw);
	return rc;
}

/* The client left an asynchronous route: its xz_request_on_cancel. */
static void
routes_cancel(struct xz_request *req, void *state)
{
	request_run_on_cancel(req);
}

static const struct xz_handler_ops app_routes_ops = {
	.name = "route",
	.start = routes_start,
	.cancel = routes_cancel,
};

static int app_run_after(struct xz_request *req, int *status, char **meta);

/* The request is done with the app's state (request_clear). */
static void
app_leave(struct xz_request *req)
{
	app_state_leave(req->app, req->state_period);
}

static const struct request_owner app_owner = {
	.after = app_run_after,
	.leave = app_leave,
};

static void
app_run_handler(struct xz_request *req)
{
	struct xz_app *app = req->app;
	const struct mount *m = app_find_mount(app, req->url.path);
	struct xz_handler *h = &app->routes_handler;

	req->path_info = req->url.path;
	req->counted_as = m == NULL ? "routes" : m->len > 0 ? m->prefix : "/";
	if (m != NULL) {
		req->mount = m->prefix;
		req->path_info = req->url.path + m->len;
		h = m->handler;
		if (req->url.titan &&
		    !app_admit_upload(req, h->titan, h->max_upload_size))
			return;
	}
	req->handler = h;
	if (h->ops->start(req, h->state) != XZ_OK) {
		log_warnx("%s handler failed on %s", h->ops->name,
		    req->url.raw);
		req->handler = NULL;
		request_fail(req, "Handler error");
	}
}

void
app_dispatch(struct xz_app *app, struct xz_request *req)
{
	size_t i;

	req->app = app;
	req->owner = &app_owner;
	req->state_period = app_state_enter(app);
	for (i = 0; i < app->nmws; i++) {
		struct middleware *m = &app->mws[i];

		if (m->mw.before == NULL) {
			req->mw_depth++;
			continue;
		}
		if (m->mw.before(req, m->arg) != XZ_OK) {
			request_fail(req, "Middleware error");
			return;
		}
		if (req->replied)
			return; /* it answered early */
		req->mw_depth++;
	}
	app_run_handler(req);
}

/*
 * Middleware after hooks, innermost first; each may replace the pair
 * (*meta is malloc'd). Called by xz_reply through the request's owner.
 */
static int
app_run_after(struct xz_request *req, int *status, char **meta)
{
	struct xz_response res;
	int i;
	char *copy;

	for (i = req->mw_depth - 1; i >= 0; i--) {
		struct middleware *m = &req->app->mws[i];

		if (m->mw.after == NULL)
			continue;
		res.status = *status;
		res.meta = *meta;
		req->in_after = i + 1;
		m->mw.after(req, &res, m->arg);
		req->in_after = 0;
		if (req->alt.ops != NULL)
			return REQUEST_REPLACED; /* outer hooks see the next */
		if (res.meta == *meta && res.status == *status)
			continue;
		if (res.meta == NULL ||
		    !response_valid(res.status, res.meta, strlen(res.meta))) {
			log_warnx("middleware set an invalid response %d on %s",
			    res.status, req->url.raw);
			res.status = 40;
			res.meta = "Middleware error";
		}
		if ((copy = strdup(res.meta)) == NULL)
			return XZ_ENOMEM;
		free(*meta);
		*meta = copy;
		*status = res.status;
	}
	return XZ_OK;
}

/*
 * Answering instead: an after hook replaces the answer being made. The
 * handler that made it may still be on the stack (the hook runs inside
 * its xz_reply), so the swap happens from the loop: the handler is
 * cancelled there unless it ended meanwhile, and the new answer starts.
 */

/* xz_request_replace's function, as a handler. */
static int
alt_fn_start(struct xz_request *req, void *state)
{
	return req->alt_fn(req, req->alt_arg);
}

static const struct xz_handler_ops alt_fn_ops = {
	.name = "middleware",
	.start = alt_fn_start,
	.cancel = routes_cancel, /* its xz_request_on_cancel */
};

static void
app_swap(evutil_socket_t fd, short what, void *arg)
{
	struct xz_request *req = arg;
	struct xz_handler *h;

	if (req->ended || req->alt.ops == NULL)
		return;
	request_discard(req);
	req->alt_running = req->alt;
	req->alt.ops = NULL; /* an outer hook may replace this one too */
	req->mw_depth = req->alt_depth;
	h = req->handler = &req->alt_running;
	if (h->ops->start(req, h->state) != XZ_OK) {
		log_warnx("%s handler failed on %s (answering instead)",
		    h->ops->name, req->url.raw);
		req->handler = NULL;
		request_fail(req, "Handler error");
	}
}

static int
app_replace(struct xz_request *req, const struct xz_handler_ops *ops,
    void *state)
{
	struct timeval now = { 0, 0 };

	if (req->in_after == 0 || req->alt.ops != NULL)
		return XZ_ESTATE;
	if (req->alt_ev == NULL &&
	    (req->alt_ev = event_new(req->base, -1, 0, app_swap, req)) == NULL)
		return XZ_ENOMEM;
	if (event_add(req->alt_ev, &now) == -1)
		return XZ_ENOMEM;
	req->alt.ops = ops;
	req->alt.state = state;
	req->alt_depth = req->in_after - 1;
	return XZ_OK;
}

int
xz_request_replace(struct xz_request *req, xz_route_fn fn, void *arg)
{
	int rc;

	if (fn == NULL)
		return XZ_EINVAL;
	if ((rc = app_replace(req, &alt_fn_ops, NULL)) == XZ_OK) {
		req->alt_fn = fn;
		req->alt_arg = arg;
	}
	return rc;
}

int
xz_request_replace_handler(struct xz_request *req, struct xz_handler *handler)
{
	if (handler == NULL)
		return XZ_EINVAL;
	return app_replace(req, handler->ops, handler->state);
}
