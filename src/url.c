/*
 * url.c - the Gemini request URL.
 *
 * This is the one place that decides whether a request line is a URL we
 * will look at, and the one place that decodes its path. It owns struct
 * xz_url and all it points to. Everything after it (dispatch, mounts,
 * static files, CGI and SCGI) trusts the path it hands out: percent-decoded
 * exactly once, without NULs, dot segments or empty segments, never above
 * "/". Whether the scheme and host are ours is not decided here (the
 * server's 53): only their syntax is.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

/* Every 59 goes through here, so that each one has a reason to log. */
static int
url_reject(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return 59;
}

/* ASCII classes by hand: ctype.h would follow the locale. */
static bool
url_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
url_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
url_hex(unsigned char c)
{
	if (url_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte that "%XX" at s (left bytes remaining) stands for, or -1. */
static int
url_escape_value(const char *s, size_t left)
{
	int hi, lo;

	if (left < 3 || (hi = url_hex(s[1])) < 0 || (lo = url_hex(s[2])) < 0)
		return -1;
	return hi << 4 | lo;
}

/* True when every '%' of the NUL-terminated s starts a "%XX". */
static bool
url_escapes_ok(const char *s)
{
	size_t len = strlen(s), i;

	for (i = 0; i < len; i++)
		if (s[i] == '%' && url_escape_value(s + i, len - i) < 0)
			return false;
	return true;
}

/* Lower-cases ASCII only: UTF-8 bytes of an IRI host pass through. */
static char *
url_strndup_lower(const char *s, size_t n)
{
	char *d;
	size_t i;

	if ((d = strndup(s, n)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (d[i] >= 'A' && d[i] <= 'Z')
			d[i] += 'a' - 'A';
	return d;
}

/*
 * The length of the UTF-8 sequence at s (n bytes remaining), or 0 when it
 * is not one. Bounding the second byte is what refuses overlong forms,
 * surrogates and code points over U+10FFFF (RFC 3629, 4).
 */
size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * Byte rules for the whole line. Refusing every byte under 0x21 also
 * refuses an inner NUL, so the line can be a C string from here on. A
 * fragment is the client's business alone (Gemini forbids sending one).
 */
static int
url_check_bytes(const char *line, size_t len, const char **why)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t i, n;

	for (i = 0; i < len; i += n) {
		if (s[i] < 0x21 || s[i] == 0x7f)
			return url_reject(why,
			    "URL has a control byte or space");
		if (s[i] == '#')
			return url_reject(why, "URL has a fragment");
		if ((n = utf8_len(s + i, len - i)) == 0)
			return url_reject(why, "URL is not UTF-8");
	}
	return 0;
}

/* RFC 3986, 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static bool
url_scheme_char(unsigned char c)
{
	return url_alpha(c) || url_digit(c) || c == '+' || c == '-' || c == '.';
}

/* Takes "scheme://" off *p: Gemini requests are absolute URLs. */
static int
url_parse_scheme(struct xz_url *u, const char **p, const char **why)
{
	const char *s = *p;
	size_t n = 0;

	while (url_scheme_char(s[n]))
		n++;
	if (n == 0 || s[n] != ':')
		return url_reject(why, "relative URL");
	if (!url_alpha(s[0]))
		return url_reject(why, "URL has a bad scheme");
	if (strncmp(s + n, "://", 3) != 0)
		return url_reject(why, "URL has no authority");
	if ((u->scheme = url_strndup_lower(s, n)) == NULL)
		return XZ_ENOMEM;
	*p = s + n + 3;
	return 0;
}

/*
 * RFC 3986, 3.2.2: unreserved / sub-delims. Non-ASCII is let through for
 * IRI hosts (RFC 3987); '%' is not, since a percent-encoded name could
 * never match a configured one.
 */
static bool
url_host_char(unsigned char c)
{
	return url_alpha(c) || url_digit(c) || c >= 0x80 ||
	       (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL);
}

/* A reg-name or IPv4address (the second is a case of the first). */
static int
url_parse_regname(struct xz_url *u, const char *s, const char *end,
    const char **rest, const char **why)
{
	const char *e, *q;

	if ((e = memchr(s, ':', (size_t)(end - s))) == NULL)
		e = end;
	if (e == s)
		return url_reject(why, "URL has no host");
	for (q = s; q < e; q++)
		if (!url_host_char((unsigned char)*q))
			return url_reject(why, "URL has a bad host");
	if ((u->host = url_strndup_lower(s, (size_t)(e - s))) == NULL)
		return XZ_ENOMEM;
	*rest = e;
	return 0;
}

/*
 * An IP-literal, stored without its brackets. IPv6address only: IPvFuture
 * and zone IDs (RFC 6874) name nothing a server listens on.
 */
static int
url_parse_ipv6(struct xz_url *u, const char *s, const char *end,
    const char **rest, const char **why)
{
	const char *rb = memchr(s, ']', (size_t)(end - s));
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr addr;
	size_t n;

	if (rb == NULL || (rb + 1 != end && rb[1] != ':'))
		return url_reject(why, "URL has a bad IPv6 literal");
	if ((n = (size_t)(rb - s - 1)) == 0 || n >= sizeof(buf))
		return url_reject(why, "URL has a bad IPv6 literal");
	memcpy(buf, s + 1, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET6, buf, &addr) != 1)
		return url_reject(why, "URL has a bad IPv6 literal");
	if ((u->host = url_strndup_lower(buf, n)) == NULL)
		return XZ_ENOMEM;
	*rest = rb + 1;
	return 0;
}

/*
 * The port between s (the end of the host: end or a ':') and end. Returns
 * -1 when there is none, "host:" included (RFC 3986, 3.2.3), and 0 when
 * it is bad; port 0 is refused too, as no client can have meant it.
 */
static int
url_parse_port(const char *s, const char *end)
{
	long port = 0;

	if (s == end || ++s == end)
		return -1;
	for (; s < end; s++) {
		if (!url_digit((unsigned char)*s))
			return 0;
		if ((port = port * 10 + (*s - '0')) > 65535)
			return 0;
	}
	return (int)port;
}

/*
 * The authority runs to the first '/' or '?' ('#' is refused already).
 * Userinfo is refused: Gemini forbids it, and it would put credentials in
 * logs and CGI variables.
 */
static int
url_parse_authority(struct xz_url *u, const char **p, const char **why)
{
	const char *s = *p, *end = s + strcspn(s, "/?"), *rest;
	int rc;

	if (memchr(s, '@', (size_t)(end - s)) != NULL)
		return url_reject(why, "URL has userinfo");
	if (*s == '[')
		rc = url_parse_ipv6(u, s, end, &rest, why);
	else
		rc = url_parse_regname(u, s, end, &rest, why);
	if (rc != 0)
		return rc;
	if ((u->port = url_parse_port(rest, end)) == 0)
		return url_reject(why, "URL has a bad port");
	*p = end;
	return 0;
}

/*
 * Decoding comes before dot removal, so that "%2e%2e" is a ".." like any
 * other and no later stage ever meets one. A decoded "%2F" becomes a
 * separator as well: from here on the path is a name for the handlers,
 * not a piece of URL. Slashes are merged last, so that no handler meets
 * an empty segment.
 */
/*
 * One decoded Titan parameter value: a new string in *out (not NULL on
 * success), refused when it holds a NUL or a bad escape.
 */
static int
url_titan_value(const char *v, size_t len, char **out, const char **why)
{
	size_t dlen;
	int rc;

	if ((rc = url_decode(v, len, out, &dlen)) == XZ_EPARSE)
		return url_reject(why, "Titan parameter has a bad escape");
	if (rc != XZ_OK)
		return rc;
	if (strlen(*out) != dlen)
		return url_reject(why, "Titan parameter has %00");
	return 0;
}

/* "size=N": decimal digits only, below 2^53 (any client's integer). */
static int
url_titan_size(struct xz_url *u, const char *v, size_t len, const char **why)
{
	size_t i;

	u->size = 0;
	if (len == 0 || len > 16)
		return url_reject(why, "Titan size is not a number");
	for (i = 0; i < len; i++) {
		if (!url_digit(v[i]))
			return url_reject(why, "Titan size is not a number");
		u->size = u->size * 10 + (size_t)(v[i] - '0');
	}
	if (u->size >= (size_t)1 << 53)
		return url_reject(why, "Titan size is not a number");
	return 0;
}

/*
 * The Titan parameters after the path: ";size=N;mime=T;token=X" in any
 * order (the spec's), size required, mime "text/gemini" when absent;
 * parameters we do not know are ignored, as the spec lets servers do.
 */
static int
url_parse_titan(struct xz_url *u, const char *s, size_t n, const char **why)
{
	const char *end = s + n, *k, *eq, *v;
	bool seen_size = false;
	int rc = 0;

	while (s < end && rc == 0) {
		k = ++s; /* past ';' */
		s = memchr(k, ';', (size_t)(end - k));
		if (s == NULL)
			s = end;
		eq = memchr(k, '=', (size_t)(s - k));
		v = eq != NULL ? eq + 1 : s;
		if (eq == NULL)
			eq = s;
#define URL_KEY(name)                                                          \
	((size_t)(eq - k) == strlen(name) && !memcmp(k, name, strlen(name)))
		if (URL_KEY("size")) {
			if (seen_size)
				return url_reject(why,
				    "Titan size given twice");
			seen_size = true;
			rc = url_titan_size(u, v, (size_t)(s - v), why);
		} else if (URL_KEY("mime") || URL_KEY("token")) {
			char **dst = k[0] == 'm' ? &u->mime : &u->token;

			if (*dst != NULL)
				return url_reject(why,
				    "Titan parameter given twice");
			rc = url_titan_value(v, (size_t)(s - v), dst, why);
		}
#undef URL_KEY
	}
	if (rc != 0)
		return rc;
	if (!seen_size)
		return url_reject(why, "Titan upload without a size");
	if (u->mime == NULL || u->mime[0] == '\0') {
		free(u->mime);
		if ((u->mime = strdup("text/gemini")) == NULL)
			return XZ_ENOMEM;
	}
	return 0;
}

static int
url_parse_path(struct xz_url *u, const char **p, const char **why)
{
	const char *s = *p;
	size_t n = strcspn(s, "?"), dlen, plen = n;
	int rc;

	if (strcmp(u->scheme, "titan") == 0) {
		u->titan = true;
		plen = strcspn(s, ";?");
		if ((rc = url_parse_titan(u, s + plen, n - plen, why)) != 0)
			return rc;
	}
	n = plen;
	if ((rc = url_decode(s, n, &u->path, &dlen)) == XZ_EPARSE)
		return url_reject(why, "URL has a bad percent escape");
	if (rc != XZ_OK)
		return rc;
	if (strlen(u->path) != dlen) /* no CGI variable can hold a NUL */
		return url_reject(why, "URL path has %00");
	if (url_remove_dots(u->path) != XZ_OK)
		return url_reject(why, "URL path climbs above the root");
	url_merge_slashes(u->path);
	*p = s + strcspn(s, "?");
	return 0;
}

/* The query stays encoded (QUERY_STRING is raw) but must decode. */
static int
url_parse_query(struct xz_url *u, const char *s, const char **why)
{
	if (*s++ != '?')
		return 0;
	if (!url_escapes_ok(s))
		return url_reject(why, "URL has a bad percent escape");
	if ((u->query = strdup(s)) == NULL)
		return XZ_ENOMEM;
	return 0;
}

int
url_parse(struct xz_url *u, const char *line, size_t len, const char **why)
{
	const char *p;
	int rc;

	memset(u, 0, sizeof(*u));
	if (len == 0)
		return url_reject(why, "empty URL");
	if (len > XZ_MAX_URL)
		return url_reject(why, "URL too long");
	if ((rc = url_check_bytes(line, len, why)) != 0)
		return rc;
	if ((u->raw = strndup(line, len)) == NULL)
		rc = XZ_ENOMEM;
	p = u->raw;
	if (rc == 0 && (rc = url_parse_scheme(u, &p, why)) == 0 &&
	    (rc = url_parse_authority(u, &p, why)) == 0 &&
	    (rc = url_parse_path(u, &p, why)) == 0)
		rc = url_parse_query(u, p, why);
	if (rc == XZ_ENOMEM && why != NULL)
		*why = "out of memory";
	if (rc != 0)
		url_clear(u);
	return rc;
}

void
url_clear(struct xz_url *u)
{
	free(u->raw);
	free(u->scheme);
	free(u->host);
	free(u->path);
	free(u->query);
	free(u->mime);
	free(u->token);
	memset(u, 0, sizeof(*u));
}

int
url_decode(const char *in, size_t len, char **out, size_t *outlen)
{
	char *d;
	size_t i, n = 0;
	int c;

	*out = NULL;
	if ((d = malloc(len + 1)) == NULL)
		return XZ_ENOMEM;
	for (i = 0; i < len; i++) {
		if (in[i] != '%') {
			d[n++] = in[i];
			continue;
		}
		if ((c = url_escape_value(in + i, len - i)) < 0) {
			free(d);
			return XZ_EPARSE;
		}
		d[n++] = (char)c;
		i += 2;
	}
	d[n] = '\0';
	*out = d;
	*outlen = n;
	return XZ_OK;
}

/*
 * RFC 3986, 5.2.4, a segment at a time. The output never outgrows the
 * input read so far, so it is written over the path. Where the RFC drops
 * a ".." at the root we refuse it: such a request was crafted to escape,
 * and serving "/" instead would hide that.
 */
int
url_remove_dots(char *path)
{
	size_t r = 0, w = 0, n;
	const char *seg;

	if (path[0] != '/')
		return path[0] == '\0' ? XZ_OK : XZ_EPARSE;
	while (path[r] == '/') {
		seg = path + r + 1;
		n = strcspn(seg, "/");
		r += 1 + n;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			if (w == 0)
				return XZ_EPARSE;
			while (path[--w] != '/') /* output starts with '/' */
				;
		} else if (n != 1 || seg[0] != '.') {
			memmove(path + w, seg - 1, 1 + n);
			w += 1 + n;
			continue;
		}
		if (path[r] == '\0') /* "/a/." and "/a/b/.." name "/a/" */
			path[w++] = '/';
	}
	path[w] = '\0';
	return XZ_OK;
}

/*
 * "//a.txt" is "/a.txt", as gmid, Molly Brown (Go's path cleaning) and
 * nginx (merge_slashes) have it. RFC 3986 keeps empty segments, but no
 * handler gives them a meaning: a file name cannot be empty, and left in,
 * "//a.txt" reached openat2 as an absolute path (a 51 and a warning) and
 * "//private" would have slipped past a mount or a prefix check on
 * "/private". Runs after url_remove_dots, which stays RFC 3986's own.
 */
void
url_merge_slashes(char *path)
{
	size_t r, w = 0;

	for (r = 0; path[r] != '\0'; r++)
		if (path[r] != '/' || w == 0 || path[w - 1] != '/')
			path[w++] = path[r];
	path[w] = '\0';
}
