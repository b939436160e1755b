/*
 * test_alloc.c - out of memory at every allocation site (STYLE.md, 8;
 * curl's torture mode): the Nth allocation the library makes fails, for
 * N = 1, 2, ... until a run makes fewer than N, and every run must end
 * in a clean error: no crash, no hang, and nothing leaked (LeakSanitizer
 * checks that in the sanitizer build, `make san`).
 *
 * The allocator is interposed at link time (ld --wrap, see meson.build):
 * every malloc, calloc, realloc, strdup and strndup call that our objects
 * make goes through the wrappers below, with no hook compiled into the
 * library. Allocations inside libevent, GnuTLS and libc are not counted:
 * they are those libraries' own to handle.
 */
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xitzin.h"

/*
 * LeakSanitizer's report at exit comes after Criterion has recorded the
 * test as passed: the sanitizer build asks for the check itself.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define leaks_found() (__lsan_do_recoverable_leak_check() != 0)
#else
#define leaks_found() false
#endif

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_long fail_at; /* 0: no failure */
static atomic_long calls;   /* allocations since the run began */

static bool
alloc_fails(void)
{
	long at = atomic_load(&fail_at);

	if (at == 0)
		return false;
	if (atomic_fetch_add(&calls, 1) + 1 != at)
		return false;
	errno = ENOMEM;
	return true;
}

void *
__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	return alloc_fails() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	return alloc_fails() ? NULL : __real_strndup(s, n);
}

static char root[] = "/tmp/xitzin-alloc-XXXXXX";

static void
make_root(void)
{
	char path[128];
	FILE *f;

	cr_assert_not_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/index.gmi", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("# Home\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/hi.cgi", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("#!/bin/sh\nprintf '20 text/gemini\\r\\nhi\\n'\n", f);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
}

static void
remove_root(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/index.gmi", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/hi.cgi", root);
	unlink(path);
	rmdir(root);
}

TestSuite(alloc, .init = make_root, .fini = remove_root, .timeout = 300);

static int
hello(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "# Hello\n");
}

/* A Titan route reading as bytes come; answers once all are in. */
static void
upload_data(struct xz_request *req, void *arg)
{
	char buf[4096];
	ssize_t n;

	while ((n = xz_upload_read(req, buf, sizeof(buf))) > 0)
		;
	if (n == 0)
		(void)xz_gemtext(req, "got it");
}

static int
upload(struct xz_request *req, void *arg)
{
	xz_upload_on_data(req, upload_data, NULL);
	upload_data(req, NULL);
	return XZ_OK;
}

/* Per-request data, and a 43 answered instead: each may fail too. */
static int
before(struct xz_request *req, void *arg)
{
	char *seen = strdup(xz_request_path(req));

	if (seen != NULL && xz_request_set_mw_data(req, arg, seen, free) != 0)
		free(seen);
	return 0; /* not answered: go on */
}

static int
fallback(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "# Fallback\n");
}

static void
after(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 43)
		(void)xz_request_replace(req, fallback, NULL);
}

static const struct xz_middleware mw = { before, after };

static int
hourly(struct xz_app *app, void *arg)
{
	return XZ_OK;
}

/* Registration: each call may fail; whatever was made is freed. */
static void
build_app(struct xz_app **appp)
{
	static const char *const keys[] = { "k", NULL };
	struct xz_backend_config cfg;
	struct xz_app *app;
	char script[128];

	*appp = NULL;
	if ((app = xz_app_new()) == NULL)
		return;
	(void)xz_static(app, "/", root);
	(void)xz_route(app, "/hello/{name}", hello, NULL);
	(void)xz_input_route(app, "/ask", "Name?", false, hello, NULL);
	(void)xz_middleware(app, &mw, (void *)&mw);
	(void)xz_state_set(app, "k", "v");
	(void)xz_state_set(app, "k", "w");
	(void)xz_every(app, 3600, hourly, NULL);
	(void)xz_rate_limit(app, NULL, 1000, 0);
	(void)xz_rate_limit(app, "/api", 0, 0);
	(void)xz_titan_route(app, "/up/{name}", upload, NULL);
	(void)xz_titan_route_opts(app, "/whole",
	    &(struct xz_titan_opts){ .tokens = keys, .whole = true }, hello,
	    NULL);
	xz_scgi_config_init(&cfg);
	cfg.titan = true;
	cfg.app_state_keys = keys;
	(void)xz_mount(app, "/api", xz_scgi_unix("/nonexistent.sock", &cfg));
	(void)xz_mount(app, "/tcp",
	    xz_scgi_tcp("127.0.0.1", 9, NULL)); /* discard: refused */
	snprintf(script, sizeof(script), "%s/hi.cgi", root);
	(void)xz_cgi_script(app, "/cgi", script, &cfg);
	*appp = app;
}

static void
run_request(struct xz_test_client *tc, const char *path)
{
	struct xz_test_response *r = xz_test_get(tc, path);

	if (r == NULL)
		return; /* out of memory: said so */
	/* Whatever failed inside, the client got a valid answer or none. */
	cr_assert(r->status == 0 || (r->status >= 10 && r->status <= 69),
	    "%s: status %d", path, r->status);
	xz_test_response_free(r);
}

static void
run_upload(struct xz_test_client *tc, const char *path, const char *token)
{
	static char data[100000];
	struct xz_test_response *r;

	r = xz_test_upload(tc, path, data, sizeof(data), "a/b", token);
	if (r == NULL)
		return;
	cr_assert(r->status == 0 || (r->status >= 10 && r->status <= 69),
	    "%s: status %d", path, r->status);
	xz_test_response_free(r);
}

static void
serve(struct xz_app *app)
{
	struct xz_test_client *tc;

	if ((tc = xz_test_client_new(app)) == NULL)
		return;
	run_request(tc, "/");
	run_request(tc, "/hello/alice");
	run_request(tc, "/ask?bob");
	run_request(tc, "/api/x");
	run_request(tc, "/missing");
	run_request(tc, "/cgi/x");
	run_upload(tc, "/up/a", "token");
	run_upload(tc, "/whole", "k");
	run_upload(tc, "/api/x", NULL);
	xz_test_client_free(tc);
}

/*
 * Runs scenario with the Nth allocation failing, N = 1, 2, ...; returns
 * how many allocation sites the runs went through.
 */
static long
torture(void (*scenario)(void))
{
	long n, made;

	for (n = 1; n < 100000; n++) {
		atomic_store(&calls, 0);
		atomic_store(&fail_at, n);
		scenario();
		made = atomic_load(&calls);
		atomic_store(&fail_at, 0);
		if (made < n)
			return n - 1;
	}
	cr_assert_fail("the scenario never ran to its end");
	return 0;
}

static void
registration(void)
{
	struct xz_app *app;

	build_app(&app);
	xz_app_free(app);
}

static void
requests(void)
{
	struct xz_app *app;
	long at = atomic_load(&fail_at);

	/* The app is built whole; only the requests' allocations fail. */
	atomic_store(&fail_at, 0);
	build_app(&app);
	cr_assert_not_null(app);
	atomic_store(&calls, 0);
	atomic_store(&fail_at, at);
	serve(app);
	atomic_store(&fail_at, 0);
	xz_app_free(app);
}

Test(alloc, every_registration_allocation_may_fail)
{
	long sites = torture(registration);

	cr_log_info("registration: %ld allocations, each failed once", sites);
	cr_assert_gt(sites, 20);
	cr_assert_not(leaks_found(), "memory leaked (see the report above)");
}

Test(alloc, every_request_allocation_may_fail)
{
	long sites = torture(requests);

	cr_log_info("requests: %ld allocations, each failed once", sites);
	cr_assert_gt(sites, 20);
	cr_assert_not(leaks_found(), "memory leaked (see the report above)");
}

/*
 * A configuration with sites ([host] sections, their state and mounts):
 * loading and applying it, every allocation failing once.
 */
static void
config_sites(void)
{
	char path[160], err[2048];
	struct xz_config *cfg;
	struct xz_app *app;
	long at = atomic_load(&fail_at);
	FILE *f;

	atomic_store(&fail_at, 0);
	snprintf(path, sizeof(path), "%s/x.conf", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f,
	    "[server]\nhostname = localhost, alias\n"
	    "[static /]\nroot = %s\n"
	    "[host a.example]\nnames = www.a.example, *.a.example\n"
	    "[state a.example]\nk = v\n"
	    "[static a.example /]\nroot = %s\nrequire_cert = true\n"
	    "[cgi a.example /c]\nscript = %s/hi.cgi\n"
	    "[host b.example]\n[static b.example /]\nroot = %s\n",
	    root, root, root, root);
	fclose(f);
	app = xz_app_new();
	cr_assert_not_null(app);
	atomic_store(&calls, 0);
	atomic_store(&fail_at, at);
	if ((cfg = xz_config_load(path, err, sizeof(err))) != NULL)
		(void)xz_config_apply(cfg, app, err, sizeof(err));
	atomic_store(&fail_at, 0);
	xz_config_free(cfg);
	xz_app_free(app);
	unlink(path);
}

Test(alloc, every_config_allocation_with_sites_may_fail)
{
	long sites = torture(config_sites);

	cr_log_info("config with sites: %ld allocations, each failed once",
	    sites);
	cr_assert_gt(sites, 20);
	cr_assert_not(leaks_found(), "memory leaked (see the report above)");
}
