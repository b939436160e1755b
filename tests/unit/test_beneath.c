/*
 * test_beneath.c - opening beneath a root: openat2(RESOLVE_BENEATH) and
 * the walk used where the kernel has no openat2 (which follows no
 * symlink at all).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xz_private.h"

static char root[] = "/tmp/xitzin-beneath-XXXXXX";
static int rootfd;

static void
put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void
setup(void)
{
	char path[512];

	cr_assert_not_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/sub", root);
	mkdir(path, 0755);
	put("a.txt", "a");
	put("sub/b.txt", "b");
	snprintf(path, sizeof(path), "%s/sub/up", root);
	symlink("../a.txt", path);
	snprintf(path, sizeof(path), "%s/out", root);
	symlink("/etc/passwd", path);
	rootfd = open(root, O_PATH | O_DIRECTORY);
}

static void
teardown(void)
{
	char cmd[600];

	close(rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	(void)!system(cmd);
}

typedef int (*opener)(int, const char *, int);

static void
expect_opens(opener fn, const char *rel, bool ok)
{
	int fd = fn(rootfd, rel, O_RDONLY | O_CLOEXEC);

	cr_expect_eq(fd != -1, ok, "%s: %s", rel, ok ? "refused" : "opened");
	if (fd != -1)
		close(fd);
}

TestSuite(beneath, .init = setup, .fini = teardown);

Test(beneath, both_open_plain_paths)
{
	opener fns[] = { open_beneath, open_beneath_walk };

	for (int i = 0; i < 2; i++) {
		expect_opens(fns[i], "a.txt", true);
		expect_opens(fns[i], "sub/b.txt", true);
		expect_opens(fns[i], "./sub/./b.txt", true);
		expect_opens(fns[i], ".", true);
		expect_opens(fns[i], "sub/", true);
		expect_opens(fns[i], "missing", false);
		expect_opens(fns[i], "../etc/passwd", false);
		expect_opens(fns[i], "sub/../../x", false);
		expect_opens(fns[i], "out", false); /* absolute symlink */
	}
}

Test(beneath, symlinks_inside_only_with_openat2)
{
	expect_opens(open_beneath, "sub/up", true);
	/* The walk follows no symlink, even one that stays inside. */
	expect_opens(open_beneath_walk, "sub/up", false);
}
