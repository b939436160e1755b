/*
 * fuzz_netstring.c - a round trip through the SCGI request encoder: the
 * fuzzer picks the request's values (path, query, host, state values);
 * cgienv_scgi_header encodes them; a strict decoder written here (the
 * rules Perl's SCGI module enforces) must read back exactly the pairs the
 * variable set holds, minus the empty ones, with CONTENT_LENGTH first and
 * SCGI=1 second and no name twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "xz_private.h"

/* Splits the input at NULs into up to n C strings. */
static size_t
split(char *buf, size_t size, char **parts, size_t n)
{
	size_t i = 0, start = 0, k;

	for (k = 0; k <= size && i < n; k++) {
		if (k == size || buf[k] == '\0') {
			buf[k] = '\0';
			parts[i++] = buf + start;
			start = k + 1;
		}
	}
	return i;
}

/* "len:" digits, no leading zero unless "0", then ':'. */
static size_t
decode_len(const char *p, size_t n, size_t *used)
{
	size_t len = 0, i = 0;

	check(n > 0 && p[0] >= '0' && p[0] <= '9');
	check(!(p[0] == '0' && n > 1 && p[1] != ':'));
	while (i < n && p[i] >= '0' && p[i] <= '9')
		len = len * 10 + (size_t)(p[i++] - '0');
	check(i < n && p[i] == ':');
	*used = i + 1;
	return len;
}

static void
check_header(const struct cgienv *env, const char *p, size_t n)
{
	size_t used, len = decode_len(p, n, &used), pairs = 0, i;
	const char *b = p + used, *end, *name, *value;

	check(used + len + 1 == n && p[n - 1] == ',');
	end = b + len;
	while (b < end) {
		name = b;
		b = memchr(b, '\0', (size_t)(end - b));
		check(b != NULL && b > name);
		value = ++b;
		b = memchr(b, '\0', (size_t)(end - b));
		check(b != NULL);
		b++;
		if (pairs == 0)
			check(strcmp(name, "CONTENT_LENGTH") == 0 &&
			      strcmp(value, "0") == 0);
		else if (pairs == 1)
			check(strcmp(name, "SCGI") == 0 &&
			      strcmp(value, "1") == 0);
		else
			check(value[0] != '\0' &&
			      strcmp(cgienv_get(env, name), value) == 0);
		pairs++;
	}
	/* Every non-empty variable was sent, once. */
	for (i = 0; i < env->len; i++)
		if (env->values[i][0] != '\0')
			pairs--;
	check(pairs == 2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *parts[8] = { 0 };
	const char *keys[] = { "db_url", "api_key" }, *values[2];
	struct cgienv_src src = { 0 };
	struct cgienv env;
	struct evbuffer *out;
	size_t n;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	n = split(buf, size, parts, 8);
	for (; n < 8; n++)
		parts[n] = "";
	src.path_info = parts[0];
	src.query = parts[1];
	src.host = parts[2];
	src.url = parts[3];
	src.script_name = parts[4];
	src.remote_addr = parts[5];
	values[0] = parts[6];
	values[1] = parts[7];
	src.state_keys = keys;
	src.state_values = values;
	src.nstate = 2;
	src.server_port = 1965;
	if (cgienv_build(&env, &src) == XZ_OK) {
		if ((out = evbuffer_new()) != NULL &&
		    cgienv_scgi_header(out, &env) == XZ_OK) {
			n = evbuffer_get_length(out);
			check_header(&env,
			    (const char *)evbuffer_pullup(out, -1), n);
		}
		if (out != NULL)
			evbuffer_free(out);
		cgienv_clear(&env);
	}
	free(buf);
	return 0;
}
