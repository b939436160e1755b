/*
 * test_response.c - response_valid() and response_parse_backend(): the
 * three backend shapes, bare LF, every error, the limits, and that a
 * valid header is XZ_EAGAIN at each of its prefixes.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "xz_private.h"

struct parsed {
	int rc;
	int status;
	char *meta;
	size_t hdrlen;
	const char *why;
};

static struct parsed
parse_n(const char *buf, size_t len)
{
	struct parsed p;

	p.rc = response_parse_backend(buf, len, &p.status, &p.meta, &p.hdrlen,
	    &p.why);
	return p;
}

static struct parsed
parse(const char *s)
{
	return parse_n(s, strlen(s));
}

/* s parses to status and meta, and its header is hdrlen bytes. */
static void
assert_ok_n(const char *s, size_t len, int status, const char *meta,
    size_t hdrlen)
{
	struct parsed p = parse_n(s, len);

	cr_assert_eq(p.rc, XZ_OK, "%.*s: rc %d (%s)", (int)len, s, p.rc,
	    p.why ? p.why : "");
	cr_assert_eq(p.status, status, "%.*s", (int)len, s);
	cr_assert_not_null(p.meta);
	cr_assert_str_eq(p.meta, meta);
	cr_assert_eq(p.hdrlen, hdrlen, "%.*s: hdrlen %zu, not %zu", (int)len, s,
	    p.hdrlen, hdrlen);
	cr_assert_leq(p.hdrlen, len);
	cr_assert(response_valid(p.status, p.meta, strlen(p.meta)));
	free(p.meta);
}

static void
assert_ok(const char *s, int status, const char *meta)
{
	assert_ok_n(s, strlen(s), status, meta, strlen(s));
}

/* s is refused; with why non-NULL, for that reason. */
static void
assert_eparse_n(const char *s, size_t len, const char *why)
{
	struct parsed p = parse_n(s, len);

	cr_assert_eq(p.rc, XZ_EPARSE, "%.*s: rc %d, not XZ_EPARSE",
	    (int)(len > 80 ? 80 : len), s, p.rc);
	cr_assert_null(p.meta);
	cr_assert_eq(p.status, 0);
	cr_assert_not_null(p.why);
	if (why != NULL)
		cr_assert_str_eq(p.why, why);
}

static void
assert_eparse(const char *s, const char *why)
{
	assert_eparse_n(s, strlen(s), why);
}

static void
assert_eagain_n(const char *s, size_t len)
{
	struct parsed p = parse_n(s, len);

	cr_assert_eq(p.rc, XZ_EAGAIN,
	    "prefix of %zu bytes \"%.*s\": rc %d (%s)", len, (int)len, s, p.rc,
	    p.why ? p.why : "");
	cr_assert_null(p.meta);
}

/* A string of n copies of ch (free it). */
static char *
repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

static char *
concat3(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	cr_assert_not_null(s);
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

/*
 * response_valid
 */

Test(response_valid, status_range)
{
	cr_assert(response_valid(10, "x", 1));
	cr_assert(response_valid(69, "", 0));
	cr_assert(response_valid(20, "text/gemini", 11));
	cr_assert_not(response_valid(9, "x", 1));
	cr_assert_not(response_valid(70, "x", 1));
	cr_assert_not(response_valid(0, "x", 1));
	cr_assert_not(response_valid(-20, "x", 1));
	cr_assert_not(response_valid(100, "x", 1));
}

Test(response_valid, empty_meta)
{
	int s;

	for (s = 10; s <= 69; s++) {
		bool want = !(s / 10 == 1 || s / 10 == 3);

		cr_assert_eq(response_valid(s, "", 0), want, "status %d", s);
		cr_assert_eq(response_valid(s, NULL, 0), want, "status %d", s);
	}
	cr_assert_not(response_valid(20, NULL, 3));
}

Test(response_valid, meta_length)
{
	char *m = repeat('a', XZ_MAX_META + 1);

	cr_assert(response_valid(20, m, XZ_MAX_META));
	cr_assert_not(response_valid(20, m, XZ_MAX_META + 1));
	free(m);
}

Test(response_valid, control_bytes)
{
	char m[3] = { 'a', 0, 'b' };
	int ch;

	for (ch = 0; ch < 0x20; ch++) {
		m[1] = (char)ch;
		cr_assert_not(response_valid(20, m, 3), "byte %#x", ch);
	}
	m[1] = 0x7f;
	cr_assert_not(response_valid(20, m, 3));
	m[1] = ' ';
	cr_assert(response_valid(20, m, 3));
	m[1] = '~';
	cr_assert(response_valid(20, m, 3));
}

Test(response_valid, utf8)
{
	const char *good[] = {
		"\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81\xaf",
		"caf\xc3\xa9", "\xf0\x9f\x98\x80", /* U+1F600 */
		"\xf4\x8f\xbf\xbf",                /* U+10FFFF */
		"\xed\x9f\xbf",                    /* U+D7FF */
		"\xc2\x80",                        /* U+0080 */
	};
	const char *bad[] = {
		"\xff",
		"\x80",
		"\xc0\x80",         /* overlong NUL */
		"\xc1\xbf",         /* overlong */
		"\xe0\x80\xaf",     /* overlong / */
		"\xed\xa0\x80",     /* surrogate */
		"\xf0\x8f\xbf\xbf", /* overlong */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xf5\x80\x80\x80",
		"\xe3\x81", /* truncated */
		"a\xe3\x81z",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert(response_valid(20, good[i], strlen(good[i])),
		    "good %zu", i);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(response_valid(20, bad[i], strlen(bad[i])),
		    "bad %zu", i);
}

/*
 * Shape (a): the Gemini line.
 */

Test(gemini_line, reference_vectors)
{
	assert_ok("30 gemini://example.com/new\r\n", 30,
	    "gemini://example.com/new");
	assert_ok("10 Enter your name:\r\n", 10, "Enter your name:");
}

Test(gemini_line, document_examples)
{
	assert_ok_n("20 text/gemini\r\n# Hello World", 29, 20, "text/gemini",
	    16);
	/* Python's print() adds a newline: it is the body. */
	assert_ok_n("10 Enter your name:\r\n\n", 22, 10,
	    "Enter your name:", 21);
	assert_ok("30 gemini://example.com/new-location\r\n", 30,
	    "gemini://example.com/new-location");
	assert_ok("51 Not found\r\n", 51, "Not found");
}

Test(gemini_line, bare_lf)
{
	assert_ok_n("20 text/gemini\nbody", 19, 20, "text/gemini", 15);
	assert_ok("51\n", 51, "");
}

Test(gemini_line, empty_meta)
{
	assert_ok("20\r\n", 20, "");
	assert_ok("20 \r\n", 20, "");
	assert_ok("44\r\n", 44, "");
	assert_ok("59\n", 59, "");
	assert_ok("60\r\n", 60, "");
	assert_eparse("30\r\n", "empty meta for a prompt or redirect");
	assert_eparse("31 \r\n", "empty meta for a prompt or redirect");
	assert_eparse("10\r\n", "empty meta for a prompt or redirect");
	assert_eparse("11\n", NULL);
}

Test(gemini_line, meta_as_written)
{
	assert_ok("20 text/gemini; charset=utf-8 \r\n", 20,
	    "text/gemini; charset=utf-8 ");
	assert_ok("10 a  b\r\n", 10, "a  b");
	assert_ok("20 \xe3\x81\x93\xe3\x82\x93\r\n", 20,
	    "\xe3\x81\x93\xe3\x82\x93");
}

Test(gemini_line, status_bounds)
{
	assert_ok("10 x\r\n", 10, "x");
	assert_ok("69 x\r\n", 69, "x");
	assert_ok("69\r\n", 69, "");
	assert_eparse("70 x\r\n", "status out of range 10..69");
	assert_eparse("09 x\r\n", "status out of range 10..69");
	assert_eparse("00 x\r\n", NULL);
	assert_eparse("99 x\r\n", NULL);
}

Test(gemini_line, status_not_two_digits)
{
	assert_eparse("1x prompt\r\n", "status is not two digits");
	assert_eparse("2\r\n", "status is not two digits");
	assert_eparse("2 text/gemini\r\n", "status is not two digits");
	assert_eparse("200 text/gemini\r\n", "status is not two digits");
	assert_eparse("20text/gemini\r\n", "status is not two digits");
	assert_eparse("20\ttext/gemini\r\n", "status is not two digits");
}

Test(gemini_line, one_space_only)
{
	assert_eparse("20  text/gemini\r\n",
	    "more than one space after the status");
	assert_eparse("20 \ttext/gemini\r\n", "control byte in meta");
}

Test(gemini_line, meta_limit)
{
	char *m = repeat('a', XZ_MAX_META + 1), *s;

	s = concat3("20 ", m + 1, "\r\nbody");
	assert_ok_n(s, strlen(s), 20, m + 1, 3 + XZ_MAX_META + 2);
	free(s);
	s = concat3("20 ", m, "\r\n");
	assert_eparse(s, "meta over 1024 bytes");
	free(s);
	free(m);
}

Test(gemini_line, bad_meta)
{
	assert_eparse("20 text\x01gemini\r\n", "control byte in meta");
	assert_eparse("20 text\x1bgemini\r\n", "control byte in meta");
	assert_eparse("20 text\x7fgemini\r\n", "control byte in meta");
	assert_eparse("20 text\tgemini\r\n", "control byte in meta");
	assert_eparse("20 \xff\r\n", "meta is not UTF-8");
	assert_eparse("20 \xc0\x80\r\n", "meta is not UTF-8");
	assert_eparse("20 \xed\xa0\x80\r\n", "meta is not UTF-8");
}

Test(gemini_line, nul)
{
	assert_eparse_n("20 text\0gemini\r\n", 16, "NUL byte in header");
	/* Known bad before the line ends. */
	assert_eparse_n("20 te\0", 6, "NUL byte in header");
	/* A NUL in the body is the body's business. */
	assert_ok_n("20 x\r\n\0\0", 8, 20, "x", 6);
}

Test(gemini_line, bare_cr)
{
	assert_eparse("20 text\rgemini\r\n", "CR without LF in header");
	assert_eparse("20 text/gemini\r\r\n", "CR without LF in header");
	assert_eagain_n("20 text/gemini\r", 15);
}

Test(gemini_line, binary_body)
{
	char buf[64 + 256];
	size_t hl, i;
	struct parsed p;
	const char *hdr = "20 application/octet-stream\r\n";

	hl = strlen(hdr);
	memcpy(buf, hdr, hl);
	for (i = 0; i < 256; i++)
		buf[hl + i] = (char)(255 - i);
	p = parse_n(buf, hl + 256);
	cr_assert_eq(p.rc, XZ_OK);
	cr_assert_eq(p.hdrlen, hl);
	cr_assert_str_eq(p.meta, "application/octet-stream");
	for (i = 0; i < 256; i++)
		cr_assert_eq((unsigned char)buf[p.hdrlen + i], 255 - i);
	free(p.meta);
}

/*
 * Shape (b): the CGI header block.
 */

Test(cgi, status_header)
{
	assert_ok("Status: 20 text/gemini\r\n\r\n", 20, "text/gemini");
	assert_ok_n("Status: 20 text/gemini\r\n\r\nhello", 31, 20,
	    "text/gemini", 26);
	assert_ok("Status: 30 gemini://example.com/new\r\n\r\n", 30,
	    "gemini://example.com/new");
	assert_ok("Status: 51\r\n\r\n", 51, "");
}

Test(cgi, names_case_insensitive)
{
	assert_ok("status: 20 text/plain\r\n\r\n", 20, "text/plain");
	assert_ok("STATUS: 20 text/plain\r\n\r\n", 20, "text/plain");
	assert_ok("sTaTuS: 20 text/plain\r\n\r\n", 20, "text/plain");
	assert_ok("content-type: text/plain\r\n\r\n", 20, "text/plain");
	assert_ok("CONTENT-TYPE: text/plain\r\n\r\n", 20, "text/plain");
}

Test(cgi, value_trimmed)
{
	assert_ok("Status:   51 Not found \t \r\n\r\n", 51, "Not found");
	assert_ok("Status:20 text/gemini\r\n\r\n", 20, "text/gemini");
	assert_ok("Content-Type: \t text/gemini; lang=en  \r\n\r\n", 20,
	    "text/gemini; lang=en");
}

Test(cgi, extra_headers_ignored)
{
	assert_ok("X-Powered-By: flup\r\nStatus: 20 text/gemini\r\n"
	          "Content-Length: 5\r\nX-Empty:\r\nX-Bin: \xff\xfe\r\n\r\n",
	    20, "text/gemini");
	assert_ok("Location: /elsewhere\r\nStatus: 31 /elsewhere\r\n\r\n", 31,
	    "/elsewhere");
}

Test(cgi, content_type_alone_is_20)
{
	assert_ok("Content-Type: text/gemini\r\n\r\n", 20, "text/gemini");
	assert_ok("X-A: b\r\nContent-Type: image/png\r\n\r\n", 20, "image/png");
}

Test(cgi, status_wins_over_content_type)
{
	assert_ok("Content-Type: text/plain\r\nStatus: 20 text/gemini\r\n\r\n",
	    20, "text/gemini");
	assert_ok("Status: 51 Gone\r\nContent-Type: text/plain\r\n\r\n", 51,
	    "Gone");
	assert_ok("Status: 51\r\nContent-Type: text/plain\r\n\r\n", 51, "");
	/* A 2x without meta takes the Content-Type, as in HTTP. */
	assert_ok("Status: 20\r\nContent-Type: text/plain\r\n\r\n", 20,
	    "text/plain");
	assert_ok("Content-Type: text/plain\r\nStatus: 21\r\n\r\n", 21,
	    "text/plain");
	assert_ok("Status: 20\r\n\r\n", 20, "");
}

Test(cgi, bare_lf)
{
	assert_ok_n("Status: 20 text/gemini\n\nbody", 28, 20, "text/gemini",
	    24);
	assert_ok_n("Status: 20 text/gemini\r\nX: y\n\r\nbody", 35, 20,
	    "text/gemini", 31);
}

Test(cgi, binary_body)
{
	char buf[64 + 256];
	size_t hl, i;
	struct parsed p;
	const char *hdr = "Content-Type: application/octet-stream\r\n\r\n";

	hl = strlen(hdr);
	memcpy(buf, hdr, hl);
	for (i = 0; i < 256; i++)
		buf[hl + i] = (char)i;
	p = parse_n(buf, hl + 256);
	cr_assert_eq(p.rc, XZ_OK);
	cr_assert_eq(p.hdrlen, hl);
	for (i = 0; i < 256; i++)
		cr_assert_eq((unsigned char)buf[p.hdrlen + i], i);
	free(p.meta);
}

Test(cgi, errors)
{
	assert_eparse("X-Foo: bar\r\n\r\n", "no Status or Content-Type header");
	assert_eparse("\r\n", "no Status or Content-Type header");
	assert_eparse("\n", "no Status or Content-Type header");
	assert_eparse("Location: gemini://x/\r\n\r\n",
	    "no Status or Content-Type header");
	assert_eparse("Hello world\r\n\r\n", "header line without a colon");
	assert_eparse(": 20 x\r\n\r\n", "empty header name");
	assert_eparse("Status : 20 x\r\n\r\n", "bad byte in header name");
	assert_eparse(" Status: 20 x\r\n\r\n", "bad byte in header name");
	assert_eparse("Stat\xffus: 20 x\r\n\r\n", "bad byte in header name");
	assert_eparse("Status: 20 x\r\n continued\r\n\r\n",
	    "header line without a colon");
	assert_eparse("Status: 20 x\r\n X: continued\r\n\r\n",
	    "bad byte in header name");
	assert_eparse("Status: 20 x\r\nStatus: 51\r\n\r\n",
	    "more than one Status header");
	assert_eparse("Content-Type: a\r\nContent-Type: b\r\n\r\n",
	    "more than one Content-Type header");
	assert_eparse("Status: 200 OK\r\n\r\n", "status is not two digits");
	assert_eparse("Status:\r\n\r\n", "status is not two digits");
	assert_eparse("Status: 30\r\n\r\n",
	    "empty meta for a prompt or redirect");
	assert_eparse("Status: 10\r\nContent-Type: text/plain\r\n\r\n",
	    "empty meta for a prompt or redirect");
	assert_eparse("Status: 70 x\r\n\r\n", "status out of range 10..69");
	assert_eparse("Status: 20  x\r\n\r\n",
	    "more than one space after the status");
	assert_eparse("Status: 20 a\x01"
	              "b\r\n\r\n",
	    "control byte in meta");
	assert_eparse("Content-Type: \xc3(\r\n\r\n", "meta is not UTF-8");
	assert_eparse_n("X-A: b\0c\r\n\r\n", 12, "NUL byte in header");
	assert_eparse("X-A: b\rc\r\n\r\n", "CR without LF in header");
	assert_eparse("Status: 20 x\r\n\r\r\n", "CR without LF in header");
}

Test(cgi, meta_limit)
{
	char *m = repeat('b', XZ_MAX_META + 1), *s;

	s = concat3("Status: 20 ", m + 1, "\r\n\r\n");
	assert_ok(s, 20, m + 1);
	free(s);
	s = concat3("Status: 20 ", m, "\r\n\r\n");
	assert_eparse(s, "meta over 1024 bytes");
	free(s);
	s = concat3("Content-Type: ", m + 1, "\r\n\r\n");
	assert_ok(s, 20, m + 1);
	free(s);
	s = concat3("Content-Type: ", m, "\r\n\r\n");
	assert_eparse(s, "meta over 1024 bytes");
	free(s);
	free(m);
}

/*
 * Shape (c): NPH.
 */

Test(nph, basic)
{
	assert_ok_n("GEMINI 20 text/gemini\r\n\r\nbody", 29, 20, "text/gemini",
	    25);
	assert_ok("GEMINI 51 Not found\r\n\r\n", 51, "Not found");
	assert_ok("GEMINI 51\r\n\r\n", 51, "");
	assert_ok("GEMINI 30 gemini://example.com/new\r\n\r\n", 30,
	    "gemini://example.com/new");
}

Test(nph, headers_ignored)
{
	assert_ok("GEMINI 20 text/gemini\r\nContent-Type: text/plain\r\n"
	          "Status: 51 no\r\nX-A: b\r\n\r\n",
	    20, "text/gemini");
}

Test(nph, bare_lf)
{
	assert_ok_n("GEMINI 20 text/gemini\n\n\x01\x02", 25, 20, "text/gemini",
	    23);
}

Test(nph, errors)
{
	assert_eparse("GEMINI 2x x\r\n\r\n", "status is not two digits");
	assert_eparse("GEMINI \r\n\r\n", "status is not two digits");
	assert_eparse("GEMINI  20 x\r\n\r\n", "status is not two digits");
	assert_eparse("GEMINI 20  x\r\n\r\n",
	    "more than one space after the status");
	assert_eparse("GEMINI 30\r\n\r\n",
	    "empty meta for a prompt or redirect");
	assert_eparse("GEMINI 20 x\r\nno colon\r\n\r\n",
	    "header line without a colon");
	assert_eparse("GEMINI 20 x\r\nbody bytes\n",
	    "header line without a colon");
}

Test(nph, shape_detection)
{
	/* Prefixes of "GEMINI " wait; anything else is a CGI header. */
	assert_eagain_n("G", 1);
	assert_eagain_n("GEMINI", 6);
	assert_ok("GEMINI: x\r\nStatus: 20 a\r\n\r\n", 20, "a");
	assert_ok("GEMS: x\r\nContent-Type: a\r\n\r\n", 20, "a");
	assert_eparse("Gemini 20 x\r\n\r\n", "header line without a colon");
	assert_eparse("GEMINI/1.0 20 x\r\n\r\n", "header line without a colon");
}

/*
 * Incomplete headers and the size limit.
 */

Test(incomplete, every_prefix_of_a_valid_header)
{
	const char *valid[] = {
		"20 text/gemini\r\n",
		"20\r\n",
		"20 \r\n",
		"20 text/gemini\n",
		"30 gemini://example.com/new\r\n",
		"10 Enter your name:\r\n",
		"Status: 20 text/gemini\r\n\r\n",
		"Status: 20 text/gemini\n\n",
		"X-A: b\r\nstatus: 51 Not found\r\nX-C: \r\n\r\n",
		"Content-Type: text/plain\r\n\r\n",
		"GEMINI 20 text/gemini\r\n\r\n",
		"GEMINI 20 text/gemini\r\nX-A: b\r\n\r\n",
		"GEMINI 51\n\n",
		"20 \xe3\x81\x93\xe3\x82\x93\r\n",
	};
	size_t i, n, len;
	struct parsed p;

	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		len = strlen(valid[i]);
		for (n = 0; n < len; n++)
			assert_eagain_n(valid[i], n);
		p = parse(valid[i]);
		cr_assert_eq(p.rc, XZ_OK, "%s", valid[i]);
		cr_assert_eq(p.hdrlen, len, "%s", valid[i]);
		free(p.meta);
	}
}

Test(incomplete, empty_input)
{
	assert_eagain_n("", 0);
	assert_eagain_n(NULL, 0);
}

Test(incomplete, outputs_cleared)
{
	int status = 99;
	char *meta = (char *)"junk";
	size_t hdrlen = 99;
	const char *why = "junk";

	cr_assert_eq(
	    response_parse_backend("20 x", 4, &status, &meta, &hdrlen, &why),
	    XZ_EAGAIN);
	cr_assert_null(meta);
	cr_assert_eq(status, 0);
	cr_assert_eq(hdrlen, 0);
	cr_assert_null(why);
	/* why may be NULL. */
	cr_assert_eq(
	    response_parse_backend("2x\r\n", 4, &status, &meta, &hdrlen, NULL),
	    XZ_EPARSE);
	cr_assert_null(meta);
}

/* A CGI block of exactly total bytes: filler headers, then Status. */
static char *
cgi_block(size_t total)
{
	const char *tail = "Status: 20 text/gemini\r\n\r\n";
	size_t tl = strlen(tail), fill = total - tl;
	char *s = malloc(total + 16);

	cr_assert_not_null(s);
	cr_assert_geq(fill, 8);
	/* One long filler header "X: aaa...a\r\n" of fill bytes. */
	memcpy(s, "X: ", 3);
	memset(s + 3, 'a', fill - 5);
	memcpy(s + fill - 2, "\r\n", 2);
	memcpy(s + fill, tail, tl + 1);
	memcpy(s + total, "body", 5);
	return s;
}

Test(limit, header_of_exactly_the_limit)
{
	char *s = cgi_block(XZ_MAX_BACKEND_HEADER);

	assert_ok_n(s, XZ_MAX_BACKEND_HEADER + 4, 20, "text/gemini",
	    XZ_MAX_BACKEND_HEADER);
	assert_ok_n(s, XZ_MAX_BACKEND_HEADER, 20, "text/gemini",
	    XZ_MAX_BACKEND_HEADER);
	assert_eagain_n(s, XZ_MAX_BACKEND_HEADER - 1);
	free(s);
}

Test(limit, header_one_byte_over)
{
	char *s = cgi_block(XZ_MAX_BACKEND_HEADER + 1);

	assert_eparse_n(s, XZ_MAX_BACKEND_HEADER + 5,
	    "header over 8192 bytes without its end");
	assert_eparse_n(s, XZ_MAX_BACKEND_HEADER + 1, NULL);
	assert_eparse_n(s, XZ_MAX_BACKEND_HEADER, NULL);
	assert_eagain_n(s, XZ_MAX_BACKEND_HEADER - 1);
	free(s);
}

Test(limit, endless_gemini_line)
{
	char *s = repeat('a', 3 * XZ_MAX_BACKEND_HEADER);

	memcpy(s, "20 ", 3);
	assert_eagain_n(s, XZ_MAX_BACKEND_HEADER - 1);
	assert_eparse_n(s, XZ_MAX_BACKEND_HEADER,
	    "header over 8192 bytes without its end");
	assert_eparse_n(s, 3 * XZ_MAX_BACKEND_HEADER, NULL);
	/* A long but complete line is refused for its meta. */
	memcpy(s + 2000, "\r\n", 2);
	assert_eparse_n(s, 3 * XZ_MAX_BACKEND_HEADER, "meta over 1024 bytes");
	free(s);
}

Test(limit, cr_on_the_limit)
{
	char *s = repeat('a', XZ_MAX_BACKEND_HEADER + 1);

	memcpy(s, "X: ", 3);
	s[XZ_MAX_BACKEND_HEADER - 1] = '\r';
	s[XZ_MAX_BACKEND_HEADER] = '\n';
	assert_eagain_n(s, XZ_MAX_BACKEND_HEADER - 1);
	assert_eparse_n(s, XZ_MAX_BACKEND_HEADER, NULL);
	assert_eparse_n(s, XZ_MAX_BACKEND_HEADER + 1, NULL);
	free(s);
}
