/*
 * fuzz_proxy.c - libFuzzer target for proxy_parse(), the PROXY protocol
 * header a listener reads before TLS. The first byte picks the listener's
 * mode (v1, v2, any); the rest is what the connection sent.
 *
 * Besides memory errors (an exact-size copy: ASan sees a read past the
 * end), it checks the promises conn.c relies on: a header is whole and
 * within its bounds, its bytes alone parse the same, one byte fewer asks
 * for more; "more" means every byte given is the header's (so a prefix
 * asks for more too); an address is one of the families promised.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xz_private.h"

static void
check_header(const unsigned char *buf, size_t size, enum proxy_mode mode,
    const struct proxy_hdr *h)
{
	struct proxy_hdr again;

	check(h->len > 0 && h->len <= size && h->len <= PROXY_MAX);
	check(h->version == 1 || h->version == 2);
	check(h->version == 2 || h->len <= PROXY_V1_MAX);
	check(!h->local || (h->version == 2 && h->family == AF_UNSPEC));
	check(h->family == AF_UNSPEC || h->family == AF_INET ||
	      h->family == AF_INET6);
	check(h->family == AF_UNSPEC ||
	      (h->src.ss_family == h->family && h->dst.ss_family == h->family));
	/* The header's own bytes are enough, and needed. */
	check(proxy_parse(buf, h->len, mode, &again, NULL) == XZ_OK);
	check(again.len == h->len && again.family == h->family &&
	      memcmp(&again.src, &h->src, sizeof(h->src)) == 0);
	check(proxy_parse(buf, h->len - 1, mode, &again, NULL) == XZ_EAGAIN);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum proxy_mode modes[] = { PROXY_V1, PROXY_V2,
		PROXY_ANY };
	enum proxy_mode mode;
	struct proxy_hdr h;
	const char *why = NULL;
	unsigned char *buf;
	int rc;

	if (size == 0)
		return 0;
	mode = modes[data[0] % 3];
	data++;
	size--;
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	rc = proxy_parse(buf, size, mode, &h, &why);
	if (rc == XZ_OK)
		check_header(buf, size, mode, &h);
	else if (rc == XZ_EAGAIN)
		check(size < PROXY_MAX &&
		      proxy_parse(buf, size / 2, mode, &h, NULL) == XZ_EAGAIN);
	else
		check(rc == XZ_EPARSE && why != NULL);
	free(buf);
	return 0;
}
