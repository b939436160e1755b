/*
 * generation.c - what a reload replaces: one immutable, reference-counted
 * generation of the configuration.
 *
 * Everything a connection reads from the configuration hangs from its
 * generation: the sites (names, apps with their mounts, routes and
 * backends, certificates), the TLS context (the ticket key, read when
 * the generation is made, and the SNI choice among its sites) and each
 * listener's conn_cfg (timeouts, the public port, the access-log
 * switch). A connection holds a reference from accept to close, so a
 * reload never changes anything under a request in flight; the
 * generation is freed by the server (server.c, on its main thread) once
 * the last reference is gone.
 *
 * What stays with the server across reloads (the listening sockets, the
 * workers, the user, the chroot, the connection limits, the metrics
 * listener) is not here: changing it needs a restart.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

/* A copy of s owned by g (NULL stays NULL); false when out of memory. */
static bool
generation_keep(char **dst, const char *s)
{
	*dst = NULL;
	return s == NULL || (*dst = strdup(s)) != NULL;
}

/*
 * A site's certificate: cert_file and key_file, or, neither given, the
 * program's choice, certs/NAME.crt and certs/NAME.key under the working
 * directory (NAME the site's first name, a '*' written '_'), generated
 * when neither exists, so that a first program runs as is; a generated
 * certificate holds all the site's names. One file without the other is
 * a mistake worth naming.
 */
static struct tls_cert *
generation_site_cert(const struct generation *g, const char *names,
    const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	struct tls_opts topts = { .cert_file = cert_file,
		.key_file = key_file,
		.hostname = names,
		.ed25519 = g->opts.key_ed25519 };
	char **list = strlist_split(names), *cpath = NULL, *kpath = NULL;
	struct tls_cert *cert = NULL;

	if (list == NULL || list[0] == NULL) {
		snprintf(err, errlen, "hostname: none given, or out of memory");
		goto out;
	}
	for (char *q = list[0]; *q != '\0'; q++)
		*q = *q == '*' ? '_' : (char)tolower((unsigned char)*q);
	if ((cert_file == NULL) != (key_file == NULL)) {
		snprintf(err, errlen,
		    "%s given without %s (give both, or neither "
		    "to use certs/%s.crt and .key)",
		    cert_file != NULL ? "cert_file" : "key_file",
		    cert_file != NULL ? "key_file" : "cert_file", list[0]);
		goto out;
	}
	if (cert_file == NULL &&
	    (strchr(list[0], '/') != NULL || list[0][0] == '.')) {
		snprintf(err, errlen,
		    "cert_file and key_file: none given, and "
		    "hostname '%s' cannot name them",
		    list[0]);
		goto out;
	}
	if (cert_file == NULL) {
		if (asprintf(&cpath, "certs/%s.crt", list[0]) == -1 ||
		    asprintf(&kpath, "certs/%s.key", list[0]) == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		topts.cert_file = cpath;
		topts.key_file = kpath;
		log_info("no cert_file given: using %s and %s (generated when "
		         "missing)",
		    cpath, kpath);
	}
	cert = tls_cert_new(&topts, err, errlen);
out:
	strlist_free(list);
	free(cpath);
	free(kpath);
	return cert;
}

/* What a reload of the same apps needs to make the site again. */
static int
generation_note_site(struct generation *g, const char *names,
    struct xz_app *app, const char *cert_file, const char *key_file)
{
	struct generation_site *s;

	s = realloc(g->specs, (g->nspecs + 1) * sizeof(*s));
	if (s == NULL)
		return XZ_ENOMEM;
	g->specs = s;
	s = &g->specs[g->nspecs];
	memset(s, 0, sizeof(*s));
	s->app = app;
	if (!generation_keep(&s->names, names) ||
	    !generation_keep(&s->cert_file, cert_file) ||
	    !generation_keep(&s->key_file, key_file)) {
		free(s->names);
		free(s->cert_file);
		return XZ_ENOMEM;
	}
	g->nspecs++;
	return XZ_OK;
}

int
generation_add_site(struct generation *g, const char *names, struct xz_app *app,
    const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	struct tls_cert *cert;
	const char *why;
	char bad[256];
	int rc;

	if (app == NULL) {
		snprintf(err, errlen, "site %s: no app", names ? names : "");
		return XZ_EINVAL;
	}
	if (names == NULL)
		names = "";
	if ((cert = generation_site_cert(g, names, cert_file, key_file, err,
	         errlen)) == NULL)
		return XZ_EINVAL;
	if ((rc = site_set_add(g->sites, names, app, cert, &why, bad,
	         sizeof(bad))) != XZ_OK) {
		snprintf(err, errlen, "hostname: %s%s%s%s", why,
		    bad[0] != '\0' ? " ('" : "", bad,
		    bad[0] != '\0' ? "')" : "");
		return rc;
	}
	if (generation_note_site(g, names, app, cert_file, key_file) != XZ_OK) {
		snprintf(err, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	tls_ctx_set_certs(g->tls, site_set_get(g->sites, 0)->cert,
	    site_set_count(g->sites) > 1 ? site_pick_cert : NULL, g->sites);
	return XZ_OK;
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
	g->opts.metrics_listen = NULL;
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
	/* The ticket key is the generation's: every site's sessions resume. */
	struct tls_opts topts = { 0 };
	size_t i;

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->refs = 1;
	if (generation_copy_opts(g, o, err, errlen) != XZ_OK)
		goto fail;
	topts.ticket_key_file = g->opts.ticket_key_file;
	if ((g->sites = site_set_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((g->tls = tls_ctx_new(&topts, err, errlen)) == NULL ||
	    generation_add_site(g, g->opts.hostname, app, g->opts.cert_file,
	        g->opts.key_file, err, errlen) != XZ_OK)
		goto fail;
	if ((g->cfgs = calloc(nports ? nports : 1, sizeof(*g->cfgs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	g->ncfgs = nports;
	for (i = 0; i < nports; i++) {
		struct conn_cfg *cfg = &g->cfgs[i];

		cfg->sites = g->sites;
		cfg->io = &conn_io_tls;
		cfg->io_ctx = g->tls;
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

struct xz_app *
generation_app(const struct generation *g)
{
	return site_set_get(g->sites, 0)->app;
}

/* Whether site i's app is an earlier site's too (its hooks ran then). */
static bool
generation_app_seen(const struct generation *g, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (site_set_get(g->sites, j)->app ==
		    site_set_get(g->sites, i)->app)
			return true;
	return false;
}

/* Shutdown hooks of the first n sites' apps, the last started first. */
static void
generation_shutdown_first(struct generation *g, size_t n)
{
	while (n-- > 0)
		if (!generation_app_seen(g, n))
			app_shutdown(site_set_get(g->sites, n)->app);
}

int
generation_startup(struct generation *g)
{
	size_t i, n = site_set_count(g->sites);
	int rc;

	for (i = 0; i < n; i++) {
		if (generation_app_seen(g, i))
			continue;
		if ((rc = app_startup(site_set_get(g->sites, i)->app)) !=
		    XZ_OK) {
			generation_shutdown_first(g, i);
			return rc;
		}
	}
	g->started = true;
	return XZ_OK;
}

void
generation_shutdown(struct generation *g)
{
	if (!g->started)
		return;
	g->started = false;
	generation_shutdown_first(g, site_set_count(g->sites));
}

bool
generation_busy(const struct generation *g)
{
	size_t i;

	for (i = 0; i < site_set_count(g->sites); i++)
		if (!generation_app_seen(g, i) &&
		    app_busy(site_set_get(g->sites, i)->app))
			return true;
	return false;
}

void
generation_log_sites(const struct generation *g)
{
	const struct site *s;
	size_t i, j;
	char names[512];
	int len;

	for (i = 0; i < site_set_count(g->sites); i++) {
		s = site_set_get(g->sites, i);
		names[0] = '\0';
		for (j = 0, len = 0;
		     s->names[j] != NULL && (size_t)len < sizeof(names); j++)
			len +=
			    snprintf(names + len, sizeof(names) - (size_t)len,
			        "%s%s", j > 0 ? ", " : "", s->names[j]);
		log_info("site %s%s: certificate %s", names,
		    i == 0 ? " (default)" : "",
		    s->cert != NULL ? tls_cert_fingerprint(s->cert) : "none");
	}
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
	site_set_free(g->sites);
	free(g->cfgs);
	for (i = 0; i < g->nspecs; i++) {
		free(g->specs[i].names);
		free(g->specs[i].cert_file);
		free(g->specs[i].key_file);
	}
	free(g->specs);
	free(g->hostname);
	free(g->cert_file);
	free(g->key_file);
	free(g->ticket_key_file);
	/* Last: it may free the apps, and what the opts pointed into. */
	if (g->release != NULL)
		g->release(g->release_arg);
	free(g);
}
