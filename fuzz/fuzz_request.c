/*
 * fuzz_request.c - libFuzzer target for url.c (the request line): any line must
 * give 0, 59 or XZ_ENOMEM without a crash or leak, and a URL that is accepted
 * must keep the promises later stages rely on (a path without NULs or
 * dot segments, never above "/"; a port that is -1 or 1..65535).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xz_private.h"

/* Dot removal is done once: doing it again must change nothing. */
static void
check_path(const char *path)
{
	char *again;

	if (path[0] != '\0' && path[0] != '/')
		abort();
	if ((again = strdup(path)) == NULL)
		return;
	if (url_remove_dots(again) != XZ_OK || strcmp(again, path) != 0)
		abort();
	free(again);
}

static void
check_url(const struct xz_url *u)
{
	if (u->raw == NULL || u->scheme == NULL || u->host == NULL ||
	    u->path == NULL || u->host[0] == '\0')
		abort();
	if (u->port != -1 && (u->port < 1 || u->port > 65535))
		abort();
	if (strlen(u->raw) > XZ_MAX_URL)
		abort();
	check_path(u->path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xz_url u;
	const char *why = NULL;
	int rc;

	rc = url_parse(&u, (const char *)data, size, &why);
	if (rc == 0)
		check_url(&u);
	else if ((rc != 59 && rc != XZ_ENOMEM) || why == NULL ||
	         u.raw != NULL || u.path != NULL)
		abort();
	url_clear(&u);
	return 0;
}
