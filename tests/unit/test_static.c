/*
 * test_static.c - the static handler through the in-process test client:
 * what open_beneath (test_beneath.c) keeps it from serving.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xz_private.h"

static char root[] = "/tmp/xitzin-static-XXXXXX";

static void
setup(void)
{
	char path[512];
	FILE *f;

	cr_assert_not_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/a.txt", root);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("a", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/out", root);
	cr_assert_eq(symlink("/etc/passwd", path), 0);
}

static void
teardown(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	(void)!system(cmd);
}

TestSuite(static_handler, .init = setup, .fini = teardown);

static void
expect_get(struct xz_test_client *tc, const char *path, int status,
    const char *body)
{
	struct xz_test_response *r = xz_test_get(tc, path);

	cr_assert_not_null(r);
	cr_expect_eq(r->status, status, "%s: %d %s", path, r->status, r->meta);
	if (body != NULL)
		cr_expect_str_eq((const char *)r->body, body, "%s", path);
	xz_test_response_free(r);
}

Test(static_handler, serves_beneath_its_root_only)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;

	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/a.txt", 20, "a");
	expect_get(tc, "/out", 51, NULL); /* a symlink out of the root */
	expect_get(tc, "/missing", 51, NULL);
	xz_test_client_free(tc);
	xz_app_free(app);
}
