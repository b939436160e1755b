/*
 * test_config.c - xitzin.conf: options, defaults, and errors that name
 * the file and line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "xz_private.h"

static char conf_path[] = "/tmp/xitzin-test-conf-XXXXXX";

static const char *
write_conf(const char *text)
{
	int fd = mkstemp(conf_path);
	FILE *f;

	cr_assert_neq(fd, -1);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return conf_path;
}

static void
cleanup(void)
{
	unlink(conf_path);
	strcpy(conf_path, "/tmp/xitzin-test-conf-XXXXXX");
}

static void
expect_error(const char *text, const char *want)
{
	char err[512] = "", full[600];
	const char *path = write_conf(text);
	struct xz_config *cfg = xz_config_load(path, err, sizeof(err));
	struct xz_app *app;

	if (cfg != NULL) {
		app = xz_app_new();
		cr_expect_neq(xz_config_apply(cfg, app, err, sizeof(err)),
		    XZ_OK, "accepted: %s", text);
		xz_app_free(app);
		xz_config_free(cfg);
	}
	snprintf(full, sizeof(full), "%s%s", path, want);
	cr_expect(strstr(err, full) != NULL, "want '%s', got '%s'", full, err);
	cleanup();
}

Test(config, errors_name_file_and_line)
{
	expect_error("[server]\nlisten = 0.0.0.0:1965\nbogus = 1\n",
	    ":3: unknown key 'bogus' in [server]");
	expect_error("; c\n[weird]\nx = 1\n", ":3: unknown section [weird]");
	expect_error("[static]\nroot = x\n", ":2: unknown section [static]");
	expect_error("[server /x]\nworkers = 1\n",
	    ":2: unknown section [server /x]");
	expect_error("[server]\nworkers = 0\n", ":2: workers: invalid value");
	expect_error("[server]\nkey_type = rsa\n", ":2: key_type: invalid");
	expect_error("[server]\naccess_log =\n", ":2: access_log: invalid");
	expect_error("[server]\nerror_log =\n", ":2: error_log: invalid");
	expect_error("[server]\nlog_style = apache\n",
	    ":2: log_style: invalid value 'apache'");
	expect_error("[server]\nlog_ip = half\n", ":2: log_ip: invalid");
	expect_error("[server]\nlog_query = maybe\n", ":2: log_query: invalid");
	expect_error("[static /]\nroot = /nonexistent/dir\n",
	    ":2: root /nonexistent/dir");
	expect_error("[static /]\nindex = x\n", ":2: unknown key 'index'");
	expect_error("x = 1\n", ":1: 'x' outside any section");
	expect_error("[server\n", ":1: syntax error");
}

Test(config, options_and_defaults)
{
	char err[512] = "";
	struct xz_config *cfg;
	const struct xz_server_opts *o;
	struct xz_app *app = xz_app_new();

	cfg = xz_config_load(write_conf("[server]\n"
	                                "listen = 127.0.0.1:1965\n"
	                                "listen = [::1]:1965\n"
	                                "hostname = example.org\n"
	                                "workers = 3\n"
	                                "request_timeout = 2.5\n"
	                                "key_type = ed25519\n"
	                                "access_log = off\n"
	                                "[state]\n"
	                                "db_url = postgres://localhost/mydb\n"
	                                "[static /]\n"
	                                "root = /tmp\n"),
	    err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	o = xz_config_server_opts(cfg);
	cr_expect_str_eq(o->listen[0], "127.0.0.1:1965");
	cr_expect_str_eq(o->listen[1], "[::1]:1965");
	cr_expect_null(o->listen[2]);
	cr_expect_str_eq(o->hostname, "example.org");
	cr_expect_eq(o->workers, 3);
	cr_expect_float_eq(o->request_timeout, 2.5, 1e-9);
	cr_expect(o->key_ed25519);
	cr_expect(o->quiet);
	/* Relative paths are the config file's directory's. */
	cr_expect_str_eq(o->cert_file, "/tmp/certs/localhost.crt");
	cr_expect_eq(xz_config_apply(cfg, app, err, sizeof(err)), XZ_OK, "%s",
	    err);
	cr_expect_str_eq(xz_state_get(app, "db_url"),
	    "postgres://localhost/mydb");
	xz_config_free(cfg);
	xz_app_free(app);
	cleanup();
}

/* [scgi] and [cgi]: the shared keys, each kind's own, and the mix-ups. */
Test(config, backend_keys_and_their_errors)
{
	expect_error("[scgi /a]\nhost = h\nport = 0\n",
	    ":3: port: invalid value '0'");
	expect_error("[scgi /a]\ntimeout = 0\n",
	    ":2: timeout: invalid value '0'");
	expect_error("[cgi /a]\ntimeout = soon\n",
	    ":2: timeout: invalid value 'soon'");
	expect_error("[cgi /a]\nbuffer_size = 0\n",
	    ":2: buffer_size: invalid value '0'");
	expect_error("[scgi /a]\nbuffer_size = 8Q\n",
	    ":2: buffer_size: invalid value '8Q'");
	expect_error("[cgi /a]\nbuffer_size = unlimited\n",
	    ":2: buffer_size: invalid value 'unlimited'");
	expect_error("[cgi /a]\nmax_duration = -1\n",
	    ":2: max_duration: invalid value '-1'");
	expect_error("[scgi /a]\nmax_response_size = 1X\n",
	    ":2: max_response_size: invalid value '1X'");
	expect_error("[cgi /a]\ninherit_environment = maybe\n",
	    ":2: inherit_environment: invalid value 'maybe'");
	expect_error("[cgi /a]\nmax_processes = 0\n",
	    ":2: max_processes: invalid value '0'");
	/* Each kind's own keys belong to it alone. */
	expect_error("[scgi /a]\nmax_processes = 4\n",
	    ":2: unknown key 'max_processes' in [scgi /a]");
	expect_error("[scgi /a]\nroot = /tmp\n",
	    ":2: unknown key 'root' in [scgi /a]");
	expect_error("[cgi /a]\nhost = x\n",
	    ":2: unknown key 'host' in [cgi /a]");
	expect_error("[cgi /a]\ntimeout = 5\n",
	    ":2: [cgi /a] needs either a root or a script");
	expect_error("[cgi /a]\nroot = /tmp\nscript = /bin/true\n",
	    ":2: [cgi /a] needs either a root or a script");
	/* What the library refuses comes back with the section's line. */
	expect_error("[scgi /a]\nhost = 127.0.0.1\n",
	    ":2: [scgi /a]: scgi /a: host given without port");
}

/* The shared keys reach the script: state, environment, buffer_size. */
Test(config, backend_keys_reach_the_backend)
{
	char dir[] = "/tmp/xitzin-test-cgi-XXXXXX", path[300], text[1200];
	char err[512] = "";
	struct xz_test_response *r;
	struct xz_test_client *tc;
	struct xz_config *cfg;
	struct xz_app *app = xz_app_new();
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/env.sh", dir);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs("#!/bin/sh\nprintf '20 text/plain\\r\\n%s|%s|%s' "
	      "\"$XITZIN_DB_URL\" \"$XITZIN_API_KEY\" \"$XZ_TEST_INHERIT\"\n",
	    f);
	fclose(f);
	cr_assert_eq(chmod(path, 0755), 0);
	cr_assert_eq(setenv("XZ_TEST_INHERIT", "inherited", 1), 0);
	snprintf(text, sizeof(text),
	    "[state]\ndb_url = pg\napi_key = k\n"
	    "[cgi /on]\nscript = %s\napp_state_keys = db_url,api_key\n"
	    "buffer_size = 3\nmax_response_size = 0\n"
	    "[cgi /off]\nscript = %s\ninherit_environment = off\n"
	    "app_state_keys = api_key\nbuffer_size = 1K\ntimeout = 5\n",
	    path, path);
	cfg = xz_config_load(write_conf(text), err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_eq(xz_config_apply(cfg, app, err, sizeof(err)), XZ_OK, "%s",
	    err);
	xz_config_free(cfg);
	cr_assert_not_null(tc = xz_test_client_new(app));
	r = xz_test_get(tc, "/on");
	cr_expect_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_expect_str_eq((char *)r->body, "pg|k|inherited");
	xz_test_response_free(r);
	r = xz_test_get(tc, "/off");
	cr_expect_eq(r->status, 20, "%d %s", r->status, r->meta);
	cr_expect_str_eq((char *)r->body, "|k|");
	xz_test_response_free(r);
	xz_test_client_free(tc);
	xz_app_free(app);
	unsetenv("XZ_TEST_INHERIT");
	unlink(path);
	rmdir(dir);
	cleanup();
}

/* send_min_rate: bytes a second; 0 in the file turns it off (-1). */
static long
min_rate_of(const char *value)
{
	char conf[128], err[512] = "";
	struct xz_config *cfg;
	long rate;

	snprintf(conf, sizeof(conf), "[server]\nsend_min_rate = %s\n", value);
	cfg = xz_config_load(write_conf(conf), err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	rate = xz_config_server_opts(cfg)->send_min_rate;
	xz_config_free(cfg);
	cleanup();
	return rate;
}

Test(config, send_min_rate)
{
	cr_expect_eq(min_rate_of("2048"), 2048);
	cr_expect_eq(min_rate_of("0"), -1);
	expect_error("[server]\nsend_min_rate = -1\n",
	    ":2: send_min_rate: invalid value");
	expect_error("[server]\nsend_min_rate = fast\n",
	    ":2: send_min_rate: invalid value");
}

Test(config, log_keys)
{
	char err[512] = "";
	struct xz_config *cfg;
	const struct xz_log_opts *l;

	cfg = xz_config_load(write_conf("[server]\n"
	                                "access_log = logs/access.log\n"
	                                "error_log = syslog\n"
	                                "log_style = combined\n"
	                                "log_ip = truncated\n"
	                                "log_query = no\n"),
	    err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	l = xz_config_log_opts(cfg);
	/* A file is taken from the config's directory. */
	cr_expect(l->access_log[0] == '/' &&
	              strstr(l->access_log, "/logs/access.log") != NULL,
	    "%s", l->access_log);
	cr_expect_str_eq(l->error_log, "syslog");
	cr_expect_eq(l->style, XZ_LOG_COMBINED);
	cr_expect_eq(l->ip, XZ_LOG_IP_TRUNCATED);
	cr_expect(l->no_query);
	cr_expect(!xz_config_server_opts(cfg)->quiet);
	xz_config_free(cfg);
	cleanup();
}

/* The boolean access_log of before still works (one file per test). */
Test(config, access_log_off)
{
	char err[512] = "";
	struct xz_config *cfg;

	cfg = xz_config_load(write_conf("[server]\naccess_log = off\n"), err,
	    sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_expect(xz_config_server_opts(cfg)->quiet);
	cr_expect_str_eq(xz_config_log_opts(cfg)->access_log, "off");
	xz_config_free(cfg);
	cleanup();
}

Test(config, access_log_yes)
{
	char err[512] = "";
	struct xz_config *cfg;

	cfg = xz_config_load(write_conf("[server]\naccess_log = yes\n"), err,
	    sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_expect(!xz_config_server_opts(cfg)->quiet);
	cr_expect_str_eq(xz_config_log_opts(cfg)->access_log, "stderr");
	xz_config_free(cfg);
	cleanup();
}
