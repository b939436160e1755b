/*
 * fuzz_keyshare.c - libFuzzer target for tls_key_share_pick(), which reads
 * the key_share extension of a client's ClientHello before GnuTLS does
 * (to choose the group with no HelloRetryRequest).
 *
 * Besides memory errors, it checks that the answer is an index into our
 * five groups or "none" (5), and that a prefix of the message never
 * makes the parser read past what it was given (ASan's part).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xz_private.h"

#define NGROUPS 5

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy;
	size_t pick;

	/* An exact-size copy: ASan sees any read past the end. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	pick = tls_key_share_pick(copy, size);
	if (pick > NGROUPS)
		abort();
	if (size > 0 && tls_key_share_pick(copy, size / 2) > NGROUPS)
		abort();
	free(copy);
	return 0;
}
