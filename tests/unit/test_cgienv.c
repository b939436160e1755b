/*
 * test_cgienv.c - the CGI/SCGI variable set and its encodings. Each SCGI
 * header made here is read back by a strict decoder written below, not by
 * the code under test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <event2/buffer.h>

#include "xz_private.h"
#include "scgi_pairs.h"

extern char **environ;

/* The bytes of b, NUL-terminated for convenience (free them). */
static char *
drain(struct evbuffer *b, size_t *len)
{
	char *s;

	*len = evbuffer_get_length(b);
	s = malloc(*len + 1);
	cr_assert_not_null(s);
	cr_assert_eq(evbuffer_remove(b, s, *len), (int)*len);
	s[*len] = '\0';
	return s;
}

static void
assert_netstring(const void *data, size_t len, const char *prefix)
{
	struct evbuffer *b = evbuffer_new();
	size_t plen = strlen(prefix), outlen;
	char *out;

	cr_assert_not_null(b);
	cr_assert_eq(netstring_add(b, data, len), XZ_OK);
	out = drain(b, &outlen);
	cr_assert_eq(outlen, plen + len + 1);
	cr_assert_eq(memcmp(out, prefix, plen), 0, "prefix %s", prefix);
	cr_assert(len == 0 || memcmp(out + plen, data, len) == 0);
	cr_assert_eq(out[plen + len], ',');
	free(out);
	evbuffer_free(b);
}

Test(netstring, empty)
{
	assert_netstring("", 0, "0:");
	assert_netstring(NULL, 0, "0:");
}

Test(netstring, hello)
{
	assert_netstring("hello", 5, "5:");
}

Test(netstring, inner_nul)
{
	assert_netstring("hello\0world", 11, "11:");
}

Test(netstring, all_bytes)
{
	unsigned char all[256];
	size_t i;

	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	assert_netstring(all, sizeof(all), "256:");
}

Test(netstring, utf8)
{
	const char *s = "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1"
	                "\xe3\x81\xaf"; /* こんにちは */

	cr_assert_eq(strlen(s), 15);
	assert_netstring(s, 15, "15:");
}

Test(netstring, appends)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *out;

	evbuffer_add(b, "x", 1);
	cr_assert_eq(netstring_add(b, "", 0), XZ_OK);
	cr_assert_eq(netstring_add(b, "hello", 5), XZ_OK);
	out = drain(b, &len);
	cr_assert_eq(len, 12);
	cr_assert_eq(memcmp(out, "x0:,5:hello,", 12), 0);
	free(out);
	evbuffer_free(b);
}

/* Encodes env and decodes it back into p. */
static void
scgi_roundtrip(const struct cgienv *env, struct pairs *p)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *out;

	cr_assert_not_null(b);
	cr_assert_eq(cgienv_scgi_header(b, env), XZ_OK);
	out = drain(b, &len);
	scgi_decode(out, len, p);
	free(out);
	evbuffer_free(b);
}

static struct xz_cert test_cert = {
	.present = true,
	.hash = "SHA256:"
	        "0123456789abcdef0123456789abcdef"
	        "0123456789abcdef0123456789abcdef",
	.subject = (char *)"CN=alice,O=Example",
	.issuer = (char *)"CN=alice,O=Example",
	.cn = (char *)"alice",
	.not_before = "2026-01-02T03:04:05Z",
	.not_after = "2027-01-02T03:04:05Z",
};

static struct cgienv_src
base_src(void)
{
	struct cgienv_src src = {
		.url = "gemini://example.com/api/users/123?x=%20y",
		.host = "example.com",
		.server_port = 1965,
		.script_name = "/api",
		.path_info = "/users/123",
		.query = "x=%20y",
		.remote_addr = "127.0.0.1",
		.cert = NULL,
		.tls_version = "TLSv1.3",
		.tls_cipher = "TLS_AES_256_GCM_SHA384",
		.inherit_environment = false,
	};

	return src;
}

static void
assert_var(const struct cgienv *env, const char *name, const char *want)
{
	const char *got = cgienv_get(env, name);

	if (want == NULL) {
		cr_assert_null(got, "%s is set to %s", name, got);
		return;
	}
	cr_assert_not_null(got, "%s is not set", name);
	cr_assert_str_eq(got, want, "%s", name);
}

/* No name twice in env. */
static void
assert_unique(const struct cgienv *env)
{
	size_t i, j;

	for (i = 0; i < env->len; i++)
		for (j = i + 1; j < env->len; j++)
			cr_assert_str_neq(env->names[i], env->names[j]);
}

Test(cgienv, request_variables)
{
	struct cgienv_src src = base_src();
	struct cgienv env;

	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "GATEWAY_INTERFACE", "CGI/1.1");
	assert_var(&env, "SERVER_PROTOCOL", "GEMINI");
	assert_var(&env, "SERVER_SOFTWARE", "xitzin/" XITZIN_VERSION);
	assert_var(&env, "SERVER_NAME", "example.com");
	assert_var(&env, "SERVER_PORT", "1965");
	assert_var(&env, "SCRIPT_NAME", "/api");
	assert_var(&env, "PATH_INFO", "/users/123");
	assert_var(&env, "QUERY_STRING", "x=%20y");
	assert_var(&env, "GEMINI_URL",
	    "gemini://example.com/api/users/123?x=%20y");
	assert_var(&env, "REMOTE_ADDR", "127.0.0.1");
	assert_var(&env, "REMOTE_HOST", "127.0.0.1");
	assert_var(&env, "TLS_CLIENT_AUTHORISED", "0");
	assert_var(&env, "TLS_VERSION", "TLSv1.3");
	assert_var(&env, "TLS_CIPHER", "TLS_AES_256_GCM_SHA384");
	assert_var(&env, "TLS_CLIENT_HASH", NULL);
	assert_var(&env, "AUTH_TYPE", NULL);
	assert_var(&env, "REMOTE_USER", NULL);
	assert_var(&env, "TLS_CLIENT_SUBJECT", NULL);
	assert_var(&env, "TLS_CLIENT_ISSUER", NULL);
	assert_var(&env, "TLS_CLIENT_NOT_BEFORE", NULL);
	assert_var(&env, "TLS_CLIENT_NOT_AFTER", NULL);
	assert_var(&env, "CONTENT_LENGTH", NULL);
	assert_var(&env, "SCGI", NULL);
	cr_assert_str_eq(env.names[0], "GATEWAY_INTERFACE");
	cr_assert_eq(env.len, 14);
	assert_unique(&env);
	cgienv_clear(&env);
	cr_assert_eq(env.len, 0);
	cr_assert_null(env.names);
}

Test(cgienv, with_certificate)
{
	struct cgienv_src src = base_src();
	struct cgienv env;

	src.cert = &test_cert;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "TLS_CLIENT_AUTHORISED", "1");
	assert_var(&env, "TLS_CLIENT_HASH", test_cert.hash);
	assert_var(&env, "AUTH_TYPE", "CERTIFICATE");
	assert_var(&env, "REMOTE_USER", "alice");
	assert_var(&env, "TLS_CLIENT_SUBJECT", "CN=alice,O=Example");
	assert_var(&env, "TLS_CLIENT_ISSUER", "CN=alice,O=Example");
	assert_var(&env, "TLS_CLIENT_NOT_BEFORE", "2026-01-02T03:04:05Z");
	assert_var(&env, "TLS_CLIENT_NOT_AFTER", "2027-01-02T03:04:05Z");
	assert_unique(&env);
	cgienv_clear(&env);
}

/*
 * Certificate text is escaped where it is read (tls.c); what a backend
 * gets is that text, unchanged, through either encoding.
 */
Test(cgienv, hostile_certificate_text_escaped_in_both_encodings)
{
	static const char raw[] = "ev\"il\n\r\x1b[2J\x7f\xff";
	static const char want[] = "ev\"il\\0a\\0d\\1b[2J\\7f\\ff";
	struct cgienv_src src = base_src();
	struct xz_cert cert = test_cert;
	struct cgienv env;
	struct pairs p;
	char **envp, *cn;
	size_t i;

	cr_assert_not_null(cn = cert_text_escape(raw, sizeof(raw) - 1));
	cr_assert_str_eq(cn, want);
	cert.cn = cn;
	cert.subject = cn;
	src.cert = &cert;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	scgi_roundtrip(&env, &p);
	cr_assert_str_eq(pairs_get(&p, "REMOTE_USER"), want);
	cr_assert_str_eq(pairs_get(&p, "TLS_CLIENT_SUBJECT"), want);
	pairs_free(&p);
	cr_assert_not_null(envp = cgienv_envp(&env));
	for (i = 0; envp[i] != NULL; i++)
		if (strncmp(envp[i], "REMOTE_USER=", 12) == 0)
			break;
	cr_assert_not_null(envp[i]);
	cr_assert_str_eq(envp[i] + 12, want);
	cgienv_envp_free(envp);
	cgienv_clear(&env);
	free(cn);
}

Test(cgienv, certificate_without_cn)
{
	struct cgienv_src src = base_src();
	struct xz_cert cert = test_cert;
	struct cgienv env;

	cert.cn = NULL;
	src.cert = &cert;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "AUTH_TYPE", "CERTIFICATE");
	assert_var(&env, "REMOTE_USER", NULL);
	assert_var(&env, "TLS_CLIENT_HASH", cert.hash);
	cgienv_clear(&env);
}

Test(cgienv, certificate_not_present)
{
	struct cgienv_src src = base_src();
	struct xz_cert cert = test_cert;
	struct cgienv env;

	cert.present = false;
	src.cert = &cert;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "TLS_CLIENT_AUTHORISED", "0");
	assert_var(&env, "TLS_CLIENT_HASH", NULL);
	assert_var(&env, "REMOTE_USER", NULL);
	cgienv_clear(&env);
}

Test(cgienv, no_tls)
{
	struct cgienv_src src = base_src();
	struct cgienv env;

	src.tls_version = NULL;
	src.tls_cipher = NULL;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "TLS_VERSION", NULL);
	assert_var(&env, "TLS_CIPHER", NULL);
	cgienv_clear(&env);
}

Test(cgienv, empty_query_is_stored)
{
	struct cgienv_src src = base_src();
	struct cgienv env;

	src.query = NULL;
	src.path_info = "";
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "QUERY_STRING", "");
	assert_var(&env, "PATH_INFO", "");
	cgienv_clear(&env);
}

Test(cgienv, state_keys_mangled)
{
	const char *keys[] = { "db_url", "api-key", "a.b c", "MiXeD9", "unset",
		"", "caf\xc3\xa9", "api_key" };
	const char *values[] = { "postgres://localhost/mydb", "secret123",
		"dot", "mixed", NULL, "empty key", "utf8", "second" };
	struct cgienv_src src = base_src();
	struct cgienv env;

	src.state_keys = keys;
	src.state_values = values;
	src.nstate = sizeof(keys) / sizeof(keys[0]);
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "XITZIN_DB_URL", "postgres://localhost/mydb");
	/* "api-key" and "api_key" meet: the first wins. */
	assert_var(&env, "XITZIN_API_KEY", "secret123");
	assert_var(&env, "XITZIN_A_B_C", "dot");
	assert_var(&env, "XITZIN_MIXED9", "mixed");
	assert_var(&env, "XITZIN_UNSET", NULL);
	assert_var(&env, "XITZIN_", NULL);
	assert_var(&env, "XITZIN_CAF__", "utf8");
	assert_unique(&env);
	cgienv_clear(&env);
}

Test(cgienv, state_cannot_override_request)
{
	/* No key mangles to a request name, but make sure order holds. */
	const char *keys[] = { "x" };
	const char *values[] = { "1" };
	struct cgienv_src src = base_src();
	struct cgienv env;
	size_t i;

	src.state_keys = keys;
	src.state_values = values;
	src.nstate = 1;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	for (i = 0; i < env.len; i++)
		if (strcmp(env.names[i], "XITZIN_X") == 0)
			break;
	cr_assert_eq(i, env.len - 1, "state after the request variables");
	cgienv_clear(&env);
}

Test(cgienv, inherit_environment)
{
	struct cgienv_src src = base_src();
	struct cgienv env;

	setenv("XZ_TEST_MARKER", "here", 1);
	src.inherit_environment = true;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "XZ_TEST_MARKER", "here");
	assert_unique(&env);
	cgienv_clear(&env);
}

Test(cgienv, inherit_off_leaves_environ_out)
{
	struct cgienv_src src = base_src();
	struct cgienv env;

	setenv("XZ_TEST_MARKER", "here", 1);
	setenv("HOME", "/root", 1);
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "XZ_TEST_MARKER", NULL);
	assert_var(&env, "HOME", NULL);
	cgienv_clear(&env);
}

Test(cgienv, environ_never_overrides)
{
	const char *keys[] = { "db_url", "unset" };
	const char *values[] = { "mine", NULL };
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct pairs p;

	setenv("PATH_INFO", "/evil", 1);
	setenv("QUERY_STRING", "evil", 1);
	setenv("SCRIPT_NAME", "/evil", 1);
	setenv("XITZIN_DB_URL", "evil", 1);
	setenv("XITZIN_UNSET", "evil", 1);
	setenv("XITZIN_OTHER", "fine", 1);
	/* Set by the request only with a certificate: never forged. */
	setenv("REMOTE_USER", "root", 1);
	setenv("AUTH_TYPE", "CERTIFICATE", 1);
	setenv("TLS_CLIENT_HASH", "SHA256:evil", 1);
	setenv("TLS_CIPHER", "evil", 1);
	setenv("CONTENT_LENGTH", "42", 1);
	setenv("SCGI", "2", 1);
	src.query = NULL;
	src.path_info = "";
	src.tls_cipher = NULL;
	src.state_keys = keys;
	src.state_values = values;
	src.nstate = 2;
	src.inherit_environment = true;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_unique(&env);
	assert_var(&env, "PATH_INFO", "");
	assert_var(&env, "QUERY_STRING", "");
	assert_var(&env, "SCRIPT_NAME", "/api");
	assert_var(&env, "XITZIN_DB_URL", "mine");
	assert_var(&env, "XITZIN_UNSET", NULL);
	assert_var(&env, "XITZIN_OTHER", "fine");
	assert_var(&env, "REMOTE_USER", NULL);
	assert_var(&env, "AUTH_TYPE", NULL);
	assert_var(&env, "TLS_CLIENT_HASH", NULL);
	assert_var(&env, "TLS_CIPHER", NULL);
	assert_var(&env, "CONTENT_LENGTH", NULL);
	assert_var(&env, "SCGI", NULL);

	scgi_roundtrip(&env, &p);
	cr_assert_null(pairs_get(&p, "PATH_INFO"));
	cr_assert_null(pairs_get(&p, "QUERY_STRING"));
	cr_assert_null(pairs_get(&p, "REMOTE_USER"));
	cr_assert_str_eq(pairs_get(&p, "CONTENT_LENGTH"), "0");
	cr_assert_str_eq(pairs_get(&p, "SCGI"), "1");
	cr_assert_str_eq(pairs_get(&p, "SCRIPT_NAME"), "/api");
	pairs_free(&p);
	cgienv_clear(&env);
}

Test(cgienv, service_manager_variables_not_inherited)
{
	static const char *const names[] = { "NOTIFY_SOCKET", "WATCHDOG_PID",
		"WATCHDOG_USEC", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES" };
	struct cgienv_src src = base_src();
	struct cgienv env;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		setenv(names[i], "1", 1);
	setenv("JOURNAL_STREAM", "8:1234", 1); /* stderr's: still true */
	src.inherit_environment = true;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_var(&env, names[i], NULL);
	assert_var(&env, "JOURNAL_STREAM", "8:1234");
	cgienv_clear(&env);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unsetenv(names[i]);
	unsetenv("JOURNAL_STREAM");
}

Test(cgienv, environ_empty_value_inherited)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct pairs p;

	setenv("XZ_TEST_EMPTY", "", 1);
	src.inherit_environment = true;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	assert_var(&env, "XZ_TEST_EMPTY", "");
	scgi_roundtrip(&env, &p);
	cr_assert_null(pairs_get(&p, "XZ_TEST_EMPTY"));
	pairs_free(&p);
	cgienv_clear(&env);
}

Test(scgi_header, starts_with_content_length_then_scgi)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct evbuffer *b = evbuffer_new();
	size_t len, colon;
	char *out;
	static const char head[] = "CONTENT_LENGTH\0"
	                           "0\0"
	                           "SCGI\0"
	                           "1\0";

	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	cr_assert_eq(cgienv_scgi_header(b, &env), XZ_OK);
	out = drain(b, &len);
	colon = strcspn(out, ":");
	cr_assert_lt(colon, len);
	cr_assert_eq(memcmp(out + colon + 1, head, sizeof(head) - 1), 0);
	/* The length prefix equals the block's byte length. */
	cr_assert_eq(strtoul(out, NULL, 10), len - colon - 2);
	cr_assert_eq(out[len - 1], ',');
	free(out);
	evbuffer_free(b);
	cgienv_clear(&env);
}

Test(scgi_header, roundtrip_all_variables)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct pairs p;
	size_t i, nonempty = 0;

	src.cert = &test_cert;
	src.inherit_environment = true;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	scgi_roundtrip(&env, &p);
	for (i = 0; i < env.len; i++) {
		if (env.values[i][0] == '\0')
			continue;
		nonempty++;
		cr_assert_str_eq(pairs_get(&p, env.names[i]), env.values[i],
		    "%s", env.names[i]);
	}
	cr_assert_eq(p.n, nonempty + 2);
	cr_assert_str_eq(pairs_get(&p, "REMOTE_USER"), "alice");
	cr_assert_str_eq(pairs_get(&p, "SERVER_PORT"), "1965");
	pairs_free(&p);
	cgienv_clear(&env);
}

Test(scgi_header, empty_values_left_out)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct pairs p;

	src.query = NULL;
	src.path_info = "";
	src.script_name = "";
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	scgi_roundtrip(&env, &p);
	cr_assert_null(pairs_get(&p, "QUERY_STRING"));
	cr_assert_null(pairs_get(&p, "PATH_INFO"));
	cr_assert_null(pairs_get(&p, "SCRIPT_NAME"));
	cr_assert_str_eq(pairs_get(&p, "GEMINI_URL"), src.url);
	pairs_free(&p);
	cgienv_clear(&env);
}

Test(scgi_header, large_values)
{
	const char *keys[] = { "big" };
	const char *values[1];
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct pairs p;
	char *big = malloc(100001);

	memset(big, 'z', 100000);
	big[100000] = '\0';
	values[0] = big;
	src.state_keys = keys;
	src.state_values = values;
	src.nstate = 1;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	scgi_roundtrip(&env, &p);
	cr_assert_str_eq(pairs_get(&p, "XITZIN_BIG"), big);
	pairs_free(&p);
	cgienv_clear(&env);
	free(big);
}

Test(scgi_header, appends_to_output)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	struct evbuffer *b = evbuffer_new();
	struct pairs p;
	size_t len;
	char *out;

	evbuffer_add(b, "prev", 4);
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	cr_assert_eq(cgienv_scgi_header(b, &env), XZ_OK);
	out = drain(b, &len);
	cr_assert_eq(memcmp(out, "prev", 4), 0);
	scgi_decode(out + 4, len - 4, &p);
	pairs_free(&p);
	free(out);
	evbuffer_free(b);
	cgienv_clear(&env);
}

Test(envp, name_value_strings)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	char **envp;
	size_t i, n;
	bool query = false;

	src.query = NULL;
	src.cert = &test_cert;
	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	envp = cgienv_envp(&env);
	cr_assert_not_null(envp);
	for (n = 0; envp[n] != NULL; n++)
		;
	cr_assert_eq(n, env.len);
	for (i = 0; i < n; i++) {
		size_t nl = strlen(env.names[i]);

		cr_assert_eq(strncmp(envp[i], env.names[i], nl), 0);
		cr_assert_eq(envp[i][nl], '=');
		cr_assert_str_eq(envp[i] + nl + 1, env.values[i]);
		if (strcmp(envp[i], "QUERY_STRING=") == 0)
			query = true;
	}
	cr_assert(query, "QUERY_STRING= is set when empty");
	cgienv_envp_free(envp);
	cgienv_envp_free(NULL);
	cgienv_clear(&env);
}

Test(envp, usable_by_getenv_rules)
{
	struct cgienv_src src = base_src();
	struct cgienv env;
	char **envp, **saved;

	cr_assert_eq(cgienv_build(&env, &src), XZ_OK);
	envp = cgienv_envp(&env);
	cr_assert_not_null(envp);
	/* What an exec'd script would see. */
	saved = environ;
	environ = envp;
	cr_assert_str_eq(getenv("PATH_INFO"), "/users/123");
	cr_assert_str_eq(getenv("SERVER_PORT"), "1965");
	cr_assert_null(getenv("HOME"));
	environ = saved;
	cgienv_envp_free(envp);
	cgienv_clear(&env);
}
