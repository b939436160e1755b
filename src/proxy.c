/*
 * proxy.c - the PROXY protocol header (HAProxy's, versions 1 and 2) that a
 * load balancer sends before the client's own bytes, so that the server
 * learns who the client is. A pure function over bytes: conn.c peeks at
 * the socket, asks proxy_parse(), and takes exactly the header's bytes,
 * leaving what follows (the ClientHello, often in the same segment) in
 * the socket for TLS.
 *
 * The rules are those of haproxy's doc/proxy-protocol.txt, strictly: a
 * header that is not exactly right is refused, never guessed at, since
 * it decides the address every limit and log trusts.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string.h>

#include "xz_private.h"

/* v2's signature: it cannot begin a v1 line, TLS or an HTTP request. */
static const unsigned char proxy_v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00,
	0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* v2's family and transport byte: the stream ones we take. */
#define PROXY_V2_UNSPEC 0x00
#define PROXY_V2_TCP4 0x11
#define PROXY_V2_TCP6 0x21
#define PROXY_V2_UNIX 0x31

static int
proxy_fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return XZ_EPARSE;
}

/* A v1 port: 0..65535 in decimal, no sign, no leading zero. */
static bool
proxy_v1_port(const char *s, in_port_t *port)
{
	size_t len = strlen(s), i;
	unsigned long v = 0;

	if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = htons((in_port_t)v);
	return true;
}

/*
 * One v1 address and port into ss. inet_pton is strict enough: four
 * decimal parts without leading zeros for IPv4 (glibc), RFC 4291 text
 * for IPv6.
 */
static bool
proxy_v1_addr(int family, const char *addr, const char *port,
    struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	if (family == AF_INET)
		return inet_pton(AF_INET, addr, &sin->sin_addr) == 1 &&
		       proxy_v1_port(port, &sin->sin_port);
	return inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1 &&
	       proxy_v1_port(port, &sin6->sin6_port);
}

/*
 * Splits line at single spaces into at most max fields; false when a
 * field is empty (two spaces, a leading or trailing one) or there are
 * more.
 */
static bool
proxy_v1_split(char *line, char **fields, size_t max, size_t *n)
{
	char *p = line, *sp;

	*n = 0;
	for (;;) {
		if (*n == max)
			return false;
		fields[(*n)++] = p;
		if ((sp = strchr(p, ' ')) == NULL)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	for (size_t i = 0; i < *n; i++)
		if (fields[i][0] == '\0')
			return false;
	return true;
}

/*
 * "PROXY TCP4 src dst sport dport\r\n" (TCP6 likewise), or
 * "PROXY UNKNOWN ...\r\n", at most 107 bytes with its CRLF.
 */
static int
proxy_v1(const unsigned char *buf, size_t len, struct proxy_hdr *h,
    const char **why)
{
	char line[PROXY_V1_MAX + 1], *f[7];
	size_t i, end = 0, n;
	int family;

	if (memcmp(buf, "PROXY ", len < 6 ? len : 6) != 0)
		return proxy_fail(why, "not a PROXY header");
	/* Printable ASCII up to CRLF: a bad byte is refused at once. */
	for (i = 0; i < len && i < PROXY_V1_MAX && end == 0; i++) {
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')
			end = i;
		else if (buf[i] == '\r' && i + 1 == len)
			break; /* its LF may come next */
		else if (buf[i] < 0x20 || buf[i] > 0x7e)
			return proxy_fail(why, "v1: a byte that is not "
			                       "printable ASCII before CRLF");
	}
	if (end == 0 && len >= PROXY_V1_MAX)
		return proxy_fail(why, "v1: no CRLF within 107 bytes");
	if (end == 0)
		return XZ_EAGAIN;
	if (end + 2 > PROXY_V1_MAX)
		return proxy_fail(why, "v1: no CRLF within 107 bytes");
	memcpy(line, buf, end);
	line[end] = '\0';
	h->len = end + 2;
	h->version = 1;
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 &&
	    (line[13] == '\0' || line[13] == ' '))
		return XZ_OK; /* the rest of the line is ignored (2.1) */
	if (!proxy_v1_split(line, f, 6, &n) || n != 6)
		return proxy_fail(why, "v1: not six fields, one space apart");
	if (strcmp(f[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return proxy_fail(why,
		    "v1: protocol not TCP4, TCP6 or UNKNOWN");
	if (!proxy_v1_addr(family, f[2], f[4], &h->src) ||
	    !proxy_v1_addr(family, f[3], f[5], &h->dst))
		return proxy_fail(why, "v1: a bad address or port");
	h->family = family;
	return XZ_OK;
}

/* v2's address block: IPv4 (12 bytes) or IPv6 (36), in network order. */
static void
proxy_v2_addrs(const unsigned char *b, int family, struct proxy_hdr *h)
{
	struct sockaddr_in *src = (struct sockaddr_in *)&h->src;
	struct sockaddr_in *dst = (struct sockaddr_in *)&h->dst;
	struct sockaddr_in6 *src6 = (struct sockaddr_in6 *)&h->src;
	struct sockaddr_in6 *dst6 = (struct sockaddr_in6 *)&h->dst;

	h->family = family;
	h->src.ss_family = h->dst.ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		memcpy(&src->sin_addr, b, 4);
		memcpy(&dst->sin_addr, b + 4, 4);
		memcpy(&src->sin_port, b + 8, 2);
		memcpy(&dst->sin_port, b + 10, 2);
		return;
	}
	memcpy(&src6->sin6_addr, b, 16);
	memcpy(&dst6->sin6_addr, b + 16, 16);
	memcpy(&src6->sin6_port, b + 32, 2);
	memcpy(&dst6->sin6_port, b + 34, 2);
}

/* The TLVs after the addresses: each must fit; their values are skipped. */
static int
proxy_v2_tlvs(const unsigned char *p, size_t len, const char **why)
{
	size_t tl;

	while (len > 0) {
		if (len < 3)
			return proxy_fail(why, "v2: a TLV cut short");
		tl = (size_t)p[1] << 8 | p[2];
		if (tl > len - 3)
			return proxy_fail(why, "v2: a TLV longer than the "
			                       "header");
		p += 3 + tl;
		len -= 3 + tl;
	}
	return XZ_OK;
}

/*
 * The 12-byte signature, version 2 and a command (LOCAL, PROXY), the
 * family and transport, the block's length (network order), the block:
 * addresses, then TLVs.
 */
static int
proxy_v2(const unsigned char *buf, size_t len, struct proxy_hdr *h,
    const char **why)
{
	size_t blen, alen;

	if (memcmp(buf, proxy_v2_sig, len < 12 ? len : 12) != 0)
		return proxy_fail(why, "not a PROXY v2 header");
	if (len > 12 && (buf[12] >> 4) != 2)
		return proxy_fail(why, "v2: version not 2");
	if (len > 12 && (buf[12] & 0xf) > 1)
		return proxy_fail(why, "v2: command not LOCAL or PROXY");
	/* LOCAL: the family and the block are discarded (2.2). */
	if (len > 13 && (buf[12] & 0xf) == 1 && buf[13] != PROXY_V2_UNSPEC &&
	    buf[13] != PROXY_V2_TCP4 && buf[13] != PROXY_V2_TCP6 &&
	    buf[13] != PROXY_V2_UNIX)
		return proxy_fail(why, "v2: not a stream over IPv4, IPv6, "
		                       "a Unix socket or UNSPEC");
	if (len < 16)
		return XZ_EAGAIN;
	blen = (size_t)buf[14] << 8 | buf[15];
	if (16 + blen > PROXY_MAX)
		return proxy_fail(why, "v2: header over 1024 bytes");
	if (len < 16 + blen)
		return XZ_EAGAIN;
	h->len = 16 + blen;
	h->version = 2;
	if ((buf[12] & 0xf) == 0) {
		h->local = true;
		return XZ_OK;
	}
	switch (buf[13]) {
	case PROXY_V2_TCP4:
		alen = 12;
		break;
	case PROXY_V2_TCP6:
		alen = 36;
		break;
	case PROXY_V2_UNIX:
		alen = 216;
		break;
	default:
		alen = 0;
		break;
	}
	if (blen < alen)
		return proxy_fail(why, "v2: address block too short");
	if (proxy_v2_tlvs(buf + 16 + alen, blen - alen, why) != XZ_OK)
		return XZ_EPARSE;
	/* UNSPEC and Unix sockets name no client address we can use. */
	if (buf[13] == PROXY_V2_TCP4 || buf[13] == PROXY_V2_TCP6)
		proxy_v2_addrs(buf + 16,
		    buf[13] == PROXY_V2_TCP4 ? AF_INET : AF_INET6, h);
	return XZ_OK;
}

int
proxy_parse(const void *data, size_t len, enum proxy_mode mode,
    struct proxy_hdr *h, const char **why)
{
	const unsigned char *buf = data;
	int rc;

	memset(h, 0, sizeof(*h));
	h->family = AF_UNSPEC;
	if (len == 0)
		return XZ_EAGAIN;
	/* any: v1 begins with 'P', v2 with CR; TLS with 0x16. */
	if (mode == PROXY_ANY)
		mode = buf[0] == proxy_v2_sig[0] ? PROXY_V2 : PROXY_V1;
	if (mode == PROXY_V1)
		rc = proxy_v1(buf, len, h, why);
	else if (mode == PROXY_V2)
		rc = proxy_v2(buf, len, h, why);
	else
		rc = proxy_fail(why, "no PROXY header expected");
	if (rc != XZ_OK) {
		memset(h, 0, sizeof(*h));
		h->family = AF_UNSPEC;
	}
	return rc;
}

int
proxy_mode_parse(const char *s)
{
	if (strcmp(s, "v1") == 0)
		return PROXY_V1;
	if (strcmp(s, "v2") == 0)
		return PROXY_V2;
	if (strcmp(s, "any") == 0)
		return PROXY_ANY;
	return -1;
}
