/*
 * cgienv.c - the variables of a CGI or SCGI request, built once for both
 * (DESIGN.md, "SCGI request"), and their two encodings: the SCGI header
 * netstring and an execve() environment.
 *
 * cgienv_request() is the one step from a request to its variables, for
 * both handlers. The set owns copies of its names and values. Names are
 * unique: the first one added wins, so the request's own variables can
 * never be overridden by app state or by the parent environment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "xz_private.h"

extern char **environ;

#define XITZIN_PREFIX "XITZIN_"

/*
 * Names the parent environment may never supply, set or not: a backend
 * trusts them to describe the request, so an inherited REMOTE_USER on a
 * request without a certificate would be a forged identity.
 */
static const char *const reserved[] = {
	"AUTH_TYPE",
	"CONTENT_LENGTH",
	"CONTENT_TYPE",
	"GATEWAY_INTERFACE",
	"GEMINI_URL",
	"PATH_INFO",
	"PATH_TRANSLATED",
	"QUERY_STRING",
	"REMOTE_ADDR",
	"REMOTE_HOST",
	"REMOTE_IDENT",
	"REMOTE_PORT",
	"REMOTE_USER",
	"REQUEST_METHOD",
	"SCGI",
	"SCRIPT_NAME",
	"SERVER_NAME",
	"SERVER_PORT",
	"SERVER_PROTOCOL",
	"SERVER_SOFTWARE",
	"TITAN_TOKEN",
	"TLS_CIPHER",
	"TLS_CLIENT_AUTHORISED",
	"TLS_CLIENT_HASH",
	"TLS_CLIENT_ISSUER",
	"TLS_CLIENT_NOT_AFTER",
	"TLS_CLIENT_NOT_BEFORE",
	"TLS_CLIENT_SUBJECT",
	"TLS_VERSION",
};

/*
 * The service manager's words to xitzin (sd_notify(3), sd_watchdog_enabled(3),
 * sd_listen_fds(3)): inherited, they would let a script tell systemd
 * READY=1 or feed the watchdog for the server, or take its sockets.
 */
static const char *const service_manager[] = {
	"LISTEN_FDNAMES",
	"LISTEN_FDS",
	"LISTEN_PID",
	"NOTIFY_SOCKET",
	"WATCHDOG_PID",
	"WATCHDOG_USEC",
};

static bool
name_eq(const char *a, const char *b, size_t blen)
{
	return strncmp(a, b, blen) == 0 && a[blen] == '\0';
}

static ssize_t
cgienv_find(const struct cgienv *env, const char *name, size_t namelen)
{
	size_t i;

	for (i = 0; i < env->len; i++)
		if (name_eq(env->names[i], name, namelen))
			return (ssize_t)i;
	return -1;
}

/* Adds name (namelen bytes) = value, unless name is already there. */
static int
cgienv_addn(struct cgienv *env, const char *name, size_t namelen,
    const char *value)
{
	char **names, **values, *n, *v;
	size_t cap;

	if (cgienv_find(env, name, namelen) != -1)
		return XZ_OK;
	if (env->len == env->cap) {
		cap = env->cap == 0 ? 32 : env->cap * 2;
		if ((names = realloc(env->names, cap * sizeof(*names))) == NULL)
			return XZ_ENOMEM;
		env->names = names;
		if ((values = realloc(env->values, cap * sizeof(*values))) ==
		    NULL)
			return XZ_ENOMEM;
		env->values = values;
		env->cap = cap;
	}
	if ((n = malloc(namelen + 1)) == NULL)
		return XZ_ENOMEM;
	memcpy(n, name, namelen);
	n[namelen] = '\0';
	if ((v = strdup(value)) == NULL) {
		free(n);
		return XZ_ENOMEM;
	}
	env->names[env->len] = n;
	env->values[env->len] = v;
	env->len++;
	return XZ_OK;
}

static int
cgienv_add(struct cgienv *env, const char *name, const char *value)
{
	return cgienv_addn(env, name, strlen(name), value);
}

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/*
 * The variable name of an app state key: XITZIN_ and the key upper-cased,
 * with anything but A-Z, 0-9 and _ made _ ("db-url" -> XITZIN_DB_URL).
 * NULL when out of memory.
 */
static char *
state_name(const char *key)
{
	size_t plen = strlen(XITZIN_PREFIX), klen = strlen(key), i;
	char *name, ch;

	if ((name = malloc(plen + klen + 1)) == NULL)
		return NULL;
	memcpy(name, XITZIN_PREFIX, plen);
	for (i = 0; i < klen; i++) {
		ch = key[i];
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		else if (!(ch >= 'A' && ch <= 'Z') &&
		         !(ch >= '0' && ch <= '9') && ch != '_')
			ch = '_';
		name[plen + i] = ch;
	}
	name[plen + klen] = '\0';
	return name;
}

/* True when the parent environment may not supply name (namelen bytes). */
static bool
inherit_refused(const struct cgienv_src *src, const char *name, size_t namelen)
{
	size_t i;
	char *sn;
	bool eq;

	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (name_eq(reserved[i], name, namelen))
			return true;
	for (i = 0; i < sizeof(service_manager) / sizeof(service_manager[0]);
	     i++)
		if (name_eq(service_manager[i], name, namelen))
			return true;
	/* Nor the variable of a state key that is not set. */
	if (namelen < strlen(XITZIN_PREFIX) ||
	    strncmp(name, XITZIN_PREFIX, strlen(XITZIN_PREFIX)) != 0)
		return false;
	for (i = 0; i < src->nstate; i++) {
		if (src->state_keys[i] == NULL ||
		    (sn = state_name(src->state_keys[i])) == NULL)
			continue;
		eq = name_eq(sn, name, namelen);
		free(sn);
		if (eq)
			return true;
	}
	return false;
}

static int
cgienv_add_request(struct cgienv *env, const struct cgienv_src *src)
{
	const struct xz_cert *cert = src->cert;
	bool has_cert = cert != NULL && cert->present;
	char port[16], rport[16], length[24];
	int rc = XZ_OK;

	snprintf(port, sizeof(port), "%d", src->server_port);
#define ADD(name, value)                                                       \
	do {                                                                   \
		if ((rc = cgienv_add(env, (name), (value))) != XZ_OK)          \
			return rc;                                             \
	} while (0)
	ADD("GATEWAY_INTERFACE", "CGI/1.1");
	ADD("SERVER_PROTOCOL", "GEMINI");
	ADD("SERVER_SOFTWARE", "xitzin/" XITZIN_VERSION);
	ADD("SERVER_NAME", or_empty(src->host));
	ADD("SERVER_PORT", port);
	ADD("SCRIPT_NAME", or_empty(src->script_name));
	ADD("PATH_INFO", or_empty(src->path_info));
	ADD("QUERY_STRING", or_empty(src->query));
	ADD("GEMINI_URL", or_empty(src->url));
	ADD("REMOTE_ADDR", or_empty(src->remote_addr));
	ADD("REMOTE_HOST", or_empty(src->remote_addr));
	/* Not RFC 3875's, but what CGI servers set (Apache, nginx, gmid). */
	if (src->remote_port > 0) {
		snprintf(rport, sizeof(rport), "%d", src->remote_port);
		ADD("REMOTE_PORT", rport);
	}
	ADD("TLS_CLIENT_AUTHORISED", has_cert ? "1" : "0");
	if (has_cert) {
		ADD("TLS_CLIENT_HASH", cert->hash);
		ADD("AUTH_TYPE", "CERTIFICATE");
		if (cert->cn != NULL)
			ADD("REMOTE_USER", cert->cn);
		ADD("TLS_CLIENT_SUBJECT", or_empty(cert->subject));
		ADD("TLS_CLIENT_ISSUER", or_empty(cert->issuer));
		ADD("TLS_CLIENT_NOT_BEFORE", cert->not_before);
		ADD("TLS_CLIENT_NOT_AFTER", cert->not_after);
	}
	if (src->tls_version != NULL)
		ADD("TLS_VERSION", src->tls_version);
	if (src->tls_cipher != NULL)
		ADD("TLS_CIPHER", src->tls_cipher);
	if (src->upload) {
		/* POST: WSGI and CGI libraries read a body for it. */
		snprintf(length, sizeof(length), "%zu", src->content_length);
		ADD("CONTENT_LENGTH", length);
		ADD("CONTENT_TYPE", or_empty(src->content_type));
		ADD("REQUEST_METHOD", "POST");
		if (src->token != NULL)
			ADD("TITAN_TOKEN", src->token);
	}
#undef ADD
	return rc;
}

static int
cgienv_add_state(struct cgienv *env, const struct cgienv_src *src)
{
	size_t i;
	char *name;
	int rc;

	for (i = 0; i < src->nstate; i++) {
		/* An empty key would make the bare name "XITZIN_". */
		if (src->state_keys[i] == NULL ||
		    src->state_keys[i][0] == '\0' ||
		    src->state_values[i] == NULL)
			continue;
		if ((name = state_name(src->state_keys[i])) == NULL)
			return XZ_ENOMEM;
		rc = cgienv_add(env, name, src->state_values[i]);
		free(name);
		if (rc != XZ_OK)
			return rc;
	}
	return XZ_OK;
}

static int
cgienv_add_environ(struct cgienv *env, const struct cgienv_src *src)
{
	char **ep;
	const char *eq;
	int rc;

	if (environ == NULL)
		return XZ_OK;
	for (ep = environ; *ep != NULL; ep++) {
		/* Without "=" or without a name it is not a variable. */
		if ((eq = strchr(*ep, '=')) == NULL || eq == *ep)
			continue;
		if (inherit_refused(src, *ep, (size_t)(eq - *ep)))
			continue;
		if ((rc = cgienv_addn(env, *ep, (size_t)(eq - *ep), eq + 1)) !=
		    XZ_OK)
			return rc;
	}
	return XZ_OK;
}

int
cgienv_build(struct cgienv *env, const struct cgienv_src *src)
{
	int rc;

	memset(env, 0, sizeof(*env));
	if ((rc = cgienv_add_request(env, src)) == XZ_OK &&
	    (rc = cgienv_add_state(env, src)) == XZ_OK &&
	    src->inherit_environment)
		rc = cgienv_add_environ(env, src);
	if (rc != XZ_OK)
		cgienv_clear(env);
	return rc;
}

int
cgienv_request(struct cgienv *env, struct xz_request *req,
    const char *script_name, const char *path_info,
    const struct xz_backend_config *cfg)
{
	struct cgienv_src src = { 0 };
	const char **values;
	size_t n = 0, i;
	int rc;

	while (cfg->app_state_keys != NULL && cfg->app_state_keys[n] != NULL)
		n++;
	if ((values = calloc(n + 1, sizeof(*values))) == NULL) {
		memset(env, 0, sizeof(*env));
		return XZ_ENOMEM;
	}
	for (i = 0; i < n; i++)
		values[i] =
		    xz_state_get(xz_request_app(req), cfg->app_state_keys[i]);
	src.url = xz_request_url(req);
	src.host = xz_request_host(req);
	src.server_port = xz_request_port(req);
	src.script_name = script_name;
	src.path_info = path_info;
	src.query = xz_request_query(req);
	src.remote_addr = xz_request_remote_addr(req);
	src.remote_port = req->remote_port;
	src.cert = &req->cert;
	src.tls_version = req->tls_version;
	src.tls_cipher = req->tls_cipher;
	src.state_keys = cfg->app_state_keys;
	src.state_values = values;
	src.nstate = n;
	src.inherit_environment = !cfg->no_inherit_environment;
	if ((src.upload = xz_request_is_upload(req))) {
		src.content_length = xz_upload_size(req);
		src.content_type = xz_upload_mime(req);
		src.token = xz_upload_token(req);
	}
	rc = cgienv_build(env, &src);
	free(values);
	return rc;
}

void
cgienv_clear(struct cgienv *env)
{
	size_t i;

	for (i = 0; i < env->len; i++) {
		free(env->names[i]);
		free(env->values[i]);
	}
	free(env->names);
	free(env->values);
	memset(env, 0, sizeof(*env));
}

const char *
cgienv_get(const struct cgienv *env, const char *name)
{
	ssize_t i = cgienv_find(env, name, strlen(name));

	return i == -1 ? NULL : env->values[i];
}

/*
 * Appends "len:" + all of data (drained) + "," to out, or nothing: the
 * netstring is assembled in a scratch buffer and moved over whole, so out
 * never holds half of one.
 */
static int
netstring_add_buffer(struct evbuffer *out, struct evbuffer *data)
{
	struct evbuffer *b;
	int rc = XZ_ENOMEM;

	if ((b = evbuffer_new()) == NULL)
		return XZ_ENOMEM;
	if (evbuffer_add_printf(b, "%zu:", evbuffer_get_length(data)) != -1 &&
	    evbuffer_add_buffer(b, data) == 0 && evbuffer_add(b, ",", 1) == 0 &&
	    evbuffer_add_buffer(out, b) == 0)
		rc = XZ_OK;
	evbuffer_free(b);
	return rc;
}

int
netstring_add(struct evbuffer *out, const void *data, size_t len)
{
	struct evbuffer *b;
	int rc = XZ_ENOMEM;

	if ((b = evbuffer_new()) == NULL)
		return XZ_ENOMEM;
	if (len == 0 || evbuffer_add(b, data, len) == 0)
		rc = netstring_add_buffer(out, b);
	evbuffer_free(b);
	return rc;
}

/* Pairs are "name\0value\0" (the SCGI spec, section 2). */
static int
scgi_add_pair(struct evbuffer *b, const char *name, const char *value)
{
	if (evbuffer_add(b, name, strlen(name) + 1) == -1 ||
	    evbuffer_add(b, value, strlen(value) + 1) == -1)
		return XZ_ENOMEM;
	return XZ_OK;
}

/*
 * CONTENT_LENGTH must come first and SCGI=1 is expected beside it (the
 * SCGI spec); a Gemini request has no body, a Titan upload its size. Empty
 * values are left out: strict parsers (Perl's SCGI module) reject them, and a
 * missing variable reads as empty to CGI-style code anyway.
 */
int
cgienv_scgi_header(struct evbuffer *out, const struct cgienv *env)
{
	const char *length;
	struct evbuffer *block;
	size_t i;
	int rc;

	if ((block = evbuffer_new()) == NULL)
		return XZ_ENOMEM;
	length = cgienv_get(env, "CONTENT_LENGTH");
	rc = scgi_add_pair(block, "CONTENT_LENGTH", length ? length : "0");
	if (rc == XZ_OK)
		rc = scgi_add_pair(block, "SCGI", "1");
	for (i = 0; i < env->len && rc == XZ_OK; i++) {
		if (env->values[i][0] == '\0' ||
		    strcmp(env->names[i], "CONTENT_LENGTH") == 0 ||
		    strcmp(env->names[i], "SCGI") == 0)
			continue;
		rc = scgi_add_pair(block, env->names[i], env->values[i]);
	}
	/* The block is complete: frame it as "len:block," and hand it over. */
	if (rc == XZ_OK)
		rc = netstring_add_buffer(out, block);
	evbuffer_free(block);
	return rc;
}

/* CGI keeps empty values: QUERY_STRING is always set (RFC 3875, 4.1.7). */
char **
cgienv_envp(const struct cgienv *env)
{
	char **envp;
	size_t i, nlen, vlen;

	if ((envp = calloc(env->len + 1, sizeof(*envp))) == NULL)
		return NULL;
	for (i = 0; i < env->len; i++) {
		nlen = strlen(env->names[i]);
		vlen = strlen(env->values[i]);
		if ((envp[i] = malloc(nlen + 1 + vlen + 1)) == NULL) {
			cgienv_envp_free(envp);
			return NULL;
		}
		memcpy(envp[i], env->names[i], nlen);
		envp[i][nlen] = '=';
		memcpy(envp[i] + nlen + 1, env->values[i], vlen + 1);
	}
	return envp;
}

void
cgienv_envp_free(char **envp)
{
	size_t i;

	if (envp == NULL)
		return;
	for (i = 0; envp[i] != NULL; i++)
		free(envp[i]);
	free(envp);
}
