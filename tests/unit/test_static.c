/*
 * test_static.c - the static handler through the in-process test client:
 * what open_beneath (test_beneath.c) keeps it from serving, index.gmi,
 * the MIME table, the slash redirect (31), not found (51), hidden paths (51
 * unless served), a large file served in pieces, and registration errors.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xz_private.h"

static char root[] = "/tmp/xitzin-static-XXXXXX";

/* Writes len bytes of data (or of a pattern, data NULL) to root/rel. */
static void
put(const char *rel, const char *data, size_t len)
{
	char path[512];
	FILE *f;
	size_t i;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert_not_null(f = fopen(path, "w"), "%s", path);
	if (data != NULL)
		cr_assert_eq(fwrite(data, 1, len, f), len);
	else
		for (i = 0; i < len; i++)
			fputc((int)((i * 7 + i / 251) & 0xff), f);
	cr_assert_eq(fclose(f), 0);
}

static void
dir(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
}

static void
setup(void)
{
	char path[512];

	cr_assert_not_null(mkdtemp(root));
	put("a.txt", "a", 1);
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

/* A directory with the slash: its index.gmi, as text/gemini. */
Test(static_handler, index_gmi)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	char path[512];

	put("index.gmi", "# home\n", 7);
	dir("docs");
	put("docs/index.gmi", "# docs\n", 7);
	dir("empty");
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/", 20, "# home\n");
	expect_get(tc, "/docs/", 20, "# docs\n");
	expect_get(tc, "/empty/", 51, NULL); /* no index.gmi: no listing */
	dir("odd");
	dir("odd/index.gmi"); /* not a regular file */
	expect_get(tc, "/odd/", 51, NULL);
	dir("linked");
	snprintf(path, sizeof(path), "%s/linked/index.gmi", root);
	cr_assert_eq(symlink("../docs/index.gmi", path), 0);
	expect_get(tc, "/linked/", 20, "# docs\n"); /* inside the root */
	/* No path at all: the root's slash form. */
	cr_assert_not_null(r = xz_test_request(tc, "gemini://localhost"));
	cr_expect_eq(r->status, 31, "%d %s", r->status, r->meta);
	cr_expect_str_eq(r->meta, "/");
	xz_test_response_free(r);
	expect_get(tc, "/docs/index.gmi", 20, "# docs\n");
	cr_assert_not_null(r = xz_test_get(tc, "/docs/"));
	cr_expect_str_eq(r->meta, "text/gemini");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* A directory without its slash: 31 to the slash form, query kept. */
Test(static_handler, slash_redirect)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	dir("docs");
	dir("two words");
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_eq(xz_static(app, "/files", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));

	cr_assert_not_null(r = xz_test_get(tc, "/docs"));
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(r->meta, "/docs/");
	xz_test_response_free(r);

	cr_assert_not_null(r = xz_test_get_query(tc, "/docs", "a b"));
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(r->meta, "/docs/?a%20b");
	xz_test_response_free(r);

	/* The decoded path, encoded again for the URL. */
	cr_assert_not_null(r = xz_test_get(tc, "/two%20words"));
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(r->meta, "/two%20words/");
	xz_test_response_free(r);

	/* Under a prefix: the whole path, mount included. */
	cr_assert_not_null(r = xz_test_get(tc, "/files/docs"));
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(r->meta, "/files/docs/");
	xz_test_response_free(r);
	cr_assert_not_null(r = xz_test_get(tc, "/files"));
	cr_expect_eq(r->status, 31);
	cr_expect_str_eq(r->meta, "/files/");
	xz_test_response_free(r);

	/* A file never gets a slash, and a file with one is not found. */
	expect_get(tc, "/a.txt", 20, "a");
	expect_get(tc, "/a.txt/", 51, NULL);
	xz_test_client_free(tc);
	xz_app_free(app);
}

static const struct {
	const char *name;
	const char *type;
} mime_cases[] = {
	{ "p.gmi", "text/gemini" }, { "p.gemini", "text/gemini" },
	{ "p.txt", "text/plain" }, { "p.md", "text/markdown" },
	{ "p.html", "text/html" }, { "p.css", "text/css" },
	{ "p.json", "application/json" }, { "p.atom", "application/atom+xml" },
	{ "p.pdf", "application/pdf" },
	{ "p.tar.gz", "application/gzip" }, /* the last extension */
	{ "p.png", "image/png" }, { "p.jpeg", "image/jpeg" },
	{ "p.svg", "image/svg+xml" }, { "p.mp3", "audio/mpeg" },
	{ "p.webm", "video/webm" }, { "P.GMI", "text/gemini" }, /* any case */
	{ "p.Png", "image/png" }, { "p.unknown", "application/octet-stream" },
	{ "noext", "application/octet-stream" },
	{ "p.", "application/octet-stream" },
	{ "v1.2/noext", "application/octet-stream" }, /* a dot in a dir */
	{ ".gmi", "text/gemini" }, /* a dotfile's ext (served: see below) */
};

Test(static_handler, mime_types)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	char path[128];
	size_t i;

	dir("v1.2");
	for (i = 0; i < sizeof(mime_cases) / sizeof(mime_cases[0]); i++)
		put(mime_cases[i].name, "x", 1);
	cr_assert_eq(xz_static_with(app, "/", root,
	                 &(struct xz_static_opts){ .serve_hidden = true }),
	    XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	for (i = 0; i < sizeof(mime_cases) / sizeof(mime_cases[0]); i++) {
		snprintf(path, sizeof(path), "/%s", mime_cases[i].name);
		cr_assert_not_null(r = xz_test_get(tc, path));
		cr_expect_eq(r->status, 20, "%s: %d", path, r->status);
		cr_expect_str_eq(r->meta, mime_cases[i].type, "%s", path);
		xz_test_response_free(r);
	}
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* Everything that is not a regular file beneath the root is 51. */
Test(static_handler, not_found)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	char path[512];

	dir("d");
	snprintf(path, sizeof(path), "%s/fifo", root);
	cr_assert_eq(mkfifo(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/up", root);
	cr_assert_eq(symlink("..", path), 0);
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/fifo", 51, NULL); /* never opened for a read */
	expect_get(tc, "/nope/a.txt", 51, NULL);
	expect_get(tc, "/a.txt/x", 51, NULL); /* ENOTDIR */
	expect_get(tc, "/up/", 51, NULL);
	expect_get(tc, "/up/etc/passwd", 51, NULL);
	expect_get(tc, "/d/missing.gmi", 51, NULL);
	/* Dot segments are resolved before the handler (request.c); one
	 * above the root, plain or encoded, is a bad request there. */
	expect_get(tc, "/d/../a.txt", 20, "a");
	expect_get(tc, "/d/%2e%2e/a.txt", 20, "a");
	expect_get(tc, "/../a.txt", 59, NULL);
	expect_get(tc, "/%2e%2e/a.txt", 59, NULL);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/*
 * Hidden paths: a segment starting with "." is 51, as a missing file is,
 * whether the file exists or not; .well-known (and only that exact name)
 * is served; xz_static_with's serve_hidden serves them all.
 */
Test(static_handler, hidden_paths_are_not_found)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;

	put(".hidden", "h", 1);
	put(".env", "SECRET=1", 8);
	dir(".git");
	put(".git/config", "c", 1);
	dir("pub");
	put("pub/.htpasswd", "p", 1);
	dir(".well-known");
	put(".well-known/x.txt", "w", 1);
	put(".well-known/.y", "y", 1);
	dir(".well-knownx");
	put(".well-knownx/z.txt", "z", 1);
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/.hidden", 51, NULL);
	expect_get(tc, "/.env", 51, NULL);
	expect_get(tc, "/.git/config", 51, NULL);
	expect_get(tc, "/.git/", 51, NULL);
	expect_get(tc, "/.git", 51, NULL);
	expect_get(tc, "/pub/.htpasswd", 51, NULL);
	expect_get(tc, "/%2ehidden", 51, NULL);
	expect_get(tc, "/.missing", 51, NULL);
	expect_get(tc, "/.well-known/x.txt", 20, "w");
	expect_get(tc, "/.well-known", 31, NULL);
	expect_get(tc, "/.well-known/.y", 51, NULL);
	expect_get(tc, "/.well-knownx/z.txt", 51, NULL);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(static_handler, hidden_paths_served_when_asked)
{
	struct xz_app *app = xz_app_new();
	struct xz_static_opts opts = { .serve_hidden = true };
	struct xz_test_client *tc;

	put(".hidden", "h", 1);
	dir(".git");
	put(".git/config", "c", 1);
	cr_assert_eq(xz_static_with(app, "/", root, &opts), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/.hidden", 20, "h");
	expect_get(tc, "/.git/config", 20, "c");
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* Under a mount, the rule looks at the path beneath the mount only. */
Test(static_handler, hidden_under_a_mount)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;

	put("a.txt", "a", 1);
	put(".b", "b", 1);
	cr_assert_eq(xz_static(app, "/files", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/files/a.txt", 20, "a");
	expect_get(tc, "/files/.b", 51, NULL);
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* Larger than the 64 KiB window many times over, an odd size: intact. */
Test(static_handler, large_file_in_pieces)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	size_t len = (5u << 20) + 12345, i, bad = 0;

	put("big.bin", NULL, len);
	put("empty.txt", "", 0);
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	cr_assert_not_null(r = xz_test_get(tc, "/big.bin"));
	cr_expect_eq(r->status, 20);
	cr_expect_str_eq(r->meta, "application/octet-stream");
	cr_assert_eq(r->body_len, len, "%zu of %zu bytes", r->body_len, len);
	for (i = 0; i < len; i++)
		bad += r->body[i] != (unsigned char)((i * 7 + i / 251) & 0xff);
	cr_expect_eq(bad, 0, "%zu bytes differ", bad);
	xz_test_response_free(r);
	expect_get(tc, "/empty.txt", 20, "");
	xz_test_client_free(tc);
	xz_app_free(app);
}

/* A prefix mount: the path below it, beneath the root. */
Test(static_handler, under_a_prefix)
{
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;

	put("index.gmi", "# i\n", 4);
	cr_assert_eq(xz_static(app, "/files", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_get(tc, "/files/a.txt", 20, "a");
	expect_get(tc, "/files/", 20, "# i\n");
	expect_get(tc, "/filesa.txt", 51, NULL); /* not under the mount */
	expect_get(tc, "/a.txt", 51, NULL);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(static_handler, registration_errors)
{
	struct xz_app *app = xz_app_new();
	char path[512];

	cr_expect_eq(xz_static(app, "/", NULL), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "no root"), "%s",
	    xz_app_error(app));
	cr_expect_eq(xz_static(app, NULL, root), XZ_EINVAL);
	snprintf(path, sizeof(path), "%s/missing", root);
	cr_expect_eq(xz_static(app, "/", path), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "No such file"), "%s",
	    xz_app_error(app));
	snprintf(path, sizeof(path), "%s/a.txt", root);
	cr_expect_eq(xz_static(app, "/", path), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "Not a directory"), "%s",
	    xz_app_error(app));
	cr_expect_eq(xz_static(app, "/", root), XZ_OK);
	cr_expect_eq(xz_static(app, "/", root), XZ_EINVAL); /* mounted */
	xz_app_free(app);
}

/* An after hook that shrinks the file once its size has been taken. */
static void
shrink_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, (const char *)arg);
	cr_assert_eq(truncate(path, 100000), 0);
}

/*
 * A file that shrinks while it is served ends the connection after what
 * the file still had: never padded, never a hang.
 */
Test(static_handler, file_shrinking_under_the_reader_is_cut)
{
	static const struct xz_middleware mw = { .after = shrink_after };
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;
	size_t i, bad = 0;

	put("big.bin", NULL, 1u << 20);
	cr_assert_eq(xz_middleware(app, &mw, "big.bin"), XZ_OK);
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	xz_test_client_set_timeout(tc, 30);
	cr_assert_not_null(r = xz_test_get(tc, "/big.bin"));
	cr_expect_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_expect_leq(r->body_len, 100000);
	for (i = 0; i < r->body_len; i++)
		bad += r->body[i] != (unsigned char)((i * 7 + i / 251) & 0xff);
	cr_expect_eq(bad, 0, "%zu bytes differ", bad);
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

static void
gone_after(struct xz_request *req, struct xz_response *res, void *arg)
{
	if (res->status == 20) {
		res->status = 51;
		res->meta = "Gone";
	}
}

/* Middleware turning the 20 into an error: no body follows. */
Test(static_handler, middleware_error_sends_no_body)
{
	static const struct xz_middleware mw = { .after = gone_after };
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	struct xz_test_response *r;

	put("big.bin", NULL, 200000);
	cr_assert_eq(xz_middleware(app, &mw, NULL), XZ_OK);
	cr_assert_eq(xz_static(app, "/", root), XZ_OK);
	cr_assert_not_null(tc = xz_test_client_new(app));
	cr_assert_not_null(r = xz_test_get(tc, "/big.bin"));
	cr_expect_eq(r->status, 51);
	cr_expect_str_eq(r->meta, "Gone");
	cr_expect_eq(r->body_len, 0);
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}
