/*
 * response.c - Gemini response headers: what makes one valid, and how a
 * backend's answer (SCGI or CGI) becomes one.
 *
 * A backend's bad answer is never passed through to the client: whatever
 * shape it arrives in, the status and meta that come out of
 * response_parse_backend() satisfy response_valid(), or the caller gets
 * XZ_EPARSE (which the handlers turn into 42/43). The parser works on the
 * bytes received so far, so that a handler can call it again after every
 * read until it stops answering XZ_EAGAIN; it never reads past the end of
 * the header, so a binary body is never looked at.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xz_private.h"

/*
 * Why status and meta would not make a valid header, or NULL when they
 * do. Gemini: the status is 10..69; the meta is at most 1024 bytes of
 * UTF-8 without control bytes (CR and LF would end the header early; a
 * tab or an escape has no business in a MIME type, URL or prompt); only
 * a prompt (1x) or a redirect (3x) cannot do without one.
 */
static const char *
response_invalid(int status, const char *meta, size_t metalen)
{
	const unsigned char *m = (const unsigned char *)meta;
	size_t i, n;

	if (status < 10 || status > 69)
		return "status out of range 10..69";
	if (metalen > XZ_MAX_META)
		return "meta over 1024 bytes";
	if (metalen == 0 && (status / 10 == 1 || status / 10 == 3))
		return "empty meta for a prompt or redirect";
	for (i = 0; i < metalen; i += n) {
		if (m[i] < 0x20 || m[i] == 0x7f)
			return "control byte in meta";
		if ((n = utf8_len(m + i, metalen - i)) == 0)
			return "meta is not UTF-8";
	}
	return NULL;
}

bool
response_valid(int status, const char *meta, size_t metalen)
{
	if (meta == NULL && metalen > 0)
		return false;
	return response_invalid(status, meta, metalen) == NULL;
}

static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* A header being parsed: the bytes so far and where we are in them. */
struct hdr {
	const char *buf;
	size_t len; /* bytes of buf to look at: at most XZ_MAX_BACKEND_HEADER */
	bool more;  /* more bytes may come within the limit */
	size_t pos; /* the start of the next line */
	const char *why;
};

/*
 * Takes the next line of h: its bytes (without CRLF or LF) in *line and
 * *linelen, and moves past its end. XZ_EAGAIN when its end has not come
 * yet, XZ_EPARSE for a NUL or a CR that is not part of CRLF, or when the
 * line cannot end within XZ_MAX_BACKEND_HEADER bytes.
 */
static int
hdr_line(struct hdr *h, const char **line, size_t *linelen)
{
	size_t i;

	for (i = h->pos; i < h->len; i++) {
		if (h->buf[i] == '\0') {
			h->why = "NUL byte in header";
			return XZ_EPARSE;
		}
		if (h->buf[i] == '\n') {
			*line = h->buf + h->pos;
			*linelen = i - h->pos;
			h->pos = i + 1;
			return XZ_OK;
		}
		if (h->buf[i] != '\r')
			continue;
		if (i + 1 == h->len)
			break; /* the LF may still come */
		if (h->buf[i + 1] != '\n') {
			h->why = "CR without LF in header";
			return XZ_EPARSE;
		}
		*line = h->buf + h->pos;
		*linelen = i - h->pos;
		h->pos = i + 2;
		return XZ_OK;
	}
	if (h->more)
		return XZ_EAGAIN;
	h->why = "header over 8192 bytes without its end";
	return XZ_EPARSE;
}

/*
 * Parses "DD META" or "DD" (meta empty): the status line of a Gemini
 * answer, the rest of an NPH status line, or the value of a Status:
 * header. One space separates the two; the meta is taken as written, so
 * a second space would begin it, and that is refused rather than sent.
 */
static int
parse_status(struct hdr *h, const char *s, size_t len, int *status,
    const char **meta, size_t *metalen)
{
	const char *why;

	if (len < 2 || !is_digit(s[0]) || !is_digit(s[1]) ||
	    (len > 2 && s[2] != ' ')) {
		h->why = "status is not two digits";
		return XZ_EPARSE;
	}
	*status = (s[0] - '0') * 10 + (s[1] - '0');
	*meta = len > 2 ? s + 3 : s + 2;
	*metalen = len > 2 ? len - 3 : 0;
	if (*metalen > 0 && **meta == ' ') {
		h->why = "more than one space after the status";
		return XZ_EPARSE;
	}
	if ((why = response_invalid(*status, *meta, *metalen)) != NULL) {
		h->why = why;
		return XZ_EPARSE;
	}
	return XZ_OK;
}

/*
 * Splits a CGI header line "Name: value" (RFC 3875, 6.3): the name is a
 * run of visible ASCII without a colon; the value loses the blanks around
 * it.
 */
static int
parse_field(struct hdr *h, const char *line, size_t len, const char **name,
    size_t *namelen, const char **value, size_t *valuelen)
{
	const char *colon;
	size_t i;

	if ((colon = memchr(line, ':', len)) == NULL) {
		h->why = "header line without a colon";
		return XZ_EPARSE;
	}
	*name = line;
	*namelen = (size_t)(colon - line);
	if (*namelen == 0) {
		h->why = "empty header name";
		return XZ_EPARSE;
	}
	for (i = 0; i < *namelen; i++)
		if (line[i] <= 0x20 || line[i] >= 0x7f) {
			h->why = "bad byte in header name";
			return XZ_EPARSE;
		}
	*value = colon + 1;
	*valuelen = len - *namelen - 1;
	while (*valuelen > 0 && is_blank(**value)) {
		(*value)++;
		(*valuelen)--;
	}
	while (*valuelen > 0 && is_blank((*value)[*valuelen - 1]))
		(*valuelen)--;
	return XZ_OK;
}

static bool
name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/*
 * Reads header lines up to the empty line that ends the block. With cgi,
 * Status: and Content-Type: are looked for; every other header (and every
 * header of an NPH answer) is checked for form and ignored.
 */
static int
parse_fields(struct hdr *h, bool cgi, const char **st, size_t *stlen,
    const char **ct, size_t *ctlen)
{
	const char *line, *name, *value;
	size_t linelen, namelen, valuelen;
	int rc;

	for (;;) {
		if ((rc = hdr_line(h, &line, &linelen)) != XZ_OK)
			return rc;
		if (linelen == 0)
			return XZ_OK;
		if ((rc = parse_field(h, line, linelen, &name, &namelen, &value,
		         &valuelen)) != XZ_OK)
			return rc;
		if (!cgi)
			continue;
		if (name_is(name, namelen, "Status")) {
			if (*st != NULL) {
				h->why = "more than one Status header";
				return XZ_EPARSE;
			}
			*st = value;
			*stlen = valuelen;
		} else if (name_is(name, namelen, "Content-Type")) {
			if (*ct != NULL) {
				h->why = "more than one Content-Type header";
				return XZ_EPARSE;
			}
			*ct = value;
			*ctlen = valuelen;
		}
	}
}

/*
 * The CGI shape. Status: gives the status and meta ("Status: 20
 * text/gemini"). Without it, a Content-Type: alone is a document response
 * (RFC 3875, 6.2.1 and 6.3.3), which is Gemini's 20 with that type as
 * meta. A "Status: 2x" without meta takes the Content-Type's value when
 * there is one, as it would be in an HTTP answer.
 */
static int
parse_cgi(struct hdr *h, int *status, const char **meta, size_t *metalen)
{
	const char *st = NULL, *ct = NULL, *why;
	size_t stlen = 0, ctlen = 0;
	int rc;

	if ((rc = parse_fields(h, true, &st, &stlen, &ct, &ctlen)) != XZ_OK)
		return rc;
	if (st != NULL) {
		if ((rc = parse_status(h, st, stlen, status, meta, metalen)) !=
		    XZ_OK)
			return rc;
		if (*metalen > 0 || *status / 10 != 2 || ct == NULL)
			return XZ_OK;
	} else if (ct != NULL)
		*status = 20;
	else {
		h->why = "no Status or Content-Type header";
		return XZ_EPARSE;
	}
	*meta = ct;
	*metalen = ctlen;
	if ((why = response_invalid(*status, *meta, *metalen)) != NULL) {
		h->why = why;
		return XZ_EPARSE;
	}
	return XZ_OK;
}

int
response_parse_backend(const char *buf, size_t len, int *status, char **meta,
    size_t *hdrlen, const char **why)
{
	static const char nph[] = "GEMINI ";
	const size_t nphlen = sizeof(nph) - 1;
	struct hdr h = { .buf = buf, .len = len, .more = true };
	const char *line, *m = NULL;
	size_t linelen, mlen = 0;
	int rc;

	*meta = NULL;
	*status = 0;
	*hdrlen = 0;
	if (why != NULL)
		*why = NULL;
	if (h.len >= XZ_MAX_BACKEND_HEADER) {
		h.len = XZ_MAX_BACKEND_HEADER;
		h.more = false;
	}

	/*
	 * The shape is told by the first bytes: a digit begins a Gemini
	 * line, "GEMINI " an NPH status line, anything else a CGI header.
	 * A lone digit is taken for a Gemini line, so that "2 text/gemini"
	 * is called a bad status rather than a bad CGI header.
	 */
	if (len == 0)
		return XZ_EAGAIN;
	if (is_digit(buf[0])) {
		if ((rc = hdr_line(&h, &line, &linelen)) == XZ_OK)
			rc = parse_status(&h, line, linelen, status, &m, &mlen);
	} else if (memcmp(buf, nph, len < nphlen ? len : nphlen) == 0) {
		if (len < nphlen)
			return XZ_EAGAIN;
		if ((rc = hdr_line(&h, &line, &linelen)) == XZ_OK)
			rc = parse_status(&h, line + nphlen, linelen - nphlen,
			    status, &m, &mlen);
		if (rc == XZ_OK)
			rc = parse_fields(&h, false, NULL, NULL, NULL, NULL);
	} else
		rc = parse_cgi(&h, status, &m, &mlen);

	if (rc == XZ_EPARSE && why != NULL)
		*why = h.why;
	if (rc != XZ_OK) {
		*status = 0;
		return rc;
	}
	if ((*meta = malloc(mlen + 1)) == NULL) {
		*status = 0;
		return XZ_ENOMEM;
	}
	memcpy(*meta, m, mlen);
	(*meta)[mlen] = '\0';
	*hdrlen = h.pos;
	return XZ_OK;
}
