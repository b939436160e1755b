/*
 * config.c - xitzin.conf (an INI file, read by libinih) into server
 * options and an app.
 *
 * Reading collects every "key = value" with its line, per section; then
 * each section kind ([server], [state], [static PREFIX], ...) checks its
 * own keys, so every error names the file and line. Relative paths are
 * taken from the config file's directory, not the working directory.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "xz_private.h"

struct cfg_entry {
	char *key;
	char *value;
	int line;
};

struct cfg_section {
	char *kind;   /* "server", "static", ... */
	char *prefix; /* the mount prefix; NULL for [server] and [state] */
	int line;     /* of its first key */
	struct cfg_entry *entries;
	size_t nentries;
};

struct xz_config {
	char *path;
	char *dir; /* the file's directory, for relative paths */
	struct cfg_section *sections;
	size_t nsections;
	struct xz_server_opts opts;
	char **listen;
	size_t nlisten;
	char *hostname, *cert, *key, *user, *chroot_dir;
	/* while reading */
	int line;
	char *err;
	size_t errlen;
	bool failed;
};

/* A mount kind: checks its keys and mounts itself on the app. */
struct cfg_kind {
	const char *name;
	int (*apply)(struct xz_config *, const struct cfg_section *,
	    struct xz_app *);
};

static int cfg_apply_static(struct xz_config *, const struct cfg_section *,
    struct xz_app *);
static int cfg_apply_scgi(struct xz_config *, const struct cfg_section *,
    struct xz_app *);
static int cfg_apply_cgi(struct xz_config *, const struct cfg_section *,
    struct xz_app *);

static const struct cfg_kind cfg_kinds[] = {
	{ "static", cfg_apply_static },
	{ "scgi", cfg_apply_scgi },
	{ "cgi", cfg_apply_cgi },
};

static int __attribute__((format(printf, 3, 4)))
cfg_error(struct xz_config *cfg, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (cfg->failed)
		return XZ_EPARSE;
	cfg->failed = true;
	n = snprintf(cfg->err, cfg->errlen, "%s:%d: ", cfg->path, line);
	if (n < 0 || (size_t)n >= cfg->errlen)
		return XZ_EPARSE;
	va_start(ap, fmt);
	vsnprintf(cfg->err + n, cfg->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return XZ_EPARSE;
}

static const struct cfg_kind *
cfg_find_kind(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(cfg_kinds) / sizeof(*cfg_kinds); i++)
		if (strcmp(cfg_kinds[i].name, name) == 0)
			return &cfg_kinds[i];
	return NULL;
}

/* "[static /docs]" -> kind "static", prefix "/docs". */
static struct cfg_section *
cfg_section(struct xz_config *cfg, const char *name, int line)
{
	struct cfg_section *s;
	const char *sp = strchr(name, ' ');
	size_t i, kindlen = sp != NULL ? (size_t)(sp - name) : strlen(name);

	for (i = 0; i < cfg->nsections; i++) {
		s = &cfg->sections[i];
		if (strlen(s->kind) == kindlen &&
		    strncmp(s->kind, name, kindlen) == 0 &&
		    ((sp == NULL && s->prefix == NULL) ||
		        (sp != NULL && s->prefix != NULL &&
		            strcmp(s->prefix, sp + 1) == 0)))
			return s;
	}
	s = realloc(cfg->sections, (cfg->nsections + 1) * sizeof(*s));
	if (s == NULL)
		return NULL;
	cfg->sections = s;
	s = &s[cfg->nsections++];
	memset(s, 0, sizeof(*s));
	s->line = line;
	s->kind = strndup(name, kindlen);
	if (sp != NULL) {
		while (*sp == ' ')
			sp++;
		s->prefix = strdup(sp);
	}
	return s;
}

static bool
cfg_section_known(const char *kind, bool has_prefix)
{
	if (strcmp(kind, "server") == 0 || strcmp(kind, "state") == 0)
		return !has_prefix;
	return has_prefix && cfg_find_kind(kind) != NULL;
}

static int
cfg_on_line(void *user, const char *section, const char *key, const char *value,
    int line)
{
	struct xz_config *cfg = user;
	struct cfg_section *s;
	struct cfg_entry *e;

	s = cfg_section(cfg, section, line);
	if (s == NULL || s->kind == NULL)
		return 0;
	if (!cfg_section_known(s->kind, s->prefix != NULL)) {
		cfg_error(cfg, line, "unknown section [%s]", section);
		return 0;
	}
	e = realloc(s->entries, (s->nentries + 1) * sizeof(*e));
	if (e == NULL)
		return 0;
	s->entries = e;
	e = &e[s->nentries++];
	e->key = strdup(key);
	e->value = strdup(value);
	e->line = line;
	return e->key != NULL && e->value != NULL;
}

/*
 * libinih (built without INI_HANDLER_LINENO) reports lines only through
 * ini_parse's return; we count them ourselves by reading with a stream
 * reader that tracks the line number.
 */
struct cfg_reader {
	FILE *f;
	struct xz_config *cfg;
};

static char *
cfg_read_line(char *buf, int size, void *stream)
{
	struct cfg_reader *r = stream;

	if (fgets(buf, size, r->f) == NULL)
		return NULL;
	r->cfg->line++;
	return buf;
}

static int
cfg_handler(void *user, const char *section, const char *key, const char *value)
{
	struct cfg_reader *r = user;

	if (section[0] == '\0') {
		cfg_error(r->cfg, r->cfg->line, "'%s' outside any section",
		    key);
		return 0;
	}
	return cfg_on_line(r->cfg, section, key, value, r->cfg->line);
}

/* An absolute path, or one relative to the config file's directory. */
static char *
cfg_path(const struct xz_config *cfg, const char *p)
{
	char *out;

	if (p[0] == '/' || cfg->dir == NULL)
		return strdup(p);
	if (asprintf(&out, "%s/%s", cfg->dir, p) == -1)
		return NULL;
	return out;
}

static int
cfg_bool(const char *v, bool *out)
{
	if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
	    strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
	         strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return XZ_EINVAL;
	return XZ_OK;
}

/* Seconds, fractions allowed: "30", "2.5". */
static int
cfg_seconds(const char *v, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !(d > 0) || d > 86400)
		return XZ_EINVAL;
	*out = d;
	return XZ_OK;
}

static int
cfg_int(const char *v, long lo, long hi, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi)
		return XZ_EINVAL;
	*out = (int)n;
	return XZ_OK;
}

static int
cfg_unsigned(const char *v, unsigned *out)
{
	int n;

	if (cfg_int(v, 0, 10000000, &n) != XZ_OK)
		return XZ_EINVAL;
	*out = (unsigned)n;
	return XZ_OK;
}

static int
cfg_add_listen(struct xz_config *cfg, const char *v)
{
	char **l = realloc(cfg->listen, (cfg->nlisten + 2) * sizeof(char *));

	if (l == NULL)
		return XZ_ENOMEM;
	cfg->listen = l;
	if ((l[cfg->nlisten] = strdup(v)) == NULL)
		return XZ_ENOMEM;
	l[++cfg->nlisten] = NULL;
	return XZ_OK;
}

static int
cfg_set_path(struct xz_config *cfg, char **slot, const char *v)
{
	free(*slot);
	return (*slot = cfg_path(cfg, v)) != NULL ? XZ_OK : XZ_ENOMEM;
}

static int
cfg_server_key(struct xz_config *cfg, const struct cfg_entry *e)
{
	struct xz_server_opts *o = &cfg->opts;
	bool b;
	int rc = XZ_EINVAL;

	if (strcmp(e->key, "listen") == 0)
		rc = cfg_add_listen(cfg, e->value);
	else if (strcmp(e->key, "hostname") == 0) {
		free(cfg->hostname);
		rc = (cfg->hostname = strdup(e->value)) ? XZ_OK : XZ_ENOMEM;
	} else if (strcmp(e->key, "cert") == 0)
		rc = cfg_set_path(cfg, &cfg->cert, e->value);
	else if (strcmp(e->key, "key") == 0)
		rc = cfg_set_path(cfg, &cfg->key, e->value);
	else if (strcmp(e->key, "key_type") == 0) {
		if (strcmp(e->value, "ecdsa") == 0 ||
		    strcmp(e->value, "ed25519") == 0) {
			o->key_ed25519 = strcmp(e->value, "ed25519") == 0;
			rc = XZ_OK;
		}
	} else if (strcmp(e->key, "workers") == 0)
		rc = cfg_int(e->value, 1, 1024, &o->workers);
	else if (strcmp(e->key, "request_timeout") == 0)
		rc = cfg_seconds(e->value, &o->request_timeout);
	else if (strcmp(e->key, "write_timeout") == 0)
		rc = cfg_seconds(e->value, &o->write_timeout);
	else if (strcmp(e->key, "send_min_rate") == 0) {
		unsigned rate;

		/* 0 in the file turns the check off (-1 to the library). */
		if ((rc = cfg_unsigned(e->value, &rate)) == XZ_OK)
			o->send_min_rate = rate == 0 ? -1 : (long)rate;
	} else if (strcmp(e->key, "drain_timeout") == 0)
		rc = cfg_seconds(e->value, &o->drain_timeout);
	else if (strcmp(e->key, "max_connections") == 0)
		rc = cfg_unsigned(e->value, &o->max_connections);
	else if (strcmp(e->key, "max_connections_per_address") == 0)
		rc = cfg_unsigned(e->value, &o->max_connections_per_address);
	else if (strcmp(e->key, "user") == 0) {
		free(cfg->user);
		rc = (cfg->user = strdup(e->value)) ? XZ_OK : XZ_ENOMEM;
	} else if (strcmp(e->key, "chroot") == 0)
		rc = cfg_set_path(cfg, &cfg->chroot_dir, e->value);
	else if (strcmp(e->key, "access_log") == 0) {
		if ((rc = cfg_bool(e->value, &b)) == XZ_OK)
			o->quiet = !b;
	} else
		return cfg_error(cfg, e->line, "unknown key '%s' in [server]",
		    e->key);
	if (rc == XZ_EINVAL)
		return cfg_error(cfg, e->line, "%s: invalid value '%s'", e->key,
		    e->value);
	return rc;
}

static int
cfg_read_server(struct xz_config *cfg, const struct cfg_section *s)
{
	size_t i;
	int rc;

	for (i = 0; i < s->nentries; i++)
		if ((rc = cfg_server_key(cfg, &s->entries[i])) != XZ_OK)
			return rc;
	return XZ_OK;
}

/* Defaults where the file is silent, then the options point at them. */
static int
cfg_finish_opts(struct xz_config *cfg)
{
	if (cfg->hostname == NULL &&
	    (cfg->hostname = strdup("localhost")) == NULL)
		return XZ_ENOMEM;
	if (cfg->cert == NULL &&
	    cfg_set_path(cfg, &cfg->cert, "certs/localhost.crt") != XZ_OK)
		return XZ_ENOMEM;
	if (cfg->key == NULL &&
	    cfg_set_path(cfg, &cfg->key, "certs/localhost.key") != XZ_OK)
		return XZ_ENOMEM;
	if (cfg->nlisten == 0 && cfg_add_listen(cfg, "0.0.0.0:1965") != XZ_OK)
		return XZ_ENOMEM;
	cfg->opts.listen = (const char *const *)cfg->listen;
	cfg->opts.hostname = cfg->hostname;
	cfg->opts.cert_file = cfg->cert;
	cfg->opts.key_file = cfg->key;
	cfg->opts.user = cfg->user;
	cfg->opts.chroot_dir = cfg->chroot_dir;
	return XZ_OK;
}

static int
cfg_parse_file(struct xz_config *cfg, const char *path)
{
	struct cfg_reader r = { NULL, cfg };
	int rc;

	if ((r.f = fopen(path, "r")) == NULL) {
		snprintf(cfg->err, cfg->errlen, "%s: %s", path,
		    strerror(errno));
		return XZ_EIO;
	}
	rc = ini_parse_stream(cfg_read_line, &r, cfg_handler, &r);
	fclose(r.f);
	if (rc == 0 && !cfg->failed)
		return XZ_OK;
	if (!cfg->failed)
		cfg_error(cfg, rc > 0 ? rc : 0, "syntax error");
	return XZ_EPARSE;
}

static const struct cfg_section *
cfg_find(const struct xz_config *cfg, const char *kind)
{
	size_t i;

	for (i = 0; i < cfg->nsections; i++)
		if (strcmp(cfg->sections[i].kind, kind) == 0 &&
		    cfg->sections[i].prefix == NULL)
			return &cfg->sections[i];
	return NULL;
}

struct xz_config *
xz_config_load(const char *path, char *err, size_t errlen)
{
	struct xz_config *cfg = calloc(1, sizeof(*cfg));
	const struct cfg_section *server;
	const char *slash;

	if (cfg == NULL || (cfg->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "out of memory");
		free(cfg);
		return NULL;
	}
	cfg->err = err;
	cfg->errlen = errlen;
	if ((slash = strrchr(path, '/')) != NULL)
		cfg->dir = strndup(path, (size_t)(slash - path));
	if (cfg_parse_file(cfg, path) != XZ_OK ||
	    ((server = cfg_find(cfg, "server")) != NULL &&
	        cfg_read_server(cfg, server) != XZ_OK) ||
	    cfg_finish_opts(cfg) != XZ_OK) {
		if (!cfg->failed && err[0] == '\0')
			snprintf(err, errlen, "out of memory");
		xz_config_free(cfg);
		return NULL;
	}
	return cfg;
}

const struct xz_server_opts *
xz_config_server_opts(const struct xz_config *cfg)
{
	return &cfg->opts;
}

static int
cfg_apply_state(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	size_t i;

	for (i = 0; i < s->nentries; i++)
		if (xz_state_set(app, s->entries[i].key, s->entries[i].value) !=
		    XZ_OK)
			return cfg_error(cfg, s->entries[i].line,
			    "out of memory");
	return XZ_OK;
}

/*
 * xz_static's reason, its "static PREFIX: " lead dropped: the line says
 * which section ("root /srv: No such file or directory").
 */
static void
cfg_static_error(struct xz_config *cfg, int line, const char *prefix,
    const char *why)
{
	size_t n = strlen("static ") + strlen(prefix);

	if (strncmp(why, "static ", 7) == 0 &&
	    strncmp(why + 7, prefix, strlen(prefix)) == 0 &&
	    strncmp(why + n, ": ", 2) == 0)
		why += n + 2;
	cfg_error(cfg, line, "%s", why);
}

static int
cfg_apply_static(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	const struct cfg_entry *root = NULL;
	char *path;
	size_t i;
	int rc;

	for (i = 0; i < s->nentries; i++) {
		if (strcmp(s->entries[i].key, "root") != 0)
			return cfg_error(cfg, s->entries[i].line,
			    "unknown key '%s' in [static %s]",
			    s->entries[i].key, s->prefix);
		root = &s->entries[i];
	}
	if (root == NULL)
		return cfg_error(cfg, s->line, "[static %s] needs a root",
		    s->prefix);
	if ((path = cfg_path(cfg, root->value)) == NULL)
		return XZ_ENOMEM;
	if ((rc = xz_static(app, s->prefix, path)) != XZ_OK)
		cfg_static_error(cfg, root->line, s->prefix, xz_app_error(app));
	free(path);
	return rc;
}

/* "1048576", "10M", "512K", "1G"; "0" and "unlimited" mean no limit. */
static int
cfg_size(const char *v, size_t *out)
{
	unsigned long long n, mult = 1;
	char *end;

	if (strcasecmp(v, "unlimited") == 0) {
		*out = 0;
		return XZ_OK;
	}
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || end == v || v[0] == '-')
		return XZ_EINVAL;
	if (*end != '\0') {
		const char *units = "KMG", *u = strchr(units, toupper(*end));

		if (u == NULL || *u == '\0' || end[1] != '\0')
			return XZ_EINVAL;
		mult = 1ULL << (10 * (u - units + 1));
	}
	if (n > SIZE_MAX / mult)
		return XZ_EINVAL;
	*out = (size_t)(n * mult);
	return XZ_OK;
}

/*
 * What an [scgi] or [cgi] section gathers before it is mounted: the
 * shared keys go straight into the library's one backend config; the
 * others are the kind's own (where the backend is).
 */
struct cfg_backend {
	struct xz_backend_config bc;
	char **state_keys;            /* bc.app_state_keys, ours */
	struct xz_scgi_opts scgi;     /* host, port */
	char *socket, *root, *script; /* paths, from the config's directory */
};

/* What [scgi] and [cgi] do differently; the rest is cfg_apply_backend. */
struct cfg_backend_kind {
	void (*defaults)(struct xz_backend_config *); /* xz_*_config_init */
	/* A key of its own: XZ_OK, XZ_EINVAL, XZ_ENOMEM; XZ_EAGAIN: not one */
	int (*key)(struct xz_config *, const struct cfg_entry *,
	    struct cfg_backend *);
	/* Mounts b at s->prefix: XZ_OK or the library's (or cfg_error's) */
	int (*mount)(struct xz_config *, const struct cfg_section *,
	    struct cfg_backend *, struct xz_app *);
};

/* The keys [scgi] and [cgi] share; as cfg_backend_kind.key. */
static int
cfg_backend_key(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_backend *b)
{
	const char *k = e->key, *v = e->value;

	if (strcmp(k, "timeout") == 0)
		return cfg_seconds(v, &b->bc.timeout);
	if (strcmp(k, "max_duration") == 0 && strcmp(v, "0") == 0) {
		b->bc.max_duration = 0;
		return XZ_OK;
	}
	if (strcmp(k, "max_duration") == 0)
		return cfg_seconds(v, &b->bc.max_duration);
	if (strcmp(k, "max_response_size") == 0) {
		if (cfg_size(v, &b->bc.max_response_size) != XZ_OK)
			return XZ_EINVAL;
		if (b->bc.max_response_size == 0) /* the file's "no limit" */
			b->bc.max_response_size = XZ_UNLIMITED;
		return XZ_OK;
	}
	if (strcmp(k, "buffer_size") == 0) {
		/* A size, but "0" (or "unlimited") reads nothing at all. */
		if (cfg_size(v, &b->bc.buffer_size) != XZ_OK)
			return XZ_EINVAL;
		return b->bc.buffer_size > 0 ? XZ_OK : XZ_EINVAL;
	}
	if (strcmp(k, "inherit_environment") == 0) {
		bool on;

		if (cfg_bool(v, &on) != XZ_OK)
			return XZ_EINVAL;
		b->bc.no_inherit_environment = !on;
		return XZ_OK;
	}
	if (strcmp(k, "titan") == 0) /* uploads become the request body */
		return cfg_bool(v, &b->bc.titan);
	if (strcmp(k, "max_upload_size") == 0) {
		if (cfg_size(v, &b->bc.max_upload_size) != XZ_OK)
			return XZ_EINVAL;
		return b->bc.max_upload_size > 0 ? XZ_OK : XZ_EINVAL;
	}
	if (strcmp(k, "app_state_keys") != 0)
		return XZ_EAGAIN;
	strlist_free(b->state_keys);
	return (b->state_keys = strlist_split(v)) != NULL ? XZ_OK : XZ_ENOMEM;
}

/* Reads s's keys into b, from the kind's defaults: shared ones first. */
static int
cfg_read_backend(struct xz_config *cfg, const struct cfg_section *s,
    struct cfg_backend *b, const struct cfg_backend_kind *kind)
{
	const struct cfg_entry *e;
	size_t i;
	int rc;

	for (i = 0; i < s->nentries; i++) {
		e = &s->entries[i];
		if ((rc = cfg_backend_key(cfg, e, b)) == XZ_EAGAIN)
			rc = kind->key(cfg, e, b);
		if (rc == XZ_EAGAIN)
			return cfg_error(cfg, e->line,
			    "unknown key '%s' in [%s %s]", e->key, s->kind,
			    s->prefix);
		if (rc == XZ_EINVAL)
			return cfg_error(cfg, e->line, "%s: invalid value '%s'",
			    e->key, e->value);
		if (rc != XZ_OK)
			return rc;
	}
	b->bc.app_state_keys = (const char *const *)b->state_keys;
	return XZ_OK;
}

/* Registration failed: the library says why; the line is the section's. */
static int
cfg_mount_error(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app, int rc)
{
	const char *why = xz_app_error(app);

	return cfg_error(cfg, s->line, "[%s %s]: %s", s->kind, s->prefix,
	    why[0] != '\0' ? why : xz_strerror(rc));
}

static int
cfg_apply_backend(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app, const struct cfg_backend_kind *kind)
{
	struct cfg_backend b = { 0 };
	int rc;

	kind->defaults(&b.bc);
	if ((rc = cfg_read_backend(cfg, s, &b, kind)) == XZ_OK &&
	    (rc = kind->mount(cfg, s, &b, app)) != XZ_OK)
		rc = cfg_mount_error(cfg, s, app, rc); /* unless said already */
	strlist_free(b.state_keys);
	free(b.socket);
	free(b.root);
	free(b.script);
	return rc;
}

/* [scgi]: where the backend is. */
static int
cfg_scgi_key(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_backend *b)
{
	if (strcmp(e->key, "host") == 0) {
		b->scgi.host = e->value;
		return XZ_OK;
	}
	if (strcmp(e->key, "port") == 0)
		return cfg_int(e->value, 1, 65535, &b->scgi.port);
	if (strcmp(e->key, "socket") == 0)
		return cfg_set_path(cfg, &b->socket, e->value);
	return XZ_EAGAIN;
}

static int
cfg_scgi_mount(struct xz_config *cfg, const struct cfg_section *s,
    struct cfg_backend *b, struct xz_app *app)
{
	b->scgi.socket_path = b->socket;
	b->scgi.config = b->bc;
	return xz_scgi(app, s->prefix, &b->scgi);
}

/* [cgi]: which scripts, and how many at once. */
static int
cfg_cgi_key(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_backend *b)
{
	if (strcmp(e->key, "root") == 0)
		return cfg_set_path(cfg, &b->root, e->value);
	if (strcmp(e->key, "script") == 0)
		return cfg_set_path(cfg, &b->script, e->value);
	if (strcmp(e->key, "max_processes") == 0)
		return cfg_int(e->value, 1, 100000, &b->bc.max_processes);
	return XZ_EAGAIN;
}

static int
cfg_cgi_mount(struct xz_config *cfg, const struct cfg_section *s,
    struct cfg_backend *b, struct xz_app *app)
{
	if ((b->root == NULL) == (b->script == NULL))
		return cfg_error(cfg, s->line,
		    "[cgi %s] needs either a root or a script", s->prefix);
	if (b->root != NULL)
		return xz_cgi(app, s->prefix, b->root, &b->bc);
	return xz_cgi_script(app, s->prefix, b->script, &b->bc);
}

static const struct cfg_backend_kind cfg_scgi = {
	.defaults = xz_scgi_config_init,
	.key = cfg_scgi_key,
	.mount = cfg_scgi_mount,
};
static const struct cfg_backend_kind cfg_cgi = {
	.defaults = xz_cgi_config_init,
	.key = cfg_cgi_key,
	.mount = cfg_cgi_mount,
};

static int
cfg_apply_scgi(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	return cfg_apply_backend(cfg, s, app, &cfg_scgi);
}

static int
cfg_apply_cgi(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	return cfg_apply_backend(cfg, s, app, &cfg_cgi);
}

int
xz_config_apply(struct xz_config *cfg, struct xz_app *app, char *err,
    size_t errlen)
{
	const struct cfg_section *state = cfg_find(cfg, "state");
	size_t i;
	int rc;

	cfg->err = err;
	cfg->errlen = errlen;
	cfg->failed = false;
	/* State first: mounts may read it (SCGI app_state_keys). */
	if (state != NULL && (rc = cfg_apply_state(cfg, state, app)) != XZ_OK)
		return rc;
	for (i = 0; i < cfg->nsections; i++) {
		const struct cfg_section *s = &cfg->sections[i];
		const struct cfg_kind *k;

		if (s->prefix == NULL || (k = cfg_find_kind(s->kind)) == NULL)
			continue;
		if ((rc = k->apply(cfg, s, app)) != XZ_OK) {
			if (!cfg->failed)
				cfg_error(cfg, s->line, "[%s %s]: %s", s->kind,
				    s->prefix, xz_strerror(rc));
			return rc;
		}
	}
	return XZ_OK;
}

void
xz_config_free(struct xz_config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nsections; i++) {
		struct cfg_section *s = &cfg->sections[i];

		for (j = 0; j < s->nentries; j++) {
			free(s->entries[j].key);
			free(s->entries[j].value);
		}
		free(s->entries);
		free(s->kind);
		free(s->prefix);
	}
	for (i = 0; i < cfg->nlisten; i++)
		free(cfg->listen[i]);
	free(cfg->listen);
	free(cfg->sections);
	free(cfg->hostname);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->user);
	free(cfg->chroot_dir);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}
