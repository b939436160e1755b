/*
 * config.c - xitzin.conf (an INI file, read by libinih) into server
 * options and an app.
 *
 * Reading collects every "key = value" with its line, per section; then
 * each section kind ([server], [state], [static PREFIX], ...) checks its
 * own keys, so every error names the file and line. Relative paths are
 * taken from the config file's directory, not the working directory.
 *
 * [host NAME] sections are sites of their own: each gets an app (ours,
 * freed with the config) for its [state NAME] and its mounts
 * ([static NAME /]), and joins the server through xz_config_add_sites.
 *
 * Loading also checks what starting the server would find wrong (listen
 * addresses, the user, the chroot, the certificate and key), so that
 * `xitzin -t` says all of it; and every error is reported, not the first
 * alone: they are gathered, then written sorted by line.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <pwd.h>

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
	bool said; /* an error already, kept for the duplicate check only */
};

struct cfg_section {
	char *kind;   /* "server", "static", ... */
	char *host;   /* [host NAME], [state NAME], [static NAME /]; or NULL */
	char *prefix; /* the mount prefix; NULL for [server] and [state] */
	int line;     /* of its [header] */
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
	char *ticket_key; /* ticket_key_file, resolved */
	char *metrics_listen;
	struct xz_log_opts log;
	char *access_log, *error_log; /* files, or stderr, syslog, off */
	/* while reading */
	int line;
	int nheaders;     /* "[...]" lines read so far */
	int seen;         /* nheaders when the last key was read */
	int header_line;  /* of the last "[...]" */
	bool skip;        /* the keys of a duplicate section */
	int unknown_said; /* nheaders when "unknown section" was said */
	/* errors, in the order found; cfg_flush_errors writes them out */
	struct cfg_err {
		int line;
		char *msg;
	} * errs;
	size_t nerrs;
	bool nomem;                /* an error could not even be recorded */
	struct cfg_access *access; /* client-certificate rules being built */
	struct cfg_host *hosts;    /* the [host] sections, in order */
	size_t nhosts;
	char *err;
	size_t errlen;
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

static void cfg_check_mounts(struct xz_config *);

static const struct cfg_kind cfg_kinds[] = {
	{ "static", cfg_apply_static },
	{ "scgi", cfg_apply_scgi },
	{ "cgi", cfg_apply_cgi },
};

/* Records an error at line (0: the file as a whole); returns XZ_EPARSE. */
static int __attribute__((format(printf, 3, 4)))
cfg_error(struct xz_config *cfg, int line, const char *fmt, ...)
{
	struct cfg_err *e;
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	e = n < 0 ? NULL : realloc(cfg->errs, (cfg->nerrs + 1) * sizeof(*e));
	if (e == NULL) {
		if (n >= 0)
			free(msg);
		cfg->nomem = true;
		return XZ_EPARSE;
	}
	cfg->errs = e;
	cfg->errs[cfg->nerrs].line = line;
	cfg->errs[cfg->nerrs++].msg = msg;
	return XZ_EPARSE;
}

static bool
cfg_failed(const struct xz_config *cfg)
{
	return cfg->nerrs > 0 || cfg->nomem;
}

static void
cfg_clear_errors(struct xz_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nerrs; i++)
		free(cfg->errs[i].msg);
	free(cfg->errs);
	cfg->errs = NULL;
	cfg->nerrs = 0;
	cfg->nomem = false;
}

/*
 * Writes the errors to cfg->err, one "file:line: reason" a line, sorted
 * by line (stable: a line's errors keep their order), and forgets them.
 */
static void
cfg_flush_errors(struct xz_config *cfg)
{
	size_t i, j, len = 0;
	struct cfg_err t;
	int n;

	for (i = 1; i < cfg->nerrs; i++)
		for (j = i; j > 0 && cfg->errs[j - 1].line > cfg->errs[j].line;
		     j--) {
			t = cfg->errs[j];
			cfg->errs[j] = cfg->errs[j - 1];
			cfg->errs[j - 1] = t;
		}
	if (cfg->errlen > 0)
		cfg->err[0] = '\0';
	for (i = 0; i < cfg->nerrs && len < cfg->errlen; i++) {
		n = snprintf(cfg->err + len, cfg->errlen - len, "%s%s:%d: %s",
		    i > 0 ? "\n" : "", cfg->path, cfg->errs[i].line,
		    cfg->errs[i].msg);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	if (cfg->nomem && len < cfg->errlen)
		snprintf(cfg->err + len, cfg->errlen - len, "%sout of memory",
		    len > 0 ? "\n" : "");
	cfg_clear_errors(cfg);
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

/*
 * A section's name in its parts: "[static /docs]" is kind "static",
 * prefix "/docs"; "[static example.org /docs]" the same for the site
 * example.org (a first word not starting with '/' names a [host]);
 * "[state example.org]" and "[host example.org]" name a host alone.
 * The parts are malloc'd (NULL when absent); false when out of memory.
 */
static bool
cfg_split_name(const char *name, char **kind, char **host, char **prefix)
{
	const char *sp = strchr(name, ' '), *rest, *sp2;
	bool ok = true;

	*kind = *host = *prefix = NULL;
	if ((*kind = strndup(name,
	         sp != NULL ? (size_t)(sp - name) : strlen(name))) == NULL)
		return false;
	if (sp == NULL)
		return true;
	for (rest = sp; *rest == ' '; rest++)
		;
	if (strcmp(*kind, "host") == 0 || strcmp(*kind, "state") == 0)
		ok = (*host = strdup(rest)) != NULL;
	else if (rest[0] != '/' && (sp2 = strchr(rest, ' ')) != NULL) {
		ok = (*host = strndup(rest, (size_t)(sp2 - rest))) != NULL;
		while (*sp2 == ' ')
			sp2++;
		ok = ok && (*prefix = strdup(sp2)) != NULL;
	} else
		ok = (*prefix = strdup(rest)) != NULL;
	return ok;
}

static bool
cfg_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The section of that name already read, or NULL (also out of memory). */
static struct cfg_section *
cfg_section_find(struct xz_config *cfg, const char *name)
{
	struct cfg_section *s, *found = NULL;
	char *kind, *host, *prefix;
	size_t i;

	if (cfg_split_name(name, &kind, &host, &prefix))
		for (i = 0; i < cfg->nsections && found == NULL; i++) {
			s = &cfg->sections[i];
			if (strcmp(s->kind, kind) == 0 &&
			    cfg_same(s->host, host) &&
			    cfg_same(s->prefix, prefix))
				found = s;
		}
	free(kind);
	free(host);
	free(prefix);
	return found;
}

static struct cfg_section *
cfg_section_add(struct xz_config *cfg, const char *name, int line)
{
	struct cfg_section *s;

	s = realloc(cfg->sections, (cfg->nsections + 1) * sizeof(*s));
	if (s == NULL)
		return NULL;
	cfg->sections = s;
	s = &s[cfg->nsections];
	memset(s, 0, sizeof(*s));
	s->line = line;
	if (!cfg_split_name(name, &s->kind, &s->host, &s->prefix)) {
		free(s->kind);
		free(s->host);
		free(s->prefix);
		return NULL;
	}
	cfg->nsections++;
	return s;
}

/*
 * [server], [state], [state HOST], [host NAME], or a mount kind with its
 * prefix ([static /], [static HOST /]).
 */
static bool
cfg_name_known(const char *name)
{
	const char *sp = strchr(name, ' ');
	char kind[16];

	if (sp == NULL)
		return strcmp(name, "server") == 0 ||
		       strcmp(name, "state") == 0;
	if ((size_t)(sp - name) >= sizeof(kind))
		return false;
	snprintf(kind, sizeof(kind), "%.*s", (int)(sp - name), name);
	return cfg_find_kind(kind) != NULL || strcmp(kind, "host") == 0 ||
	       strcmp(kind, "state") == 0;
}

/* Keys that may be given more than once, each adding a value. */
static bool
cfg_key_repeats(const struct cfg_section *s, const char *key)
{
	return (strcmp(s->kind, "server") == 0 && strcmp(key, "listen") == 0) ||
	       (strcmp(s->kind, "scgi") == 0 && strcmp(key, "backend") == 0);
}

/*
 * The section a key belongs to: a header seen again is a duplicate
 * section (its keys are skipped), a new one is added.
 */
static struct cfg_section *
cfg_key_section(struct xz_config *cfg, const char *name, bool *nomem)
{
	struct cfg_section *s = cfg_section_find(cfg, name);

	*nomem = false;
	if (cfg->seen != cfg->nheaders) { /* the first key under a header */
		cfg->seen = cfg->nheaders;
		cfg->skip = false;
		if (s != NULL) {
			cfg_error(cfg, cfg->header_line,
			    "duplicate section [%s] (first at line %d)", name,
			    s->line);
			cfg->skip = true;
			return NULL;
		}
	}
	if (cfg->skip)
		return NULL;
	if (s == NULL &&
	    (s = cfg_section_add(cfg, name, cfg->header_line)) == NULL) {
		*nomem = true;
		return NULL;
	}
	return s;
}

static int
cfg_on_line(void *user, const char *section, const char *key, const char *value,
    int line)
{
	struct xz_config *cfg = user;
	struct cfg_section *s;
	struct cfg_entry *e;
	size_t i;
	bool nomem;

	if (!cfg_name_known(section)) {
		if (cfg->unknown_said != cfg->nheaders) /* once a section */
			cfg_error(cfg, line, "unknown section [%s]", section);
		cfg->unknown_said = cfg->nheaders;
		return 1;
	}
	if ((s = cfg_key_section(cfg, section, &nomem)) == NULL)
		return !nomem;
	for (i = 0; i < s->nentries; i++)
		if (strcmp(s->entries[i].key, key) == 0 &&
		    !cfg_key_repeats(s, key)) {
			cfg_error(cfg, line,
			    "duplicate key '%s' (first at line %d)", key,
			    s->entries[i].line);
			return 1;
		}
	e = realloc(s->entries, (s->nentries + 1) * sizeof(*e));
	if (e == NULL)
		return 0;
	s->entries = e;
	e = &e[s->nentries];
	e->key = strdup(key);
	e->value = strdup(value);
	if (e->key == NULL || e->value == NULL) {
		free(e->key);
		free(e->value);
		return 0;
	}
	s->nentries++;
	e->line = line;
	/* [state] values are the app's; elsewhere an empty one is a slip. */
	e->said = value[0] == '\0' && strcmp(s->kind, "state") != 0;
	if (e->said)
		cfg_error(cfg, line, "%s: no value given", key);
	return 1;
}

/*
 * libinih calls us for keys alone, but a [host NAME] is a site even with
 * no key (its certificate then generated): its section is made here, as
 * its first key would (a duplicate is said the same way).
 */
static void
cfg_on_header(struct xz_config *cfg, const char *text)
{
	const char *end = strchr(text, ']');
	char *name;
	bool nomem = false;

	if (end == NULL || strncmp(text, "host ", 5) != 0)
		return;
	if ((name = strndup(text, (size_t)(end - text))) == NULL ||
	    (cfg_key_section(cfg, name, &nomem) == NULL && nomem))
		cfg->nomem = true;
	free(name);
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

	const char *p;

	if (fgets(buf, size, r->f) == NULL)
		return NULL;
	r->cfg->line++;
	/* libinih calls us for keys only: a header is seen here. */
	for (p = buf; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '[') {
		r->cfg->nheaders++;
		r->cfg->header_line = r->cfg->line;
		cfg_on_header(r->cfg, p + 1);
	}
	return buf;
}

static int
cfg_handler(void *user, const char *section, const char *key, const char *value)
{
	struct cfg_reader *r = user;

	/*
	 * Our errors are recorded, and reading goes on to find the next;
	 * 0 goes back to libinih for out of memory alone, so that a line
	 * it returns is a syntax error.
	 */
	if (section[0] == '\0') {
		cfg_error(r->cfg, r->cfg->line, "'%s' outside any section",
		    key);
		return 1;
	}
	if (cfg_on_line(r->cfg, section, key, value, r->cfg->line))
		return 1;
	r->cfg->nomem = true;
	return 1;
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

/* Keys [server] and every mount section take (read by apply). */
static bool
cfg_mount_common_key(const char *key)
{
	return strcmp(key, "rate_limit") == 0 || strcmp(key, "rate_burst") == 0;
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

/* XZ_OK when path is a directory; otherwise said, with what it is for. */
static int
cfg_check_dir(struct xz_config *cfg, int line, const char *what,
    const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return cfg_error(cfg, line, "%s %s: %s", what, path,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cfg_error(cfg, line, "%s %s: not a directory", what,
		    path);
	return XZ_OK;
}

static int
cfg_set_path(struct xz_config *cfg, char **slot, const char *v)
{
	free(*slot);
	return (*slot = cfg_path(cfg, v)) != NULL ? XZ_OK : XZ_ENOMEM;
}

/*
 * access_log and error_log: stderr, syslog, off or a file (relative to the
 * config's directory); access_log also takes the boolean it used to be.
 */
static int
cfg_log_dest(struct xz_config *cfg, const char *v, char **slot, bool *on)
{
	bool b;

	if (v[0] == '\0')
		return XZ_EINVAL;
	if (on != NULL && cfg_bool(v, &b) == XZ_OK) {
		*on = b;
		v = b ? "stderr" : "off";
	}
	if (strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0 ||
	    strcmp(v, "off") == 0) {
		free(*slot);
		return (*slot = strdup(v)) != NULL ? XZ_OK : XZ_ENOMEM;
	}
	return cfg_set_path(cfg, slot, v);
}

/* The log keys of [server]: an error code, or 1 when e is none of them. */
static int
cfg_log_key(struct xz_config *cfg, const struct cfg_entry *e)
{
	static const char *const styles[] = { "xitzin", "common", "combined" };
	static const char *const ips[] = { "full", "truncated", "off" };
	bool on, b;
	int rc = XZ_EINVAL;
	unsigned i;

	if (strcmp(e->key, "access_log") == 0) {
		rc = cfg_log_dest(cfg, e->value, &cfg->access_log, &on);
		cfg->opts.quiet =
		    rc == XZ_OK && strcmp(cfg->access_log, "off") == 0;
	} else if (strcmp(e->key, "error_log") == 0)
		rc = cfg_log_dest(cfg, e->value, &cfg->error_log, NULL);
	else if (strcmp(e->key, "log_style") == 0) {
		for (i = 0; i < 3; i++)
			if (strcmp(e->value, styles[i]) == 0) {
				cfg->log.style = (enum xz_log_style)i;
				rc = XZ_OK;
			}
	} else if (strcmp(e->key, "log_ip") == 0) {
		for (i = 0; i < 3; i++)
			if (strcmp(e->value, ips[i]) == 0) {
				cfg->log.ip = (enum xz_log_ip)i;
				rc = XZ_OK;
			}
	} else if (strcmp(e->key, "log_query") == 0) {
		if ((rc = cfg_bool(e->value, &b)) == XZ_OK)
			cfg->log.no_query = !b;
	} else
		return 1;
	cfg->log.access_log = cfg->access_log;
	cfg->log.error_log = cfg->error_log;
	return rc;
}

static int
cfg_server_key(struct xz_config *cfg, const struct cfg_entry *e)
{
	struct xz_server_opts *o = &cfg->opts;
	int rc = XZ_EINVAL;

	if (strcmp(e->key, "listen") == 0) {
		/* What binding would refuse, said now with the line. */
		char why[256];

		if (server_check_listen(e->value, why, sizeof(why)) != XZ_OK)
			return cfg_error(cfg, e->line, "%s", why);
		rc = cfg_add_listen(cfg, e->value);
	} else if (strcmp(e->key, "hostname") == 0) {
		char **names = strlist_split(e->value);

		if (names == NULL)
			rc = XZ_ENOMEM;
		else if (names[0] == NULL)
			rc = cfg_error(cfg, e->line, "hostname: no name given");
		else {
			free(cfg->hostname);
			cfg->hostname = strdup(e->value);
			rc = cfg->hostname != NULL ? XZ_OK : XZ_ENOMEM;
		}
		strlist_free(names);
	} else if (strcmp(e->key, "cert") == 0)
		rc = cfg_set_path(cfg, &cfg->cert, e->value);
	else if (strcmp(e->key, "key") == 0)
		rc = cfg_set_path(cfg, &cfg->key, e->value);
	else if (strcmp(e->key, "ticket_key_file") == 0)
		rc = cfg_set_path(cfg, &cfg->ticket_key, e->value);
	else if (strcmp(e->key, "key_type") == 0) {
		if (strcmp(e->value, "ecdsa") == 0 ||
		    strcmp(e->value, "ed25519") == 0) {
			o->key_ed25519 = strcmp(e->value, "ed25519") == 0;
			rc = XZ_OK;
		}
	} else if (strcmp(e->key, "public_port") == 0)
		rc = cfg_int(e->value, 1, 65535, &o->public_port);
	else if (strcmp(e->key, "workers") == 0)
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
	else if (strcmp(e->key, "stop_delay") == 0)
		rc = strcmp(e->value, "0") == 0 ?
		         (o->stop_delay = 0, XZ_OK) :
		         cfg_seconds(e->value, &o->stop_delay);
	else if (strcmp(e->key, "metrics_listen") == 0) {
		free(cfg->metrics_listen);
		cfg->metrics_listen = strdup(e->value);
		rc = cfg->metrics_listen != NULL ? XZ_OK : XZ_ENOMEM;
	} else if (strcmp(e->key, "metrics_allow_remote") == 0)
		rc = cfg_bool(e->value, &o->metrics_allow_remote);
	else if (strcmp(e->key, "max_connections") == 0)
		rc = cfg_unsigned(e->value, &o->max_connections);
	else if (strcmp(e->key, "max_connections_per_address") == 0)
		rc = cfg_unsigned(e->value, &o->max_connections_per_address);
	else if (cfg_mount_common_key(e->key))
		rc = XZ_OK; /* read by xz_config_apply (cfg_apply_rate) */
	else if (strcmp(e->key, "user") == 0) {
		if (getpwnam(e->value) == NULL)
			return cfg_error(cfg, e->line, "user %s: no such user",
			    e->value);
		free(cfg->user);
		rc = (cfg->user = strdup(e->value)) ? XZ_OK : XZ_ENOMEM;
	} else if (strcmp(e->key, "chroot") == 0) {
		if ((rc = cfg_set_path(cfg, &cfg->chroot_dir, e->value)) ==
		    XZ_OK)
			rc = cfg_check_dir(cfg, e->line, "chroot",
			    cfg->chroot_dir);
	} else if ((rc = cfg_log_key(cfg, e)) == 1)
		return cfg_error(cfg, e->line, "unknown key '%s' in [server]",
		    e->key);
	if (rc == XZ_EINVAL)
		return cfg_error(cfg, e->line, "%s: invalid value '%s'", e->key,
		    e->value);
	return rc;
}

/* Every key, each error said; XZ_ENOMEM stops. */
static int
cfg_read_server(struct xz_config *cfg, const struct cfg_section *s)
{
	size_t i;

	for (i = 0; i < s->nentries; i++)
		if (!s->entries[i].said &&
		    cfg_server_key(cfg, &s->entries[i]) == XZ_ENOMEM)
			return XZ_ENOMEM;
	return XZ_OK;
}

/* The line of key in s, else of s, else 1. */
static int
cfg_key_line(const struct cfg_section *s, const char *key)
{
	size_t i;

	for (i = 0; s != NULL && i < s->nentries; i++)
		if (strcmp(s->entries[i].key, key) == 0)
			return s->entries[i].line;
	return s != NULL ? s->line : 1;
}

/* metrics_listen as xz_server_new would take it (loopback, or allowed). */
static void
cfg_check_metrics(struct xz_config *cfg, const struct cfg_section *server)
{
	char why[512];

	if (cfg->metrics_listen != NULL &&
	    metrics_check_listen(cfg->metrics_listen,
	        cfg->opts.metrics_allow_remote, why, sizeof(why)) != XZ_OK)
		cfg_error(cfg, cfg_key_line(server, "metrics_listen"), "%s",
		    why);
}

/*
 * The certificate and key as the server would load them: both parse and
 * match, or neither exists (generated at start).
 */
static void
cfg_check_cert(struct xz_config *cfg, const struct cfg_section *server)
{
	struct tls_opts topts = { 0 };
	char why[512];

	topts.cert_file = cfg->cert;
	topts.key_file = cfg->key;
	if (tls_check_files(&topts, why, sizeof(why)) != XZ_OK)
		cfg_error(cfg, cfg_key_line(server, "cert"), "%s", why);
	if (cfg->ticket_key != NULL &&
	    tls_ticket_key_check(cfg->ticket_key, why, sizeof(why)) != XZ_OK)
		cfg_error(cfg, cfg_key_line(server, "ticket_key_file"), "%s",
		    why);
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
	cfg->opts.ticket_key_file = cfg->ticket_key;
	cfg->opts.metrics_listen = cfg->metrics_listen;
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
	if (rc > 0) /* libinih says the first alone */
		cfg_error(cfg, rc, "syntax error");
	else if (rc != 0)
		cfg->nomem = true;
	return cfg_failed(cfg) ? XZ_EPARSE : XZ_OK;
}

/* The section [kind] (host NULL) or [kind HOST], or NULL. */
static const struct cfg_section *
cfg_find(const struct xz_config *cfg, const char *kind, const char *host)
{
	size_t i;

	for (i = 0; i < cfg->nsections; i++)
		if (strcmp(cfg->sections[i].kind, kind) == 0 &&
		    cfg->sections[i].prefix == NULL &&
		    cfg_same(cfg->sections[i].host, host))
			return &cfg->sections[i];
	return NULL;
}

/*
 * Virtual hosts. [host NAME] is a site: NAME and its names = aliases,
 * its cert and key (certs/NAME.crt and .key by default, generated for
 * all its names when neither exists), its [state NAME] and the mounts
 * that name it ([static NAME /]). [server]'s hostname, cert and key,
 * [state] and the mounts without a host are the default site.
 */
struct cfg_host {
	const struct cfg_section *s;
	char *names;        /* "NAME, alias, ..." */
	char *cert, *key;   /* resolved */
	struct xz_app *app; /* made by xz_config_apply; ours */
};

static struct cfg_host *
cfg_host_find(const struct xz_config *cfg, const char *id)
{
	size_t i;

	for (i = 0; i < cfg->nhosts; i++)
		if (strcmp(cfg->hosts[i].s->host, id) == 0)
			return &cfg->hosts[i];
	return NULL;
}

/* names, cert, key and the rate keys of [host NAME]. */
static int
cfg_host_keys(struct xz_config *cfg, struct cfg_host *h)
{
	const struct cfg_section *s = h->s;
	const struct cfg_entry *e;
	size_t i;
	int rc = XZ_OK;
	char *n;

	for (i = 0; i < s->nentries && rc != XZ_ENOMEM; i++) {
		e = &s->entries[i];
		if (e->said || cfg_mount_common_key(e->key))
			continue;
		if (strcmp(e->key, "cert") == 0)
			rc = cfg_set_path(cfg, &h->cert, e->value);
		else if (strcmp(e->key, "key") == 0)
			rc = cfg_set_path(cfg, &h->key, e->value);
		else if (strcmp(e->key, "names") != 0)
			cfg_error(cfg, e->line, "unknown key '%s' in [host %s]",
			    e->key, s->host);
		else if (asprintf(&n, "%s, %s", h->names, e->value) == -1)
			rc = XZ_ENOMEM;
		else {
			free(h->names);
			h->names = n;
		}
	}
	return rc;
}

/* certs/NAME.crt and .key ('*' written '_') unless both are given. */
static int
cfg_host_cert(struct xz_config *cfg, struct cfg_host *h)
{
	struct tls_opts topts = { 0 };
	char *base, why[512];
	int rc = XZ_OK;

	if ((h->cert == NULL) != (h->key == NULL))
		return cfg_error(cfg, h->s->line,
		    "[host %s]: %s without %s (give both, or neither)",
		    h->s->host, h->cert != NULL ? "cert" : "key",
		    h->cert != NULL ? "key" : "cert");
	if (h->cert == NULL) {
		if ((base = strdup(h->s->host)) == NULL)
			return XZ_ENOMEM;
		for (char *q = base; *q != '\0'; q++)
			if (*q == '*' || *q == '/')
				*q = '_';
		if (asprintf(&h->cert, "%s/certs/%s.crt",
		        cfg->dir != NULL ? cfg->dir : ".", base) == -1 ||
		    asprintf(&h->key, "%s/certs/%s.key",
		        cfg->dir != NULL ? cfg->dir : ".", base) == -1)
			rc = XZ_ENOMEM;
		free(base);
		if (rc != XZ_OK)
			return rc;
	}
	topts.cert_file = h->cert;
	topts.key_file = h->key;
	if (tls_check_files(&topts, why, sizeof(why)) != XZ_OK)
		cfg_error(cfg, cfg_key_line(h->s, "cert"), "%s", why);
	return XZ_OK;
}

/*
 * Every [host] is read and checked: its names (as the server will take
 * them: valid, one-label wildcards, none in two sites, [server]'s
 * hostname included), its keys, its certificate.
 */
static int
cfg_read_hosts(struct xz_config *cfg, const struct cfg_section *server)
{
	struct site_set *check = site_set_new();
	struct cfg_host *h;
	const char *why;
	char bad[256];
	size_t i;
	int rc = XZ_OK;

	if (check == NULL)
		return XZ_ENOMEM;
	if (site_set_add(check, cfg->hostname, NULL, NULL, &why, bad,
	        sizeof(bad)) == XZ_EINVAL)
		cfg_error(cfg, cfg_key_line(server, "hostname"),
		    "hostname: %s '%s'", why, bad);
	for (i = 0; i < cfg->nsections && rc == XZ_OK; i++) {
		const struct cfg_section *s = &cfg->sections[i];

		if (strcmp(s->kind, "host") != 0)
			continue;
		if ((h = realloc(cfg->hosts, (cfg->nhosts + 1) * sizeof(*h))) ==
		    NULL) {
			rc = XZ_ENOMEM;
			break;
		}
		cfg->hosts = h;
		h = &h[cfg->nhosts++];
		memset(h, 0, sizeof(*h));
		h->s = s;
		if (strpbrk(s->host, ", \t") != NULL) {
			cfg_error(cfg, s->line,
			    "[host %s]: one name in the header (give the "
			    "others in names =)",
			    s->host);
			continue;
		}
		if ((h->names = strdup(s->host)) == NULL ||
		    cfg_host_keys(cfg, h) != XZ_OK ||
		    cfg_host_cert(cfg, h) != XZ_OK)
			rc = XZ_ENOMEM;
		else if (site_set_add(check, h->names, NULL, NULL, &why, bad,
		             sizeof(bad)) == XZ_EINVAL)
			cfg_error(cfg, cfg_key_line(s, "names"),
			    "[host %s]: %s '%s'", s->host, why, bad);
	}
	site_set_free(check);
	return rc;
}

/*
 * The apps of the [host] sections join srv as its sites (after
 * xz_config_apply made them); the config must outlive the server.
 */
int
xz_config_add_sites(struct xz_config *cfg, struct xz_server *srv, char *err,
    size_t errlen)
{
	struct xz_site_opts so;
	char why[1024];
	size_t i;
	int rc;

	for (i = 0; i < cfg->nhosts; i++) {
		so.hostname = cfg->hosts[i].names;
		so.cert_file = cfg->hosts[i].cert;
		so.key_file = cfg->hosts[i].key;
		if ((rc = xz_server_add_site(srv, cfg->hosts[i].app, &so, why,
		         sizeof(why))) != XZ_OK) {
			snprintf(err, errlen, "%s:%d: [host %s]: %s", cfg->path,
			    cfg->hosts[i].s->line, cfg->hosts[i].s->host, why);
			return rc;
		}
	}
	return XZ_OK;
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
	if (errlen > 0)
		err[0] = '\0';
	if ((slash = strrchr(path, '/')) != NULL)
		cfg->dir = strndup(path, (size_t)(slash - path));
	if (cfg_parse_file(cfg, path) == XZ_EIO) { /* err says why */
		xz_config_free(cfg);
		return NULL;
	}
	server = cfg_find(cfg, "server", NULL);
	if ((server != NULL && cfg_read_server(cfg, server) != XZ_OK) ||
	    cfg_finish_opts(cfg) != XZ_OK)
		cfg->nomem = true;
	else {
		cfg_check_cert(cfg, server);
		if (cfg_read_hosts(cfg, server) != XZ_OK)
			cfg->nomem = true;
		cfg_check_metrics(cfg, server);
	}
	if (cfg_failed(cfg)) {
		cfg_check_mounts(cfg);
		cfg_flush_errors(cfg);
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

/*
 * Rate limits: "10/s", "30/m", "600/h", "10" (a second); "off" or "0"
 * for none (in a mount: none there, whatever [server] says).
 */
static int
cfg_rate(const char *v, double *out)
{
	char *end;
	double d;

	if (strcasecmp(v, "off") == 0) {
		*out = 0;
		return XZ_OK;
	}
	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || !(d >= 0) || d > 1e9)
		return XZ_EINVAL;
	if (strcmp(end, "/m") == 0 || strcmp(end, "/min") == 0)
		d /= 60;
	else if (strcmp(end, "/h") == 0)
		d /= 3600;
	else if (*end != '\0' && strcmp(end, "/s") != 0)
		return XZ_EINVAL;
	*out = d;
	return XZ_OK;
}

/* A section's rate_limit and rate_burst, as xz_rate_limit for prefix. */
static int
cfg_apply_rate(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app)
{
	const struct cfg_entry *rate = NULL, *burst_e = NULL;
	double r = 0, burst = 0;
	unsigned b;
	size_t i;
	int rc;

	for (i = 0; i < s->nentries; i++)
		if (strcmp(s->entries[i].key, "rate_limit") == 0)
			rate = &s->entries[i];
		else if (strcmp(s->entries[i].key, "rate_burst") == 0)
			burst_e = &s->entries[i];
	if (rate == NULL && burst_e == NULL)
		return XZ_OK;
	if (rate == NULL)
		return cfg_error(cfg, burst_e->line,
		    "rate_burst without rate_limit");
	if (cfg_rate(rate->value, &r) != XZ_OK)
		return cfg_error(cfg, rate->line,
		    "rate_limit: invalid value "
		    "'%s' (10/s, 30/m, 600/h or off)",
		    rate->value);
	if (burst_e != NULL) {
		if (cfg_unsigned(burst_e->value, &b) != XZ_OK || b == 0)
			return cfg_error(cfg, burst_e->line,
			    "rate_burst: invalid value '%s'", burst_e->value);
		burst = b;
	}
	if ((rc = xz_rate_limit(app, s->prefix, r, burst)) != XZ_OK)
		return cfg_error(cfg, rate->line, "%s", xz_app_error(app));
	return XZ_OK;
}

const struct xz_log_opts *
xz_config_log_opts(const struct xz_config *cfg)
{
	return &cfg->log;
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
 * Client certificates per mount (require_cert, allowed_certs,
 * allowed_certs_file), as gmid and Molly Brown configure them: one
 * middleware per app checks the rule of the mount a request goes to
 * (the longest matching section, as mounts are matched), so static,
 * CGI and SCGI mounts alike answer 60 without a certificate and 61 for
 * one not listed, before their handler sees the request.
 */
struct cfg_rule {
	char *prefix;  /* normalised as xz_mount does: "/api", "" */
	int require;   /* -1: not said; 0, 1 */
	char **hashes; /* NULL-ended "SHA256:..."; NULL: any certificate */
	size_t nhashes;
};

struct cfg_access {
	struct cfg_rule *rules; /* one per mounted section */
	size_t nrules;
	bool any; /* a rule asks for a certificate */
};

static void
cfg_rule_clear(struct cfg_rule *r)
{
	size_t i;

	for (i = 0; i < r->nhashes; i++)
		free(r->hashes[i]);
	free(r->hashes);
	free(r->prefix);
	memset(r, 0, sizeof(*r));
	r->require = -1;
}

static void
cfg_access_free(struct cfg_access *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrules; i++)
		cfg_rule_clear(&t->rules[i]);
	free(t->rules);
	free(t);
}

static void
cfg_access_free_arg(void *t)
{
	cfg_access_free(t);
}

/* "SHA256:" and 64 hex digits, any case: what TLS_CLIENT_HASH looks like. */
static bool
cfg_is_hash(const char *h)
{
	return strncasecmp(h, "SHA256:", 7) == 0 && strlen(h + 7) == 64 &&
	       strspn(h + 7, "0123456789abcdefABCDEF") == 64;
}

static int
cfg_rule_add_hash(struct cfg_rule *r, const char *h)
{
	char **l = realloc(r->hashes, (r->nhashes + 2) * sizeof(*l));

	if (l == NULL)
		return XZ_ENOMEM;
	r->hashes = l;
	if ((l[r->nhashes] = strdup(h)) == NULL)
		return XZ_ENOMEM;
	l[++r->nhashes] = NULL;
	return XZ_OK;
}

/* allowed_certs_file: a hash a line; blank lines and "#" comments. */
static int
cfg_rule_read_file(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_rule *r)
{
	char *path = cfg_path(cfg, e->value), *line = NULL, *h, *end;
	size_t cap = 0;
	int n = 0, rc = XZ_OK;
	FILE *f;

	if (path == NULL)
		return XZ_ENOMEM;
	if ((f = fopen(path, "r")) == NULL) {
		rc = cfg_error(cfg, e->line, "allowed_certs_file %s: %s", path,
		    strerror(errno));
		free(path);
		return rc;
	}
	while (rc == XZ_OK && getline(&line, &cap, f) != -1) {
		n++;
		for (h = line; isspace((unsigned char)*h); h++)
			;
		for (end = h + strlen(h);
		     end > h && isspace((unsigned char)end[-1]); end--)
			;
		*end = '\0';
		if (*h == '\0' || *h == '#')
			continue;
		if (!cfg_is_hash(h))
			rc = cfg_error(cfg, e->line,
			    "allowed_certs_file %s:%d: not a SHA256: hash '%s'",
			    path, n, h);
		else
			rc = cfg_rule_add_hash(r, h);
	}
	free(line);
	fclose(f);
	free(path);
	return rc;
}

/* An access key of any mount section; XZ_EAGAIN: not one of them. */
static int
cfg_access_key(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_rule *r)
{
	bool on;
	char **l;
	size_t i;
	int rc = XZ_OK;

	if (strcmp(e->key, "require_cert") == 0) {
		if (cfg_bool(e->value, &on) != XZ_OK)
			return XZ_EINVAL;
		r->require = on;
		return XZ_OK;
	}
	if (strcmp(e->key, "allowed_certs_file") == 0)
		return cfg_rule_read_file(cfg, e, r);
	if (strcmp(e->key, "allowed_certs") != 0)
		return XZ_EAGAIN;
	if ((l = strlist_split(e->value)) == NULL)
		return XZ_ENOMEM;
	for (i = 0; l[i] != NULL && rc == XZ_OK; i++)
		rc = cfg_is_hash(l[i]) ? cfg_rule_add_hash(r, l[i]) :
		                         cfg_error(cfg, e->line,
		                             "allowed_certs: not a SHA256: "
		                             "hash '%s'",
		                             l[i]);
	strlist_free(l);
	return rc;
}

/* "api", "/api/", "//api//" -> "/api"; "/" -> "" (xz_mount's rule). */
static char *
cfg_norm_prefix(const char *p)
{
	size_t len;
	char *out;

	while (*p == '/')
		p++;
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		len--;
	if (len == 0)
		return strdup("");
	if (asprintf(&out, "/%.*s", (int)len, p) == -1)
		return NULL;
	return out;
}

/*
 * The section s is mounted: its rule joins the app's table (a mount
 * without one too, so that it shadows a shorter prefix's). r is taken.
 */
static int
cfg_access_add(struct xz_config *cfg, const struct cfg_section *s,
    struct cfg_rule *r)
{
	struct cfg_access *t = cfg->access;
	struct cfg_rule *l;

	if (r->require == 0 && r->nhashes > 0) {
		cfg_rule_clear(r);
		return cfg_error(cfg, s->line,
		    "[%s %s]: allowed certificates with require_cert = false",
		    s->kind, s->prefix);
	}
	if (r->nhashes > 0)
		r->require = 1; /* a list means a certificate is needed */
	if (t == NULL || (r->prefix = cfg_norm_prefix(s->prefix)) == NULL ||
	    (l = realloc(t->rules, (t->nrules + 1) * sizeof(*l))) == NULL) {
		cfg_rule_clear(r);
		return XZ_ENOMEM;
	}
	t->rules = l;
	t->any = t->any || r->require == 1;
	l[t->nrules++] = *r;
	memset(r, 0, sizeof(*r));
	return XZ_OK;
}

static int
cfg_access_before(struct xz_request *req, void *arg)
{
	const struct cfg_access *t = arg;
	const struct cfg_rule *best = NULL, *r;
	const char *path = xz_request_path(req);
	size_t i, len;

	for (i = 0; i < t->nrules; i++) {
		r = &t->rules[i];
		len = strlen(r->prefix);
		if (strncmp(path, r->prefix, len) == 0 &&
		    (path[len] == '\0' || path[len] == '/') &&
		    (best == NULL || len > strlen(best->prefix)))
			best = r;
	}
	if (best == NULL || best->require != 1)
		return XZ_OK;
	if (best->hashes == NULL)
		(void)xz_require_cert(req);
	else
		(void)xz_require_cert_in(req,
		    (const char *const *)best->hashes);
	return XZ_OK; /* answered (60, 61) or let through */
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
	const struct cfg_entry *root = NULL, *e;
	struct xz_static_opts opts = { 0 };
	struct cfg_rule rule = { .require = -1 };
	char *path;
	size_t i;
	int rc, arc;

	for (i = 0, rc = XZ_OK; i < s->nentries; i++) {
		e = &s->entries[i];
		if (cfg_mount_common_key(e->key))
			continue; /* cfg_apply_rate's */
		if (e->said) {    /* said; an empty root is not a missing one */
			rc = XZ_EPARSE;
			if (strcmp(e->key, "root") == 0)
				root = e;
		} else if ((arc = cfg_access_key(cfg, e, &rule)) != XZ_EAGAIN) {
			if (arc == XZ_EINVAL)
				arc = cfg_error(cfg, e->line,
				    "%s: invalid value '%s'", e->key, e->value);
			if (arc != XZ_OK)
				rc = arc;
		} else if (strcmp(e->key, "root") == 0)
			root = e;
		else if (strcmp(e->key, "hidden_files") != 0)
			rc = cfg_error(cfg, e->line,
			    "unknown key '%s' in [static %s]", e->key,
			    s->prefix);
		else if (strcmp(e->value, "serve") == 0)
			opts.serve_hidden = true;
		else if (strcmp(e->value, "hide") != 0)
			rc = cfg_error(cfg, e->line,
			    "hidden_files: invalid value '%s' (hide or serve)",
			    e->value);
	}
	if (root == NULL) {
		cfg_rule_clear(&rule);
		return cfg_error(cfg, s->line, "[static %s] needs a root",
		    s->prefix);
	}
	if ((path = cfg_path(cfg, root->value)) == NULL) {
		cfg_rule_clear(&rule);
		return XZ_ENOMEM;
	}
	if (rc != XZ_OK && !root->said) /* said; the root is still checked */
		(void)cfg_check_dir(cfg, root->line, "root", path);
	else if ((rc = xz_static_with(app, s->prefix, path, &opts)) != XZ_OK)
		cfg_static_error(cfg, root->line, s->prefix, xz_app_error(app));
	else
		rc = cfg_access_add(cfg, s, &rule);
	cfg_rule_clear(&rule);
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
	char **state_keys;        /* bc.app_state_keys, ours */
	struct xz_scgi_opts scgi; /* host, port, pool keys */
	char **backends;          /* scgi.backends, ours */
	size_t nbackends;
	char *socket, *root, *script; /* paths, from the config's directory */
	struct cfg_rule rule;         /* client certificates */
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
	int rc, status = XZ_OK;

	for (i = 0; i < s->nentries; i++) {
		e = &s->entries[i];
		if (cfg_mount_common_key(e->key))
			continue; /* cfg_apply_rate's */
		if (e->said) {
			status = XZ_EPARSE;
			continue;
		}
		if ((rc = cfg_access_key(cfg, e, &b->rule)) == XZ_EAGAIN &&
		    (rc = cfg_backend_key(cfg, e, b)) == XZ_EAGAIN)
			rc = kind->key(cfg, e, b);
		if (rc == XZ_EAGAIN)
			rc = cfg_error(cfg, e->line,
			    "unknown key '%s' in [%s %s]", e->key, s->kind,
			    s->prefix);
		else if (rc == XZ_EINVAL)
			rc = cfg_error(cfg, e->line, "%s: invalid value '%s'",
			    e->key, e->value);
		if (rc == XZ_ENOMEM)
			return rc;
		if (rc != XZ_OK) /* said: the next key may say more */
			status = rc;
	}
	b->bc.app_state_keys = (const char *const *)b->state_keys;
	return status;
}

/*
 * Registration failed: the library says why ("scgi /app: ..."), the line
 * is the section's, which already names the kind and prefix.
 */
static int
cfg_mount_error(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app, int rc)
{
	const char *why = xz_app_error(app);
	size_t kl = strlen(s->kind), pl = strlen(s->prefix);

	if (strncmp(why, s->kind, kl) == 0 && why[kl] == ' ' &&
	    strncmp(why + kl + 1, s->prefix, pl) == 0 &&
	    strncmp(why + kl + 1 + pl, ": ", 2) == 0)
		why += kl + 1 + pl + 2;
	return cfg_error(cfg, s->line, "[%s %s]: %s", s->kind, s->prefix,
	    why[0] != '\0' ? why : xz_strerror(rc));
}

static int
cfg_apply_backend(struct xz_config *cfg, const struct cfg_section *s,
    struct xz_app *app, const struct cfg_backend_kind *kind)
{
	struct cfg_backend b = { .rule = { .require = -1 } };
	size_t before = cfg->nerrs;
	int rc;

	kind->defaults(&b.bc);
	if ((rc = cfg_read_backend(cfg, s, &b, kind)) == XZ_OK &&
	    (rc = kind->mount(cfg, s, &b, app)) != XZ_OK &&
	    cfg->nerrs == before) /* unless said already */
		rc = cfg_mount_error(cfg, s, app, rc);
	if (rc == XZ_OK)
		rc = cfg_access_add(cfg, s, &b.rule);
	cfg_rule_clear(&b.rule);
	strlist_free(b.state_keys);
	strlist_free(b.backends);
	free(b.socket);
	free(b.root);
	free(b.script);
	return rc;
}

/*
 * A socket path that can work: short enough for sun_path. Neither the
 * socket nor its directory need exist yet: a backend started after us
 * may make both (examples/demo.sh does).
 */
static int
cfg_check_socket(struct xz_config *cfg, int line, const char *path)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	if (strlen(path) > max)
		return cfg_error(cfg, line, "socket %s: over %zu bytes", path,
		    max);
	return XZ_OK;
}

/*
 * backend = ADDRESS, once per backend of a pool; checked here, so that
 * -t names the line; a relative unix: path is the config directory's.
 */
static int
cfg_scgi_backend(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_backend *b)
{
	struct pool_addr a;
	char why[300], *path, **l;
	int n;

	if (pool_addr_parse(e->value, &a, why, sizeof(why)) != XZ_OK)
		return cfg_error(cfg, e->line, "%s", why);
	if (b->nbackends == POOL_MAX)
		return cfg_error(cfg, e->line, "over %d backends", POOL_MAX);
	if ((l = realloc(b->backends, (b->nbackends + 2) * sizeof(*l))) == NULL)
		return XZ_ENOMEM;
	b->backends = l;
	l[b->nbackends] = l[b->nbackends + 1] = NULL;
	if (!a.is_unix)
		return (l[b->nbackends++] = strdup(e->value)) != NULL ?
		           XZ_OK :
		           XZ_ENOMEM;
	if ((path = cfg_path(cfg, a.path)) == NULL)
		return XZ_ENOMEM;
	n = asprintf(&l[b->nbackends], "unix:%s", path);
	free(path);
	if (n == -1) {
		l[b->nbackends] = NULL;
		return XZ_ENOMEM;
	}
	if (cfg_check_socket(cfg, e->line, l[b->nbackends++] + 5) != XZ_OK)
		return XZ_EPARSE;
	return XZ_OK;
}

/* [scgi]'s pool keys (with one backend too: max_conns, ...). */
static int
cfg_pool_key(const struct cfg_entry *e, struct xz_pool_config *pc)
{
	const char *k = e->key, *v = e->value;

	if (strcmp(k, "balance") == 0) {
		if (strcmp(v, "least_conn") == 0)
			pc->balance = XZ_LEAST_CONN;
		else if (strcmp(v, "round_robin") == 0)
			pc->balance = XZ_ROUND_ROBIN;
		else
			return XZ_EINVAL;
		return XZ_OK;
	}
	if (strcmp(k, "max_fails") == 0) {
		if (cfg_int(v, 0, 1000000, &pc->max_fails) != XZ_OK)
			return XZ_EINVAL;
		if (pc->max_fails == 0) /* nginx's "0": never rested */
			pc->max_fails = -1;
		return XZ_OK;
	}
	if (strcmp(k, "fail_timeout") == 0)
		return cfg_seconds(v, &pc->fail_timeout);
	if (strcmp(k, "connect_timeout") == 0)
		return cfg_seconds(v, &pc->connect_timeout);
	if (strcmp(k, "queue_timeout") == 0)
		return cfg_seconds(v, &pc->queue_timeout);
	if (strcmp(k, "max_conns") == 0)
		return cfg_int(v, 0, 1000000, &pc->max_conns);
	if (strcmp(k, "queue_size") == 0)
		return cfg_int(v, 0, 1000000, &pc->queue_size);
	return XZ_EAGAIN;
}

/* [scgi]: where the backend is, or the backends are. */
static int
cfg_scgi_key(struct xz_config *cfg, const struct cfg_entry *e,
    struct cfg_backend *b)
{
	int rc;

	if (strcmp(e->key, "backend") == 0)
		return cfg_scgi_backend(cfg, e, b);
	if ((rc = cfg_pool_key(e, &b->scgi.pool)) != XZ_EAGAIN)
		return rc;
	if (strcmp(e->key, "host") == 0) {
		b->scgi.host = e->value;
		return XZ_OK;
	}
	if (strcmp(e->key, "port") == 0)
		return cfg_int(e->value, 1, 65535, &b->scgi.port);
	if (strcmp(e->key, "socket") == 0) {
		if (cfg_set_path(cfg, &b->socket, e->value) != XZ_OK)
			return XZ_ENOMEM;
		return cfg_check_socket(cfg, e->line, b->socket);
	}
	return XZ_EAGAIN;
}

static int
cfg_scgi_mount(struct xz_config *cfg, const struct cfg_section *s,
    struct cfg_backend *b, struct xz_app *app)
{
	if (b->nbackends > 0 &&
	    (b->scgi.host != NULL || b->scgi.port != 0 || b->socket != NULL))
		return cfg_error(cfg, s->line,
		    "[scgi %s]: give backend keys, or host and port, or "
		    "socket: one of them",
		    s->prefix);
	b->scgi.socket_path = b->socket;
	b->scgi.config = b->bc;
	b->scgi.backends = (const char *const *)b->backends;
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

/*
 * One site's sections onto its app (host NULL: the default site's, with
 * [server]'s rate limit): [state], then every mount; each error is
 * recorded, none stops.
 */
static void
cfg_apply_site(struct xz_config *cfg, struct xz_app *app, const char *host)
{
	const struct cfg_section *state = cfg_find(cfg, "state", host);
	size_t i, before;
	int rc;

	/* The rules go to the app (its middleware reads them), not cfg. */
	if ((cfg->access = calloc(1, sizeof(*cfg->access))) == NULL ||
	    app_adopt(app, cfg->access, cfg_access_free_arg) != XZ_OK) {
		cfg->access = NULL;
		cfg->nomem = true;
		return;
	}
	/* State first: mounts may read it (SCGI app_state_keys). */
	if (state != NULL)
		(void)cfg_apply_state(cfg, state, app);
	/* Rate limits next: their middleware is the outermost. */
	for (i = 0; i < cfg->nsections; i++) {
		const struct cfg_section *s = &cfg->sections[i];

		if (!cfg_same(s->host, host))
			continue;
		if (strcmp(s->kind, host == NULL ? "server" : "host") == 0 ||
		    (s->prefix != NULL && cfg_find_kind(s->kind) != NULL))
			(void)cfg_apply_rate(cfg, s, app);
	}
	for (i = 0; i < cfg->nsections; i++) {
		const struct cfg_section *s = &cfg->sections[i];
		const struct cfg_kind *k;

		if (s->prefix == NULL || !cfg_same(s->host, host) ||
		    (k = cfg_find_kind(s->kind)) == NULL)
			continue;
		before = cfg->nerrs;
		if ((rc = k->apply(cfg, s, app)) != XZ_OK &&
		    cfg->nerrs == before)
			cfg_error(cfg, s->line, "[%s %s]: %s", s->kind,
			    s->prefix, xz_strerror(rc));
	}
	if (cfg->access->any &&
	    xz_middleware(app,
	        &(struct xz_middleware){ .before = cfg_access_before },
	        cfg->access) != XZ_OK)
		cfg->nomem = true;
	cfg->access = NULL;
}

/* The default site onto app, each [host] onto an app of its own. */
static void
cfg_apply_all(struct xz_config *cfg, struct xz_app *app)
{
	struct cfg_host *h;
	size_t i;

	cfg_apply_site(cfg, app, NULL);
	for (i = 0; i < cfg->nhosts && !cfg->nomem; i++) {
		h = &cfg->hosts[i];
		if (h->app == NULL && (h->app = xz_app_new()) == NULL)
			cfg->nomem = true;
		else
			cfg_apply_site(cfg, h->app, h->s->host);
	}
	for (i = 0; i < cfg->nsections; i++) {
		const struct cfg_section *s = &cfg->sections[i];

		if (s->host != NULL && strcmp(s->kind, "host") != 0 &&
		    cfg_host_find(cfg, s->host) == NULL)
			cfg_error(cfg, s->line, "[%s %s%s%s]: no [host %s]",
			    s->kind, s->host, s->prefix != NULL ? " " : "",
			    s->prefix != NULL ? s->prefix : "", s->host);
	}
}

/*
 * The file has errors already: the mounts' own are found by mounting
 * them on an app made for the purpose, so that one run says them all.
 */
static void
cfg_check_mounts(struct xz_config *cfg)
{
	struct xz_app *app = xz_app_new();

	if (app == NULL) {
		cfg->nomem = true;
		return;
	}
	cfg_apply_all(cfg, app);
	xz_app_free(app);
}

int
xz_config_apply(struct xz_config *cfg, struct xz_app *app, char *err,
    size_t errlen)
{
	cfg->err = err;
	cfg->errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	cfg_clear_errors(cfg);
	cfg_apply_all(cfg, app);
	if (!cfg_failed(cfg))
		return XZ_OK;
	cfg_flush_errors(cfg);
	return XZ_EPARSE;
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
		free(s->host);
		free(s->prefix);
	}
	for (i = 0; i < cfg->nlisten; i++)
		free(cfg->listen[i]);
	free(cfg->listen);
	free(cfg->sections);
	for (i = 0; i < cfg->nhosts; i++) {
		free(cfg->hosts[i].names);
		free(cfg->hosts[i].cert);
		free(cfg->hosts[i].key);
		xz_app_free(cfg->hosts[i].app);
	}
	free(cfg->hosts);
	free(cfg->hostname);
	free(cfg->access_log);
	free(cfg->error_log);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->ticket_key);
	free(cfg->metrics_listen);
	free(cfg->user);
	free(cfg->chroot_dir);
	cfg_clear_errors(cfg);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}
