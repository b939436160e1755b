/*
 * log.c - the server's two logs: error lines (with a level) and access
 * lines (one per request, in one of three styles), each to stderr, syslog,
 * a file or nowhere; and the words for the library's error codes
 * (xz_strerror), which every file may use.
 *
 * The library never prints unless the program turned logging on with
 * xz_log_enable(): an embedding application stays quiet by default. Each
 * line is written with one write(2) so that lines of concurrent workers
 * never interleave. Every byte a client (or a backend) chose is escaped
 * before it reaches a line: a CR could otherwise overwrite the line on a
 * terminal with a forged one, an ESC drive the operator's terminal, a '"'
 * end a quoted field early.
 */
#include <sys/stat.h>

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "xz_private.h"

/* Where one log goes. */
enum log_sink {
	SINK_STDERR,
	SINK_SYSLOG,
	SINK_FILE,
	SINK_OFF,
};

struct log_dest {
	enum log_sink sink;
	int fd;     /* stderr's or the file's (kept across reopens) */
	char *path; /* SINK_FILE */
};

static int log_level = -1; /* -1 silent, 0 normal, 1 verbose */
static struct log_dest log_err = { SINK_STDERR, STDERR_FILENO, NULL };
static struct log_dest log_acc = { SINK_STDERR, STDERR_FILENO, NULL };
static enum xz_log_style log_style = XZ_LOG_XITZIN;
static enum xz_log_ip log_ip = XZ_LOG_IP_FULL;
static bool log_no_query;
static bool log_journal; /* stderr is journald's stream: it stamps lines */
static bool log_syslog_open;

/* The length of the valid UTF-8 sequence at s, or 0 if there is none. */
static size_t
log_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	/* C1 controls and the bidirectional overrides (text that reads
	 * differently from how it is stored) are escaped too. */
	if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return len;
}

size_t
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen, bool quote)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, n;
	char esc[5];

	if (dstlen == 0)
		return 0;
	while (i < srclen) {
		n = 1;
		if (s[i] == '\\' || (quote && s[i] == '"')) {
			esc[0] = '\\', esc[1] = (char)s[i], n = 2;
		} else if (s[i] == '\r' || s[i] == '\n' || s[i] == '\t') {
			esc[0] = '\\', n = 2;
			esc[1] = s[i] == '\r' ? 'r' : s[i] == '\n' ? 'n' : 't';
		} else if (s[i] >= 0x20 && s[i] < 0x7f) {
			esc[0] = (char)s[i];
		} else if (s[i] >= 0x80 &&
		           (n = log_utf8_len(s + i, srclen - i)) > 0) {
			if (o + n >= dstlen)
				break;
			memcpy(dst + o, s + i, n);
			o += n, i += n;
			continue;
		} else {
			esc[0] = '\\', esc[1] = 'x', n = 4;
			esc[2] = hex[s[i] >> 4], esc[3] = hex[s[i] & 15];
		}
		if (o + n >= dstlen)
			break;
		memcpy(dst + o, esc, n);
		o += n, i++;
	}
	dst[o] = '\0';
	return o;
}

/* One line out, newline added; syslog gets it without. */
static void
log_write(const struct log_dest *d, int priority, char *line, size_t n)
{
	if (d->sink == SINK_OFF)
		return;
	if (d->sink == SINK_SYSLOG) {
		line[n] = '\0';
		syslog(priority, "%s", line);
		return;
	}
	line[n] = '\n';
	(void)!write(d->fd, line, n + 1);
}

/* "2026-01-02T03:04:05Z ", or nothing where journald stamps the line. */
static size_t
log_stamp(const struct log_dest *d, char *buf, size_t len)
{
	struct tm tm;
	time_t now = time(NULL);

	if (d->sink == SINK_SYSLOG || (d->sink == SINK_STDERR && log_journal))
		return 0;
	gmtime_r(&now, &tm);
	return strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ ", &tm);
}

static void
log_vline(int priority, const char *level, const char *err, const char *fmt,
    va_list ap)
{
	char raw[2048], line[4096 + 64];
	size_t n = 0;
	int m;

	m = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (m < 0)
		return;
	if (m >= (int)sizeof(raw))
		m = sizeof(raw) - 1;
	/* <N>: journald takes the priority from the prefix (sd-daemon(3)). */
	if (log_err.sink == SINK_STDERR && log_journal)
		n += (size_t)snprintf(line, sizeof(line), "<%d>", priority);
	else if (log_err.sink == SINK_FILE)
		n += log_stamp(&log_err, line, sizeof(line));
	/* syslog names us already (ident "xitzin"). */
	n += (size_t)snprintf(line + n, sizeof(line) - n,
	    "%s%s: ", log_err.sink == SINK_SYSLOG ? "" : "xitzin: ", level);
	n +=
	    log_escape(line + n, sizeof(line) - n - 256, raw, (size_t)m, false);
	if (err != NULL)
		n += (size_t)snprintf(line + n, sizeof(line) - n - 2, ": %s",
		    err);
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	log_write(&log_err, priority, line, n);
}

void
xz_log_enable(bool verbose)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	log_level = verbose ? 1 : 0;
	/* JOURNAL_STREAM=dev:ino names stderr when it goes to journald
	 * (systemd.exec(5)); stderr redirected since then does not. */
	log_journal = js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	              fstat(STDERR_FILENO, &st) == 0 &&
	              (unsigned long long)st.st_dev == dev &&
	              (unsigned long long)st.st_ino == ino;
}

void
log_warn(const char *fmt, ...)
{
	char buf[128];
	const char *err;
	va_list ap;

	if (log_level < 0)
		return;
	err = strerror_r(errno, buf, sizeof(buf));
	va_start(ap, fmt);
	log_vline(LOG_WARNING, "warning", err, fmt, ap);
	va_end(ap);
}

/* The errno-less entry points differ only in level. */
#define LOG_FUNCTION(name, min_level, priority, level)                         \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
                                                                               \
		if (log_level < (min_level))                                   \
			return;                                                \
		va_start(ap, fmt);                                             \
		log_vline(priority, level, NULL, fmt, ap);                     \
		va_end(ap);                                                    \
	}

LOG_FUNCTION(log_warnx, 0, LOG_WARNING, "warning")
LOG_FUNCTION(log_info, 0, LOG_INFO, "info")
LOG_FUNCTION(log_debug, 1, LOG_DEBUG, "debug")

/* The client's address as log_ip says: whole, its /24 or /48, or "-". */
static void
log_client(const char *addr, char *buf, size_t len)
{
	unsigned char a[16];

	if (log_ip == XZ_LOG_IP_OFF) {
		snprintf(buf, len, "-");
		return;
	}
	if (log_ip == XZ_LOG_IP_TRUNCATED) {
		if (inet_pton(AF_INET, addr, a) == 1) {
			a[3] = 0;
			inet_ntop(AF_INET, a, buf, (socklen_t)len);
			return;
		}
		if (inet_pton(AF_INET6, addr, a) == 1) {
			memset(a + 6, 0, 10);
			inet_ntop(AF_INET6, a, buf, (socklen_t)len);
			return;
		}
	}
	log_escape(buf, len, addr, strlen(addr), true);
}

/*
 * A Titan upload's token is a password (titan://host/path;token=X): the
 * log gets "token=-" instead. Out is at least as long as u.
 */
static size_t
log_redact_token(const char *u, size_t ulen, char *out)
{
	const char *end = memchr(u, '?', ulen), *t, *v;
	size_t n = 0;

	if (end == NULL)
		end = u + ulen;
	if (ulen < 9 || strncasecmp(u, "titan://", 8) != 0 ||
	    (t = memmem(u, (size_t)(end - u), ";token=", 7)) == NULL) {
		memcpy(out, u, ulen);
		return ulen;
	}
	v = t + 7;
	memcpy(out, u, (size_t)(v - u));
	n = (size_t)(v - u);
	out[n++] = '-';
	while (v < end && *v != ';')
		v++;
	memcpy(out + n, v, (size_t)(u + ulen - v));
	return n + (size_t)(u + ulen - v);
}

void
log_access_entry(const struct access_entry *e)
{
	char line[4096 + 512], client[64], url[4096], when[40], redacted[1100];
	const char *u = e->url != NULL ? e->url : "";
	size_t ulen = strlen(u), n;
	struct tm tm;
	time_t now = time(NULL);

	if (log_level < 0 || log_acc.sink == SINK_OFF)
		return;
	if (ulen < sizeof(redacted)) {
		ulen = log_redact_token(u, ulen, redacted);
		u = redacted;
	}
	if (log_no_query && memchr(u, '?', ulen) != NULL)
		ulen = (size_t)((const char *)memchr(u, '?', ulen) - u);
	log_escape(url, sizeof(url), u, ulen, true);
	log_client(e->addr, client, sizeof(client));
	if (log_style == XZ_LOG_XITZIN) {
		char sni[300];

		log_escape(sni, sizeof(sni), e->sni ? e->sni : "-",
		    e->sni ? strlen(e->sni) : 1, true);
		n = log_stamp(&log_acc, line, sizeof(line));
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		    "%s \"%s\" %d %zu %s %s %.1fms%s%s", client, url, e->status,
		    e->bytes, sni[0] ? sni : "-",
		    e->cert_hash ? e->cert_hash : "-", e->ms,
		    e->reason ? " " : "", e->reason ? e->reason : "");
	} else {
		/* NCSA common: host ident user [time] "request" status
		 * bytes; combined adds referer and user agent, which
		 * Gemini has not. The time is part of the format. */
		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
		n = (size_t)snprintf(line, sizeof(line),
		    "%s - - [%s] \"%s\" %d %zu%s", client, when, url, e->status,
		    e->bytes,
		    log_style == XZ_LOG_COMBINED ? " \"-\" \"-\"" : "");
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	log_write(&log_acc, LOG_INFO, line, n);
}

/* "stderr" (or NULL), "syslog", "off", or a file to append to. */
static int
log_dest_open(struct log_dest *d, const char *spec, char *err, size_t errlen)
{
	int fd;

	if (spec == NULL || strcmp(spec, "stderr") == 0) {
		d->sink = SINK_STDERR;
		return XZ_OK;
	}
	if (strcmp(spec, "off") == 0) {
		d->sink = SINK_OFF;
		return XZ_OK;
	}
	if (strcmp(spec, "syslog") == 0) {
		/* NDELAY: /dev/log is connected now, before any chroot. */
		if (!log_syslog_open)
			openlog("xitzin", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog_open = true;
		d->sink = SINK_SYSLOG;
		return XZ_OK;
	}
	fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		snprintf(err, errlen, "log file %s: %s", spec, strerror(errno));
		return XZ_EIO;
	}
	if ((d->path = strdup(spec)) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return XZ_ENOMEM;
	}
	d->sink = SINK_FILE;
	d->fd = fd;
	return XZ_OK;
}

static void
log_dest_close(struct log_dest *d)
{
	if (d->sink == SINK_FILE)
		close(d->fd);
	free(d->path);
	d->path = NULL;
	d->sink = SINK_STDERR;
	d->fd = STDERR_FILENO;
}

int
xz_log_open(const struct xz_log_opts *o, char *err, size_t errlen)
{
	struct log_dest e = { SINK_STDERR, STDERR_FILENO, NULL };
	struct log_dest a = { SINK_STDERR, STDERR_FILENO, NULL };
	int rc;

	if (o->style > XZ_LOG_COMBINED || o->ip > XZ_LOG_IP_OFF) {
		snprintf(err, errlen, "log style or log_ip out of range");
		return XZ_EINVAL;
	}
	xz_log_close();
	if ((rc = log_dest_open(&e, o->error_log, err, errlen)) != XZ_OK)
		return rc;
	/* One file for both logs: one descriptor, reopened once. */
	if (a.sink == SINK_STDERR && o->access_log != NULL &&
	    o->error_log != NULL && strcmp(o->access_log, o->error_log) == 0 &&
	    e.sink == SINK_FILE)
		a.sink = SINK_FILE, a.fd = e.fd;
	else if ((rc = log_dest_open(&a, o->access_log, err, errlen)) !=
	         XZ_OK) {
		log_dest_close(&e);
		return rc;
	}
	log_err = e;
	log_acc = a;
	log_style = o->style;
	log_ip = o->ip;
	log_no_query = o->no_query;
	return XZ_OK;
}

/* The new file takes the old descriptor's number: writers never see a
 * closed descriptor. */
static int
log_dest_reopen(struct log_dest *d)
{
	int fd;

	if (d->sink != SINK_FILE || d->path == NULL)
		return XZ_OK;
	fd = open(d->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		log_warn("reopening %s (still writing the old file)", d->path);
		return XZ_EIO;
	}
	if (dup3(fd, d->fd, O_CLOEXEC) == -1) {
		log_warn("reopening %s", d->path);
		close(fd);
		return XZ_EIO;
	}
	close(fd);
	return XZ_OK;
}

int
xz_log_reopen(void)
{
	int rc = log_dest_reopen(&log_err), rc2 = XZ_OK;

	if (log_acc.path != NULL)
		rc2 = log_dest_reopen(&log_acc);
	log_info("log files reopened");
	return rc != XZ_OK ? rc : rc2;
}

void
xz_log_close(void)
{
	if (log_acc.sink == SINK_FILE && log_acc.path == NULL) {
		/* shares the error log's descriptor */
		log_acc.sink = SINK_STDERR;
		log_acc.fd = STDERR_FILENO;
	}
	log_dest_close(&log_acc);
	log_dest_close(&log_err);
	if (log_syslog_open)
		closelog();
	log_syslog_open = false;
	log_style = XZ_LOG_XITZIN;
	log_ip = XZ_LOG_IP_FULL;
	log_no_query = false;
}

/* The words for each code of enum xz_err (xitzin.h), for log lines. */
const char *
xz_strerror(int err)
{
	switch (err) {
	case XZ_OK:
		return "success";
	case XZ_EAGAIN:
		return "need more input";
	case XZ_ENOMEM:
		return "out of memory";
	case XZ_EPARSE:
		return "malformed input";
	case XZ_ETOOBIG:
		return "too large";
	case XZ_EIO:
		return "I/O error";
	case XZ_EINVAL:
		return "invalid argument";
	case XZ_ESTATE:
		return "not allowed in this state";
	}
	return "unknown error";
}
