/*
 * static.c - the static-file handler: files under a root directory.
 *
 * Paths come decoded and free of dot segments (url.c). Files are
 * opened with openat2(RESOLVE_BENEATH) relative to the root's descriptor,
 * so neither "..", encoded dots nor a symlink can lead outside the root;
 * the kernel checks every component. The body goes out through the
 * connection's evbuffer without a copy into the handler.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "xz_private.h"

struct static_root {
	int dirfd;
	char *path;        /* for the log */
	bool serve_hidden; /* dot-files too (xz_static_opts.serve_hidden) */
};

static const struct {
	const char *ext;
	const char *type;
} static_types[] = {
	{ "gmi", "text/gemini" },
	{ "gemini", "text/gemini" },
	{ "txt", "text/plain" },
	{ "md", "text/markdown" },
	{ "html", "text/html" },
	{ "htm", "text/html" },
	{ "css", "text/css" },
	{ "csv", "text/csv" },
	{ "xml", "application/xml" },
	{ "json", "application/json" },
	{ "atom", "application/atom+xml" },
	{ "rss", "application/rss+xml" },
	{ "pdf", "application/pdf" },
	{ "zip", "application/zip" },
	{ "gz", "application/gzip" },
	{ "tar", "application/x-tar" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "svg", "image/svg+xml" },
	{ "ico", "image/vnd.microsoft.icon" },
	{ "mp3", "audio/mpeg" },
	{ "ogg", "audio/ogg" },
	{ "flac", "audio/flac" },
	{ "wav", "audio/wav" },
	{ "mp4", "video/mp4" },
	{ "webm", "video/webm" },
};

/* The MIME type by extension; unknown ones are application/octet-stream. */
static const char *
static_mime(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash != NULL ? slash : path, '.');
	size_t i;

	if (dot != NULL)
		for (i = 0; i < sizeof(static_types) / sizeof(*static_types);
		     i++)
			if (strcasecmp(dot + 1, static_types[i].ext) == 0)
				return static_types[i].type;
	return "application/octet-stream";
}

static int
static_open_beneath(int dirfd, const char *rel)
{
	return open_beneath(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
}

/* Percent-encodes what a URL path cannot carry as it is. */
static char *
static_encode_path(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(path);
	char *out = malloc(len * 3 + 1), *o = out;
	const unsigned char *p;

	if (out == NULL)
		return NULL;
	for (p = (const unsigned char *)path; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') ||
		    strchr("/-._~!$&'()*+,;=:@", *p) != NULL) {
			*o++ = (char)*p;
			continue;
		}
		*o++ = '%';
		*o++ = hex[*p >> 4];
		*o++ = hex[*p & 15];
	}
	*o = '\0';
	return out;
}

/* A directory asked for without its slash: 31 to the slash form. */
static int
static_redirect_slash(struct xz_request *req)
{
	char *enc = static_encode_path(xz_request_path(req)), *to = NULL;
	const char *q = xz_request_query(req);
	int rc;

	if (enc == NULL ||
	    asprintf(&to, "%s/%s%s", enc, q ? "?" : "", q ? q : "") == -1) {
		free(enc);
		return XZ_ENOMEM;
	}
	rc = xz_respond(req, 31, to);
	free(enc);
	free(to);
	return rc;
}

static bool
static_append(char *buf, size_t size, const char *tail)
{
	size_t len = strlen(buf), tlen = strlen(tail);

	if (len + tlen + 1 > size)
		return false;
	memcpy(buf + len, tail, tlen + 1);
	return true;
}

static int
static_not_found(struct xz_request *req, const struct static_root *root,
    const char *rel)
{
	if (errno != ENOENT && errno != ENOTDIR)
		log_warn("static %s: %s", root->path, rel);
	return xz_respond(req, 51, "Not found");
}

/*
 * A file is read in STATIC_CHUNK pieces as the client takes them, never
 * mapped: a file truncated while it is served cannot fault the server
 * (SIGBUS), and memory stays STATIC_HIGH per connection whatever the size.
 */
/* One TLS record's worth: small chains that malloc recycles, measured
 * ~20% cheaper per 100 KB file than 64 KiB ones (fresh pages each time). */
#define STATIC_CHUNK (16 * 1024)
/* What a slow reader can pin: 64 KiB keeps 500 of them near 106 KiB each
 * in all (283 KiB at 256 KiB), the kernel's socket buffer doing the rest. */
#define STATIC_HIGH (64 * 1024)
#define STATIC_LOW (16 * 1024)

struct static_send {
	int fd;
	off_t off, size;
};

static void
static_send_free(struct static_send *s)
{
	close(s->fd);
	free(s);
}

static void
static_refill(struct xz_request *req, void *arg)
{
	struct static_send *s = arg;
	ssize_t n = 1;

	while (s->off < s->size && xz_pending(req) < STATIC_HIGH && n > 0) {
		size_t left = (size_t)(s->size - s->off);

		n = request_read_file(req, s->fd, s->off,
		    left < STATIC_CHUNK ? left : STATIC_CHUNK);
		if (n > 0)
			s->off += n;
	}
	if (s->off < s->size && n > 0) {
		xz_on_drain(req, STATIC_LOW, static_refill, s);
		return;
	}
	xz_request_set_data(req, NULL);
	if (s->off < s->size) {
		/* Shrunk or unreadable under us: the client must not take a
		 * short file for a whole one. */
		log_warnx("static: %s: file ended early", xz_request_url(req));
		static_send_free(s);
		request_abort(req, "file ended early");
		return;
	}
	static_send_free(s);
	xz_end(req);
}

/* Serves fd, an open regular file of st's size, named path. */
static int
static_send(struct xz_request *req, int fd, const struct stat *st,
    const char *path)
{
	struct static_send *s;
	int rc = xz_reply(req, 20, static_mime(path));

	if (rc != XZ_OK || req->status / 10 != 2 ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		xz_end(req);
		return rc;
	}
	s->fd = fd;
	s->size = st->st_size;
	xz_request_set_data(req, s);
	static_refill(req, s);
	return XZ_OK;
}

/* The client left mid-file. */
static void
static_cancel(struct xz_request *req, void *state)
{
	struct static_send *s = xz_request_data(req);

	if (s != NULL)
		static_send_free(s);
}

/*
 * A segment starting with "." (".env", ".git/config") is how a capsule
 * keeps files beside its content; like Agate, those are not served by
 * default. .well-known (RFC 8615) is public by definition.
 */
static bool
static_hidden(const char *info)
{
	static const char wk[] = ".well-known";
	const char *seg;

	/* info starts with '/': each segment follows one. */
	for (seg = info; seg != NULL; seg = strchr(seg + 1, '/'))
		if (seg[1] == '.' &&
		    !(strncmp(seg + 1, wk, sizeof(wk) - 1) == 0 &&
		        (seg[sizeof(wk)] == '\0' || seg[sizeof(wk)] == '/')))
			return true;
	return false;
}

static int
static_start(struct xz_request *req, void *state)
{
	const struct static_root *root = state;
	const char *info = xz_request_path_info(req);
	char rel[4096];
	struct stat st;
	int fd;

	/* The same answer as a missing file: a probe learns nothing. */
	if (!root->serve_hidden && info[0] == '/' && static_hidden(info))
		return xz_respond(req, 51, "Not found");
	/* The root itself is "."; otherwise the path without its '/'. */
	snprintf(rel, sizeof(rel), "%s", info[0] == '\0' ? "." : info + 1);
	if (rel[0] == '\0')
		snprintf(rel, sizeof(rel), ".");
	if ((fd = static_open_beneath(root->dirfd, rel)) == -1)
		return static_not_found(req, root, rel);
	if (fstat(fd, &st) == -1) {
		close(fd);
		return static_not_found(req, root, rel);
	}
	if (S_ISDIR(st.st_mode)) {
		size_t len = strlen(xz_request_path(req));

		close(fd);
		if (len == 0 || xz_request_path(req)[len - 1] != '/')
			return static_redirect_slash(req);
		if (!static_append(rel, sizeof(rel), "/index.gmi") ||
		    (fd = static_open_beneath(root->dirfd, rel)) == -1)
			return static_not_found(req, root, rel);
		if (fstat(fd, &st) == -1) {
			close(fd);
			return static_not_found(req, root, rel);
		}
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return xz_respond(req, 51, "Not found");
	}
	return static_send(req, fd, &st, rel);
}

static void
static_dispose(void *state)
{
	struct static_root *root = state;

	close(root->dirfd);
	free(root->path);
	free(root);
}

static const struct xz_handler_ops static_ops = {
	.name = "static",
	.start = static_start,
	.cancel = static_cancel,
	.dispose = static_dispose,
};

int
xz_static(struct xz_app *app, const char *prefix, const char *dir)
{
	return xz_static_with(app, prefix, dir, NULL);
}

int
xz_static_with(struct xz_app *app, const char *prefix, const char *dir,
    const struct xz_static_opts *opts)
{
	struct static_root *root;

	if (prefix == NULL || dir == NULL) {
		app_set_error(app, "static %s: no root",
		    prefix != NULL ? prefix : "(null)");
		return XZ_EINVAL;
	}
	if ((root = calloc(1, sizeof(*root))) == NULL) {
		app_set_error(app, "static %s: out of memory", prefix);
		return XZ_ENOMEM;
	}
	root->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root->dirfd == -1) {
		app_set_error(app, "static %s: root %s: %s", prefix, dir,
		    strerror(errno));
		free(root);
		return XZ_EINVAL;
	}
	root->serve_hidden = opts != NULL && opts->serve_hidden;
	if ((root->path = strdup(dir)) == NULL) {
		app_set_error(app, "static %s: out of memory", prefix);
		static_dispose(root);
		return XZ_ENOMEM;
	}
	return xz_mount(app, prefix, xz_handler_new(&static_ops, root));
}
