/*
 * log.c - the server's log on stderr, one line per call, and the words
 * for the library's error codes (xz_strerror), which every file may use.
 *
 * The library never prints unless the program turned logging on with
 * xz_log_enable(): an embedding application stays quiet by default. Each line
 * is written with one write(2) so that lines of concurrent workers never
 * interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xz_private.h"

static int log_level = -1; /* -1 silent, 0 normal, 1 verbose */

static void
log_vline(const char *prefix, const char *err, const char *fmt, va_list ap)
{
	char line[2048];
	int n, m;

	n = snprintf(line, sizeof(line), "%s", prefix);
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (err != NULL)
		n += snprintf(line + n, sizeof(line) - n, ": %s", err);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
xz_log_enable(bool verbose)
{
	log_level = verbose ? 1 : 0;
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
	log_vline("xitzin: ", err, fmt, ap);
	va_end(ap);
}

/* The errno-less entry points differ only in level and prefix. */
#define LOG_FUNCTION(name, min_level, prefix)                                  \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
                                                                               \
		if (log_level < (min_level))                                   \
			return;                                                \
		va_start(ap, fmt);                                             \
		log_vline(prefix, NULL, fmt, ap);                              \
		va_end(ap);                                                    \
	}

LOG_FUNCTION(log_warnx, 0, "xitzin: ")
LOG_FUNCTION(log_info, 0, "xitzin: ")
LOG_FUNCTION(log_debug, 1, "xitzin: debug: ")
LOG_FUNCTION(log_access, 0, "")

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
