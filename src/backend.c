/*
 * backend.c - what the CGI and SCGI handlers share before a request
 * leaves for its backend: the one config (struct xz_backend_config) with
 * its defaults, its checks and a copy that owns its state keys, and the
 * relay's view of it (relay.c takes the answer back, for both).
 *
 * The handlers keep only what differs: cgi.c a process per request,
 * scgi.c a socket to a persistent server. The variables a backend gets
 * come from cgienv.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "xz_private.h"

/* Both defaults are SCGIConfig's; CGI reads a pipe's whole buffer. */
static void
backend_defaults(struct xz_backend_config *cfg, size_t buffer_size)
{
	cfg->timeout = 30.0;
	cfg->max_response_size = 1048576;
	cfg->buffer_size = buffer_size;
	cfg->no_inherit_environment = false;
	cfg->app_state_keys = NULL;
	cfg->max_duration = 0;
	cfg->max_processes = 64;
	cfg->titan = false;
	cfg->max_upload_size = XZ_DEFAULT_MAX_UPLOAD;
}

void
xz_scgi_config_init(struct xz_backend_config *cfg)
{
	backend_defaults(cfg, 8192);
}

void
xz_cgi_config_init(struct xz_backend_config *cfg)
{
	backend_defaults(cfg, 65536);
}

/* Why cfg cannot be used, or NULL. */
static const char *
backend_config_invalid(const struct xz_backend_config *cfg)
{
	if (!(cfg->timeout >= 0) || !isfinite(cfg->timeout))
		return "timeout must be greater than 0 (or 0: the default, 30)";
	if (!(cfg->max_duration >= 0) || !isfinite(cfg->max_duration))
		return "max_duration must be 0 (off) or more";
	return NULL;
}

/*
 * Zero means default, field by field (a zero-filled struct, as C callers
 * write them, is the document's defaults); XZ_UNLIMITED stays as it is.
 */
static void
backend_config_fill(struct xz_backend_config *cfg,
    const struct backend_kind *kind)
{
	struct xz_backend_config d;

	kind->defaults(&d);
	if (cfg->timeout == 0)
		cfg->timeout = d.timeout;
	if (cfg->max_response_size == 0)
		cfg->max_response_size = d.max_response_size;
	if (cfg->buffer_size == 0)
		cfg->buffer_size = d.buffer_size;
	if (cfg->max_processes == 0)
		cfg->max_processes = d.max_processes;
	if (cfg->max_upload_size == 0)
		cfg->max_upload_size = d.max_upload_size;
}

/* A NULL-ended copy of keys (NULL: none), or NULL when out of memory. */
static char **
backend_copy_keys(const char *const *keys)
{
	size_t n = 0, i;
	char **copy;

	while (keys != NULL && keys[n] != NULL)
		n++;
	if ((copy = calloc(n + 1, sizeof(*copy))) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if ((copy[i] = strdup(keys[i])) == NULL) {
			strlist_free(copy);
			return NULL;
		}
	return copy;
}

int
backend_config_copy(struct xz_backend_config *dst,
    const struct xz_backend_config *cfg, const struct backend_kind *kind,
    const char **why)
{
	char **keys;

	if (cfg != NULL)
		*dst = *cfg;
	else
		kind->defaults(dst);
	dst->app_state_keys = NULL; /* the caller's until copied */
	if ((*why = backend_config_invalid(dst)) != NULL)
		return XZ_EINVAL;
	backend_config_fill(dst, kind);
	if ((keys = backend_copy_keys(
	         cfg != NULL ? cfg->app_state_keys : NULL)) == NULL) {
		*why = "out of memory";
		return XZ_ENOMEM;
	}
	dst->app_state_keys = (const char *const *)keys;
	return XZ_OK;
}

void
backend_config_clear(struct xz_backend_config *cfg)
{
	/* The copy's keys are ours: backend_config_copy made them. */
	strlist_free((char **)(uintptr_t)cfg->app_state_keys);
	cfg->app_state_keys = NULL;
}

void
backend_handler_titan(struct xz_handler *h, const struct xz_backend_config *cfg)
{
	if (h == NULL)
		return;
	h->titan = cfg->titan;
	h->max_upload_size = cfg->max_upload_size;
}

void
backend_relay_cfg(struct relay_cfg *r, const struct xz_backend_config *cfg,
    const struct backend_kind *kind, const char *name)
{
	r->timeout = cfg->timeout;
	r->max_duration = cfg->max_duration;
	/* The relay's own convention: 0 is no limit. */
	r->max_response_size =
	    cfg->max_response_size == XZ_UNLIMITED ? 0 : cfg->max_response_size;
	r->buffer_size = cfg->buffer_size;
	r->error_status = kind->error_status;
	r->meta_timeout = kind->meta_timeout;
	r->meta_too_big = kind->meta_too_big;
	r->meta_bad = kind->meta_bad;
	r->name = name;
}
