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

static void
cfg_free_list(char **list)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; list[i] != NULL; i++)
		free(list[i]);
	free(list);
}

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
	rc = xz_static(app, s->prefix, path);
	if (rc == XZ_EINVAL && access(path, F_OK) != 0)
		cfg_error(cfg, root->line, "root %s: %s", path,
		    strerror(errno));
	else if (rc == XZ_EINVAL)
		cfg_error(cfg, root->line,
		    "root %s: not a directory, or prefix %s mounted twice",
		    path, s->prefix);
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
 * "db_url, api_key" -> a NULL-ended list kept in the section (so that it
 * lives as long as the config).
 */
static int
cfg_key_list(const char *v, char ***out)
{
	char **list = calloc(strlen(v) / 2 + 2, sizeof(char *));
	size_t n = 0, len;

	if (list == NULL)
		return XZ_ENOMEM;
	while (*v != '\0') {
		while (*v == ',' || *v == ' ' || *v == '\t')
			v++;
		len = strcspn(v, ", \t");
		if (len == 0)
			break;
		if ((list[n++] = strndup(v, len)) == NULL) {
			cfg_free_list(list);
			return XZ_ENOMEM;
		}
		v += len;
	}
	*out = list;
	return XZ_OK;
}

/*
 * The keys [scgi] and [cgi] share, written straight into the library's
 * config struct of either kind; state_keys is ours until handed over as
 * its app_state_keys.
 */
struct cfg_backend {
	double *timeout;
	double *max_duration;
	size_t *max_response_size;
	bool *inherit_environment;
	char **state_keys;
};

/* XZ_OK when taken, XZ_EAGAIN when not a shared key, or an error. */
static int
cfg_backend_key(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_backend *b)
{
	int rc;

	if (strcmp(e->key, "timeout") == 0)
		rc = cfg_seconds(e->value, b->timeout);
	else if (strcmp(e->key, "max_duration") == 0)
		rc = strcmp(e->value, "0") == 0 ?
		         (*b->max_duration = 0, XZ_OK) :
		         cfg_seconds(e->value, b->max_duration);
	else if (strcmp(e->key, "max_response_size") == 0)
		rc = cfg_size(e->value, b->max_response_size);
	else if (strcmp(e->key, "inherit_environment") == 0)
		rc = cfg_bool(e->value, b->inherit_environment);
	else if (strcmp(e->key, "app_state_keys") == 0) {
		cfg_free_list(b->state_keys);
		b->state_keys = NULL;
		rc = cfg_key_list(e->value, &b->state_keys);
	} else
		return XZ_EAGAIN;
	if (rc == XZ_EINVAL)
		return cfg_error(cfg, e->line, "%s: invalid value '%s'", e->key,
		    e->value);
	return rc;
}

static int
cfg_unknown_key(struct xz_config *cfg, const struct cfg_section *s,
    const struct cfg_entry *e)
{
	return cfg_error(cfg, e->line, "unknown key '%s' in [%s %s]", e->key,
	    s->kind, s->prefix);
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
cfg_scgi_key(struct xz_config *cfg, const struct cfg_section *s,
    const struct cfg_entry *e, struct xz_scgi_opts *o,
    struct xz_scgi_config *sc, struct cfg_backend *b, char **socket)
{
	int rc = cfg_backend_key(cfg, e, b), n;

	if (rc != XZ_EAGAIN)
		return rc;
	if (strcmp(e->key, "host") == 0)
		o->host = e->value;
	else if (strcmp(e->key, "port") == 0) {
		if (cfg_int(e->value, 1, 65535, &n) != XZ_OK)
			return cfg_error(cfg, e->line,
			    "port: invalid value '%s'", e->value);
		o->port = n;
	} else if (strcmp(e->key, "socket") == 0) {
		free(*socket);
		if ((*socket = cfg_path(cfg, e->value)) == NULL)
			return XZ_ENOMEM;
	} else if (strcmp(e->key, "buffer_size") == 0) {
		if (cfg_size(e->value, &sc->buffer_size) != XZ_OK ||
		    sc->buffer_size == 0)
			return cfg_error(cfg, e->line,
			    "buffer_size: invalid value '%s'", e->value);
	} else
		return cfg_unknown_key(cfg, s, e);
	return XZ_OK;
}

static int
cfg_apply_scgi(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	struct xz_scgi_opts o = { 0 };
	struct xz_scgi_config sc;
	struct cfg_backend b;
	char *socket = NULL;
	size_t i;
	int rc = XZ_OK;

	xz_scgi_config_init(&sc);
	b = (struct cfg_backend){ &sc.timeout, &sc.max_duration,
		&sc.max_response_size, &sc.inherit_environment, NULL };
	for (i = 0; i < s->nentries && rc == XZ_OK; i++)
		rc = cfg_scgi_key(cfg, s, &s->entries[i], &o, &sc, &b, &socket);
	if (rc == XZ_OK) {
		sc.app_state_keys = (const char *const *)b.state_keys;
		o.socket_path = socket;
		o.config = &sc;
		if ((rc = xz_scgi(app, s->prefix, &o)) != XZ_OK)
			rc = cfg_mount_error(cfg, s, app, rc);
	}
	free(socket);
	cfg_free_list(b.state_keys);
	return rc;
}

static int
cfg_cgi_key(struct xz_config *cfg, const struct cfg_section *s,
    const struct cfg_entry *e, struct xz_cgi_config *cc, struct cfg_backend *b,
    char **root, char **script)
{
	int rc = cfg_backend_key(cfg, e, b);

	if (rc != XZ_EAGAIN)
		return rc;
	if (strcmp(e->key, "root") == 0 || strcmp(e->key, "script") == 0) {
		char **slot = e->key[0] == 'r' ? root : script;

		free(*slot);
		if ((*slot = cfg_path(cfg, e->value)) == NULL)
			return XZ_ENOMEM;
	} else if (strcmp(e->key, "max_processes") == 0) {
		if (cfg_int(e->value, 1, 100000, &cc->max_processes) != XZ_OK)
			return cfg_error(cfg, e->line,
			    "max_processes: invalid value '%s'", e->value);
	} else
		return cfg_unknown_key(cfg, s, e);
	return XZ_OK;
}

static int
cfg_apply_cgi(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	struct xz_cgi_config cc;
	struct cfg_backend b;
	char *root = NULL, *script = NULL;
	size_t i;
	int rc = XZ_OK;

	xz_cgi_config_init(&cc);
	b = (struct cfg_backend){ &cc.timeout, &cc.max_duration,
		&cc.max_response_size, &cc.inherit_environment, NULL };
	for (i = 0; i < s->nentries && rc == XZ_OK; i++)
		rc = cfg_cgi_key(cfg, s, &s->entries[i], &cc, &b, &root,
		    &script);
	if (rc == XZ_OK && (root == NULL) == (script == NULL))
		rc = cfg_error(cfg, s->line,
		    "[cgi %s] needs either a root or a script", s->prefix);
	if (rc == XZ_OK) {
		cc.app_state_keys = (const char *const *)b.state_keys;
		rc = root != NULL ? xz_cgi(app, s->prefix, root, &cc) :
		                    xz_cgi_script(app, s->prefix, script, &cc);
		if (rc != XZ_OK)
			rc = cfg_mount_error(cfg, s, app, rc);
	}
	free(root);
	free(script);
	cfg_free_list(b.state_keys);
	return rc;
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
