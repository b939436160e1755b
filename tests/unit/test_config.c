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
	expect_error("[server]\naccess_log =\n",
	    ":2: access_log: no value given");
	expect_error("[server]\nerror_log =\n",
	    ":2: error_log: no value given");
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
	                                "listen = 127.0.0.1:1966 "
	                                "proxy_protocol=any\n"
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
	cr_expect_str_eq(o->listen[2], "127.0.0.1:1966 proxy_protocol=any");
	cr_expect_null(o->listen[3]);
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
	    ":1: [cgi /a] needs either a root or a script");
	expect_error("[cgi /a]\nroot = /tmp\nscript = /bin/true\n",
	    ":1: [cgi /a] needs either a root or a script");
	/* What the library refuses comes back with the section's line. */
	expect_error("[scgi /a]\nhost = 127.0.0.1\n",
	    ":1: [scgi /a]: host given without port");
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

/*
 * Every error of a file at once, sorted by line, each with its line:
 * three typos in three sections give three lines.
 */
Test(config, every_error_is_said)
{
	char err[2048] = "", want[600];
	const char *path = write_conf("[server]\n"
	                              "workrs = 2\n"
	                              "[static /]\n"
	                              "rot = /tmp\n"
	                              "root = /tmp\n"
	                              "[cgi /c]\n"
	                              "root = /tmp\n"
	                              "timout = 3\n");
	char *nl;
	int lines = 1;

	cr_assert_null(xz_config_load(path, err, sizeof(err)));
	for (nl = err; (nl = strchr(nl, '\n')) != NULL; nl++)
		lines++;
	cr_expect_eq(lines, 3, "%s", err);
	snprintf(want, sizeof(want),
	    "%s:2: unknown key 'workrs' in [server]\n"
	    "%s:4: unknown key 'rot' in [static /]\n"
	    "%s:8: unknown key 'timout' in [cgi /c]",
	    path, path, path);
	cr_expect_str_eq(err, want);
	cleanup();
}

Test(config, duplicates_and_empty_values)
{
	expect_error("[static /]\nroot = /tmp\n[state]\na = 1\n[static /]\n"
	             "root = /\n",
	    ":5: duplicate section [static /] (first at line 1)");
	expect_error("[static /]\nroot = /tmp\nroot = /\n",
	    ":3: duplicate key 'root' (first at line 2)");
	expect_error("[server]\nworkers = 1\nworkers = 2\n",
	    ":3: duplicate key 'workers' (first at line 2)");
	expect_error("[state]\na = 1\na = 2\n",
	    ":3: duplicate key 'a' (first at line 2)");
	expect_error("[server]\nhostname =\n", ":2: hostname: no value given");
	expect_error("[server]\nhostname = , ,\n",
	    ":2: hostname: no name given");
	expect_error("[static /]\nroot =\n", ":2: root: no value given");
	/* An empty value still counts for the duplicate check. */
	expect_error("[server]\nhostname =\nhostname = x\n",
	    ":3: duplicate key 'hostname' (first at line 2)");
}

/* What starting would refuse, said by loading (and so by -t). */
Test(config, start_checks)
{
	expect_error("[server]\nlisten = 127.0.0.1:99999\n",
	    ":2: listen 127.0.0.1:99999: port '99999' not in 0..65535");
	expect_error("[server]\nlisten = 127.0.0.1:abc\n",
	    ":2: listen 127.0.0.1:abc: port 'abc' not in 0..65535");
	expect_error("[server]\nlisten = 127.0.0.1\n",
	    ":2: listen 127.0.0.1: expected HOST:PORT");
	expect_error("[server]\nlisten = 127.0.0.1:1965 proxy_protocol=v3\n",
	    ":2: listen 127.0.0.1:1965 proxy_protocol=v3: 'proxy_protocol=v3': "
	    "expected proxy_protocol=v1, v2 or any");
	expect_error("[server]\nlisten = 127.0.0.1:1965 proxy\n",
	    ":2: listen 127.0.0.1:1965 proxy: 'proxy': expected");
	expect_error("[server]\nlisten = 127.0.0.1 proxy_protocol=v2\n",
	    ":2: listen 127.0.0.1 proxy_protocol=v2: expected HOST:PORT");
	expect_error("[server]\nlisten = no.such.host.invalid:1965\n",
	    ":2: listen no.such.host.invalid:1965: ");
	expect_error("[server]\nuser = no-such-user-xz\n",
	    ":2: user no-such-user-xz: no such user");
	expect_error("[server]\nchroot = /nonexistent\n",
	    ":2: chroot /nonexistent: No such file or directory");
	expect_error("[server]\nchroot = /etc/passwd\n",
	    ":2: chroot /etc/passwd: not a directory");
	expect_error("[server]\npublic_port = 0\n",
	    ":2: public_port: invalid value '0'");
	expect_error("[server]\npublic_port = 65536\n",
	    ":2: public_port: invalid value '65536'");
	expect_error(
	    "[scgi /a]\nsocket = /tmp/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
	    ":2: socket /tmp/xxxx");
	expect_error("[static /]\nroot = /tmp\nhidden_files = maybe\n",
	    ":3: hidden_files: invalid value 'maybe' (hide or serve)");
}

/* Garbage, a lone file, a key of another certificate: line of cert. */
Test(config, certificate_checks)
{
	char dir[] = "/tmp/xitzin-test-certs-XXXXXX", text[400];
	char a_crt[64], a_key[64], b_key[64], junk[64], cmd[1200], want[200];

	cr_assert_not_null(mkdtemp(dir));
	snprintf(a_crt, sizeof(a_crt), "%s/a.crt", dir);
	snprintf(a_key, sizeof(a_key), "%s/a.key", dir);
	snprintf(b_key, sizeof(b_key), "%s/b.key", dir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-nodes -keyout %s -out %s -days 2 -subj /CN=a 2>/dev/null && "
	    "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 "
	    "-out %s 2>/dev/null && echo garbage > %s",
	    a_key, a_crt, b_key, junk);
	cr_assert_eq(system(cmd), 0);
	snprintf(text, sizeof(text), "[server]\ncert = %s\nkey = %s\n", junk,
	    a_key);
	expect_error(text, ":2: ");
	snprintf(text, sizeof(text), "[server]\ncert = %s\nkey = %s\n", a_crt,
	    junk);
	expect_error(text, ":2: ");
	snprintf(text, sizeof(text), "[server]\ncert = %s\nkey = %s\n", a_crt,
	    b_key);
	snprintf(want, sizeof(want), ":2: %s: does not match the key in %s",
	    a_crt, b_key);
	expect_error(text, want);
	snprintf(text, sizeof(text), "[server]\ncert = %s\nkey = %s/none\n",
	    a_crt, dir);
	snprintf(want, sizeof(want), ":2: %s/none: not found, but %s exists",
	    dir, a_crt);
	expect_error(text, want);
	snprintf(text, sizeof(text), "[server]\ncert = %s\nkey = %s\n", a_crt,
	    a_key);
	{
		char err[512] = "";
		struct xz_config *cfg =
		    xz_config_load(write_conf(text), err, sizeof(err));

		cr_expect_not_null(cfg, "%s", err);
		xz_config_free(cfg);
		cleanup();
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

#define H1                                                                     \
	"SHA256:"                                                              \
	"1111111111111111111111111111111111111111111111111111111111111111"
#define H2                                                                     \
	"SHA256:"                                                              \
	"2222222222222222222222222222222222222222222222222222222222222222"
#define H3                                                                     \
	"SHA256:"                                                              \
	"3333333333333333333333333333333333333333333333333333333333333333"

static void
expect_status(struct xz_test_client *tc, const char *hash, const char *path,
    int want)
{
	struct xz_test_response *r;

	cr_assert_eq(xz_test_client_set_cert(tc, hash), XZ_OK);
	cr_assert_not_null(r = xz_test_get(tc, path));
	cr_expect_eq(r->status, want, "%s with %s: %d %s", path,
	    hash ? hash : "none", r->status, r->meta);
	xz_test_response_free(r);
}

/*
 * require_cert and allowed_certs per mount: the longest matching
 * section's rule decides (a mount without one shadows a shorter
 * prefix's); the rules live with the app, not the config.
 */
Test(config, client_certificate_rules)
{
	char dir[] = "/tmp/xitzin-test-access-XXXXXX", text[1500];
	char list[300];
	struct xz_test_client *tc;
	struct xz_config *cfg;
	struct xz_app *app = xz_app_new();
	char err[512] = "";
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(list, sizeof(list), "%s/allowed.txt", dir);
	cr_assert_not_null(f = fopen(list, "w"));
	fputs("# the team\n\n  " H2 "  \n", f);
	fclose(f);
	snprintf(text, sizeof(text),
	    "[static /]\nroot = %s\nrequire_cert = true\n"
	    "[static /open]\nroot = %s\n"
	    "[static /list]\nroot = %s\nallowed_certs = " H1 ", %s\n"
	    "allowed_certs_file = %s\n"
	    "[cgi /cgi]\nroot = %s\nallowed_certs = " H3 "\n",
	    dir, dir, dir,
	    "sha256:"
	    "1111111111111111111111111111111111111111"
	    "111111111111111111111111",
	    list, dir);
	cfg = xz_config_load(write_conf(text), err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_eq(xz_config_apply(cfg, app, err, sizeof(err)), XZ_OK, "%s",
	    err);
	xz_config_free(cfg); /* the app keeps its rules */
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_status(tc, NULL, "/", 60);
	expect_status(tc, H3, "/", 51); /* any certificate: no index.gmi */
	expect_status(tc, NULL, "/open", 31);
	expect_status(tc, NULL, "/openx", 60); /* not under /open */
	expect_status(tc, NULL, "/list/", 60);
	expect_status(tc, H3, "/list/", 61);
	expect_status(tc, H1, "/list/", 51); /* let in: no index.gmi */
	expect_status(tc, H2, "/list/", 51);
	expect_status(tc, NULL, "/cgi/x", 60);
	expect_status(tc, H1, "/cgi/x", 61);
	expect_status(tc, H3, "/cgi/x", 51);
	xz_test_client_free(tc);
	xz_app_free(app);
	unlink(list);
	rmdir(dir);
	cleanup();
}

Test(config, client_certificate_errors)
{
	expect_error("[static /]\nroot = /tmp\nrequire_cert = sure\n",
	    ":3: require_cert: invalid value 'sure'");
	expect_error("[static /]\nroot = /tmp\nallowed_certs = SHA256:12\n",
	    ":3: allowed_certs: not a SHA256: hash 'SHA256:12'");
	expect_error("[scgi /a]\nhost = 127.0.0.1\nport = 4000\n"
	             "allowed_certs = abc\n",
	    ":4: allowed_certs: not a SHA256: hash 'abc'");
	expect_error(
	    "[cgi /a]\nroot = /tmp\nallowed_certs_file = /nonexistent\n",
	    ":3: allowed_certs_file /nonexistent: No such file or directory");
	expect_error("[static /]\nroot = /tmp\nrequire_cert = false\n"
	             "allowed_certs = " H1 "\n",
	    ":1: [static /]: allowed certificates with require_cert = false");
}

/*
 * ticket_key_file: a path, from the config file's directory (write_conf's
 * is /tmp), read as a start would read it.
 */
Test(config, ticket_key_file)
{
	char err[512] = "", dir[64], key[96], text[160], want[128];
	struct xz_config *cfg;

	snprintf(dir, sizeof(dir), "/tmp/xitzin-test-keys-%ld", (long)getpid());
	snprintf(key, sizeof(key), "%s/tickets.key", dir);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(xz_ticket_key_new(key, err, sizeof(err)), XZ_OK, "%s",
	    err);
	snprintf(text, sizeof(text), "[server]\nticket_key_file = %s\n",
	    key + strlen("/tmp/"));
	snprintf(want, sizeof(want), "%s", key);
	cfg = xz_config_load(write_conf(text), err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_expect_str_eq(xz_config_server_opts(cfg)->ticket_key_file, want);
	xz_config_free(cfg);
	cleanup();
	remove(key);
	rmdir(dir);
	expect_error("[server]\nticket_key_file = keys/tickets.key\n",
	    ":2: /tmp/keys/tickets.key: No such file or directory");
	cfg = xz_config_load(write_conf("[server]\n"), err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_expect_null(xz_config_server_opts(cfg)->ticket_key_file);
	xz_config_free(cfg);
	cleanup();
}

Test(config, rate_limit_errors)
{
	expect_error("[server]\nrate_limit = fast\n",
	    ":2: rate_limit: invalid value 'fast' (10/s, 30/m, 600/h or off)");
	expect_error("[server]\nrate_limit = 10/d\n",
	    ":2: rate_limit: invalid value '10/d'");
	expect_error("[server]\nrate_limit = -1/s\n",
	    ":2: rate_limit: invalid value '-1/s'");
	expect_error("[server]\nrate_limit = 2000000\n",
	    ":2: rate limit /: needs a prefix");
	expect_error("[server]\nrate_limit = 10/s\nrate_burst = 0\n",
	    ":3: rate_burst: invalid value '0'");
	expect_error("[server]\nrate_limit = 10/s\nrate_burst = many\n",
	    ":3: rate_burst: invalid value 'many'");
	expect_error("[server]\nrate_burst = 5\n",
	    ":2: rate_burst without rate_limit");
	expect_error("[static /]\nroot = /tmp\nrate_burst = 5\n",
	    ":3: rate_burst without rate_limit");
	expect_error("[server]\nrate_limit = 1/s\n[static /]\nroot = /tmp\n"
	             "rate_limit = 2/s\n",
	    ":5: rate limit /: already limited");
}

static void
expect_rate_status(struct xz_test_client *tc, const char *path, int status,
    const char *meta)
{
	struct xz_test_response *r = xz_test_get(tc, path);

	cr_assert_not_null(r);
	if (status == 44) {
		cr_expect_eq(r->status, 44, "%s: %d", path, r->status);
		cr_expect_str_eq(r->meta, meta, "%s", path);
	} else {
		cr_expect_neq(r->status, 44, "%s: %d %s", path, r->status,
		    r->meta);
	}
	xz_test_response_free(r);
}

/*
 * [server] limits every request; a mount's own rate_limit replaces it
 * under its prefix; off there means none. Units: /s, /m, /h.
 */
Test(config, rate_limits_server_and_per_mount)
{
	char err[512] = "";
	struct xz_config *cfg;
	struct xz_app *app = xz_app_new();
	struct xz_test_client *tc;
	int i;

	cfg = xz_config_load(write_conf("[server]\n"
	                                "rate_limit = 36/h\n"
	                                "rate_burst = 2\n"
	                                "[static /]\n"
	                                "root = /tmp\n"
	                                "[static /m]\n"
	                                "root = /tmp\n"
	                                "rate_limit = 1/m\n"
	                                "[static /free]\n"
	                                "root = /tmp\n"
	                                "rate_limit = off\n"
	                                "[cgi /cgi]\n"
	                                "root = /tmp\n"
	                                "rate_limit = 0.5\n"
	                                "rate_burst = 1\n"),
	    err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_eq(xz_config_apply(cfg, app, err, sizeof(err)), XZ_OK, "%s",
	    err);
	cr_assert_not_null(tc = xz_test_client_new(app));
	expect_rate_status(tc, "/", 20, NULL);
	expect_rate_status(tc, "/x", 20, NULL);
	expect_rate_status(tc, "/", 44, "100"); /* 36/h: one each 100 s */
	expect_rate_status(tc, "/m", 20,
	    NULL); /* burst 1: twice 1/m is under 1 */
	expect_rate_status(tc, "/m", 44, "60");
	for (i = 0; i < 20; i++)
		expect_rate_status(tc, "/free/", 20, NULL);
	expect_rate_status(tc, "/cgi/x", 20, NULL);
	expect_rate_status(tc, "/cgi/x", 44, "2");
	xz_test_client_free(tc);
	xz_config_free(cfg);
	xz_app_free(app);
	cleanup();
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
