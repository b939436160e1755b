/*
 * fuzz_cert.c - the two readers of client-certificate bytes that are ours,
 * not GnuTLS's: cert_validity (the DER walk to the validity dates) and
 * cert_text_escape (certificate text made safe to show). The dates, when
 * found, must have the one shape; the escaped text must hold no control
 * byte and no byte outside UTF-8, and, for text without a backslash of its
 * own, must decode (RFC 4514 hexpairs) back to the input exactly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xz_private.h"

/* 2026-01-02T03:04:05Z: digits where digits go, the rest as shown. */
static void
check_date(const char *d)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	size_t i;

	check(strlen(d) == 20);
	for (i = 0; i < 20; i++)
		check(shape[i] == 'd' ? d[i] >= '0' && d[i] <= '9' :
		                        d[i] == shape[i]);
}

/* Well-formed UTF-8 (RFC 3629) with no C0, DEL or C1 control. */
static void
check_shown(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;

	while (i < len) {
		if (s[i] < 0x80) {
			check(s[i] >= 0x20 && s[i] != 0x7f);
			i++;
			continue;
		}
		n = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
		check(s[i] >= 0xc2 && s[i] <= 0xf4 && i + n <= len);
		check(!(s[i] == 0xc2 && s[i + 1] < 0xa0)); /* C1 */
		for (k = 1; k < n; k++)
			check((s[i + k] & 0xc0) == 0x80);
		i += n;
	}
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 4514's unescaping: \XX is that byte, \c is c. */
static size_t
unescape(const char *s, unsigned char *out)
{
	size_t i = 0, o = 0;

	while (s[i] != '\0') {
		if (s[i] == '\\' && hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			out[o++] =
			    (unsigned char)(hexval((unsigned char)s[i + 1])
			                        << 4 |
			                    hexval((unsigned char)s[i + 2]));
			i += 3;
		} else if (s[i] == '\\') {
			check(s[i + 1] != '\0');
			out[o++] = (unsigned char)s[i + 1];
			i += 2;
		} else {
			out[o++] = (unsigned char)s[i++];
		}
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char nb[21], na[21], *esc;
	unsigned char *back;
	size_t n;

	if (cert_validity(data, size, nb, na) == 0) {
		check_date(nb);
		check_date(na);
	}
	if ((esc = cert_text_escape((const char *)data, size)) == NULL)
		return 0;
	n = strlen(esc);
	check(n <= 3 * size);
	check_shown((const unsigned char *)esc, n);
	if (memchr(data, '\\', size) == NULL &&
	    (back = malloc(size + 1)) != NULL) {
		check(unescape(esc, back) == size);
		check(memcmp(back, data, size) == 0);
		free(back);
	}
	free(esc);
	return 0;
}
