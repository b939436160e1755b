/*
 * test_cgi.c - the CGI handler through the in-process test client, with
 * real scripts (sh) written into a temporary directory by each test.
 */
#include <criterion/criterion.h>

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xz_private.h"

static char tmp[64];  /* this test's directory: /tmp/xz-cgi-XXXXXX */
static char bin[128]; /* tmp/cgi-bin: the mounted root */

static void
setup(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/xz-cgi-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(bin, sizeof(bin), "%s/cgi-bin", tmp);
	cr_assert_eq(mkdir(bin, 0755), 0);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
teardown(void)
{
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cgi, .init = setup, .fini = teardown);

/* Writes dir/name with body and mode. */
static void
write_file(const char *dir, const char *name, const char *body, mode_t mode)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_not_null(f = fopen(path, "w"), "%s", path);
	fputs(body, f);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
}

static void
script(const char *name, const char *body)
{
	write_file(bin, name, body, 0755);
}

static struct xz_app *
app_cgi(const struct xz_backend_config *cfg)
{
	struct xz_app *app = xz_app_new();

	cr_assert_not_null(app);
	cr_assert_eq(xz_cgi(app, "/cgi-bin", bin, cfg), XZ_OK, "%s",
	    xz_app_error(app));
	return app;
}

static struct xz_test_response *
get(struct xz_app *app, const char *path)
{
	struct xz_test_client *tc = xz_test_client_new(app);
	struct xz_test_response *r;

	cr_assert_not_null(tc);
	r = xz_test_get(tc, path);
	cr_assert_not_null(r);
	xz_test_client_free(tc);
	return r;
}

static void
expect(struct xz_app *app, const char *path, int status, const char *meta,
    const char *body)
{
	struct xz_test_response *r = get(app, path);

	cr_expect_eq(r->status, status, "%s: got %d %s", path, r->status,
	    r->meta);
	if (meta != NULL)
		cr_expect_str_eq(r->meta, meta, "%s", path);
	if (body != NULL)
		cr_expect_str_eq((char *)r->body, body, "%s", path);
	xz_test_response_free(r);
}

/* The value of NAME in a "NAME=value" per line body, or NULL. */
static char *
env_value(const struct xz_test_response *r, const char *name)
{
	const char *p = (const char *)r->body;
	size_t len = strlen(name);

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, len) == 0 && p[len] == '=')
			return strndup(p + len + 1, strcspn(p + len + 1, "\n"));
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

static void
expect_env(const struct xz_test_response *r, const char *name,
    const char *value)
{
	char *v = env_value(r, name);

	if (value == NULL) {
		cr_expect_null(v, "%s should be unset, is %s", name, v);
	} else {
		cr_expect_not_null(v, "%s unset", name);
		if (v != NULL)
			cr_expect_str_eq(v, value, "%s", name);
	}
	free(v);
}

static const char env_sh[] = "#!/bin/sh\n"
                             "printf '20 text/plain\\r\\n'\n"
                             "env\n";

/* The pid a script wrote into tmp/name. */
static pid_t
read_pid(const char *name)
{
	char path[PATH_MAX];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	cr_assert_not_null(f = fopen(path, "r"), "%s not written", name);
	cr_assert_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	return (pid_t)pid;
}

/* Dead: gone, or a zombie that is no longer ours (init reaps it). */
static bool
pid_dead(pid_t pid)
{
	char path[64], buf[512], *state;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	state = strrchr(buf, ')');
	return state != NULL && state[1] == ' ' && state[2] == 'Z';
}

/* Polls: a SIGKILL takes effect soon, not at once. */
static void
expect_dead(pid_t pid)
{
	struct timespec ts = { 0, 10000000L }; /* 10 ms */
	int i;

	for (i = 0; i < 1000 && !pid_dead(pid); i++)
		nanosleep(&ts, NULL);
	cr_expect(pid_dead(pid), "process %d still runs", (int)pid);
}

Test(cgi, hello)
{
	struct xz_app *app = app_cgi(NULL);

	script("hello.sh",
	    "#!/bin/sh\nprintf '20 text/gemini\\r\\n# Hello\\n'\n");
	expect(app, "/cgi-bin/hello.sh", 20, "text/gemini", "# Hello\n");
	xz_app_free(app);
}

Test(cgi, environment)
{
	static const char *const keys[] = { "db_url", "unset_key", NULL };
	struct xz_backend_config cfg;
	struct xz_test_client *tc;
	struct xz_test_response *r;
	struct xz_app *app;

	xz_cgi_config_init(&cfg);
	cfg.app_state_keys = keys;
	cfg.no_inherit_environment = true;
	app = app_cgi(&cfg);
	cr_assert_eq(xz_state_set(app, "db_url", "postgres://db"), XZ_OK);
	script("env.sh", env_sh);
	cr_assert_not_null(tc = xz_test_client_new(app));
	cr_assert_eq(xz_test_client_set_cert(tc, "SHA256:00ff"), XZ_OK);
	r = xz_test_request(tc,
	    "gemini://localhost/cgi-bin/env.sh/a/b%20c?x%20y");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	expect_env(r, "SCRIPT_NAME", "/cgi-bin/env.sh");
	expect_env(r, "PATH_INFO", "/a/b c");
	expect_env(r, "QUERY_STRING", "x%20y");
	expect_env(r, "GEMINI_URL",
	    "gemini://localhost/cgi-bin/env.sh/a/b%20c?x%20y");
	expect_env(r, "SERVER_NAME", "localhost");
	expect_env(r, "SERVER_PORT", "1965");
	expect_env(r, "GATEWAY_INTERFACE", "CGI/1.1");
	expect_env(r, "SERVER_PROTOCOL", "GEMINI");
	expect_env(r, "SERVER_SOFTWARE", "xitzin/" XITZIN_VERSION);
	expect_env(r, "TLS_CLIENT_AUTHORISED", "1");
	expect_env(r, "TLS_CLIENT_HASH", "SHA256:00ff");
	expect_env(r, "AUTH_TYPE", "CERTIFICATE");
	expect_env(r, "XITZIN_DB_URL", "postgres://db");
	expect_env(r, "XITZIN_UNSET_KEY", NULL);
	expect_env(r, "HOME", NULL); /* inherit_environment off */
	xz_test_response_free(r);
	/* No query: QUERY_STRING is still there, empty (RFC 3875, 4.1.7). */
	cr_assert_eq(xz_test_client_set_cert(tc, NULL), XZ_OK);
	r = xz_test_get(tc, "/cgi-bin/env.sh");
	expect_env(r, "QUERY_STRING", "");
	expect_env(r, "PATH_INFO", "");
	expect_env(r, "TLS_CLIENT_AUTHORISED", "0");
	expect_env(r, "TLS_CLIENT_HASH", NULL);
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
}

Test(cgi, inherits_the_environment_but_never_request_names)
{
	struct xz_test_response *r;
	struct xz_app *app = app_cgi(NULL);

	setenv("XZ_TEST_PARENT", "inherited", 1);
	setenv("REMOTE_USER", "forged", 1);
	script("env.sh", env_sh);
	r = get(app, "/cgi-bin/env.sh");
	expect_env(r, "XZ_TEST_PARENT", "inherited");
	expect_env(r, "REMOTE_USER", NULL);
	xz_test_response_free(r);
	xz_app_free(app);
}

Test(cgi, runs_in_its_directory_with_only_its_descriptors)
{
	struct xz_app *app = app_cgi(NULL);
	struct xz_test_response *r;
	char want[PATH_MAX + 8];
	int leak;

	/*
	 * Anything but 0-2 and the script itself (3) would be a leak. ls
	 * looks at its own descriptors (inherited through the shell, which
	 * keeps its own close-on-exec) and its directory handle.
	 */
	script("fds.sh",
	    "#!/bin/sh\n"
	    "printf '20 text/plain\\r\\n'\n"
	    "echo \"PWD=$(pwd -P)\"\n"
	    "ls -l /proc/self/fd | awk '/->/ { fd = $(NF - 2); t = $NF;\n"
	    "  if (!((fd == 0 && t == \"/dev/null\") ||\n"
	    "      ((fd == 1 || fd == 2) && t ~ /^pipe:/) ||\n"
	    "      (fd == 3 && t ~ /fds\\.sh$/) || t ~ /^\\/proc\\//))\n"
	    "    print \"LEAK=\" fd \" \" t }'\n");
	/* Not close-on-exec, as a careless library's might be. */
	cr_assert_neq(leak = open("/dev/zero", O_RDONLY), -1);
	r = get(app, "/cgi-bin/fds.sh");
	close(leak);
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	snprintf(want, sizeof(want), "PWD=%s\n", bin);
	cr_expect_str_eq((char *)r->body, want);
	xz_test_response_free(r);
	xz_app_free(app);
}

Test(cgi, three_shapes_of_answer)
{
	struct xz_app *app = app_cgi(NULL);

	script("line.sh", "#!/bin/sh\nprintf '20 text/gemini\\r\\nline'\n");
	script("block.sh", "#!/bin/sh\n"
	                   "printf 'Status: 20 text/gemini\\r\\nX-A: b\\r\\n"
	                   "\\r\\nblock'\n");
	script("nph.sh",
	    "#!/bin/sh\nprintf 'GEMINI 20 text/gemini\\r\\n\\r\\nnph'\n");
	script("ctype.sh",
	    "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nplain'\n");
	expect(app, "/cgi-bin/line.sh", 20, "text/gemini", "line");
	expect(app, "/cgi-bin/block.sh", 20, "text/gemini", "block");
	expect(app, "/cgi-bin/nph.sh", 20, "text/gemini", "nph");
	expect(app, "/cgi-bin/ctype.sh", 20, "text/plain", "plain");
	xz_app_free(app);
}

Test(cgi, redirect_and_input)
{
	struct xz_app *app = app_cgi(NULL);

	script("redir.sh",
	    "#!/bin/sh\nprintf '30 gemini://localhost/new\\r\\n'\n");
	script("ask.sh", "#!/bin/sh\nprintf '10 Enter your name:\\r\\n'\n");
	expect(app, "/cgi-bin/redir.sh", 30, "gemini://localhost/new", "");
	expect(app, "/cgi-bin/ask.sh", 10, "Enter your name:", "");
	xz_app_free(app);
}

Test(cgi, binary_body_is_intact)
{
	struct xz_app *app = app_cgi(NULL);
	struct xz_test_response *r;
	char path[PATH_MAX];
	unsigned char all[1024];
	size_t i;
	FILE *f;

	/* Every byte value, NUL and CR LF included, 4 times over. */
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)(i % 256);
	snprintf(path, sizeof(path), "%s/data.bin", tmp);
	cr_assert_not_null(f = fopen(path, "wb"));
	cr_assert_eq(fwrite(all, 1, sizeof(all), f), sizeof(all));
	fclose(f);
	script("bin.sh", "#!/bin/sh\n"
	                 "printf '20 application/octet-stream\\r\\n'\n"
	                 "cat ../data.bin\n");
	r = get(app, "/cgi-bin/bin.sh");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_assert_eq(r->body_len, sizeof(all));
	cr_expect_eq(memcmp(r->body, all, sizeof(all)), 0);
	xz_test_response_free(r);
	xz_app_free(app);
}

/* buffer_size is a read's size: any size gets every byte, held or not. */
Test(cgi, any_buffer_size_reads_the_whole_answer)
{
	static const size_t sizes[] = { 1, 3, 4096 };
	struct xz_backend_config cfg;
	struct xz_test_response *r;
	struct xz_app *app;
	size_t i, j;

	script("count.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\n'\n"
	                   "seq 1 1000\n");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (j = 0; j < 2; j++) {
			xz_cgi_config_init(&cfg);
			cfg.buffer_size = sizes[i];
			cfg.max_response_size = j == 0 ? 0 : 1048576;
			app = app_cgi(&cfg);
			r = get(app, "/cgi-bin/count.sh");
			cr_expect_eq(r->status, 20, "%zu: %d %s", sizes[i],
			    r->status, r->meta);
			/* 9 + 90 * 2 + 900 * 3 + 4 digits, 1000 newlines */
			cr_expect_eq(r->body_len, 3893, "%zu: %zu bytes",
			    sizes[i], r->body_len);
			if (r->body_len == 3893)
				cr_expect_eq(
				    memcmp(r->body + 3887, "\n1000\n", 6), 0,
				    "%zu: the end", sizes[i]);
			xz_test_response_free(r);
			xz_app_free(app);
		}
}

/* Sends the library's log (stderr) to tmp/log while fn runs. */
static char *
capture_log(struct xz_app *app, const char *path, int *status)
{
	char logpath[PATH_MAX], *text;
	struct xz_test_response *r;
	int fd, saved = dup(STDERR_FILENO);
	FILE *f;
	long n;

	snprintf(logpath, sizeof(logpath), "%s/log", tmp);
	cr_assert_neq(fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600),
	    -1);
	dup2(fd, STDERR_FILENO);
	close(fd);
	xz_log_enable(false);
	r = get(app, path);
	xz_app_free(app); /* reaps: the last stderr lines are in */
	dup2(saved, STDERR_FILENO);
	close(saved);
	*status = r->status;
	cr_expect_null(strstr((char *)r->body, "oops"), "stderr in the body");
	xz_test_response_free(r);
	cr_assert_not_null(f = fopen(logpath, "r"));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	cr_assert_not_null(text = calloc(1, (size_t)n + 1));
	cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

Test(cgi, failing_script_is_42_with_stderr_in_the_log)
{
	struct xz_app *app = app_cgi(NULL);
	int status;
	char *log;

	script("fail.sh", "#!/bin/sh\necho 'oops: no database' >&2\nexit 3\n");
	log = capture_log(app, "/cgi-bin/fail.sh", &status);
	cr_expect_eq(status, 42);
	cr_expect_not_null(
	    strstr(log, "cgi /cgi-bin/fail.sh: oops: no database"), "%s", log);
	cr_expect_not_null(strstr(log, "exited with status 3"), "%s", log);
	free(log);
}

Test(cgi, long_stderr_lines_are_cut)
{
	struct xz_app *app = app_cgi(NULL);
	int status;
	char *log, *line;

	script("noisy.sh", "#!/bin/sh\n"
	                   "head -c 5000 /dev/zero | tr '\\0' a >&2\n"
	                   "echo ' end' >&2; echo 'next' >&2\n"
	                   "printf '20 text/plain\\r\\nok'\n");
	log = capture_log(app, "/cgi-bin/noisy.sh", &status);
	cr_expect_eq(status, 20);
	cr_assert_not_null(line = strstr(log, "cgi /cgi-bin/noisy.sh: aaa"));
	cr_expect_lt(strcspn(line, "\n"), 1200, "a stderr line unbounded");
	cr_expect_null(strstr(log, " end"),
	    "the rest of a cut line is dropped");
	cr_expect_not_null(strstr(log, "cgi /cgi-bin/noisy.sh: next"));
	free(log);
}

Test(cgi, nonzero_exit_after_a_header_stands)
{
	struct xz_app *app = app_cgi(NULL);

	script("late.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\npartial'\n"
	                  "exit 1\n");
	script("crash.sh", "#!/bin/sh\nkill -SEGV $$\n");
	expect(app, "/cgi-bin/late.sh", 20, "text/plain", "partial");
	expect(app, "/cgi-bin/crash.sh", 42, "CGI script error", NULL);
	xz_app_free(app);
}

Test(cgi, what_does_not_run)
{
	struct xz_app *app = app_cgi(NULL);
	char path[PATH_MAX];

	write_file(bin, "plain.txt", "#!/bin/sh\necho hi\n", 0644);
	snprintf(path, sizeof(path), "%s/subdir", bin);
	cr_assert_eq(mkdir(path, 0755), 0);
	script("garbage", "no shebang, not a binary\n");
	expect(app, "/cgi-bin/plain.txt", 42, "CGI script not executable", "");
	expect(app, "/cgi-bin/subdir", 42, "CGI script not executable", "");
	expect(app, "/cgi-bin/subdir/x", 42, "CGI script not executable", "");
	expect(app, "/cgi-bin/garbage", 42, "CGI script error", "");
	expect(app, "/cgi-bin/missing.sh", 51, "Not found", "");
	expect(app, "/cgi-bin", 51, "Not found", "");
	expect(app, "/cgi-bin/", 51, "Not found", "");
	expect(app, "/cgi-bin//hello.sh", 51, "Not found", "");
	xz_app_free(app);
}

Test(cgi, symlinks_may_not_leave_the_root)
{
	struct xz_app *app = app_cgi(NULL);
	char outside[PATH_MAX], link[PATH_MAX];

	write_file(tmp, "outside.sh",
	    "#!/bin/sh\ntouch ran-outside\nprintf '20 text/plain\\r\\n'\n",
	    0755);
	snprintf(outside, sizeof(outside), "%s/outside.sh", tmp);
	snprintf(link, sizeof(link), "%s/out.sh", bin);
	cr_assert_eq(symlink("../outside.sh", link), 0);
	snprintf(link, sizeof(link), "%s/abs.sh", bin);
	cr_assert_eq(symlink(outside, link), 0);
	script("hello.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\nhi'\n");
	snprintf(link, sizeof(link), "%s/alias.sh", bin);
	cr_assert_eq(symlink("hello.sh", link), 0);
	expect(app, "/cgi-bin/out.sh", 59, NULL, "");
	expect(app, "/cgi-bin/abs.sh", 59, NULL, "");
	expect(app, "/cgi-bin/alias.sh", 20, "text/plain", "hi");
	snprintf(link, sizeof(link), "%s/ran-outside", tmp);
	cr_expect_eq(access(link, F_OK), -1, "the outside script ran");
	snprintf(link, sizeof(link), "%s/ran-outside", bin);
	cr_expect_eq(access(link, F_OK), -1, "the outside script ran");
	xz_app_free(app);
}

Test(cgi, timeout_kills_the_process_group)
{
	struct xz_backend_config cfg;
	struct xz_app *app;
	pid_t pid, child;

	xz_cgi_config_init(&cfg);
	cfg.timeout = 1;
	app = app_cgi(&cfg);
	script("slow.sh", "#!/bin/sh\n"
	                  "echo $$ > ../pid\n"
	                  "sleep 30 &\n"
	                  "echo $! > ../child\n"
	                  "wait\n");
	expect(app, "/cgi-bin/slow.sh", 42, "CGI script timeout", "");
	pid = read_pid("pid");
	child = read_pid("child");
	expect_dead(pid);
	expect_dead(child);
	xz_app_free(app);
	cr_expect_eq(kill(pid, 0), -1, "never reaped");
	cr_expect_eq(errno, ESRCH);
}

Test(cgi, timeout_is_per_wait_not_in_total)
{
	struct xz_backend_config cfg;
	struct xz_app *app;

	xz_cgi_config_init(&cfg);
	cfg.timeout = 1;
	app = app_cgi(&cfg);
	/* 2 s in all, never 1 s silent. */
	script("drip.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\n'\n"
	                  "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.25; "
	                  "done\n");
	expect(app, "/cgi-bin/drip.sh", 20, "text/plain",
	    "1\n2\n3\n4\n5\n6\n7\n8\n");
	xz_app_free(app);
}

Test(cgi, client_going_away_kills_the_script)
{
	struct xz_test_client *tc;
	struct xz_test_response *r;
	struct xz_app *app = app_cgi(NULL);
	pid_t pid, child;

	script("hang.sh", "#!/bin/sh\n"
	                  "echo $$ > ../pid\n"
	                  "sleep 30 &\n"
	                  "echo $! > ../child\n"
	                  "wait\n");
	cr_assert_not_null(tc = xz_test_client_new(app));
	xz_test_client_set_timeout(tc, 1);
	r = xz_test_get(tc, "/cgi-bin/hang.sh");
	cr_expect_eq(r->status, 0, "the test client gave up first");
	xz_test_response_free(r);
	pid = read_pid("pid");
	child = read_pid("child");
	expect_dead(pid); /* killed at cancel, before any reap */
	expect_dead(child);
	xz_test_client_free(tc);
	xz_app_free(app);
	cr_expect_eq(kill(pid, 0), -1, "never reaped");
}

Test(cgi, response_size_limit_and_unlimited_streaming)
{
	struct xz_backend_config cfg;
	struct xz_test_response *r;
	struct xz_app *app;
	size_t i;

	script("big.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\n'\n"
	                 "head -c 3000000 /dev/zero | tr '\\0' x\n");
	xz_cgi_config_init(&cfg);
	cfg.max_response_size = 100000;
	app = app_cgi(&cfg);
	expect(app, "/cgi-bin/big.sh", 42, "CGI response exceeds maximum size",
	    "");
	xz_app_free(app);
	cfg.max_response_size = XZ_UNLIMITED;
	app = app_cgi(&cfg);
	r = get(app, "/cgi-bin/big.sh");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_assert_eq(r->body_len, 3000000);
	for (i = 0; i < r->body_len; i++)
		cr_assert_eq(r->body[i], 'x', "byte %zu", i);
	xz_test_response_free(r);
	xz_app_free(app);
}

Test(cgi, one_script_mount)
{
	struct xz_test_response *r;
	struct xz_app *app = xz_app_new();
	char path[PATH_MAX];

	script("app.sh", env_sh);
	snprintf(path, sizeof(path), "%s/app.sh", bin);
	cr_assert_eq(xz_cgi_script(app, "/app", path, NULL), XZ_OK);
	r = get(app, "/app/users/123?q");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	expect_env(r, "SCRIPT_NAME", "/app");
	expect_env(r, "PATH_INFO", "/users/123");
	expect_env(r, "QUERY_STRING", "q");
	xz_test_response_free(r);
	r = get(app, "/app");
	expect_env(r, "SCRIPT_NAME", "/app");
	expect_env(r, "PATH_INFO", "");
	xz_test_response_free(r);
	xz_app_free(app);
}

Test(cgi, mounted_at_the_root)
{
	struct xz_test_response *r;
	struct xz_app *app = xz_app_new();

	script("env.sh", env_sh);
	cr_assert_eq(xz_cgi(app, "/", bin, NULL), XZ_OK);
	r = get(app, "/env.sh/x");
	cr_assert_eq(r->status, 20, "%d %s", r->status, r->meta);
	expect_env(r, "SCRIPT_NAME", "/env.sh");
	expect_env(r, "PATH_INFO", "/x");
	xz_test_response_free(r);
	xz_app_free(app);
}

Test(cgi, registration_errors)
{
	struct xz_app *app = xz_app_new();
	struct xz_backend_config cfg;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/nope", tmp);
	cr_expect_eq(xz_cgi(app, "/a", path, NULL), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "cgi /a:"), "%s",
	    xz_app_error(app));
	cr_expect_not_null(strstr(xz_app_error(app), "nope"));
	cr_expect_eq(xz_cgi_script(app, "/b", path, NULL), XZ_EINVAL);
	cr_expect_eq(xz_cgi(app, "/c", NULL, NULL), XZ_EINVAL);
	xz_cgi_config_init(&cfg);
	cfg.timeout = -1;
	cr_expect_eq(xz_cgi(app, "/d", bin, &cfg), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "timeout"));
	xz_cgi_config_init(&cfg);
	cfg.max_processes = -1;
	cr_expect_eq(xz_cgi(app, "/e", bin, &cfg), XZ_EINVAL);
	cr_expect_not_null(strstr(xz_app_error(app), "max_processes"));
	cr_expect_eq(xz_cgi(app, "/f", bin, NULL), XZ_OK);
	cr_expect_eq(xz_cgi(app, "/f/", bin, NULL), XZ_EINVAL); /* twice */
	xz_app_free(app);
}

Test(cgi, config_defaults)
{
	struct xz_backend_config cfg;

	xz_cgi_config_init(&cfg);
	cr_expect_eq(cfg.timeout, 30);
	cr_expect_eq(cfg.max_response_size, 1048576);
	cr_expect(!cfg.no_inherit_environment);
	cr_expect_null(cfg.app_state_keys);
	cr_expect_eq(cfg.max_processes, 64);
}

Test(cgi, sequential_requests_reuse_the_slot)
{
	struct xz_backend_config cfg;
	struct xz_test_client *tc;
	struct xz_test_response *r;
	struct xz_app *app;
	int i;

	xz_cgi_config_init(&cfg);
	cfg.max_processes = 1;
	app = app_cgi(&cfg);
	script("hello.sh", "#!/bin/sh\nprintf '20 text/plain\\r\\nhi'\n");
	cr_assert_not_null(tc = xz_test_client_new(app));
	for (i = 0; i < 20; i++) {
		r = xz_test_get(tc, "/cgi-bin/hello.sh");
		cr_expect_eq(r->status, 20, "request %d: %d %s", i, r->status,
		    r->meta);
		xz_test_response_free(r);
	}
	xz_test_client_free(tc);
	xz_app_free(app);
}
