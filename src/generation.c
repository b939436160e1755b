/*
 * generation.c - what a reload replaces: one immutable, reference-counted
 * generation of the configuration.
 *
 * Everything a connection reads from the configuration hangs from its
 * generation: the app (mounts, routes, middleware, backends), the TLS
 * context (certificate, key, ticket key, read when the generation is
 * made), the hostnames and each listener's conn_cfg (timeouts, the
 * public port, the access-log switch). A connection holds a reference
 * from accept to close, so a reload never changes anything under a
 * request in flight; the generation is freed by the server (server.c,
 * on its main thread) once the last reference is gone.
 *
 * What stays with the server across reloads (the listening sockets, the
 * workers, the user, the chroot, the connection limits) is not here:
 * changing it needs a restart.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

/* "a.example, B.example" -> { "a.example", "b.example", NULL }. */
static char **
generation_split_names(const char *names)
{
	char **list = strlist_split(names);

	for (size_t i = 0; list != NULL && list[i] != NULL; i++)
		for (char *q = list[i]; *q != '\0'; q++)
			*q = (char)tolower((unsigned char)*q);
	return list;
}

/* A copy of s owned by g (NULL stays NULL); false when out of memory. */
static bool
generation_keep(char **dst, const char *s)
{
	*dst = NULL;
	return s == NULL || (*dst = strdup(s)) != NULL;
}

/*
 * No certificate given: the program's choice, certs/HOST.crt and
 * certs/HOST.key under the working directory (HOST the first hostname),
 * generated when neither exists, so that a first program runs as is.
 * One file without the other is a mistake worth naming.
 */
static int
generation_default_cert(struct generation *g, char *err, size_t errlen)
{
	const char *host = g->hostnames[0];
	struct xz_server_opts *o = &g->opts;

	if (o->cert_file != NULL && o->key_file != NULL)
		return XZ_OK;
	if (o->cert_file != NULL || o->key_file != NULL) {
		snprintf(err, errlen,
		    "%s given without %s (give both, or neither "
		    "to use certs/%s.crt and .key)",
		    o->cert_file != NULL ? "cert_file" : "key_file",
		    o->cert_file != NULL ? "key_file" : "cert_file", host);
		return XZ_EINVAL;
	}
	if (strchr(host, '/') != NULL || host[0] == '.') {
		snprintf(err, errlen,
		    "cert_file and key_file: none given, and "
		    "hostname '%s' cannot name them",
		    host);
		return XZ_EINVAL;
	}
	if (asprintf(&g->cert_file, "certs/%s.crt", host) == -1) {
		g->cert_file = NULL;
		goto nomem;
	}
	if (asprintf(&g->key_file, "certs/%s.key", host) == -1) {
		g->key_file = NULL;
		goto nomem;
	}
	o->cert_file = g->cert_file;
	o->key_file = g->key_file;
	log_info("no cert_file given: using %s and %s (generated when missing)",
	    o->cert_file, o->key_file);
	return XZ_OK;
nomem:
	snprintf(err, errlen, "out of memory");
	return XZ_ENOMEM;
}

/* What the generation keeps of opts: its own copies of the strings. */
static int
generation_copy_opts(struct generation *g, const struct xz_server_opts *o,
    char *err, size_t errlen)
{
	g->opts = *o;
	/* The server's, not a generation's: see xz_server_reload. */
	g->opts.listen = NULL;
	g->opts.user = g->opts.chroot_dir = NULL;
	g->opts.listen_fds = NULL;
	g->opts.nlisten_fds = 0;
	if (!generation_keep(&g->hostname, o->hostname) ||
	    !generation_keep(&g->cert_file, o->cert_file) ||
	    !generation_keep(&g->key_file, o->key_file) ||
	    !generation_keep(&g->ticket_key_file, o->ticket_key_file)) {
		snprintf(err, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	g->opts.hostname = g->hostname;
	g->opts.cert_file = g->cert_file;
	g->opts.key_file = g->key_file;
	g->opts.ticket_key_file = g->ticket_key_file;
	if (o->public_port < 0 || o->public_port > 65535) {
		snprintf(err, errlen, "public_port %d out of range 1..65535",
		    o->public_port);
		return XZ_EINVAL;
	}
	return XZ_OK;
}

struct generation *
generation_new(const struct xz_server_opts *o, struct xz_app *app,
    const int *ports, size_t nports, char *err, size_t errlen)
{
	struct generation *g = calloc(1, sizeof(*g));
	struct tls_opts topts = { 0 };
	size_t i;

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->refs = 1;
	g->app = app;
	if (generation_copy_opts(g, o, err, errlen) != XZ_OK)
		goto fail;
	if ((g->hostnames = generation_split_names(g->opts.hostname)) == NULL ||
	    g->hostnames[0] == NULL) {
		snprintf(err, errlen, "hostname: none given, or out of memory");
		goto fail;
	}
	if (generation_default_cert(g, err, errlen) != XZ_OK)
		goto fail;
	topts.cert_file = g->opts.cert_file;
	topts.key_file = g->opts.key_file;
	topts.hostname = g->hostnames[0];
	topts.ed25519 = g->opts.key_ed25519;
	topts.ticket_key_file = g->opts.ticket_key_file;
	if ((g->tls = tls_ctx_new(&topts, err, errlen)) == NULL)
		goto fail;
	if ((g->cfgs = calloc(nports ? nports : 1, sizeof(*g->cfgs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	g->ncfgs = nports;
	for (i = 0; i < nports; i++) {
		struct conn_cfg *cfg = &g->cfgs[i];

		cfg->app = app;
		cfg->io = &conn_io_tls;
		cfg->io_ctx = g->tls;
		cfg->hostnames = (const char *const *)g->hostnames;
		cfg->port = ports[i];
		cfg->public_port = g->opts.public_port;
		cfg->request_timeout = g->opts.request_timeout;
		cfg->write_timeout = g->opts.write_timeout;
		cfg->send_min_rate = g->opts.send_min_rate > 0 ?
		                         (size_t)g->opts.send_min_rate :
		                         0;
		cfg->access_log = !g->opts.quiet;
	}
	return g;
fail:
	generation_free(g);
	return NULL;
}

void
generation_ref(struct generation *g)
{
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
}

bool
generation_unref(struct generation *g)
{
	/* Release: what this holder did happens before the free. */
	return __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0;
}

bool
generation_unused(struct generation *g)
{
	return __atomic_load_n(&g->refs, __ATOMIC_ACQUIRE) == 0;
}

void
generation_free(struct generation *g)
{
	size_t i;

	if (g == NULL)
		return;
	tls_ctx_free(g->tls);
	free(g->cfgs);
	if (g->hostnames != NULL)
		for (i = 0; g->hostnames[i] != NULL; i++)
			free(g->hostnames[i]);
	free(g->hostnames);
	free(g->hostname);
	free(g->cert_file);
	free(g->key_file);
	free(g->ticket_key_file);
	/* Last: it may free the app, and what the opts pointed into. */
	if (g->release != NULL)
		g->release(g->release_arg);
	free(g);
}
