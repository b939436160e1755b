/*
 * fuzz_route.c - the route pattern matcher: the input is a pattern, a
 * newline, and a request path. Registering any pattern either works or is
 * refused; requesting any path through the real dispatch (the test
 * client) answers with a status, never a crash; a path equal to a literal
 * pattern always reaches its route.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "xz_private.h"

static int
fuzz_route_hit(struct xz_request *req, void *arg)
{
	return xz_gemtext(req, "hit");
}

static bool
is_literal(const char *pattern)
{
	return strchr(pattern, '{') == NULL && strstr(pattern, "//") == NULL &&
	       strstr(pattern, "/./") == NULL &&
	       strstr(pattern, "/../") == NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *nl, *line = NULL;
	struct xz_app *app;
	struct xz_test_client *tc;
	struct xz_test_response *r;
	int rc;

	if (size > 2048 || (buf = strndup((const char *)data, size)) == NULL)
		return 0;
	if ((nl = strchr(buf, '\n')) == NULL || (app = xz_app_new()) == NULL) {
		free(buf);
		return 0;
	}
	*nl = '\0';
	rc = xz_route(app, buf, fuzz_route_hit, NULL);
	if ((tc = xz_test_client_new(app)) != NULL &&
	    asprintf(&line, "gemini://localhost%s", nl + 1) != -1 &&
	    strpbrk(line, "\r\n") == NULL) {
		r = xz_test_request(tc, line);
		if (r != NULL && r->status == 0)
			abort(); /* every request gets an answer */
		xz_test_response_free(r);
		/* A plain literal path reaches its own route. */
		if (rc == XZ_OK && is_literal(buf) && strlen(buf) > 1 &&
		    buf[strlen(buf) - 1] != '/' &&
		    strpbrk(buf, "%?# ") == NULL) {
			free(line);
			line = NULL;
			if (asprintf(&line, "gemini://localhost%s", buf) !=
			        -1 &&
			    (r = xz_test_request(tc, line)) != NULL) {
				if (r->status == 20 &&
				    strcmp((char *)r->body, "hit") != 0)
					abort();
				xz_test_response_free(r);
			}
		}
	}
	free(line);
	xz_test_client_free(tc);
	xz_app_free(app);
	free(buf);
	return 0;
}
