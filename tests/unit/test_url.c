/*
 * test_url.c - url.c: which URLs are served and how they are
 * split, as tables of good and bad URLs; then url_decode and
 * url_remove_dots on their own.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

/*
 * Criterion runs each parameter in a fresh exec of this binary, where
 * pointers into the parent's (PIE) image mean nothing: hence arrays.
 */
struct good_url {
	char url[96];
	char scheme[16];
	char host[32];
	int port;
	char path[48];
	char query[16];
	bool has_query;
};

#define NOQ "", false /* the URL has no '?' */
#define Q(s) s, true

static const struct good_url good_urls[] = {
	{ "gemini://h", "gemini", "h", -1, "", NOQ },
	{ "gemini://h/", "gemini", "h", -1, "/", NOQ },
	{ "gemini://example.com/a/b.gmi", "gemini", "example.com", -1,
	    "/a/b.gmi", NOQ },
	{ "GEMINI://Example.COM/Path", "gemini", "example.com", -1, "/Path",
	    NOQ },
	{ "Ge-m.i+1://h/", "ge-m.i+1", "h", -1, "/", NOQ },
	{ "gemini://h:1965/", "gemini", "h", 1965, "/", NOQ },
	{ "gemini://h:1/", "gemini", "h", 1, "/", NOQ },
	{ "gemini://h:65535/", "gemini", "h", 65535, "/", NOQ },
	{ "gemini://h:01965/", "gemini", "h", 1965, "/", NOQ },
	{ "gemini://h:/", "gemini", "h", -1, "/", NOQ },
	{ "gemini://h:", "gemini", "h", -1, "", NOQ },
	{ "gemini://h:1965", "gemini", "h", 1965, "", NOQ },
	{ "gemini://127.0.0.1:1965/", "gemini", "127.0.0.1", 1965, "/", NOQ },
	{ "gemini://[::1]/", "gemini", "::1", -1, "/", NOQ },
	{ "gemini://[::1]:1965/x", "gemini", "::1", 1965, "/x", NOQ },
	{ "gemini://[::1]:", "gemini", "::1", -1, "", NOQ },
	{ "gemini://[2001:DB8::A]/", "gemini", "2001:db8::a", -1, "/", NOQ },
	{ "gemini://[::ffff:1.2.3.4]/", "gemini", "::ffff:1.2.3.4", -1, "/",
	    NOQ },
	{ "gemini://h.example./", "gemini", "h.example.", -1, "/", NOQ },
	{ "gemini://a-b_c~d!$&'()*+,;=/", "gemini", "a-b_c~d!$&'()*+,;=", -1,
	    "/", NOQ },
	{ "gemini://\xc3\x9c\x62\x65r.example/", "gemini",
	    "\xc3\x9c\x62\x65r.example", -1, "/", NOQ },
	{ "gemini://h/caf\xc3\xa9/\xf0\x9f\x98\x80", "gemini", "h", -1,
	    "/caf\xc3\xa9/\xf0\x9f\x98\x80", NOQ },
	/* the last code point of each UTF-8 length */
	{ "gemini://h/\x7e\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf", "gemini", "h",
	    -1, "/\x7e\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf", NOQ },
	{ "gemini://h/\xee\x80\x80", "gemini", "h", -1, "/\xee\x80\x80",
	    NOQ }, /* U+E000, just past the surrogates */
	{ "gemini://h/?", "gemini", "h", -1, "/", Q("") },
	{ "gemini://h?", "gemini", "h", -1, "", Q("") },
	{ "gemini://h?q", "gemini", "h", -1, "", Q("q") },
	{ "gemini://h:7?q", "gemini", "h", 7, "", Q("q") },
	{ "gemini://h/s?a%20b+c", "gemini", "h", -1, "/s", Q("a%20b+c") },
	{ "gemini://h/s?a/../b?c", "gemini", "h", -1, "/s", Q("a/../b?c") },
	{ "gemini://h/s?x@y", "gemini", "h", -1, "/s", Q("x@y") },
	{ "gemini://h/%7e%7Euser", "gemini", "h", -1, "/~~user", NOQ },
	{ "gemini://h/a%20b", "gemini", "h", -1, "/a b", NOQ },
	{ "gemini://h/a+b", "gemini", "h", -1, "/a+b", NOQ },
	{ "gemini://h/a%3Fb", "gemini", "h", -1, "/a?b", NOQ },
	{ "gemini://h/a%2Fb", "gemini", "h", -1, "/a/b", NOQ },
	{ "gemini://h/a%23b", "gemini", "h", -1, "/a#b", NOQ },
	{ "gemini://h/x@y:z", "gemini", "h", -1, "/x@y:z", NOQ },
	/* RFC 3986, 5.2.4, done once, after decoding */
	{ "gemini://h/a/./b/../c", "gemini", "h", -1, "/a/c", NOQ },
	{ "gemini://h/a/..", "gemini", "h", -1, "/", NOQ },
	{ "gemini://h/a/../", "gemini", "h", -1, "/", NOQ },
	{ "gemini://h/a/.", "gemini", "h", -1, "/a/", NOQ },
	{ "gemini://h/.", "gemini", "h", -1, "/", NOQ },
	{ "gemini://h/./", "gemini", "h", -1, "/", NOQ },
	{ "gemini://h/a/b/../../c", "gemini", "h", -1, "/c", NOQ },
	{ "gemini://h/a/%2e%2E/b", "gemini", "h", -1, "/b", NOQ },
	{ "gemini://h/a/%2e/b", "gemini", "h", -1, "/a/b", NOQ },
	{ "gemini://h/a%2F..%2Fb", "gemini", "h", -1, "/b", NOQ },
	{ "gemini://h/.../..a/a..", "gemini", "h", -1, "/.../..a/a..", NOQ },
	/* then each run of slashes is one (url_merge_slashes) */
	{ "gemini://h//a//", "gemini", "h", -1, "/a/", NOQ },
	{ "gemini://h//a.txt", "gemini", "h", -1, "/a.txt", NOQ },
	{ "gemini://h///", "gemini", "h", -1, "/", NOQ },
	{ "gemini://h/a%2F%2Fb", "gemini", "h", -1, "/a/b", NOQ },
	{ "gemini://h/a//../b", "gemini", "h", -1, "/a/b", NOQ },
	{ "gemini://h//./a", "gemini", "h", -1, "/a", NOQ },
	{ "gemini://h/a/..?q", "gemini", "h", -1, "/", Q("q") },
	{ "gemini://h/%2F..", "gemini", "h", -1, "/", NOQ }, /* "//.." */
	{ "https://h/", "https", "h", -1, "/", NOQ },
};

ParameterizedTestParameters(url, good)
{
	return cr_make_param_array(struct good_url, good_urls,
	    sizeof(good_urls) / sizeof(good_urls[0]));
}

ParameterizedTest(const struct good_url *t, url, good)
{
	struct xz_url u;
	const char *why = NULL;
	int rc;

	rc = url_parse(&u, t->url, strlen(t->url), &why);
	cr_assert_eq(rc, 0, "%s: %d (%s)", t->url, rc, why ? why : "");
	cr_expect_str_eq(u.raw, t->url);
	cr_expect_str_eq(u.scheme, t->scheme, "%s", t->url);
	cr_expect_str_eq(u.host, t->host, "%s", t->url);
	cr_expect_eq(u.port, t->port, "%s: port %d", t->url, u.port);
	cr_expect_str_eq(u.path, t->path, "%s: path %s", t->url, u.path);
	if (!t->has_query)
		cr_expect_null(u.query, "%s: query %s", t->url, u.query);
	else
		cr_expect_str_eq(u.query, t->query, "%s", t->url);
	url_clear(&u);
}

struct bad_url {
	char url[96];
	char why[40];
};

static const struct bad_url bad_urls[] = {
	/* bytes */
	{ "gemini://h/a b", "URL has a control byte or space" },
	{ " gemini://h/", "URL has a control byte or space" },
	{ "gemini://h/\t", "URL has a control byte or space" },
	{ "gemini://h/\x01", "URL has a control byte or space" },
	{ "gemini://h/\x7f", "URL has a control byte or space" },
	{ "gemini://h/\r", "URL has a control byte or space" },
	{ "gemini://h/\n", "URL has a control byte or space" },
	{ "gemini://h/#", "URL has a fragment" },
	{ "gemini://h/a#b", "URL has a fragment" },
	{ "gemini://h/?q#f", "URL has a fragment" },
	{ "gemini://h#f", "URL has a fragment" },
	/* UTF-8 (RFC 3629) */
	{ "gemini://h/\x80", "URL is not UTF-8" },
	{ "gemini://h/\xbf", "URL is not UTF-8" },
	{ "gemini://h/\xc0\xaf", "URL is not UTF-8" },     /* overlong '/' */
	{ "gemini://h/\xc1\xbf", "URL is not UTF-8" },     /* overlong */
	{ "gemini://h/\xe0\x80\xaf", "URL is not UTF-8" }, /* overlong '/' */
	{ "gemini://h/\xe0\x9f\xbf", "URL is not UTF-8" }, /* overlong */
	{ "gemini://h/\xf0\x80\x80\xaf", "URL is not UTF-8" },
	{ "gemini://h/\xf0\x8f\xbf\xbf", "URL is not UTF-8" },
	{ "gemini://h/\xed\xa0\x80", "URL is not UTF-8" },     /* U+D800 */
	{ "gemini://h/\xed\xbf\xbf", "URL is not UTF-8" },     /* U+DFFF */
	{ "gemini://h/\xf4\x90\x80\x80", "URL is not UTF-8" }, /* U+110000 */
	{ "gemini://h/\xf5\x80\x80\x80", "URL is not UTF-8" },
	{ "gemini://h/\xf8\x88\x80\x80\x80", "URL is not UTF-8" },
	{ "gemini://h/\xfe", "URL is not UTF-8" },
	{ "gemini://h/\xff", "URL is not UTF-8" },
	{ "gemini://h/\xc3", "URL is not UTF-8" }, /* truncated */
	{ "gemini://h/\xe2\x82", "URL is not UTF-8" },
	{ "gemini://h/\xf0\x9f\x98", "URL is not UTF-8" },
	{ "gemini://h/\xc3x", "URL is not UTF-8" },
	{ "gemini://h/\xe2\x82x", "URL is not UTF-8" },
	{ "gemini://h/\xf0\x9f\x98x", "URL is not UTF-8" },
	{ "gemini://h/\xc3\xc3\xa9", "URL is not UTF-8" },
	/* scheme */
	{ "/a/b", "relative URL" },
	{ "//h/a", "relative URL" },
	{ "h/a", "relative URL" },
	{ "a", "relative URL" },
	{ "?q", "relative URL" },
	{ ":", "relative URL" },
	{ "://h/", "relative URL" },
	{ "ge_mini://h/", "relative URL" },
	{ "1gemini://h/", "URL has a bad scheme" },
	{ "+x://h/", "URL has a bad scheme" },
	{ "gemini:", "URL has no authority" },
	{ "gemini:h/", "URL has no authority" },
	{ "gemini:/h/", "URL has no authority" },
	{ "mailto:a@b", "URL has no authority" },
	/* authority */
	{ "gemini://u@h/", "URL has userinfo" },
	{ "gemini://u:p@h/", "URL has userinfo" },
	{ "gemini://@h/", "URL has userinfo" },
	{ "gemini://h@/", "URL has userinfo" },
	{ "gemini:///", "URL has no host" },
	{ "gemini://", "URL has no host" },
	{ "gemini://?q", "URL has no host" },
	{ "gemini://:1965/", "URL has no host" },
	{ "gemini://h%41/", "URL has a bad host" },
	{ "gemini://h]/", "URL has a bad host" },
	{ "gemini://h[::1]/", "URL has a bad host" },
	{ "gemini://h\"/", "URL has a bad host" },
	{ "gemini://h</", "URL has a bad host" },
	{ "gemini://h\\x/", "URL has a bad host" },
	{ "gemini://[::1/", "URL has a bad IPv6 literal" },
	{ "gemini://[::1", "URL has a bad IPv6 literal" },
	{ "gemini://[", "URL has a bad IPv6 literal" },
	{ "gemini://[]/", "URL has a bad IPv6 literal" },
	{ "gemini://[::1]x/", "URL has a bad IPv6 literal" },
	{ "gemini://[::1]]/", "URL has a bad IPv6 literal" },
	{ "gemini://[1.2.3.4]/", "URL has a bad IPv6 literal" },
	{ "gemini://[::g]/", "URL has a bad IPv6 literal" },
	{ "gemini://[fe80::1%25eth0]/", "URL has a bad IPv6 literal" },
	{ "gemini://[v1.x]/", "URL has a bad IPv6 literal" },
	{ "gemini://[0000:0000:0000:0000:0000:0000:0000:0000:0000]/",
	    "URL has a bad IPv6 literal" },
	{ "gemini://[::1]:0/", "URL has a bad port" },
	{ "gemini://h:0/", "URL has a bad port" },
	{ "gemini://h:00/", "URL has a bad port" },
	{ "gemini://h:65536/", "URL has a bad port" },
	{ "gemini://h:99999999999999999999/", "URL has a bad port" },
	{ "gemini://h:-1/", "URL has a bad port" },
	{ "gemini://h:+1/", "URL has a bad port" },
	{ "gemini://h:1x/", "URL has a bad port" },
	{ "gemini://h:x", "URL has a bad port" },
	{ "gemini://h:19:65/", "URL has a bad port" },
	{ "gemini://[::1]:x/", "URL has a bad port" },
	/* percent escapes */
	{ "gemini://h/%", "URL has a bad percent escape" },
	{ "gemini://h/%4", "URL has a bad percent escape" },
	{ "gemini://h/%4?q", "URL has a bad percent escape" },
	{ "gemini://h/%g0", "URL has a bad percent escape" },
	{ "gemini://h/%0g", "URL has a bad percent escape" },
	{ "gemini://h/%%41", "URL has a bad percent escape" },
	{ "gemini://h/?%", "URL has a bad percent escape" },
	{ "gemini://h/?a%2", "URL has a bad percent escape" },
	{ "gemini://h/?a%zz", "URL has a bad percent escape" },
	{ "gemini://h?%", "URL has a bad percent escape" },
	/* decoded path */
	{ "gemini://h/%00", "URL path has %00" },
	{ "gemini://h/a%00b", "URL path has %00" },
	{ "gemini://h/..", "URL path climbs above the root" },
	{ "gemini://h/../", "URL path climbs above the root" },
	{ "gemini://h/../x", "URL path climbs above the root" },
	{ "gemini://h/a/../../b", "URL path climbs above the root" },
	{ "gemini://h/a/./../..", "URL path climbs above the root" },
	{ "gemini://h/%2e%2e/x", "URL path climbs above the root" },
	{ "gemini://h/%2E%2E", "URL path climbs above the root" },
	{ "gemini://h/.%2e/x", "URL path climbs above the root" },
	{ "gemini://h/a%2F..%2F..%2Fb", "URL path climbs above the root" },
};

ParameterizedTestParameters(url, bad)
{
	return cr_make_param_array(struct bad_url, bad_urls,
	    sizeof(bad_urls) / sizeof(bad_urls[0]));
}

static void
expect_zeroed(const struct xz_url *u)
{
	cr_expect_null(u->raw);
	cr_expect_null(u->scheme);
	cr_expect_null(u->host);
	cr_expect_null(u->path);
	cr_expect_null(u->query);
	cr_expect_eq(u->port, 0);
}

ParameterizedTest(const struct bad_url *t, url, bad)
{
	struct xz_url u;
	const char *why = NULL;

	memset(&u, 0xa5, sizeof(u)); /* url_parse must not need a clean u */
	cr_expect_eq(url_parse(&u, t->url, strlen(t->url), &why), 59, "%s",
	    t->url);
	cr_expect_str_eq(why, t->why, "%s: %s", t->url, why);
	expect_zeroed(&u);
	url_clear(&u);
}

Test(url, empty)
{
	struct xz_url u;
	const char *why = NULL;

	cr_expect_eq(url_parse(&u, "", 0, &why), 59);
	cr_expect_str_eq(why, "empty URL");
	/* len rules, not the NUL: nothing is read past len */
	cr_expect_eq(url_parse(&u, "gemini://h/", 0, &why), 59);
	cr_expect_str_eq(why, "empty URL");
	expect_zeroed(&u);
}

/* "gemini://h/" then '/'s up to len bytes. */
static char *
long_url(size_t len)
{
	char *s = malloc(len + 1);

	cr_assert_not_null(s);
	memset(s, 'a', len);
	memcpy(s, "gemini://h/", 11);
	s[len] = '\0';
	return s;
}

Test(url, max_length)
{
	struct xz_url u;
	const char *why = NULL;
	char *s = long_url(XZ_MAX_URL + 1);

	cr_expect_eq(url_parse(&u, s, XZ_MAX_URL, &why), 0, "%s", why);
	cr_expect_eq(strlen(u.raw), XZ_MAX_URL);
	cr_expect_eq(strlen(u.path), XZ_MAX_URL - 10);
	url_clear(&u);
	cr_expect_eq(url_parse(&u, s, XZ_MAX_URL + 1, &why), 59);
	cr_expect_str_eq(why, "URL too long");
	expect_zeroed(&u);
	free(s);
}

Test(url, not_nul_terminated)
{
	struct xz_url u;
	const char *why = NULL;
	const char buf[] = { 'g', 'e', 'm', 'i', 'n', 'i', ':', '/', '/', 'h',
		'/', 'x' }; /* no NUL */

	cr_assert_eq(url_parse(&u, buf, sizeof(buf), &why), 0, "%s", why);
	cr_expect_str_eq(u.raw, "gemini://h/x");
	cr_expect_str_eq(u.path, "/x");
	url_clear(&u);
	cr_assert_eq(url_parse(&u, buf, 10, &why), 0, "%s", why);
	cr_expect_str_eq(u.host, "h");
	cr_expect_str_eq(u.path, "");
	url_clear(&u);
}

Test(url, inner_nul)
{
	struct xz_url u;
	const char *why = NULL;

	cr_expect_eq(url_parse(&u, "gemini://h/\0x", 13, &why), 59);
	cr_expect_str_eq(why, "URL has a control byte or space");
	cr_expect_eq(url_parse(&u, "gemini://h/\0", 12, &why), 59);
	cr_expect_str_eq(why, "URL has a control byte or space");
	expect_zeroed(&u);
}

Test(url, why_may_be_null)
{
	struct xz_url u;

	cr_expect_eq(url_parse(&u, "gemini://u@h/", 13, NULL), 59);
	cr_expect_eq(url_parse(&u, "gemini://h/", 11, NULL), 0);
	url_clear(&u);
}

Test(url, clear_is_idempotent)
{
	struct xz_url u;

	memset(&u, 0, sizeof(u));
	url_clear(&u);
	cr_assert_eq(url_parse(&u, "gemini://h/?q", 13, NULL), 0);
	url_clear(&u);
	expect_zeroed(&u);
	url_clear(&u);
}

struct decode_case {
	char in[16];
	int rc;
	char out[16]; /* outlen bytes and a NUL */
	size_t outlen;
};

static const struct decode_case decode_cases[] = {
	{ "", XZ_OK, "", 0 },
	{ "abc", XZ_OK, "abc", 3 },
	{ "%41%62%7a%7A", XZ_OK, "Abzz", 4 },
	{ "a+b", XZ_OK, "a+b", 3 },
	{ "%20", XZ_OK, " ", 1 },
	{ "%2F%2f", XZ_OK, "//", 2 },
	{ "%25", XZ_OK, "%", 1 },
	{ "%2541", XZ_OK, "%41", 3 }, /* once only */
	{ "a%00b", XZ_OK, "a\0b", 3 },
	{ "%ff%C3%a9", XZ_OK, "\xff\xc3\xa9", 3 },
	{ "%", XZ_EPARSE, "", 0 },
	{ "a%", XZ_EPARSE, "", 0 },
	{ "%4", XZ_EPARSE, "", 0 },
	{ "%G1", XZ_EPARSE, "", 0 },
	{ "%1G", XZ_EPARSE, "", 0 },
	{ "% 1", XZ_EPARSE, "", 0 },
	{ "%-1", XZ_EPARSE, "", 0 },
	{ "ok%x", XZ_EPARSE, "", 0 },
};

ParameterizedTestParameters(url_decode, table)
{
	return cr_make_param_array(struct decode_case, decode_cases,
	    sizeof(decode_cases) / sizeof(decode_cases[0]));
}

ParameterizedTest(const struct decode_case *t, url_decode, table)
{
	char *out = (char *)1;
	size_t outlen = 99;

	cr_assert_eq(url_decode(t->in, strlen(t->in), &out, &outlen), t->rc,
	    "%s", t->in);
	if (t->rc != XZ_OK) {
		cr_expect_null(out);
		return;
	}
	cr_expect_eq(outlen, t->outlen, "%s", t->in);
	cr_expect_eq(memcmp(out, t->out, outlen + 1), 0, "%s", t->in);
	free(out);
}

Test(url_decode, stops_at_len)
{
	char *out;
	size_t outlen;

	/* an escape cut by len is malformed, whatever follows */
	cr_expect_eq(url_decode("a%41", 3, &out, &outlen), XZ_EPARSE);
	cr_expect_eq(url_decode("a%41", 2, &out, &outlen), XZ_EPARSE);
	cr_assert_eq(url_decode("a%41b", 4, &out, &outlen), XZ_OK);
	cr_expect_str_eq(out, "aA");
	free(out);
}

struct dots_case {
	char in[32];
	int rc;
	char out[32];
};

static const struct dots_case dots_cases[] = {
	{ "", XZ_OK, "" },
	{ "/", XZ_OK, "/" },
	{ "//", XZ_OK, "//" },
	{ "/a", XZ_OK, "/a" },
	{ "/a/", XZ_OK, "/a/" },
	{ "/a/b/c/./../../g", XZ_OK, "/a/g" }, /* RFC 3986, 5.2.4 */
	{ "/mid/content=5/../6", XZ_OK, "/mid/6" },
	{ "/a/./b/../c", XZ_OK, "/a/c" },
	{ "/a/..", XZ_OK, "/" },
	{ "/a/../", XZ_OK, "/" },
	{ "/a/.", XZ_OK, "/a/" },
	{ "/a/./", XZ_OK, "/a/" },
	{ "/a/b/..", XZ_OK, "/a/" },
	{ "/.", XZ_OK, "/" },
	{ "/./", XZ_OK, "/" },
	{ "/./.", XZ_OK, "/" },
	{ "/././a", XZ_OK, "/a" },
	{ "//..", XZ_OK, "/" },
	{ "/a//../b", XZ_OK, "/a/b" },
	{ "/.a/a./.../..b/b..", XZ_OK, "/.a/a./.../..b/b.." },
	{ "/a/b/c/../../..", XZ_OK, "/" },
	{ "/..", XZ_EPARSE, "" },
	{ "/../", XZ_EPARSE, "" },
	{ "/../a", XZ_EPARSE, "" },
	{ "/./..", XZ_EPARSE, "" },
	{ "/a/../..", XZ_EPARSE, "" },
	{ "/a/../../b", XZ_EPARSE, "" },
	{ "/a/b/c/../../../..", XZ_EPARSE, "" },
	{ "a", XZ_EPARSE, "" },
	{ "../a", XZ_EPARSE, "" },
	{ ".", XZ_EPARSE, "" },
};

ParameterizedTestParameters(url_remove_dots, table)
{
	return cr_make_param_array(struct dots_case, dots_cases,
	    sizeof(dots_cases) / sizeof(dots_cases[0]));
}

ParameterizedTest(const struct dots_case *t, url_remove_dots, table)
{
	char *path = strdup(t->in);

	cr_assert_not_null(path);
	cr_expect_eq(url_remove_dots(path), t->rc, "%s", t->in);
	if (t->rc == XZ_OK)
		cr_expect_str_eq(path, t->out, "%s -> %s", t->in, path);
	free(path);
}

struct slashes_case {
	char in[32];
	char out[32];
};

static const struct slashes_case slashes_cases[] = {
	{ "", "" },
	{ "/", "/" },
	{ "//", "/" },
	{ "///a", "/a" },
	{ "/a//b///c", "/a/b/c" },
	{ "/a/", "/a/" },
	{ "/a//", "/a/" },
	{ "/a.b/c", "/a.b/c" },
};

ParameterizedTestParameters(url_merge_slashes, table)
{
	return cr_make_param_array(struct slashes_case, slashes_cases,
	    sizeof(slashes_cases) / sizeof(slashes_cases[0]));
}

ParameterizedTest(const struct slashes_case *t, url_merge_slashes, table)
{
	char path[32];

	memcpy(path, t->in, sizeof(path));
	url_merge_slashes(path);
	cr_expect_str_eq(path, t->out, "%s -> %s", t->in, path);
}

/* Titan: the parameters after the path, and what is refused. */
Test(url, titan_parameters)
{
	static const char line[] =
	    "titan://h/wiki/a%20b;token=x%3By;size=12;mime=text/plain;x=1?q";
	struct xz_url u;

	cr_assert_eq(url_parse(&u, line, strlen(line), NULL), 0);
	cr_assert(u.titan);
	cr_assert_str_eq(u.path, "/wiki/a b");
	cr_assert_eq(u.size, 12);
	cr_assert_str_eq(u.mime, "text/plain");
	cr_assert_str_eq(u.token, "x;y");
	cr_assert_str_eq(u.query, "q");
	url_clear(&u);

	cr_assert_eq(url_parse(&u, "titan://h/a;size=0", 18, NULL), 0);
	cr_assert_eq(u.size, 0);
	cr_assert_str_eq(u.mime, "text/gemini");
	cr_assert_null(u.token);
	url_clear(&u);

	/* Gemini URLs keep their ';' in the path. */
	cr_assert_eq(url_parse(&u, "gemini://h/a;size=1", 19, NULL), 0);
	cr_assert_not(u.titan);
	cr_assert_str_eq(u.path, "/a;size=1");
	url_clear(&u);
}

Test(url, titan_refused)
{
	static const char *const bad[] = {
		"titan://h/a",
		"titan://h/a;mime=text/plain",
		"titan://h/a;size=",
		"titan://h/a;size=-1",
		"titan://h/a;size=1x",
		"titan://h/a;size=9007199254740992", /* 2^53 */
		"titan://h/a;size=12345678901234567",
		"titan://h/a;size=1;size=1",
		"titan://h/a;size=1;token=a;token=b",
		"titan://h/a;size=1;token=%00",
		"titan://h/a;size=1;mime=%zz",
	};
	struct xz_url u;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		cr_assert_eq(url_parse(&u, bad[i], strlen(bad[i]), &why), 59,
		    "%s", bad[i]);
		cr_assert_not_null(why);
		url_clear(&u);
	}
	cr_assert_eq(
	    url_parse(&u, "titan://h/a;size=9007199254740991", 33, NULL), 0);
	url_clear(&u);
}
