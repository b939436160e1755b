/*
 * scgi_pairs.h - for the unit tests: a strict decoder of the SCGI request
 * header, the judge of our encoder in test_cgienv.c and test_scgi.c.
 */
#ifndef SCGI_PAIRS_H
#define SCGI_PAIRS_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/*
 * A strict SCGI header decoder: "len:" with len in decimal without
 * leading zeros, exactly len bytes of "name\0value\0" pairs, ",". Names
 * non-empty and unique, values non-empty (our rule for SCGI), nothing
 * left over. Fails the test on any violation.
 */
struct pairs {
	char *names[512];
	char *values[512];
	size_t n;
	size_t total; /* bytes of the whole netstring */
};

static inline void
scgi_decode(const char *buf, size_t len, struct pairs *p)
{
	size_t i = 0, blen = 0, end, nl, vl, j;
	const char *nul;

	memset(p, 0, sizeof(*p));
	cr_assert_gt(len, 0);
	cr_assert(buf[0] >= '0' && buf[0] <= '9');
	cr_assert(buf[0] != '0' || (len > 1 && buf[1] == ':'),
	    "leading zero in length");
	while (i < len && buf[i] >= '0' && buf[i] <= '9') {
		blen = blen * 10 + (size_t)(buf[i] - '0');
		cr_assert_lt(i, 10, "length too long");
		i++;
	}
	cr_assert_lt(i, len);
	cr_assert_eq(buf[i], ':');
	i++;
	end = i + blen;
	cr_assert_lt(end, len, "length prefix %zu past the data", blen);
	cr_assert_eq(buf[end], ',', "no comma after %zu bytes", blen);
	cr_assert_eq(end + 1, len, "bytes after the netstring");
	p->total = len;
	while (i < end) {
		nul = memchr(buf + i, '\0', end - i);
		cr_assert_not_null(nul, "name without NUL");
		nl = (size_t)(nul - (buf + i));
		cr_assert_gt(nl, 0, "empty name");
		cr_assert_lt(p->n, 512);
		p->names[p->n] = strndup(buf + i, nl);
		i += nl + 1;
		cr_assert_lt(i, end, "name without value");
		nul = memchr(buf + i, '\0', end - i);
		cr_assert_not_null(nul, "value without NUL");
		vl = (size_t)(nul - (buf + i));
		cr_assert_gt(vl, 0, "empty value for %s", p->names[p->n]);
		p->values[p->n] = strndup(buf + i, vl);
		i += vl + 1;
		for (j = 0; j < p->n; j++)
			cr_assert_str_neq(p->names[j], p->names[p->n],
			    "duplicate %s", p->names[j]);
		p->n++;
	}
	cr_assert_eq(i, end);
	cr_assert_geq(p->n, 2);
	cr_assert_str_eq(p->names[0], "CONTENT_LENGTH");
	/* Decimal, no leading zero: 0 for Gemini, the size for Titan. */
	cr_assert_eq(strspn(p->values[0], "0123456789"), strlen(p->values[0]));
	cr_assert(p->values[0][0] != '0' || p->values[0][1] == '\0');
	cr_assert_str_eq(p->names[1], "SCGI");
	cr_assert_str_eq(p->values[1], "1");
}

static inline const char *
pairs_get(const struct pairs *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			return p->values[i];
	return NULL;
}

static inline void
pairs_free(struct pairs *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->names[i]);
		free(p->values[i]);
	}
}

#endif /* SCGI_PAIRS_H */
