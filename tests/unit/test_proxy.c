/*
 * test_proxy.c - the PROXY protocol header parser: tables of valid and
 * invalid v1 and v2 headers, every prefix of a valid one (needs more,
 * never a false refusal), and the bytes after a header left alone.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string.h>

#include "xz_private.h"

/* Table rows leave out what does not apply (no address, not local). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

struct valid_case {
	const char *name;
	const char *bytes;
	size_t len;
	enum proxy_mode mode;
	int family; /* AF_UNSPEC: keep the peer's */
	const char *src;
	int sport;
	const char *dst;
	int dport;
	bool local;
};

#define V2SIG "\r\n\r\n\0\r\nQUIT\n"
#define B(s) s, sizeof(s) - 1

/* Two Unix paths of 108 bytes each, zero-padded. */
static const char v2_unix[16 + 216] = V2SIG "\x21\x31\x00\xd8/run/a.sock";

static const struct valid_case valid[] = {
	{ "v1 tcp4", B("PROXY TCP4 192.0.2.7 198.51.100.1 56324 1965\r\n"),
	    PROXY_V1, AF_INET, "192.0.2.7", 56324, "198.51.100.1", 1965 },
	{ "v1 tcp6", B("PROXY TCP6 2001:db8::7 ::1 65535 0\r\n"), PROXY_V1,
	    AF_INET6, "2001:db8::7", 65535, "::1", 0 },
	{ "v1 v4-mapped",
	    B("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:192.0.2.2 1 2\r\n"), PROXY_V1,
	    AF_INET6, "::ffff:192.0.2.1", 1, "::ffff:192.0.2.2", 2 },
	{ "v1 unknown", B("PROXY UNKNOWN\r\n"), PROXY_V1, AF_UNSPEC },
	{ "v1 unknown, rest ignored",
	    B("PROXY UNKNOWN ffff::1 whatever 1 2\r\n"), PROXY_V1, AF_UNSPEC },
	{ "v1 the longest",
	    B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	    PROXY_V1, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	    65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535 },
	{ "v1 under any", B("PROXY TCP4 10.0.0.1 10.0.0.2 1000 2000\r\n"),
	    PROXY_ANY, AF_INET, "10.0.0.1", 1000, "10.0.0.2", 2000 },
	{ "v2 tcp4",
	    B(V2SIG "\x21\x11\x00\x0c"
	            "\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x07\xad"),
	    PROXY_V2, AF_INET, "192.0.2.7", 56324, "198.51.100.1", 1965 },
	{ "v2 tcp6",
	    B(V2SIG "\x21\x21\x00\x24"
	            "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
	            "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
	            "\xff\xff\x07\xad"),
	    PROXY_V2, AF_INET6, "2001:db8::7", 65535, "::1", 1965 },
	{ "v2 tcp4 with TLVs (ALPN, authority, NOOP)",
	    B(V2SIG "\x21\x11\x00\x1f"
	            "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07\xd0"
	            "\x01\x00\x06gemini"
	            "\x02\x00\x04host"
	            "\x04\x00\x00"),
	    PROXY_V2, AF_INET, "10.0.0.1", 1000, "10.0.0.2", 2000 },
	{ "v2 tcp4, address block with extra length as an empty TLV",
	    B(V2SIG "\x21\x11\x00\x0f"
	            "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07\xd0"
	            "\xee\x00\x00"),
	    PROXY_V2, AF_INET, "10.0.0.1", 1000, "10.0.0.2", 2000 },
	{ "v2 local, no block", B(V2SIG "\x20\x00\x00\x00"), PROXY_V2,
	    AF_UNSPEC, .local = true },
	{ "v2 local, block discarded", B(V2SIG "\x20\x11\x00\x03zzz"), PROXY_V2,
	    AF_UNSPEC, .local = true },
	{ "v2 proxy unspec", B(V2SIG "\x21\x00\x00\x00"), PROXY_V2, AF_UNSPEC },
	{ "v2 unix stream: keep the peer", v2_unix, sizeof(v2_unix), PROXY_V2,
	    AF_UNSPEC },
	{ "v2 under any",
	    B(V2SIG "\x21\x11\x00\x0c"
	            "\x7f\x00\x00\x05\x7f\x00\x00\x01\x00\x50\x07\xad"),
	    PROXY_ANY, AF_INET, "127.0.0.5", 80, "127.0.0.1", 1965 },
};

struct invalid_case {
	const char *name;
	const char *bytes;
	size_t len;
	enum proxy_mode mode;
};

static const struct invalid_case invalid[] = {
	{ "TLS ClientHello", B("\x16\x03\x01\x02\x00\x01"), PROXY_ANY },
	{ "TLS on v1", B("\x16\x03\x01\x02\x00\x01"), PROXY_V1 },
	{ "TLS on v2", B("\x16\x03\x01\x02\x00\x01"), PROXY_V2 },
	{ "a Gemini request", B("gemini://localhost/\r\n"), PROXY_ANY },
	{ "lower case", B("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 on a v2 listener", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
	    PROXY_V2 },
	{ "v2 on a v1 listener", B(V2SIG "\x20\x00\x00\x00"), PROXY_V1 },
	{ "v1 bare LF", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), PROXY_V1 },
	{ "v1 CR alone", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx\n"), PROXY_V1 },
	{ "v1 two spaces", B("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 trailing space", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
	    PROXY_V1 },
	{ "v1 tab", B("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 five fields", B("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), PROXY_V1 },
	{ "v1 seven fields", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
	    PROXY_V1 },
	{ "v1 UDP4", B("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 UNKNOWNX", B("PROXY UNKNOWNX\r\n"), PROXY_V1 },
	{ "v1 empty", B("PROXY \r\n"), PROXY_V1 },
	{ "v1 TCP4 with v6", B("PROXY TCP4 ::1 ::1 1 2\r\n"), PROXY_V1 },
	{ "v1 TCP6 with v4", B("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"),
	    PROXY_V1 },
	{ "v1 leading zero in address",
	    B("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 three-part address", B("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
	    PROXY_V1 },
	{ "v1 address over 255", B("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
	    PROXY_V1 },
	{ "v1 host name", B("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 port over 65535", B("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
	    PROXY_V1 },
	{ "v1 port leading zero", B("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
	    PROXY_V1 },
	{ "v1 port sign", B("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), PROXY_V1 },
	{ "v1 port hex", B("PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n"), PROXY_V1 },
	{ "v1 port six digits", B("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n"),
	    PROXY_V1 },
	{ "v1 NUL", B("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"), PROXY_V1 },
	{ "v1 UTF-8", B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \xc3\xa9\r\n"),
	    PROXY_V1 },
	{ "v1 no CRLF in 107 bytes",
	    B("PROXY UNKNOWN "
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
	    PROXY_V1 },
	{ "v1 CRLF at 108",
	    B("PROXY UNKNOWN "
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
	    PROXY_V1 },
	{ "v2 bad signature", B("\r\n\r\n\0\r\nQUIT\r"), PROXY_V2 },
	{ "v2 version 1", B(V2SIG "\x11\x11\x00\x00"), PROXY_V2 },
	{ "v2 version 3", B(V2SIG "\x31\x11\x00\x00"), PROXY_V2 },
	{ "v2 command 2", B(V2SIG "\x22\x11\x00\x0c"), PROXY_V2 },
	{ "v2 UDP4", B(V2SIG "\x21\x12\x00\x0c"), PROXY_V2 },
	{ "v2 UDP6", B(V2SIG "\x21\x22\x00\x24"), PROXY_V2 },
	{ "v2 unix dgram", B(V2SIG "\x21\x32\x00\xd8"), PROXY_V2 },
	{ "v2 family 4", B(V2SIG "\x21\x41\x00\x00"), PROXY_V2 },
	{ "v2 INET, transport unspec", B(V2SIG "\x21\x10\x00\x0c"), PROXY_V2 },
	{ "v2 tcp4 block short",
	    B(V2SIG "\x21\x11\x00\x0b"
	            "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07"),
	    PROXY_V2 },
	{ "v2 tcp6 with a v4 block",
	    B(V2SIG "\x21\x21\x00\x0c"
	            "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07\xd0"),
	    PROXY_V2 },
	{ "v2 TLV cut short (2 bytes)",
	    B(V2SIG "\x21\x11\x00\x0e"
	            "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07\xd0"
	            "\x01\x00"),
	    PROXY_V2 },
	{ "v2 TLV longer than the block",
	    B(V2SIG "\x21\x11\x00\x10"
	            "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07\xd0"
	            "\x01\x00\x02x"),
	    PROXY_V2 },
	{ "v2 header over 1024 bytes", B(V2SIG "\x21\x11\x03\xf1"), PROXY_V2 },
	{ "v2 the largest length", B(V2SIG "\x21\x11\xff\xff"), PROXY_V2 },
};

static void
expect_addr(const struct sockaddr_storage *ss, int family, const char *addr,
    int port, const char *name)
{
	char got[INET6_ADDRSTRLEN];
	const void *a;
	int p;

	cr_assert_eq(ss->ss_family, family, "%s: family", name);
	if (family == AF_INET) {
		a = &((const struct sockaddr_in *)ss)->sin_addr;
		p = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else {
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		p = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
	cr_assert_not_null(inet_ntop(family, a, got, sizeof(got)));
	cr_expect_str_eq(got, addr, "%s", name);
	cr_expect_eq(p, port, "%s: port %d", name, p);
}

Test(proxy, valid_headers)
{
	struct proxy_hdr h;
	const char *why = NULL;
	size_t i;

	for (i = 0; i < sizeof(valid) / sizeof(*valid); i++) {
		const struct valid_case *v = &valid[i];
		int rc = proxy_parse(v->bytes, v->len, v->mode, &h, &why);

		cr_assert_eq(rc, XZ_OK, "%s: %d (%s)", v->name, rc,
		    rc == XZ_EPARSE ? why : "");
		cr_expect_eq(h.len, v->len, "%s: length %zu", v->name, h.len);
		cr_expect_eq(h.version, v->bytes[0] == 'P' ? 1 : 2, "%s",
		    v->name);
		cr_expect_eq(h.local, v->local, "%s: local", v->name);
		cr_assert_eq(h.family, v->family, "%s: family %d", v->name,
		    h.family);
		if (v->family != AF_UNSPEC) {
			expect_addr(&h.src, v->family, v->src, v->sport,
			    v->name);
			expect_addr(&h.dst, v->family, v->dst, v->dport,
			    v->name);
		}
	}
}

/* Every prefix of a valid header asks for more; none is refused. */
Test(proxy, prefixes_need_more)
{
	struct proxy_hdr h;
	size_t i, n;

	for (i = 0; i < sizeof(valid) / sizeof(*valid); i++)
		for (n = 0; n < valid[i].len; n++)
			cr_assert_eq(proxy_parse(valid[i].bytes, n,
			                 valid[i].mode, &h, NULL),
			    XZ_EAGAIN, "%s: %zu bytes", valid[i].name, n);
}

/* What follows the header (the ClientHello) is not the header's. */
Test(proxy, bytes_after_the_header_are_left)
{
	char buf[PROXY_MAX + 64];
	struct proxy_hdr h;
	size_t i;

	for (i = 0; i < sizeof(valid) / sizeof(*valid); i++) {
		memcpy(buf, valid[i].bytes, valid[i].len);
		memcpy(buf + valid[i].len, "\x16\x03\x01\r\n\x00", 6);
		cr_assert_eq(
		    proxy_parse(buf, valid[i].len + 6, valid[i].mode, &h, NULL),
		    XZ_OK, "%s", valid[i].name);
		cr_expect_eq(h.len, valid[i].len, "%s", valid[i].name);
	}
}

Test(proxy, invalid_headers)
{
	struct proxy_hdr h;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(invalid) / sizeof(*invalid); i++) {
		why = NULL;
		cr_expect_eq(proxy_parse(invalid[i].bytes, invalid[i].len,
		                 invalid[i].mode, &h, &why),
		    XZ_EPARSE, "%s", invalid[i].name);
		cr_expect_not_null(why, "%s: no reason", invalid[i].name);
		cr_expect_eq(h.family, AF_UNSPEC, "%s", invalid[i].name);
	}
}

/* Refused at the first byte that shows it, not after a timeout. */
Test(proxy, refused_early)
{
	struct proxy_hdr h;

	cr_expect_eq(proxy_parse("\x16", 1, PROXY_ANY, &h, NULL), XZ_EPARSE);
	cr_expect_eq(proxy_parse("PROXX", 5, PROXY_V1, &h, NULL), XZ_EPARSE);
	cr_expect_eq(proxy_parse("PROXY TCP4\x01", 11, PROXY_V1, &h, NULL),
	    XZ_EPARSE);
	cr_expect_eq(proxy_parse("\r\n\r\n\0x", 6, PROXY_V2, &h, NULL),
	    XZ_EPARSE);
	cr_expect_eq(proxy_parse(V2SIG "\x12", 13, PROXY_V2, &h, NULL),
	    XZ_EPARSE);
	cr_expect_eq(proxy_parse(V2SIG "\x21\x12", 14, PROXY_V2, &h, NULL),
	    XZ_EPARSE);
}

/* The largest header taken: PROXY_MAX bytes, of TLVs after the block. */
Test(proxy, largest_v2)
{
	unsigned char buf[PROXY_MAX];
	struct proxy_hdr h;
	size_t blen = PROXY_MAX - 16, tl = blen - 12 - 3;

	memcpy(buf, V2SIG "\x21\x11", 14);
	buf[14] = (unsigned char)(blen >> 8);
	buf[15] = (unsigned char)blen;
	memcpy(buf + 16, "\x0a\x00\x00\x01\x0a\x00\x00\x02\x03\xe8\x07\xd0",
	    12);
	buf[28] = 0xe0;
	buf[29] = (unsigned char)(tl >> 8);
	buf[30] = (unsigned char)tl;
	memset(buf + 31, 'x', tl);
	cr_assert_eq(proxy_parse(buf, sizeof(buf), PROXY_V2, &h, NULL), XZ_OK);
	cr_expect_eq(h.len, PROXY_MAX);
	buf[15]++; /* one more byte declared: over the limit */
	cr_expect_eq(proxy_parse(buf, sizeof(buf), PROXY_V2, &h, NULL),
	    XZ_EPARSE);
}

Test(proxy, modes)
{
	cr_expect_eq(proxy_mode_parse("v1"), PROXY_V1);
	cr_expect_eq(proxy_mode_parse("v2"), PROXY_V2);
	cr_expect_eq(proxy_mode_parse("any"), PROXY_ANY);
	cr_expect_eq(proxy_mode_parse("V2"), -1);
	cr_expect_eq(proxy_mode_parse(""), -1);
	cr_expect_eq(proxy_mode_parse("off"), -1);
}
