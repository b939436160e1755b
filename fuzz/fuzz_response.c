/*
 * fuzz_response.c - libFuzzer target for response_parse_backend(), the
 * parser of the headers our SCGI and CGI backends write.
 *
 * Besides memory errors, it checks the parser's promises: on XZ_OK the
 * header lies within the input and makes a valid Gemini header; each
 * prefix of an accepted header asks for more bytes rather than failing;
 * XZ_EPARSE always comes with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xz_private.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *why;
	size_t hdrlen, hl2, n;
	char *meta, *meta2;
	int rc, status, st2;

	rc = response_parse_backend(buf, size, &status, &meta, &hdrlen, &why);
	check(rc == XZ_OK || rc == XZ_EAGAIN || rc == XZ_EPARSE ||
	      rc == XZ_ENOMEM);
	if (rc == XZ_EPARSE)
		check(why != NULL && meta == NULL);
	if (rc == XZ_EAGAIN)
		check(meta == NULL && size < XZ_MAX_BACKEND_HEADER);
	if (rc != XZ_OK)
		return 0;
	check(hdrlen > 0 && hdrlen <= size && hdrlen <= XZ_MAX_BACKEND_HEADER);
	check(meta != NULL);
	check(response_valid(status, meta, strlen(meta)));

	/* The header alone parses the same: the body is never looked at. */
	rc = response_parse_backend(buf, hdrlen, &st2, &meta2, &hl2, &why);
	check(rc == XZ_OK && st2 == status && hl2 == hdrlen &&
	      strcmp(meta, meta2) == 0);
	free(meta2);

	/* Each prefix of it waits for more (a few, to stay fast). */
	for (n = 0; n < hdrlen; n += 1 + n / 4) {
		rc = response_parse_backend(buf, n, &st2, &meta2, &hl2, &why);
		check(rc == XZ_EAGAIN);
	}
	free(meta);
	return 0;
}
